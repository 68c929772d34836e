/*
 * analysis.h - an analysis as one JSON document (yajl): the detail of every
 * attachment and URL, and the message_analyzed event's fields, which are sent from
 * this document and only from it (first time or after a crash alike).
 */
#ifndef ANALYSIS_H
#define ANALYSIS_H

#include <yajl/yajl_gen.h>

#include "mime.h"

#define ANALYSIS_EVENT_HASHES	32	/* attachments whose SHA-256 and MD5 the event carries */
#define ANALYSIS_EVENT_ATTACHMENTS	32	/* attachments whose name and type the event carries */
#define ANALYSIS_EVENT_URLS	32	/* URLs the event carries */
#define ANALYSIS_EVENT_HOSTS	32	/* distinct URL hosts the event carries */
#define ANALYSIS_VALUE_MAX	(4 * MIME_HDR_MAX + 1)	/* one escaped value */

/* What the analyzer knows of the message besides what the parser found. */
struct analysis_ctx {
	const char *msg_id, *session_id, *src, *src_port, *dst, *dst_port, *hostname;
	const char *spool_file;		/* where the message is once analyzed */
	const char *meta_file;		/* the session's sidecar, or "" */
	const char *analysis_file;	/* this document, as it will be named */
	const char *sha256;		/* the whole message's, from the sidecar */
	const char *reason;		/* why it is partial, or NULL */
	const char *result;		/* complete, cpu_limit, time_limit, crashed, ... */
	int partial;
	unsigned long cpu_ms, elapsed_ms;
	unsigned long maxrss_kb;	/* the child's peak resident set */
	unsigned long long size;
};

/* analysis_clamp - make a result a killed child left safe to read: counts, NULs */
void analysis_clamp(struct mime_result *);
/* analysis_json - the document; 0, or -1 if yajl refused a part of it */
int analysis_json(yajl_gen, const struct mime_result *, const struct analysis_ctx *);
/*
 * analysis_escape - attacker bytes as printable UTF-8: valid UTF-8 kept but for
 * controls, and bidi and invisible format controls as \uXXXX; '\' as "\\",
 * anything else as \xNN; out holds 4 * len + 1
 */
size_t analysis_escape(char *out, size_t size, const char *in, size_t len);

#endif
