/*
 * spool.h - the message store: a Maildir (tmp/, new/) of uniquely named files,
 * partial messages beside it, a JSON sidecar for each, and a size budget.
 */
#ifndef SPOOL_H
#define SPOOL_H

#include <stddef.h>
#include <time.h>

/*
 * SHA-256 from libcrypto's one-shot interface: EVP's set-up (configuration and
 * providers) cost half of a whole session's instructions (bench/RESULTS.md).
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "session.h"
#include "sink.h"

#define SPOOL_BUF	65536
/* the budget is taken in steps this big, and what a message did not use given back */
#define SPOOL_RESERVE	262144
/* held back from each reservation for the message's sidecar */
#define SPOOL_META_RESERVE	8192
/* Postfix's smtpd_check_queue: MAIL gets 452 unless free space > 1.5 x size limit */
#define SPOOL_MINFREE_NUM	3
#define SPOOL_MINFREE_DEN	2
/* the queue id's inode part: slots of .qslots, and how long a slot stays busy (usec) */
#define SPOOL_SLOTS	128
#define SPOOL_SLOT_REC	24		/* "%020llu\n", two spaces and a NUL */
#define SPOOL_SLOT_HOLD	5000

struct spool {
	const char *dir;		/* the spool root */
	unsigned long long budget;	/* bytes the spool may hold; 0: no limit */
	unsigned long long size_limit;	/* for the free-space check at MAIL; 0: none */
	const struct sink_peer *peer;	/* for the sidecar */
	int ready;			/* its directories exist */
	int fd;				/* the message being written, or -1 */
	int resfd;			/* its reservation record, tmp/<stem>.res, or -1 */
	int slotfd;			/* .qslots, the queue id slots, or -1 */
	int slot;			/* the slot this message holds */
	int full;			/* the budget was spent while writing */
	int failed;			/* a write failed: nothing more is stored */
	unsigned long long reserved;	/* bytes of the budget this message holds */
	unsigned long long written;	/* bytes taken from the session */
	unsigned long long stored;	/* bytes on disk (what the digest covers) */
	unsigned long long kept;	/* stored plus its sidecar, once placed */
	struct timespec started;
	SHA256_CTX sha;
	char sha256[65];		/* hex, once the message is closed */
	char tmp[4096];			/* its path under tmp/ */
	char path[4096];		/* where it ended: new/ or partial/ */
	char meta[4096];		/* its sidecar */
	char stem[256];			/* its name under tmp/: sec.usec.pid.session */
	char qid[32];
	size_t buflen;
	char buf[SPOOL_BUF];
};

void spool_init(struct spool *, const char *dir, unsigned long long budget,
    unsigned long long size_limit, const struct sink_peer *);
/* The session_ops message callbacks; ctx is a struct spool. */
int spool_room(void *ctx);
int spool_open(void *ctx, char *qid, size_t qidsize);
int spool_write(void *ctx, const char *buf, size_t len);
int spool_close(void *ctx, const struct msg_info *);

#endif
