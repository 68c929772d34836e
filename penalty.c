/*
 * penalty.c - how long Dovecot takes to answer an AUTH dialogue, for the shell:
 * auth_failure_delay before each failure (answered on Dovecot's 500 ms ticks of a
 * one-second clock, so 1.5 or 2 s), and the penalty its anvil keeps per client
 * address (IPv6 by its /48): 4, 8, then 15 s before the next request of a client
 * that failed in the last 15 s, a guess repeated not counted again, a success
 * clearing it.  Past Postfix's 10 s the session answers 454 (sasl.c).
 *
 * Each connection is its own process, so the penalties live in a table file of the
 * spool (.penalty: PENALTY_SLOTS records, one per address hash, under flock), as
 * anvil's live in one process.  A table that cannot be used costs the cross-
 * connection part only.  It never replies, logs or sleeps itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "penalty.h"

#define PENALTY_SLOTS	4096	/* addresses the table remembers (a collision forgets one) */
#define PENALTY_MAX	4	/* AUTH_PENALTY_MAX_PENALTY */
#define PENALTY_INIT_S	2	/* AUTH_PENALTY_INIT_SECS */
#define PENALTY_MAX_S	15	/* AUTH_PENALTY_MAX_SECS */
#define LOCK_WAIT_MS	200	/* the longest wait for the table's lock; then the own record */

/* the file's layout: records at fixed offsets, the same in every build */
_Static_assert(sizeof(struct penalty_slot) == 128, "a penalty record is 128 bytes");

/* to_secs - Dovecot's auth_penalty_to_secs */
static unsigned
to_secs(unsigned penalty)
{
	unsigned secs = PENALTY_INIT_S, i;

	for (i = 0; i < penalty; i++)
		secs *= 2;
	return secs < PENALTY_MAX_S ? secs : PENALTY_MAX_S;
}

void
penalty_init(struct penalty *p, const char *dir, const char *addr, unsigned delay_ms)
{
	struct in6_addr a6;

	memset(p, 0, sizeof(*p));
	p->delay_ms = delay_ms;
	p->fd = -1;
	snprintf(p->ident, sizeof(p->ident), "%s", addr);
	if (inet_pton(AF_INET6, addr, &a6) == 1) {
		memset(a6.s6_addr + 6, 0, 10);	/* PENALTY_IPV6_MASK_BITS 48 */
		inet_ntop(AF_INET6, &a6, p->ident, sizeof(p->ident));
	}
	if (dir != NULL)
		snprintf(p->path, sizeof(p->path), "%s/.penalty", dir);
}

/* slot_at - where this address's record is in the table */
static off_t
slot_at(const struct penalty *p)
{
	uint32_t h = 2166136261u;
	const char *c;

	for (c = p->ident; *c != '\0'; c++)
		h = (h ^ (unsigned char)*c) * 16777619u;
	return (off_t)(h % PENALTY_SLOTS) * (off_t)sizeof(struct penalty_slot);
}

/* open_table - the table file; the spool directory is made (0700) if need be */
static int
open_table(const struct penalty *p)
{
	int flags = O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, fd;
	char dir[sizeof(p->path)];

	if ((fd = open(p->path, flags, 0600)) >= 0 || errno != ENOENT)
		return fd;
	snprintf(dir, sizeof(dir), "%s", p->path);
	*strrchr(dir, '/') = '\0';
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -1;
	return open(p->path, flags, 0600);
}

/*
 * lock - the table's lock, waited for at most LOCK_WAIT_MS: a holder only reads and
 * writes one record, so a longer wait means a stopped process or a hung disk, and the
 * reply must not wait for that
 */
static int
lock(int fd)
{
	const struct timespec step = { 0, 2 * 1000 * 1000 };
	int i;

	for (i = 0; i < LOCK_WAIT_MS / 2; i++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		nanosleep(&step, NULL);
	}
	return -1;
}

/* load - this address's record, locked; the process's own when the table fails */
static void
load(struct penalty *p, struct penalty_slot *r)
{
	memset(r, 0, sizeof(*r));
	if (p->path[0] != '\0' && (p->fd = open_table(p)) >= 0 && lock(p->fd) < 0) {
		close(p->fd);
		p->fd = -1;
	}
	if (p->fd >= 0 && pread(p->fd, r, sizeof(*r), slot_at(p)) == (ssize_t)sizeof(*r) &&
	    strncmp(r->ident, p->ident, sizeof(r->ident)) == 0) {
		r->ident[sizeof(r->ident) - 1] = '\0';
		return;
	}
	*r = p->own;
	snprintf(r->ident, sizeof(r->ident), "%s", p->ident);
}

static void
save(struct penalty *p, const struct penalty_slot *r)
{
	p->own = *r;
	if (p->fd >= 0) {
		/* a failed write leaves the process's own copy to go on with */
		(void)!pwrite(p->fd, r, sizeof(*r), slot_at(p));
		close(p->fd);	/* and the lock with it */
		p->fd = -1;
	}
}

/* failure_delay - auth_failure_delay, answered on the first 500 ms tick of Dovecot's
   one-second clock that is that many seconds on */
static unsigned
failure_delay(unsigned delay_ms, unsigned after)
{
	struct timespec now;
	long long frac, need;

	clock_gettime(CLOCK_REALTIME, &now);
	frac = (now.tv_nsec / 1000000 + after) % 1000;
	need = (long long)delay_ms - frac;
	return need <= 0 ? 0 : (unsigned)((need + 499) / 500 * 500);
}

/* inc - anvil's PENALTY-INC: the same guess again keeps the penalty and its time */
static void
inc(struct penalty_slot *r, unsigned value, uint32_t sum, int64_t now)
{
	unsigned i;

	if (value > PENALTY_MAX)
		value = PENALTY_MAX;
	if (sum != 0) {
		for (i = 0; i < r->nsum && i < PENALTY_SUMS; i++)
			if (r->sum[i] == sum) {
				memmove(r->sum + 1, r->sum, i * sizeof(r->sum[0]));
				r->sum[0] = sum;
				r->penalty = value - 1;
				return;
			}
		memmove(r->sum + 1, r->sum, (PENALTY_SUMS - 1) * sizeof(r->sum[0]));
		r->sum[0] = sum;
		if (r->nsum < PENALTY_SUMS)
			r->nsum++;
	}
	r->penalty = value;
	r->last_penalty = now;
}

unsigned
penalty_wait(void *ctx, enum auth_moment m, unsigned long sum, unsigned after)
{
	struct penalty *p = ctx;
	struct timespec ts;
	int64_t now, at;
	struct penalty_slot r;
	unsigned pen, drop;

	if (p->delay_ms == 0)
		return 0;
	/* Dovecot's clock is in seconds; a verdict falls after the waits before it */
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (int64_t)ts.tv_sec;
	at = ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + after) / 1000;
	load(p, &r);
	switch (m) {
	case AUTH_BEGIN:
		/* auth_penalty_anvil_callback: a penalty wears off with time */
		pen = r.penalty > PENALTY_MAX ? PENALTY_MAX : r.penalty;
		for (drop = PENALTY_MAX; pen > 0; drop--, pen--)
			if (now - r.last_penalty < (int64_t)to_secs(drop))
				break;
		p->last = pen;
		save(p, &r);
		return pen > 0 ? to_secs(pen) * 1000 : 0;
	case AUTH_FAILED:
		inc(&r, p->last + 1, (uint32_t)sum, at);
		save(p, &r);
		return failure_delay(p->delay_ms, after);
	case AUTH_PASSED:
		if (p->last != 0)
			inc(&r, 0, 0, at);
		save(p, &r);
		return 0;
	}
	save(p, &r);
	return 0;
}
