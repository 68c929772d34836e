/*
 * reply.c - the bottom of the state machine: the reply catalogue, reply(), the event
 * helpers and the small text helpers every handler uses.  Reply texts are Postfix
 * 3.7's (Debian 12), each with its enhanced status code (RFC 3463).  No I/O.
 */
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "session_priv.h"
#include "utf8.h"

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
	[R_AUTH_TEMP] = "454 4.7.0 Temporary authentication failure: Connection lost to authentication server",
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


/* --- replies and events ------------------------------------------------------ */

/* reply - append one catalogue reply; counts errors as Postfix does (4xx/5xx) */
void
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
	if (s->errors >= s->conf->soft_errors)
		pause_reply(s, s->conf->error_sleep_ms);
}

/*
 * pause_reply - the shell waits ms before it sends the reply just appended (an
 * error sleep, Dovecot's delays); waits before one reply add up
 */
void
pause_reply(struct session *s, unsigned ms)
{
	if (ms == 0)
		return;
	if (s->ndelay > 0 && (s->delay[s->ndelay - 1].end == s->out_len ||
	    s->ndelay == SESSION_DELAYS_MAX)) {
		s->delay[s->ndelay - 1].ms += ms;
	} else {
		s->delay[s->ndelay].ms = ms;
		s->ndelay++;
	}
	s->delay[s->ndelay - 1].end = s->out_len;
}

/* field - add a field to an event under construction */
void
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
void
some(struct event *ev, const char *name, const struct bytes *b)
{
	if (b->len > 0)
		field(ev, name, b->p, b->len);
}

void
fieldz(struct event *ev, const char *name, const char *val)
{
	field(ev, name, val, strlen(val));
}

void
emit(struct session *s, struct event *ev)
{
	if (s->ops->event != NULL)
		s->ops->event(s->ops->ctx, ev);
}

struct event
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
void
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
void
command_event(struct session *s, const char *verb, const char *line, size_t len)
{
	command_why(s, verb, line, len, NULL);
}

/* --- helpers -------------------------------------------------------------------- */

/* bounded_copy - copy at most size-1 bytes and return the length kept */
size_t
bounded_copy(char *dst, size_t size, const char *src, size_t len)
{
	if (len > size - 1)
		len = size - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return len;
}

/* is_space - Postfix splits commands on any white space, CR included */
int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

void
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



/*
 * reply_echo - a reply with client bytes where Postfix puts them (an address, a
 * parameter), bounded.  AS_SENT: the bytes as they came, as Postfix echoes its
 * command arguments (a control byte, even a CR, is sent back; an LF cannot be in a
 * line, nor a NUL in a command, so the CRLF framing holds); BLANKED: see above.
 */
void
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

/* bytes - a counted string, for the %b of reply_bytes */
struct bytes
bytes(const char *p, size_t len)
{
	struct bytes b = { p, len };

	return b;
}

/* arg_empty - nothing but spaces */
int
arg_empty(const char *arg, size_t len)
{
	skip_space(&arg, &len);
	return len == 0;
}
