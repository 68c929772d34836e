/*
 * session.c - the SMTP state machine: one input line in, replies and events out.
 *
 * It must never touch the world: no fds, clock, environment or random source.  The
 * shell hands in lines (bounded by its reader) and the persona; queue files and the
 * event sink are reached only through struct session_ops.  Reply texts are Postfix
 * 3.7's (Debian 12), each with its enhanced status code (RFC 3463), kept in one
 * catalogue below.  The persona accepts any relay and any AUTH: that is the bait.
 */
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "b64.h"
#include "rfc822.h"
#include "session.h"
#include "utf8.h"

#define ADDR_MAX	1024	/* an address kept for events (bounded by the line) */
#define HELO_MAX	256	/* HELO name kept for events */
#define RCPT_LIST_MAX	EVENT_VALUE_MAX	/* the comma-joined recipients of message_accepted */
#define SASL_RESPONSE_MAX 12288	/* smtpd_sasl_response_limit: a longer AUTH response gets 500 */
#define AUTH_MAX	B64_DECODED_MAX(SASL_RESPONSE_MAX)	/* one decoded AUTH response */
#define JUNK_MAX	100	/* smtpd_junk_command_limit */
#define RCPT_OVERSHOOT_MAX 1000	/* smtpd_recipient_overshoot_limit */
#define PARAMS_MAX	512	/* MAIL FROM parameters kept for the sidecar */
#define HDR_MAX		256	/* a header value kept for events and the sidecar */
#define HDR_NAME_MAX	16	/* the longest header name we look for, with room */
#define HEADER_MAX	102400	/* header_size_limit: Subject: and the like are looked for in these */

/* States as bits, so a command table row says where a verb is legal with one mask. */
enum {
	S_IDLE = 1 << 0,	/* no transaction */
	S_MAIL = 1 << 1,	/* after MAIL FROM */
	S_RCPT = 1 << 2,	/* after at least one RCPT TO */
	S_DATA = 1 << 3,	/* reading a DATA body */
	S_BDAT = 1 << 4,	/* reading a BDAT chunk (raw bytes) */
	S_AUTH = 1 << 5,	/* in an AUTH dialogue */
	S_TX = S_MAIL | S_RCPT
};

/* The reply catalogue: Postfix's words. */
enum reply_id {
	R_GREETING, R_HELO, R_EHLO_LINE, R_OK, R_MAIL_OK, R_RCPT_OK, R_DATA, R_QUEUED, R_BYE,
	R_BDAT_OK, R_BDAT_QUEUED, R_AUTH_OK, R_AUTH_USER, R_AUTH_PASS, R_AUTH_EMPTY, R_AUTH_CHALLENGE,
	R_HELO_SYNTAX, R_EHLO_SYNTAX, R_MAIL_SYNTAX, R_RCPT_SYNTAX, R_DATA_SYNTAX,
	R_BDAT_SYNTAX, R_VRFY_SYNTAX, R_AUTH_SYNTAX, R_ETRN_SYNTAX,
	R_NESTED_MAIL, R_NEED_MAIL, R_NEED_RCPT, R_NO_RCPT,
	R_DATA_AFTER_BDAT, R_UNKNOWN, R_BAD_SYNTAX, R_BAD_UTF8, R_RSET_SYNTAX, R_STARTTLS_SYNTAX,
	R_ETRN_IN_TX, R_AUTH_FAILED, R_AUTH_BAD_IR, R_AUTH_BAD_RESP, R_TOO_MANY_ERRORS, R_TIMEOUT, R_TOO_MANY_RCPT,
	R_SIZE_EXCEEDED, R_SIZE_FS, R_FILE_TOO_BIG, R_CHUNK_TOO_BIG, R_DISCARDED, R_QUEUE_WRITE, R_NO_STORAGE, R_RELAY_DENIED, R_BAD_SENDER, R_BAD_RCPT,
	R_UNSUPPORTED, R_BAD_SIZE, R_BAD_RET, R_BAD_ENVID, R_BAD_NOTIFY, R_BAD_ORCPT,
	R_RCPT_AFTER_BDAT, R_XCLIENT, R_XCLIENT_SYNTAX, R_NON_SMTP, R_AUTH_ALREADY, R_AUTH_DISABLED, R_IN_TX,
	R_AUTH_ABORTED, R_AUTH_MECH, R_AUTH_TOO_LONG, R_NULL_BDAT, R_MAIL_AFTER_BDAT, R_ETRN_INVALID, R_VRFY, R_USER_UNKNOWN,
	R_ETRN, R_TLS_UNAVAILABLE, R_TLS_READY, R_TLS_ACTIVE, R_TLS_LOCAL, R_COUNT
};

static const char *const catalogue[R_COUNT] = {
	[R_GREETING] = "220 %s",
	[R_HELO] = "250 %s",
	[R_EHLO_LINE] = "250%c%s",
	[R_OK] = "250 2.0.0 Ok",
	[R_MAIL_OK] = "250 2.1.0 Ok",
	[R_RCPT_OK] = "250 2.1.5 Ok",
	[R_DATA] = "354 End data with <CR><LF>.<CR><LF>",
	[R_QUEUED] = "250 2.0.0 Ok: queued as %s",
	[R_BYE] = "221 2.0.0 Bye",
	[R_BDAT_OK] = "250 2.0.0 Ok: %lu bytes",
	[R_BDAT_QUEUED] = "250 2.0.0 Ok: %lu bytes queued as %s",
	[R_AUTH_OK] = "235 2.7.0 Authentication successful",
	[R_AUTH_USER] = "334 VXNlcm5hbWU6",
	[R_AUTH_PASS] = "334 UGFzc3dvcmQ6",
	[R_AUTH_EMPTY] = "334 ",
	[R_AUTH_CHALLENGE] = "334 %s",
	[R_HELO_SYNTAX] = "501 Syntax: HELO hostname",
	[R_EHLO_SYNTAX] = "501 Syntax: EHLO hostname",
	[R_MAIL_SYNTAX] = "501 5.5.4 Syntax: MAIL FROM:<address>",
	[R_RCPT_SYNTAX] = "501 5.5.4 Syntax: RCPT TO:<address>",
	[R_DATA_SYNTAX] = "501 5.5.4 Syntax: DATA",
	[R_BDAT_SYNTAX] = "521 5.5.4 Syntax: BDAT count [LAST]",
	[R_VRFY_SYNTAX] = "501 5.5.4 Syntax: VRFY address [SMTPUTF8]",
	[R_AUTH_SYNTAX] = "501 5.5.4 Syntax: AUTH mechanism",
	[R_ETRN_SYNTAX] = "500 Syntax: ETRN domain",
	[R_NESTED_MAIL] = "503 5.5.1 Error: nested MAIL command",
	[R_NEED_MAIL] = "503 5.5.1 Error: need MAIL command",
	[R_NEED_RCPT] = "503 5.5.1 Error: need RCPT command",
	[R_NO_RCPT] = "554 5.5.1 Error: no valid recipients",
	[R_ETRN_IN_TX] = "503 Error: MAIL transaction in progress",
	[R_DATA_AFTER_BDAT] = "503 5.5.1 Error: DATA after BDAT",
	[R_UNKNOWN] = "500 5.5.2 Error: command not recognized",
	[R_BAD_SYNTAX] = "500 5.5.2 Error: bad syntax",
	[R_BAD_UTF8] = "500 5.5.2 Error: bad UTF-8 syntax",
	[R_RSET_SYNTAX] = "501 5.5.4 Syntax: RSET",
	[R_STARTTLS_SYNTAX] = "501 5.5.4 Syntax: STARTTLS",
	[R_TOO_MANY_ERRORS] = "421 4.7.0 %s Error: too many errors",
	[R_TIMEOUT] = "421 4.4.2 %s Error: timeout exceeded",
	[R_TOO_MANY_RCPT] = "452 4.5.3 Error: too many recipients",
	[R_SIZE_EXCEEDED] = "552 5.3.4 Message size exceeds fixed limit",
	[R_SIZE_FS] = "552 5.3.4 Message size exceeds file system imposed limit",
	[R_FILE_TOO_BIG] = "552 5.3.4 Error: message file too big",
	[R_CHUNK_TOO_BIG] = "552 5.3.4 Chunk exceeds message size limit",
	[R_DISCARDED] = "551 5.0.0 Discarded %lu bytes after earlier error",
	[R_QUEUE_WRITE] = "451 4.3.0 Error: queue file write error",
	[R_NO_STORAGE] = "452 4.3.1 Insufficient system storage",
	[R_RELAY_DENIED] = "454 4.7.1 <%s>: Relay access denied",
	[R_BAD_SENDER] = "501 5.1.7 Bad sender address syntax",
	[R_BAD_RCPT] = "501 5.1.3 Bad recipient address syntax",
	[R_UNSUPPORTED] = "555 5.5.4 Unsupported option: %s",
		[R_BAD_SIZE] = "501 5.5.4 Bad message size syntax",
	[R_BAD_RET] = "501 5.5.4 Bad RET parameter syntax",
	[R_BAD_ENVID] = "501 5.5.4 Bad ENVID parameter syntax",
	[R_BAD_NOTIFY] = "501 5.5.4 Error: Bad NOTIFY parameter syntax",
	[R_BAD_ORCPT] = "501 5.5.4 Error: Bad ORCPT parameter syntax",
	[R_RCPT_AFTER_BDAT] = "503 5.5.1 Error: RCPT after BDAT",
	[R_XCLIENT] = "550 5.7.0 Error: insufficient authorization",
	[R_XCLIENT_SYNTAX] = "501 5.5.4 Syntax: %s attribute=value...",
	[R_NON_SMTP] = "221 2.7.0 Error: I can break rules, too. Goodbye.",
	[R_AUTH_ALREADY] = "503 5.5.1 Error: already authenticated",
	[R_AUTH_DISABLED] = "503 5.5.1 Error: authentication not enabled",
	[R_IN_TX] = "503 5.5.1 Error: MAIL transaction in progress",
	[R_AUTH_ABORTED] = "501 5.7.0 Authentication aborted",
	[R_AUTH_FAILED] = "535 5.7.8 Error: authentication failed: (reason unavailable)",
	[R_AUTH_BAD_IR] = "535 5.7.8 Error: authentication failed: Invalid base64 data in initial response",
	[R_AUTH_BAD_RESP] = "535 5.7.8 Error: authentication failed: Invalid base64 data in continued response",
	[R_AUTH_MECH] = "535 5.7.8 Error: authentication failed: Invalid authentication mechanism",
	[R_AUTH_TOO_LONG] = "500 5.5.6 SASL response limit exceeded",
	[R_NULL_BDAT] = "551 5.7.1 Null BDAT request",
	[R_ETRN_INVALID] = "501 Error: invalid parameter syntax",
	[R_MAIL_AFTER_BDAT] = "503 5.5.1 Error: MAIL after BDAT",
	[R_VRFY] = "252 2.0.0 %s",
	[R_USER_UNKNOWN] = "550 5.1.1 <%s>: Recipient address rejected: User unknown in local recipient table",
	[R_ETRN] = "459 <%s>: service unavailable",
	[R_TLS_UNAVAILABLE] = "502 5.5.1 Error: command not implemented",
	[R_TLS_READY] = "220 2.0.0 Ready to start TLS",
	[R_TLS_ACTIVE] = "554 5.5.1 Error: TLS already active",
	[R_TLS_LOCAL] = "454 4.7.0 TLS not available due to local problem",
};

/*
 * Local users and aliases of a stock Debian 12 with Postfix: what VRFY and RCPT to a
 * local domain find.  XXX: data of the persona; a later persona file may replace it.
 */
static const char *const local_users[] = {
	"root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news",
	"uucp", "proxy", "www-data", "backup", "list", "irc", "_apt", "nobody",
	"systemd-network", "systemd-timesync", "messagebus", "postfix", "postmaster",
	"dovecot", "dovenull",
};

enum auth_step { AUTH_NONE, AUTH_PLAIN, AUTH_LOGIN_USER, AUTH_LOGIN_PASS, AUTH_CRAM };

/*
 * hdrscan - a byte-at-a-time scan of the message header for three fields, so that
 * DATA lines and BDAT chunks feed it alike.  Values are kept raw (no RFC 2047
 * decoding), unfolded with one space, and cut at HDR_MAX.
 */
enum { H_SUBJECT, H_FROM, H_MESSAGE_ID, H_COUNT, H_NONE = H_COUNT };

static const char *const hdr_names[H_COUNT] = {
	[H_SUBJECT] = "subject", [H_FROM] = "from", [H_MESSAGE_ID] = "message-id",
};

struct hdrscan {
	int done;			/* the empty line that ends the header was seen */
	int bol;			/* at the start of a line */
	int in_name;			/* reading a field name */
	int cur;			/* the field whose value is being read, or H_NONE */
	char name[HDR_NAME_MAX];
	size_t name_len;
	char val[H_COUNT][HDR_MAX];
	size_t len[H_COUNT];
};

struct session {
	const struct session_conf *conf;
	const struct session_ops *ops;
	unsigned state;
	int helo_seen;
	int authenticated;
	int tls;			/* the handshake is done: this is a TLS session */
	int starttls;			/* STARTTLS was answered 220: the handshake is next */
	int ended;			/* the disconnect event has been sent */
	int hangup;			/* a reply that closes the connection was sent */
	int skip_rest;			/* the line was over-long: drop its rest */
	int held;			/* ... and answer its head (held) when it ends */
	char head[SESSION_LINE_MAX + 1];	/* the first SESSION_LINE_MAX bytes of that line */
	size_t head_len;
	unsigned errors;
	unsigned junk;
	struct session_delay delay[SESSION_DELAYS_MAX];	/* error sleeps in the output */
	size_t ndelay;
	char code[4];			/* the code of the last reply, for events */
	const char *cur;		/* the command line being handled, for events */
	size_t cur_len;

	char helo[HELO_MAX];
	size_t helo_len;

	/* the transaction */
	char from[ADDR_MAX];
	size_t from_len;
	char from_params[PARAMS_MAX];
	size_t from_params_len;
	char rcpts[RCPT_LIST_MAX];
	size_t rcpts_len;
	unsigned nrcpt;
	unsigned rcpt_overshoot;	/* RCPTs past the limit in this transaction */
	int smtputf8;			/* MAIL FROM said SMTPUTF8: non-ASCII domains pass */
	int bdat_seen;

	/* the message being received */
	int msg_open;
	int msg_failed;			/* 0, or the store's MSG_ERROR / MSG_FULL */
	struct hdrscan hdr;		/* Subject:, From:, Message-ID: as they pass */
	int at_bol;			/* the next body line starts a line */
	int data_first;			/* no DATA line but "From " lines yet */
	unsigned long body_bytes;
	unsigned long data_size;	/* DATA as Postfix counts it (see data_line) */
	unsigned long bdat_left;
	int bdat_last;
	enum reply_id bdat_refused;	/* the reply after a dropped chunk, or R_COUNT */
	enum reply_id bdat_poisoned;	/* after a chunk past the size limit: 552, then 551;
					   R_COUNT while the transaction is sound */
	const char *bdat_poison_why;	/* why, for the partial message at LAST */
	unsigned long bdat_chunk;
	unsigned long bdat_count;	/* the message as Postfix counts it (see stored_size) */
	char bdat_arg[64];		/* the BDAT arguments, for its event */
	char last_byte;
	char qid[32];

	/* an AUTH dialogue */
	enum auth_step auth;
	char auth_mech[32];
	char auth_user[AUTH_MAX];
	size_t auth_user_len;
	char auth_raw[EVENT_VALUE_MAX];	/* the client's base64 so far (LOGIN: user, pass) */
	size_t auth_raw_len;
	char auth_resp[SASL_RESPONSE_MAX];	/* a response line, gathered from its pieces */
	size_t auth_resp_len;
	char login[HDR_MAX];		/* the user name that AUTH accepted, for the sidecar */
	size_t login_len;

	char out[SESSION_OUT_MAX + SESSION_OUT_SLACK];
	size_t out_len;
};

/* --- replies and events ------------------------------------------------------ */

/* reply - append one catalogue reply; counts errors as Postfix does (4xx/5xx) */
static void
reply(struct session *s, enum reply_id id, ...)
{
	va_list ap;
	size_t room = sizeof(s->out) - s->out_len;
	int n;

	va_start(ap, id);
	n = vsnprintf(s->out + s->out_len, room > 2 ? room - 2 : 0, catalogue[id], ap);
	va_end(ap);
	if (n < 0 || room < 3)
		abort();
	if ((size_t)n > room - 3)
		n = (int)(room - 3);
	memcpy(s->code, s->out + s->out_len, 3);
	s->out_len += (size_t)n;
	s->out[s->out_len++] = '\r';
	s->out[s->out_len++] = '\n';
	/*
	 * Postfix sleeps before each reply line once the soft error limit is reached,
	 * and flushes after it: the shell does the same at each mark.
	 */
	if (s->errors >= s->conf->soft_errors && s->conf->error_sleep_ms > 0) {
		if (s->ndelay == SESSION_DELAYS_MAX)
			s->delay[s->ndelay - 1].ms += s->conf->error_sleep_ms;
		else
			s->delay[s->ndelay++].ms = s->conf->error_sleep_ms;
		s->delay[s->ndelay - 1].end = s->out_len;
	}
}

/* field - add a field to an event under construction */
static void
field(struct event *ev, const char *name, const char *val, size_t len)
{
	if (ev->nfield >= EVENT_MAX_FIELDS)
		abort();
	ev->field[ev->nfield].name = name;
	ev->field[ev->nfield].val = val != NULL ? val : "";	/* an empty credential part */
	ev->field[ev->nfield].len = len;
	ev->nfield++;
}

/* some - a field only if it holds something */
static void
some(struct event *ev, const char *name, const struct bytes *b)
{
	if (b->len > 0)
		field(ev, name, b->p, b->len);
}

static void
fieldz(struct event *ev, const char *name, const char *val)
{
	field(ev, name, val, strlen(val));
}

static void
emit(struct session *s, struct event *ev)
{
	if (s->ops->event != NULL)
		s->ops->event(s->ops->ctx, ev);
}

static struct event
event(enum event_type type, int priority)
{
	struct event ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.priority = priority;
	return ev;
}

/*
 * command_why - a command event with a REASON; verb NULL for a line never answered
 * (no COMMAND, no REPLY)
 */
static void
command_why(struct session *s, const char *verb, const char *line, size_t len,
    const char *why)
{
	struct event ev = event(EV_COMMAND, 6);

	if (verb != NULL)
		fieldz(&ev, "COMMAND", verb);
	field(&ev, "VALUE", line, len);
	if (verb != NULL)
		fieldz(&ev, "REPLY", s->code);
	if (why != NULL)
		fieldz(&ev, "REASON", why);
	emit(s, &ev);
}

/* command_event - a command that has no event of its own: what was said, what came back */
static void
command_event(struct session *s, const char *verb, const char *line, size_t len)
{
	command_why(s, verb, line, len, NULL);
}

/* --- helpers -------------------------------------------------------------------- */

/* bounded_copy - copy at most size-1 bytes and return the length kept */
static size_t
bounded_copy(char *dst, size_t size, const char *src, size_t len)
{
	if (len > size - 1)
		len = size - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return len;
}

/* is_space - Postfix splits commands on any white space, CR included */
static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static void
skip_space(const char **p, size_t *len)
{
	while (*len > 0 && is_space(**p))
		(*p)++, (*len)--;
}

/*
 * blank_controls - control bytes become spaces, as Postfix's printable() makes them in
 * the replies of its access checks (550 user unknown, 454 relay denied).  8-bit
 * bytes here are valid UTF-8 (the line was checked): Postfix keeps them.
 */
static void
blank_controls(char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			buf[i] = ' ';
}

static void close_message(struct session *, const char *partial);

enum echo { AS_SENT, BLANKED };

/*
 * reply_echo - a reply with client bytes where Postfix puts them (an address, a
 * parameter), bounded.  AS_SENT: the bytes as they came, as Postfix echoes its
 * command arguments (a control byte, even a CR, is sent back; an LF cannot be in a
 * line, nor a NUL in a command, so the CRLF framing holds); BLANKED: see above.
 */
static void
reply_echo(struct session *s, enum reply_id id, const char *bytes, size_t len, enum echo how)
{
	char buf[SESSION_LINE_MAX + 1];	/* as much as Postfix quotes: the whole line */
	size_t n = bounded_copy(buf, sizeof(buf), bytes, len);

	/* cut short: not inside a UTF-8 sequence (the line was valid UTF-8) */
	if (n < len) {
		while (n > 0 && ((unsigned char)bytes[n] & 0xc0) == 0x80)
			n--;
		buf[n] = '\0';
	}
	if (how == BLANKED)
		blank_controls(buf, n);
	reply(s, id, buf);
}

/* reset_transaction - forget the envelope; a message still open is kept as partial */
static void
reset_transaction(struct session *s, const char *why)
{
	if (s->msg_open)
		close_message(s, why);
	s->from_len = 0;
	s->from[0] = '\0';
	s->from_params_len = 0;
	s->rcpts_len = 0;
	s->rcpts[0] = '\0';
	s->nrcpt = 0;
	s->rcpt_overshoot = 0;
	s->smtputf8 = 0;
	s->bdat_seen = 0;
	s->bdat_poisoned = R_COUNT;
	s->bdat_count = 0;
	s->last_byte = '\0';
	s->body_bytes = 0;
	s->msg_failed = 0;
	s->state = S_IDLE;
}

static int
is_local_user(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(local_users) / sizeof(local_users[0]); i++)
		if (strlen(local_users[i]) == len && strncasecmp(local_users[i], name, len) == 0)
			return 1;
	return 0;
}

/*
 * local_domain - mydestination = $myhostname, localhost, and the address literal of
 * the address the client reached (inet_interfaces); one trailing dot is ignored
 */
static int
local_domain(const void *ctx, const char *dom, size_t dlen)
{
	const struct session *s = ctx;

	if (dlen > 1 && dom[dlen - 1] == '.')
		dlen--;
	return (dlen == strlen(s->conf->hostname) && strncasecmp(dom, s->conf->hostname, dlen) == 0) ||
	    (dlen == 9 && strncasecmp(dom, "localhost", 9) == 0) ||
	    (s->conf->local_addr != NULL && dlen == strlen(s->conf->local_addr) + 2 &&
	    dom[0] == '[' && dom[dlen - 1] == ']' &&
	    strncmp(dom + 1, s->conf->local_addr, dlen - 2) == 0);
}

/*
 * valid_hostname - Postfix's test of a domain: labels of letters, digits, '-' and
 * '_' (no '-' at a label's ends), at most 63 bytes each and 255 in all, not all
 * digits (a bare IPv4 address is refused too).  8-bit labels (SMTPUTF8) pass.
 */
static int
valid_hostname(const char *p, size_t len)
{
	size_t i, label = 0;
	int non_numeric = 0;

	if (len == 0 || len > 255)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (isalnum(c) || c == '_' || c >= 0x80) {
			if (++label > 63)
				return 0;
			if (!isdigit(c))
				non_numeric = 1;
		} else if (c == '.') {
			if (label == 0 || i + 1 == len)
				return 0;
			label = 0;
		} else if (c == '-') {
			non_numeric = 1;
			if (label++ == 0 || i + 1 == len || p[i + 1] == '.')
				return 0;
		} else {
			return 0;
		}
	}
	return non_numeric;
}

/* valid_literal - "[1.2.3.4]" or "[IPv6:...]": an address literal (RFC 5321 4.1.3) */
static int
valid_literal(const char *p, size_t len)
{
	size_t i;

	if (len < 3 || p[0] != '[' || p[len - 1] != ']')
		return 0;
	p++, len -= 2;
	if (len > 5 && strncasecmp(p, "IPv6:", 5) == 0) {
		for (i = 5; i < len; i++)
			if (!isxdigit((unsigned char)p[i]) && p[i] != ':' && p[i] != '.')
				return 0;
		return 1;
	}
	/* dotted decimal, four parts, each at most 255 */
	for (i = 0; i < 4; i++) {
		size_t n = strspn(p, "0123456789");

		if (n == 0 || n > 3 || atoi(p) > 255 || (i < 3 ? (n >= len || p[n] != '.') : n != len))
			return 0;
		p += n + (i < 3);
		len -= n + (i < 3);
	}
	return 1;
}

/* --- arguments and addresses (MAIL FROM / RCPT TO / VRFY) --------------------- */

enum { ARG_NONE, ARG_OK, ARG_OPEN };

/*
 * close_quote - *p is just past an opening '"' or '<': move it past the byte that
 * closes it.  Inside <...> a "..." or another <...> nests; a backslash protects the
 * next byte.  0 if nothing closes it (*p is then at the end).
 */
static int
close_quote(const char **p, const char *end, char open)
{
	size_t depth = open == '<';
	int quoted = open == '"';

	while (*p < end) {
		char c = *(*p)++;

		if (c == '\\') {
			if (*p == end)
				break;
			(*p)++;
		} else if (quoted) {
			if (c == '"') {
				quoted = 0;
				if (depth == 0)
					return 1;
			}
		} else if (c == '>') {
			if (--depth == 0)
				return 1;
		} else if (c == '"') {
			quoted = 1;
		} else if (c == '<') {
			depth++;
		}
	}
	return 0;
}

/*
 * next_arg - the next argument of a command, split as Postfix's smtpd_token() splits
 * one: at white space, except inside "..." and <...>, and after a backslash; "FROM:"
 * and "TO:" end an argument of their own.  ARG_NONE when none is left; ARG_OPEN for
 * a quote or bracket never closed (the argument runs to the end of the line).
 */
static int
next_arg(const char **args, size_t *left, const char **tok, size_t *tlen)
{
	const char *p = *args, *end = p + *left;
	int r = ARG_OK;

	while (p < end && is_space(*p))
		p++;
	if (p == end)
		return ARG_NONE;
	*tok = p;
	while (p < end && !is_space(*p)) {
		char c = *p++;
		size_t n = (size_t)(p - *tok);

		if ((c == '"' || c == '<') && !close_quote(&p, end, c))
			r = ARG_OPEN;
		else if (c == '\\' && p < end)
			p++;
		else if (c == ':' && ((n == 3 && strncasecmp(*tok, "TO:", 3) == 0) ||
		    (n == 5 && strncasecmp(*tok, "FROM:", 5) == 0)))
			break;
	}
	*tlen = (size_t)(p - *tok);
	*left = (size_t)(end - p);
	*args = p;
	return r;
}

struct path {
	const char *addr;	/* as sent, without a pair of outer angle brackets */
	size_t len;
	char internal[RFC822_TEXT_MAX + 2];	/* the address Postfix takes from it */
	size_t ilen;
	char resolved[RFC822_TEXT_MAX + 2];	/* where its resolver sends that: user@domain */
	size_t rlen;
	size_t at;		/* the '@' before its domain (the last) */
	int where;		/* RFC822_LOCAL or RFC822_REMOTE */
	int smtputf8;		/* MAIL FROM's parameters ask for SMTPUTF8 */
	const char *params;	/* the ESMTP parameters, as sent */
	size_t params_len;
};

/*
 * resolve - where Postfix's resolver sends p->internal (rfc822.c); RFC822_ERROR
 * also when the domain it ends in is no host name or address literal
 */
static int
resolve(const struct session *s, struct path *p)
{
	int r = rfc822_resolve(p->internal, p->ilen, s->conf->hostname, local_domain, s,
	    p->resolved, sizeof(p->resolved), &p->rlen);
	const char *at = r == RFC822_ERROR ? NULL : strrchr(p->resolved, '@'), *dom;
	size_t dlen;

	/* nor may it start with '-' (allow_min_user = no) */
	if (at == NULL || p->resolved[0] == '-')
		return RFC822_ERROR;
	p->at = (size_t)(at - p->resolved);
	dom = at + 1;
	dlen = p->rlen - p->at - 1;
	if (dlen > 0 && dom[0] == '[' ? !valid_literal(dom, dlen) : !valid_hostname(dom, dlen))
		return RFC822_ERROR;
	return r;
}

/* ascii - no byte above 0x7f */
static int
ascii(const char *p, size_t len)
{
	while (len-- > 0)
		if ((unsigned char)*p++ >= 0x80)
			return 0;
	return 1;
}

/*
 * unknown_user - a local address whose user is in no local table (Postfix's
 * local_recipient_maps); what follows a '+' is an extension (recipient_delimiter)
 */
static int
unknown_user(const struct path *p)
{
	static const char *const always[] = { "postmaster", "MAILER-DAEMON", "double-bounce" };
	const char *user = p->resolved, *plus;
	size_t ulen = p->at, i;

	/* Postfix takes these whatever its tables say */
	for (i = 0; i < sizeof(always) / sizeof(always[0]); i++)
		if (strlen(always[i]) == ulen && strncasecmp(always[i], user, ulen) == 0)
			return 0;
	if (is_local_user(user, ulen))
		return 0;
	plus = memchr(user, '+', ulen);
	return plus == NULL || plus == user || !is_local_user(user, (size_t)(plus - user));
}

enum { EMPTY_OK = 1, UTF8_OK = 2 };

/*
 * read_address - the address of an argument as Postfix's extract_addr() reads it:
 * one RFC 822 address (rfc822.c), not empty unless EMPTY_OK, that its resolver
 * takes, in an ASCII domain unless UTF8_OK (SMTPUTF8 was asked for).  0 if Postfix
 * refuses it ("Bad ... address syntax").
 */
static int
read_address(const struct session *s, const char *tok, size_t tlen, int ok, struct path *p)
{
	int naddr = rfc822_address(tok, tlen, p->internal, sizeof(p->internal), &p->ilen);

	p->addr = tok;
	p->len = tlen;
	if (tlen >= 2 && tok[0] == '<' && tok[tlen - 1] == '>')
		p->addr++, p->len -= 2;
	if (naddr < 0 || naddr > 1 || (p->ilen == 0 && !(ok & EMPTY_OK)))
		return 0;
	/* the null sender resolves nowhere */
	if ((p->where = p->ilen == 0 ? RFC822_REMOTE : resolve(s, p)) == RFC822_ERROR)
		return 0;
	return p->ilen == 0 || (ok & UTF8_OK) || ascii(p->resolved + p->at, p->rlen - p->at);
}

/* has_smtputf8 - MAIL FROM's parameters ask for SMTPUTF8 (Postfix looks before the address) */
static int
has_smtputf8(const char *params, size_t left)
{
	const char *tok;
	size_t tlen;

	while (next_arg(&params, &left, &tok, &tlen) != ARG_NONE)
		if (tlen == 8 && strncasecmp(tok, "SMTPUTF8", 8) == 0)
			return 1;
	return 0;
}

/*
 * parse_path - "FROM:<addr> params" after the verb: the key as an argument of its
 * own, then the address.  Returns 0, -1 for no key or no address (syntax), -2 for an
 * address Postfix refuses.
 */
static int
parse_path(const struct session *s, const char *arg, size_t len, const char *key,
    struct path *p)
{
	const char *tok;
	size_t tlen;
	int r, ok = s->smtputf8 ? UTF8_OK : 0;

	p->smtputf8 = 0;

	if (next_arg(&arg, &len, &tok, &tlen) == ARG_NONE || tlen != strlen(key) ||
	    strncasecmp(tok, key, tlen) != 0 || (r = next_arg(&arg, &len, &tok, &tlen)) == ARG_NONE)
		return -1;
	skip_space(&arg, &len);
	/* the null sender, <> or an address that reads as none, only after FROM: */
	if (strcmp(key, "FROM:") == 0) {
		p->smtputf8 = has_smtputf8(arg, len);
		ok |= EMPTY_OK | (p->smtputf8 ? UTF8_OK : 0);
	}
	if (r == ARG_OPEN || !read_address(s, tok, tlen, ok, p))
		return -2;
	p->params = arg;
	p->params_len = len;
	return 0;
}

/* number - a decimal count: 0, -1 if it is not one, -2 if it exceeds an off_t */
static int
number(const char *p, size_t len, unsigned long *n)
{
	const unsigned long max = LONG_MAX;
	int over = 0;
	size_t i;

	if (len == 0)
		return -1;
	*n = 0;
	for (i = 0; i < len; i++) {
		unsigned d = (unsigned)(p[i] - '0');

		if (!isdigit((unsigned char)p[i]))
			return -1;
		if (*n > (max - d) / 10)
			over = 1;
		else
			*n = *n * 10 + d;
	}
	return over ? -2 : 0;
}

/* The values of the ESMTP parameters Postfix knows; each check returns 1 if good. */
static int
word_in(const char *v, size_t n, const char *const *words)
{
	for (; *words != NULL; words++)
		if (strlen(*words) == n && strncasecmp(v, *words, n) == 0)
			return 1;
	return 0;
}

static int
good_body(const char *v, size_t n)
{
	static const char *const w[] = { "7BIT", "8BITMIME", NULL };

	return word_in(v, n, w);
}

static int
good_ret(const char *v, size_t n)
{
	static const char *const w[] = { "FULL", "HDRS", NULL };

	return word_in(v, n, w);
}

/* good_notify - RFC 3461: NEVER, or a list of SUCCESS, FAILURE, DELAY */
static int
good_notify(const char *v, size_t n)
{
	static const char *const w[] = { "SUCCESS", "FAILURE", "DELAY", NULL };
	size_t k;

	if (n == 5 && strncasecmp(v, "NEVER", 5) == 0)
		return 1;
	while (n > 0) {
		for (k = 0; k < n && v[k] != ','; k++)
			;
		if (!word_in(v, k, w))
			return 0;
		v += k + (k < n);
		n -= k + (k < n);
	}
	return 1;
}

/* good_orcpt - RFC 3461: addr-type ";" xtext */
static int
good_orcpt(const char *v, size_t n)
{
	const char *semi = memchr(v, ';', n);

	return semi != NULL && semi > v;
}

static int
good_nonempty(const char *v, size_t n)
{
	(void)v;
	return n > 0;
}

static int
good_any(const char *v, size_t n)
{
	(void)v, (void)n;
	return 1;
}

enum { P_MAIL = 1, P_RCPT = 2 };

/*
 * The ESMTP parameters of MAIL and RCPT as Postfix 3.7 takes them: which verb, and
 * whether the keyword takes a value (a keyword with the wrong form is unknown to
 * Postfix: 555), how it is checked, and Postfix's words for a bad one.
 */
static const struct param {
	const char *name;
	unsigned verbs;
	int (*good)(const char *, size_t);	/* NULL: no value */
	enum reply_id bad;			/* R_COUNT: 555 Unsupported option */
} esmtp[] = {
	{ "SIZE", P_MAIL, good_nonempty, R_BAD_SIZE },	/* the number: cmd_mail */
	{ "BODY", P_MAIL, good_body, R_COUNT },
	{ "SMTPUTF8", P_MAIL, NULL, R_COUNT },
	{ "RET", P_MAIL, good_ret, R_BAD_RET },
	{ "ENVID", P_MAIL, good_nonempty, R_BAD_ENVID },
	{ "AUTH", P_MAIL, good_any, R_COUNT },
	{ "NOTIFY", P_RCPT, good_notify, R_BAD_NOTIFY },
	{ "ORCPT", P_RCPT, good_orcpt, R_BAD_ORCPT },
};

/* unsupported - the 555 reply for one parameter */
static void
unsupported(struct session *s, const char *tok, size_t tlen)
{
	reply_echo(s, R_UNSUPPORTED, tok, tlen, AS_SENT);
}

/*
 * esmtp_params - check MAIL's or RCPT's parameters in order; the first bad one is
 * answered and -1 returned.  SIZE= is measured against the limits here too.
 */
static int
esmtp_params(struct session *s, unsigned verb, const char *params, size_t left)
{
	const char *tok;
	size_t tlen, i;

	while (next_arg(&params, &left, &tok, &tlen)) {
		const char *eq = memchr(tok, '=', tlen);
		size_t klen = eq ? (size_t)(eq - tok) : tlen;
		const struct param *pm = NULL;

		for (i = 0; i < sizeof(esmtp) / sizeof(esmtp[0]); i++)
			if ((esmtp[i].verbs & verb) && strlen(esmtp[i].name) == klen &&
			    strncasecmp(esmtp[i].name, tok, klen) == 0)
				pm = &esmtp[i];
		if (pm == NULL || (pm->good == NULL) != (eq == NULL)) {
			unsupported(s, tok, tlen);
			return -1;
		}
		if (pm->good != NULL && !pm->good(eq + 1, (size_t)(tok + tlen - eq - 1))) {
			if (pm->bad == R_COUNT)
				unsupported(s, tok, tlen);
			else
				reply(s, pm->bad);
			return -1;
		}
		if (pm->bad == R_BAD_SIZE) {
			unsigned long size;
			int r = number(eq + 1, (size_t)(tok + tlen - eq - 1), &size);

			if (r < 0 || size > s->conf->max_size) {
				reply(s, r == -1 ? R_BAD_SIZE : r == -2 ? R_SIZE_FS : R_SIZE_EXCEEDED);
				return -1;
			}
		}
	}
	return 0;
}

/* --- command handlers -------------------------------------------------------- */

/* A handler gets the argument text after the verb (leading spaces kept). */
typedef void cmd_fn(struct session *, const char *arg, size_t len);

static void
greet_name(struct session *s, const char *verb, const char *arg, size_t len)
{
	struct event ev = event(EV_EHLO, 6);

	skip_space(&arg, &len);
	reset_transaction(s, "rset");
	s->helo_seen = 1;
	s->helo_len = bounded_copy(s->helo, sizeof(s->helo), arg, len);
	fieldz(&ev, "COMMAND", verb);
	field(&ev, "DOMAIN", arg, len);
	emit(s, &ev);
}

/* arg_empty - nothing but spaces */
static int
arg_empty(const char *arg, size_t len)
{
	skip_space(&arg, &len);
	return len == 0;
}

static void
cmd_helo(struct session *s, const char *arg, size_t len)
{
	if (arg_empty(arg, len)) {
		reply(s, R_HELO_SYNTAX);
		s->errors++;
		command_event(s, "HELO", s->cur, s->cur_len);
		return;
	}
	greet_name(s, "HELO", arg, len);
	reply(s, R_HELO, s->conf->hostname);
}

/* cmd_ehlo - RFC 5321 4.1.1.1; the persona's keywords, in its order, one reply a line */
static void
cmd_ehlo(struct session *s, const char *arg, size_t len)
{
	const char *kw = s->conf->ehlo_keywords;
	char line[300];

	if (arg_empty(arg, len)) {
		reply(s, R_EHLO_SYNTAX);
		s->errors++;
		command_event(s, "EHLO", s->cur, s->cur_len);
		return;
	}
	greet_name(s, "EHLO", arg, len);
	snprintf(line, sizeof(line), "%s", s->conf->hostname);
	while (*kw != '\0') {
		size_t n = strcspn(kw, " ");

		/* each keyword goes out when the next is known: the last gets "250 " */
		if (n == 8 && strncasecmp(kw, "STARTTLS", 8) == 0 && s->tls) {
			;	/* RFC 3207: not offered again inside TLS */
		} else if (n == 4 && strncasecmp(kw, "AUTH", 4) == 0) {
			if (s->conf->auth_mechs[0] != '\0') {
				reply(s, R_EHLO_LINE, '-', line);
				snprintf(line, sizeof(line), "AUTH %s", s->conf->auth_mechs);
			}
		} else {
			reply(s, R_EHLO_LINE, '-', line);
			if (n == 4 && strncasecmp(kw, "SIZE", 4) == 0)
				snprintf(line, sizeof(line), "SIZE %lu", s->conf->max_size);
			else
				snprintf(line, sizeof(line), "%.*s", (int)n, kw);
		}
		kw += n;
		kw += strspn(kw, " ");
	}
	reply(s, R_EHLO_LINE, ' ', line);
}

/* path_event - mail_from or rcpt_to: the address and its parameters */
static void
path_event(struct session *s, enum event_type type, const struct path *p)
{
	struct event ev = event(type, 6);

	field(&ev, "VALUE", p->addr, p->len);
	/* what Postfix reads in it, where that is not what was sent: <Name <a@b>>, a(c)@b */
	if (p->ilen != p->len || memcmp(p->internal, p->addr, p->len) != 0)
		field(&ev, "ADDRESS", p->internal, p->ilen);
	field(&ev, "PARAMS", p->params, p->params_len);
	emit(s, &ev);
}

static void
cmd_mail(struct session *s, const char *arg, size_t len)
{
	struct path p;
	int r;

	/* a BDAT that failed outside a transaction leaves it spoilt until LAST or RSET */
	if (s->bdat_seen) {
		reply(s, R_MAIL_AFTER_BDAT);
		goto fail;
	}
	if ((r = parse_path(s, arg, len, "FROM:", &p)) < 0) {
		reply(s, r == -1 ? R_MAIL_SYNTAX : R_BAD_SENDER);
		goto fail;
	}
	if (esmtp_params(s, P_MAIL, p.params, p.params_len) < 0)
		goto fail;
	/* Postfix's 452 when the queue file system is short of space */
	if (s->ops->msg_room != NULL && !s->ops->msg_room(s->ops->msg_ctx)) {
		reply(s, R_NO_STORAGE);
		s->errors++;
		command_why(s, "MAIL", s->cur, s->cur_len, "budget");
		return;
	}
	s->smtputf8 = p.smtputf8;
	s->from_len = bounded_copy(s->from, sizeof(s->from), p.addr, p.len);
	s->from_params_len = bounded_copy(s->from_params, sizeof(s->from_params), p.params,
	    p.params_len);
	s->state = S_MAIL;
	reply(s, R_MAIL_OK);
	path_event(s, EV_MAIL, &p);
	return;
fail:
	s->errors++;
	command_event(s, "MAIL", s->cur, s->cur_len);
}

static void
cmd_rcpt(struct session *s, const char *arg, size_t len)
{
	struct path p;
	int r;

	if (s->bdat_seen) {
		reply(s, R_RCPT_AFTER_BDAT);
		goto fail;
	}
	if ((r = parse_path(s, arg, len, "TO:", &p)) < 0) {
		reply(s, r == -1 ? R_RCPT_SYNTAX : R_BAD_RCPT);
		goto fail;
	}
	if (esmtp_params(s, P_RCPT, p.params, p.params_len) < 0)
		goto fail;
	if (s->nrcpt >= s->conf->max_rcpt) {
		/* free up to smtpd_recipient_overshoot_limit, then each one is an error */
		reply(s, R_TOO_MANY_RCPT);
		if (s->rcpt_overshoot++ >= RCPT_OVERSHOOT_MAX)
			goto fail;
		command_event(s, "RCPT", s->cur, s->cur_len);
		return;
	}
	if (p.where == RFC822_LOCAL ? unknown_user(&p) :
	    !s->conf->relay_open && !s->authenticated) {
		reply_echo(s, p.where == RFC822_LOCAL ? R_USER_UNKNOWN : R_RELAY_DENIED,
		    p.internal, p.ilen, BLANKED);
		goto fail;
	}
	/* the recipient list of message_accepted: bounded, the count is exact */
	if (s->rcpts_len + p.len + 2 < sizeof(s->rcpts)) {
		if (s->rcpts_len > 0)
			s->rcpts[s->rcpts_len++] = ',';
		memcpy(s->rcpts + s->rcpts_len, p.addr, p.len);
		s->rcpts_len += p.len;
	}
	s->nrcpt++;
	s->state = S_RCPT;
	reply(s, R_RCPT_OK);
	path_event(s, EV_RCPT, &p);
	return;
fail:
	s->errors++;
	command_event(s, "RCPT", s->cur, s->cur_len);
}

/* open_message - ask the shell for a queue file; 451 when it cannot */
static int
open_message(struct session *s)
{
	s->body_bytes = 0;
	s->msg_failed = 0;
	s->qid[0] = '\0';
	memset(&s->hdr, 0, sizeof(s->hdr));
	s->hdr.bol = 1;
	s->hdr.cur = H_NONE;
	if (s->ops->msg_open == NULL || s->ops->msg_open(s->ops->msg_ctx, s->qid, sizeof(s->qid)) < 0) {
		reply(s, R_QUEUE_WRITE);
		s->errors++;
		return -1;
	}
	s->msg_open = 1;
	return 0;
}

static void
cmd_data(struct session *s, const char *arg, size_t len)
{
	if (s->nrcpt == 0) {
		reply(s, (s->state & S_TX) ? R_NO_RCPT : R_NEED_RCPT);
		goto fail;
	}
	if (!arg_empty(arg, len)) {
		reply(s, R_DATA_SYNTAX);
		goto fail;
	}
	if (s->bdat_seen) {
		reply(s, R_DATA_AFTER_BDAT);
		goto fail;
	}
	if (open_message(s) < 0)
		goto fail_noerr;
	s->state = S_DATA;
	s->at_bol = 1;
	s->data_first = 1;
	s->data_size = 0;
	reply(s, R_DATA);
	command_event(s, "DATA", s->cur, s->cur_len);
	return;
fail:
	s->errors++;
fail_noerr:
	command_event(s, "DATA", s->cur, s->cur_len);
}

static struct bytes
bytes(const char *p, size_t len)
{
	struct bytes b = { p, len };

	return b;
}

/* message_fields - what message_accepted and message_partial both carry */
static void
message_fields(struct session *s, struct event *ev, char *nbytes, char *count)
{
	snprintf(nbytes, 24, "%lu", s->body_bytes);
	snprintf(count, 16, "%u", s->nrcpt);
	field(ev, "MAIL_FROM", s->from, s->from_len);
	field(ev, "RCPT_TO", s->rcpts, s->rcpts_len);
	fieldz(ev, "RCPT_COUNT", count);
	fieldz(ev, "BODY_BYTES", nbytes);
	fieldz(ev, "MSG_ID", s->qid);
	field(ev, "HDR_SUBJECT", s->hdr.val[H_SUBJECT], s->hdr.len[H_SUBJECT]);
	field(ev, "HDR_FROM", s->hdr.val[H_FROM], s->hdr.len[H_FROM]);
	field(ev, "HDR_MESSAGE_ID", s->hdr.val[H_MESSAGE_ID], s->hdr.len[H_MESSAGE_ID]);
}

/* store - hand the message to the store: accepted (partial NULL) or kept as partial */
static int
store(struct session *s, const char *partial)
{
	struct msg_info info;

	memset(&info, 0, sizeof(info));
	info.partial = partial;
	info.helo = bytes(s->helo, s->helo_len);
	info.from = bytes(s->from, s->from_len);
	info.from_params = bytes(s->from_params, s->from_params_len);
	info.rcpts = bytes(s->rcpts, s->rcpts_len);
	info.auth_user = bytes(s->login, s->login_len);
	info.subject = bytes(s->hdr.val[H_SUBJECT], s->hdr.len[H_SUBJECT]);
	info.hdr_from = bytes(s->hdr.val[H_FROM], s->hdr.len[H_FROM]);
	info.hdr_message_id = bytes(s->hdr.val[H_MESSAGE_ID], s->hdr.len[H_MESSAGE_ID]);
	info.nrcpt = s->nrcpt;
	info.body_bytes = s->body_bytes;
	s->msg_open = 0;
	return s->ops->msg_close(s->ops->msg_ctx, &info);
}

/* message_event - message_accepted, or message_partial with its reason and reply */
static void
message_event(struct session *s, const char *partial, const char *code)
{
	struct event ev = event(partial ? EV_PARTIAL : EV_MESSAGE, partial ? 4 : 5);
	char nbytes[24], count[16];

	message_fields(s, &ev, nbytes, count);
	if (partial != NULL) {
		fieldz(&ev, "REASON", partial);
		if (code != NULL)
			fieldz(&ev, "REPLY", code);
	}
	emit(s, &ev);
}

/* close_message - a message cut off (RSET, EOF, timeout ...): kept, and an event */
static void
close_message(struct session *s, const char *partial)
{
	store(s, partial);
	message_event(s, partial, NULL);
}

/* finish_message - the end of DATA or BDAT LAST: make it durable, then answer */
static void
finish_message(struct session *s, unsigned long bdat_total)
{
	static const struct {
		const char *why;
		enum reply_id reply;
	} refusals[] = {
		{ "budget", R_NO_STORAGE },
		{ "write_error", R_QUEUE_WRITE },
		{ "too_big", R_FILE_TOO_BIG },
	};
	int k = -1;

	if (s->msg_failed == MSG_FULL)
		k = 0;
	else if (s->msg_failed)
		k = 1;
	else if ((s->bdat_seen ? s->body_bytes : s->data_size) > s->conf->max_size)
		k = 2;
	else if (store(s, NULL) < 0)
		k = 1;	/* not durable: the store keeps what it can as partial */
	if (k >= 0) {
		reply(s, refusals[k].reply);
		s->errors++;
		if (s->msg_open)
			store(s, refusals[k].why);
		message_event(s, refusals[k].why, s->code);
	} else {
		if (s->bdat_seen)
			reply(s, R_BDAT_QUEUED, bdat_total, s->qid);
		else
			reply(s, R_QUEUED, s->qid);
		message_event(s, NULL, NULL);
		/* a delivered message clears the client's record, as in Postfix */
		s->errors = 0;
		s->junk = 0;
	}
	reset_transaction(s, NULL);
}

/* hdrscan - feed header bytes; stops looking at the empty line that ends the header */
static void
hdrscan(struct hdrscan *h, const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len && !h->done; i++) {
		char c = buf[i];

		if (h->bol && (c == '\r' || c == '\n')) {
			/* an empty line (CRLF or a bare LF): the header is over */
			h->done = 1;
			break;
		}
		if (c == '\n') {
			h->bol = 1;
			h->in_name = 0;
			continue;
		}
		if (h->bol) {
			h->bol = 0;
			if (c == ' ' || c == '\t') {
				/* a folded continuation of the current field: one space */
				if (h->cur != H_NONE && h->len[h->cur] > 0 && h->len[h->cur] < HDR_MAX)
					h->val[h->cur][h->len[h->cur]++] = ' ';
				continue;
			}
			h->cur = H_NONE;
			h->in_name = 1;
			h->name_len = 0;
		}
		if (h->in_name) {
			if (c == ':') {
				int k;

				h->in_name = 0;
				for (k = 0; k < H_COUNT; k++)
					if (strlen(hdr_names[k]) == h->name_len &&
					    strncasecmp(hdr_names[k], h->name, h->name_len) == 0 &&
					    h->len[k] == 0)
						h->cur = k;
			} else if (h->name_len < sizeof(h->name)) {
				h->name[h->name_len++] = c;
			} else {
				h->in_name = 0;
			}
			continue;
		}
		if (h->cur == H_NONE || c == '\r')
			continue;
		if (h->len[h->cur] == 0 && (c == ' ' || c == '\t'))
			continue;
		if (h->len[h->cur] < HDR_MAX)
			h->val[h->cur][h->len[h->cur]++] = c;
	}
}

/*
 * body - message bytes to the store.  Bytes past the size limit are stored too (the
 * message is refused, but kept as evidence); after a store failure nothing is.
 */
static void
body(struct session *s, const char *buf, size_t len)
{
	int rc;

	if (len == 0)
		return;
	s->body_bytes += len;
	if (!s->hdr.done) {
		hdrscan(&s->hdr, buf, len);
		/* header_size_limit: past it, Postfix takes the rest for the body */
		if (s->body_bytes >= HEADER_MAX)
			s->hdr.done = 1;
	}
	if (s->msg_failed)
		return;
	if ((rc = s->ops->msg_write(s->ops->msg_ctx, buf, len)) < 0)
		s->msg_failed = rc == MSG_FULL ? MSG_FULL : MSG_ERROR;
}

/* from_line - a Unix mailbox "From " line, with any '>' before it */
static int
from_line(const char *p, size_t len)
{
	size_t i = 0;

	while (i < len && p[i] == '>')
		i++;
	return len - i >= 5 && memcmp(p + i, "From ", 5) == 0;
}

/*
 * data_line - one line of a DATA body (RFC 5321 4.5.2: dot-stuffing).  As Postfix
 * with smtpd_forbid_bare_newline = no: a bare LF ends a line, every CR before the
 * line end is taken off (so ".\r\r\n" ends the message), and each line counts its
 * length without them plus two toward message_size_limit.  The store gets the bytes
 * as they came, after dot-unstuffing.
 */
static void
data_line(struct session *s, const char *line, size_t len, enum line_end end)
{
	static const char *const ending[] = { [LE_CRLF] = "\r\n", [LE_LF] = "\n", [LE_NONE] = "" };
	size_t n = len, stuffed = 0;

	if (end == LE_CRLF)
		while (n > 0 && line[n - 1] == '\r')
			n--;
	/* XXX Postfix turns leading "From " lines into a header it does not count */
	if (s->data_first && from_line(line, n))
		goto keep;
	s->data_first = 0;
	if (s->at_bol && n > 0 && line[0] == '.') {
		if (n == 1 && end != LE_NONE) {
			finish_message(s, 0);
			return;
		}
		stuffed = 1;
	}
	s->data_size += n - stuffed + 2;
keep:
	body(s, line + stuffed, len - stuffed);
	body(s, ending[end], end == LE_CRLF ? 2 : end == LE_LF ? 1 : 0);
	s->at_bol = end != LE_NONE;
}

/* spoil_bdat - an error ends the BDAT transaction: later chunks get 551 until LAST */
static void
spoil_bdat(struct session *s, enum reply_id id, const char *why)
{
	s->bdat_seen = 1;
	s->bdat_poisoned = id;
	s->bdat_poison_why = why;
}

/*
 * cmd_bdat - RFC 3030: "BDAT size [LAST]"; the chunk follows as raw bytes and the
 * reply comes after it.  Without a recipient the chunk is dropped; a chunk past the
 * size limit poisons the transaction as in Postfix (552, then 551 for each chunk up
 * to LAST), but its bytes, and the later chunks', are kept as partial evidence.
 */
static void
cmd_bdat(struct session *s, const char *arg, size_t len)
{
	const char *tok, *params = arg;
	size_t left = len, tlen;
	unsigned long size;

	s->bdat_last = 0;
	if (!next_arg(&params, &left, &tok, &tlen) || number(tok, tlen, &size) < 0)
		goto syntax;
	if (next_arg(&params, &left, &tok, &tlen)) {
		if (tlen != 4 || strncasecmp(tok, "LAST", 4) != 0 || !arg_empty(params, left))
			goto syntax;
		s->bdat_last = 1;
	}
	if (size == 0 && !s->bdat_last) {
		/* Postfix's first check, in any state; the transaction is spoilt */
		reply(s, R_NULL_BDAT);
		s->errors++;
		spoil_bdat(s, R_DISCARDED, "bdat_error");
		command_event(s, "BDAT", s->cur, s->cur_len);
		return;
	}
	s->bdat_refused = R_COUNT;
	s->bdat_chunk = size;
	if (s->bdat_poisoned != R_COUNT)
		s->bdat_poisoned = R_DISCARDED;	/* kept if a message is open */
	else if (s->nrcpt == 0)
		s->bdat_refused = (s->state & S_TX) ? R_NO_RCPT : R_NEED_RCPT;
	else if (!s->msg_open && open_message(s) < 0)
		s->bdat_refused = R_QUEUE_WRITE;
	else if (s->body_bytes + size > s->conf->max_size)
		spoil_bdat(s, R_CHUNK_TOO_BIG, "too_big");
	if (s->bdat_refused == R_COUNT)
		s->bdat_seen = 1;
	s->bdat_left = size;
	s->state |= S_BDAT;
	bounded_copy(s->bdat_arg, sizeof(s->bdat_arg), s->cur, s->cur_len);
	if (size == 0)
		session_bytes(s, "", 0);
	return;
syntax:
	/* a client that cannot say how much follows cannot be followed: hang up */
	reply(s, R_BDAT_SYNTAX);
	s->errors++;
	s->hangup = 1;
	command_event(s, "BDAT", s->cur, s->cur_len);
}

/*
 * stored_size - what Postfix counts of a chunk: a bare LF becomes CR LF in its queue
 * file.  prev is the byte before the chunk.
 */
static unsigned long
stored_size(const char *buf, size_t len, char prev)
{
	unsigned long n = len;
	const char *p = buf, *end = buf + len, *lf;

	while ((lf = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if ((lf == buf ? prev : lf[-1]) != '\r')
			n++;
		p = lf + 1;
	}
	return n;
}

size_t
session_want_bytes(const struct session *s)
{
	return (s->state & S_BDAT) ? s->bdat_left : 0;
}

void
session_bytes(struct session *s, const char *buf, size_t len)
{
	unsigned long total;

	if (!(s->state & S_BDAT) || len > s->bdat_left)
		abort();
	if (s->bdat_refused == R_COUNT && s->msg_open && len > 0) {
		body(s, buf, len);
		s->bdat_count += stored_size(buf, len, s->last_byte);
		s->last_byte = buf[len - 1];
	}
	s->bdat_left -= len;
	if (s->bdat_left > 0)
		return;
	s->state &= ~S_BDAT;
	if (s->bdat_refused != R_COUNT) {
		reply(s, s->bdat_refused);
		s->errors++;
		if (s->bdat_refused == R_NO_RCPT || s->bdat_refused == R_NEED_RCPT) {
			/* a transaction that has seen BDAT: no MAIL or RCPT, 551 for chunks */
			spoil_bdat(s, R_DISCARDED, "bdat_error");
			if (s->bdat_last)
				reset_transaction(s, NULL);
		}
	} else if (s->bdat_poisoned != R_COUNT) {
		reply(s, s->bdat_poisoned, s->bdat_chunk);
		s->errors++;
		if (s->bdat_last) {
			command_event(s, "BDAT", s->bdat_arg, strlen(s->bdat_arg));
			reset_transaction(s, s->bdat_poison_why);
			return;
		}
	} else if (s->bdat_last) {
		/* XXX: Postfix counts the line end it adds to an unterminated message */
		total = s->bdat_count + (s->bdat_count == 0 || s->last_byte == '\n' ? 0 : 2);
		finish_message(s, total);
	} else if (s->msg_failed) {
		reply(s, s->msg_failed == MSG_FULL ? R_NO_STORAGE : R_QUEUE_WRITE);
		s->errors++;
	} else {
		reply(s, R_BDAT_OK, s->bdat_chunk);
	}
	command_event(s, "BDAT", s->bdat_arg, strlen(s->bdat_arg));
}

static void
cmd_rset(struct session *s, const char *arg, size_t len)
{
	if (!arg_empty(arg, len)) {
		reply(s, R_RSET_SYNTAX);
		s->errors++;
		command_event(s, "RSET", s->cur, s->cur_len);
		return;
	}
	reset_transaction(s, "rset");
	reply(s, R_OK);
	command_event(s, "RSET", s->cur, s->cur_len);
}

static void
cmd_noop(struct session *s, const char *arg, size_t len)
{
	(void)arg, (void)len;
	reply(s, R_OK);
	command_event(s, "NOOP", s->cur, s->cur_len);
}

static void
cmd_quit(struct session *s, const char *arg, size_t len)
{
	(void)arg, (void)len;
	reply(s, R_BYE);
	command_event(s, "QUIT", s->cur, s->cur_len);
}

/*
 * cmd_vrfy - Postfix looks the user up in the local tables (disable_vrfy_command=no).
 * A last argument SMTPUTF8 is a parameter (alone, a syntax error); the others are
 * joined with one space and read as one address.  252 echoes them as sent, 550 the
 * address read.
 */
static void
cmd_vrfy(struct session *s, const char *arg, size_t len)
{
	char joined[2 * SESSION_LINE_MAX];	/* "TO:x" splits in two: longer than the line */
	const char *tok;
	size_t tlen, n = 0, last = 0, nargs = 0;
	int ok = s->smtputf8 ? UTF8_OK : 0;
	struct path p;

	while (next_arg(&arg, &len, &tok, &tlen) != ARG_NONE) {
		if (nargs++ > 0 && n < sizeof(joined))
			joined[n++] = ' ';
		last = n;
		n += bounded_copy(joined + n, sizeof(joined) - n, tok, tlen);
	}
	if (nargs > 0 && n - last == 8 && strncasecmp(joined + last, "SMTPUTF8", 8) == 0)
		n = last > 0 ? last - 1 : 0, nargs--, ok = UTF8_OK;
	if (nargs == 0) {
		reply(s, R_VRFY_SYNTAX);
		s->errors++;
	} else if (!read_address(s, joined, n, ok, &p)) {
		reply(s, R_BAD_RCPT);
		s->errors++;
	} else if (p.where == RFC822_LOCAL && unknown_user(&p)) {
		reply_echo(s, R_USER_UNKNOWN, p.internal, p.ilen, BLANKED);
		s->errors++;
	} else {
		reply_echo(s, R_VRFY, joined, n, AS_SENT);
	}
	command_event(s, "VRFY", s->cur, s->cur_len);
}

/* cmd_etrn - RFC 1985; the persona has no fast-flush domains */
static void
cmd_etrn(struct session *s, const char *arg, size_t len)
{
	const char *params = arg, *dom, *extra;
	size_t left = len, dlen, xlen;

	if (s->state & S_TX) {
		reply(s, R_ETRN_IN_TX);
	} else if (!next_arg(&params, &left, &dom, &dlen) ||
	    next_arg(&params, &left, &extra, &xlen)) {
		reply(s, R_ETRN_SYNTAX);
	} else {
		/* "@domain" and "#domain" (RFC 1985 subdomains, queue names) lose the sign */
		if (dlen > 1 && (dom[0] == '@' || dom[0] == '#'))
			dom++, dlen--;
		/* a host name in ASCII (no IDNA here, unlike in addresses), or a literal */
		if ((valid_hostname(dom, dlen) && ascii(dom, dlen)) || valid_literal(dom, dlen))
			reply_echo(s, R_ETRN, dom, dlen, AS_SENT);
		else
			reply(s, R_ETRN_INVALID);
	}
	s->errors++;
	command_event(s, "ETRN", s->cur, s->cur_len);
}

/* cmd_xclient - XCLIENT and XFORWARD are for trusted proxies: this client is none */
static void
cmd_xclient(struct session *s, const char *arg, size_t len)
{
	char verb[16];
	size_t n = 0;

	if (arg_empty(arg, len)) {
		/* the verb is what came before the argument (s->cur is not a C string) */
		while (n < sizeof(verb) - 1 && s->cur + n < arg) {
			verb[n] = (char)toupper((unsigned char)s->cur[n]);
			n++;
		}
		verb[n] = '\0';
		reply(s, R_XCLIENT_SYNTAX, verb);
	} else {
		reply(s, R_XCLIENT);
	}
	s->errors++;
	command_event(s, "XCLIENT", s->cur, s->cur_len);
}

/* tls_offered - STARTTLS is among the persona's EHLO keywords */
static int
tls_offered(const struct session *s)
{
	const char *kw = s->conf->ehlo_keywords;

	while (*kw != '\0') {
		size_t n = strcspn(kw, " ");

		if (n == 8 && strncasecmp(kw, "STARTTLS", 8) == 0)
			return 1;
		kw += n;
		kw += strspn(kw, " ");
	}
	return 0;
}

/*
 * cmd_starttls - RFC 3207, in Postfix's order of checks.  After the 220 the session
 * forgets HELO, the transaction and the login, as Postfix does
 * and the shell does the handshake, then calls session_tls().
 */
static void
cmd_starttls(struct session *s, const char *arg, size_t len)
{
	enum reply_id r = R_TLS_READY;

	if (!arg_empty(arg, len))
		r = R_STARTTLS_SYNTAX;
	else if (s->tls)
		r = R_TLS_ACTIVE;
	else if (!tls_offered(s))
		r = R_TLS_UNAVAILABLE;
	else if (s->ops->tls_ready == NULL || s->ops->tls_ready(s->ops->ctx) < 0)
		r = R_TLS_LOCAL;
	reply(s, r);
	if (r != R_TLS_READY) {
		s->errors++;
	} else {
		reset_transaction(s, "starttls");
		s->helo_seen = 0;
		s->helo_len = 0;
		s->helo[0] = '\0';
		s->authenticated = 0;	/* RFC 3207 4.2; Postfix forgets the login too */
		s->login_len = 0;
		s->starttls = 1;
	}
	command_event(s, "STARTTLS", s->cur, s->cur_len);
}

/* cmd_nonsmtp - HTTP and other non-SMTP commands: Postfix hangs up */
static void
cmd_nonsmtp(struct session *s, const char *arg, size_t len)
{
	reply(s, R_NON_SMTP);
	(void)arg, (void)len;
	command_event(s, "NON_SMTP", s->cur, s->cur_len);
}

/*
 * The SASL mechanisms the persona may offer (RFC 4954), each with the first reply
 * when no initial response came.  Which ones are offered is the persona's.
 */
static const struct mech {
	const char *name;
	enum auth_step first;
	enum reply_id prompt;
} mechs[] = {
	{ "PLAIN", AUTH_PLAIN, R_AUTH_EMPTY },
	{ "LOGIN", AUTH_LOGIN_USER, R_AUTH_USER },
	{ "CRAM-MD5", AUTH_CRAM, R_AUTH_CHALLENGE },
};

/* offered - is mechanism name (upper case) in the persona's list? */
static const struct mech *
offered(const struct session *s, const char *name)
{
	const char *p = s->conf->auth_mechs;
	size_t n = strlen(name), i;

	while (p != NULL && *p != '\0') {
		size_t w = strcspn(p, " ");

		if (w == n && strncasecmp(p, name, n) == 0)
			for (i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++)
				if (strcmp(mechs[i].name, name) == 0)
					return &mechs[i];
		p += w;
		p += strspn(p, " ");
	}
	return NULL;
}

/* credential - what one AUTH exchange yielded, as the client sent it */
struct credential {
	struct bytes authz, user, pass, digest;
	int wellformed;
};

/* auth_event - one credential, the client's base64 and what became of it */
static void
auth_event(struct session *s, const struct credential *c, const char *result)
{
	struct event ev = event(EV_AUTH, 4);

	fieldz(&ev, "MECHANISM", s->auth_mech);
	field(&ev, "AUTHZID", c->authz.p, c->authz.len);
	field(&ev, "USERNAME", c->user.p, c->user.len);
	field(&ev, "PASSWORD", c->pass.p, c->pass.len);
	if (s->auth == AUTH_CRAM) {
		field(&ev, "DIGEST", c->digest.p, c->digest.len);
		fieldz(&ev, "CHALLENGE", s->conf->cram_challenge);
	}
	field(&ev, "RAW", s->auth_raw, s->auth_raw_len);
	fieldz(&ev, "RESULT", result);
	emit(s, &ev);
}

/*
 * auth_unfinished - a dialogue that ends without a verdict ("*", bad base64, a
 * response over the limit, the end of the session) still logs what it gathered:
 * at least the mechanism, and the AUTH LOGIN user name if one came.
 */
static void
auth_unfinished(struct session *s, const char *result)
{
	struct credential c;

	memset(&c, 0, sizeof(c));
	if (s->auth == AUTH_LOGIN_PASS)
		c.user = bytes(s->auth_user, s->auth_user_len);
	auth_event(s, &c, result);
}

/* auth_stop - leave the dialogue with a reply; failures count as errors */
static void
auth_stop(struct session *s, enum reply_id id)
{
	s->auth = AUTH_NONE;
	s->state &= ~S_AUTH;
	s->auth_resp_len = 0;
	reply(s, id);
	if (id == R_AUTH_OK)
		s->authenticated = 1;
	else
		s->errors++;
}

/* auth_abort - "*" or bad base64: events for what was said, and Postfix's reply */
static void
auth_abort(struct session *s, enum reply_id id, const char *resp, size_t len)
{
	if (s->auth == AUTH_LOGIN_PASS)
		auth_unfinished(s, "aborted");
	auth_stop(s, id);
	command_event(s, "AUTH", resp, len);
}

/* auth_verdict - log the credential and answer as the persona's policy says */
static void
auth_verdict(struct session *s, const struct credential *c)
{
	int ok = c->wellformed && s->conf->auth_accept;

	auth_event(s, c, ok ? "accepted" : "rejected");
	if (ok)
		s->login_len = bounded_copy(s->login, sizeof(s->login), c->user.p, c->user.len);
	auth_stop(s, ok ? R_AUTH_OK : R_AUTH_FAILED);
}

/* raw - keep the client's base64 for the event: LOGIN's two answers space-separated */
static void
raw(struct session *s, const char *resp, size_t len)
{
	if (s->auth_raw_len > 0 && s->auth_raw_len < sizeof(s->auth_raw))
		s->auth_raw[s->auth_raw_len++] = ' ';
	if (len > sizeof(s->auth_raw) - s->auth_raw_len)
		len = sizeof(s->auth_raw) - s->auth_raw_len;
	memcpy(s->auth_raw + s->auth_raw_len, resp, len);
	s->auth_raw_len += len;
}

/*
 * auth_response - one client response (the initial one or after a 334).  What a
 * SASL server could not even parse (PLAIN without its two NULs, an empty user)
 * gets the failure Dovecot gives; the rest is up to the persona's policy.
 */
static void
auth_response(struct session *s, const char *resp, size_t len, int initial)
{
	unsigned char dec[AUTH_MAX];
	struct credential c;
	long n;

	if (!initial && len == 1 && resp[0] == '*') {
		auth_abort(s, R_AUTH_ABORTED, resp, len);
		return;
	}
	/* RFC 4954 4: "=" is an empty initial response */
	if (initial && len == 1 && resp[0] == '=')
		len = 0;
	if ((n = b64_decode(resp, len, dec, sizeof(dec))) < 0) {
		auth_abort(s, initial ? R_AUTH_BAD_IR : R_AUTH_BAD_RESP, resp, len);
		return;
	}
	raw(s, resp, len);
	memset(&c, 0, sizeof(c));
	switch (s->auth) {
	case AUTH_PLAIN: {
		/* RFC 4616: authzid NUL authcid NUL passwd */
		unsigned char *u = memchr(dec, '\0', (size_t)n), *p = NULL;

		if (u != NULL)
			p = memchr(u + 1, '\0', (size_t)(dec + n - u - 1));
		if (p == NULL) {
			c.user = bytes((const char *)dec, (size_t)n);
		} else {
			c.authz = bytes((const char *)dec, (size_t)(u - dec));
			c.user = bytes((const char *)u + 1, (size_t)(p - u - 1));
			c.pass = bytes((const char *)p + 1, (size_t)(dec + n - p - 1));
			c.wellformed = c.user.len > 0;
		}
		auth_verdict(s, &c);
		break;
	}
	case AUTH_LOGIN_USER:
		s->auth_user_len = (size_t)n;
		memcpy(s->auth_user, dec, (size_t)n);
		s->auth = AUTH_LOGIN_PASS;
		reply(s, R_AUTH_PASS);
		break;
	case AUTH_LOGIN_PASS:
		c.user = bytes(s->auth_user, s->auth_user_len);
		c.pass = bytes((const char *)dec, (size_t)n);
		c.wellformed = c.user.len > 0;
		auth_verdict(s, &c);
		break;
	case AUTH_CRAM: {
		/* RFC 2195: "user SP hex-digest" */
		const unsigned char *sp = NULL;
		long i;

		for (i = n - 1; i >= 0 && sp == NULL; i--)
			if (dec[i] == ' ')
				sp = dec + i;
		if (sp == NULL) {
			c.user = bytes((const char *)dec, (size_t)n);
		} else {
			c.user = bytes((const char *)dec, (size_t)(sp - dec));
			c.digest = bytes((const char *)sp + 1, (size_t)(dec + n - sp - 1));
			c.wellformed = c.user.len > 0 && c.digest.len == 32;
			for (i = 0; i < 32 && c.wellformed; i++)
				c.wellformed = isxdigit((unsigned char)c.digest.p[i]);
		}
		auth_verdict(s, &c);
		break;
	}
	case AUTH_NONE:
		abort();
	}
}

/* cmd_auth - RFC 4954, with the checks in Postfix's order (no HELO needed) */
static void
cmd_auth(struct session *s, const char *arg, size_t len)
{
	const char *params = arg, *mech, *ir = NULL;
	const struct mech *m;
	size_t left = len, mlen, irlen = 0, i;

	if (s->conf->auth_mechs[0] == '\0') {
		reply(s, R_AUTH_DISABLED);
		goto fail;
	}
	if (s->authenticated) {
		reply(s, R_AUTH_ALREADY);
		goto fail;
	}
	/* a mechanism and at most one initial response, before the mechanism is known */
	if (!next_arg(&params, &left, &mech, &mlen) ||
	    (next_arg(&params, &left, &ir, &irlen) && !arg_empty(params, left))) {
		reply(s, R_AUTH_SYNTAX);
		goto fail;
	}
	bounded_copy(s->auth_mech, sizeof(s->auth_mech), mech, mlen);
	for (i = 0; s->auth_mech[i] != '\0'; i++)
		s->auth_mech[i] = (char)toupper((unsigned char)s->auth_mech[i]);
	if (mlen >= sizeof(s->auth_mech) || (m = offered(s, s->auth_mech)) == NULL) {
		reply(s, R_AUTH_MECH);
		goto fail;
	}
	s->auth = m->first;
	s->auth_raw_len = 0;
	s->state |= S_AUTH;
	/* Dovecot's LOGIN takes an empty initial response ("=") as none: it asks */
	if (irlen == 1 && ir[0] == '=' && s->auth == AUTH_LOGIN_USER)
		irlen = 0;
	/* RFC 2195: CRAM-MD5 has no initial response; one sent is ignored */
	if (irlen > 0 && s->auth != AUTH_CRAM) {
		auth_response(s, ir, irlen, 1);
		return;
	}
	if (m->prompt == R_AUTH_CHALLENGE) {
		char b64[B64_ENCODED_LEN(128) + 1];
		size_t clen = strlen(s->conf->cram_challenge);

		if (clen > 128)
			clen = 128;
		b64_encode((const unsigned char *)s->conf->cram_challenge, clen, b64);
		reply(s, R_AUTH_CHALLENGE, b64);
		return;
	}
	reply(s, m->prompt);
	return;
fail:
	s->errors++;
	command_event(s, "AUTH", s->cur, s->cur_len);
}

/*
 * The command table: each verb, its handler, the states it is legal in and Postfix's
 * answer when it is not (the sequence check is one &), and its flags.  Finer checks,
 * where Postfix's order of tests needs them, are the handler's.  A verb that is not
 * here is unknown, or, for Postfix's forbidden commands, a reason to hang up.
 */
enum {
	CMD_JUNK = 1,		/* counts toward smtpd_junk_command_limit */
	CMD_QUIT = 2,		/* the session ends after the reply */
	CMD_HANGUP = 4		/* the session ends: a non-SMTP client */
};

#define S_ANY (S_IDLE | S_MAIL | S_RCPT)

static const struct command {
	const char *verb;
	cmd_fn *fn;
	unsigned states;	/* where the verb is legal */
	enum reply_id refuse;	/* the reply elsewhere */
	unsigned flags;
} commands[] = {
	{ "HELO", cmd_helo, S_ANY, R_COUNT, CMD_JUNK },
	{ "EHLO", cmd_ehlo, S_ANY, R_COUNT, CMD_JUNK },
	{ "MAIL", cmd_mail, S_IDLE, R_NESTED_MAIL, 0 },
	{ "RCPT", cmd_rcpt, S_TX, R_NEED_MAIL, 0 },
	{ "DATA", cmd_data, S_ANY, R_COUNT, 0 },
	{ "BDAT", cmd_bdat, S_ANY, R_COUNT, 0 },
	{ "RSET", cmd_rset, S_ANY, R_COUNT, CMD_JUNK },
	{ "NOOP", cmd_noop, S_ANY, R_COUNT, CMD_JUNK },
	{ "QUIT", cmd_quit, S_ANY, R_COUNT, CMD_QUIT },
	{ "VRFY", cmd_vrfy, S_ANY, R_COUNT, CMD_JUNK },
	{ "ETRN", cmd_etrn, S_ANY, R_COUNT, CMD_JUNK },
	{ "AUTH", cmd_auth, S_IDLE, R_IN_TX, 0 },
	{ "STARTTLS", cmd_starttls, S_ANY, R_COUNT, 0 },
	{ "XCLIENT", cmd_xclient, S_IDLE, R_IN_TX, 0 },
	{ "XFORWARD", cmd_xclient, S_IDLE, R_IN_TX, 0 },
	/* smtpd_forbidden_commands = CONNECT GET POST regexp:{{/^[^A-Z]/ Bogus}} */
	{ "CONNECT", cmd_nonsmtp, S_ANY, R_COUNT, CMD_HANGUP },
	{ "GET", cmd_nonsmtp, S_ANY, R_COUNT, CMD_HANGUP },
	{ "POST", cmd_nonsmtp, S_ANY, R_COUNT, CMD_HANGUP },
	{ NULL, NULL, 0, R_COUNT, 0 },
};

/* --- the session ------------------------------------------------------------------- */

struct session *
session_new(const struct session_conf *conf, const struct session_ops *ops)
{
	struct session *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->conf = conf;
	s->ops = ops;
	s->state = S_IDLE;
	s->bdat_poisoned = R_COUNT;
	return s;
}

void
session_free(struct session *s)
{
	free(s);
}

void
session_greet(struct session *s)
{
	reply(s, R_GREETING, s->conf->banner);
}

/*
 * is_header - a token like "Subject:": a header name and a colon.  Postfix hangs up
 * on these (a client that sends a message without DATA), as on HTTP verbs.
 */
static int
is_header(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == ':')
			return i > 0;
		if (c <= ' ' || c >= 0x7f)
			return 0;
	}
	return 0;
}

/* error_limit - at smtpd_hard_error_limit Postfix says 421 and hangs up */
static enum session_next
error_limit(struct session *s)
{
	if (s->errors < s->conf->hard_errors)
		return SN_CONTINUE;
	reply(s, R_TOO_MANY_ERRORS, s->conf->hostname);
	session_end(s, END_ERRORS);
	return SN_CLOSE;
}

/* command - one command line: find the verb in the table and run its handler */
static enum session_next
command(struct session *s, const char *line, size_t len)
{
	const struct command *c;
	const char *nul;
	size_t vlen = 0;
	char verb[16];
	int utf8;

	/* Postfix checks UTF-8 on the whole line, then sees a C string: a NUL ends it */
	utf8 = utf8_valid((const unsigned char *)line, len);
	if ((nul = memchr(line, '\0', len)) != NULL)
		len = (size_t)(nul - line);
	/*
	 * Postfix takes every CR off the end of a line, but other trailing white space
	 * stays (VRFY \<space>, an open quote)
	 */
	while (len > 0 && line[len - 1] == '\r')
		len--;
	skip_space(&line, &len);
	while (vlen < len && !is_space(line[vlen]))
		vlen++;
	bounded_copy(verb, sizeof(verb), line, vlen);
	s->cur = line;
	s->cur_len = len;
	for (c = commands; c->verb != NULL; c++)
		if (strlen(c->verb) == vlen && strncasecmp(c->verb, line, vlen) == 0)
			break;
	if (!utf8) {
		reply(s, R_BAD_UTF8);
		s->errors++;
		command_event(s, verb, line, len);
	} else if (len == 0) {
		reply(s, R_BAD_SYNTAX);
		s->errors++;
		command_event(s, verb, line, len);
	} else if (c->verb == NULL && (is_header(line, vlen) || !isalpha((unsigned char)line[0]))) {
		/* smtpd_forbidden_commands: "Bogus" non-letters and header lines */
		cmd_nonsmtp(s, line, len);
		session_end(s, END_REJECTED);
		return SN_CLOSE;
	} else if (c->verb == NULL) {
		reply(s, R_UNKNOWN);
		s->errors++;
		command_event(s, verb, line, len);
	} else if (!(s->state & c->states)) {
		reply(s, c->refuse);
		s->errors++;
		command_event(s, c->verb, line, len);
	} else {
		c->fn(s, line + vlen, len - vlen);
		/* as Postfix: counted after the reply, so its error sleeps the next one */
		if ((c->flags & CMD_JUNK) && s->junk++ > JUNK_MAX)
			s->errors++;
		if (c->flags & (CMD_QUIT | CMD_HANGUP)) {
			session_end(s, (c->flags & CMD_QUIT) ? END_QUIT : END_REJECTED);
			return SN_CLOSE;
		}
		if (s->hangup) {
			session_end(s, END_PROTOCOL);
			return SN_CLOSE;
		}
		if (s->starttls)
			return SN_STARTTLS;
	}
	return error_limit(s);
}

/*
 * mend_cut - a line that the limit cut right after the first byte of a UTF-8
 * sequence: that byte becomes '?'.  XXX: so Postfix takes it (no "bad UTF-8
 * syntax") and echoes it; a cut after two or more bytes of one it refuses.
 */
static void
mend_cut(char *p, size_t len)
{
	if (len > 0 && (unsigned char)p[len - 1] >= 0xc0)
		p[len - 1] = '?';
}

/*
 * auth_line - a response after a 334, gathered from the reader's pieces.  Postfix
 * reads one of up to smtpd_sasl_response_limit bytes; at the limit it answers 500,
 * drops the rest of the line and leaves the dialogue.
 */
static enum session_next
auth_line(struct session *s, const char *line, size_t len, enum line_end end)
{
	size_t room = sizeof(s->auth_resp) - s->auth_resp_len;

	if (len >= room) {
		/* the first SASL_RESPONSE_MAX bytes are the evidence */
		memcpy(s->auth_resp + s->auth_resp_len, line, room);
		raw(s, s->auth_resp, sizeof(s->auth_resp));
		auth_unfinished(s, "too_long");
		auth_stop(s, R_AUTH_TOO_LONG);
		s->skip_rest = end == LE_NONE;
		return error_limit(s);
	}
	memcpy(s->auth_resp + s->auth_resp_len, line, len);
	s->auth_resp_len += len;
	if (end == LE_NONE)
		return SN_CONTINUE;
	len = s->auth_resp_len;
	s->auth_resp_len = 0;
	auth_response(s, s->auth_resp, len, 0);
	return error_limit(s);
}

enum session_next
session_line(struct session *s, const char *line, size_t len, enum line_end end)
{
	if (s->state & S_DATA) {
		data_line(s, line, len, end);
		return SN_CONTINUE;
	}
	if (s->state & S_BDAT)
		abort();	/* the shell must hand BDAT chunks to session_bytes() */
	if (s->skip_rest) {
		/* the tail of an over-long line: Postfix drops it, then answers the head */
		if (end == LE_NONE)
			return SN_CONTINUE;
		s->skip_rest = 0;
		if (!s->held)
			return SN_CONTINUE;
		s->held = 0;
		return command(s, s->head, s->head_len);
	}
	if (s->state & S_AUTH)
		return auth_line(s, line, len, end);
	if (end == LE_NONE) {
		/* no answer before the line ends: a client that leaves first gets none */
		s->head_len = bounded_copy(s->head, sizeof(s->head), line, len);
		mend_cut(s->head, s->head_len);
		s->held = s->skip_rest = 1;
		return SN_CONTINUE;
	}
	return command(s, line, len);
}

static const char *const end_names[] = {
	[END_QUIT] = "quit", [END_EOF] = "eof", [END_TIMEOUT] = "timeout",
	[END_ERRORS] = "too_many_errors", [END_REJECTED] = "non_smtp",
	[END_WRITE] = "write_error", [END_READ] = "read_error",
	[END_PROTOCOL] = "protocol_error", [END_SIGNAL] = "terminated",
	[END_SESSION_TIME] = "session_time", [END_SESSION_BYTES] = "session_bytes",
	[END_TLS] = "tls",
};

void
session_end(struct session *s, enum session_end why)
{
	struct event ev = event(EV_DISCONNECT, 6);

	if (s->ended)
		return;
	s->ended = 1;
	if (s->state & S_AUTH)
		auth_unfinished(s, "incomplete");
	if (s->held) {
		/* a command line the session ended inside: unanswered, still evidence */
		command_why(s, NULL, s->head, s->head_len, "unterminated");
		s->held = 0;
	}
	/* XXX: Postfix has no session limits; its idle timeout's words serve for them */
	if (why == END_TIMEOUT || why == END_SESSION_TIME || why == END_SESSION_BYTES)
		reply(s, R_TIMEOUT, s->conf->hostname);
	fieldz(&ev, "REASON", end_names[why]);
	if (s->msg_open || (s->state & (S_DATA | S_BDAT)))
		fieldz(&ev, "IN_MESSAGE", "1");
	reset_transaction(s, end_names[why]);
	emit(s, &ev);
}

void
session_tls(struct session *s, const struct tls_info *t)
{
	struct event ev = event(EV_TLS, t->ok ? 6 : 4);

	s->starttls = 0;
	s->tls = t->ok;
	fieldz(&ev, "TLS_RESULT", t->ok ? "ok" : "failed");
	some(&ev, "TLS_VERSION", &t->version);
	some(&ev, "TLS_CIPHER", &t->cipher);
	some(&ev, "TLS_SNI", &t->sni);
	some(&ev, "TLS_ALPN", &t->alpn);
	some(&ev, "TLS_ERROR", &t->error);
	some(&ev, "JA3", &t->ja3);
	some(&ev, "JA3_HASH", &t->ja3_hash);
	some(&ev, "JA4", &t->ja4);
	some(&ev, "JA4_R", &t->ja4_r);
	some(&ev, "DISCARDED", &t->discarded);
	emit(s, &ev);
}

const char *
session_output(struct session *s, size_t *len)
{
	*len = s->out_len;
	return s->out;
}

void
session_output_done(struct session *s)
{
	s->out_len = 0;
	s->ndelay = 0;
}

int
session_flush_due(const struct session *s)
{
	return s->out_len >= SESSION_OUT_MAX || s->ndelay > 0;
}

size_t
session_delays(const struct session *s, const struct session_delay **d)
{
	*d = s->delay;
	return s->ndelay;
}
