/*
 * spool.h - the message store: a Maildir (tmp/, new/) of files named by queue id.
 */
#ifndef SPOOL_H
#define SPOOL_H

#include <stddef.h>

#define SPOOL_BUF	65536

struct spool {
	const char *dir;		/* the Maildir root */
	int fd;				/* the message being written, or -1 */
	int ready;			/* tmp/ and new/ exist */
	char tmp[4096];			/* its path under tmp/ */
	char path[4096];		/* its path under new/, once committed */
	char qid[32];
	char last_qid[32];
	size_t buflen;
	char buf[SPOOL_BUF];
};

void spool_init(struct spool *, const char *dir);
/* The session_ops message callbacks; ctx is a struct spool. */
int spool_open(void *ctx, char *qid, size_t qidsize);
int spool_write(void *ctx, const char *buf, size_t len);
int spool_close(void *ctx, int commit);

#endif
