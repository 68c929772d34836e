/*
 * analysis.c - struct mime_result as JSON.  Every string that came from the message
 * passes analysis_escape() first, so that the document, the event and a terminal that
 * shows either see no control byte, no bidi or invisible format control and no broken
 * UTF-8.  It does no I/O.
 */
#include <stdio.h>
#include <string.h>

#include "analysis.h"
#include "utf8.h"

/*
 * invisible - the code point of the k-byte UTF-8 character p if it is a bidi or
 * invisible format control, else 0.  They are valid UTF-8 but change what a terminal
 * shows: "invoice\u202efdp.exe" displays as "invoiceexe.pdf".
 */
static unsigned
invisible(const unsigned char *p, size_t k)
{
	unsigned cp;

	if (k == 2)
		cp = (p[0] & 0x1fu) << 6 | (p[1] & 0x3fu);
	else if (k == 3)
		cp = (p[0] & 0x0fu) << 12 | (p[1] & 0x3fu) << 6 | (p[2] & 0x3fu);
	else
		return 0;
	if (cp == 0x061c || (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x202a && cp <= 0x202e) ||
	    (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff)
		return cp;
	return 0;
}

size_t
analysis_escape(char *out, size_t size, const char *in, size_t len)
{
	size_t i = 0, n = 0;

	if (size == 0)
		return 0;
	while (i < len && n + 5 < size) {
		const unsigned char *p = (const unsigned char *)in + i;
		unsigned char c = *p;
		size_t k = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
		int valid = c >= 0x80 && i + k <= len && utf8_valid(p, k);
		unsigned cp = valid ? invisible(p, k) : 0;

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			out[n++] = (char)c;
			i++;
		} else if (c == '\\') {
			out[n++] = '\\';
			out[n++] = '\\';
			i++;
		} else if (cp != 0) {
			if (n + 6 >= size)
				break;	/* (no room for all of it) */
			n += (size_t)snprintf(out + n, size - n, "\\u%04x", cp);
			i += k;
		} else if (valid && n + k < size && !(c == 0xc2 && p[1] < 0xa0)) {	/* C1 controls */
			memcpy(out + n, p, k);
			n += k;
			i += k;
		} else {
			n += (size_t)snprintf(out + n, size - n, "\\x%02x", c);
			i++;
		}
	}
	out[n] = '\0';
	return n;
}

static int refused;	/* a yajl call of this document failed */

static void
ok(yajl_gen_status s)
{
	if (s != yajl_gen_status_ok)
		refused = 1;
}

static void
key(yajl_gen g, const char *k)
{
	ok(yajl_gen_string(g, (const unsigned char *)k, strlen(k)));
}

/* elem - an escaped value (NULL as "") */
static void
elem(yajl_gen g, const char *val)
{
	static char buf[ANALYSIS_VALUE_MAX];
	size_t n;

	if (val == NULL)
		val = "";
	n = analysis_escape(buf, sizeof(buf), val, strlen(val));
	ok(yajl_gen_string(g, (const unsigned char *)buf, n));
}

/* str - "key": escaped value */
static void
str(yajl_gen g, const char *k, const char *val)
{
	key(g, k);
	elem(g, val);
}

static void
num(yajl_gen g, const char *k, unsigned long long v)
{
	key(g, k);
	ok(yajl_gen_integer(g, (long long)v));
}

/* numstr - "KEY": "123" (event values are strings, as journald's are) */
static void
numstr(yajl_gen g, const char *k, unsigned long long v)
{
	char b[32];

	snprintf(b, sizeof(b), "%llu", v);
	str(g, k, b);
}

/* names - the names of the bits set, space-separated */
static void
names(char *out, size_t size, unsigned bits, const char *(*name)(unsigned), unsigned max)
{
	size_t n = 0;
	unsigned i;

	out[0] = '\0';
	for (i = 0; i < max; i++)
		if ((bits & (1u << i)) && name(i) != NULL && n + strlen(name(i)) + 2 < size)
			n += (size_t)snprintf(out + n, size - n, "%s%s", n ? " " : "", name(i));
}

static void
clamp_str(char *s, size_t size)
{
	s[size - 1] = '\0';
}

void
analysis_clamp(struct mime_result *r)
{
	unsigned i;

	if (r->stage >= MS_COUNT)
		r->stage = MS_NONE;
	if (r->ntypes > MIME_TYPES_MAX)
		r->ntypes = MIME_TYPES_MAX;
	if (r->nreceived > MIME_RECEIVED_MAX)
		r->nreceived = MIME_RECEIVED_MAX;
	if (r->ncharsets > MIME_CHARSETS_MAX)
		r->ncharsets = MIME_CHARSETS_MAX;
	if (r->natt > MIME_ATTACH_MAX)
		r->natt = MIME_ATTACH_MAX;
	if (r->links.n > LINKS_MAX)
		r->links.n = LINKS_MAX;
	for (i = 0; i < MIME_TYPES_MAX; i++)
		clamp_str(r->types[i], sizeof(r->types[i]));
	for (i = 0; i < MIME_RECEIVED_MAX; i++)
		clamp_str(r->received[i], sizeof(r->received[i]));
	for (i = 0; i < MIME_CHARSETS_MAX; i++)
		clamp_str(r->charsets[i], sizeof(r->charsets[i]));
	clamp_str(r->subject, sizeof(r->subject));
	clamp_str(r->from, sizeof(r->from));
	clamp_str(r->language, sizeof(r->language));
	for (i = 0; i < MIME_ATTACH_MAX; i++) {
		struct mime_attachment *a = &r->att[i];

		clamp_str(a->name_sent, sizeof(a->name_sent));
		clamp_str(a->name, sizeof(a->name));
		clamp_str(a->declared, sizeof(a->declared));
		clamp_str(a->detected, sizeof(a->detected));
		clamp_str(a->disposition, sizeof(a->disposition));
		clamp_str(a->sha256, sizeof(a->sha256));
		clamp_str(a->md5, sizeof(a->md5));
	}
	for (i = 0; i < LINKS_MAX; i++) {
		clamp_str(r->links.l[i].url, sizeof(r->links.l[i].url));
		clamp_str(r->links.l[i].host, sizeof(r->links.l[i].host));
	}
}

/* join - list items, space-separated, bounded */
static void
join(char *out, size_t size, const char (*list)[64], unsigned n)
{
	size_t used = 0;
	unsigned i;

	out[0] = '\0';
	for (i = 0; i < n && used + strlen(list[i]) + 2 < size; i++)
		used += (size_t)snprintf(out + used, size - used, "%s%s", i ? " " : "", list[i]);
}

/* distinct - out[0..n) with s added unless it is empty, already there, or out full */
static unsigned
distinct(const char **out, unsigned n, unsigned max, const char *s)
{
	unsigned k;

	if (s[0] == '\0' || n >= max)
		return n;
	for (k = 0; k < n; k++)
		if (strcmp(out[k], s) == 0)
			return n;
	out[n] = s;
	return n + 1;
}

/* strings - "KEY": [ escaped values ], if there is one */
static void
strings(yajl_gen g, const char *k, const char *const *v, unsigned n)
{
	unsigned i;

	if (n == 0)
		return;
	key(g, k);
	ok(yajl_gen_array_open(g));
	for (i = 0; i < n; i++)
		elem(g, v[i]);
	ok(yajl_gen_array_close(g));
}

/* the most values of one list field */
#define LIST_MAX	64
_Static_assert(ANALYSIS_EVENT_HASHES <= LIST_MAX && ANALYSIS_EVENT_ATTACHMENTS <= LIST_MAX &&
    ANALYSIS_EVENT_URLS <= LIST_MAX && ANALYSIS_EVENT_HOSTS <= LIST_MAX &&
    MIME_RECEIVED_MAX <= LIST_MAX, "a list field's limit past LIST_MAX");

/* event - the message_analyzed fields (upper case), strings or arrays of strings */
static void
event(yajl_gen g, const struct mime_result *r, const struct analysis_ctx *c)
{
	const char *list[LIST_MAX], *list2[LIST_MAX];
	char buf[2048];
	unsigned i, n, n2;

	key(g, "event");
	yajl_gen_map_open(g);
	str(g, "MSG_ID", c->msg_id);
	str(g, "SPOOL_FILE", c->spool_file);
	str(g, "META_FILE", c->meta_file);
	str(g, "ANALYSIS_FILE", c->analysis_file);
	str(g, "PARTIAL", c->partial ? "1" : "0");
	if (c->partial && c->reason != NULL)
		str(g, "REASON", c->reason);
	str(g, "SHA256", c->sha256);
	numstr(g, "SIZE", c->size);
	str(g, "RESULT", c->result);
	str(g, "STAGE", mime_stage_name(r->stage));
	numstr(g, "PARTS", r->nparts);
	numstr(g, "DEPTH", r->depth);
	join(buf, sizeof(buf), (const char (*)[64])r->types, r->ntypes);
	str(g, "MIME_TYPES", buf);
	if (r->subject[0])
		str(g, "SUBJECT", r->subject);
	if (r->from[0])
		str(g, "FROM", r->from);
	for (n = 0; n < r->nreceived && n < LIST_MAX; n++)
		list[n] = r->received[n];
	strings(g, "RECEIVED_FROM", list, n);
	join(buf, sizeof(buf), (const char (*)[64])r->charsets, r->ncharsets);
	if (buf[0])
		str(g, "CHARSETS", buf);
	if (r->language[0])
		str(g, "LANGUAGE", r->language);
	names(buf, sizeof(buf), r->flags, mime_flag_name, MF_COUNT);
	str(g, "FLAGS", buf);
	if (r->warnings) {
		names(buf, sizeof(buf), r->warnings, mime_warning_name, 32);
		str(g, "MIME_WARNINGS", buf);
	}
	numstr(g, "ATTACHMENTS", r->natt_total);
	for (i = n = n2 = 0; i < r->natt; i++)
		if (r->att[i].complete) {
			n = distinct(list, n, ANALYSIS_EVENT_HASHES, r->att[i].sha256);
			n2 = distinct(list2, n2, ANALYSIS_EVENT_HASHES, r->att[i].md5);
		}
	strings(g, "ATTACHMENT_SHA256", list, n);
	strings(g, "ATTACHMENT_MD5", list2, n2);
	/* index by index the same attachment: "" for one without a name */
	for (n = 0; n < r->natt && n < ANALYSIS_EVENT_ATTACHMENTS; n++) {
		list[n] = r->att[n].name;
		list2[n] = r->att[n].detected;
	}
	strings(g, "ATTACHMENT_NAME", list, n);
	strings(g, "ATTACHMENT_TYPE", list2, n);
	numstr(g, "URLS", r->links.n + r->links.dropped);
	for (i = n = n2 = 0; i < r->links.n; i++) {
		if (n < ANALYSIS_EVENT_URLS)
			list[n++] = r->links.l[i].url;
		n2 = distinct(list2, n2, ANALYSIS_EVENT_HOSTS, r->links.l[i].host);
	}
	strings(g, "URL", list, n);
	strings(g, "URL_HOST", list2, n2);
	numstr(g, "CPU_MS", c->cpu_ms);
	numstr(g, "ELAPSED_MS", c->elapsed_ms);
	numstr(g, "MAXRSS_KB", c->maxrss_kb);
	yajl_gen_map_close(g);
}

int
analysis_json(yajl_gen g, const struct mime_result *r, const struct analysis_ctx *c)
{
	char buf[256];
	unsigned i, b;

	refused = 0;
	yajl_gen_map_open(g);
	str(g, "msg_id", c->msg_id);
	str(g, "spool_file", c->spool_file);
	str(g, "meta_file", c->meta_file);
	key(g, "peer");
	yajl_gen_map_open(g);
	str(g, "session_id", c->session_id);
	str(g, "src", c->src);
	str(g, "src_port", c->src_port);
	str(g, "dst", c->dst);
	str(g, "dst_port", c->dst_port);
	str(g, "persona_hostname", c->hostname);
	yajl_gen_map_close(g);
	str(g, "result", c->result);
	str(g, "stage", mime_stage_name(r->stage));
	num(g, "parts", r->nparts);
	num(g, "depth", r->depth);
	num(g, "attachments_total", r->natt_total);
	key(g, "attachments");
	yajl_gen_array_open(g);
	for (i = 0; i < r->natt; i++) {
		const struct mime_attachment *a = &r->att[i];

		yajl_gen_map_open(g);
		num(g, "part", a->part);
		str(g, "name_sent", a->name_sent);
		str(g, "name", a->name);
		str(g, "declared_type", a->declared);
		str(g, "detected_type", a->detected);
		str(g, "disposition", a->disposition);
		num(g, "size", a->size);
		str(g, "sha256", a->sha256);
		str(g, "md5", a->md5);
		key(g, "complete");
		yajl_gen_bool(g, a->complete);
		names(buf, sizeof(buf), a->flags, mime_att_flag_name, 8);
		str(g, "flags", buf);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	num(g, "urls_seen", r->links.seen);
	num(g, "urls_dropped", r->links.dropped);
	key(g, "urls");
	yajl_gen_array_open(g);
	for (i = 0; i < r->links.n; i++) {
		const struct link *l = &r->links.l[i];

		yajl_gen_map_open(g);
		str(g, "url", l->url);
		str(g, "host", l->host);
		num(g, "part", l->part);
		str(g, "source", l->source == 'h' ? "html" : "text");
		buf[0] = '\0';
		for (b = 0; b < 4; b++) {
			static const char *const lf[] = { "userinfo", "numeric_host", "cut", "encoded_host" };

			if (l->flags & (1u << b))
				snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s",
				    buf[0] ? " " : "", lf[b]);
		}
		str(g, "flags", buf);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	event(g, r, c);
	ok(yajl_gen_map_close(g));
	return refused ? -1 : 0;
}
