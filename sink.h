/*
 * sink.h - where events go: journald (sd_journal_sendv) and JSON lines (yajl).
 */
#ifndef SINK_H
#define SINK_H

#include "session.h"

/* What every event of one connection carries, besides its own fields. */
struct sink_peer {
	char session_id[33];
	char src[64], src_port[8];
	char dst[64], dst_port[8];
	const char *hostname;
};

struct sink {
	int journal;		/* send to journald */
	int json_fd;		/* JSON lines here, or -1 */
	int fallback_fd;	/* JSON lines for events journald refused, or -1 */
	unsigned lost;		/* events that reached nothing */
	const struct sink_peer *peer;
};

/* sink_event - send one event everywhere it should go (a session_ops callback) */
void sink_event(void *sink, const struct event *ev);
const char *sink_event_name(enum event_type);

#endif
