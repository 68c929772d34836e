/*
 * links.h - the URLs of a message: from plain text, and from HTML through libxml2's
 * HTML parser; each with its host, deduplicated, bounded in count and length.
 */
#ifndef LINKS_H
#define LINKS_H

#include <stddef.h>

#define LINKS_MAX	256	/* distinct URLs kept per message; the rest counted */
#define LINKS_URL_MAX	1024	/* bytes of one URL kept (longer ones cut, flagged) */
#define LINKS_HOST_MAX	256	/* bytes of one host */
#define LINKS_TEXT_MAX	65536	/* visible text of one HTML part kept (twin check) */

/* link flags */
#define LK_USERINFO	0x01	/* text before an '@' in the authority: the host follows */
#define LK_NUMERIC	0x02	/* the host is an IPv4 address, in any of inet_aton's forms */
#define LK_CUT		0x04	/* longer than LINKS_URL_MAX */
#define LK_ENCODED	0x08	/* the host had %-escapes */

/* what links_html found besides links */
#define LH_SCRIPT	0x01	/* a <script>, an on* handler or a javascript: URL */
#define LH_EMBEDDED	0x02	/* an embedded file: data: URL of no image type, <a
				   download>, <embed>, <object>, or a script that builds one */

struct link {
	char url[LINKS_URL_MAX];
	char host[LINKS_HOST_MAX];
	unsigned part;		/* the MIME part it came from (1: the first) */
	char source;		/* 't' plain text, 'h' HTML */
	unsigned flags;
};

struct links {
	unsigned n;		/* kept, in l[] */
	unsigned seen;		/* every URL found, duplicates included */
	unsigned dropped;	/* distinct ones beyond LINKS_MAX */
	struct link l[LINKS_MAX];
};

/* links_add - one URL as found; returns its index, or -1 (duplicate, dropped, no URL) */
int links_add(struct links *, const char *url, size_t len, unsigned part, char source);
/* links_text - every http, https and ftp URL (and www. name) in UTF-8 text */
void links_text(struct links *, const char *text, size_t len, unsigned part);
/*
 * links_html - the links of an HTML document in UTF-8; its visible text (bounded by
 * textsize, NUL-terminated) into text; returns LH_* flags
 */
unsigned links_html(struct links *, const char *html, size_t len, unsigned part,
    char *text, size_t textsize);
/* links_init - once per process: libxml2 says nothing on stderr */
void links_init(void);

#endif
