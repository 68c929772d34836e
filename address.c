/*
 * address.c - the argument grammar of MAIL FROM, RCPT TO, VRFY and ETRN as Postfix
 * 3.7 reads it: tokens, quoting, the address (rfc822.c parses it), where the
 * resolver sends it, the local users, and the ESMTP parameters.  No I/O, no replies
 * but the ones that refuse an argument.
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
int
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
int
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
int
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
int
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
int
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


/*
 * read_address - the address of an argument as Postfix's extract_addr() reads it:
 * one RFC 822 address (rfc822.c), not empty unless EMPTY_OK, that its resolver
 * takes, in an ASCII domain unless UTF8_OK (SMTPUTF8 was asked for).  0 if Postfix
 * refuses it ("Bad ... address syntax").
 */
int
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
int
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
int
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
int
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
