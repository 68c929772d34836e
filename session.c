/*
 * session.c - the SMTP state machine: one input line in, replies and events out.
 *
 * It must never touch the world: no fds, clock, environment or random source.  The
 * shell hands in lines (bounded by its reader) and the persona; queue files and the
 * event sink are reached only through struct session_ops.  This file is the top of
 * the tree session_priv.h describes: the command table, the handlers of the
 * session and envelope verbs, and the dispatch of each line.  The persona accepts
 * any relay and, by default, any AUTH: that is the bait.
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

/* --- command handlers -------------------------------------------------------- */

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
		return auth_line(s, line, len, end) ? error_limit(s) : SN_CONTINUE;
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
