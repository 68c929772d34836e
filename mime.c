/*
 * mime.c - the GMime walk: one message in, struct mime_result out.
 *
 * GMime parses (MIME tree, transfer encodings, RFC 2047/2231, charsets), libmagic
 * says what each attachment really is, libcrypto hashes it, libxml2 reads HTML
 * (links.c).  What is ours: the bounded walk (no recursion, MIME_PARTS_MAX parts,
 * MIME_DEPTH_MAX deep), fixed-size copies into the result, and the two byte scans
 * for what no library answers (a zip's entry names and encryption bit, an OLE file's
 * VBA project).  Content is streamed in MIME_CHUNK pieces: the size of a part never
 * becomes the size of memory.  It writes nothing but the result.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <gmime/gmime.h>
#include <magic.h>
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/md5.h>
#include <openssl/sha.h>

#include "mime.h"

#define MIME_CHUNK	65536	/* bytes read from a decoded stream at once */
#define ALTS_MAX	8	/* multipart/alternative twins compared */
#define WORD_BITS	4096	/* the word set of a twin, as a Bloom-like bitmap */
#define SCAN_CARRY	(30 + MIME_ZIP_NAME_MAX)	/* a zip header kept across chunks */

static magic_t cookie;

static const char *const flag_names[MF_COUNT] = {
	"macro", "encrypted_archive", "html_script", "html_smuggling", "twin_differs",
	"malformed", "disguised_executable", "limit", "url_userinfo", "url_numeric_host",
};

static const char *const att_flag_names[] = {
	"macro", "encrypted", "disguised_executable", "html_script", "html_smuggling",
};

static const char *const warning_names[] = {
	[GMIME_WARN_DUPLICATED_HEADER] = "duplicated_header",
	[GMIME_WARN_DUPLICATED_PARAMETER] = "duplicated_parameter",
	[GMIME_WARN_UNENCODED_8BIT_HEADER] = "unencoded_8bit_header",
	[GMIME_WARN_INVALID_CONTENT_TYPE] = "invalid_content_type",
	[GMIME_WARN_INVALID_RFC2047_HEADER_VALUE] = "invalid_rfc2047_header_value",
	[GMIME_WARN_MALFORMED_MULTIPART] = "malformed_multipart",
	[GMIME_WARN_TRUNCATED_MESSAGE] = "truncated_message",
	[GMIME_WARN_MALFORMED_MESSAGE] = "malformed_message",
	[GMIME_CRIT_INVALID_HEADER_NAME] = "invalid_header_name",
	[GMIME_CRIT_CONFLICTING_HEADER] = "conflicting_header",
	[GMIME_CRIT_CONFLICTING_PARAMETER] = "conflicting_parameter",
	[GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY] = "multipart_without_boundary",
	[GMIME_WARN_INVALID_PARAMETER] = "invalid_parameter",
	[GMIME_WARN_INVALID_ADDRESS_LIST] = "invalid_address_list",
	[GMIME_CRIT_NESTING_OVERFLOW] = "nesting_overflow",
	[GMIME_WARN_PART_WITHOUT_CONTENT] = "part_without_content",
	[GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT] = "part_without_headers_or_content",
};

const char *
mime_stage_name(unsigned i)
{
	static const char *const names[MS_COUNT] = { "none", "open", "headers", "walk", "done" };

	return i < MS_COUNT ? names[i] : "none";
}

const char *
mime_flag_name(unsigned i)
{
	return i < MF_COUNT ? flag_names[i] : NULL;
}

const char *
mime_att_flag_name(unsigned i)
{
	return i < sizeof(att_flag_names) / sizeof(att_flag_names[0]) ? att_flag_names[i] : NULL;
}

const char *
mime_warning_name(unsigned i)
{
	return i < sizeof(warning_names) / sizeof(warning_names[0]) ? warning_names[i] : NULL;
}

int
mime_init(void)
{
	g_mime_init();
	links_init();
	if ((cookie = magic_open(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS |
	    MAGIC_NO_CHECK_ENCODING)) == NULL || magic_load(cookie, NULL) < 0)
		return -1;
	{
		size_t bytes = MIME_MAGIC_BYTES;

		magic_setparam(cookie, MAGIC_PARAM_BYTES_MAX, &bytes);
	}
	return 0;
}

/* put - a bounded, NUL-terminated copy */
static void
put(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src != NULL ? src : "");
}

/* lower - in place, ASCII only */
static void
lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* onto - s into a list of distinct strings, if it has room */
static void
onto(char list[][64], unsigned *n, unsigned max, const char *s)
{
	char v[64];
	unsigned i;

	put(v, sizeof(v), s);
	lower(v);
	for (i = 0; i < *n; i++)
		if (strcmp(list[i], v) == 0)
			return;
	if (*n < max)
		memcpy(list[(*n)++], v, sizeof(v));
}

static void
warned(gint64 offset, GMimeParserWarning code, const gchar *item, gpointer data)
{
	struct mime_result *r = data;

	(void)offset;
	(void)item;
	if ((unsigned)code < 32)
		r->warnings |= 1u << code;
}

/* --- content ----------------------------------------------------------------- */

/* decoded - the part's content with its transfer encoding undone (and in UTF-8) */
static GMimeStream *
decoded(GMimeObject *o, int utf8)
{
	GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(o));
	GMimeContentEncoding enc;
	GMimeStream *raw, *f;

	if (w == NULL || (raw = g_mime_data_wrapper_get_stream(w)) == NULL)
		return NULL;
	g_mime_stream_reset(raw);
	f = g_mime_stream_filter_new(raw);
	enc = g_mime_data_wrapper_get_encoding(w);
	if (enc == GMIME_CONTENT_ENCODING_BASE64 || enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
	    enc == GMIME_CONTENT_ENCODING_UUENCODE) {
		GMimeFilter *d = g_mime_filter_basic_new(enc, FALSE);

		g_mime_stream_filter_add(GMIME_STREAM_FILTER(f), d);
		g_object_unref(d);
	}
	if (utf8) {
		const char *cs = g_mime_object_get_content_type_parameter(o, "charset");
		GMimeFilter *c;

		if (cs != NULL && g_ascii_strcasecmp(cs, "utf-8") != 0 &&
		    g_ascii_strcasecmp(cs, "us-ascii") != 0 &&
		    (c = g_mime_filter_charset_new(cs, "UTF-8")) != NULL) {
			g_mime_stream_filter_add(GMIME_STREAM_FILTER(f), c);
			g_object_unref(c);
		}
	}
	return f;
}

/* text - up to max decoded UTF-8 bytes of a text part, NUL-terminated; its length */
static size_t
text(GMimeObject *o, char *buf, size_t max)
{
	GMimeStream *s = decoded(o, 1);
	size_t n = 0;
	ssize_t k;

	if (s == NULL) {
		buf[0] = '\0';
		return 0;
	}
	while (n < max && (k = g_mime_stream_read(s, buf + n, max - n)) > 0)
		n += (size_t)k;
	buf[n] = '\0';
	g_object_unref(s);
	return n;
}

/* --- the byte scans ---------------------------------------------------------------- */

struct scan {
	size_t len;
	unsigned flags;
	unsigned char buf[SCAN_CARRY + MIME_CHUNK];
};

static unsigned
le16(const unsigned char *p)
{
	return (unsigned)p[0] | (unsigned)p[1] << 8;
}

/* "_VBA_PROJECT" in UTF-16LE: the stream an OLE (.doc, .xls) file's macros live in */
static const char vba_ole[] = "_\0V\0B\0A\0_\0P\0R\0O\0J\0E\0C\0T\0";
#define VBA_OLE_LEN	(sizeof(vba_ole) - 1)

/* scan_step - look at buf; final: nothing more will come */
static void
scan_step(struct scan *s, int final)
{
	size_t i, need = final ? 4 : SCAN_CARRY;

	for (i = 0; i + need <= s->len; i++) {
		const unsigned char *p = s->buf + i;

		if (p[0] == 'P' && p[1] == 'K' && p[2] == 3 && p[3] == 4 && i + 30 <= s->len) {
			unsigned nl = le16(p + 26), take = nl < MIME_ZIP_NAME_MAX ? nl : MIME_ZIP_NAME_MAX;
			static const char vba[] = "vbaproject.bin";
			char name[MIME_ZIP_NAME_MAX + 1];

			if (i + 30 + take <= s->len) {
				memcpy(name, p + 30, take);
				name[take] = '\0';
				if (le16(p + 6) & 1)
					s->flags |= AF_ENCRYPTED;	/* general purpose bit 0 */
				if (take >= sizeof(vba) - 1 &&
				    strcasecmp(name + take - (sizeof(vba) - 1), vba) == 0)
					s->flags |= AF_MACRO;
			}
		}
		if (p[0] == '_' && i + VBA_OLE_LEN <= s->len &&
		    memcmp(p, vba_ole, VBA_OLE_LEN) == 0)
			s->flags |= AF_MACRO;
	}
	/* what is left is shorter than SCAN_CARRY: keep it for the next chunk */
	memmove(s->buf, s->buf + i, s->len - i);
	s->len -= i;
}

/* --- one part ---------------------------------------------------------------- */

static const char *const exe_types[] = {
	"application/x-dosexec", "application/x-executable", "application/x-sharedlib",
	"application/x-pie-executable", "application/x-mach-binary",
	"application/vnd.microsoft.portable-executable", "application/x-msdownload",
};
static const char *const exe_ext[] = { ".exe", ".dll", ".scr", ".com", ".msi", ".sys",
	".bin", ".elf" };

/* disguised - an executable whose type or name says otherwise */
static int
disguised(const struct mime_attachment *a)
{
	size_t i, k, nl = strlen(a->name);
	int exe = 0, named = 0;

	for (i = 0; i < sizeof(exe_types) / sizeof(exe_types[0]); i++)
		if (strcmp(a->detected, exe_types[i]) == 0)
			exe = 1;
	if (!exe)
		return 0;
	for (k = 0; k < sizeof(exe_ext) / sizeof(exe_ext[0]); k++)
		if (nl >= 4 && strcasecmp(a->name + nl - strlen(exe_ext[k]), exe_ext[k]) == 0)
			named = 1;
	for (i = 0; i < sizeof(exe_types) / sizeof(exe_types[0]); i++)
		if (strcasecmp(a->declared, exe_types[i]) == 0)
			named = 1;
	/* octet-stream with no name claims nothing */
	return !named && !(nl == 0 && strcasecmp(a->declared, "application/octet-stream") == 0);
}

/* sent - the name parameters of a header as sent (unfolded), or "" */
static void
sent(GMimeObject *o, const char *header, const char *param, char *out, size_t size)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(o);
	int i, n = hl ? g_mime_header_list_get_count(hl) : 0;

	out[0] = '\0';
	for (i = 0; i < n; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		const char *v = g_mime_header_get_raw_value(h), *p;
		size_t k = 0;

		if (g_ascii_strcasecmp(g_mime_header_get_name(h), header) != 0 || v == NULL)
			continue;
		if ((p = strcasestr(v, param)) == NULL)
			continue;
		for (; *p && k + 1 < size; p++)
			if (*p != '\r' && *p != '\n')
				out[k++] = *p == '\t' ? ' ' : *p;
		while (k > 0 && out[k - 1] == ' ')
			k--;
		out[k] = '\0';
		return;
	}
}

struct alt {
	int plain, html;
	unsigned char words[2][WORD_BITS / 8];
};

struct walk {
	struct mime_result *r;
	struct alt alts[ALTS_MAX];
	unsigned nalts;
	char *buf;		/* MIME_TEXT_MAX + 1, for text parts */
	char *html_text;	/* LINKS_TEXT_MAX */
};

/* words - the words of UTF-8 text (letters, digits, non-ASCII) into a bitmap */
static int
words(const char *t, unsigned char *bits)
{
	unsigned h = 2166136261u;
	int in = 0, n = 0;

	for (;; t++) {
		unsigned char c = (unsigned char)*t;

		if (c != '\0' && (isalnum(c) || c >= 0x80)) {
			h = (h ^ (unsigned char)tolower(c)) * 16777619u;
			in = 1;
			continue;
		}
		if (in) {
			bits[(h % WORD_BITS) / 8] |= (unsigned char)(1u << (h % 8));
			n++;
		}
		in = 0;
		h = 2166136261u;
		if (c == '\0')
			return n;
	}
}

/* differs - do the twins' word sets overlap less than half? */
static int
differs(const struct alt *a)
{
	unsigned both = 0, any = 0, i;

	for (i = 0; i < WORD_BITS / 8; i++) {
		both += (unsigned)__builtin_popcount(a->words[0][i] & a->words[1][i]);
		any += (unsigned)__builtin_popcount(a->words[0][i] | a->words[1][i]);
	}
	return any > 0 && both * 2 < any;
}

/* body - a text/plain or text/html part shown as the message: links, flags, twins */
static void
body(struct walk *w, GMimeObject *o, unsigned part, int html, int alt)
{
	struct mime_result *r = w->r;
	size_t n = text(o, w->buf, MIME_TEXT_MAX);
	const char *t = w->buf;

	if (html) {
		unsigned f = links_html(&r->links, w->buf, n, part, w->html_text, LINKS_TEXT_MAX);

		if (f & LH_SCRIPT)
			r->flags |= MF_HTML_SCRIPT;
		if (f & LH_EMBEDDED)
			r->flags |= MF_HTML_SMUGGLING;
		t = w->html_text;
	} else
		links_text(&r->links, w->buf, n, part);
	if (alt >= 0) {
		words(t, w->alts[alt].words[html]);
		if (html)
			w->alts[alt].html = 1;
		else
			w->alts[alt].plain = 1;
	}
}

/* attachment - stream its decoded bytes: size, hashes, libmagic, the scans */
static void
attachment(struct walk *w, GMimeObject *o, unsigned part, const char *type)
{
	struct mime_result *r = w->r;
	struct mime_attachment *a;
	static struct scan sc;
	unsigned char md[SHA256_DIGEST_LENGTH];
	GMimeStream *s;
	SHA256_CTX sha;
	MD5_CTX md5;
	size_t kept = 0, i;
	ssize_t k;
	const char *d;

	r->natt_total++;
	if (r->natt >= MIME_ATTACH_MAX) {
		r->flags |= MF_LIMIT;
		return;
	}
	a = &r->att[r->natt++];
	memset(a, 0, sizeof(*a));
	a->part = part;
	put(a->declared, sizeof(a->declared), type);
	put(a->name, sizeof(a->name), g_mime_part_get_filename(GMIME_PART(o)));
	sent(o, "Content-Disposition", "filename", a->name_sent, sizeof(a->name_sent));
	if (a->name_sent[0] == '\0')
		sent(o, "Content-Type", "name", a->name_sent, sizeof(a->name_sent));
	d = g_mime_object_get_disposition(o);
	put(a->disposition, sizeof(a->disposition), d);
	lower(a->disposition);
	if ((s = decoded(o, 0)) == NULL)
		return;
	SHA256_Init(&sha);
	MD5_Init(&md5);
	sc.len = 0;
	sc.flags = 0;
	/* the chunk is read into the scan buffer, behind what it carries over */
	while ((k = g_mime_stream_read(s, (char *)sc.buf + sc.len, MIME_CHUNK)) > 0) {
		const unsigned char *p = sc.buf + sc.len;

		SHA256_Update(&sha, p, (size_t)k);
		MD5_Update(&md5, p, (size_t)k);
		if (kept < MIME_MAGIC_BYTES) {
			size_t take = (size_t)k < MIME_MAGIC_BYTES - kept ? (size_t)k : MIME_MAGIC_BYTES - kept;

			memcpy(w->buf + kept, p, take);
			kept += take;
		}
		a->size += (unsigned long long)k;
		sc.len += (size_t)k;
		scan_step(&sc, 0);
	}
	scan_step(&sc, 1);
	g_object_unref(s);
	SHA256_Final(md, &sha);
	for (i = 0; i < sizeof(md); i++)
		snprintf(a->sha256 + 2 * i, 3, "%02x", md[i]);
	MD5_Final(md, &md5);
	for (i = 0; i < MD5_DIGEST_LENGTH; i++)
		snprintf(a->md5 + 2 * i, 3, "%02x", md[i]);
	a->complete = 1;
	a->flags |= sc.flags;
	if (kept > 0 && cookie != NULL)
		put(a->detected, sizeof(a->detected), magic_buffer(cookie, w->buf, kept));
	else if (kept == 0)
		put(a->detected, sizeof(a->detected), "application/x-empty");
	if (disguised(a))
		a->flags |= AF_DISGUISED_EXE;
	if (g_ascii_strcasecmp(type, "text/html") == 0 ||
	    strcmp(a->detected, "text/html") == 0) {
		size_t n = text(o, w->buf, MIME_TEXT_MAX);
		unsigned f = links_html(&r->links, w->buf, n, part, w->html_text, LINKS_TEXT_MAX);

		if (f & LH_SCRIPT)
			a->flags |= AF_HTML_SCRIPT;
		if (f & LH_EMBEDDED)
			a->flags |= AF_HTML_SMUGGLING;
	}
	if (a->flags & AF_MACRO)
		r->flags |= MF_MACRO;
	if (a->flags & AF_ENCRYPTED)
		r->flags |= MF_ENCRYPTED_ARCHIVE;
	if (a->flags & AF_DISGUISED_EXE)
		r->flags |= MF_DISGUISED_EXE;
	if (a->flags & AF_HTML_SCRIPT)
		r->flags |= MF_HTML_SCRIPT;
	if (a->flags & AF_HTML_SMUGGLING)
		r->flags |= MF_HTML_SMUGGLING;
}

/* leaf - a part with content: the message's text, or an attachment */
static void
leaf(struct walk *w, GMimeObject *o, unsigned part, const char *type, int alt)
{
	GMimeContentType *ct = g_mime_object_get_content_type(o);
	const char *d = g_mime_object_get_disposition(o);
	const char *cs = g_mime_object_get_content_type_parameter(o, "charset");
	int plain = g_mime_content_type_is_type(ct, "text", "plain");
	int html = g_mime_content_type_is_type(ct, "text", "html");

	if (cs != NULL)
		onto(w->r->charsets, &w->r->ncharsets, MIME_CHARSETS_MAX, cs);
	if ((plain || html) && g_mime_part_get_filename(GMIME_PART(o)) == NULL &&
	    (d == NULL || g_ascii_strcasecmp(d, "attachment") != 0))
		body(w, o, part, html, alt);
	else
		attachment(w, o, part, type);
}

/* received - the origins the Received: chain claims, newest first: "helo [addr]" */
static void
received(struct mime_result *r, GMimeObject *o)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(o);
	int i, n = hl ? g_mime_header_list_get_count(hl) : 0;

	for (i = 0; i < n && r->nreceived < MIME_RECEIVED_MAX; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		const char *v = g_mime_header_get_value(h), *p, *b, *e;
		char helo[MIME_STR_MAX - 72] = "", addr[64] = "";
		size_t k = 0;

		if (g_ascii_strcasecmp(g_mime_header_get_name(h), "Received") != 0 || v == NULL)
			continue;
		while (isspace((unsigned char)*v))
			v++;
		if (g_ascii_strncasecmp(v, "from", 4) == 0 && isspace((unsigned char)v[4])) {
			for (p = v + 4; isspace((unsigned char)*p); p++)
				;
			while (*p && !isspace((unsigned char)*p) && *p != '(' && *p != ';' &&
			    k + 1 < sizeof(helo))
				helo[k++] = *p++;
			helo[k] = '\0';
		}
		if ((b = strchr(v, '[')) != NULL && (e = strchr(b, ']')) != NULL &&
		    (size_t)(e - b) < sizeof(addr))
			snprintf(addr, sizeof(addr), "%.*s", (int)(e - b - 1), b + 1);
		snprintf(r->received[r->nreceived++], MIME_STR_MAX, "%s%s%s%s%s", helo,
		    helo[0] && addr[0] ? " " : "", addr[0] ? "[" : "", addr, addr[0] ? "]" : "");
	}
}

struct frame {
	GMimeObject *o;
	unsigned depth;
	int alt;		/* the multipart/alternative it is a child of, or -1 */
};

/* walk - the MIME tree in document order, with a stack of MIME_PARTS_MAX frames */
static void
walk(struct walk *w, GMimeObject *root)
{
	static struct frame stack[MIME_PARTS_MAX];
	struct mime_result *r = w->r;
	size_t sp = 0;

	stack[sp++] = (struct frame){ root, 1, -1 };
	while (sp > 0) {
		struct frame f = stack[--sp];
		GMimeContentType *ct = g_mime_object_get_content_type(f.o);
		char *type = ct ? g_mime_content_type_get_mime_type(ct) : NULL;
		unsigned part;

		if (r->nparts >= MIME_PARTS_MAX) {
			r->flags |= MF_LIMIT;
			g_free(type);
			break;
		}
		part = ++r->nparts;
		if (f.depth > r->depth)
			r->depth = f.depth;
		onto(r->types, &r->ntypes, MIME_TYPES_MAX, type ? type : "");
		if (r->language[0] == '\0')
			put(r->language, sizeof(r->language),
			    g_mime_object_get_header(f.o, "Content-Language"));
		if (GMIME_IS_MULTIPART(f.o)) {
			int i, n = g_mime_multipart_get_count(GMIME_MULTIPART(f.o)), alt = -1;

			if (f.depth >= MIME_DEPTH_MAX) {
				r->flags |= MF_LIMIT;
				n = 0;
			}
			if (n > 0 && g_mime_content_type_is_type(ct, "multipart", "alternative") &&
			    w->nalts < ALTS_MAX)
				alt = (int)w->nalts++;
			for (i = n - 1; i >= 0; i--) {
				if (sp >= MIME_PARTS_MAX) {
					r->flags |= MF_LIMIT;
					break;
				}
				stack[sp++] = (struct frame){
					g_mime_multipart_get_part(GMIME_MULTIPART(f.o), i), f.depth + 1, alt };
			}
		} else if (GMIME_IS_MESSAGE_PART(f.o)) {
			GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(f.o));
			GMimeObject *mp = m ? g_mime_message_get_mime_part(m) : NULL;

			if (mp != NULL && f.depth < MIME_DEPTH_MAX)
				stack[sp++] = (struct frame){ mp, f.depth + 1, -1 };
			else if (mp != NULL)
				r->flags |= MF_LIMIT;
		} else if (GMIME_IS_PART(f.o))
			leaf(w, f.o, part, type ? type : "", f.alt);
		g_free(type);
	}
}

/* message - parse the stream and walk it */
static void
message(GMimeStream *stream, struct mime_result *r)
{
	static char buf[MIME_TEXT_MAX + 1], html_text[LINKS_TEXT_MAX];
	static struct walk w;
	GMimeParserOptions *opts = g_mime_parser_options_new();
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	GMimeMessage *msg;
	GMimeObject *root;
	InternetAddressList *from;
	unsigned i;

	memset(&w, 0, sizeof(w));
	w.r = r;
	w.buf = buf;
	w.html_text = html_text;
	r->stage = MS_HEADERS;
	g_mime_parser_options_set_warning_callback(opts, warned, r);
	g_mime_parser_set_persist_stream(parser, TRUE);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	msg = g_mime_parser_construct_message(parser, opts);
	if (msg != NULL) {
		r->parsed = 1;
		put(r->subject, sizeof(r->subject), g_mime_message_get_subject(msg));
		if ((from = g_mime_message_get_from(msg)) != NULL &&
		    internet_address_list_length(from) > 0) {
			char *s = internet_address_list_to_string(from, NULL, FALSE);

			put(r->from, sizeof(r->from), s);
			g_free(s);
		}
		received(r, GMIME_OBJECT(msg));
		r->stage = MS_WALK;
		if ((root = g_mime_message_get_mime_part(msg)) != NULL)
			walk(&w, root);
		for (i = 0; i < w.nalts; i++)
			if (w.alts[i].plain && w.alts[i].html && differs(&w.alts[i]))
				r->flags |= MF_TWIN_DIFFERS;
		for (i = 0; i < r->links.n; i++) {
			if (r->links.l[i].flags & LK_USERINFO)
				r->flags |= MF_URL_USERINFO;
			if (r->links.l[i].flags & LK_NUMERIC)
				r->flags |= MF_URL_NUMERIC;
		}
		if (r->links.dropped > 0)
			r->flags |= MF_LIMIT;
		g_object_unref(msg);
		r->stage = MS_DONE;
	}
	if (r->warnings)
		r->flags |= MF_MALFORMED;
	g_object_unref(parser);
	g_mime_parser_options_free(opts);
}

void
mime_file(int fd, struct mime_result *r)
{
	GMimeStream *s;
	int dfd;

	r->stage = MS_OPEN;
	if ((dfd = dup(fd)) < 0)
		return;
	s = g_mime_stream_fs_new(dfd);
	message(s, r);
	g_object_unref(s);
}

void
mime_buffer(const char *buf, size_t len, struct mime_result *r)
{
	GMimeStream *s;

	r->stage = MS_OPEN;
	s = g_mime_stream_mem_new_with_buffer(buf, len);
	message(s, r);
	g_object_unref(s);
}
