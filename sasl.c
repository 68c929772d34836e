/*
 * sasl.c - AUTH (RFC 4954): the PLAIN, LOGIN and CRAM-MD5 dialogues as Postfix and
 * Dovecot answer them, the persona's policy on a credential, and the events that
 * record every credential whatever its verdict.  No I/O: time is asked of the shell.
 */
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/hmac.h>

#include "session_priv.h"
#include "utf8.h"

/* Postfix's AUTH_TIMEOUT (xsasl_dovecot_server.c): past it Dovecot's answer is lost */
#define DOVECOT_TIMEOUT_MS 10000

/*
 * The weak credentials of a badly run server, which the weak policy accepts besides
 * a user name that is its own password and the operator's list.  XXX: data of the
 * persona, like the local users.
 */
static const struct cred weak_defaults[] = {
	{ "admin", "admin" }, { "admin", "password" }, { "admin", "123456" },
	{ "admin", "admin123" }, { "administrator", "password" }, { "root", "root" },
	{ "root", "toor" }, { "root", "123456" }, { "test", "test" }, { "test", "123456" },
	{ "user", "user" }, { "user", "password" }, { "guest", "guest" }, { "info", "info" },
	{ "info", "123456" }, { "mail", "mail" }, { "support", "support" },
	{ "webmaster", "webmaster" }, { "postmaster", "postmaster" }, { "sales", "sales" },
};

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
void
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

/* ask - how long Dovecot takes at this moment (the shell knows the clock) */
static unsigned
ask(struct session *s, enum auth_moment m, unsigned long sum)
{
	if (s->ops->auth_wait == NULL)
		return 0;
	return s->ops->auth_wait(s->ops->auth_ctx, m, sum, s->auth_wait);
}

/* checksum - what Dovecot's penalty tells one guess from another by (FNV-1a) */
static unsigned long
checksum(const struct credential *c)
{
	unsigned long h = 2166136261UL;
	size_t i;

	for (i = 0; i < c->user.len; i++)
		h = ((h ^ (unsigned char)c->user.p[i]) * 16777619UL) & 0xffffffffUL;
	h = ((h ^ 0) * 16777619UL) & 0xffffffffUL;
	for (i = 0; i < c->pass.len; i++)
		h = ((h ^ (unsigned char)c->pass.p[i]) * 16777619UL) & 0xffffffffUL;
	return h != 0 ? h : 1;
}

static int
same(const struct bytes *b, const char *z)
{
	return b->len == strlen(z) && memcmp(b->p, z, b->len) == 0;
}

/* cram_good - does the CRAM-MD5 digest come from this password (RFC 2195)? */
static int
cram_good(const struct session *s, const struct credential *c, const char *pass, size_t plen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	char hex[2 * EVP_MAX_MD_SIZE + 1];

	if (HMAC(EVP_md5(), pass, (int)plen, (const unsigned char *)s->conf->cram_challenge,
	    strlen(s->conf->cram_challenge), md, &mdlen) == NULL || 2 * mdlen != c->digest.len)
		return 0;
	for (i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return strncasecmp(hex, c->digest.p, c->digest.len) == 0;
}

/* weak_pair - is user/pass one of the list? */
static int
weak_pair(const struct session *s, const struct credential *c, const struct cred *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!same(&c->user, list[i].user))
			continue;
		if (s->auth == AUTH_CRAM ? cram_good(s, c, list[i].pass, strlen(list[i].pass)) :
		    same(&c->pass, list[i].pass))
			return 1;
	}
	return 0;
}

/* weak - the weak policy: a user name that is its password, or a listed pair */
static int
weak(const struct session *s, const struct credential *c)
{
	if (s->auth == AUTH_CRAM ? cram_good(s, c, c->user.p, c->user.len) :
	    c->user.len == c->pass.len && memcmp(c->user.p, c->pass.p, c->user.len) == 0)
		return 1;
	return weak_pair(s, c, weak_defaults, sizeof(weak_defaults) / sizeof(weak_defaults[0])) ||
	    (s->conf->weak != NULL && weak_pair(s, c, s->conf->weak, s->conf->nweak));
}

/* good - the persona's verdict on a well-formed credential, the tries counted */
static int
good(struct session *s, const struct credential *c)
{
	if (s->conf->auth_succeed_after > 0 && s->auth_tries == s->conf->auth_succeed_after)
		return 1;
	switch (s->conf->auth_policy) {
	case AUTH_ACCEPT:
		return 1;
	case AUTH_REJECT:
		return 0;
	case AUTH_WEAK:
		return weak(s, c);
	}
	abort();
}

/*
 * auth_tempfail - Dovecot's answer would come after Postfix stops waiting for it:
 * 454 after DOVECOT_TIMEOUT_MS, and the dialogue is over (c NULL: no credential yet)
 */
static void
auth_tempfail(struct session *s, const struct credential *c)
{
	if (c != NULL)
		auth_event(s, c, "tempfail");
	else
		auth_unfinished(s, "tempfail");
	auth_stop(s, R_AUTH_TEMP);
	pause_reply(s, DOVECOT_TIMEOUT_MS);
	s->auth_wait = 0;
}

/*
 * auth_verdict - log the credential and answer as the persona's policy says, when
 * Dovecot would: its penalty for the client first, then, for a failure, its
 * auth_failure_delay; the penalty grows with each failure (ask)
 */
static void
auth_verdict(struct session *s, const struct credential *c)
{
	unsigned wait = s->auth_wait;
	int ok;

	if (wait > DOVECOT_TIMEOUT_MS) {
		auth_tempfail(s, c);
		return;
	}
	s->auth_tries++;
	ok = c->wellformed && good(s, c);
	wait += ask(s, ok ? AUTH_PASSED : AUTH_FAILED,
	    ok || !c->wellformed || s->auth == AUTH_CRAM ? 0 : checksum(c));
	if (wait > DOVECOT_TIMEOUT_MS) {
		auth_tempfail(s, c);
		return;
	}
	auth_event(s, c, ok ? "accepted" : "rejected");
	if (ok)
		s->login_len = bounded_copy(s->login, sizeof(s->login), c->user.p, c->user.len);
	auth_stop(s, ok ? R_AUTH_OK : R_AUTH_FAILED);
	pause_reply(s, wait);
	s->auth_wait = 0;
}

/* prompt - a 334 from Dovecot, after its penalty if it is the dialogue's first */
static void
prompt(struct session *s, enum reply_id id, const char *arg)
{
	reply(s, id, arg);
	pause_reply(s, s->auth_wait);
	s->auth_wait = 0;
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
		prompt(s, R_AUTH_PASS, NULL);
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
void
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
	/* Dovecot takes the request up after the client's penalty (its anvil) */
	s->auth_wait = ask(s, AUTH_BEGIN, 0);
	if (s->auth_wait > DOVECOT_TIMEOUT_MS && (irlen == 0 || s->auth == AUTH_CRAM)) {
		auth_tempfail(s, NULL);
		return;
	}
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
		prompt(s, R_AUTH_CHALLENGE, b64);
		return;
	}
	prompt(s, m->prompt, NULL);
	return;
fail:
	s->errors++;
	command_event(s, "AUTH", s->cur, s->cur_len);
}

/*
 * auth_line - a response after a 334, gathered from the reader's pieces.  Postfix
 * reads one of up to smtpd_sasl_response_limit bytes; at the limit it answers 500,
 * drops the rest of the line and leaves the dialogue.  1 when it answered.
 */
int
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
		return 1;
	}
	memcpy(s->auth_resp + s->auth_resp_len, line, len);
	s->auth_resp_len += len;
	if (end == LE_NONE)
		return 0;
	len = s->auth_resp_len;
	s->auth_resp_len = 0;
	auth_response(s, s->auth_resp, len, 0);
	return 1;
}
