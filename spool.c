/*
 * spool.c - every accepted message, byte for byte as received after dot-unstuffing,
 * in a Maildir: written under tmp/, fsync'd, renamed into new/ and the directory
 * fsync'd before the session may answer 250.  Memory is one fixed buffer, whatever
 * the message size.  It never touches a file outside its directory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "spool.h"

void
spool_init(struct spool *sp, const char *dir)
{
	memset(sp, 0, sizeof(*sp));
	sp->dir = dir;
	sp->fd = -1;
}

/* subdir - create dir/name if missing */
static int
subdir(const char *dir, const char *name)
{
	char p[4096];

	if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, name) >= sizeof(p))
		return -1;
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* fsync_dir - make a rename in dir durable */
static int
fsync_dir(const char *dir, const char *name)
{
	char p[4096];
	int fd, rc;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if ((fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/*
 * spool_open - a new file under tmp/.  The queue id is Postfix's short form: the
 * microseconds as five hex digits, then the file's inode number in hex.
 */
int
spool_open(void *ctx, char *qid, size_t qidsize)
{
	struct spool *sp = ctx;
	struct timeval tv;
	struct stat st;

	if (!sp->ready) {
		if (mkdir(sp->dir, 0700) < 0 && errno != EEXIST)
			return -1;
		if (subdir(sp->dir, "tmp") < 0 || subdir(sp->dir, "new") < 0 ||
		    subdir(sp->dir, "cur") < 0)
			return -1;
		sp->ready = 1;
	}
	gettimeofday(&tv, NULL);
	snprintf(sp->tmp, sizeof(sp->tmp), "%s/tmp/%ld.%06ld.%d", sp->dir, (long)tv.tv_sec,
	    (long)tv.tv_usec, (int)getpid());
	sp->fd = open(sp->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (sp->fd < 0 || fstat(sp->fd, &st) < 0)
		goto fail;
	snprintf(sp->qid, sizeof(sp->qid), "%05lX%lX", (unsigned long)tv.tv_usec,
	    (unsigned long)st.st_ino);
	/* no two ids in one process repeat, even for a reused inode in the same usec */
	if (strcmp(sp->qid, sp->last_qid) == 0)
		snprintf(sp->qid, sizeof(sp->qid), "%05lX%lX",
		    (unsigned long)(tv.tv_usec + 1) % 1000000, (unsigned long)st.st_ino);
	memcpy(sp->last_qid, sp->qid, sizeof(sp->qid));
	snprintf(qid, qidsize, "%s", sp->qid);
	sp->buflen = 0;
	sp->path[0] = '\0';
	return 0;
fail:
	if (sp->fd >= 0) {
		close(sp->fd);
		unlink(sp->tmp);
	}
	sp->fd = -1;
	return -1;
}

/* write_all - all of buf, or -1 */
static int
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

static int
flush(struct spool *sp)
{
	size_t n = sp->buflen;

	sp->buflen = 0;
	return write_all(sp->fd, sp->buf, n);
}

int
spool_write(void *ctx, const char *buf, size_t len)
{
	struct spool *sp = ctx;

	if (sp->fd < 0)
		return -1;
	if (sp->buflen + len > sizeof(sp->buf) && flush(sp) < 0)
		return -1;
	if (len >= sizeof(sp->buf))
		return write_all(sp->fd, buf, len);
	memcpy(sp->buf + sp->buflen, buf, len);
	sp->buflen += len;
	return 0;
}

/* spool_close - commit: flush, fsync, rename into new/, fsync new/; else remove */
int
spool_close(void *ctx, int commit)
{
	struct spool *sp = ctx;
	int rc = 0;

	if (sp->fd < 0)
		return -1;
	if (commit) {
		snprintf(sp->path, sizeof(sp->path), "%s/new/%s", sp->dir, sp->qid);
		if (flush(sp) < 0 || fsync(sp->fd) < 0)
			rc = -1;
	}
	if (close(sp->fd) < 0)
		rc = -1;
	sp->fd = -1;
	if (commit && rc == 0 && rename(sp->tmp, sp->path) == 0 &&
	    fsync_dir(sp->dir, "new") == 0)
		return 0;
	unlink(sp->tmp);
	sp->path[0] = '\0';
	return commit ? -1 : 0;
}
