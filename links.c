/*
 * links.c - URLs out of text and HTML.  HTML is parsed by libxml2's HTMLparser (the
 * same recovery a browser-like reader applies, entities decoded), never by us; the
 * tree is walked without recursion.  Everything kept is bounded (links.h); nothing
 * here writes outside struct links and the caller's text buffer.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include <libxml/HTMLparser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "links.h"

#define ATTR_MAX	(LINKS_URL_MAX * 4)	/* bytes of one attribute looked at */

static void
quiet(void *ctx, const char *fmt, ...)
{
	(void)ctx;
	(void)fmt;
}

void
links_init(void)
{
	xmlSetGenericErrorFunc(NULL, quiet);
	xmlInitParser();
}

/* hexval - a hex digit's value, or -1 */
static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * host - the host of url (after "scheme://"): userinfo and port dropped, %-escapes
 * decoded, lower case, no trailing dot; an IPv4 address in inet_aton's decimal,
 * octal or hex forms written as a dotted quad.  LK_* flags.
 */
static unsigned
host(const char *url, size_t len, char *out, size_t outsize)
{
	const char *p, *end, *at = NULL, *e;
	size_t n = 0;
	unsigned flags = 0;
	struct in_addr a;

	out[0] = '\0';
	if ((p = memmem(url, len, "://", 3)) == NULL)
		return 0;
	p += 3;
	for (end = p; end < url + len && !strchr("/?#\\", *end); end++)
		if (*end == '@')
			at = end;
	if (at != NULL) {
		flags |= LK_USERINFO;
		p = at + 1;
	}
	e = end;
	if (p < e && *p == '[') {
		const char *rb = memchr(p, ']', (size_t)(e - p));

		if (rb != NULL)
			e = rb + 1;
	} else {
		const char *c = memrchr(p, ':', (size_t)(e - p));

		if (c != NULL)
			e = c;
	}
	for (; p < e && n + 1 < outsize; p++) {
		int c = (unsigned char)*p;

		if (c == '%' && e - p >= 3 && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
			c = hexval(p[1]) * 16 + hexval(p[2]);
			p += 2;
			flags |= LK_ENCODED;
		}
		out[n++] = (char)tolower(c);
	}
	while (n > 0 && out[n - 1] == '.')
		n--;
	out[n] = '\0';
	if (n > 0 && strspn(out, "0123456789abcdefx.") == n && inet_aton(out, &a)) {
		inet_ntop(AF_INET, &a, out, (socklen_t)outsize);
		flags |= LK_NUMERIC;
	}
	return flags;
}

int
links_add(struct links *ls, const char *url, size_t len, unsigned part, char source)
{
	struct link *l;
	char buf[LINKS_URL_MAX];
	unsigned flags = 0;
	size_t i;

	while (len > 0 && isspace((unsigned char)*url))
		url++, len--;
	while (len > 0 && isspace((unsigned char)url[len - 1]))
		len--;
	if (len == 0)
		return -1;
	ls->seen++;
	if (len >= sizeof(buf)) {
		len = sizeof(buf) - 1;
		flags |= LK_CUT;
	}
	memcpy(buf, url, len);
	buf[len] = '\0';
	for (i = 0; i < ls->n; i++)
		if (strcmp(ls->l[i].url, buf) == 0)
			return -1;
	if (ls->n >= LINKS_MAX) {
		ls->dropped++;
		return -1;
	}
	l = &ls->l[ls->n];
	memcpy(l->url, buf, len + 1);
	if (strncasecmp(buf, "www.", 4) == 0 || strncmp(buf, "//", 2) == 0) {
		char tmp[LINKS_URL_MAX + 8];

		snprintf(tmp, sizeof(tmp), "%s%s", buf[0] == '/' ? "http:" : "http://", buf);
		flags |= host(tmp, strlen(tmp), l->host, sizeof(l->host));
	} else
		flags |= host(buf, len, l->host, sizeof(l->host));
	l->flags = flags;
	l->part = part;
	l->source = source;
	return (int)ls->n++;
}

/* urlchar - may c be part of a URL in running text? */
static int
urlchar(unsigned char c)
{
	return c > 0x20 && c != 0x7f && !strchr("<>\"'`{}|^", c);
}

void
links_text(struct links *ls, const char *t, size_t len, unsigned part)
{
	static const char *const starts[] = { "http://", "https://", "ftp://", "www." };
	size_t i = 0, k;

	while (i < len) {
		size_t s, e, sl = 0;

		for (k = 0; k < sizeof(starts) / sizeof(starts[0]); k++) {
			sl = strlen(starts[k]);
			if (len - i >= sl && strncasecmp(t + i, starts[k], sl) == 0 &&
			    (i == 0 || !isalnum((unsigned char)t[i - 1])))
				break;
		}
		if (k == sizeof(starts) / sizeof(starts[0]) || len - i <= sl) {
			i++;
			continue;
		}
		s = i;
		for (e = i + sl; e < len && urlchar((unsigned char)t[e]); e++)
			;
		/* trailing punctuation belongs to the sentence, a lone ')' to a remark */
		while (e > s + sl && strchr(".,;:!?)]", t[e - 1]))
			e--;
		if (e > s + sl)
			links_add(ls, t + s, e - s, part, 't');
		i = e > i ? e : i + 1;
	}
}

/* is - the node's name is name, in any case */
static int
is(const xmlNode *n, const char *name)
{
	return n->name != NULL && strcasecmp((const char *)n->name, name) == 0;
}

/* data_url - what a data: URL carries: LH_EMBEDDED unless it is an image */
static unsigned
data_url(const char *v)
{
	const char *t = v + 5;

	while (*t == ' ')
		t++;
	return strncasecmp(t, "image/", 6) == 0 ? 0 : LH_EMBEDDED;
}

/* attr_url - an attribute that holds a URL: a link, or a script, or a file */
static unsigned
attr_url(struct links *ls, const char *v, unsigned part)
{
	while (isspace((unsigned char)*v))
		v++;
	if (strncasecmp(v, "javascript:", 11) == 0 || strncasecmp(v, "vbscript:", 9) == 0)
		return LH_SCRIPT;
	if (strncasecmp(v, "data:", 5) == 0)
		return data_url(v);
	if (strncasecmp(v, "http:", 5) == 0 || strncasecmp(v, "https:", 6) == 0 ||
	    strncasecmp(v, "ftp:", 4) == 0 || strncasecmp(v, "www.", 4) == 0 ||
	    strncmp(v, "//", 2) == 0)
		links_add(ls, v, strnlen(v, ATTR_MAX), part, 'h');
	return 0;
}

/* smuggler - does script text build a file (HTML smuggling's usual calls)? */
static unsigned
smuggler(const char *s)
{
	static const char *const calls[] = { "atob(", "new Blob", "createObjectURL",
	    "msSaveOrOpenBlob", "msSaveBlob", ".download", "Uint8Array" };
	unsigned hits = 0;
	size_t i;

	for (i = 0; i < sizeof(calls) / sizeof(calls[0]); i++)
		if (strstr(s, calls[i]) != NULL)
			hits++;
	return hits >= 2 ? LH_EMBEDDED : 0;
}

/* element - one element's attributes (and a script's text) */
static unsigned
element(struct links *ls, xmlDoc *doc, xmlNode *n, unsigned part)
{
	static const char *const urlattrs[] = { "href", "src", "action", "formaction",
	    "background", "data", "poster", "cite", "longdesc", "srcset" };
	unsigned f = 0;
	xmlAttr *a;
	size_t i;

	if (is(n, "script"))
		f |= LH_SCRIPT;
	if (is(n, "embed") || is(n, "object"))
		f |= LH_EMBEDDED;
	for (a = n->properties; a != NULL; a = a->next) {
		const char *an = (const char *)a->name;
		xmlChar *v;

		if (an == NULL)
			continue;
		if (strncasecmp(an, "on", 2) == 0)
			f |= LH_SCRIPT;
		if (is(n, "a") && strcasecmp(an, "download") == 0)
			f |= LH_EMBEDDED;
		if (is(n, "iframe") && strcasecmp(an, "srcdoc") == 0)
			f |= LH_EMBEDDED;
		for (i = 0; i < sizeof(urlattrs) / sizeof(urlattrs[0]); i++)
			if (strcasecmp(an, urlattrs[i]) == 0)
				break;
		if (i == sizeof(urlattrs) / sizeof(urlattrs[0]) &&
		    !(is(n, "meta") && strcasecmp(an, "content") == 0))
			continue;
		if ((v = xmlNodeListGetString(doc, a->children, 1)) == NULL)
			continue;
		if (is(n, "meta") && strcasecmp(an, "content") == 0) {
			const char *u = strcasestr((const char *)v, "url=");

			if (u != NULL)
				f |= attr_url(ls, u + 4, part);
		} else
			f |= attr_url(ls, (const char *)v, part);
		xmlFree(v);
	}
	if (is(n, "script")) {
		xmlChar *s = xmlNodeGetContent(n);

		if (s != NULL) {
			f |= smuggler((const char *)s);
			links_text(ls, (const char *)s, strnlen((const char *)s, ATTR_MAX * 16), part);
			xmlFree(s);
		}
	}
	return f;
}

/* addtext - a text node's content onto the visible text, a space between */
static void
addtext(char *text, size_t size, size_t *used, const xmlChar *c)
{
	size_t l;

	if (c == NULL || size == 0 || *used + 2 >= size)
		return;
	l = strlen((const char *)c);
	if (l > size - *used - 2)
		l = size - *used - 2;
	memcpy(text + *used, c, l);
	*used += l;
	text[(*used)++] = ' ';
	text[*used] = '\0';
}

unsigned
links_html(struct links *ls, const char *html, size_t len, unsigned part, char *text,
    size_t textsize)
{
	xmlDoc *doc;
	xmlNode *n;
	unsigned f = 0;
	size_t used = 0;

	if (textsize > 0)
		text[0] = '\0';
	if (len > (size_t)INT32_MAX)
		len = INT32_MAX;
	doc = htmlReadMemory(html, (int)len, NULL, "UTF-8", HTML_PARSE_RECOVER |
	    HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET | HTML_PARSE_NOIMPLIED);
	if (doc == NULL)
		return 0;
	/* depth first, in document order, without recursion */
	n = xmlDocGetRootElement(doc);
	while (n != NULL) {
		int skip = 0;

		if (n->type == XML_ELEMENT_NODE) {
			f |= element(ls, doc, n, part);
			skip = is(n, "script") || is(n, "style");
		} else if (n->type == XML_TEXT_NODE)
			addtext(text, textsize, &used, n->content);
		if (n->children != NULL && !skip && n->type == XML_ELEMENT_NODE) {
			n = n->children;
			continue;
		}
		while (n != NULL && n->next == NULL)
			n = n->parent != (xmlNode *)doc ? n->parent : NULL;
		if (n != NULL)
			n = n->next;
	}
	xmlFreeDoc(doc);
	return f;
}
