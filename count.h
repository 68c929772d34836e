/*
 * count.h - a bounded counting table: the Space-Saving algorithm (Metwally, Agrawal,
 * El Abbadi, 2005) over at most `cap` keys.  While fewer than cap distinct keys have
 * been seen every count is exact; beyond that a new key takes the place of the least
 * counted one and inherits its count as `err`, so each count is at most err too high
 * and every key counted more than total/cap times is in the table.
 *
 * A key is kept up to COUNT_KEY_MAX bytes; longer keys are told apart by their full
 * length and a 64-bit hash of all their bytes (count_hash).
 */
#ifndef COUNT_H
#define COUNT_H

#include <stddef.h>
#include <stdint.h>

#define COUNT_KEY_MAX	256	/* bytes of a key kept for display */
#define COUNT_AUX	4	/* per-key side counters (sessions, credentials, ...) */

struct count_entry {
	uint64_t count;		/* the ranking count (over-estimate by at most err) */
	uint64_t err;		/* count inherited from the key it replaced */
	uint64_t aux[COUNT_AUX];
	uint64_t first, last;	/* realtime usec of the first and last hit */
	uint64_t hash;
	size_t len;		/* the key's full length */
	size_t klen;		/* bytes kept in key */
	char key[COUNT_KEY_MAX];
	/* internal */
	int next;		/* hash chain */
	int pos;		/* place in the heap */
};

struct count_table {
	size_t cap, n;
	uint64_t total;		/* every weight added */
	uint64_t evicted;	/* keys that replaced another */
	struct count_entry *e;
	int *heap;		/* entry indices, min-heap by count */
	int *bucket;		/* hash heads, 2 * cap of them */
	size_t nbucket;
};

/* count_new - a table of at most cap keys; NULL on no memory */
struct count_table *count_new(size_t cap);
void count_free(struct count_table *);
/* count_add - add weight to key (weight 0 just finds or inserts it); stamp the time */
struct count_entry *count_add(struct count_table *, const char *key, size_t len,
    uint64_t weight, uint64_t usec);
/* count_find - the entry of key, or NULL */
struct count_entry *count_find(struct count_table *, const char *key, size_t len);
/* count_hash - the 64-bit hash the tables key by: FNV-1a from a basis drawn once per
 * run, finalized, so that a journal's values cannot be chosen to share one chain */
uint64_t count_hash(const void *key, size_t len);
/* count_sorted - the entries by count, highest first (into out, at most max) */
size_t count_sorted(struct count_table *, struct count_entry **out, size_t max);

#endif
