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

#include "flood.h"
#include "makepersona.h"
#include "penalty.h"
#include "persona.h"
#include "session.h"
#include "sink.h"
#include "spool.h"
#include "tls.h"

#define IN_BUF		65536		/* the reader's buffer: pipelined commands and DATA */
#define CLOSING_MS	5000		/* at most this long for the last reply (a 421) */
/* the fallback file is not written once this big: refused events are then lost */
#define FALLBACK_MAX	(64ULL << 20)

#ifndef VERSION
#define VERSION "0.1"
#endif

static struct persona pc;	/* the settings: see persona.c */
static int make_cert;		/* --make-cert: make the TLS key and certificate, exit */
static char persona_err[512];	/* a bad persona file or variable: logged, then ignored */
static char unknown_env[PERSONA_UNKNOWN_MAX];	/* SMTP_ variables that are no setting's */
static char unknown_hint[160];	/* "VAR: did you mean SMTP_NAME?" */
static int nunknown;

static void
usage(FILE *f)
{
	fprintf(f, "usage: decky-smtpd [--log=journal|json|json:FILE[,...]] [--NAME=VALUE ...]\n"
	    "       decky-smtpd --check-persona [FILE] [--NAME=VALUE ...]\n"
	    "       decky-smtpd --make-cert [--NAME=VALUE ...]\n"
	    "       decky-smtpd --make-persona SEED\n"
	    "settings (also SMTP_NAME in the environment, and keys of the persona file):");
	persona_names(f);
	fprintf(f, "\nsee decky-smtpd(8)\n");
}

/* option - "--name=value" into the settings; -1 (with a message) if it is not one */
static int
option(const char *arg)
{
	char name[64], why[200];
	const char *eq;

	if (strncmp(arg, "--", 2) != 0 || (eq = strchr(arg, '=')) == NULL ||
	    (size_t)(eq - arg - 2) >= sizeof(name)) {
		fprintf(stderr, "decky-smtpd: unknown argument: %s\n", arg);
		usage(stderr);
		return -1;
	}
	memcpy(name, arg + 2, (size_t)(eq - arg - 2));
	name[eq - arg - 2] = '\0';
	if (persona_set(&pc, PS_OPTION, name, eq + 1, why, sizeof(why)) < 0) {
		fprintf(stderr, "decky-smtpd: %s\n", why);
		return -1;
	}
	return 0;
}

/* derive_defaults - the settings whose defaults come from the machine or each other */
static void
derive_defaults(void)
{
	static char host[256], banner[512], cert[4096], key[4096];
	const char *st;

	if (pc.spool == NULL)
		pc.spool = (st = getenv("STATE_DIRECTORY")) && *st ? (char *)st : "/var/lib/decky-smtpd";
	if (pc.hostname == NULL) {
		if (gethostname(host, sizeof(host) - 1) < 0 || host[0] == '\0')
			snprintf(host, sizeof(host), "localhost");
		pc.hostname = host;
	}
	if (pc.banner == NULL) {
		snprintf(banner, sizeof(banner), "%s ESMTP Postfix (Debian/GNU)", pc.hostname);
		pc.banner = banner;
	}
	if (pc.tls_cert == NULL) {
		snprintf(cert, sizeof(cert), "%s/tls/cert.pem", pc.spool);
		pc.tls_cert = cert;
	}
	if (pc.tls_key == NULL) {
		snprintf(key, sizeof(key), "%s/tls/key.pem", pc.spool);
		pc.tls_key = key;
	}
}

/* unknown_warning - what a persona_error (or --check-persona) says of unknown variables */
static void
unknown_warning(char *buf, size_t size)
{
	int w = snprintf(buf, size, "%s: unknown variable%s, ignored", unknown_env,
	    nunknown > 1 ? "s" : "");

	if (unknown_hint[0] != '\0' && w >= 0 && (size_t)w < size)
		snprintf(buf + w, size - (size_t)w, " (%s)", unknown_hint);
}

/*
 * check_persona - --check-persona [FILE]: validate the file (else --persona or
 * SMTP_PERSONA, if any) and the environment, and show the effective settings and
 * where each came from
 */
static int
check_persona(const char *path, const char *file, int argc, char **argv)
{
	char err[512], sources[PERSONA_SOURCES_MAX];
	int a;

	if (path != NULL)
		file = path;
	if (file != NULL && *file != '\0' && persona_file(&pc, file, err, sizeof(err)) < 0) {
		fprintf(stderr, "decky-smtpd: %s\n", err);
		return 2;
	}
	if (persona_env(&pc, err, sizeof(err)) < 0) {
		fprintf(stderr, "decky-smtpd: %s\n", err);
		return 2;
	}
	for (a = 1; a < argc; a++)
		if (strcmp(argv[a], "--check-persona") != 0 && argv[a] != path && option(argv[a]) < 0)
			return 2;
	if (path != NULL && persona_set(&pc, PS_OPTION, "persona", path, err, sizeof(err)) < 0)
		pc.persona = (char *)path;
	if (pc.auth_weak_file != NULL) {
		struct cred *weak;
		size_t nweak;

		if (persona_weak(pc.auth_weak_file, &weak, &nweak, err, sizeof(err)) < 0) {
			fprintf(stderr, "decky-smtpd: %s\n", err);
			return 2;
		}
	}
	derive_defaults();
	printf("# %s: valid; the effective settings (file, then environment, then options):\n",
	    file != NULL && *file != '\0' ? file : "no persona file");
	persona_print(&pc, stdout);
	persona_sources(&pc, sources, sizeof(sources));
	printf("# sources: %s\n", sources);
	if (nunknown > 0) {
		unknown_warning(err, sizeof(err));
		printf("# warning: %s\n", err);
		fprintf(stderr, "decky-smtpd: warning: %s\n", err);
	}
	return 0;
}

/*
 * configure - defaults, the persona file, the environment, the options.  A bad file
 * or variable is not fatal: it is remembered for an event and the session runs on
 * the defaults (an attacker is never refused for our mistake).  Bad options are.
 */
static int
configure(int argc, char **argv)
{
	const char *file = getenv("SMTP_PERSONA");
	char env_err[256];
	int a;

	persona_defaults(&pc);
	nunknown = persona_unknown(unknown_env, sizeof(unknown_env), unknown_hint, sizeof(unknown_hint));
	for (a = 1; a < argc; a++) {
		if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
			usage(stdout);
			exit(0);
		}
		if (strcmp(argv[a], "--version") == 0) {
			printf("decky-smtpd %s (%s)\n", VERSION, tls_library());
			exit(0);
		}
		if (strcmp(argv[a], "--make-persona") == 0) {
			if (a + 1 >= argc || makepersona(argv[a + 1], stdout) < 0) {
				fprintf(stderr, "decky-smtpd: --make-persona SEED: 1 to %d bytes of seed\n",
				    MAKEPERSONA_SEED_MAX);
				exit(2);
			}
			exit(fflush(stdout) == 0 ? 0 : 1);
		}
		if (strncmp(argv[a], "--persona=", 10) == 0)
			file = argv[a] + 10;
		if (strcmp(argv[a], "--make-cert") == 0)
			make_cert = a;
	}
	for (a = 1; a < argc; a++)
		if (strcmp(argv[a], "--check-persona") == 0)
			/* FILE, unless what follows is an option or nothing */
			exit(check_persona(a + 1 < argc && strncmp(argv[a + 1], "--", 2) != 0 ?
			    argv[a + 1] : NULL, file, argc, argv));
	if (file != NULL && *file != '\0' &&
	    persona_file(&pc, file, persona_err, sizeof(persona_err)) < 0) {
		persona_free(&pc);
		persona_defaults(&pc);
	}
	if (persona_env(&pc, env_err, sizeof(env_err)) < 0 && persona_err[0] == '\0')
		snprintf(persona_err, sizeof(persona_err), "%s", env_err);
	for (a = 1; a < argc; a++)
		if (a != make_cert && option(argv[a]) < 0)
			return -1;
	return 0;
}

/* --- the process around the session -------------------------------------------- */

static struct sink_peer peer;
static struct sink sink = { .json_fd = -1, .fallback_fd = -1, .peer = &peer };
static struct spool spool;
static struct flood flood;	/* repetitive events coalesced before the sink */
static unsigned long long paced_ms;	/* how long pace() held the session back */

static void sleep_ms(unsigned);
static struct session *session;
static int timeout_ms;
static struct timespec deadline;	/* the session's wall time ends here */
static int closing;			/* sending the last words: the deadline is past */
static unsigned long long received;	/* bytes read from the client */
static volatile sig_atomic_t stopping;	/* SIGTERM: end the session at the next wait */
static int tls_on;			/* after STARTTLS: all I/O goes through tls.c */

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

	snprintf(buf, sizeof(buf), "%s", pc.log);
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
	if (pc.fallback_log == NULL && client_stderr) {
		snprintf(fallback, sizeof(fallback), "%s/events.json", pc.spool);
		mkdir(pc.spool, 0700);
		pc.fallback_log = fallback;
	}
	if (pc.fallback_log != NULL) {
		struct stat st;

		sink.fallback_fd = open_log(pc.fallback_log);
		/* bounded: a session adds at most its own events past FALLBACK_MAX */
		if (sink.fallback_fd >= 0 && fstat(sink.fallback_fd, &st) == 0 &&
		    (unsigned long long)st.st_size >= FALLBACK_MAX) {
			close(sink.fallback_fd);
			sink.fallback_fd = -1;
		}
	} else
		sink.fallback_fd = 2;
	return 0;
}

/* add - one more field on an event, if it has room */
static void
add(struct event *e, const char *name, const char *val)
{
	if (e->nfield < EVENT_MAX_FIELDS && val[0] != '\0') {
		e->field[e->nfield].name = name;
		e->field[e->nfield].val = val;
		e->field[e->nfield].len = strlen(val);
		e->nfield++;
	}
}

/*
 * pace - the per-session event budget's second half: a session logs event-burst
 * events at once, then event-rate a second (a token bucket).  Past it the session
 * waits before it goes on, so that however it floods with events that are never
 * coalesced (mail_from, rcpt_to, message_*, auth_attempt), it stays under
 * journald's rate limit and no event is dropped.
 */
static void
pace(void)
{
	static struct timespec last;
	static long long milli = -1;	/* tokens, in thousandths */
	long long cap = (long long)pc.event_burst * 1000, ms;
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (milli < 0)
		milli = cap;
	else
		milli += ((now.tv_sec - last.tv_sec) * 1000LL +
		    (now.tv_nsec - last.tv_nsec) / 1000000) * (long long)pc.event_rate;
	if (milli > cap)
		milli = cap;
	last = now;
	if (milli < 1000) {
		ms = (1000 - milli + (long long)pc.event_rate - 1) / (long long)pc.event_rate;
		paced_ms += (unsigned long long)ms;
		sleep_ms((unsigned)ms);
		clock_gettime(CLOCK_MONOTONIC, &last);
		milli = 1000;
	}
	milli -= 1000;
}

/* paced_send - the flood budget's way to the sink */
static void
paced_send(void *ctx, const struct event *ev)
{
	pace();
	sink_event(ctx, ev);
}

/* on_event - the session's events, with the shell's part added, through the flood budget */
static void
on_event(void *ctx, const struct event *ev)
{
	static char coalesced[24], deferred[24], lost[24], paced[24], stored[24];
	struct event e = *ev;

	(void)ctx;
	switch (ev->type) {
	case EV_MESSAGE:
	case EV_PARTIAL:
		/* 0 with no SPOOL_FILE: nothing of the message could be kept */
		snprintf(stored, sizeof(stored), "%llu", spool.stored);
		add(&e, "STORED_BYTES", stored);
		add(&e, "SPOOL_FILE", spool.path);
		add(&e, "META_FILE", spool.meta);
		add(&e, "SHA256", spool.sha256);
		paced_send(&sink, &e);
		break;
	case EV_DISCONNECT:
		/* the summaries first; then what became of the session's events */
		flood_flush(&flood);
		snprintf(coalesced, sizeof(coalesced), "%llu", flood.coalesced);
		snprintf(deferred, sizeof(deferred), "%u", sink.deferred);
		snprintf(lost, sizeof(lost), "%u", sink.lost);
		if (flood.coalesced > 0)
			add(&e, "EVENTS_COALESCED", coalesced);
		if (sink.deferred > 0)
			add(&e, "EVENTS_DEFERRED", deferred);
		if (sink.lost > 0)
			add(&e, "EVENTS_LOST", lost);
		if (paced_ms > 0) {
			snprintf(paced, sizeof(paced), "%llu", paced_ms);
			add(&e, "EVENTS_PACED_MS", paced);
		}
		sink_event(&sink, &e);	/* the last word is never held back */
		break;
	default:
		flood_event(&flood, ev);
	}
}

/* shell_event - an event of the process's own (connect, persona_error) */
static void
shell_event(enum event_type type, const char *name, const char *val)
{
	struct event ev = { .type = type, .priority = type == EV_PERSONA_ERROR ? 3 : 6 };

	if (name != NULL)
		add(&ev, name, val);
	sink_event(&sink, &ev);
}

/*
 * connect_events - connect, with where the settings came from and the SMTP_
 * variables that are none (a setting that did not arrive shows as a default);
 * then a persona_error for a bad file or variable, and a warning for unknown ones
 */
static void
connect_events(void)
{
	static char sources[PERSONA_SOURCES_MAX], warning[PERSONA_UNKNOWN_MAX + 128];
	struct event ev = { .type = EV_CONNECT, .priority = 6 };

	persona_sources(&pc, sources, sizeof(sources));
	add(&ev, "PERSONA_SOURCES", sources);
	add(&ev, "PERSONA_UNKNOWN", unknown_env);
	sink_event(&sink, &ev);
	if (persona_err[0] != '\0')
		shell_event(EV_PERSONA_ERROR, "ERROR", persona_err);
	if (nunknown > 0) {
		struct event w = { .type = EV_PERSONA_ERROR, .priority = 4 };

		unknown_warning(warning, sizeof(warning));
		add(&w, "ERROR", warning);
		sink_event(&sink, &w);
	}
}

/* The line reader: a fixed buffer; lines longer than SESSION_LINE_MAX come in pieces. */
static char in[IN_BUF];
static size_t in_start, in_end;

static void finish(enum session_end);
static int send_replies(void);

/*
 * wait_fd - poll one fd within the idle timeout and the session's wall time: 0 when
 * it is ready, else the end it met (END_TIMEOUT, END_SESSION_TIME).
 */
static int
wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	struct timespec now;
	long long left;
	int r;

	do {
		if (stopping)
			finish(END_SIGNAL);
		clock_gettime(CLOCK_MONOTONIC, &now);
		left = (deadline.tv_sec - now.tv_sec) * 1000LL +
		    (deadline.tv_nsec - now.tv_nsec) / 1000000;
		if (closing)
			left = CLOSING_MS;	/* the last words get a short grace */
		if (left <= 0)
			return END_SESSION_TIME;
		r = poll(&p, 1, left < timeout_ms ? (int)left : timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r == 0)
		return left < timeout_ms ? END_SESSION_TIME : END_TIMEOUT;
	return 0;
}

/* send_out - write all of buf within the idle timeout; 0, or the end it met */
static int
send_out(const char *buf, size_t len)
{
	size_t off = 0;
	int end, fd = 1;
	short ev = POLLOUT;

	while (off < len) {
		ssize_t w;

		if ((end = wait_fd(fd, ev)) != 0)
			return end;
		fd = 1, ev = POLLOUT;
		w = tls_on ? tls_write(buf + off, len - off) : write(1, buf + off, len - off);
		if (tls_on && w == TLS_WANT_READ) {
			fd = 0, ev = POLLIN;
			continue;
		}
		if ((tls_on && w == TLS_WANT_WRITE) || (!tls_on && w < 0 && (errno == EINTR || errno == EAGAIN)))
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
	if (ms == 0)
		return;
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * keep_pending - what the client sent that no line end or chunk completed when a
 * limit struck: handed to the session as an unterminated piece, as at EOF, so that
 * the event or the partial message keeps it
 */
static void
keep_pending(void)
{
	while (in_end > in_start) {
		size_t avail = in_end - in_start, want = session_want_bytes(session), n;

		if (want > 0) {
			n = avail < want ? avail : want;
			session_bytes(session, in + in_start, n);
		} else {
			n = avail < SESSION_LINE_MAX ? avail : SESSION_LINE_MAX;
			session_line(session, in + in_start, n, LE_NONE);
		}
		in_start += n;
	}
}

/* finish - end the session: its last words (a 421) go out if they can, then exit */
static void
finish(enum session_end why)
{
	stopping = 0;
	closing = 1;
	if (why == END_TIMEOUT || why == END_SESSION_TIME || why == END_SESSION_BYTES ||
	    why == END_SIGNAL)
		keep_pending();
	session_end(session, why);
	if (why != END_WRITE && why != END_SIGNAL)
		send_replies();
	if (tls_on)
		tls_stop();
	exit(0);
}

/* send_replies - the pending replies, each error sleep before the line it delays */
static int
send_replies(void)
{
	const struct session_delay *d;
	size_t len, n = session_delays(session, &d), i, sent = 0;
	const char *out = session_output(session, &len);
	int end = 0;

	for (i = 0; i < n && end == 0; i++) {
		sleep_ms(d[i].ms);
		end = send_out(out + sent, d[i].end - sent);
		sent = d[i].end;
	}
	if (end == 0)
		end = send_out(out + sent, len - sent);
	session_output_done(session);
	return end;
}

/* flush - send the pending replies; a client that cannot take them ends the session */
static void
flush(void)
{
	int end = send_replies();

	if (end != 0)
		finish((enum session_end)end);
}

/* flush_if_due - see session_flush_due() */
static void
flush_if_due(void)
{
	if (session_flush_due(session))
		flush();
}

/* fill - read more input, flushing replies first (that is all pipelining needs) */
static int
fill(void)
{
	ssize_t r;
	int end, fd = 0;
	short ev = POLLIN;

	if (in_start > 0) {
		memmove(in, in + in_start, in_end - in_start);
		in_end -= in_start;
		in_start = 0;
	}
	flush();
	for (;;) {
		/* TLS may hold decrypted bytes already: poll only when it holds none */
		if (!(tls_on && tls_pending() > 0) && (end = wait_fd(fd, ev)) != 0)
			finish((enum session_end)end);
		fd = 0, ev = POLLIN;
		r = tls_on ? tls_read(in + in_end, sizeof(in) - in_end) : read(0, in + in_end, sizeof(in) - in_end);
		if (tls_on && r == TLS_WANT_WRITE)
			fd = 1, ev = POLLOUT;
		if ((tls_on && (r == TLS_WANT_READ || r == TLS_WANT_WRITE)) ||
		    (!tls_on && r < 0 && (errno == EINTR || errno == EAGAIN)))
			continue;
		if (r < 0)
			return -1;
		in_end += (size_t)r;
		if ((received += (unsigned long long)r) > pc.session_bytes)
			finish(END_SESSION_BYTES);
		return r > 0;
	}
}

/* tls_ready - at STARTTLS: can TLS start?  (session_ops; the context is made once) */
static int
tls_ready(void *ctx)
{
	char err[512];

	(void)ctx;
	if (tls_init(pc.tls_cert, pc.tls_key, pc.hostname, pc.tls_ticket_period, err, sizeof(err)) == 0)
		return 0;
	shell_event(EV_PERSONA_ERROR, "ERROR", err);
	return -1;
}

/*
 * starttls - after "220 2.0.0 Ready to start TLS": what the client pipelined behind
 * STARTTLS is dropped (kept only in the event), the handshake runs within the idle
 * timeout, and the session goes on through TLS, or ends if the handshake failed.
 */
static void
starttls(void)
{
	static char dropped[1024];
	struct tls_info ti = { 0 };
	const struct fingerprint *fp;
	size_t n = in_end - in_start;
	int r = TLS_FAIL, end = 0;

	flush();
	if (n > sizeof(dropped))
		n = sizeof(dropped);
	memcpy(dropped, in + in_start, n);
	ti.discarded = (struct bytes){ dropped, n };
	in_start = in_end = 0;
	fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
	fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
	if (tls_start(0, 1) == 0) {
		while ((r = tls_accept()) == TLS_WANT_READ || r == TLS_WANT_WRITE)
			if ((end = r == TLS_WANT_READ ? wait_fd(0, POLLIN) : wait_fd(1, POLLOUT)) != 0)
				break;
	}
	ti.ok = r == 1;
	ti.version = (struct bytes){ tls_version(), strlen(tls_version()) };
	ti.cipher = (struct bytes){ tls_cipher(), strlen(tls_cipher()) };
	if (end != 0)
		ti.error = (struct bytes){ "timeout", 7 };
	else if (!ti.ok)
		ti.error = (struct bytes){ tls_error(), strlen(tls_error()) };
	if ((fp = tls_hello()) != NULL) {
		ti.sni = (struct bytes){ fp->sni, fp->sni_len };
		ti.alpn = (struct bytes){ fp->alpn, fp->alpn_len };
		ti.ja3 = (struct bytes){ fp->ja3, strlen(fp->ja3) };
		ti.ja3_hash = (struct bytes){ fp->ja3_hash, strlen(fp->ja3_hash) };
		ti.ja4 = (struct bytes){ fp->ja4, strlen(fp->ja4) };
		ti.ja4_r = (struct bytes){ fp->ja4_r, strlen(fp->ja4_r) };
	}
	tls_on = peer.tls = ti.ok;
	peer.tls_version = tls_version();
	peer.tls_cipher = tls_cipher();
	peer.ja3_hash = fp != NULL ? fp->ja3_hash : "";
	peer.ja4 = fp != NULL ? fp->ja4 : "";
	session_tls(session, &ti);
	if (ti.ok)
		return;
	/* nothing can be said in the middle of a handshake: Postfix just hangs up */
	closing = 1;
	session_end(session, end != 0 ? (enum session_end)end : END_TLS);
	exit(0);
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
				flush_if_due();
				continue;
			}
		} else {
			char *line = in + in_start;
			size_t scan = avail < SESSION_LINE_MAX + 1 ? avail : SESSION_LINE_MAX + 1;
			char *nl = memchr(line, '\n', scan);
			/*
			 * Postfix reads a line of up to line_length_limit bytes, its LF
			 * included; one more is taken when the last is a CR and an LF
			 * follows (smtp_get's repair of a cut CRLF).
			 */
			int cut_cr = avail >= SESSION_LINE_MAX && line[SESSION_LINE_MAX - 1] == '\r';

			if (nl == line + SESSION_LINE_MAX && !cut_cr)
				nl = NULL;
			if (nl != NULL || avail > SESSION_LINE_MAX ||
			    (avail == SESSION_LINE_MAX && !cut_cr)) {
				size_t len = nl ? (size_t)(nl - line) : SESSION_LINE_MAX;
				enum line_end end = LE_NONE;

				if (nl != NULL) {
					in_start += len + 1;
					end = LE_LF;
					if (len > 0 && line[len - 1] == '\r')
						len--, end = LE_CRLF;
				} else {
					in_start += len;
				}
				switch (session_line(session, line, len, end)) {
				case SN_CLOSE:
					closing = 1;
					flush();
					if (tls_on)
						tls_stop();
					exit(0);
				case SN_STARTTLS:
					starttls();
					continue;
				case SN_CONTINUE:
					break;
				}
				flush_if_due();
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

/* random_below - a random number in [0, n), for the greeting delay */
static unsigned long long
random_below(unsigned long long n)
{
	unsigned long long r = 0;

	if (n == 0 || getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		return 0;
	return r % n;
}

/* greeting_delay - what a real Postfix spends on its peer-name lookup before 220 */
static void
greeting_delay(void)
{
	unsigned long long ms = pc.greeting_min +
	    random_below(pc.greeting_max - pc.greeting_min + 1);

	sleep_ms((unsigned)ms);
}

int
main(int argc, char **argv)
{
	static struct session_conf conf;
	static struct session_ops ops;
	static char challenge[128];
	static struct penalty penalty;
	struct cred *weak = NULL;
	struct sigaction sa = { .sa_handler = on_term };

	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);	/* past RLIMIT_FSIZE a write fails (EFBIG): a store error */
	sigaction(SIGTERM, &sa, NULL);	/* no SA_RESTART: the wait returns EINTR */
	quiet_stderr();
	if (configure(argc, argv) < 0)
		return 2;
	derive_defaults();
	if (make_cert) {
		char err[512];

		if (tls_make_cert(pc.tls_cert, pc.tls_key, pc.hostname, err, sizeof(err)) < 0) {
			fprintf(stderr, "decky-smtpd: %s\n", err);
			return 1;
		}
		printf("%s\n%s\n", pc.tls_key, pc.tls_cert);
		return 0;
	}
	if (setup_sinks() < 0)
		return 2;
	timeout_ms = (int)pc.timeout * 1000;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += (time_t)pc.session_time;
	conf.hostname = pc.hostname;
	conf.banner = pc.banner;
	conf.ehlo_keywords = pc.ehlo_keywords;
	conf.auth_mechs = pc.auth_mechanisms;
	conf.auth_policy = (enum auth_policy)pc.auth_policy;
	conf.auth_succeed_after = (unsigned)pc.auth_succeed_after;
	if (pc.auth_weak_file != NULL && persona_err[0] == '\0' &&
	    persona_weak(pc.auth_weak_file, &weak, &conf.nweak, persona_err, sizeof(persona_err)) < 0)
		conf.nweak = 0;	/* the shipped list and user = password still hold */
	conf.weak = weak;
	conf.relay_open = pc.relay_open;
	conf.max_size = (unsigned long)pc.size_limit;
	conf.max_rcpt = (unsigned)pc.recipient_limit;
	conf.soft_errors = (unsigned)pc.soft_errors;
	conf.hard_errors = (unsigned)pc.hard_errors;
	conf.error_sleep_ms = (unsigned)pc.error_sleep;
	/* Dovecot's CRAM-MD5 challenge: <random.time@host>, made only if it is offered */
	if (strcasestr(pc.auth_mechanisms, "CRAM-MD5") != NULL)
		snprintf(challenge, sizeof(challenge), "<%llu.%lld@%s>", random_below(~0ULL),
		    (long long)time(NULL), pc.hostname);
	conf.cram_challenge = challenge;

	peer.hostname = pc.hostname;
	find_peer();
	new_session_id();
	spool_init(&spool, pc.spool, pc.spool_budget, pc.size_limit, &peer);
	conf.local_addr = strcmp(peer.dst, "unknown") != 0 ? peer.dst : NULL;

	flood_init(&flood, paced_send, &sink);
	ops.ctx = &sink;
	ops.event = on_event;
	ops.msg_ctx = &spool;
	ops.msg_room = spool_room;
	ops.msg_open = spool_open;
	ops.msg_write = spool_write;
	ops.msg_close = spool_close;
	ops.tls_ready = tls_ready;
	/* Dovecot's timing, with its per-address penalties shared through the spool */
	penalty_init(&penalty, pc.spool, peer.src, (unsigned)pc.auth_failure_delay);
	ops.auth_ctx = &penalty;
	ops.auth_wait = penalty_wait;
	if ((session = session_new(&conf, &ops)) == NULL)
		return 1;

	connect_events();
	greeting_delay();
	session_greet(session);
	run();
	return 0;
}
