/*
 * flood.h - repetitive events coalesced into summaries (the per-session event budget).
 *
 * A client that says one command again and again would otherwise write one journal
 * entry a line and push its own (and its neighbours') key events past journald's
 * rate limit.  The first FLOOD_KEEP events of a kind (an ehlo, or a command event of
 * one verb and reason) go out as they are; after that they are counted, and every
 * FLOOD_EVERY of them, and at the end of the session, one repeat_summary event says
 * how many there were, the first and last values, whether all were the same, and a
 * SHA-256 over every value.  Key events (auth_attempt, mail_from, rcpt_to, message_*,
 * tls, connect, disconnect) are never coalesced.
 */
#ifndef FLOOD_H
#define FLOOD_H

#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "session.h"

#define FLOOD_KEEP	20	/* events of one kind sent as they are */
#define FLOOD_EVERY	1000	/* then one summary per this many */
#define FLOOD_KINDS	16	/* kinds told apart; the rest share one more */
#define FLOOD_VALUE_MAX	512	/* of the first and last value, kept in the summary */

struct flood_kind {
	enum event_type type;
	char command[24];		/* its COMMAND field, "" if none */
	char reason[24];		/* its REASON field, "" if none */
	unsigned long long total;	/* events of this kind, sent or not */
	unsigned long long held;	/* counted since the last summary */
	unsigned long long summarized;	/* counted in summaries already sent */
	char reply[8];			/* the REPLY of the last one */
	char first[FLOOD_VALUE_MAX], last[FLOOD_VALUE_MAX];
	size_t first_len, last_len;	/* as kept */
	size_t first_full;		/* the first value's whole length */
	int same;			/* every value held equals the first */
	SHA256_CTX sha;
};

struct flood {
	void (*send)(void *ctx, const struct event *);
	void *ctx;
	unsigned long long coalesced;	/* events of the session that became summaries */
	size_t nkind;
	struct flood_kind kind[FLOOD_KINDS + 1];
};

void flood_init(struct flood *, void (*send)(void *, const struct event *), void *ctx);
/* flood_event - send ev on, or count it in its kind's summary (sent when due) */
void flood_event(struct flood *, const struct event *);
/* flood_flush - the summaries not yet sent (at the end of the session) */
void flood_flush(struct flood *);

#endif
