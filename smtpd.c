/*
 * smtpd.c - decky-smtpd, the process: one SMTP client on fd 0/1, started by systemd
 * (Accept=yes), xinetd or by hand.  It reads the settings, finds the peer, greets,
 * and runs the session with a blocking, bounded line reader until QUIT, EOF or a
 * limit.  This file is the only one that touches fds, signals, the clock and the
 * environment; it never opens an outbound connection.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "session.h"
#include "sink.h"
#include "spool.h"

#define LINE_MAX_LEN	2048		/* line_length_limit: longer lines come in pieces */
#define IN_BUF		16384		/* the reader's buffer: pipelined commands wait here */

#ifndef VERSION
#define VERSION "0.1"
#endif

/* --- settings: each an option --NAME=VALUE and an environment variable SMTP_NAME --- */

static struct settings {
	const char *hostname;
	const char *banner;
	const char *log;
	const char *spool;
	const char *fallback_log;
	const char *timeout;		/* seconds idle per read or write */
	const char *size_limit;
	const char *recipient_limit;
	const char *error_sleep;	/* milliseconds */
} set = {
	.log = "journal",
	.timeout = "300",
	.size_limit = "10240000",
	.recipient_limit = "1000",
	.error_sleep = "1000",
};

static const struct setting {
	const char *name;
	const char **value;
} settings[] = {
	{ "hostname", &set.hostname },
	{ "banner", &set.banner },
	{ "log", &set.log },
	{ "spool", &set.spool },
	{ "fallback-log", &set.fallback_log },
	{ "timeout", &set.timeout },
	{ "size-limit", &set.size_limit },
	{ "recipient-limit", &set.recipient_limit },
	{ "error-sleep", &set.error_sleep },
};
#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: decky-smtpd [--log=journal|json|json:FILE[,...]] [--NAME=VALUE ...]\n"
	    "settings (also from the environment as SMTP_NAME):");
	for (i = 0; i < NSETTINGS; i++)
		fprintf(f, " %s", settings[i].name);
	fprintf(f, "\nsee decky-smtpd(8)\n");
}

/* env_name - "size-limit" -> "SMTP_SIZE_LIMIT" */
static void
env_name(char *buf, size_t size, const char *name)
{
	size_t n = (size_t)snprintf(buf, size, "SMTP_"), i;

	for (i = 0; name[i] && n + 1 < size; i++)
		buf[n++] = name[i] == '-' ? '_' : (char)(name[i] & ~0x20);
	buf[n] = '\0';
}

/* configure - environment first, options over it; 0 or -1 (usage printed) */
static int
configure(int argc, char **argv)
{
	char env[64];
	size_t i;
	int a;

	for (i = 0; i < NSETTINGS; i++) {
		const char *v;

		env_name(env, sizeof(env), settings[i].name);
		if ((v = getenv(env)) != NULL && *v != '\0')
			*settings[i].value = v;
	}
	for (a = 1; a < argc; a++) {
		const char *arg = argv[a], *eq;

		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			usage(stdout);
			exit(0);
		}
		if (strcmp(arg, "--version") == 0) {
			printf("decky-smtpd %s\n", VERSION);
			exit(0);
		}
		if (strncmp(arg, "--", 2) != 0 || (eq = strchr(arg, '=')) == NULL)
			goto bad;
		for (i = 0; i < NSETTINGS; i++)
			if (strlen(settings[i].name) == (size_t)(eq - arg - 2) &&
			    strncmp(settings[i].name, arg + 2, (size_t)(eq - arg - 2)) == 0)
				break;
		if (i == NSETTINGS)
			goto bad;
		*settings[i].value = eq + 1;
	}
	return 0;
bad:
	fprintf(stderr, "decky-smtpd: unknown argument: %s\n", argv[a]);
	usage(stderr);
	return -1;
}

/* number - a setting as an unsigned number within [min, max]; -1 if it is not one */
static long
number(const char *name, const char *v, long min, long max)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end != '\0' || n < min || n > max) {
		fprintf(stderr, "decky-smtpd: bad %s: %s\n", name, v);
		return -1;
	}
	return n;
}

/* --- the process around the session -------------------------------------------- */

static struct sink_peer peer;
static struct sink sink = { .json_fd = -1, .fallback_fd = -1, .peer = &peer };
static struct spool spool;
static struct session *session;
static int timeout_ms;
static volatile sig_atomic_t stopping;	/* SIGTERM: end the session at the next wait */

static void
on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

/* addr_str - an address and port as text; IPv4-mapped IPv6 shown as IPv4 */
static int
addr_str(const struct sockaddr_storage *ss, char *addr, size_t asize, char *port, size_t psize)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		inet_ntop(AF_INET, &in->sin_addr, addr, (socklen_t)asize);
		snprintf(port, psize, "%u", ntohs(in->sin_port));
		return 0;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], addr, (socklen_t)asize);
		else
			inet_ntop(AF_INET6, &in6->sin6_addr, addr, (socklen_t)asize);
		snprintf(port, psize, "%u", ntohs(in6->sin6_port));
		return 0;
	}
	return -1;
}

/* find_peer - getpeername/getsockname on fd 0, else REMOTE_ADDR/REMOTE_PORT, else unknown */
static void
find_peer(void)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	const char *ra, *rp;

	if (getpeername(0, (struct sockaddr *)&ss, &len) < 0 ||
	    addr_str(&ss, peer.src, sizeof(peer.src), peer.src_port, sizeof(peer.src_port)) < 0) {
		ra = getenv("REMOTE_ADDR");
		rp = getenv("REMOTE_PORT");
		snprintf(peer.src, sizeof(peer.src), "%s", ra && *ra ? ra : "unknown");
		snprintf(peer.src_port, sizeof(peer.src_port), "%s", rp && *rp ? rp : "0");
	}
	len = sizeof(ss);
	if (getsockname(0, (struct sockaddr *)&ss, &len) < 0 ||
	    addr_str(&ss, peer.dst, sizeof(peer.dst), peer.dst_port, sizeof(peer.dst_port)) < 0) {
		snprintf(peer.dst, sizeof(peer.dst), "unknown");
		snprintf(peer.dst_port, sizeof(peer.dst_port), "0");
	}
}

static void
new_session_id(void)
{
	unsigned char r[16];
	size_t i;

	if (getrandom(r, sizeof(r), 0) != sizeof(r)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		memcpy(r, &ts, sizeof(r) < sizeof(ts) ? sizeof(r) : sizeof(ts));
		memcpy(r + 8, &(pid_t){ getpid() }, sizeof(pid_t));
	}
	for (i = 0; i < sizeof(r); i++)
		snprintf(peer.session_id + 2 * i, 3, "%02x", r[i]);
}

/* open_log - a JSON file opened for appending */
static int
open_log(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	if (fd < 0)
		fprintf(stderr, "decky-smtpd: %s: %s\n", path, strerror(errno));
	return fd;
}

/*
 * stderr_is_client - under xinetd (and a unit without StandardError=) fd 2 is the
 * connection itself: nothing meant for us may ever go there.
 */
static int
stderr_is_client(void)
{
	struct stat a, b;

	return fstat(0, &a) == 0 && fstat(2, &b) == 0 && S_ISSOCK(b.st_mode) &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static int client_stderr;

/* quiet_stderr - before anything can be said on stderr: never to the client */
static void
quiet_stderr(void)
{
	int fd;

	if (!(client_stderr = stderr_is_client()))
		return;
	if ((fd = open("/dev/null", O_WRONLY | O_CLOEXEC)) >= 0 && fd != 2) {
		dup2(fd, 2);
		close(fd);
	}
}

/* setup_sinks - parse the log setting: journal, json, json:FILE, comma-separated */
static int
setup_sinks(void)
{
	static char fallback[4096];
	char buf[1024], *tok, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", set.log);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (strcmp(tok, "journal") == 0) {
			sink.journal = 1;
		} else if (strcmp(tok, "json") == 0) {
			sink.json_fd = 2;
		} else if (strncmp(tok, "json:", 5) == 0 && tok[5] != '\0') {
			if ((sink.json_fd = open_log(tok + 5)) < 0)
				return -1;
		} else {
			fprintf(stderr, "decky-smtpd: bad log: %s\n", tok);
			return -1;
		}
	}
	/*
	 * Where events go that journald refuses: the fallback file, else stderr, else
	 * (stderr being the client) events.json in the spool directory.
	 */
	if (set.fallback_log == NULL && client_stderr) {
		snprintf(fallback, sizeof(fallback), "%s/events.json", set.spool);
		mkdir(set.spool, 0700);
		set.fallback_log = fallback;
	}
	if (set.fallback_log != NULL)
		sink.fallback_fd = open_log(set.fallback_log);
	else
		sink.fallback_fd = 2;
	return 0;
}

/* on_event - the session's events, with the shell's part (the spool file) added */
static void
on_event(void *ctx, const struct event *ev)
{
	if (ev->type == EV_MESSAGE && spool.path[0] != '\0' &&
	    ev->nfield < EVENT_MAX_FIELDS) {
		struct event e = *ev;

		e.field[e.nfield].name = "SPOOL_FILE";
		e.field[e.nfield].val = spool.path;
		e.field[e.nfield].len = strlen(spool.path);
		e.nfield++;
		sink_event(ctx, &e);
		return;
	}
	sink_event(ctx, ev);
}

static void finish(enum session_end);

/* wait_fd - poll one fd for events within the idle timeout; 1 ready, 0 timeout */
static int
wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	do {
		if (stopping)
			finish(END_SIGNAL);
		r = poll(&p, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	return r > 0;
}

/* send_out - write all of buf within the idle timeout; 0, or the end it met */
static int
send_out(const char *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t w;

		if (!wait_fd(1, POLLOUT))
			return END_TIMEOUT;
		w = write(1, buf + off, len - off);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w <= 0)
			return END_WRITE;
		off += (size_t)w;
	}
	return 0;
}

/* sleep_ms - the error sleeps the session asked for */
static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* finish - end the session: its last words (a 421) go out if they can, then exit */
static void
finish(enum session_end why)
{
	size_t len;
	const char *out;

	stopping = 0;
	session_end(session, why);
	out = session_output(session, &len);
	if (why != END_WRITE && why != END_SIGNAL && len > 0) {
		sleep_ms(session_delay_ms(session));
		send_out(out, len);
	}
	exit(0);
}

/* flush - send the session's pending replies (after its error sleeps) */
static void
flush(void)
{
	size_t len;
	const char *out = session_output(session, &len);
	int end;

	sleep_ms(session_delay_ms(session));
	end = send_out(out, len);
	session_output_done(session);
	if (end != 0)
		finish((enum session_end)end);
}

/* The line reader: a fixed buffer; lines longer than LINE_MAX_LEN come in pieces. */
static char in[IN_BUF];
static size_t in_start, in_end;

/* fill - read more input, flushing replies first (that is all pipelining needs) */
static int
fill(void)
{
	ssize_t r;

	if (in_start > 0) {
		memmove(in, in + in_start, in_end - in_start);
		in_end -= in_start;
		in_start = 0;
	}
	flush();
	for (;;) {
		if (!wait_fd(0, POLLIN))
			finish(END_TIMEOUT);
		r = read(0, in + in_end, sizeof(in) - in_end);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			return -1;
		in_end += (size_t)r;
		return r > 0;
	}
}

/* run - the I/O loop: hand each line (or BDAT bytes) to the session */
static void
run(void)
{
	for (;;) {
		size_t want = session_want_bytes(session), avail = in_end - in_start;

		if (want > 0) {
			size_t n = avail < want ? avail : want;

			if (n > 0) {
				session_bytes(session, in + in_start, n);
				in_start += n;
				continue;
			}
		} else {
			size_t scan = avail < LINE_MAX_LEN ? avail : LINE_MAX_LEN;
			char *nl = memchr(in + in_start, '\n', scan);

			if (nl != NULL || avail >= LINE_MAX_LEN) {
				char *line = in + in_start;
				size_t len = nl ? (size_t)(nl - line) : scan;
				enum line_end end = LE_NONE;

				if (nl != NULL) {
					in_start += len + 1;
					end = LE_LF;
					if (len > 0 && line[len - 1] == '\r')
						len--, end = LE_CRLF;
				} else {
					in_start += len;
				}
				if (session_line(session, line, len, end) == SN_CLOSE) {
					flush();
					exit(0);
				}
				continue;
			}
		}
		switch (fill()) {
		case 1:
			break;
		case 0:
			/* EOF: a partial last line still counts (a message body keeps it) */
			if (in_end > in_start && session_want_bytes(session) == 0)
				session_line(session, in + in_start, in_end - in_start, LE_NONE);
			finish(END_EOF);
			break;
		default:
			finish(END_READ);
		}
	}
}

int
main(int argc, char **argv)
{
	static struct session_conf conf;
	static struct session_ops ops;
	static char host[256], banner[512];
	long n;

	struct sigaction sa = { .sa_handler = on_term };

	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGTERM, &sa, NULL);	/* no SA_RESTART: the wait returns EINTR */
	quiet_stderr();
	if (configure(argc, argv) < 0)
		return 2;
	if (set.spool == NULL) {
		const char *st = getenv("STATE_DIRECTORY");

		set.spool = st && *st ? st : "/var/lib/decky-smtpd";
	}
	if (setup_sinks() < 0)
		return 2;
	if (set.hostname == NULL) {
		if (gethostname(host, sizeof(host) - 1) < 0 || host[0] == '\0')
			snprintf(host, sizeof(host), "localhost");
		set.hostname = host;
	}
	if (set.banner == NULL) {
		snprintf(banner, sizeof(banner), "%s ESMTP Postfix (Debian/GNU)", set.hostname);
		set.banner = banner;
	}
	conf.hostname = set.hostname;
	conf.banner = set.banner;
	if ((n = number("timeout", set.timeout, 1, 86400)) < 0)
		return 2;
	timeout_ms = (int)n * 1000;
	if ((n = number("size-limit", set.size_limit, 1, 1L << 40)) < 0)
		return 2;
	conf.max_size = (unsigned long)n;
	if ((n = number("recipient-limit", set.recipient_limit, 1, 100000)) < 0)
		return 2;
	conf.max_rcpt = (unsigned)n;
	if ((n = number("error-sleep", set.error_sleep, 0, 60000)) < 0)
		return 2;
	conf.error_sleep_ms = (unsigned)n;
	conf.soft_errors = 10;
	conf.hard_errors = 20;
	spool_init(&spool, set.spool);

	peer.hostname = set.hostname;
	find_peer();
	new_session_id();

	ops.ctx = &sink;
	ops.event = on_event;
	ops.msg_open = spool_open;
	ops.msg_write = spool_write;
	ops.msg_close = spool_close;
	/* the spool callbacks get their own context */
	ops.msg_ctx = &spool;
	if ((session = session_new(&conf, &ops)) == NULL)
		return 1;

	{
		struct event ev = { .type = EV_CONNECT, .priority = 6 };

		sink_event(&sink, &ev);
	}
	session_greet(session);
	run();
	return 0;
}
