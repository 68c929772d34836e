/*
 * mime.h - one stored message taken apart with GMime 3: its structure, its
 * attachments (names, types by libmagic, sizes, SHA-256 and MD5 by libcrypto), its
 * links (links.h), headers and flags.  Every count, depth and size is bounded here.
 *
 * struct mime_result holds no pointers: the analyzer fills
 * it in a child process, in memory shared with its parent, so that what a child
 * killed half way had found is still there to report.
 */
#ifndef MIME_H
#define MIME_H

#include <stddef.h>

#include "links.h"

#define MIME_PARTS_MAX		512	/* parts walked; beyond, the walk stops (flag limit) */
#define MIME_DEPTH_MAX		32	/* nesting walked (multipart, message/rfc822) */
#define MIME_ATTACH_MAX		64	/* attachments described; the rest counted */
#define MIME_TEXT_MAX		(1024 * 1024)	/* decoded bytes of a text part read for links */
#define MIME_MAGIC_BYTES	65536	/* bytes of an attachment libmagic looks at */
#define MIME_STR_MAX		256	/* a file name, a type, a Received origin kept */
#define MIME_HDR_MAX		1024	/* the decoded Subject and From kept */
#define MIME_TYPES_MAX		32	/* distinct content types listed */
#define MIME_RECEIVED_MAX	16	/* Received: headers read */
#define MIME_CHARSETS_MAX	8	/* distinct charsets listed */
#define MIME_ZIP_NAME_MAX	256	/* bytes of a zip entry's name read */

/* how far the parser got */
#define MS_NONE		0	/* not started */
#define MS_OPEN		1	/* the file is open */
#define MS_HEADERS	2	/* reading the headers (GMime's parse of the whole message) */
#define MS_WALK		3	/* walking the parts */
#define MS_DONE		4	/* every part walked (within the bounds) */
#define MS_COUNT	5

/* flags of the message */
#define MF_MACRO		0x001	/* an Office file with a VBA project */
#define MF_ENCRYPTED_ARCHIVE	0x002	/* a zip with an encrypted entry */
#define MF_HTML_SCRIPT		0x004	/* HTML with script (element, handler, URL) */
#define MF_HTML_SMUGGLING	0x008	/* HTML with an embedded file */
#define MF_TWIN_DIFFERS		0x010	/* text/plain and its text/html twin say other things */
#define MF_MALFORMED		0x020	/* GMime had to recover: see warnings */
#define MF_DISGUISED_EXE	0x040	/* an executable declared or named as something else */
#define MF_LIMIT		0x080	/* a bound of mime.h was reached: the walk is partial */
#define MF_URL_USERINFO		0x100	/* a URL with user@ before its host */
#define MF_URL_NUMERIC		0x200	/* a URL whose host is an IP address */
#define MF_COUNT		10

/* flags of an attachment */
#define AF_MACRO		0x01
#define AF_ENCRYPTED		0x02
#define AF_DISGUISED_EXE	0x04
#define AF_HTML_SCRIPT		0x08
#define AF_HTML_SMUGGLING	0x10

struct mime_attachment {
	char name_sent[MIME_STR_MAX];	/* the filename/name parameters as in the header */
	char name[MIME_STR_MAX];	/* decoded (RFC 2231, RFC 2047), UTF-8 */
	char declared[MIME_STR_MAX];	/* Content-Type */
	char detected[MIME_STR_MAX];	/* libmagic's MIME type */
	char disposition[32];
	unsigned long long size;	/* decoded bytes */
	char sha256[65], md5[33];
	unsigned part;
	unsigned flags;
	int complete;			/* hashed to its end */
};

struct mime_result {
	unsigned stage;			/* how far it got: MS_* */
	int parsed;			/* GMime made a message of it */
	unsigned nparts, depth;
	unsigned ntypes;
	char types[MIME_TYPES_MAX][64];
	char subject[MIME_HDR_MAX], from[MIME_HDR_MAX], language[64];
	unsigned nreceived;
	char received[MIME_RECEIVED_MAX][MIME_STR_MAX];
	unsigned ncharsets;
	char charsets[MIME_CHARSETS_MAX][64];
	unsigned flags;
	unsigned warnings;		/* bit n: GMime parser warning code n */
	unsigned natt, natt_total;
	struct mime_attachment att[MIME_ATTACH_MAX];
	struct links links;
};

/* mime_init - once per process, before any fork: GMime, libxml2, libmagic; 0 or -1 */
int mime_init(void);
/* mime_file - the message in fd (a regular file: GMime reads parts in place) */
void mime_file(int fd, struct mime_result *);
/* mime_buffer - the message in memory (the fuzz target) */
void mime_buffer(const char *buf, size_t len, struct mime_result *);
/* mime_stage_name - "none", "open", "headers", "walk", "done" */
const char *mime_stage_name(unsigned);
/* mime_flag_name - the name of flag bit i (MF_*), or NULL */
const char *mime_flag_name(unsigned i);
/* mime_warning_name - the name of GMime parser warning code i, or NULL */
const char *mime_warning_name(unsigned i);
/* attachment flags, by bit */
const char *mime_att_flag_name(unsigned i);

#endif
