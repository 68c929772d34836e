/*
 * analyze_fuzz.c - a libFuzzer target over the analyzer's parse path: the input is a
 * stored message, byte for byte, as decky-smtpd-analyze's child reads it.  It goes
 * through GMime, libxml2 and libmagic by mime.c and links.c, then analysis.c makes
 * the document and the event.  Every broken promise is an abort(): a count past its
 * bound, a string not NUL-terminated in its array, a document yajl cannot read back,
 * a value with a control byte, a bidi or invisible format control or broken UTF-8.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "../../mime.h"
#include "../../analysis.h"
#include "../../sink.h"
#include "../../utf8.h"

static struct mime_result r;

/*
 * clean - a string of the document: valid UTF-8 without control bytes, and without
 * the bidi and invisible format controls that change what a terminal shows (U+061C,
 * U+200B-200F, U+202A-202E, U+2066-2069, U+FEFF)
 */
static void
clean(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i, n = strlen(s);

	if (!utf8_valid(u, n))
		abort();
	for (i = 0; i < n; i++) {
		if (u[i] < 0x20 || u[i] == 0x7f)
			abort();
		if ((u[i] == 0xd8 && u[i + 1] == 0x9c) ||
		    (u[i] == 0xe2 && u[i + 1] == 0x80 && ((u[i + 2] >= 0x8b && u[i + 2] <= 0x8f) ||
		    (u[i + 2] >= 0xaa && u[i + 2] <= 0xae))) ||
		    (u[i] == 0xe2 && u[i + 1] == 0x81 && u[i + 2] >= 0xa6 && u[i + 2] <= 0xa9) ||
		    (u[i] == 0xef && u[i + 1] == 0xbb && u[i + 2] == 0xbf))
			abort();
	}
}

/* walk - every string of a parsed document */
static void
walk(yajl_val v)
{
	size_t i;

	if (YAJL_IS_STRING(v))
		clean(v->u.string);
	else if (YAJL_IS_OBJECT(v))
		for (i = 0; i < v->u.object.len; i++) {
			clean(v->u.object.keys[i]);
			walk(v->u.object.values[i]);
		}
	else if (YAJL_IS_ARRAY(v))
		for (i = 0; i < v->u.array.len; i++)
			walk(v->u.array.values[i]);
}

/* bounded - the promises of mime.h and links.h */
static void
bounded(const struct mime_result *m)
{
	unsigned i;

	if (m->nparts > MIME_PARTS_MAX || m->depth > MIME_DEPTH_MAX || m->natt > MIME_ATTACH_MAX ||
	    m->natt > m->natt_total || m->ntypes > MIME_TYPES_MAX ||
	    m->nreceived > MIME_RECEIVED_MAX || m->ncharsets > MIME_CHARSETS_MAX ||
	    m->links.n > LINKS_MAX || m->links.n > m->links.seen || m->stage >= MS_COUNT)
		abort();
	for (i = 0; i < m->natt; i++)
		if (memchr(m->att[i].name, 0, sizeof(m->att[i].name)) == NULL ||
		    memchr(m->att[i].name_sent, 0, sizeof(m->att[i].name_sent)) == NULL ||
		    (m->att[i].complete && strlen(m->att[i].sha256) != 64))
			abort();
	for (i = 0; i < m->links.n; i++)
		if (memchr(m->links.l[i].url, 0, LINKS_URL_MAX) == NULL || m->links.l[i].url[0] == '\0')
			abort();
}

/* send - the document's "event" through the sink, as analyze.c's emit() does */
static void
send(yajl_val root)
{
	static struct field f[256];
	static struct sink_peer peer = { .session_id = "0", .src = "fuzz", .hostname = "fuzz" };
	static struct sink sk = { .json_fd = -1, .fallback_fd = -1, .peer = &peer };
	const char *ep[] = { "event", NULL };
	yajl_val ev = yajl_tree_get(root, ep, yajl_t_object);
	size_t i, j, n = 0;

	if (ev == NULL)
		abort();
	if (sk.json_fd < 0 && (sk.json_fd = open("/dev/null", O_WRONLY)) < 0)
		abort();
	for (i = 0; i < ev->u.object.len && n < 255; i++) {
		yajl_val v = ev->u.object.values[i];

		if (YAJL_IS_STRING(v))
			f[n++] = (struct field){ ev->u.object.keys[i], v->u.string, strlen(v->u.string) };
		for (j = 0; YAJL_IS_ARRAY(v) && j < v->u.array.len && n < 255; j++)
			if (YAJL_IS_STRING(v->u.array.values[j]))
				f[n++] = (struct field){ ev->u.object.keys[i],
				    v->u.array.values[j]->u.string, strlen(v->u.array.values[j]->u.string) };
	}
	sink_send(&sk, "message_analyzed", "aaf42535528d4373965657540eb9317f", 6, f, n);
	if (sk.lost != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct analysis_ctx c = { .msg_id = "FUZZ", .session_id = "0", .src = "", .src_port = "",
		.dst = "", .dst_port = "", .hostname = "", .spool_file = "", .meta_file = "",
		.analysis_file = "", .sha256 = "", .result = "complete" };
	const unsigned char *out;
	char err[128];
	yajl_val root;
	yajl_gen g;
	size_t len;

	if (!ready) {
		if (mime_init() < 0)
			abort();
		ready = 1;
	}
	memset(&r, 0, sizeof(r));
	mime_buffer((const char *)data, size, &r);
	bounded(&r);
	analysis_clamp(&r);
	if ((g = yajl_gen_alloc(NULL)) == NULL)
		abort();
	yajl_gen_config(g, yajl_gen_validate_utf8, 1);
	if (analysis_json(g, &r, &c) < 0)
		abort();
	if (yajl_gen_get_buf(g, &out, &len) != yajl_gen_status_ok || len == 0)
		abort();
	{
		char *doc = malloc(len + 1);

		memcpy(doc, out, len);
		doc[len] = '\0';
		if ((root = yajl_tree_parse(doc, err, sizeof(err))) == NULL)
			abort();	/* a document the analyzer could not send its event from */
		walk(root);
		send(root);
		yajl_tree_free(root);
		free(doc);
	}
	yajl_gen_free(g);
	return 0;
}
