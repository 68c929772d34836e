/*
 * sink.c - the event sink: one journald entry per event through sd_journal_sendv(),
 * and the same event as one JSON line (yajl), written with one write(2).
 *
 * Client bytes reach journald only as length-delimited fields and JSON only as yajl
 * strings, so they can never break a field or a line.  An event that journald
 * refuses goes to the fallback JSON fd: it is never dropped silently.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define SD_JOURNAL_SUPPRESS_LOCATION	/* CODE_FILE= and friends would only name sink.c */
#include <systemd/sd-journal.h>
#include <yajl/yajl_gen.h>

#include "b64.h"
#include "esc.h"
#include "sink.h"

#define MESSAGE_MAX	1024	/* the readable MESSAGE line */
#define MESSAGE_VALUE_MAX 200	/* bytes of one value shown in it */
#define NFIELDS		(EVENT_MAX_FIELDS + 12)
#define JOURNAL_SOCKET	"/run/systemd/journal/socket"

static const struct {
	const char *name;
	const char *message_id;		/* a fixed 128-bit id, for the catalog */
} types[EV_COUNT] = {
	[EV_CONNECT] = { "connect", "f24172bcc4674828bdbf35b458c067eb" },
	[EV_EHLO] = { "ehlo", "51a545cc9da846f499be783dd8b55582" },
	[EV_AUTH] = { "auth_attempt", "b21d8c7d407d48e780707f5659e97c53" },
	[EV_MAIL] = { "mail_from", "d602e8afd3e6402db9428e6dfd12fee6" },
	[EV_RCPT] = { "rcpt_to", "26e3155360b247c885add21a1534dc95" },
	[EV_MESSAGE] = { "message_accepted", "53a9341520d648aeb27aa1eb8fae08cb" },
	[EV_PARTIAL] = { "message_partial", "8a6d271f433c4e3eb55e021fe0dd2701" },
	[EV_COMMAND] = { "command", "a90c8fc7beb942a3aca5bd387c713f10" },
	[EV_DISCONNECT] = { "disconnect", "2bb700e04a4e4ba292ae74955ba5419e" },
	[EV_PERSONA_ERROR] = { "persona_error", "6bb765b2b2714caa9ebd97ef885b7530" },
	[EV_TLS] = { "tls", "85c0a6d5198f46d78eb5adccfbacb4f9" },
	[EV_REPEAT] = { "repeat_summary", "ee27e1e5025049cdba9de2c3675c14e8" },
};

const char *
sink_event_name(enum event_type t)
{
	return types[t].name;
}

/* message - the one readable line: "<event> from <src>: FIELD=value ...", escaped */
static size_t
message(char *buf, size_t size, const char *type, const struct field *field, size_t nfield,
    const struct sink_peer *peer)
{
	size_t n, i;
	int w;

	w = snprintf(buf, size, "%s from %s", type, peer->src);
	n = w < 0 ? 0 : (size_t)w >= size ? size - 1 : (size_t)w;
	for (i = 0; i < nfield && n + 16 < size; i++) {
		const struct field *f = &field[i];

		w = snprintf(buf + n, size - n, " %s=", f->name);
		if (w < 0 || (size_t)w >= size - n) {
			n = size - 1;	/* a long name near the end: the line stops here */
			break;
		}
		n += (size_t)w;
		n += esc_buf(buf + n, size - n, f->val, f->len, MESSAGE_VALUE_MAX);
	}
	buf[n] = '\0';
	return n;
}

/* all_fields - the event's fields after the common ones, as one flat list */
static size_t
all_fields(struct field *out, const char *type, const char *message_id,
    const struct field *field, size_t nfield, const struct sink_peer *p,
    const char *msg, size_t msglen, const char *prio)
{
	size_t n = 0, i;

#define ADD(nm, v, l) (out[n].name = (nm), out[n].val = (v), out[n].len = (l), n++)
	ADD("EVENT_TYPE", type, strlen(type));
	ADD("MESSAGE", msg, msglen);
	ADD("PRIORITY", prio, 1);
	ADD("SYSLOG_IDENTIFIER", "decky-smtpd", 11);
	ADD("MESSAGE_ID", message_id, 32);
	ADD("SESSION_ID", p->session_id, strlen(p->session_id));
	ADD("SRC", p->src, strlen(p->src));
	ADD("SRC_PORT", p->src_port, strlen(p->src_port));
	ADD("DST", p->dst, strlen(p->dst));
	ADD("DST_PORT", p->dst_port, strlen(p->dst_port));
	ADD("PERSONA_HOSTNAME", p->hostname, strlen(p->hostname));
	if (p->tls)
		ADD("TLS", "1", 1);
	for (i = 0; i < nfield; i++)
		ADD(field[i].name, field[i].val, field[i].len);
#undef ADD
	for (i = 0; i < n; i++)
		if (out[i].len > EVENT_VALUE_MAX)
			out[i].len = EVENT_VALUE_MAX;
	return n;
}

static int bounded_sendv(const struct iovec *, int);

/*
 * journal - one entry; each iovec "NAME=value" (sd_journal_sendv is binary-safe).
 * A session's events fit the static buffers; a larger one (sink_send) is allocated.
 */
static int
journal(const struct field *f, size_t n)
{
	static char sbuf[NFIELDS * (EVENT_VALUE_MAX + 32)];
	struct iovec siov[NFIELDS], *iov = siov;
	char *buf = sbuf;
	size_t i, used = 0, need = 0;
	int rc;

	for (i = 0; i < n; i++)
		need += strlen(f[i].name) + 1 + f[i].len;
	if (n > NFIELDS || need > sizeof(sbuf)) {
		if ((iov = calloc(n, sizeof(*iov))) == NULL ||
		    (buf = malloc(need)) == NULL) {
			free(iov);
			return -ENOMEM;
		}
	}
	for (i = 0; i < n; i++) {
		size_t nl = strlen(f[i].name);

		iov[i].iov_base = buf + used;
		memcpy(buf + used, f[i].name, nl);
		buf[used + nl] = '=';
		memcpy(buf + used + nl + 1, f[i].val, f[i].len);
		iov[i].iov_len = nl + 1 + f[i].len;
		used += iov[i].iov_len;
	}
	/* sd_journal_sendv() reports success when journald is missing (ENOENT): look first */
	rc = access(JOURNAL_SOCKET, W_OK) < 0 ? -1 : bounded_sendv(iov, (int)n);
	if (iov != siov) {
		free(iov);
		free(buf);
	}
	return rc;
}

static void
on_alarm(int sig)
{
	(void)sig;	/* only to interrupt a send that blocks */
}

/*
 * bounded_sendv - sd_journal_sendv() within SINK_JOURNAL_MS: a timer interrupts the
 * send that blocks (its sendmsg() returns EINTR, which sd_journal_sendv() returns).
 * SIGALRM is taken here, without SA_RESTART, unless the program handles it itself.
 */
static int
bounded_sendv(const struct iovec *iov, int n)
{
	static int armed;
	struct itimerval t = { .it_value = { 0, SINK_JOURNAL_MS * 1000L } }, off = { 0 };
	int rc;

	if (!armed) {
		struct sigaction sa = { .sa_handler = on_alarm }, old;

		if (sigaction(SIGALRM, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
			sigaction(SIGALRM, &sa, NULL);
		armed = 1;
	}
	setitimer(ITIMER_REAL, &t, NULL);
	rc = sd_journal_sendv(iov, n);
	setitimer(ITIMER_REAL, &off, NULL);
	return rc;
}

void
sink_json_string(yajl_gen g, const char *key, const char *val, size_t len)
{
	static char b64[B64_ENCODED_LEN(EVENT_VALUE_MAX) + 1];
	char lower[64], kb[80];
	size_t i, kl = strlen(key);

	if (kl >= sizeof(lower))
		kl = sizeof(lower) - 1;
	for (i = 0; i < kl; i++)
		lower[i] = (char)(key[i] >= 'A' && key[i] <= 'Z' ? key[i] + 32 : key[i]);
	lower[kl] = '\0';
	yajl_gen_string(g, (const unsigned char *)lower, kl);
	if (yajl_gen_string(g, (const unsigned char *)val, len) == yajl_gen_status_ok)
		return;
	/* not UTF-8: a readable stand-in, and the exact bytes beside it */
	{
		char safe[EVENT_VALUE_MAX];

		for (i = 0; i < len; i++)
			safe[i] = (unsigned char)val[i] < 0x80 ? val[i] : '?';
		yajl_gen_string(g, (const unsigned char *)safe, len);
	}
	snprintf(kb, sizeof(kb), "%s_base64", lower);
	yajl_gen_string(g, (const unsigned char *)kb, strlen(kb));
	i = b64_encode((const unsigned char *)val, len, b64);
	yajl_gen_string(g, (const unsigned char *)b64, i);
}

void
sink_timestamp(char *buf, size_t size, const struct timespec *ts)
{
	struct tm tm;
	size_t n;

	gmtime_r(&ts->tv_sec, &tm);
	n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, size - n, ".%06ldZ", ts->tv_nsec / 1000);
}

/* array - "key": [values...]; a value that is not UTF-8 gets the stand-in alone */
static void
array(yajl_gen g, const struct field *f, size_t n)
{
	char lower[64];
	size_t i, kl = strlen(f[0].name);

	if (kl >= sizeof(lower))
		kl = sizeof(lower) - 1;
	for (i = 0; i < kl; i++)
		lower[i] = (char)(f[0].name[i] >= 'A' && f[0].name[i] <= 'Z' ?
		    f[0].name[i] + 32 : f[0].name[i]);
	yajl_gen_string(g, (const unsigned char *)lower, kl);
	yajl_gen_array_open(g);
	for (i = 0; i < n; i++) {
		char safe[EVENT_VALUE_MAX];
		size_t k, len = f[i].len;

		if (yajl_gen_string(g, (const unsigned char *)f[i].val, len) ==
		    yajl_gen_status_ok)
			continue;
		for (k = 0; k < len; k++)
			safe[k] = (unsigned char)f[i].val[k] < 0x80 ? f[i].val[k] : '?';
		yajl_gen_string(g, (const unsigned char *)safe, len);
	}
	yajl_gen_array_close(g);
}

/* json - one JSON line, written with one writev(2); with arrays, a run of fields of
 * one name is one key with an array of their values */
static int
json(int fd, const struct field *f, size_t n, int arrays)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	const unsigned char *out;
	struct timespec ts;
	char stamp[40];
	size_t len, i;
	ssize_t w;
	int rc = 0;

	if (g == NULL)
		return -1;
	yajl_gen_config(g, yajl_gen_validate_utf8, 1);
	clock_gettime(CLOCK_REALTIME, &ts);
	sink_timestamp(stamp, sizeof(stamp), &ts);
	yajl_gen_map_open(g);
	sink_json_string(g, f[0].name, f[0].val, f[0].len);	/* event_type first */
	sink_json_string(g, "TIMESTAMP", stamp, strlen(stamp));
	for (i = 1; i < n; i++) {
		size_t k = i;

		while (arrays && k + 1 < n && strcmp(f[k + 1].name, f[i].name) == 0)
			k++;
		if (k == i) {
			sink_json_string(g, f[i].name, f[i].val, f[i].len);
			continue;
		}
		array(g, f + i, k - i + 1);
		i = k;
	}
	yajl_gen_map_close(g);
	yajl_gen_get_buf(g, &out, &len);
	/* the newline goes in the same writev: one write, so O_APPEND lines never mix */
	{
		struct iovec iov[2] = {
			{ .iov_base = (void *)out, .iov_len = len },
			{ .iov_base = "\n", .iov_len = 1 },
		};

		do
			w = writev(fd, iov, 2);
		while (w < 0 && errno == EINTR);
		rc = w == (ssize_t)(len + 1) ? 0 : -1;
	}
	yajl_gen_free(g);
	return rc;
}

/* deliver - the event's fields to journald, its fallback and the JSON sink; 0 if one took it */
static int
deliver(struct sink *sk, const struct field *f, size_t n, int arrays)
{
	int delivered = 0;

	if (sk->journal) {
		int rc = sk->stalled ? -EAGAIN : journal(f, n);

		if (rc == -EINTR || rc == -EAGAIN)
			sk->stalled = 1;	/* blocked past the bound (or a signal came) */
		if (rc >= 0)
			delivered = 1;
		else if (sk->fallback_fd >= 0 && sk->fallback_fd != sk->json_fd &&
		    json(sk->fallback_fd, f, n, arrays) == 0)
			delivered = 1;	/* (the JSON sink below writes it once if it is the same) */
		if (rc < 0)
			sk->deferred++;
	}
	if (sk->json_fd >= 0 && json(sk->json_fd, f, n, arrays) == 0)
		delivered = 1;
	if (!delivered)
		sk->lost++;
	return delivered ? 0 : -1;
}

void
sink_event(void *ctx, const struct event *ev)
{
	struct sink *sk = ctx;
	struct field f[NFIELDS];
	char msg[MESSAGE_MAX], prio[2] = { (char)('0' + ev->priority), '\0' };
	const char *type = types[ev->type].name;
	size_t n, mlen;

	mlen = message(msg, sizeof(msg), type, ev->field, ev->nfield, sk->peer);
	n = all_fields(f, type, types[ev->type].message_id, ev->field, ev->nfield, sk->peer,
	    msg, mlen, prio);
	(void)deliver(sk, f, n, 0);	/* a loss is counted in sk->lost and told at disconnect */
}

int
sink_send(struct sink *sk, const char *type, const char *message_id, int priority,
    const struct field *field, size_t nfield)
{
	char msg[MESSAGE_MAX], prio[2] = { (char)('0' + priority), '\0' };
	struct field *f;
	size_t n, mlen;
	int rc;

	if ((f = calloc(nfield + NFIELDS - EVENT_MAX_FIELDS, sizeof(*f))) == NULL) {
		sk->lost++;
		return -1;
	}
	mlen = message(msg, sizeof(msg), type, field, nfield, sk->peer);
	n = all_fields(f, type, message_id, field, nfield, sk->peer, msg, mlen, prio);
	rc = deliver(sk, f, n, 1);
	free(f);
	return rc;
}
