/*
 * sink.h - where events go: journald (sd_journal_sendv) and JSON lines (yajl).
 */
#ifndef SINK_H
#define SINK_H

#include <time.h>

#include <yajl/yajl_gen.h>

#include "session.h"

/* What every event of one connection carries, besides its own fields. */
struct sink_peer {
	char session_id[33];
	char src[64], src_port[8];
	char dst[64], dst_port[8];
	const char *hostname;
	int tls;		/* the session is inside TLS: every event says TLS=1 */
	const char *tls_version, *tls_cipher, *ja3_hash, *ja4;	/* then, for sidecars */
};

struct sink {
	int journal;		/* send to journald */
	int json_fd;		/* JSON lines here, or -1 */
	int fallback_fd;	/* JSON lines for events journald refused, or -1 */
	int stalled;		/* journald took longer than SINK_JOURNAL_MS: fallback only */
	unsigned deferred;	/* events that went to the fallback instead of journald */
	unsigned lost;		/* events that reached nothing */
	const struct sink_peer *peer;
};

/*
 * How long one event may wait for journald.  Its socket blocks when journald stops
 * reading (its queue holds net.unix.max_dgram_qlen datagrams): past this bound the
 * event, and every later one of the process, goes to the fallback instead.
 */
#define SINK_JOURNAL_MS	250

/* sink_event - send one event everywhere it should go (a session_ops callback) */
void sink_event(void *sink, const struct event *ev);
const char *sink_event_name(enum event_type);
/*
 * sink_send - an event of another program over the spool (decky-smtpd-analyze): its
 * type, its 32-hex-digit catalog id, and any number of fields after the peer's;
 * names may repeat (journald keeps each value, the JSON line gets an array).
 * 0 once journald, the fallback or the JSON sink took it; -1 if none did.
 */
int sink_send(struct sink *, const char *type, const char *message_id, int priority,
    const struct field *, size_t);
/* sink_json_string - "key": value, key lower-cased; bytes that are not UTF-8 get a
 * readable stand-in and the exact bytes in "<key>_base64" beside it */
void sink_json_string(yajl_gen, const char *key, const char *val, size_t len);
/* sink_timestamp - RFC 3339 UTC with microseconds */
void sink_timestamp(char *buf, size_t size, const struct timespec *);

#endif
