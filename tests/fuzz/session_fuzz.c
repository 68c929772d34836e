/*
 * session_fuzz.c - a libFuzzer target over the session API (session.h).
 *
 * The input is what a client sends, byte for byte, and it reaches the session the way
 * smtpd.c's run() hands it over: a 16 KB reader; lines cut at '\n' and at most
 * LINE_MAX_LEN long (a longer run goes over in LE_NONE pieces); CRLF told from a bare
 * LF; BDAT chunks as raw bytes while session_want_bytes() is non-zero; the replies
 * flushed (here: checked, then dropped) before each read, as fill() does, and after a
 * call when flush_if_due() would; a partial last line at EOF, then session_end(END_EOF).
 * Every broken promise of the API is an abort(), which libFuzzer reports like a
 * sanitizer finding.
 *
 * An input whose last byte is 0x80 or above does not send that byte: it is the fault
 * byte below, which makes the message store fail, shortens the reads and picks the
 * persona.  It keeps the seeds plain client transcripts.
 *
 * STARTTLS: when the session asks for the handshake (SN_STARTTLS), the harness drops
 * what was buffered, as smtpd.c does, and takes the handshake from the input: one
 * byte says whether it succeeds (even) or fails (odd), then a made-up ClientHello
 * (see hello()) goes through ja_fingerprint() into session_tls(), and the rest of
 * the input is the client speaking inside TLS.  Nothing here reads the
 * world (no clock, files or environment): the same input always runs the same way.
 * The events pass through the flood budget (flood.c) on their way to the checks, as
 * smtpd.c sends them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../flood.h"
#include "../../ja.h"
#include "../../session.h"
#include "../../utf8.h"

/* The shell's reader, as in smtpd.c (keep in step with it). */
#define LINE_MAX_LEN	SESSION_LINE_MAX
#define IN_BUF		65536		/* smtpd.c's reader */
#define SMALL_READ	7		/* the read size when F_SMALL_READS is set */

/* The fault byte: present when the last input byte is >= FAULT_MARK. */
#define FAULT_MARK	0x80
#define F_WRITE_AT	0x07		/* msg_write fails after this many writes of a
					 * message (7: never); MSG_FULL when odd */
#define F_OPEN		0x08		/* every odd msg_open fails */
#define F_CLOSE		0x10		/* closing an accepted message fails */
#define F_SMALL_READS	0x20		/* reads of SMALL_READ bytes: BDAT chunks in pieces */
#define F_STRICT	0x40		/* the other persona: see below */
#define F_NONE		F_WRITE_AT	/* no fault byte: nothing fails */

/*
 * The personas: small limits, so the fuzzer reaches them.  The open one is the
 * default's policy; the strict one (F_STRICT) refuses every credential, relays for
 * nobody, has its keywords in another order and error sleeps (never slept here).
 */
static const struct session_conf open_persona = {
	.hostname = "omega-decky",
	.banner = "omega-decky ESMTP Postfix (Debian/GNU)",
	.ehlo_keywords = "PIPELINING SIZE VRFY ETRN STARTTLS AUTH ENHANCEDSTATUSCODES 8BITMIME DSN "
	    "SMTPUTF8 CHUNKING",
	.auth_mechs = "PLAIN LOGIN CRAM-MD5",
	.auth_policy = AUTH_ACCEPT,
	.relay_open = 1,
	.cram_challenge = "<1896.697170952@omega-decky>",
	.max_size = 4096,
	.max_rcpt = 5,
	.soft_errors = 10,
	.hard_errors = 20,
	.error_sleep_ms = 0,
};

static const struct session_conf strict_persona = {
	.hostname = "mx1.example.org",
	.banner = "mx1.example.org ESMTP",
	.ehlo_keywords = "SIZE CHUNKING 8BITMIME PIPELINING AUTH",
	.auth_mechs = "CRAM-MD5 LOGIN PLAIN",
	.auth_policy = AUTH_WEAK,
	.auth_succeed_after = 3,
	.relay_open = 0,
	.cram_challenge = "<1.2@mx1.example.org>",
	.max_size = 4096,
	.max_rcpt = 5,
	.soft_errors = 10,
	.hard_errors = 20,
	.error_sleep_ms = 1000,
};

struct harness {
	/* the client */
	const uint8_t *data;
	size_t size, pos;
	size_t read_max;

	/* the shell's reader */
	char in[IN_BUF];
	size_t in_start, in_end;
	size_t out_seen;		/* output already checked since the last flush */
	int out_cont;			/* its last line is a continuation ("250-") */

	/* the message store */
	unsigned fault;
	int msg_open;
	int write_failed;		/* a write of the open message failed */
	int full;			/* a write said MSG_FULL: the budget is spent */
	unsigned nopen, nwrite;
	unsigned long stored;		/* bytes of the open message */

	/* the event sink */
	int disconnected;		/* a disconnect event came: nothing may follow */
	unsigned ndisconnect;
	volatile unsigned char sum;	/* what the event bytes add up to: read them all */

	const struct session_conf *conf;
	struct session *s;
};

static struct harness h;
static struct flood flood;	/* between the session and on_event, as in smtpd.c */

/* --- the ops ------------------------------------------------------------------------ */

/* on_event - read every byte of every field, as the journal and JSON sinks do */
static void
on_event(void *ctx, const struct event *ev)
{
	size_t i, k;

	if (ctx != &h || h.disconnected)
		abort();
	if ((unsigned)ev->type >= EV_COUNT || ev->nfield > EVENT_MAX_FIELDS ||
	    ev->priority < 0 || ev->priority > 7)
		abort();
	for (i = 0; i < ev->nfield; i++) {
		const struct field *f = &ev->field[i];

		if (f->name == NULL || f->name[0] == '\0' || (f->val == NULL && f->len > 0))
			abort();
		/* a field name becomes a journal field: upper case, digits, '_' */
		for (k = 0; f->name[k] != '\0'; k++)
			if (!((f->name[k] >= 'A' && f->name[k] <= 'Z') || f->name[k] == '_' ||
			    (k > 0 && f->name[k] >= '0' && f->name[k] <= '9')))
				abort();
		for (k = 0; k < f->len; k++)
			h.sum += (unsigned char)f->val[k];
	}
	if (ev->type == EV_DISCONNECT) {
		h.ndisconnect++;
		h.disconnected = 1;
	}
}

/* msg_open - a queue id, or the failure the fault byte asks for */
static int
msg_open(void *ctx, char *qid, size_t qidsize)
{
	if (ctx != &h || h.msg_open || qid == NULL || qidsize < 12)
		abort();	/* a second open would leak the first queue file */
	h.nopen++;
	if ((h.fault & F_OPEN) && h.nopen % 2 == 1)
		return -1;
	snprintf(qid, qidsize, "4F2A1%06X", h.nopen);
	h.msg_open = 1;
	h.write_failed = 0;
	h.nwrite = 0;
	h.stored = 0;
	return 0;
}

/* msg_write - keeps nothing: counts, reads every byte, fails as the fault byte says */
static int
msg_write(void *ctx, const char *buf, size_t len)
{
	unsigned at = h.fault & F_WRITE_AT;
	size_t i;

	if (ctx != &h || !h.msg_open || (buf == NULL && len > 0) || h.write_failed)
		abort();	/* nothing is written after a failure */
	for (i = 0; i < len; i++)
		h.sum += (unsigned char)buf[i];
	h.stored += len;
	if (at != 7 && h.nwrite++ >= at) {
		h.write_failed = 1;
		if (at % 2 == 1) {
			h.full = 1;
			return MSG_FULL;
		}
		return MSG_ERROR;
	}
	return 0;
}

/* check_bytes - a length-delimited piece of the sidecar: read it all */
static void
check_bytes(struct bytes b)
{
	size_t i;

	if (b.p == NULL && b.len > 0)
		abort();
	for (i = 0; i < b.len; i++)
		h.sum += (unsigned char)b.p[i];
}

/* msg_room - no room once a write has said MSG_FULL */
static int
msg_room(void *ctx)
{
	if (ctx != &h)
		abort();
	return !h.full;
}

/* msg_close - read the sidecar; an accepted message must be whole and within the limit */
static int
msg_close(void *ctx, const struct msg_info *info)
{
	if (ctx != &h || !h.msg_open || info == NULL)
		abort();
	h.msg_open = 0;
	check_bytes(info->helo);
	check_bytes(info->from);
	check_bytes(info->from_params);
	check_bytes(info->rcpts);
	check_bytes(info->auth_user);
	check_bytes(info->subject);
	check_bytes(info->hdr_from);
	check_bytes(info->hdr_message_id);
	if (!h.write_failed && info->body_bytes != h.stored)
		abort();	/* the count the sidecar gives is what was written */
	if (info->partial != NULL) {
		if (info->partial[0] == '\0')
			abort();
		return 0;
	}
	if (h.write_failed || info->nrcpt == 0 || info->body_bytes > h.conf->max_size)
		abort();	/* accepted, yet broken, empty-handed or too big */
	return (h.fault & F_CLOSE) ? -1 : 0;
}

/* tls_ready - the certificate is there, unless the fault byte's F_CLOSE says not */
static int
tls_ready(void *ctx)
{
	if (ctx != &h)
		abort();
	return (h.fault & F_CLOSE) ? -1 : 0;
}

/* to_flood - the session's events into the flood budget; at disconnect its summaries */
static void
to_flood(void *ctx, const struct event *ev)
{
	if (ctx != &h)
		abort();
	if (ev->type == EV_DISCONNECT) {
		flood_flush(&flood);
		on_event(ctx, ev);
		return;
	}
	flood_event(&flood, ev);
}

static const struct session_ops ops = {
	.ctx = &h,
	.event = to_flood,
	.msg_ctx = &h,
	.msg_room = msg_room,
	.msg_open = msg_open,
	.msg_write = msg_write,
	.msg_close = msg_close,
	.tls_ready = tls_ready,
};

/* --- the checks on the replies --------------------------------------------------------- */

/*
 * check_delays - the error sleeps: in order, each at the end of a reply line, none
 * when the persona has no error sleep
 */
static void
check_delays(const char *out, size_t len)
{
	const struct session_delay *d;
	size_t n = session_delays(h.s, &d), i, prev = 0;

	if (n > SESSION_DELAYS_MAX || (n > 0 && (d == NULL || h.conf->error_sleep_ms == 0)))
		abort();
	for (i = 0; i < n; i++) {
		if (d[i].end <= prev || d[i].end > len || out[d[i].end - 1] != '\n' ||
		    d[i].ms == 0 || d[i].ms % h.conf->error_sleep_ms != 0)
			abort();
		prev = d[i].end;
	}
}


/*
 * check_output - after every call: the call added less than SESSION_OUT_SLACK bytes,
 * and what it added is whole reply lines: "NNN" then ' ' or '-', text with no LF and
 * no NUL (a CR or another control byte may come back in an echo, as Postfix sends
 * it; 8-bit only as valid UTF-8), CRLF.  At a flush (last set) the final line of the
 * batch may not be a continuation.
 */
static void
check_output(int last)
{
	size_t len, i = h.out_seen;
	const char *out = session_output(h.s, &len);

	if (len < h.out_seen || len - h.out_seen >= SESSION_OUT_SLACK ||
	    len >= SESSION_OUT_MAX + SESSION_OUT_SLACK || (len > 0 && out == NULL))
		abort();
	check_delays(out, len);
	while (i < len) {
		const char *line = out + i;
		size_t n;

		if (len - i < 6 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
		    line[2] < '0' || line[2] > '9' || (line[3] != ' ' && line[3] != '-'))
			abort();
		for (n = 4; i + n < len && out[i + n] != '\n'; n++)
			if (out[i + n] == '\0')
				abort();	/* client bytes past a NUL Postfix never sees */
		if (i + n == len || out[i + n - 1] != '\r')
			abort();	/* every reply line ends in CRLF: no bare LF */
		n--;
		if (!utf8_valid((const unsigned char *)line + 4, n - 4))
			abort();	/* 8-bit client bytes cut or made up */
		i += n + 2;
		h.out_cont = line[3] == '-';
	}
	h.out_seen = len;
	if (last && h.out_cont)
		abort();	/* a multi-line reply cut off at a flush */
}

/* quiet - nothing is pending, no error sleep either */
static void
quiet(void)
{
	const struct session_delay *d;
	size_t len;

	session_output(h.s, &len);
	if (len != 0 || session_delays(h.s, &d) != 0)
		abort();
}

/* flush - what smtpd.c's flush() does, with the bytes checked instead of sent */
static void
flush(void)
{
	check_output(1);
	session_output_done(h.s);
	h.out_seen = 0;
	h.out_cont = 0;
	quiet();
}

/* --- the shell ------------------------------------------------------------------------ */

/*
 * after_call - the checks after each session_line() or session_bytes(), then
 * smtpd.c's flush_if_due(): replies wait for the next read (pipelining) unless an
 * error sleep is among them or they fill the session's buffer
 */
static void
after_call(void)
{
	check_output(0);
	if (session_flush_due(h.s))
		flush();
}

/* fill - flush, then read what the client sent (at most read_max); 1, or 0 at EOF */
static int
fill(void)
{
	size_t n = h.size - h.pos, room;

	if (h.in_start > 0) {
		memmove(h.in, h.in + h.in_start, h.in_end - h.in_start);
		h.in_end -= h.in_start;
		h.in_start = 0;
	}
	flush();
	room = sizeof(h.in) - h.in_end;
	if (room == 0)
		abort();	/* the reader would take a full buffer for EOF */
	if (n > room)
		n = room;
	if (n > h.read_max)
		n = h.read_max;
	memcpy(h.in + h.in_end, h.data + h.pos, n);
	h.pos += n;
	h.in_end += n;
	return n > 0;
}

/* take - up to n bytes of the client's input, past the reader's buffer */
static const uint8_t *
take(size_t *n)
{
	const uint8_t *p = h.data + h.pos;

	if (*n > h.size - h.pos)
		*n = h.size - h.pos;
	h.pos += *n;
	return p;
}

/*
 * hello - a ClientHello's parts from the input: a length byte, then within that
 * many bytes the legacy version (2), a cipher byte count (1) and the ciphers, an
 * extension count (1) and the types (2 each), then the bodies of SNI, ALPN, groups,
 * point formats, signature algorithms and versions, each after a length byte.
 * Every length may lie: ja.c gets exactly the bytes that are there.
 */
static int
hello(struct fingerprint *fp)
{
	const unsigned char **body[6];
	size_t *blen[6], n = 1, i, k, len;
	const uint8_t *p = take(&n), *q;
	int ext[128];
	struct hello hl = { 0 };

	body[0] = &hl.sni, blen[0] = &hl.sni_len;
	body[1] = &hl.alpn, blen[1] = &hl.alpn_len;
	body[2] = &hl.groups, blen[2] = &hl.groups_len;
	body[3] = &hl.formats, blen[3] = &hl.formats_len;
	body[4] = &hl.sigalgs, blen[4] = &hl.sigalgs_len;
	body[5] = &hl.versions, blen[5] = &hl.versions_len;
	if (n == 0)
		return 0;
	len = p[0];
	q = take(&len);
	/* the same bytes as a raw ClientHello message, for the extension order */
	if (ja_ext_types(q, len, ext, sizeof(ext) / sizeof(ext[0])) > sizeof(ext) / sizeof(ext[0]))
		abort();
	k = 0;
	if (len >= 2)
		hl.version = (unsigned)q[0] << 8 | q[1], k = 2;
	if (k < len) {
		n = q[k++];
		hl.ciphers = q + k;
		hl.ciphers_len = n < len - k ? n : len - k;
		k += hl.ciphers_len;
	}
	if (k < len) {
		n = q[k++];
		for (i = 0; i < n && i < sizeof(ext) / sizeof(ext[0]) && k + 2 <= len; i++, k += 2)
			ext[i] = q[k] << 8 | q[k + 1];
		hl.ext = ext;
		hl.next = i;
	}
	for (i = 0; i < 6 && k < len; i++) {
		n = q[k++];
		*body[i] = q + k;
		*blen[i] = n < len - k ? n : len - k;
		k += *blen[i];
	}
	return ja_fingerprint(&hl, fp) == 0;
}

static struct bytes
text(const char *s)
{
	return (struct bytes){ s, strlen(s) };
}

/*
 * starttls - smtpd.c's starttls(): the 220 goes out, what the client pipelined is
 * dropped, the handshake's outcome comes from the input.  0: go on inside TLS.
 */
static int
starttls(void)
{
	static struct fingerprint fp;
	struct tls_info ti = { 0 };
	size_t n = 1;
	const uint8_t *d;

	static const char ready[] = "220 2.0.0 Ready to start TLS\r\n";
	const char *out;

	check_output(0);
	out = session_output(h.s, &n);
	if (n < sizeof(ready) - 1 || memcmp(out + n - (sizeof(ready) - 1), ready, sizeof(ready) - 1) != 0)
		abort();	/* the handshake follows the 220, last in its batch */
	flush();
	ti.discarded = (struct bytes){ h.in + h.in_start, h.in_end - h.in_start };
	h.in_start = h.in_end = 0;
	n = 1;
	d = take(&n);
	ti.ok = n == 1 && d[0] % 2 == 0;
	if (hello(&fp)) {
		ti.sni = (struct bytes){ fp.sni, fp.sni_len };
		ti.alpn = (struct bytes){ fp.alpn, fp.alpn_len };
		ti.ja3 = text(fp.ja3);
		ti.ja3_hash = text(fp.ja3_hash);
		ti.ja4 = text(fp.ja4);
		ti.ja4_r = text(fp.ja4_r);
		if (strlen(fp.ja3_hash) != 32 || strlen(fp.ja4) < 36 || fp.ja4[0] != 't')
			abort();
	}
	if (ti.ok) {
		ti.version = text("TLSv1.3");
		ti.cipher = text("TLS_AES_256_GCM_SHA384");
	} else {
		ti.error = text("wrong version number");
	}
	session_tls(h.s, &ti);
	check_output(0);
	if (h.out_seen != 0 || h.disconnected)
		abort();	/* the handshake's outcome is logged, never answered */
	if (ti.ok)
		return 0;
	session_end(h.s, END_TLS);
	check_output(1);
	return -1;
}

/* run - smtpd.c's run(): lines (or BDAT bytes) to the session until it closes or EOF */
static void
run(void)
{
	for (;;) {
		size_t want = session_want_bytes(h.s), avail = h.in_end - h.in_start;

		if (want > 0) {
			size_t n = avail < want ? avail : want;

			if (n > 0) {
				session_bytes(h.s, h.in + h.in_start, n);
				h.in_start += n;
				if (session_want_bytes(h.s) != want - n)
					abort();	/* a chunk is exactly as long as it said */
				after_call();
				continue;
			}
		} else {
			size_t scan = avail < LINE_MAX_LEN ? avail : LINE_MAX_LEN;
			char *nl = memchr(h.in + h.in_start, '\n', scan);

			if (nl != NULL || avail >= LINE_MAX_LEN) {
				char *line = h.in + h.in_start;
				size_t len = nl ? (size_t)(nl - line) : scan;
				enum line_end end = LE_NONE;

				if (nl != NULL) {
					h.in_start += len + 1;
					end = LE_LF;
					if (len > 0 && line[len - 1] == '\r')
						len--, end = LE_CRLF;
				} else {
					h.in_start += len;
				}
				switch (session_line(h.s, line, len, end)) {
				case SN_CLOSE:
					check_output(0);
					if (!h.disconnected || h.out_seen == 0)
						abort();	/* a hang-up is said, and logged */
					flush();
					return;		/* the shell exits */
				case SN_STARTTLS:
					if (starttls() < 0)
						return;
					continue;
				case SN_CONTINUE:
					break;
				}
				after_call();
				continue;
			}
		}
		if (fill())
			continue;
		/* EOF: a partial last line still counts (a message body keeps it) */
		if (h.in_end > h.in_start && session_want_bytes(h.s) == 0) {
			session_line(h.s, h.in + h.in_start, h.in_end - h.in_start, LE_NONE);
			check_output(0);
		}
		session_end(h.s, END_EOF);
		check_output(1);
		return;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	memset(&h, 0, sizeof(h));
	flood_init(&flood, on_event, &h);
	h.fault = F_NONE;
	if (size > 0 && data[size - 1] >= FAULT_MARK)
		h.fault = data[--size] & ~FAULT_MARK;
	h.read_max = (h.fault & F_SMALL_READS) ? SMALL_READ : IN_BUF;
	h.conf = (h.fault & F_STRICT) ? &strict_persona : &open_persona;
	h.data = data;
	h.size = size;
	if ((h.s = session_new(h.conf, &ops)) == NULL)
		abort();
	session_greet(h.s);
	check_output(0);
	run();

	/* the session is over: exactly one disconnect, no message left open, silence */
	if (h.ndisconnect != 1 || h.msg_open)
		abort();
	session_output_done(h.s);
	session_end(h.s, END_EOF);	/* a no-op now: on_event aborts on any event */
	session_end(h.s, END_TIMEOUT);	/* not even the timeout's 421 */
	quiet();
	if (session_want_bytes(h.s) != 0)
		abort();
	session_free(h.s);
	return 0;
}
