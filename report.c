/*
 * report.c - decky-smtpd-report: what attacked the decky, and with what, read from the
 * journal in one pass through sd_journal, so that every value arrives as the bytes
 * decky-smtpd sent.  Memory is fixed by the bounded counting tables (count.c).
 *
 * Nothing read from the journal reaches the terminal raw: the text report escapes
 * every value (esc.c); --json writes yajl strings (base64 beside a value that is not
 * UTF-8); only --credentials writes the bytes as they are, for a file or a pipe.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>
#include <yajl/yajl_gen.h>

#include "b64.h"
#include "count.h"
#include "esc.h"
#include "keys.h"
#include "utf8.h"

#define IDENT		"decky-smtpd"
#define VALUE_MAX	24576	/* decky-smtpd's EVENT_VALUE_MAX: no value is longer */
#define NVAL		12	/* values of one entry held at once */
#define FILES_MAX	64	/* --file options */
#define HIST_BUCKETS	24	/* bars of the sessions-over-time histogram */
#define HIST_WIDTH	50	/* characters of the longest bar */
#define TOP_DEFAULT	10	/* rows per section unless --top */
#define CAP_BIG		4096	/* keys kept by the tables that can grow without end */
#define CAP_SMALL	256	/* keys kept by the tables of few distinct values */
#define SHOW_MAX	64	/* bytes of a value shown in a text row */
#define MATCH_MAX	200	/* bytes of a --source or --session value */
#define SEEN_WINDOW	32768	/* entries remembered to find one written twice */
#define SEEN_SLOTS	(2 * SEEN_WINDOW)

enum table {
	T_SRC, T_DECKY, T_USER, T_PASS, T_PAIR, T_MECH, T_RCPT_DOM, T_FROM_DOM,
	T_SHA, T_SUBJECT, T_ATT_SHA, T_URL_HOST, T_JA4, T_JA3, T_SNI, T_TLSVER,
	T_HELO, T_PROBE, T_PROBE_KIND, T_REASON, T_COUNT
};

/* a section of the report: its table, title, and the names of its side counters */
static const struct section {
	enum table t;
	const char *name, *title;
	size_t cap;
	const char *aux[COUNT_AUX];	/* NULL-ended */
	int times;			/* show first and last seen */
} sections[] = {
	{ T_SRC, "top_sources", "Top sources (by events)", CAP_BIG,
	    { "sessions", "credentials", "messages", NULL }, 1 },
	{ T_DECKY, "deckies", "Deckies (persona host name / journal host)", CAP_SMALL,
	    { "sessions", "credentials", "messages", NULL }, 1 },
	{ T_USER, "usernames", "Top user names", CAP_BIG, { NULL }, 0 },
	{ T_PASS, "passwords", "Top passwords", CAP_BIG, { NULL }, 0 },
	{ T_PAIR, "pairs", "Top user name / password pairs", CAP_BIG, { NULL }, 0 },
	{ T_MECH, "mechanisms", "Credentials by mechanism and result", CAP_SMALL, { NULL }, 0 },
	{ T_RCPT_DOM, "recipient_domains", "Relay targets (recipient domains)", CAP_BIG,
	    { NULL }, 0 },
	{ T_FROM_DOM, "sender_domains", "Sender domains", CAP_BIG, { NULL }, 0 },
	{ T_SHA, "campaigns_sha256", "Campaigns by message SHA-256", CAP_BIG, { NULL }, 1 },
	{ T_SUBJECT, "campaigns_subject", "Campaigns by normalised Subject", CAP_BIG,
	    { NULL }, 1 },
	{ T_ATT_SHA, "campaigns_attachment", "Campaigns by attachment SHA-256", CAP_BIG,
	    { NULL }, 1 },
	{ T_URL_HOST, "campaigns_url_host", "Campaigns by URL host", CAP_BIG, { NULL }, 1 },
	{ T_JA4, "tls_ja4", "TLS clients by JA4", CAP_BIG, { NULL }, 0 },
	{ T_JA3, "tls_ja3", "TLS clients by JA3", CAP_BIG, { NULL }, 0 },
	{ T_SNI, "tls_sni", "TLS server names asked for (SNI)", CAP_BIG, { NULL }, 0 },
	{ T_TLSVER, "tls_versions", "TLS handshakes by result and version", CAP_SMALL,
	    { NULL }, 0 },
	{ T_HELO, "helo", "HELO/EHLO names", CAP_BIG, { NULL }, 0 },
	{ T_PROBE_KIND, "probe_kinds", "Non-SMTP probes by kind", CAP_SMALL, { NULL }, 0 },
	{ T_PROBE, "probes", "Non-SMTP probes (first line)", CAP_BIG, { NULL }, 1 },
	{ T_REASON, "disconnect_reasons", "Sessions by how they ended", CAP_SMALL, { NULL }, 0 },
};
#define NSECTION (sizeof(sections) / sizeof(sections[0]))

/* one value of the current entry, copied (sd_journal_get_data reuses its buffer) */
struct val {
	int has;
	size_t len;
	char b[VALUE_MAX + 1];
};

static struct {
	struct count_table *t[T_COUNT];
	uint64_t events, sessions, messages, bytes, partials, auths, analyzed;
	uint64_t resent;		/* entries found twice, counted once */
	uint64_t first, last;		/* realtime usec of the first and last entry */
	uint64_t hlo, hstep, hist[HIST_BUCKETS];
} R;

static struct {
	const char *directory, *files[FILES_MAX + 1];
	size_t nfile;
	uint64_t since, until;
	const char *src, *decky, *session, *credentials;
	int json;
	size_t top;
} opt = { .until = UINT64_MAX, .top = TOP_DEFAULT };

static struct val V[NVAL];

static void
usage(int status)
{
	fprintf(status ? stderr : stdout, "usage: decky-smtpd-report [--json] [--credentials csv|usernames|passwords]\n"
	    "    [--directory DIR | --file FILE ...] [--since TIME] [--until TIME]\n"
	    "    [--source ADDR] [--decky NAME] [--session ID] [--top N]\n");
	exit(status);
}

/* get - NAME's value of the current entry into v; 1 if the entry has it */
static int
get(sd_journal *j, const char *name, struct val *v)
{
	const void *d;
	size_t len, nl = strlen(name);

	v->has = 0;
	v->len = 0;
	v->b[0] = '\0';
	if (sd_journal_get_data(j, name, &d, &len) < 0 || len <= nl)
		return 0;
	len -= nl + 1;
	if (len > VALUE_MAX)
		len = VALUE_MAX;
	memcpy(v->b, (const char *)d + nl + 1, len);
	v->b[len] = '\0';
	v->len = len;
	v->has = 1;
	return 1;
}

static int
is(const struct val *v, const char *s)
{
	return v->has && v->len == strlen(s) && memcmp(v->b, s, v->len) == 0;
}

static struct count_entry *
add(enum table t, const char *k, size_t len, uint64_t usec)
{
	return count_add(R.t[t], k, len, 1, usec);
}

static struct count_entry *
addv(enum table t, const struct val *v, uint64_t usec)
{
	return v->has ? add(t, v->b, v->len, usec) : NULL;
}

/* decky - the key of the entry's decky: PERSONA_HOSTNAME, NUL, _HOSTNAME */
static size_t
decky_key(const struct val *persona, const struct val *host, char *out, size_t size)
{
	size_t a = persona->len, b = host->len;

	if (a + b + 1 > size)
		return 0;
	memcpy(out, persona->b, a);
	out[a] = '\0';
	memcpy(out + a + 1, host->b, b);
	return a + 1 + b;
}

/*
 * hist_add - one session in the histogram.  The buckets start at the first session,
 * a second wide; a session past the last bucket doubles their width (each pair of
 * buckets becomes one) until it fits, so one pass needs no range known beforehand.
 */
static void
hist_add(uint64_t usec)
{
	size_t i;

	if (R.hstep == 0) {
		R.hlo = usec - usec % 1000000;
		R.hstep = 1000000;
	}
	if (usec < R.hlo)
		usec = R.hlo;	/* entries are in time order; a clock step back stays in */
	while ((usec - R.hlo) / R.hstep >= HIST_BUCKETS) {
		for (i = 0; i < HIST_BUCKETS / 2; i++)
			R.hist[i] = R.hist[2 * i] + R.hist[2 * i + 1];
		memset(R.hist + HIST_BUCKETS / 2, 0, sizeof(R.hist) / 2);
		R.hstep *= 2;
	}
	R.hist[(usec - R.hlo) / R.hstep]++;
}

/*
 * Entries written twice.  When its collector stops, systemd-journal-upload sends again
 * what the failed upload held, and systemd-journal-remote writes it again into the same
 * file, where sd_journal does not merge it (it merges copies only across files).  An
 * entry is known by its boot, the two stamps its own journald gave it (two entries can
 * share them) and the hash of its fields (_MACHINE_ID and _HOSTNAME among them), all
 * of which journal-remote keeps and the cursor holds.  A 64-bit hash of them is
 * remembered for the last SEEN_WINDOW to 2 * SEEN_WINDOW entries, in two generations of
 * an open-addressed table, so that the memory is fixed; a copy written further from its
 * original is counted twice.
 */
static struct {
	uint64_t slot[2][SEEN_SLOTS];	/* the current and the previous generation; 0: empty */
	int cur;
	size_t n;			/* hashes in the current generation */
} Seen;

static size_t
seen_find(const uint64_t *t, uint64_t h)
{
	size_t i;

	for (i = h % SEEN_SLOTS; t[i] != 0 && t[i] != h; i = (i + 1) % SEEN_SLOTS)
		;
	return i;
}

/* resent - 1 if the current entry is one already read; else remember it */
static int
resent(sd_journal *j)
{
	char *cursor, *from;
	uint64_t h, *t;
	size_t i;

	/* "s=<file's seqnum id>;i=<seqnum>;b=<boot>;m=<monotonic>;t=<realtime>;x=<hash>":
	 * what follows the file's own numbers is the entry's, the same in every copy */
	if (sd_journal_get_cursor(j, &cursor) < 0)
		return 0;
	from = strstr(cursor, ";b=");
	h = from != NULL ? count_hash(from, strlen(from)) : 0;
	free(cursor);
	if (h == 0)
		return 0;
	if (Seen.slot[0][seen_find(Seen.slot[0], h)] == h ||
	    Seen.slot[1][seen_find(Seen.slot[1], h)] == h)
		return 1;
	if (Seen.n == SEEN_WINDOW) {
		Seen.cur ^= 1;
		memset(Seen.slot[Seen.cur], 0, sizeof(Seen.slot[Seen.cur]));
		Seen.n = 0;
	}
	t = Seen.slot[Seen.cur];
	i = seen_find(t, h);
	t[i] = h;
	Seen.n++;
	return 0;
}

/* analyzed - a message_analyzed entry: each ATTACHMENT_SHA256 and URL_HOST it holds */
static void
analyzed(sd_journal *j, uint64_t usec)
{
	const void *d;
	size_t len;

	R.analyzed++;
	SD_JOURNAL_FOREACH_DATA(j, d, len) {
		const char *p = d;

		if (len > 18 && memcmp(p, "ATTACHMENT_SHA256=", 18) == 0)
			add(T_ATT_SHA, p + 18, len - 18, usec);
		else if (len > 9 && memcmp(p, "URL_HOST=", 9) == 0)
			add(T_URL_HOST, p + 9, len - 9, usec);
	}
}

/* csv_field - one field of --credentials csv: empty when absent, else quoted */
static void
csv_field(const struct val *v, int last)
{
	size_t i;

	if (v->has) {
		putchar('"');
		for (i = 0; i < v->len; i++) {
			if (v->b[i] == '"')
				putchar('"');
			putchar(v->b[i]);
		}
		putchar('"');
	}
	fputs(last ? "\r\n" : ",", stdout);
}

static void
export_credential(sd_journal *j, uint64_t usec)
{
	static const char *names[] = { "SRC", "PERSONA_HOSTNAME", "_HOSTNAME", "SESSION_ID",
	    "MECHANISM", "RESULT", "AUTHZID", "USERNAME", "PASSWORD", "DIGEST", "CHALLENGE",
	    "RAW" };
	struct val *v = V;
	size_t i;

	if (strcmp(opt.credentials, "usernames") == 0 ||
	    strcmp(opt.credentials, "passwords") == 0) {
		if (get(j, opt.credentials[0] == 'u' ? "USERNAME" : "PASSWORD", v)) {
			fwrite(v->b, 1, v->len, stdout);
			putchar('\0');
		}
		return;
	}
	printf("%llu.%06llu,", (unsigned long long)(usec / 1000000),
	    (unsigned long long)(usec % 1000000));
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		get(j, names[i], v);
		csv_field(v, i + 1 == sizeof(names) / sizeof(names[0]));
	}
}

/* entry - fold the current journal entry into the report */
static void
entry(sd_journal *j)
{
	struct val *type = &V[0], *src = &V[1], *persona = &V[2], *host = &V[3];
	struct val *a = &V[4], *b = &V[5], *c = &V[6];
	struct count_entry *s, *d;
	char key[2 * VALUE_MAX + 2];
	uint64_t usec = 0;
	size_t n;

	sd_journal_get_realtime_usec(j, &usec);
	if (usec > opt.until)
		return;	/* in a file entries follow their seqnum: a clock step back, or a
			 * collector's re-sent entry, can come after a later one */
	if (resent(j)) {
		R.resent++;
		return;
	}
	if (!get(j, "EVENT_TYPE", type))
		return;
	get(j, "PERSONA_HOSTNAME", persona);
	get(j, "_HOSTNAME", host);
	if (opt.decky != NULL && !is(persona, opt.decky) && !is(host, opt.decky))
		return;
	if (opt.credentials != NULL) {
		if (is(type, "auth_attempt"))
			export_credential(j, usec);
		return;
	}
	R.events++;
	if (R.first == 0)
		R.first = usec;
	R.last = usec;
	if (is(type, "message_analyzed")) {
		analyzed(j, usec);
		return;
	}
	get(j, "SRC", src);
	s = addv(T_SRC, src, usec);
	n = decky_key(persona, host, key, sizeof(key));
	d = add(T_DECKY, key, n, usec);
	if (is(type, "connect")) {
		R.sessions++;
		hist_add(usec);
		if (s != NULL)
			s->aux[0]++;
		d->aux[0]++;
	} else if (is(type, "auth_attempt")) {
		R.auths++;
		if (s != NULL)
			s->aux[1]++;
		d->aux[1]++;
		get(j, "USERNAME", a);
		get(j, "PASSWORD", b);
		get(j, "MECHANISM", c);
		addv(T_USER, a, usec);
		addv(T_PASS, b, usec);
		if (a->has || b->has) {
			memcpy(key, a->b, a->len);
			key[a->len] = '\0';
			memcpy(key + a->len + 1, b->b, b->len);
			add(T_PAIR, key, a->len + 1 + b->len, usec);
		}
		get(j, "RESULT", a);
		n = (size_t)snprintf(key, sizeof(key), "%.64s %.64s", c->b, a->b);
		add(T_MECH, key, n, usec);
	} else if (is(type, "message_accepted")) {
		R.messages++;
		if (s != NULL)
			s->aux[2]++;
		d->aux[2]++;
		if (get(j, "BODY_BYTES", a))
			R.bytes += strtoull(a->b, NULL, 10);
		get(j, "SHA256", a);
		addv(T_SHA, a, usec);
		if (get(j, "HDR_SUBJECT", a)) {
			n = keys_subject(a->b, a->len, key, sizeof(key));
			add(T_SUBJECT, key, n, usec);
		}
	} else if (is(type, "message_partial")) {
		R.partials++;
	} else if (is(type, "rcpt_to") || is(type, "mail_from")) {
		if (!get(j, "ADDRESS", a))	/* only where it differs from VALUE */
			get(j, "VALUE", a);
		n = keys_domain(a->has ? a->b : "", a->len, key, sizeof(key));
		add(type->b[0] == 'r' ? T_RCPT_DOM : T_FROM_DOM, key, n, usec);
	} else if (is(type, "tls")) {
		get(j, "JA4", a);
		addv(T_JA4, a, usec);
		get(j, "JA3_HASH", a);
		addv(T_JA3, a, usec);
		get(j, "TLS_SNI", a);
		addv(T_SNI, a, usec);
		get(j, "TLS_RESULT", a);
		get(j, "TLS_VERSION", b);
		n = (size_t)snprintf(key, sizeof(key), "%.32s %.32s", a->b, b->b);
		add(T_TLSVER, key, n, usec);
	} else if (is(type, "ehlo")) {
		get(j, "DOMAIN", a);
		addv(T_HELO, a, usec);
	} else if (is(type, "command")) {
		int nonsmtp = get(j, "COMMAND", a) && is(a, "NON_SMTP");

		/* a TLS client on the plain port: its ClientHello's first "line" is a TLS
		 * record (0x16 0x03), NON_SMTP or, cut at a NUL, a command of its own */
		if (get(j, "VALUE", b) && (nonsmtp ||
		    (b->len >= 2 && (unsigned char)b->b[0] == 0x16 && b->b[1] == 0x03))) {
			const char *k = keys_probe_kind(b->b, b->len);

			add(T_PROBE_KIND, k, strlen(k), usec);
			add(T_PROBE, b->b, b->len, usec);
		}
	} else if (is(type, "disconnect")) {
		get(j, "REASON", a);
		addv(T_REASON, a, usec);
	}
}

/*
 * parse_time - TIME as journalctl takes it, in part: "now", "today", "yesterday",
 * "tomorrow", "@EPOCH", "-N" or "+N" with a unit (s, min, m, h, d, w), or
 * "YYYY-MM-DD[ HH:MM[:SS]]" in local time ('T' may stand for the space)
 */
static int
parse_time(const char *s, uint64_t *usec)
{
	struct timespec now;
	struct tm tm;
	char *end;
	time_t t;

	clock_gettime(CLOCK_REALTIME, &now);
	t = now.tv_sec;
	if (strcmp(s, "now") == 0) {
		*usec = (uint64_t)now.tv_sec * 1000000 + (uint64_t)now.tv_nsec / 1000;
		return 0;
	}
	if (*s == '@') {
		long long e = strtoll(s + 1, &end, 10);

		if (end == s + 1 || *end != '\0' || e < 0)
			return -1;
		*usec = (uint64_t)e * 1000000;
		return 0;
	}
	if (*s == '-' || *s == '+') {
		long long n = strtoll(s + 1, &end, 10), mul;

		if (end == s + 1 || n < 0)
			return -1;
		if (*end == '\0' || strcmp(end, "s") == 0 || strcmp(end, "sec") == 0)
			mul = 1;
		else if (strcmp(end, "min") == 0 || strcmp(end, "m") == 0)
			mul = 60;
		else if (strcmp(end, "h") == 0)
			mul = 3600;
		else if (strcmp(end, "d") == 0)
			mul = 86400;
		else if (strcmp(end, "w") == 0)
			mul = 7 * 86400;
		else
			return -1;
		t += (*s == '-' ? -1 : 1) * n * mul;
		*usec = (uint64_t)t * 1000000;
		return 0;
	}
	localtime_r(&t, &tm);
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = -1;
	if (strcmp(s, "today") == 0 || strcmp(s, "yesterday") == 0 ||
	    strcmp(s, "tomorrow") == 0) {
		tm.tm_mday += s[0] == 'y' ? -1 : s[2] == 'm' ? 1 : 0;
	} else {
		memset(&tm, 0, sizeof(tm));
		tm.tm_isdst = -1;
		end = strptime(s, "%Y-%m-%d", &tm);
		if (end == NULL)
			return -1;
		if (*end == ' ' || *end == 'T') {
			char *e2 = strptime(end + 1, "%H:%M:%S", &tm);

			if (e2 == NULL)
				e2 = strptime(end + 1, "%H:%M", &tm);
			end = e2;
		}
		if (end == NULL || *end != '\0')
			return -1;
	}
	t = mktime(&tm);
	if (t == (time_t)-1)
		return -1;
	*usec = (uint64_t)t * 1000000;
	return 0;
}

/* matches - the journal matches: decky-smtpd's entries and the analyzer's events */
static int
matches(sd_journal *j)
{
	static const char *groups[] = { "SYSLOG_IDENTIFIER=" IDENT,
	    "EVENT_TYPE=message_analyzed" };
	char m[MATCH_MAX + 16];
	size_t g;
	int rc = 0;

	for (g = 0; g < 2 && rc >= 0; g++) {
		if (g > 0)
			rc = sd_journal_add_disjunction(j);
		if (rc >= 0)
			rc = sd_journal_add_match(j, groups[g], 0);
		if (rc >= 0 && opt.src != NULL) {
			snprintf(m, sizeof(m), "SRC=%s", opt.src);
			rc = sd_journal_add_match(j, m, 0);
		}
		if (rc >= 0 && opt.session != NULL) {
			snprintf(m, sizeof(m), "SESSION_ID=%s", opt.session);
			rc = sd_journal_add_match(j, m, 0);
		}
	}
	return rc;
}

static void
stamp(char *buf, size_t size, uint64_t usec)
{
	time_t t = (time_t)(usec / 1000000);
	struct tm tm;

	if (usec == 0) {
		snprintf(buf, size, "-");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* show - one key for the terminal; a decky's key as "persona / host" */
static void
show_key(const struct section *sec, const struct count_entry *e)
{
	const char *nul = sec->t == T_DECKY || sec->t == T_PAIR ?
	    memchr(e->key, '\0', e->klen) : NULL;

	if (nul != NULL) {
		size_t a = (size_t)(nul - e->key);

		esc_fput(stdout, e->key, a, SHOW_MAX);
		fputs(sec->t == T_DECKY ? " / " : " : ", stdout);
		esc_fput(stdout, nul + 1, e->klen - a - 1, SHOW_MAX);
	} else
		esc_fput(stdout, e->key, e->klen, SHOW_MAX);
	if (e->len > e->klen || e->len > SHOW_MAX)
		printf(" (%zu bytes)", e->len);
}

static void
text_section(const struct section *sec, struct count_entry **rows)
{
	struct count_table *t = R.t[sec->t];
	char a[32], b[32];
	size_t n, i, k;

	if (sec->t == T_DECKY && t->n < 2)
		return;	/* per decky only when there are several */
	printf("\n%s: %zu distinct%s\n", sec->title, t->n,
	    t->evicted ? " (more than the table holds: counts approximate)" : "");
	n = count_sorted(t, rows, opt.top);
	for (i = 0; i < n; i++) {
		struct count_entry *e = rows[i];

		printf("  %8llu", (unsigned long long)e->count);
		if (e->err)
			printf(" (-%llu)", (unsigned long long)e->err);
		for (k = 0; k < COUNT_AUX && sec->aux[k] != NULL; k++)
			printf(" %s %llu", sec->aux[k], (unsigned long long)e->aux[k]);
		if (sec->times) {
			stamp(a, sizeof(a), e->first);
			stamp(b, sizeof(b), e->last);
			printf(" %s..%s", a, b);
		}
		fputs("  ", stdout);
		show_key(sec, e);
		putchar('\n');
	}
}

static void
text(struct count_entry **rows)
{
	char a[32], b[32];
	uint64_t max = 0;
	size_t i, k;

	stamp(a, sizeof(a), R.first);
	stamp(b, sizeof(b), R.last);
	printf("Period: %s .. %s\n", a, b);
	printf("Events %llu, sessions %llu, distinct sources %zu%s, credentials tried %llu\n",
	    (unsigned long long)R.events, (unsigned long long)R.sessions, R.t[T_SRC]->n,
	    R.t[T_SRC]->evicted ? "+" : "", (unsigned long long)R.auths);
	printf("Messages %llu (%llu bytes), partial %llu, analyzed %llu\n",
	    (unsigned long long)R.messages, (unsigned long long)R.bytes,
	    (unsigned long long)R.partials, (unsigned long long)R.analyzed);
	if (R.resent > 0)
		printf("Entries written twice (re-sent to a collector), counted once: %llu\n",
		    (unsigned long long)R.resent);
	printf("\nSessions over time (%llu s a bar):\n",
	    (unsigned long long)(R.hstep / 1000000));
	for (i = 0; i < HIST_BUCKETS; i++)
		if (R.hist[i] > max)
			max = R.hist[i];
	for (i = 0; i < HIST_BUCKETS && max > 0; i++) {
		stamp(a, sizeof(a), R.hlo + i * R.hstep);
		printf("  %s %8llu ", a, (unsigned long long)R.hist[i]);
		for (k = 0; k < (R.hist[i] * HIST_WIDTH + max - 1) / max; k++)
			putchar('#');
		putchar('\n');
	}
	for (i = 0; i < NSECTION; i++)
		text_section(&sections[i], rows);
}

static void
jstr(yajl_gen g, const char *s)
{
	yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

static void
jnum(yajl_gen g, const char *k, uint64_t n)
{
	char b[24];

	jstr(g, k);
	snprintf(b, sizeof(b), "%llu", (unsigned long long)n);
	yajl_gen_number(g, b, strlen(b));
}

/* jbytes - k: the bytes as a string if UTF-8, else escaped, with k_base64 beside */
static void
jbytes(yajl_gen g, const char *k, const char *p, size_t len)
{
	static char esc[4 * COUNT_KEY_MAX + 1], b64[B64_ENCODED_LEN(COUNT_KEY_MAX) + 1];
	char kb[64];

	jstr(g, k);
	if (utf8_valid((const unsigned char *)p, len)) {
		yajl_gen_string(g, (const unsigned char *)p, len);
		return;
	}
	esc_buf(esc, sizeof(esc), p, len, len);
	jstr(g, esc);
	snprintf(kb, sizeof(kb), "%s_base64", k);
	jstr(g, kb);
	yajl_gen_string(g, (const unsigned char *)b64,
	    b64_encode((const unsigned char *)p, len, b64));
}

static void
json_section(yajl_gen g, const struct section *sec, struct count_entry **rows)
{
	struct count_table *t = R.t[sec->t];
	char a[32];
	size_t n, i, k;

	jstr(g, sec->name);
	yajl_gen_map_open(g);
	jnum(g, "distinct", t->n);
	jstr(g, "approximate");
	yajl_gen_bool(g, t->evicted > 0);
	jnum(g, "total", t->total);
	jstr(g, "top");
	yajl_gen_array_open(g);
	n = count_sorted(t, rows, opt.top);
	for (i = 0; i < n; i++) {
		struct count_entry *e = rows[i];
		const char *nul = sec->t == T_DECKY || sec->t == T_PAIR ?
		    memchr(e->key, '\0', e->klen) : NULL;

		yajl_gen_map_open(g);
		if (nul != NULL) {
			size_t l = (size_t)(nul - e->key);

			jbytes(g, sec->t == T_DECKY ? "persona_hostname" : "username", e->key, l);
			jbytes(g, sec->t == T_DECKY ? "hostname" : "password", nul + 1,
			    e->klen - l - 1);
		} else
			jbytes(g, "value", e->key, e->klen);
		jnum(g, "bytes", e->len);
		if (e->len > e->klen) {
			jstr(g, "truncated");
			yajl_gen_bool(g, 1);
		}
		jnum(g, "count", e->count);
		jnum(g, "error", e->err);
		for (k = 0; k < COUNT_AUX && sec->aux[k] != NULL; k++)
			jnum(g, sec->aux[k], e->aux[k]);
		if (sec->times) {
			stamp(a, sizeof(a), e->first);
			jstr(g, "first");
			jstr(g, a);
			stamp(a, sizeof(a), e->last);
			jstr(g, "last");
			jstr(g, a);
		}
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
}

static int
json(struct count_entry **rows)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	const unsigned char *out;
	char a[32];
	size_t len, i;

	if (g == NULL)
		return -1;
	yajl_gen_config(g, yajl_gen_validate_utf8, 1);
	yajl_gen_config(g, yajl_gen_beautify, 1);
	yajl_gen_map_open(g);
	stamp(a, sizeof(a), R.first);
	jstr(g, "first");
	jstr(g, a);
	stamp(a, sizeof(a), R.last);
	jstr(g, "last");
	jstr(g, a);
	jnum(g, "events", R.events);
	jnum(g, "sessions", R.sessions);
	jnum(g, "distinct_sources", R.t[T_SRC]->n);
	jnum(g, "credentials", R.auths);
	jnum(g, "messages", R.messages);
	jnum(g, "message_bytes", R.bytes);
	jnum(g, "partial", R.partials);
	jnum(g, "analyzed", R.analyzed);
	jnum(g, "resent", R.resent);
	jstr(g, "histogram");
	yajl_gen_map_open(g);
	stamp(a, sizeof(a), R.hlo);
	jstr(g, "start");
	jstr(g, a);
	jnum(g, "bucket_seconds", R.hstep / 1000000);
	jstr(g, "sessions");
	yajl_gen_array_open(g);
	for (i = 0; i < HIST_BUCKETS; i++) {
		char b[24];

		snprintf(b, sizeof(b), "%llu", (unsigned long long)R.hist[i]);
		yajl_gen_number(g, b, strlen(b));
	}
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
	for (i = 0; i < NSECTION; i++)
		json_section(g, &sections[i], rows);
	yajl_gen_map_close(g);
	yajl_gen_get_buf(g, &out, &len);
	fwrite(out, 1, len, stdout);
	yajl_gen_free(g);
	return 0;
}

static sd_journal *
open_journal(void)
{
	sd_journal *j = NULL;
	int rc;

	if (opt.directory != NULL)
		rc = sd_journal_open_directory(&j, opt.directory, 0);
	else if (opt.nfile > 0)
		rc = sd_journal_open_files(&j, opt.files, 0);
	else
		rc = sd_journal_open(&j, 0);
	if (rc < 0) {
		fprintf(stderr, "decky-smtpd-report: cannot open the journal: %s\n", strerror(-rc));
		exit(1);
	}
	sd_journal_set_data_threshold(j, 0);	/* every value whole */
	return j;
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "credentials", required_argument, NULL, 'c' },
		{ "directory", required_argument, NULL, 'D' },
		{ "file", required_argument, NULL, 'f' },
		{ "since", required_argument, NULL, 'S' },
		{ "until", required_argument, NULL, 'U' },
		{ "source", required_argument, NULL, 's' },
		{ "decky", required_argument, NULL, 'd' },
		{ "session", required_argument, NULL, 'i' },
		{ "top", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	static struct count_entry *rows[CAP_BIG];
	sd_journal *j;
	size_t i;
	int c, rc;

	while ((c = getopt_long(argc, argv, "jc:D:f:S:U:s:d:i:n:h", lopts, NULL)) != -1) {
		switch (c) {
		case 'j': opt.json = 1; break;
		case 'c':
			if (strcmp(optarg, "csv") != 0 && strcmp(optarg, "usernames") != 0 &&
			    strcmp(optarg, "passwords") != 0)
				usage(2);
			opt.credentials = optarg;
			break;
		case 'D': opt.directory = optarg; break;
		case 'f':
			if (opt.nfile == FILES_MAX)
				usage(2);
			opt.files[opt.nfile++] = optarg;
			break;
		case 'S':
		case 'U':
			if (parse_time(optarg, c == 'S' ? &opt.since : &opt.until) < 0) {
				fprintf(stderr, "decky-smtpd-report: bad time: %s\n", optarg);
				exit(2);
			}
			break;
		case 's': opt.src = optarg; break;
		case 'd': opt.decky = optarg; break;
		case 'i': opt.session = optarg; break;
		case 'n':
			opt.top = strtoul(optarg, NULL, 10);
			if (opt.top == 0 || opt.top > CAP_BIG)
				usage(2);
			break;
		case 'h': usage(0); break;
		default: usage(2);
		}
	}
	if (optind != argc || (opt.directory != NULL && opt.nfile > 0))
		usage(2);
	if ((opt.src != NULL && strlen(opt.src) > MATCH_MAX) ||
	    (opt.session != NULL && strlen(opt.session) > MATCH_MAX)) {
		fprintf(stderr, "decky-smtpd-report: --source or --session longer than %d bytes\n",
		    MATCH_MAX);
		exit(2);
	}
	if (opt.credentials != NULL && isatty(STDOUT_FILENO)) {
		fprintf(stderr, "decky-smtpd-report: --credentials writes raw bytes: "
		    "send it to a file or a pipe, not a terminal\n");
		exit(2);
	}
	for (i = 0; i < NSECTION; i++)
		if ((R.t[sections[i].t] = count_new(sections[i].cap)) == NULL) {
			fprintf(stderr, "decky-smtpd-report: out of memory\n");
			exit(1);
		}
	j = open_journal();
	if (matches(j) < 0) {
		fprintf(stderr, "decky-smtpd-report: bad filter\n");
		exit(2);
	}
	if (opt.credentials != NULL && strcmp(opt.credentials, "csv") == 0)
		fputs("time,src,persona_hostname,hostname,session_id,mechanism,result,"
		    "authzid,username,password,digest,challenge,raw\r\n", stdout);
	rc = opt.since != 0 ? sd_journal_seek_realtime_usec(j, opt.since) :
	    sd_journal_seek_head(j);
	while (rc >= 0 && (rc = sd_journal_next(j)) > 0)
		entry(j);
	if (rc < 0)
		fprintf(stderr, "decky-smtpd-report: reading the journal: %s\n", strerror(-rc));
	if (opt.credentials == NULL) {
		if (opt.json && json(rows) < 0)
			rc = -ENOMEM;
		else if (!opt.json)
			text(rows);
	}
	if (fflush(stdout) == EOF || ferror(stdout))
		rc = -EIO;
	sd_journal_close(j);
	for (i = 0; i < T_COUNT; i++)
		count_free(R.t[i]);
	return rc < 0 ? 1 : 0;
}
