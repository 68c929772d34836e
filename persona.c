/*
 * persona.c - the settings of a decky: one table, one setter, four sources.
 *
 * Every setting has one name, used as the option (--size-limit=N), the environment
 * variable (SMTP_SIZE_LIMIT) and the persona file key ("size-limit").  Sources apply
 * in order: built-in defaults (a stock Debian 12 Postfix 3.7), the JSON file, the
 * environment, the options; each through persona_set(), so each value is checked in
 * one place, and each records its source, so that a session can say where each of its
 * settings came from.  It reads files and the environment and nothing else.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <yajl/yajl_parse.h>

#include "persona.h"

#define FILE_MAX	65536	/* a persona file is small */

enum type {
	T_STR,		/* text, at most 255 bytes, no control characters */
	T_NUM,		/* a decimal number within [min, max] */
	T_CHOICE,	/* one of two words: the first is 1, the second 0 */
	T_PICK,		/* one of a list of words: its index */
	T_RANGE,	/* "N" or "MIN-MAX" milliseconds, into two numbers */
	T_WORDS,	/* space-separated words, each from a fixed list */
	T_LOG		/* journal, json, json:FILE, comma-separated */
};

static const char *const mech_words[] = { "PLAIN", "LOGIN", "CRAM-MD5", NULL };
static const char *const keyword_words[] = {
	"PIPELINING", "SIZE", "VRFY", "ETRN", "STARTTLS", "AUTH", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN",
	"SMTPUTF8", "CHUNKING", NULL
};
static const char *const policy_words[] = { "accept", "reject", "weak", NULL };	/* enum auth_policy */
static const char *const relay_words[] = { "open", "deny", NULL };

#define OFF(f) offsetof(struct persona, f)

static const struct setting {
	const char *name;
	enum type type;
	size_t off;
	unsigned long long min, max;	/* T_NUM, T_RANGE */
	const char *const *words;	/* T_CHOICE, T_PICK, T_WORDS */
	size_t off2;			/* T_RANGE: the upper end */
} settings[] = {
	{ "hostname", T_STR, OFF(hostname), 0, 0, NULL, 0 },
	{ "banner", T_STR, OFF(banner), 0, 0, NULL, 0 },
	{ "ehlo-keywords", T_WORDS, OFF(ehlo_keywords), 0, 0, keyword_words, 0 },
	{ "auth-mechanisms", T_WORDS, OFF(auth_mechanisms), 0, 0, mech_words, 0 },
	{ "auth-policy", T_PICK, OFF(auth_policy), 0, 0, policy_words, 0 },
	{ "auth-weak-file", T_STR, OFF(auth_weak_file), 0, 0, NULL, 0 },
	{ "auth-succeed-after", T_NUM, OFF(auth_succeed_after), 0, 1000, NULL, 0 },
	{ "auth-failure-delay", T_NUM, OFF(auth_failure_delay), 0, 60000, NULL, 0 },
	{ "relay", T_CHOICE, OFF(relay_open), 0, 0, relay_words, 0 },
	{ "size-limit", T_NUM, OFF(size_limit), 1, 1ULL << 40, NULL, 0 },
	{ "recipient-limit", T_NUM, OFF(recipient_limit), 1, 100000, NULL, 0 },
	{ "soft-error-limit", T_NUM, OFF(soft_errors), 1, 1000, NULL, 0 },
	{ "hard-error-limit", T_NUM, OFF(hard_errors), 1, 1000, NULL, 0 },
	{ "timeout", T_NUM, OFF(timeout), 1, 86400, NULL, 0 },
	{ "session-time", T_NUM, OFF(session_time), 1, 86400, NULL, 0 },
	{ "session-bytes", T_NUM, OFF(session_bytes), 1, 1ULL << 50, NULL, 0 },
	{ "event-burst", T_NUM, OFF(event_burst), 1, 1000000, NULL, 0 },
	{ "event-rate", T_NUM, OFF(event_rate), 1, 1000000, NULL, 0 },
	{ "error-sleep", T_NUM, OFF(error_sleep), 0, 60000, NULL, 0 },
	{ "greeting-delay", T_RANGE, OFF(greeting_min), 0, 60000, NULL, OFF(greeting_max) },
	{ "spool", T_STR, OFF(spool), 0, 0, NULL, 0 },
	{ "spool-budget", T_NUM, OFF(spool_budget), 0, 1ULL << 50, NULL, 0 },
	{ "tls-cert", T_STR, OFF(tls_cert), 0, 0, NULL, 0 },
	{ "tls-key", T_STR, OFF(tls_key), 0, 0, NULL, 0 },
	{ "tls-ticket-period", T_NUM, OFF(tls_ticket_period), 1, 86400, NULL, 0 },
	{ "log", T_LOG, OFF(log), 0, 0, NULL, 0 },
	{ "fallback-log", T_STR, OFF(fallback_log), 0, 0, NULL, 0 },
	{ "persona", T_STR, OFF(persona), 0, 0, NULL, 0 },
};
#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))
_Static_assert(NSETTINGS <= PERSONA_SETTINGS_MAX, "struct persona: source[] too small");

static const char *const source_names[] = {
	[PS_DEFAULT] = "default", [PS_FILE] = "file", [PS_ENV] = "env", [PS_OPTION] = "option"
};

#define STR(p, st) (*(char **)((char *)(p) + (st)->off))
#define NUM(p, o) (*(unsigned long long *)((char *)(p) + (o)))
#define INT(p, st) (*(int *)((char *)(p) + (st)->off))

void
persona_defaults(struct persona *p)
{
	memset(p, 0, sizeof(*p));
	p->ehlo_keywords = strdup("PIPELINING SIZE VRFY ETRN STARTTLS AUTH ENHANCEDSTATUSCODES "
	    "8BITMIME DSN SMTPUTF8 CHUNKING");
	p->auth_mechanisms = strdup("PLAIN LOGIN");
	p->auth_policy = 0;		/* accept */
	p->auth_failure_delay = 2000;	/* Dovecot's auth_failure_delay */
	p->relay_open = 1;
	p->size_limit = 10240000;	/* message_size_limit */
	p->recipient_limit = 1000;	/* smtpd_recipient_limit */
	p->soft_errors = 10;		/* smtpd_soft_error_limit */
	p->hard_errors = 20;		/* smtpd_hard_error_limit */
	p->timeout = 300;		/* smtpd_timeout */
	p->session_time = 3600;		/* ours: a session ends after an hour */
	p->session_bytes = 4ULL << 30;	/* ours: and after 4 GiB from the client */
	p->event_burst = 2000;		/* ours: events a session logs unpaced */
	p->event_rate = 50;		/* ours: then this many a second */
	p->error_sleep = 1000;		/* smtpd_error_sleep_time */
	p->greeting_min = 20;		/* what a reverse lookup on a LAN costs */
	p->greeting_max = 250;
	p->spool_budget = 1ULL << 30;
	p->tls_ticket_period = 1800;	/* smtpd_tls_session_cache_timeout / 2 */
	p->log = strdup("journal");
}

void
persona_free(struct persona *p)
{
	size_t i;

	for (i = 0; i < NSETTINGS; i++)
		if (settings[i].type == T_STR || settings[i].type == T_WORDS || settings[i].type == T_LOG) {
			free(STR(p, &settings[i]));
			STR(p, &settings[i]) = NULL;
		}
}

static const struct setting *
lookup(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < NSETTINGS; i++)
		if (strlen(settings[i].name) == len && strncmp(settings[i].name, name, len) == 0)
			return &settings[i];
	return NULL;
}

/* number - decimal digits only, within [min, max] */
static int
number(const char *v, unsigned long long min, unsigned long long max, unsigned long long *n)
{
	char *end;

	if (*v < '0' || *v > '9')
		return -1;
	errno = 0;
	*n = strtoull(v, &end, 10);
	return errno || *end != '\0' || *n < min || *n > max ? -1 : 0;
}

/* words - each space-separated word is in the list (case-insensitive), none twice */
static int
words(const char *v, const char *const *list, char *err, size_t errsize)
{
	const char *p = v;

	while (*p != '\0') {
		size_t n = strcspn(p, " "), i;
		const char *q;

		for (i = 0; list[i] != NULL; i++)
			if (strlen(list[i]) == n && strncasecmp(list[i], p, n) == 0)
				break;
		if (list[i] == NULL) {
			snprintf(err, errsize, "unknown word \"%.*s\"", (int)(n > 40 ? 40 : n), p);
			return -1;
		}
		for (q = v; q < p; q += strcspn(q, " "), q += strspn(q, " "))
			if (strcspn(q, " ") == n && strncasecmp(q, p, n) == 0) {
				snprintf(err, errsize, "\"%s\" given twice", list[i]);
				return -1;
			}
		p += n;
		p += strspn(p, " ");
	}
	return 0;
}

/* log_spec - journal, json, json:FILE, comma-separated */
static int
log_spec(const char *v)
{
	const char *p = v;

	while (*p != '\0') {
		size_t n = strcspn(p, ",");

		if (!((n == 7 && strncmp(p, "journal", 7) == 0) || (n == 4 && strncmp(p, "json", 4) == 0) ||
		    (n > 5 && strncmp(p, "json:", 5) == 0)))
			return -1;
		p += n;
		if (*p == ',')
			p++;
	}
	return p != v ? 0 : -1;
}

/* printable_text - no control characters: values end up in replies and paths */
static int
printable_text(const char *v)
{
	for (; *v != '\0'; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7f)
			return 0;
	return 1;
}

/* printable_text_n - printable ASCII only, for names that events echo */
static int
printable_text_n(const char *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x21 || (unsigned char)v[i] > 0x7e)
			return 0;
	return 1;
}

/* set - one setting from text, checked */
static int
set(struct persona *p, const struct setting *st, const char *name, const char *v, char *err,
    size_t errsize)
{
	unsigned long long n, m;
	const char *dash;
	char *copy;

	switch (st->type) {
	case T_NUM:
		if (number(v, st->min, st->max, &n) < 0)
			goto range;
		NUM(p, st->off) = n;
		return 0;
	case T_RANGE:
		if ((dash = strchr(v, '-')) == NULL) {
			if (number(v, st->min, st->max, &n) < 0)
				goto range;
			m = n;
		} else {
			char lo[32];

			if ((size_t)(dash - v) >= sizeof(lo))
				goto range;
			memcpy(lo, v, (size_t)(dash - v));
			lo[dash - v] = '\0';
			if (number(lo, st->min, st->max, &n) < 0 ||
			    number(dash + 1, n, st->max, &m) < 0)
				goto range;
		}
		NUM(p, st->off) = n;
		NUM(p, st->off2) = m;
		return 0;
	case T_CHOICE:
		if (strcmp(v, st->words[0]) == 0 || strcmp(v, st->words[1]) == 0) {
			INT(p, st) = strcmp(v, st->words[0]) == 0;
			return 0;
		}
		snprintf(err, errsize, "%s must be \"%s\" or \"%s\"", name, st->words[0], st->words[1]);
		return -1;
	case T_PICK: {
		size_t k;

		for (k = 0; st->words[k] != NULL; k++)
			if (strcmp(v, st->words[k]) == 0) {
				INT(p, st) = (int)k;
				return 0;
			}
		snprintf(err, errsize, "%s must be one of:", name);
		for (k = 0; st->words[k] != NULL; k++)
			snprintf(err + strlen(err), errsize - strlen(err), " %s", st->words[k]);
		return -1;
	}
	case T_WORDS:
		if (words(v, st->words, err, errsize) < 0)
			return -1;
		break;
	case T_LOG:
		if (log_spec(v) < 0) {
			snprintf(err, errsize, "bad log \"%.60s\": journal, json or json:FILE", v);
			return -1;
		}
		break;
	case T_STR:
		if (*v == '\0') {
			/* empty: back to the default */
			free(STR(p, st));
			STR(p, st) = NULL;
			return 0;
		}
		break;
	}
	if (strlen(v) > 255 || !printable_text(v)) {
		snprintf(err, errsize, "%s: at most 255 printable characters", name);
		return -1;
	}
	if ((copy = strdup(v)) == NULL) {
		snprintf(err, errsize, "out of memory");
		return -1;
	}
	free(STR(p, st));
	STR(p, st) = copy;
	return 0;
range:
	if (st->type == T_RANGE)
		snprintf(err, errsize, "%s must be N or MIN-MAX, from %llu to %llu", name, st->min, st->max);
	else
		snprintf(err, errsize, "%s must be a number from %llu to %llu", name, st->min, st->max);
	return -1;
}

int
persona_set(struct persona *p, enum persona_source src, const char *name, const char *v,
    char *err, size_t errsize)
{
	const struct setting *st = lookup(name, strlen(name));

	if (st == NULL) {
		snprintf(err, errsize, "unknown setting \"%.40s\"", name);
		return -1;
	}
	if (set(p, st, name, v, err, errsize) < 0)
		return -1;
	p->source[st - settings] = (unsigned char)src;
	return 0;
}

void
persona_env_name(char *buf, size_t size, const char *name)
{
	size_t n = (size_t)snprintf(buf, size, "SMTP_"), i;

	for (i = 0; name[i] && n + 1 < size; i++)
		buf[n++] = name[i] == '-' ? '_' : (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
	buf[n] = '\0';
}

int
persona_env(struct persona *p, char *err, size_t errsize)
{
	char env[64], why[200];
	size_t i;
	int rc = 0;

	/* a bad variable is skipped; the first one is reported */
	for (i = 0; i < NSETTINGS; i++) {
		const char *v;

		persona_env_name(env, sizeof(env), settings[i].name);
		/* empty means unset, but for a list, where it means none */
		if ((v = getenv(env)) == NULL || (*v == '\0' && settings[i].type != T_WORDS))
			continue;
		if (persona_set(p, PS_ENV, settings[i].name, v, why, sizeof(why)) < 0 && rc == 0) {
			snprintf(err, errsize, "%s: %s", env, why);
			rc = -1;
		}
	}
	return rc;
}

/* distance - Levenshtein's, between two short names (at most 63 bytes each) */
static size_t
distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[64], i, j;

	if (la > 63 || lb > 63)
		return 64;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		size_t diag = row[0], up;

		row[0] = i;
		for (j = 1; j <= lb; j++) {
			up = row[j];
			row[j] = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < row[j])
				row[j] = up + 1;
			if (row[j - 1] + 1 < row[j])
				row[j] = row[j - 1] + 1;
			diag = up;
		}
	}
	return row[lb];
}

/* known_env - is "SMTP_..." (len bytes) a setting's variable, exactly as getenv() finds it */
static int
known_env(const char *e, size_t len)
{
	char name[64];
	size_t i;

	if (len - 5 >= sizeof(name))
		return 0;
	for (i = 5; i < len; i++) {
		if (e[i] >= 'A' && e[i] <= 'Z')
			name[i - 5] = (char)(e[i] + 32);
		else if (e[i] == '_')
			name[i - 5] = '-';
		else if (e[i] >= '0' && e[i] <= '9')
			name[i - 5] = e[i];
		else
			return 0;
	}
	return lookup(name, len - 5) != NULL;
}

/* closest - the setting variable nearest to an unknown one: within two edits, and
 * one edit for every four bytes of its name after SMTP_ (FOO is not LOG) */
static void
closest(const char *e, size_t len, char *hint, size_t hintsize)
{
	char var[64], env[64];
	size_t i, best = 3, d;

	hint[0] = '\0';
	if (len >= sizeof(var))
		return;
	memcpy(var, e, len);
	var[len] = '\0';
	for (i = 0; i < NSETTINGS; i++) {
		persona_env_name(env, sizeof(env), settings[i].name);
		if ((d = distance(var, env)) < best && d * 4 <= len - 5) {
			best = d;
			snprintf(hint, hintsize, "%s: did you mean %s?", var, env);
		}
	}
}

int
persona_unknown(char *buf, size_t size, char *hint, size_t hintsize)
{
	extern char **environ;
	size_t used = 0;
	char **e;
	int n = 0;

	buf[0] = '\0';
	hint[0] = '\0';
	for (e = environ; e != NULL && *e != NULL; e++) {
		size_t len = strcspn(*e, "=");

		if (len <= 5 || strncmp(*e, "SMTP_", 5) != 0 || known_env(*e, len))
			continue;
		n++;
		/* names only, never values; printable only: they are echoed in events */
		if (!printable_text_n(*e, len))
			continue;
		if (hint[0] == '\0')
			closest(*e, len, hint, hintsize);
		if (used + len + 2 > size)
			continue;
		if (used > 0)
			buf[used++] = ' ';
		memcpy(buf + used, *e, len);
		used += len;
		buf[used] = '\0';
	}
	return n;
}

void
persona_sources(const struct persona *p, char *buf, size_t size)
{
	size_t i, used = 0;
	int w;

	buf[0] = '\0';
	for (i = 0; i < NSETTINGS; i++) {
		if (p->source[i] == PS_DEFAULT)
			continue;
		w = snprintf(buf + used, size - used, "%s%s=%s", used > 0 ? " " : "", settings[i].name,
		    source_names[p->source[i]]);
		if (w < 0 || (size_t)w >= size - used) {
			buf[used] = '\0';	/* cut at a whole entry */
			break;
		}
		used += (size_t)w;
	}
	if (used == 0)
		snprintf(buf, size, "default");
}

/* --- the JSON file ----------------------------------------------------------------- */

struct parse {
	struct persona *p;
	yajl_handle h;
	const char *text;
	const char *path;
	int depth;
	int in_array;
	size_t tok;			/* where the token being handled starts */
	size_t array_start;
	char key[64];
	char list[512];			/* an array of words, joined */
	size_t list_len;
	char *err;
	size_t errsize;
};

/* where - "FILE:line:col" of the byte the parser has reached */
static void
fail_at(struct parse *ps, size_t off, const char *why)
{
	size_t line = 1, col = 1, i;

	for (i = 0; i < off && ps->text[i] != '\0'; i++) {
		if (ps->text[i] == '\n')
			line++, col = 1;
		else
			col++;
	}
	snprintf(ps->err, ps->errsize, "%s:%zu:%zu: %s", ps->path, line, col, why);
}

static int
fail(struct parse *ps, const char *why)
{
	fail_at(ps, ps->tok, why);
	return 0;	/* stops the parser */
}

/* token - note where the token that just ended began: back len bytes from the end */
static void
token(struct parse *ps, size_t len)
{
	size_t end = yajl_get_bytes_consumed(ps->h);

	ps->tok = end >= len ? end - len : 0;
}

/* quoted - note where the string that just ended began: back to its opening quote */
static void
quoted(struct parse *ps)
{
	size_t i = yajl_get_bytes_consumed(ps->h);

	if (i > 0)
		i--;	/* the closing quote */
	while (i > 0) {
		size_t bs = 0;

		i--;
		while (i >= bs + 1 && ps->text[i - bs - 1] == '\\')
			bs++;
		if (ps->text[i] == '"' && bs % 2 == 0)
			break;
	}
	ps->tok = i;
}

/* value - one setting from the file, through the common setter */
static int
value(struct parse *ps, const char *v)
{
	char why[200];

	if (ps->depth != 1)
		return fail(ps, "settings are the keys of one object, with no nesting");
	if (persona_set(ps->p, PS_FILE, ps->key, v, why, sizeof(why)) < 0)
		return fail(ps, why);
	return 1;
}

static int
on_string(void *ctx, const unsigned char *s, size_t len)
{
	struct parse *ps = ctx;
	char v[256];

	quoted(ps);
	if (len >= sizeof(v) || memchr(s, '\0', len) != NULL)
		return fail(ps, "value too long, or with a NUL byte");
	if (ps->in_array) {
		if (ps->list_len + len + 2 > sizeof(ps->list))
			return fail(ps, "list too long");
		if (ps->list_len > 0)
			ps->list[ps->list_len++] = ' ';
		memcpy(ps->list + ps->list_len, s, len);
		ps->list_len += len;
		ps->list[ps->list_len] = '\0';
		return 1;
	}
	memcpy(v, s, len);
	v[len] = '\0';
	return value(ps, v);
}

static int
on_number(void *ctx, const char *s, size_t len)
{
	struct parse *ps = ctx;
	char v[32];

	token(ps, len);
	if (ps->in_array || len >= sizeof(v))
		return fail(ps, "a list holds words, as strings");
	memcpy(v, s, len);
	v[len] = '\0';
	return value(ps, v);
}

static int
on_null(void *ctx)
{
	token(ctx, 4);
	return fail(ctx, "a value is a string, a number, or a list of strings");
}

static int
on_bool(void *ctx, int b)
{
	token(ctx, b ? 4 : 5);
	return fail(ctx, "a value is a string, a number, or a list of strings");
}

static int
on_map_start(void *ctx)
{
	struct parse *ps = ctx;

	token(ps, 1);
	if (ps->depth++ != 0)
		return fail(ps, "settings are the keys of one object, with no nesting");
	return 1;
}

static int
on_key(void *ctx, const unsigned char *k, size_t len)
{
	struct parse *ps = ctx;

	quoted(ps);
	if (len >= sizeof(ps->key) || lookup((const char *)k, len) == NULL) {
		char why[100];

		snprintf(why, sizeof(why), "unknown setting \"%.*s\"", (int)(len > 40 ? 40 : len), k);
		return fail(ps, why);
	}
	memcpy(ps->key, k, len);
	ps->key[len] = '\0';
	return 1;
}

static int
on_map_end(void *ctx)
{
	((struct parse *)ctx)->depth--;
	return 1;
}

static int
on_array_start(void *ctx)
{
	struct parse *ps = ctx;

	token(ps, 1);
	ps->array_start = ps->tok;
	if (ps->in_array || ps->depth != 1)
		return fail(ps, "a list belongs to a setting, and holds strings");
	ps->in_array = 1;
	ps->list_len = 0;
	ps->list[0] = '\0';
	return 1;
}

static int
on_array_end(void *ctx)
{
	struct parse *ps = ctx;

	ps->in_array = 0;
	ps->tok = ps->array_start;
	return value(ps, ps->list);
}

static const yajl_callbacks callbacks = {
	.yajl_null = on_null,
	.yajl_boolean = on_bool,
	.yajl_number = on_number,
	.yajl_string = on_string,
	.yajl_start_map = on_map_start,
	.yajl_map_key = on_key,
	.yajl_end_map = on_map_end,
	.yajl_start_array = on_array_start,
	.yajl_end_array = on_array_end,
};

int
persona_file(struct persona *p, const char *path, char *err, size_t errsize)
{
	struct parse ps = { .p = p, .path = path, .err = err, .errsize = errsize };
	static char text[FILE_MAX + 2];
	size_t len = 0;
	yajl_status st;
	ssize_t r;
	int fd, at_end = 0;

	err[0] = '\0';
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (len <= FILE_MAX && (r = read(fd, text + len, FILE_MAX + 1 - len)) > 0)
		len += (size_t)r;
	close(fd);
	if (len > FILE_MAX) {
		snprintf(err, errsize, "%s: larger than %d bytes", path, FILE_MAX);
		return -1;
	}
	text[len] = '\0';
	ps.text = text;
	if ((ps.h = yajl_alloc(&callbacks, NULL, &ps)) == NULL) {
		snprintf(err, errsize, "%s: out of memory", path);
		return -1;
	}
	st = yajl_parse(ps.h, (const unsigned char *)text, len);
	if (st == yajl_status_ok && (st = yajl_complete_parse(ps.h)) != yajl_status_ok)
		at_end = 1;	/* the text ended too soon */
	if (st == yajl_status_error && err[0] == '\0') {
		unsigned char *msg = yajl_get_error(ps.h, 0, NULL, 0);
		const char *m = (const char *)msg;
		char why[200];
		size_t off;

		if (strncmp(m, "parse error: ", 13) == 0)
			m += 13;
		snprintf(why, sizeof(why), "%.*s", (int)strcspn(m, "\n"), m);
		/* yajl stops just past the byte it could not take */
		off = at_end ? len + 1 : yajl_get_bytes_consumed(ps.h);
		fail_at(&ps, off > 0 ? off - 1 : 0, why);
		yajl_free_error(ps.h, msg);
	}
	yajl_free(ps.h);
	return st == yajl_status_ok && err[0] == '\0' ? 0 : -1;
}

/* --- showing them --------------------------------------------------------------------- */

void
persona_print(const struct persona *p, FILE *f)
{
	size_t i;

	for (i = 0; i < NSETTINGS; i++) {
		const struct setting *st = &settings[i];

		fprintf(f, "%-17s = ", st->name);
		switch (st->type) {
		case T_NUM:
			fprintf(f, "%llu\n", NUM(p, st->off));
			break;
		case T_RANGE:
			fprintf(f, "%llu-%llu\n", NUM(p, st->off), NUM(p, st->off2));
			break;
		case T_CHOICE:
			fprintf(f, "%s\n", st->words[INT(p, st) ? 0 : 1]);
			break;
		case T_PICK:
			fprintf(f, "%s\n", st->words[INT(p, st)]);
			break;
		default:
			fprintf(f, "%s\n", STR(p, st) ? STR(p, st) : "(default)");
		}
	}
}

void
persona_names(FILE *f)
{
	size_t i;

	for (i = 0; i < NSETTINGS; i++)
		fprintf(f, " %s", settings[i].name);
}

/*
 * persona_weak - the operator's weak credentials: "user:password" a line (the first
 * colon splits; '#' starts a comment line), at most WEAK_MAX of them.  The strings
 * live as long as the process.  0, or -1 with a reason.
 */
int
persona_weak(const char *path, struct cred **list, size_t *n, char *err, size_t errsize)
{
	static char buf[FILE_MAX + 1];
	static struct cred creds[WEAK_MAX];
	char *line, *next, *colon;
	ssize_t got;
	int fd;

	*list = creds;
	*n = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
		return -1;
	}
	got = read(fd, buf, FILE_MAX + 1);
	close(fd);
	if (got < 0 || got > FILE_MAX) {
		snprintf(err, errsize, "%s: %s", path, got < 0 ? strerror(errno) : "over 64 KiB");
		return -1;
	}
	buf[got] = '\0';
	for (line = buf; line != NULL && *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		line[strcspn(line, "\r")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if ((colon = strchr(line, ':')) == NULL || colon == line) {
			snprintf(err, errsize, "%s: a line without \"user:password\"", path);
			return -1;
		}
		if (*n == WEAK_MAX) {
			snprintf(err, errsize, "%s: more than %d credentials", path, WEAK_MAX);
			return -1;
		}
		*colon = '\0';
		creds[*n].user = line;
		creds[*n].pass = colon + 1;
		(*n)++;
	}
	return 0;
}
