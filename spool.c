/*
 * spool.c - every message, byte for byte as received after dot-unstuffing.
 *
 * An accepted message goes into a Maildir: written under tmp/, fsync'd, renamed into
 * new/, the directory fsync'd, all before the session may answer 250.  A message cut
 * off (disconnect, timeout, size limit, RSET) is kept too, under partial/.  Each has
 * a JSON sidecar under meta/ (yajl) with the envelope, the session and its SHA-256
 * (OpenSSL's libcrypto).  Memory is one fixed buffer whatever the message size.  The
 * spool's size is counted in .usage; when it reaches the budget, MAIL gets 452.
 * It never touches a file outside its directory.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>

#include "spool.h"

static const char *const subdirs[] = { "tmp", "new", "cur", "partial", "meta" };

void
spool_init(struct spool *sp, const char *dir, unsigned long long budget,
    const struct sink_peer *peer)
{
	/* the fields, not the 76 KiB of buffers: a page not touched is memory not used */
	memset(sp, 0, offsetof(struct spool, tmp));
	sp->tmp[0] = sp->path[0] = sp->meta[0] = sp->qid[0] = sp->last_qid[0] = '\0';
	sp->buflen = 0;
	sp->dir = dir;
	sp->budget = budget;
	sp->peer = peer;
	sp->fd = -1;
}

/* ready - the spool and its directories exist (created on first use, mode 0700) */
static int
ready(struct spool *sp)
{
	char p[4096];
	size_t i;

	if (sp->ready)
		return 0;
	if (mkdir(sp->dir, 0700) < 0 && errno != EEXIST)
		return -1;
	for (i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", sp->dir, subdirs[i]);
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return -1;
	}
	sp->ready = 1;
	return 0;
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

/* fsync_dir - make a rename in dir/name durable */
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

/* --- the budget ---------------------------------------------------------------- */

/* dir_bytes - the size of the files in dir/name (a recount, when .usage is gone) */
static unsigned long long
dir_bytes(const char *dir, const char *name)
{
	char p[4096];
	unsigned long long sum = 0;
	struct dirent *e;
	struct stat st;
	DIR *d;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if ((d = opendir(p)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL)
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
			sum += (unsigned long long)st.st_size;
	closedir(d);
	return sum;
}

/*
 * usage - the spool's size from .usage, adding delta under an exclusive lock.  A
 * missing .usage (a new spool, or one an operator pruned) is recounted.
 */
static unsigned long long
usage(struct spool *sp, unsigned long long delta)
{
	char p[4096], num[32];
	unsigned long long n = 0;
	int fd, recount = 0;
	ssize_t r;

	snprintf(p, sizeof(p), "%s/.usage", sp->dir);
	if ((fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return 0;
	/* a recount writes too: take the exclusive lock whenever it may */
	if (flock(fd, LOCK_EX) == 0) {
		if ((r = pread(fd, num, sizeof(num) - 1, 0)) > 0) {
			num[r] = '\0';
			n = strtoull(num, NULL, 10);
		} else {
			size_t i;

			for (i = 1; i < sizeof(subdirs) / sizeof(subdirs[0]); i++)
				n += dir_bytes(sp->dir, subdirs[i]);
			recount = 1;
		}
		if (delta || recount) {
			n += delta;
			/* fixed width: a shorter number never leaves a stale tail */
			r = snprintf(num, sizeof(num), "%020llu\n", n);
			if (pwrite(fd, num, (size_t)r, 0) != r)
				n -= delta;
		}
	}
	close(fd);
	return n;
}

int
spool_room(void *ctx)
{
	struct spool *sp = ctx;

	if (sp->budget == 0)
		return 1;
	if (ready(sp) < 0)
		return 1;	/* open will fail and say 451 */
	return usage(sp, 0) < sp->budget;
}

/* --- one message --------------------------------------------------------------- */

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

	if (ready(sp) < 0)
		return -1;
	gettimeofday(&tv, NULL);
	clock_gettime(CLOCK_REALTIME, &sp->started);
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
	SHA256_Init(&sp->sha);
	snprintf(qid, qidsize, "%s", sp->qid);
	sp->buflen = 0;
	sp->written = 0;
	sp->full = 0;
	sp->used = sp->budget ? usage(sp, 0) : 0;
	sp->path[0] = sp->meta[0] = sp->sha256[0] = '\0';
	return 0;
fail:
	if (sp->fd >= 0) {
		close(sp->fd);
		unlink(sp->tmp);
	}
	sp->fd = -1;
	return -1;
}

/* flush - hash and write the buffer: one digest update per 64 KiB, not per line */
static int
flush(struct spool *sp)
{
	size_t n = sp->buflen;

	sp->buflen = 0;
	SHA256_Update(&sp->sha, sp->buf, n);
	return write_all(sp->fd, sp->buf, n);
}

/* spool_write - hash and store; past the budget nothing more is stored (MSG_FULL) */
int
spool_write(void *ctx, const char *buf, size_t len)
{
	struct spool *sp = ctx;

	if (sp->fd < 0)
		return MSG_ERROR;
	if (sp->budget && sp->used + sp->written + len > sp->budget) {
		/* store what fits, then no more */
		size_t fits = sp->used + sp->written < sp->budget ?
		    (size_t)(sp->budget - sp->used - sp->written) : 0;

		sp->full = 1;
		if (fits > 0 && spool_write(ctx, buf, fits) < 0)
			return MSG_ERROR;
		return MSG_FULL;
	}
	sp->written += len;
	if (sp->buflen + len > sizeof(sp->buf) && flush(sp) < 0)
		return MSG_ERROR;
	if (len >= sizeof(sp->buf)) {
		SHA256_Update(&sp->sha, buf, len);
		return write_all(sp->fd, buf, len) < 0 ? MSG_ERROR : 0;
	}
	memcpy(sp->buf + sp->buflen, buf, len);
	sp->buflen += len;
	return 0;
}

/* json_bytes - a sidecar string from session bytes */
static void
json_bytes(yajl_gen g, const char *key, struct bytes b)
{
	sink_json_string(g, key, b.p, b.len);
}

static void
json_str(yajl_gen g, const char *key, const char *val)
{
	sink_json_string(g, key, val, strlen(val));
}

static void
json_num(yajl_gen g, const char *key, unsigned long long n)
{
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	yajl_gen_integer(g, (long long)n);
}

/* sidecar - the envelope and session, as JSON, written durably next to the message */
static int
sidecar(struct spool *sp, const struct msg_info *m, unsigned long long *size)
{
	char tmp[sizeof(sp->tmp) + 8], stamp[40];
	const unsigned char *out;
	struct timespec now;
	yajl_gen g;
	size_t len;
	int fd, rc = -1;

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		return -1;
	yajl_gen_config(g, yajl_gen_validate_utf8, 1);
	clock_gettime(CLOCK_REALTIME, &now);
	yajl_gen_map_open(g);
	json_str(g, "queue_id", sp->qid);
	json_str(g, "file", sp->path);
	yajl_gen_string(g, (const unsigned char *)"partial", 7);
	yajl_gen_bool(g, m->partial != NULL);
	if (m->partial != NULL)
		json_str(g, "reason", m->partial);
	json_num(g, "body_bytes", m->body_bytes);
	json_num(g, "stored_bytes", sp->written);
	json_str(g, "sha256", sp->sha256);
	json_str(g, "session_id", sp->peer->session_id);
	json_str(g, "src", sp->peer->src);
	json_str(g, "src_port", sp->peer->src_port);
	json_str(g, "dst", sp->peer->dst);
	json_str(g, "dst_port", sp->peer->dst_port);
	json_str(g, "persona_hostname", sp->peer->hostname);
	yajl_gen_string(g, (const unsigned char *)"tls", 3);
	yajl_gen_bool(g, sp->peer->tls);
	if (sp->peer->tls) {
		json_str(g, "tls_version", sp->peer->tls_version);
		json_str(g, "tls_cipher", sp->peer->tls_cipher);
		json_str(g, "ja3_hash", sp->peer->ja3_hash);
		json_str(g, "ja4", sp->peer->ja4);
	}
	json_bytes(g, "helo", m->helo);
	json_bytes(g, "mail_from", m->from);
	json_bytes(g, "mail_from_params", m->from_params);
	json_bytes(g, "rcpt_to", m->rcpts);
	json_num(g, "rcpt_count", m->nrcpt);
	json_bytes(g, "auth_user", m->auth_user);
	json_bytes(g, "hdr_subject", m->subject);
	json_bytes(g, "hdr_from", m->hdr_from);
	json_bytes(g, "hdr_message_id", m->hdr_message_id);
	sink_timestamp(stamp, sizeof(stamp), &sp->started);
	json_str(g, "started", stamp);
	sink_timestamp(stamp, sizeof(stamp), &now);
	json_str(g, "finished", stamp);
	yajl_gen_map_close(g);
	yajl_gen_get_buf(g, &out, &len);

	snprintf(tmp, sizeof(tmp), "%s.json", sp->tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) >= 0) {
		/*
		 * The sidecar is not fsync'd: the 250 waits for the message alone (two
		 * fsyncs, not four); a crash may cost a sidecar, never a message.
		 */
		if (write_all(fd, (const char *)out, len) == 0 && write_all(fd, "\n", 1) == 0 &&
		    rename(tmp, sp->meta) == 0)
			rc = 0;
		close(fd);
		if (rc < 0)
			unlink(tmp);
	}
	*size = len + 1;
	yajl_gen_free(g);
	return rc;
}

/* finish_sha - the digest of what was stored, in hex */
static void
finish_sha(struct spool *sp)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	size_t i;

	SHA256_Final(md, &sp->sha);
	for (i = 0; i < sizeof(md); i++)
		snprintf(sp->sha256 + 2 * i, 3, "%02x", md[i]);
}

/* place - the message and its sidecar into dest/ and meta/; 0 or -1 */
static int
place(struct spool *sp, const struct msg_info *m, const char *dest)
{
	unsigned long long meta_size = 0;

	snprintf(sp->path, sizeof(sp->path), "%s/%s/%s", sp->dir, dest, sp->qid);
	snprintf(sp->meta, sizeof(sp->meta), "%s/meta/%s.json", sp->dir, sp->qid);
	if (sidecar(sp, m, &meta_size) < 0)
		return -1;
	if (rename(sp->tmp, sp->path) < 0)
		return -1;
	if (fsync_dir(sp->dir, dest) < 0)
		return -1;
	if (sp->budget)
		usage(sp, sp->written + meta_size);
	return 0;
}

/*
 * spool_close - accepted: flush, fsync, sidecar, rename into new/, fsync the
 * directories.  Partial, or an accepted one that could not be made durable: the
 * same into partial/, as far as it goes.  A message without a byte is dropped.
 */
int
spool_close(void *ctx, const struct msg_info *m)
{
	struct spool *sp = ctx;
	int ok;

	if (sp->fd < 0)
		return -1;
	ok = flush(sp) == 0 && fsync(sp->fd) == 0;
	if (close(sp->fd) < 0)
		ok = 0;
	sp->fd = -1;
	finish_sha(sp);
	if (m->partial == NULL && ok && place(sp, m, "new") == 0)
		return 0;
	if (m->partial == NULL) {
		/* not durable: what is there stays as evidence */
		struct msg_info p = *m;

		p.partial = "write_error";
		if (place(sp, &p, "partial") < 0)
			unlink(sp->tmp);
		return -1;
	}
	if (sp->written == 0 && m->body_bytes == 0) {
		unlink(sp->tmp);
		sp->path[0] = sp->meta[0] = sp->sha256[0] = '\0';
		return 0;
	}
	if (place(sp, m, "partial") < 0) {
		unlink(sp->tmp);
		sp->path[0] = sp->meta[0] = '\0';
		return -1;
	}
	return 0;
}
