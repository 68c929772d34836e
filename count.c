/*
 * count.c - the Space-Saving counting table (see count.h): a hash index over a fixed
 * array of entries and a min-heap by count, so that an add is O(1) expected plus
 * O(log cap) and the memory is fixed when the table is made.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "count.h"

/*
 * The keys are an attacker's words: a hash they could predict would let them put every
 * user name into one chain.  So FNV-1a starts from a basis drawn once per run, and a
 * finalizer (MurmurHash3's fmix64) spreads every bit of it into the bits that pick the
 * chain.
 */
static uint64_t basis;

uint64_t
count_hash(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h;
	size_t i;

	if (basis == 0 && getrandom(&basis, sizeof(basis), 0) != sizeof(basis))
		basis ^= (uint64_t)time(NULL) << 20 ^ (uint64_t)getpid();
	basis |= 1;	/* drawn */
	h = basis;
	for (i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

struct count_table *
count_new(size_t cap)
{
	struct count_table *t = calloc(1, sizeof(*t));
	size_t i;

	if (t == NULL)
		return NULL;
	t->cap = cap;
	t->nbucket = cap * 2;
	t->e = calloc(cap, sizeof(*t->e));
	t->heap = calloc(cap, sizeof(*t->heap));
	t->bucket = malloc(t->nbucket * sizeof(*t->bucket));
	if (t->e == NULL || t->heap == NULL || t->bucket == NULL) {
		count_free(t);
		return NULL;
	}
	for (i = 0; i < t->nbucket; i++)
		t->bucket[i] = -1;
	return t;
}

void
count_free(struct count_table *t)
{
	if (t == NULL)
		return;
	free(t->e);
	free(t->heap);
	free(t->bucket);
	free(t);
}

static void
swap(struct count_table *t, size_t a, size_t b)
{
	int x = t->heap[a];

	t->heap[a] = t->heap[b];
	t->heap[b] = x;
	t->e[t->heap[a]].pos = (int)a;
	t->e[t->heap[b]].pos = (int)b;
}

/* down - restore the heap below position i after its count grew */
static void
down(struct count_table *t, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < t->n && t->e[t->heap[l]].count < t->e[t->heap[m]].count)
			m = l;
		if (r < t->n && t->e[t->heap[r]].count < t->e[t->heap[m]].count)
			m = r;
		if (m == i)
			return;
		swap(t, i, m);
		i = m;
	}
}

static void
up(struct count_table *t, size_t i)
{
	while (i > 0 && t->e[t->heap[(i - 1) / 2]].count > t->e[t->heap[i]].count) {
		swap(t, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static int
same(const struct count_entry *e, const char *key, size_t len, uint64_t h)
{
	return e->hash == h && e->len == len && memcmp(e->key, key, e->klen) == 0;
}

struct count_entry *
count_find(struct count_table *t, const char *key, size_t len)
{
	uint64_t h = count_hash(key, len);
	int i;

	for (i = t->bucket[h % t->nbucket]; i >= 0; i = t->e[i].next)
		if (same(&t->e[i], key, len, h))
			return &t->e[i];
	return NULL;
}

/* unlink - take entry i out of its hash chain */
static void
unlink_entry(struct count_table *t, int i)
{
	int *p = &t->bucket[t->e[i].hash % t->nbucket];

	while (*p != i)
		p = &t->e[*p].next;
	*p = t->e[i].next;
}

struct count_entry *
count_add(struct count_table *t, const char *key, size_t len, uint64_t weight,
    uint64_t usec)
{
	uint64_t h = count_hash(key, len);
	struct count_entry *e;
	size_t b = h % t->nbucket;
	int i;

	t->total += weight;
	for (i = t->bucket[b]; i >= 0; i = t->e[i].next)
		if (same(&t->e[i], key, len, h))
			break;
	if (i < 0) {
		uint64_t base = 0;

		if (t->n < t->cap) {
			i = (int)t->n;
			t->heap[t->n] = i;
			t->e[i].pos = (int)t->n++;
		} else {
			i = t->heap[0];	/* the least counted key gives up its place */
			unlink_entry(t, i);
			base = t->e[i].count;
			t->evicted++;
		}
		e = &t->e[i];
		memset(e->aux, 0, sizeof(e->aux));
		e->count = e->err = base;
		e->first = e->last = usec;	/* nothing of the key it replaced */
		e->hash = h;
		e->len = len;
		e->klen = len < COUNT_KEY_MAX ? len : COUNT_KEY_MAX;
		memcpy(e->key, key, e->klen);
		e->next = t->bucket[b];
		t->bucket[b] = i;
	}
	e = &t->e[i];
	e->count += weight;
	if (usec != 0) {
		if (e->first == 0 || usec < e->first)
			e->first = usec;
		if (usec > e->last)
			e->last = usec;
	}
	up(t, (size_t)e->pos);
	down(t, (size_t)e->pos);
	return e;
}

static int
bycount(const void *a, const void *b)
{
	const struct count_entry *x = *(struct count_entry *const *)a;
	const struct count_entry *y = *(struct count_entry *const *)b;

	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->key, y->key, x->klen);
}

size_t
count_sorted(struct count_table *t, struct count_entry **out, size_t max)
{
	struct count_entry **all = malloc(t->n * sizeof(*all) + 1);
	size_t i, n;

	if (all == NULL)
		return 0;
	for (i = 0; i < t->n; i++)
		all[i] = &t->e[i];
	qsort(all, t->n, sizeof(*all), bycount);
	n = t->n < max ? t->n : max;
	memcpy(out, all, n * sizeof(*out));
	free(all);
	return n;
}
