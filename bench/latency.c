/*
 * latency.c - connect -> "220 " received, over and over, one connection at a time:
 * the time a client waits for the greeting.  Each connection then sends QUIT and
 * waits for the server to close.  Prints "n median p99 min max" in microseconds.
 * Only ever connects to 127.0.0.1; every wait is bounded.
 *
 *   latency PORT COUNT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS	5000	/* the longest any one wait may take */
#define MAX_N	100000

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* readable - wait for fd within WAIT_MS; 1 ready, 0 not */
static int
readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, WAIT_MS) == 1;
}

/* one - one connection; the microseconds to the end of the greeting's first line, or -1 */
static double
one(const struct sockaddr_in *sa)
{
	char buf[4096];
	size_t got = 0;
	double t0, t = -1;
	int fd;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	t0 = now_us();
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0)
		goto out;
	while (got < sizeof(buf) - 1 && readable(fd)) {
		ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);

		if (r <= 0)
			goto out;
		got += (size_t)r;
		buf[got] = '\0';
		if (strstr(buf, "\r\n") != NULL) {
			t = now_us() - t0;
			break;
		}
	}
	if (t < 0 || strncmp(buf, "220", 3) != 0) {
		t = -1;
		goto out;
	}
	/* end politely and let the server close first: no TIME_WAIT pile-up on our side */
	if (write(fd, "QUIT\r\n", 6) == 6)
		while (readable(fd) && read(fd, buf, sizeof(buf)) > 0)
			;
out:
	close(fd);
	return t;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	double *t;
	int n, i, ok = 0, fails = 0;

	if (argc != 3 || (n = atoi(argv[2])) < 1 || n > MAX_N) {
		fprintf(stderr, "usage: latency PORT COUNT (COUNT <= %d)\n", MAX_N);
		return 2;
	}
	sa.sin_port = htons((unsigned short)atoi(argv[1]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((t = calloc((size_t)n, sizeof(*t))) == NULL)
		return 1;
	for (i = 0; i < n; i++) {
		double v = one(&sa);

		if (v < 0) {
			if (++fails > 10)
				break;
			continue;
		}
		t[ok++] = v;
	}
	if (ok == 0) {
		fprintf(stderr, "latency: no greeting from 127.0.0.1:%s\n", argv[1]);
		return 1;
	}
	qsort(t, (size_t)ok, sizeof(*t), cmp);
	printf("%d %.0f %.0f %.0f %.0f\n", ok, t[ok / 2], t[(ok * 99) / 100 < ok ? (ok * 99) / 100 : ok - 1],
	    t[0], t[ok - 1]);
	return fails > 10;
}
