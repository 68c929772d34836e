/*
 * flood.c - the per-session event budget: repetitive events become summaries.
 * See flood.h.  No I/O: the summaries go to the send callback (the event sink).
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "flood.h"

void
flood_init(struct flood *f, void (*send)(void *, const struct event *), void *ctx)
{
	f->send = send;
	f->ctx = ctx;
	f->coalesced = 0;
	f->nkind = 0;
}

/* get - the value of a field, or NULL */
static const struct field *
get(const struct event *ev, const char *name)
{
	size_t i;

	for (i = 0; i < ev->nfield; i++)
		if (strcmp(ev->field[i].name, name) == 0)
			return &ev->field[i];
	return NULL;
}

/* copy_z - a field into a small NUL-terminated buffer ("" if absent) */
static void
copy_z(char *dst, size_t size, const struct field *f)
{
	size_t n = f == NULL ? 0 : f->len < size - 1 ? f->len : size - 1;

	if (n > 0)
		memcpy(dst, f->val, n);
	dst[n] = '\0';
}

/* same_z - does a field, cut as copy_z cuts it, equal a buffer copy_z filled? */
static int
same_z(const char *z, size_t size, const struct field *f)
{
	size_t n = strlen(z), m = f == NULL ? 0 : f->len < size - 1 ? f->len : size - 1;

	return n == m && (n == 0 || memcmp(z, f->val, n) == 0);
}

/* kind - the kind ev belongs to, NULL for events never coalesced */
static struct flood_kind *
kind(struct flood *f, const struct event *ev)
{
	const struct field *cmd = get(ev, "COMMAND"), *why = get(ev, "REASON");
	struct flood_kind *k;
	size_t i;

	if (ev->type != EV_EHLO && ev->type != EV_COMMAND)
		return NULL;
	for (i = 0; i < f->nkind; i++) {
		k = &f->kind[i];
		if (k->type == ev->type && same_z(k->command, sizeof(k->command), cmd) &&
		    same_z(k->reason, sizeof(k->reason), why))
			return k;
	}
	/* a new kind; past FLOOD_KINDS, the last one takes every other kind */
	if (f->nkind > FLOOD_KINDS)
		return &f->kind[FLOOD_KINDS];
	k = &f->kind[f->nkind++];
	memset(k, 0, offsetof(struct flood_kind, first));
	k->type = ev->type;
	if (f->nkind > FLOOD_KINDS) {
		snprintf(k->command, sizeof(k->command), "*");
	} else {
		copy_z(k->command, sizeof(k->command), cmd);
		copy_z(k->reason, sizeof(k->reason), why);
	}
	return k;
}

/* summary - one repeat_summary event for what the kind holds */
static void
summary(struct flood *f, struct flood_kind *k)
{
	struct event ev;
	unsigned char md[SHA256_DIGEST_LENGTH];
	char count[24], total[24], hex[2 * SHA256_DIGEST_LENGTH + 1];
	const char *type = k->type == EV_EHLO ? "ehlo" : "command";
	size_t i;

#define FIELD(nm, v, l) (ev.field[ev.nfield].name = (nm), ev.field[ev.nfield].val = (v), \
	ev.field[ev.nfield].len = (l), ev.nfield++)
	if (k->held == 0)
		return;
	SHA256_Final(md, &k->sha);
	for (i = 0; i < sizeof(md); i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	snprintf(count, sizeof(count), "%llu", k->held);
	snprintf(total, sizeof(total), "%llu", FLOOD_KEEP + k->summarized + k->held);
	memset(&ev, 0, sizeof(ev));
	ev.type = EV_REPEAT;
	ev.priority = 5;
	FIELD("REPEATED", type, strlen(type));
	if (k->command[0] != '\0')
		FIELD("COMMAND", k->command, strlen(k->command));
	if (k->reason[0] != '\0')
		FIELD("REASON", k->reason, strlen(k->reason));
	FIELD("REPEAT_COUNT", count, strlen(count));
	FIELD("REPEAT_TOTAL", total, strlen(total));
	FIELD("FIRST_VALUE", k->first, k->first_len);
	FIELD("LAST_VALUE", k->last, k->last_len);
	FIELD("VALUES_SAME", k->same ? "1" : "0", 1);
	FIELD("VALUES_SHA256", hex, strlen(hex));
	if (k->reply[0] != '\0')
		FIELD("REPLY", k->reply, strlen(k->reply));
#undef FIELD
	f->send(f->ctx, &ev);
	k->summarized += k->held;
	k->held = 0;
}

/* hold - count ev in its kind instead of sending it */
static void
hold(struct flood_kind *k, const struct event *ev)
{
	const struct field *v = get(ev, ev->type == EV_EHLO ? "DOMAIN" : "VALUE");
	const char *val = v != NULL ? v->val : "";
	size_t len = v != NULL ? v->len : 0, keep = len < FLOOD_VALUE_MAX ? len : FLOOD_VALUE_MAX;
	unsigned char be[8];
	int i;

	if (k->held == 0) {
		SHA256_Init(&k->sha);
		memcpy(k->first, val, keep);
		k->first_len = keep;
		k->first_full = len;
		k->same = 1;
	} else if (k->same) {
		/* the kept head of the first value vouches for the whole only if it is all */
		k->same = len == k->first_full && k->first_full <= FLOOD_VALUE_MAX &&
		    memcmp(k->first, val, len) == 0;
	}
	memcpy(k->last, val, keep);
	k->last_len = keep;
	copy_z(k->reply, sizeof(k->reply), get(ev, "REPLY"));
	/* each value as its 8-byte big-endian length, then its bytes */
	for (i = 0; i < 8; i++)
		be[i] = (unsigned char)((unsigned long long)len >> (56 - 8 * i));
	SHA256_Update(&k->sha, be, sizeof(be));
	SHA256_Update(&k->sha, val, len);
	k->held++;
}

void
flood_event(struct flood *f, const struct event *ev)
{
	struct flood_kind *k = kind(f, ev);

	if (k == NULL || k->total++ < FLOOD_KEEP) {
		f->send(f->ctx, ev);
		return;
	}
	hold(k, ev);
	f->coalesced++;
	if (k->held >= FLOOD_EVERY)
		summary(f, k);
}

void
flood_flush(struct flood *f)
{
	size_t i;

	for (i = 0; i < f->nkind; i++)
		summary(f, &f->kind[i]);
}
