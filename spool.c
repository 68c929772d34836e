/*
 * spool.c - every message, byte for byte as received after dot-unstuffing.
 *
 * An accepted message goes into a Maildir: written under tmp/, fsync'd, renamed into
 * new/, the directory fsync'd, all before the session may answer 250.  A message cut
 * off (disconnect, timeout, size limit, RSET) is kept too, under partial/.  Each has
 * a JSON sidecar under meta/ (yajl) with the envelope, the session and its SHA-256
 * (OpenSSL's libcrypto).  Memory is one fixed buffer whatever the message size.
 *
 * The budget is shared by every process of the spool: .usage holds the bytes stored
 * plus those reserved by messages being written, changed under flock(2).  A writer
 * reserves in SPOOL_RESERVE steps before it writes and gives back what it did not
 * use; its reservation is recorded in tmp/<stem>.res, which it holds locked, beside
 * tmp/<stem>, also locked.  A free lock proves the writer dead: the next message
 * opened sweeps tmp/, keeps what a dead writer left as partial (reason "orphan")
 * and releases its reservation.  Each change to the count is announced in
 * .usage first, so that one a process died in the middle of is finished by the next
 * (mend).  It never touches a file outside its directory.
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
#include <sys/statvfs.h>
#include <sys/time.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>

#include "spool.h"

static const char *const subdirs[] = { "tmp", "new", "cur", "partial", "meta" };

void
spool_init(struct spool *sp, const char *dir, unsigned long long budget,
    unsigned long long size_limit, const struct sink_peer *peer)
{
	/* the fields, not the 76 KiB of buffers: a page not touched is memory not used */
	memset(sp, 0, offsetof(struct spool, tmp));
	sp->tmp[0] = sp->path[0] = sp->meta[0] = sp->qid[0] = sp->stem[0] = '\0';
	sp->buflen = 0;
	sp->dir = dir;
	sp->budget = budget;
	sp->size_limit = size_limit;
	sp->peer = peer;
	sp->fd = -1;
	sp->resfd = -1;
	sp->slotfd = -1;
	sp->slot = SPOOL_SLOTS;
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

#define NOTE_AT		32	/* the note's place in .usage, past the count's line (mend) */
#define NOTE_LEN	384	/* one note, padded: one write replaces it whole */
#define NOTE_GONE	(~0ULL)	/* the record is removed */

/* dir_bytes - the size of the files in dir/name (a recount, when .usage is gone) */
static unsigned long long
dir_bytes(const char *dir, const char *name, const char *suffix)
{
	char p[4096];
	unsigned long long sum = 0;
	struct dirent *e;
	struct stat st;
	DIR *d;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if ((d = opendir(p)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name), k = suffix ? strlen(suffix) : 0;
		char rec[64];
		int fd;
		ssize_t r;

		if (suffix == NULL) {
			if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISREG(st.st_mode))
				sum += (unsigned long long)st.st_size;
			continue;
		}
		/* the reservations of messages being written (tmp/<stem>.res) */
		if (n <= k || strcmp(e->d_name + n - k, suffix) != 0)
			continue;
		if ((fd = openat(dirfd(d), e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
			continue;
		if ((r = pread(fd, rec, sizeof(rec) - 1, 0)) > 0) {
			rec[r] = '\0';
			sum += strtoull(rec, NULL, 10);
		}
		close(fd);
	}
	closedir(d);
	return sum;
}

/* usage_lock - .usage open and locked exclusively, or -1 */
static int
usage_lock(struct spool *sp)
{
	char p[4096];
	int fd;

	snprintf(p, sizeof(p), "%s/.usage", sp->dir);
	if ((fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return -1;
	if (flock(fd, LOCK_EX) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* usage_put - the count, fixed width: a shorter number never leaves a stale tail */
static int
usage_put(int fd, unsigned long long n)
{
	char num[NOTE_AT + 1];

	/* the count's line, then a blank one up to the note */
	snprintf(num, sizeof(num), "%020llu\n%*s\n", n, NOTE_AT - 22, "");
	return pwrite(fd, num, NOTE_AT, 0) == NOTE_AT ? 0 : -1;
}

static void mend(struct spool *, unsigned long long count, const char *note);

/*
 * usage_get - the count in the locked .usage, once what a dead process's change left
 * undone is done (mend).  A missing or empty one (a new spool, or one an operator
 * pruned) is recounted: the files kept, plus the reservations.
 */
static unsigned long long
usage_get(struct spool *sp, int fd)
{
	char buf[NOTE_AT + NOTE_LEN + 1];
	unsigned long long n = 0;
	ssize_t r;
	size_t i;

	if ((r = pread(fd, buf, sizeof(buf) - 1, 0)) > 0) {
		buf[r] = '\0';
		n = strtoull(buf, NULL, 10);
		if (r > NOTE_AT)
			mend(sp, n, buf + NOTE_AT);
		return n;
	}
	for (i = 1; i < sizeof(subdirs) / sizeof(subdirs[0]); i++)
		n += dir_bytes(sp->dir, subdirs[i], NULL);
	n += dir_bytes(sp->dir, "tmp", ".res");
	usage_put(fd, n);	/* (a count made anew: no note speaks of it) */
	return n;
}

/* less - n - r, never below 0 */
static unsigned long long
less(unsigned long long n, unsigned long long r)
{
	return n > r ? n - r : 0;
}

/* rec_put - a reservation record: what a message holds, what it has kept */
static int
rec_put(int fd, unsigned long long reserved, unsigned long long kept)
{
	char rec[64];
	int r = snprintf(rec, sizeof(rec), "%020llu %020llu\n", reserved, kept);

	/* one write of one fixed-width line: it is there whole or not at all */
	return pwrite(fd, rec, (size_t)r, 0) == r ? 0 : -1;
}

/* res_put - this message's record */
static int
res_put(struct spool *sp)
{
	return sp->resfd < 0 ? 0 : rec_put(sp->resfd, sp->reserved, sp->kept);
}

/* res_get - a record's reservation and kept bytes (0 0 if it was never written) */
static void
res_get(int fd, unsigned long long *r, unsigned long long *kept)
{
	char rec[64], *end;
	ssize_t n;

	*r = *kept = 0;
	if ((n = pread(fd, rec, sizeof(rec) - 1, 0)) <= 0)
		return;
	rec[n] = '\0';
	*r = strtoull(rec, &end, 10);
	*kept = strtoull(end, NULL, 10);
}

/*
 * The count and a message's record are two files, each written whole in one write,
 * so a process killed between the two writes of one change would leave them apart
 * (the count one step too high).  So a change is announced first, in the same file
 * as the count, at NOTE_AT: the message's stem, the count the change leaves, and the
 * reservation its record will then hold (or "-": no record).  The next process to
 * take the lock finishes what a dead one began: if the count is the announced one and
 * the stem's record is a dead process's and holds another reservation, it is made to
 * hold the announced one, or removed (mend); what the record says is kept stays its
 * own (place() and orphan() record that without changing the count).  A count the
 * change did not write is not the announced one, and the record is left as it was:
 * both are as before the change.
 */
static int dead(int dfd, const char *name, int mode);

/* note - announce a change: stem's record holds reserved once the count is count */
static void
note(int ufd, const char *stem, unsigned long long count, unsigned long long reserved)
{
	char rec[NOTE_LEN];
	int r;

	if (reserved == NOTE_GONE)
		r = snprintf(rec, sizeof(rec), "%s %020llu -", stem, count);
	else
		r = snprintf(rec, sizeof(rec), "%s %020llu %020llu", stem, count, reserved);
	if (r < 0 || r >= NOTE_LEN - 1)
		return;
	memset(rec + r, ' ', NOTE_LEN - 1 - (size_t)r);
	rec[NOTE_LEN - 1] = '\n';
	(void)!pwrite(ufd, rec, NOTE_LEN, NOTE_AT);
}

/* change - a change to the count: announced, then counted; 0 once counted */
static int
change(int ufd, const char *stem, unsigned long long count, unsigned long long reserved)
{
	note(ufd, stem, count, reserved);
	return usage_put(ufd, count);
}

/* mend - the announced change, finished if a dead process left it half done */
static void
mend(struct spool *sp, unsigned long long count, const char *rec)
{
	char p[4096], stem[256], rs[32];
	unsigned long long c, r0, k0;
	int rfd;

	if (sscanf(rec, "%255s %llu %31s", stem, &c, rs) != 3 || c != count ||
	    strchr(stem, '/') != NULL || stem[0] == '.' || strcmp(stem, sp->stem) == 0)
		return;	/* (its own record: this process is alive) */
	snprintf(p, sizeof(p), "%s/tmp/%s.res", sp->dir, stem);
	if ((rfd = dead(AT_FDCWD, p, O_RDWR)) < 0)
		return;
	if (strcmp(rs, "-") == 0) {
		unlink(p);
	} else {
		unsigned long long r = strtoull(rs, NULL, 10);

		res_get(rfd, &r0, &k0);
		if (r0 != r)
			rec_put(rfd, r, k0);
	}
	close(rfd);
}

/* grant - up to want more bytes for this message, of what the budget has left */
static void
grant(struct spool *sp, unsigned long long *n, unsigned long long want)
{
	unsigned long long avail = less(sp->budget, *n);

	if (want > avail)
		want = avail;
	*n += want;
	sp->reserved += want;
}

/* take - reserve up to want more bytes: announced, counted, recorded (see mend) */
static void
take(struct spool *sp, unsigned long long want)
{
	unsigned long long n, before = sp->reserved;
	int fd;

	if (sp->resfd < 0 || (fd = usage_lock(sp)) < 0)
		return;
	n = usage_get(sp, fd);
	grant(sp, &n, want);
	if (change(fd, sp->stem, n, sp->reserved) == 0)
		res_put(sp);
	else
		sp->reserved = before;	/* not counted: not held */
	close(fd);
}

/* release - give back what the message holds beyond what it kept */
static void
release(struct spool *sp)
{
	unsigned long long n;
	char p[4096];
	int fd;

	if (sp->resfd < 0)
		return;
	if ((fd = usage_lock(sp)) >= 0) {
		/* announced, counted, then the record goes (see mend) */
		n = less(usage_get(sp, fd), sp->reserved) + sp->kept;
		snprintf(p, sizeof(p), "%s/tmp/%s.res", sp->dir, sp->stem);
		if (change(fd, sp->stem, n, NOTE_GONE) == 0)
			unlink(p);
		close(fd);
	}
	close(sp->resfd);
	sp->resfd = -1;
	sp->reserved = 0;
}

/* --- what dead writers left ------------------------------------------------------- */

static int sidecar_out(yajl_gen, const char *tmp);
static void json_str(yajl_gen, const char *key, const char *val);
static void json_num(yajl_gen, const char *key, unsigned long long n);
static void hex_digest(SHA256_CTX *, char out[65]);

/* commit - a sweep's change for a dead writer's record, which then goes; no budget: none */
static int
commit(int ufd, const char *stem, unsigned long long n)
{
	return ufd < 0 ? 0 : change(ufd, stem, n, NOTE_GONE);
}

/* dead - fd/name opened, and its lock free (its writer is gone); -1 if alive or gone */
static int
dead(int dfd, const char *name, int mode)
{
	struct stat a, b;
	int fd;

	if ((fd = openat(dfd, name, mode | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -1;
	/* the name must still be the file locked: another sweeper may have moved it */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0 || fstat(fd, &a) < 0 ||
	    fstatat(dfd, name, &b, AT_SYMLINK_NOFOLLOW) < 0 || a.st_ino != b.st_ino ||
	    !S_ISREG(a.st_mode)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* unlink_as - dfd/stem with a suffix removed */
static void
unlink_as(int dfd, const char *stem, const char *suffix)
{
	char p[300];

	snprintf(p, sizeof(p), "%s%s", stem, suffix);
	unlinkat(dfd, p, 0);
}

/* orphan_meta - the sidecar of an orphan: what its name and file tell; its length */
static unsigned long long
orphan_meta(struct spool *sp, const char *stem, const char *qid, const char *file,
    unsigned long long size, const char *sha256, const struct stat *st)
{
	char tmp[4096], stamp[40], sid[33] = "";
	struct timespec t = { 0, 0 };
	long sec = 0, usec = 0;
	int pid = 0, rc;
	yajl_gen g;

	if (sscanf(stem, "%ld.%ld.%d.%32[0-9a-f]", &sec, &usec, &pid, sid) < 3)
		return 0;
	if ((g = yajl_gen_alloc(NULL)) == NULL)
		return 0;
	yajl_gen_config(g, yajl_gen_validate_utf8, 1);
	yajl_gen_map_open(g);
	json_str(g, "queue_id", qid);
	json_str(g, "file", file);
	yajl_gen_string(g, (const unsigned char *)"partial", 7);
	yajl_gen_bool(g, 1);
	json_str(g, "reason", "orphan");
	json_num(g, "stored_bytes", size);
	json_str(g, "sha256", sha256);
	json_str(g, "session_id", sid);
	t.tv_sec = sec;
	t.tv_nsec = usec * 1000;
	sink_timestamp(stamp, sizeof(stamp), &t);
	json_str(g, "started", stamp);
	sink_timestamp(stamp, sizeof(stamp), &st->st_mtim);
	json_str(g, "last_written", stamp);
	yajl_gen_map_close(g);
	snprintf(tmp, sizeof(tmp), "%s/tmp/%s.json", sp->dir, stem);
	rc = sidecar_out(g, tmp);
	yajl_gen_free(g);
	return rc > 0 ? (unsigned long long)rc : 0;
}

/*
 * orphan - a dead writer's message: into partial/ with a sidecar, its reservation
 * released.  What it wrote never exceeds what it reserved less SPOOL_META_RESERVE,
 * so the count only goes down.  Killed half way, the next sweep does it again.
 */
static void
orphan(struct spool *sp, int ufd, int dfd, const char *stem, unsigned long long *n)
{
	char res[300], qid[32], file[4096], sha[65];
	unsigned long long r = 0, kept = 0, metalen, n0 = *n;
	SHA256_CTX c;
	struct stat st;
	long sec, usec = 0;
	ssize_t k;
	int fd, rfd;

	if ((fd = dead(dfd, stem, O_RDONLY)) < 0)
		return;
	snprintf(res, sizeof(res), "%s.res", stem);
	rfd = dead(dfd, res, O_RDWR);
	if (rfd < 0 && faccessat(dfd, res, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		goto out;	/* its record is still held */
	if (rfd >= 0)
		res_get(rfd, &r, &kept);
	fstat(fd, &st);
	if (st.st_size == 0 || sscanf(stem, "%ld.%ld.", &sec, &usec) != 2) {
		unlinkat(dfd, stem, 0);
		kept = 0;
		goto done;
	}
	SHA256_Init(&c);
	while ((k = read(fd, sp->buf, sizeof(sp->buf))) > 0)
		SHA256_Update(&c, sp->buf, (size_t)k);
	hex_digest(&c, sha);
	snprintf(qid, sizeof(qid), "%05lX%lX", (unsigned long)usec, (unsigned long)st.st_ino);
	snprintf(file, sizeof(file), "%s/partial/%s", sp->dir, qid);
	metalen = orphan_meta(sp, stem, qid, file, (unsigned long long)st.st_size, sha, &st);
	/* as a writer does: what will be kept is recorded before the rename keeps it */
	if (rfd >= 0)
		rec_put(rfd, r, (unsigned long long)st.st_size + metalen);
	if (renameat(dfd, stem, AT_FDCWD, file) < 0) {
		unlink_as(dfd, stem, ".json");
		goto out;
	}
	fsync_dir(sp->dir, "partial");
	kept = (unsigned long long)st.st_size + metalen;
	if (metalen > 0) {
		char tmp[4096], meta[4096];

		snprintf(tmp, sizeof(tmp), "%s/tmp/%s.json", sp->dir, stem);
		snprintf(meta, sizeof(meta), "%s/meta/%s.json", sp->dir, qid);
		if (rename(tmp, meta) < 0) {
			unlink(tmp);
			kept -= metalen;
		}
	}
	*n += kept;
	kept = 0;
done:
	unlink_as(dfd, stem, ".json");
	*n = less(*n, r) + kept;
	if (commit(ufd, stem, *n) == 0)
		unlinkat(dfd, res, 0);
	else
		*n = n0;	/* not counted: the record stays for the next sweep */
out:
	if (rfd >= 0)
		close(rfd);
	close(fd);
}

/*
 * placed_sidecar - a dead writer's sidecar still in tmp/ once its message was placed
 * (killed between the two renames): it follows the message into meta/, as the record
 * counted it; a sidecar whose message is nowhere is removed, and kept less its bytes
 */
static void
placed_sidecar(struct spool *sp, int dfd, const char *stem, unsigned long long *kept)
{
	static const char *const placed[] = { "new", "cur", "partial" };
	char js[300], p[4096];
	struct stat st;
	size_t i;

	snprintf(js, sizeof(js), "%s.json", stem);
	if (fstatat(dfd, js, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return;
	for (i = 0; i < sizeof(placed) / sizeof(placed[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s/%s", sp->dir, placed[i], stem);
		if (access(p, F_OK) == 0)
			break;
	}
	snprintf(p, sizeof(p), "%s/meta/%s.json", sp->dir, stem);
	if (i < sizeof(placed) / sizeof(placed[0]) && renameat(dfd, js, AT_FDCWD, p) == 0) {
		fsync_dir(sp->dir, "meta");
		return;
	}
	unlinkat(dfd, js, 0);
	*kept = less(*kept, (unsigned long long)st.st_size);
}

/* stray - a dead writer's record whose message it had already placed or dropped */
static void
stray(struct spool *sp, int ufd, int dfd, const char *name, unsigned long long *n)
{
	unsigned long long r, kept, n1;
	char stem[256];
	int fd;

	if ((fd = dead(dfd, name, O_RDWR)) < 0)
		return;
	res_get(fd, &r, &kept);
	snprintf(stem, sizeof(stem), "%.*s", (int)(strlen(name) - 4), name);
	placed_sidecar(sp, dfd, stem, &kept);
	n1 = less(*n, r) + kept;
	if (commit(ufd, stem, n1) == 0) {
		unlinkat(dfd, name, 0);
		*n = n1;
	}
	close(fd);
}

/* ends - name ends in suffix; its stem is the rest */
static int
ends(const char *name, const char *suffix, char *stem, size_t stemsize)
{
	size_t n = strlen(name), k = strlen(suffix);

	if (n <= k || strcmp(name + n - k, suffix) != 0 || n - k >= stemsize)
		return 0;
	snprintf(stem, stemsize, "%.*s", (int)(n - k), name);
	return 1;
}

/*
 * sweep - what dead writers left in tmp/: their messages kept as partial, their
 * records released, stray sidecars removed.  n is the count (under the lock).  It
 * runs when a message is opened, and when MAIL would be refused for the budget:
 * a readdir of tmp/, which holds only the messages being written.
 */
static void
sweep(struct spool *sp, int ufd, unsigned long long *n)
{
	char p[4096], stem[256];
	struct dirent *e;
	DIR *d;

	snprintf(p, sizeof(p), "%s/tmp", sp->dir);
	if ((d = opendir(p)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		int dfd = dirfd(d);

		if (e->d_name[0] == '.')
			continue;
		if (ends(e->d_name, ".res", stem, sizeof(stem))) {
			if (faccessat(dfd, stem, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
				stray(sp, ufd, dfd, e->d_name, n);
		} else if (ends(e->d_name, ".json", stem, sizeof(stem))) {
			char res[300];

			snprintf(res, sizeof(res), "%s.res", stem);
			if (faccessat(dfd, stem, F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
			    faccessat(dfd, res, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
				unlinkat(dfd, e->d_name, 0);
		} else {
			orphan(sp, ufd, dfd, e->d_name, n);
		}
	}
	closedir(d);
}

/* sweep_locked - a sweep with the count under its lock (or none, without a budget) */
static void
sweep_locked(struct spool *sp)
{
	unsigned long long n = 0;
	int fd;

	if (sp->budget == 0) {
		sweep(sp, -1, &n);
		return;
	}
	if ((fd = usage_lock(sp)) < 0)
		return;
	n = usage_get(sp, fd);
	sweep(sp, fd, &n);
	close(fd);
}

/*
 * spool_room - may a transaction begin?  XXX Postfix's smtpd_check_queue: 452 unless
 * the spool's file system has more free than 1.5 times the message size limit
 * (queue_minfree is 0).  Then the budget, with a sweep before a refusal.
 */
int
spool_room(void *ctx)
{
	struct spool *sp = ctx;
	unsigned long long n, freeb;
	struct statvfs vfs;
	int fd, ok;

	if (ready(sp) < 0)
		return 1;	/* open will fail and say 451 */
	if (sp->size_limit && statvfs(sp->dir, &vfs) == 0) {
		freeb = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
		if (freeb / SPOOL_MINFREE_NUM * SPOOL_MINFREE_DEN <= sp->size_limit)
			return 0;
	}
	if (sp->budget == 0)
		return 1;
	if ((fd = usage_lock(sp)) < 0)
		return 0;
	if ((n = usage_get(sp, fd)) + SPOOL_META_RESERVE >= sp->budget)
		sweep(sp, fd, &n);	/* (each change it makes is counted as it is made) */
	/* a message needs room for a byte and its sidecar */
	ok = n + SPOOL_META_RESERVE < sp->budget;
	close(fd);
	return ok;
}

/* --- one message --------------------------------------------------------------- */

/*
 * create - tmp/<stem>, locked before any other process can see it: made unnamed
 * (O_TMPFILE), locked, then linked in.  A file system without O_TMPFILE gets
 * O_EXCL, and a sweep could take the new file for an orphan for an instant.
 */
static int
create(struct spool *sp)
{
	char dir[4096], proc[64];
	int fd;

	snprintf(dir, sizeof(dir), "%s/tmp", sp->dir);
	fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (fd >= 0) {
		flock(fd, LOCK_EX);
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		if (linkat(AT_FDCWD, proc, AT_FDCWD, sp->tmp, AT_SYMLINK_FOLLOW) == 0)
			return fd;
		close(fd);
	}
	if ((fd = open(sp->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >= 0)
		flock(fd, LOCK_EX);
	return fd;
}

/* reserve - the message's record, and its first reservation, under the lock */
static int
reserve(struct spool *sp, int ufd)
{
	unsigned long long n;
	char p[sizeof(sp->tmp) + 8];

	snprintf(p, sizeof(p), "%s.res", sp->tmp);
	if ((sp->resfd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
		return -1;
	flock(sp->resfd, LOCK_EX);
	/* the record's bytes exist before they are needed: a full disk cannot lose it */
	if (res_put(sp) < 0) {
		close(sp->resfd);
		sp->resfd = -1;
		unlink(p);
		return -1;
	}
	n = usage_get(sp, ufd);
	grant(sp, &n, SPOOL_RESERVE);
	if (change(ufd, sp->stem, n, sp->reserved) == 0)
		res_put(sp);
	else
		sp->reserved = 0;
	return 0;
}

/*
 * The queue id a client sees.  Postfix's short id is the microseconds as five hex
 * digits, then the queue file's inode in hex; Postfix removes the file after
 * delivery, so the same few inodes come back (500 messages to the reference, one a
 * session: 25 inode parts, 73% of them the first).  Every message is kept here, so
 * the file's own inode would climb with the spool.  Instead the "inode" is one of
 * SPOOL_SLOTS slots, the lowest free one, as a file system hands out the lowest free
 * inode: a slot is held (an OFD lock on its byte of .qslots) while a message is
 * written, and for SPOOL_SLOT_HOLD microseconds after, the time Postfix's queue
 * manager takes to deliver and remove the file.  Slot k is a number above the
 * inode of tmp/, with small gaps, fixed for the spool.  The file keeps a unique
 * name (the stem); the sidecar and the events carry both.
 */

static unsigned char usec_used[1000000 / 8];	/* this session's usec parts */

/* mix - a fixed scramble of a number */
static unsigned long long
mix(unsigned long long x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

/* slot_inode - the inode number slot k shows */
static unsigned long long
slot_inode(const struct stat *tmpdir, int k)
{
	unsigned long long ino = tmpdir->st_ino + 1 + mix(tmpdir->st_ino) % 192;
	int j;

	for (j = 0; j < k; j++)
		ino += 1 + mix(tmpdir->st_ino + (unsigned long long)j + 1) % 4;
	return ino;
}

/* slot_take - the lowest free slot, locked; its number, or SPOOL_SLOTS if none */
static int
slot_take(struct spool *sp, unsigned long long now)
{
	char p[4096], rec[SPOOL_SLOT_REC + 1];
	struct flock fl;
	int k;

	snprintf(p, sizeof(p), "%s/.qslots", sp->dir);
	if (sp->slotfd < 0 && (sp->slotfd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return SPOOL_SLOTS;
	for (k = 0; k < SPOOL_SLOTS; k++) {
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		fl.l_start = (off_t)k * SPOOL_SLOT_REC;
		fl.l_len = SPOOL_SLOT_REC;
		if (fcntl(sp->slotfd, F_OFD_SETLK, &fl) < 0)
			continue;
		memset(rec, 0, sizeof(rec));
		if (pread(sp->slotfd, rec, SPOOL_SLOT_REC, fl.l_start) <= 0 ||
		    strtoull(rec, NULL, 10) <= now)
			return k;
		fl.l_type = F_UNLCK;
		fcntl(sp->slotfd, F_OFD_SETLK, &fl);
	}
	return SPOOL_SLOTS;
}

/* slot_give - the slot back, busy for SPOOL_SLOT_HOLD more */
static void
slot_give(struct spool *sp)
{
	char rec[SPOOL_SLOT_REC + 1];
	struct timeval tv;
	struct flock fl;

	if (sp->slotfd < 0 || sp->slot >= SPOOL_SLOTS)
		return;
	gettimeofday(&tv, NULL);
	snprintf(rec, sizeof(rec), "%020llu\n  ", (unsigned long long)tv.tv_sec * 1000000 +
	    (unsigned long long)tv.tv_usec + SPOOL_SLOT_HOLD);
	/* a failed write leaves the slot free at once: no worse than a crash */
	(void)!pwrite(sp->slotfd, rec, SPOOL_SLOT_REC, (off_t)sp->slot * SPOOL_SLOT_REC);
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_UNLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = (off_t)sp->slot * SPOOL_SLOT_REC;
	fl.l_len = SPOOL_SLOT_REC;
	fcntl(sp->slotfd, F_OFD_SETLK, &fl);
	sp->slot = SPOOL_SLOTS;
}

/* visible_qid - the id the client sees; none repeats within this process */
static void
visible_qid(struct spool *sp, const struct timeval *tv)
{
	unsigned long long now = (unsigned long long)tv->tv_sec * 1000000 + (unsigned long long)tv->tv_usec;
	unsigned long usec = (unsigned long)tv->tv_usec % 1000000, n;
	char p[4096];
	struct stat d;

	snprintf(p, sizeof(p), "%s/tmp", sp->dir);
	if (stat(p, &d) < 0)
		memset(&d, 0, sizeof(d));
	sp->slot = slot_take(sp, now);
	/* past SPOOL_SLOTS messages at once, a slot beyond them, unlocked */
	for (n = 0; n < 1000000 && (usec_used[usec / 8] & (1U << (usec % 8))); n++)
		usec = (usec + 1) % 1000000;
	usec_used[usec / 8] |= (unsigned char)(1U << (usec % 8));
	snprintf(sp->qid, sizeof(sp->qid), "%05lX%llX", usec,
	    slot_inode(&d, sp->slot < SPOOL_SLOTS ? sp->slot : SPOOL_SLOTS + (int)(usec % 64)));
}

/*
 * spool_open - a new file under tmp/, and the queue id the client sees (above)
 */
int
spool_open(void *ctx, char *qid, size_t qidsize)
{
	struct spool *sp = ctx;
	struct timeval tv;
	struct stat st;
	int ufd = -1;

	if (ready(sp) < 0)
		return -1;
	sp->reserved = sp->kept = 0;
	sp->resfd = -1;
	if (sp->budget == 0)
		sweep_locked(sp);
	else if ((ufd = usage_lock(sp)) >= 0) {
		unsigned long long n = usage_get(sp, ufd);

		sweep(sp, ufd, &n);
	} else
		return -1;
	gettimeofday(&tv, NULL);
	clock_gettime(CLOCK_REALTIME, &sp->started);
	snprintf(sp->stem, sizeof(sp->stem), "%ld.%06ld.%d.%s", (long)tv.tv_sec,
	    (long)tv.tv_usec, (int)getpid(), sp->peer->session_id);
	snprintf(sp->tmp, sizeof(sp->tmp), "%s/tmp/%s", sp->dir, sp->stem);
	sp->fd = create(sp);
	if (sp->fd < 0 || fstat(sp->fd, &st) < 0)
		goto fail;
	if (ufd >= 0 && reserve(sp, ufd) < 0)
		goto fail;
	if (ufd >= 0)
		close(ufd);
	visible_qid(sp, &tv);
	SHA256_Init(&sp->sha);
	snprintf(qid, qidsize, "%s", sp->qid);
	sp->buflen = 0;
	sp->written = sp->stored = 0;
	sp->full = sp->failed = 0;
	sp->path[0] = sp->meta[0] = sp->sha256[0] = '\0';
	return 0;
fail:
	if (sp->fd >= 0) {
		close(sp->fd);
		unlink(sp->tmp);
	}
	if (ufd >= 0)
		close(ufd);
	sp->fd = -1;
	return -1;
}

/* put - write to the file, hashing exactly the bytes that reached it */
static int
put(struct spool *sp, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w;

		if (sp->failed)
			return -1;
		if ((w = write(sp->fd, buf, len)) < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			sp->failed = 1;
			return -1;
		}
		SHA256_Update(&sp->sha, buf, (size_t)w);
		sp->stored += (unsigned long long)w;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/* flush - write the buffer: one write and digest update per 64 KiB, not per line */
static int
flush(struct spool *sp)
{
	size_t n = sp->buflen;

	sp->buflen = 0;
	return put(sp, sp->buf, n);
}

/* room - bytes this message may still take, reserving more when it needs it */
static unsigned long long
room(struct spool *sp, size_t len)
{
	unsigned long long lim;

	if (sp->budget == 0)
		return len;
	lim = less(sp->reserved, SPOOL_META_RESERVE);
	if (sp->written + len > lim) {
		unsigned long long need = sp->written + len - lim;

		take(sp, need > SPOOL_RESERVE ? need : SPOOL_RESERVE);
		lim = less(sp->reserved, SPOOL_META_RESERVE);
	}
	return less(lim, sp->written);
}

/* spool_write - store; past the budget nothing more is stored (MSG_FULL) */
int
spool_write(void *ctx, const char *buf, size_t len)
{
	struct spool *sp = ctx;
	unsigned long long fits;

	if (sp->fd < 0 || sp->failed)
		return MSG_ERROR;
	if ((fits = room(sp, len)) < len) {
		/* store what fits, then no more */
		sp->full = 1;
		if (fits > 0 && spool_write(ctx, buf, (size_t)fits) < 0)
			return MSG_ERROR;
		return MSG_FULL;
	}
	sp->written += len;
	if (sp->buflen + len > sizeof(sp->buf) && flush(sp) < 0)
		return MSG_ERROR;
	if (len >= sizeof(sp->buf))
		return put(sp, buf, len) < 0 ? MSG_ERROR : 0;
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

/* sidecar_out - the JSON into tmp (not fsync'd); its length, or -1 */
static int
sidecar_out(yajl_gen g, const char *tmp)
{
	const unsigned char *out;
	size_t len;
	int fd, rc = -1;

	yajl_gen_get_buf(g, &out, &len);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		return -1;
	if (write_all(fd, (const char *)out, len) == 0 && write_all(fd, "\n", 1) == 0)
		rc = (int)len + 1;
	if (close(fd) < 0)
		rc = -1;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

/* hex_digest - a digest in hex */
static void
hex_digest(SHA256_CTX *c, char out[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	size_t i;

	SHA256_Final(md, c);
	for (i = 0; i < sizeof(md); i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/*
 * sidecar - the envelope and session, as JSON, under tmp/<stem>.json; its length,
 * or 0 when it could not be written or does not fit the message's reservation.
 */
static unsigned long long
sidecar(struct spool *sp, const struct msg_info *m)
{
	char tmp[sizeof(sp->tmp) + 8], stamp[40];
	const unsigned char *out;
	struct timespec now;
	yajl_gen g;
	size_t len;
	int rc;

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		return 0;
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
	json_num(g, "stored_bytes", sp->stored);
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
	/* the sidecar is counted in the budget like the message */
	if (sp->budget && sp->stored + len + 1 > sp->reserved)
		take(sp, sp->stored + len + 1 - sp->reserved);
	rc = -1;
	if (sp->budget == 0 || sp->stored + len + 1 <= sp->reserved) {
		snprintf(tmp, sizeof(tmp), "%s.json", sp->tmp);
		/*
		 * The sidecar is not fsync'd: the 250 waits for the message alone (two
		 * fsyncs, not four); a crash may cost a sidecar, never a message.
		 */
		rc = sidecar_out(g, tmp);
	}
	yajl_gen_free(g);
	return rc > 0 ? (unsigned long long)rc : 0;
}

/*
 * place - the message into dest/, its sidecar into meta/.  0; -1 if it is still
 * under tmp/ (an accepted message needs its sidecar and a durable rename); -2 if it
 * could not be kept at all.  The record says what is kept before a rename makes
 * it so, and the sidecar names only a file that exists.
 */
static int
place(struct spool *sp, const struct msg_info *m, const char *dest)
{
	char tmp[sizeof(sp->tmp) + 8];
	unsigned long long metalen;
	int accepted = strcmp(dest, "new") == 0;

	snprintf(sp->path, sizeof(sp->path), "%s/%s/%s", sp->dir, dest, sp->stem);
	snprintf(sp->meta, sizeof(sp->meta), "%s/meta/%s.json", sp->dir, sp->stem);
	snprintf(tmp, sizeof(tmp), "%s.json", sp->tmp);
	metalen = sidecar(sp, m);
	if (metalen == 0 && accepted)
		return -1;
	sp->kept = sp->stored + metalen;
	res_put(sp);
	if (rename(sp->tmp, sp->path) < 0) {
		unlink(sp->tmp);
		unlink(tmp);
		sp->kept = 0;
		sp->path[0] = sp->meta[0] = sp->sha256[0] = '\0';
		return -2;
	}
	if (fsync_dir(sp->dir, dest) < 0 && accepted) {
		/* not durable: back to tmp/, for the caller to keep as partial */
		unlink(tmp);
		sp->kept = 0;
		return rename(sp->path, sp->tmp) == 0 ? -1 : -2;
	}
	if (metalen == 0 || rename(tmp, sp->meta) < 0) {
		unlink(tmp);
		sp->kept = sp->stored;
		sp->meta[0] = '\0';
	}
	return 0;
}

/* drop - nothing of the message is kept; nothing is named */
static void
drop(struct spool *sp)
{
	unlink(sp->tmp);
	sp->kept = 0;
	sp->path[0] = sp->meta[0] = sp->sha256[0] = '\0';
}

/*
 * spool_close - accepted: flush, fsync, sidecar, rename into new/, fsync the
 * directory.  Partial, or an accepted one that could not be made durable: the
 * same into partial/, as far as it goes; a sidecar that cannot be written costs
 * the sidecar, not the message.  A cut-off message without a stored byte is dropped.
 */
int
spool_close(void *ctx, const struct msg_info *m)
{
	struct spool *sp = ctx;
	struct msg_info p = *m;
	int ok, rc = 0;

	if (sp->fd < 0)
		return -1;
	slot_give(sp);
	ok = !sp->failed && flush(sp) == 0 && fsync(sp->fd) == 0;
	if (close(sp->fd) < 0)
		ok = 0;
	sp->fd = -1;
	hex_digest(&sp->sha, sp->sha256);
	if (m->partial == NULL && ok && (rc = place(sp, m, "new")) == 0) {
		release(sp);
		return 0;
	}
	if (m->partial == NULL) {
		/* not durable: what is there stays as evidence */
		p.partial = "write_error";
		if (rc == -2)
			;	/* nothing left to keep */
		else if (sp->stored == 0)
			drop(sp);
		else
			place(sp, &p, "partial");
		release(sp);
		return -1;
	}
	if (sp->stored == 0)
		drop(sp);
	else if (place(sp, m, "partial") < 0)
		rc = -1;
	release(sp);
	return rc;
}
