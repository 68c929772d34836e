/*
 * gen.c - writes one SMTP client session to stdout, for piping into a server's stdin:
 * EHLO, MAIL, RCPT (n times), DATA, a message of the bytes asked for (a few header
 * fields, an empty line, then lines of 78 characters and CRLF, one in 64 dot-stuffed;
 * 2 more bytes if the last line must be ended), the lone dot, QUIT.  The body is
 * made on the fly from one small block, so a 1 GiB session costs 64 KiB of memory.
 *
 *   gen [-r RCPTS] [-b BODY_BYTES] [-p USEC] [-H]
 *
 * Defaults: 1 recipient, 1024 bytes.  -p pauses after each command line, so that a
 * server reading the pipe sees one command at a time instead of one pipelined burst.
 * -H leaves out the header fields and the empty line: the whole message is one header.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE	80		/* 78 characters and CRLF */
#define NLINES	819		/* lines in the repeated block: 65520 bytes */

static char block[LINE * NLINES];
static const char header[] = "From: <sender@bench.example>\r\nTo: <rcpt0@example.org>\r\n"
    "Subject: bench\r\nMessage-ID: <bench.1@bench.example>\r\n"
    "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n";

/* put - write all of buf, or exit */
static void
put(const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(1, buf, len);

		if (w <= 0)
			exit(1);
		buf += w;
		len -= (size_t)w;
	}
}

static long pause_us;

static void
puts_(const char *s)
{
	put(s, strlen(s));
}

/* command - one command line, then the pause asked for */
static void
command(const char *s)
{
	struct timespec ts = { pause_us / 1000000, (pause_us % 1000000) * 1000 };

	puts_(s);
	if (pause_us > 0)
		nanosleep(&ts, NULL);
}

/* make_block - lines of text; every 64th starts with ".." (a stuffed dot) */
static void
make_block(void)
{
	static const char words[] = "the quick brown fox jumps over the lazy dog 0123456789 ";
	size_t i, k;

	for (i = 0; i < NLINES; i++) {
		char *l = block + i * LINE;

		for (k = 0; k < LINE - 2; k++)
			l[k] = words[(i * 7 + k) % (sizeof(words) - 1)];
		if (i % 64 == 0)
			l[0] = l[1] = '.';
		l[LINE - 2] = '\r';
		l[LINE - 1] = '\n';
	}
}

int
main(int argc, char **argv)
{
	unsigned long long body = 1024, left;
	unsigned long rcpts = 1, i;
	char buf[128];
	int c, headers = 1;

	while ((c = getopt(argc, argv, "r:b:p:H")) != -1) {
		switch (c) {
		case 'r':
			rcpts = strtoul(optarg, NULL, 10);
			break;
		case 'b':
			body = strtoull(optarg, NULL, 10);
			break;
		case 'p':
			pause_us = strtol(optarg, NULL, 10);
			break;
		case 'H':
			headers = 0;
			break;
		default:
			fprintf(stderr, "usage: gen [-r RCPTS] [-b BODY_BYTES] [-p USEC] [-H]\n");
			return 2;
		}
	}
	make_block();
	command("EHLO client.bench.example\r\n");
	command("MAIL FROM:<sender@bench.example>\r\n");
	for (i = 0; i < rcpts; i++) {
		snprintf(buf, sizeof(buf), "RCPT TO:<rcpt%lu@example.org>\r\n", i);
		command(buf);
	}
	command("DATA\r\n");
	left = body;
	if (headers && body >= sizeof(header) - 1) {
		puts_(header);
		left -= sizeof(header) - 1;
	}
	for (; left >= sizeof(block); left -= sizeof(block))
		put(block, sizeof(block));
	if (left > 0) {
		/* the rest, ending in CRLF so that the dot below is on its own line */
		put(block, (size_t)left);
		if (left < 2 || block[left - 2] != '\r' || block[left - 1] != '\n')
			puts_("\r\n");
	}
	puts_(".\r\nQUIT\r\n");
	return 0;
}
