/*
 * analyze.c - decky-smtpd-analyze: every stored message taken apart, out of the
 * SMTP path.  It takes each message of the spool's new/ and partial/, has a child
 * process parse it (mime.c) under a CPU, wall-time and memory limit, writes the
 * results next to the message's sidecar, sends one message_analyzed event (sink.c)
 * with the session's SESSION_ID and MSG_ID, and moves the message to cur/.
 *
 * Maildir's way, made crash-safe: meta/<stem>.analysis.pending is written and
 * fsync'd before the event is sent; once a sink took the event it is renamed
 * .analysis.sent (durably); the move to cur/ follows; the rename to
 * meta/<stem>.analysis.json marks it done.  A rerun finding a .pending document (a
 * crash, or no sink took the event) sends its event again from it (REPLAY=1), never
 * parses twice; one finding a .sent document only finishes, so a move that keeps
 * failing sends nothing twice.  A partial message stays in partial/, its
 * .analysis.json the mark.  It never writes the message.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "mime.h"
#include "analysis.h"
#include "sink.h"

#define ANALYZE_CPU_SECONDS	10	/* CPU time of one message (RLIMIT_CPU of its child) */
#define ANALYZE_WALL_SECONDS	30	/* wall time of one message, then its child is killed */
#define ANALYZE_MEMORY		(512UL << 20)	/* address space of a child (RLIMIT_AS) */
#define ANALYZE_SIDECAR_WAIT	5	/* seconds a message waits for its sidecar */
#define ANALYZE_SIDECAR_MAX	65536	/* bytes of a session's sidecar read */
#define ANALYZE_RESULTS_MAX	(4UL << 20)	/* bytes of an analysis document read back */
#define ANALYZE_EVENT_FIELDS	256	/* fields of one message_analyzed event */
#define ANALYZE_RESCAN_MS	250	/* a message waiting for its sidecar is looked at again */
#define ANALYZE_IDLE_MS		60000	/* watch mode looks anyway, inotify or not */

#define ANALYZED_MESSAGE_ID	"aaf42535528d4373965657540eb9317f"

static struct sink sink = { .json_fd = -1, .fallback_fd = 2 };
static const char *spool;
static struct mime_result *shared;	/* the child's result, in memory the parent sees */
static volatile sig_atomic_t stop;
static int ifd = -1;		/* inotify, in watch mode */

static void
usage(void)
{
	fprintf(stderr, "usage: decky-smtpd-analyze [--once | --watch] [--spool=DIR] "
	    "[--log=journal|json|json:FILE[,...]]\n");
	exit(2);
}

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

/* --- files ---------------------------------------------------------------------- */

/* slurp - at most max bytes of path, NUL-terminated (malloc'd); NULL if absent/larger */
static char *
slurp(const char *path, size_t max, size_t *len)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	char *buf = NULL;
	struct stat st;
	ssize_t k;
	size_t n = 0;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max ||
	    (buf = malloc((size_t)st.st_size + 1)) == NULL)
		goto out;
	while (n < (size_t)st.st_size && (k = read(fd, buf + n, (size_t)st.st_size - n)) > 0)
		n += (size_t)k;
	buf[n] = '\0';
	if (len != NULL)
		*len = n;
out:
	close(fd);
	return buf;
}

/* fsync_path - make a directory's entries (or a file) durable */
static int
fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* dirname_of - the directory part of path */
static const char *
dirname_of(const char *path, char *buf, size_t size)
{
	const char *b = strrchr(path, '/');

	snprintf(buf, size, "%.*s", b ? (int)(b - path) : 1, b ? path : ".");
	return buf;
}

static int
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* --- the session's sidecar ------------------------------------------------------ */

struct sidecar {
	yajl_val root;
	char path[PATH_MAX];
	char stem[NAME_MAX + 1];	/* its name without .json: the analysis is named by it */
};

static const char *
jstr(yajl_val root, const char *key)
{
	const char *path[] = { key, NULL };
	yajl_val v = yajl_tree_get(root, path, yajl_t_string);

	return v != NULL ? YAJL_GET_STRING(v) : "";
}

/* names_file - does the sidecar's "file" name dir/name? */
static int
names_file(yajl_val root, const char *dir, const char *name)
{
	const char *f = jstr(root, "file"), *b = strrchr(f, '/');
	size_t dl = strlen(dir);

	if (b == NULL || strcmp(b + 1, name) != 0)
		return 0;
	/* ".../<dir>/<name>" */
	return (size_t)(b - f) >= dl && strncmp(b - dl, dir, dl) == 0;
}

/* try_sidecar - meta/<file>: is it the message's? */
static int
try_sidecar(struct sidecar *sc, const char *file, const char *dir, const char *name)
{
	char err[128], *buf;

	snprintf(sc->path, sizeof(sc->path), "%s/meta/%s", spool, file);
	if ((buf = slurp(sc->path, ANALYZE_SIDECAR_MAX, NULL)) == NULL)
		return 0;
	sc->root = yajl_tree_parse(buf, err, sizeof(err));
	free(buf);
	if (sc->root != NULL && names_file(sc->root, dir, name)) {
		snprintf(sc->stem, sizeof(sc->stem), "%.*s", (int)(strlen(file) - 5), file);
		return 1;
	}
	yajl_tree_free(sc->root);
	sc->root = NULL;
	return 0;
}

/*
 * scan_sidecars - the sidecar in meta/ whose "file" names the message (a spool that
 * names files other than by queue id); it reads every sidecar, so a last resort
 */
static int
scan_sidecars(struct sidecar *sc, const char *dir, const char *name, const char *file)
{
	char p[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int found = 0;

	snprintf(p, sizeof(p), "%s/meta", spool);
	if ((d = opendir(p)) == NULL)
		return 0;
	while (!found && (e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);

		if (e->d_name[0] == '.' || n < 6 || strcmp(e->d_name + n - 5, ".json") != 0 ||
		    (n > 14 && strcmp(e->d_name + n - 14, ".analysis.json") == 0) ||
		    strcmp(e->d_name, file) == 0)
			continue;
		found = try_sidecar(sc, e->d_name, dir, name);
	}
	closedir(d);
	return found;
}

/*
 * find_sidecar - meta/<name>.json when it names the message; else, once the message
 * is no longer young, a scan of meta/.  spool.c renames the sidecar into meta/ just
 * after the message into new/, so a young message's sidecar is on its way: scanning
 * then would read every sidecar ever stored for each new message (quadratic).
 */
static int
find_sidecar(struct sidecar *sc, const char *dir, const char *name, int young)
{
	char file[NAME_MAX + 8];

	memset(sc, 0, sizeof(*sc));
	snprintf(file, sizeof(file), "%s.json", name);
	if (try_sidecar(sc, file, dir, name))
		return 1;
	return young ? 0 : scan_sidecars(sc, dir, name, file);
}

/* --- the child ------------------------------------------------------------------ */

/* limits - what one message may cost its child */
static void
limits(void)
{
	struct rlimit cpu = { ANALYZE_CPU_SECONDS, ANALYZE_CPU_SECONDS + 1 };
#if !defined(__SANITIZE_ADDRESS__)
	struct rlimit as = { ANALYZE_MEMORY, ANALYZE_MEMORY };

	/* (AddressSanitizer maps terabytes of shadow: not under it) */
	setrlimit(RLIMIT_AS, &as);
#endif
	setrlimit(RLIMIT_CPU, &cpu);
	signal(SIGALRM, SIG_DFL);
	alarm(ANALYZE_WALL_SECONDS);
}

/*
 * child_fds - the child keeps the message (as fd 3) and stderr (glib's warnings, a
 * sanitizer's report), nothing else of the parent's: not the inotify fd, the event
 * sinks, journald's socket; stdin and stdout are /dev/null
 */
static int
child_fds(int fd)
{
	int nul;

	if (fd != 3 && dup2(fd, 3) < 0)
		_exit(1);
	if ((nul = open("/dev/null", O_RDWR)) < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0)
		_exit(1);
	closefrom(4);
	return 3;
}

/* parse - the message in a child; what became of it */
static const char *
parse(int fd, unsigned long *cpu_ms, unsigned long *maxrss_kb)
{
	struct rusage ru;
	pid_t pid;
	int status;

	memset(shared, 0, sizeof(*shared));
	*cpu_ms = 0;
	if ((pid = fork()) < 0)
		return "fork_failed";
	if (pid == 0) {
		limits();
		mime_file(child_fds(fd), shared);
		_exit(0);
	}
	while (wait4(pid, &status, 0, &ru) < 0)
		if (errno != EINTR)
			return "wait_failed";
	*maxrss_kb = (unsigned long)ru.ru_maxrss;
	*cpu_ms = (unsigned long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
	    (unsigned long)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
	analysis_clamp(shared);
	if (WIFEXITED(status))
		return WEXITSTATUS(status) == 0 ? (shared->parsed ? "complete" : "unparsable") : "failed";
	switch (WTERMSIG(status)) {
	case SIGXCPU:
		return "cpu_limit";
	case SIGKILL:	/* RLIMIT_CPU's hard limit, or else the OOM killer, or anyone */
		return *cpu_ms >= ANALYZE_CPU_SECONDS * 1000UL ? "cpu_limit" : "killed";
	case SIGALRM:
		return "time_limit";
	default:
		return "crashed";	/* a fault, or memory exhausted (glib aborts) */
	}
}

/* --- the analysis document --------------------------------------------------------- */

/* write_doc - the document at path, durably (tmp, fsync, rename, fsync meta/) */
static int
write_doc(const char *path, const struct analysis_ctx *c)
{
	char tmp[PATH_MAX + 8], meta[PATH_MAX];
	const unsigned char *out;
	size_t len, off = 0;
	yajl_gen g;
	int fd, rc = -1;

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		return -1;
	yajl_gen_config(g, yajl_gen_validate_utf8, 1);
	if (analysis_json(g, shared, c) < 0 || yajl_gen_get_buf(g, &out, &len) != yajl_gen_status_ok) {
		errno = EILSEQ;	/* (a value analysis_escape let through as not UTF-8) */
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
		goto out;
	while (off < len) {
		ssize_t w = write(fd, out + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	if (off == len && write(fd, "\n", 1) == 1 && fsync(fd) == 0) {
		int cr = close(fd);

		fd = -1;	/* (closed even when close() fails: never twice) */
		snprintf(meta, sizeof(meta), "%s/meta", spool);
		if (cr == 0 && rename(tmp, path) == 0 && fsync_path(meta) == 0)
			rc = 0;
	}
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		unlink(tmp);
out:
	yajl_gen_free(g);
	return rc;
}

/* emit - the event the document at path holds; 0 once a sink took it, else -1 */
static int
emit(const char *path, int replay)
{
	static struct field f[ANALYZE_EVENT_FIELDS];
	static struct sink_peer p;
	const char *pp[] = { "peer", NULL }, *ep[] = { "event", NULL };
	yajl_val root = NULL, pv, ev;
	char err[128], *buf;
	size_t i, n = 0;
	int rc;

	if ((buf = slurp(path, ANALYZE_RESULTS_MAX, NULL)) != NULL) {
		root = yajl_tree_parse(buf, err, sizeof(err));
		free(buf);
	}
	pv = yajl_tree_get(root, pp, yajl_t_object);
	ev = yajl_tree_get(root, ep, yajl_t_object);
	if (pv == NULL || ev == NULL) {
		fprintf(stderr, "decky-smtpd-analyze: %s: unreadable\n", path);
		yajl_tree_free(root);
		return -1;
	}
	memset(&p, 0, sizeof(p));
	snprintf(p.session_id, sizeof(p.session_id), "%s", jstr(pv, "session_id"));
	snprintf(p.src, sizeof(p.src), "%s", jstr(pv, "src"));
	snprintf(p.src_port, sizeof(p.src_port), "%s", jstr(pv, "src_port"));
	snprintf(p.dst, sizeof(p.dst), "%s", jstr(pv, "dst"));
	snprintf(p.dst_port, sizeof(p.dst_port), "%s", jstr(pv, "dst_port"));
	p.hostname = jstr(pv, "persona_hostname");
	for (i = 0; i < ev->u.object.len && n < ANALYZE_EVENT_FIELDS - 1; i++) {
		yajl_val v = ev->u.object.values[i];
		const char *k = ev->u.object.keys[i];
		size_t j;

		if (YAJL_IS_STRING(v)) {
			f[n++] = (struct field){ k, v->u.string, strlen(v->u.string) };
			continue;
		}
		for (j = 0; YAJL_IS_ARRAY(v) && j < v->u.array.len && n < ANALYZE_EVENT_FIELDS - 1; j++) {
			yajl_val a = v->u.array.values[j];

			if (YAJL_IS_STRING(a))
				f[n++] = (struct field){ k, a->u.string, strlen(a->u.string) };
		}
	}
	if (replay)
		f[n++] = (struct field){ "REPLAY", "1", 1 };
	sink.peer = &p;
	sink.stalled = 0;	/* a journald that stalled once is tried again per message */
	rc = sink_send(&sink, "message_analyzed", ANALYZED_MESSAGE_ID, 6, f, n);
	sink.peer = NULL;	/* p.hostname points into root */
	if (rc < 0)	/* the document stays .pending: a later run sends it */
		fprintf(stderr, "decky-smtpd-analyze: %s: no sink took the event\n", path);
	yajl_tree_free(root);
	return rc;
}

/* --- one message ------------------------------------------------------------------- */

static long
ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* analyze - the message dir/name; 1 if it waits for its sidecar, else 0 */
static int
analyze(const char *dir, const char *name)
{
	char path[PATH_MAX], dest[PATH_MAX], pending[PATH_MAX], sent[PATH_MAX], done[PATH_MAX];
	char d2[PATH_MAX];
	struct analysis_ctx c = { 0 };
	struct timespec t0;
	struct sidecar sc;
	struct stat st;
	int isnew = strcmp(dir, "new") == 0, have, replay = 0, young, fd;

	snprintf(path, sizeof(path), "%s/%s/%s", spool, dir, name);
	if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	snprintf(done, sizeof(done), "%s/meta/%s.analysis.json", spool, name);
	if (!isnew && exists(done))
		return 0;	/* (the common case, without reading the sidecar) */
	young = time(NULL) - st.st_mtime < ANALYZE_SIDECAR_WAIT;
	have = find_sidecar(&sc, dir, name, young);
	if (!have && young)
		return 1;	/* its sidecar is on the way */
	if (!have)
		snprintf(sc.stem, sizeof(sc.stem), "%s", name);
	snprintf(done, sizeof(done), "%s/meta/%s.analysis.json", spool, sc.stem);
	snprintf(pending, sizeof(pending), "%s/meta/%s.analysis.pending", spool, sc.stem);
	snprintf(sent, sizeof(sent), "%s/meta/%s.analysis.sent", spool, sc.stem);
	snprintf(dest, sizeof(dest), "%s/%s/%s", spool, isnew ? "cur" : dir, name);
	if (exists(done)) {
		if (isnew && rename(path, dest) == 0)	/* analysed: only the move was left */
			fsync_path(dirname_of(dest, d2, sizeof(d2)));
		goto out;
	}
	if (exists(sent)) {
		goto move;	/* its event went out: only the move and the mark are left */
	} else if (exists(pending)) {
		replay = 1;
	} else {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
			goto out;
		c.result = parse(fd, &c.cpu_ms, &c.maxrss_kb);
		close(fd);
		c.elapsed_ms = (unsigned long)ms_since(&t0);
		c.msg_id = have ? jstr(sc.root, "queue_id") : "";
		c.session_id = have ? jstr(sc.root, "session_id") : "";
		c.src = have ? jstr(sc.root, "src") : "";
		c.src_port = have ? jstr(sc.root, "src_port") : "";
		c.dst = have ? jstr(sc.root, "dst") : "";
		c.dst_port = have ? jstr(sc.root, "dst_port") : "";
		c.hostname = have ? jstr(sc.root, "persona_hostname") : "";
		c.sha256 = have ? jstr(sc.root, "sha256") : "";
		c.meta_file = have ? sc.path : "";
		c.partial = !isnew;
		c.reason = have ? jstr(sc.root, "reason") : (isnew ? NULL : "unknown");
		c.spool_file = dest;
		c.analysis_file = done;
		c.size = (unsigned long long)st.st_size;
		if (write_doc(pending, &c) < 0) {
			fprintf(stderr, "decky-smtpd-analyze: %s: %s\n", pending, strerror(errno));
			goto out;
		}
	}
	if (emit(pending, replay) < 0)
		goto out;
	if (rename(pending, sent) < 0) {
		fprintf(stderr, "decky-smtpd-analyze: %s: %s\n", pending, strerror(errno));
		goto out;
	}
	fsync_path(dirname_of(sent, d2, sizeof(d2)));
move:
	if (isnew) {
		char nd[PATH_MAX];

		if (rename(path, dest) < 0) {
			fprintf(stderr, "decky-smtpd-analyze: %s: %s\n", path, strerror(errno));
			goto out;
		}
		snprintf(nd, sizeof(nd), "%s/new", spool);
		fsync_path(dirname_of(dest, d2, sizeof(d2)));
		fsync_path(nd);
	}
	if (rename(sent, done) == 0)
		fsync_path(dirname_of(done, d2, sizeof(d2)));
out:
	if (sc.root != NULL)
		yajl_tree_free(sc.root);
	return 0;
}

/* --- the spool ---------------------------------------------------------------------- */

/*
 * settle - documents left .sent by a crash after the move to cur/, where no scan sees
 * their message: only the last rename is left.  (A .pending one whose message is in
 * cur/ was left by an analyzer older than the .sent state, which moved the message
 * after sending and before marking: the same.)
 */
static void
settle(void)
{
	char p[PATH_MAX], doc[PATH_MAX + NAME_MAX + 2], done[PATH_MAX + NAME_MAX + 2], *buf, err[128];
	struct dirent *e;
	DIR *d;

	snprintf(p, sizeof(p), "%s/meta", spool);
	if ((d = opendir(p)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name), stem;
		const char *sp[] = { "spool_file", NULL };
		yajl_val root, f;
		char cur[PATH_MAX];

		if (n > 17 && strcmp(e->d_name + n - 17, ".analysis.pending") == 0)
			stem = n - 8;
		else if (n > 14 && strcmp(e->d_name + n - 14, ".analysis.sent") == 0)
			stem = n - 5;
		else
			continue;
		snprintf(doc, sizeof(doc), "%s/%s", p, e->d_name);
		if ((buf = slurp(doc, ANALYZE_RESULTS_MAX, NULL)) == NULL)
			continue;
		root = yajl_tree_parse(buf, err, sizeof(err));
		free(buf);
		f = yajl_tree_get(root, sp, yajl_t_string);
		snprintf(cur, sizeof(cur), "%s/cur/", spool);
		if (f != NULL && strncmp(f->u.string, cur, strlen(cur)) == 0 &&
		    exists(f->u.string)) {
			snprintf(done, sizeof(done), "%s/%.*s.json", p, (int)stem, e->d_name);
			if (rename(doc, done) == 0)
				fsync_path(p);
		}
		yajl_tree_free(root);
	}
	closedir(d);
}

/* scan - every message of dir/; how many wait for their sidecar */
static int
scan(const char *dir)
{
	char p[PATH_MAX];
	struct dirent *e;
	int waiting = 0;
	DIR *d;

	snprintf(p, sizeof(p), "%s/%s", spool, dir);
	if ((d = opendir(p)) == NULL)
		return 0;
	while (!stop && (e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			waiting += analyze(dir, e->d_name);
	closedir(d);
	return waiting;
}

/* watches - inotify on new/, partial/ and meta/ (a sidecar after its message) */
static int
watches(void)
{
	static const char *const dirs[] = { "new", "partial", "meta" };
	char p[PATH_MAX];
	size_t i;
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

	if (fd < 0)
		return -1;
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", spool, dirs[i]);
		mkdir(spool, 0700);
		mkdir(p, 0700);
		if (inotify_add_watch(fd, p, IN_MOVED_TO | IN_CLOSE_WRITE | IN_ONLYDIR) < 0) {
			fprintf(stderr, "decky-smtpd-analyze: %s: %s\n", p, strerror(errno));
			close(fd);
			return -1;
		}
	}
	return fd;
}

/* setup_sinks - journal, json, json:FILE, comma-separated, as decky-smtpd's --log */
static int
setup_sinks(const char *log)
{
	char buf[1024], *tok, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", log);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (strcmp(tok, "journal") == 0)
			sink.journal = 1;
		else if (strcmp(tok, "json") == 0)
			sink.json_fd = 1;
		else if (strncmp(tok, "json:", 5) == 0 && tok[5] != '\0') {
			sink.json_fd = open(tok + 5, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
			if (sink.json_fd < 0) {
				fprintf(stderr, "decky-smtpd-analyze: %s: %s\n", tok + 5, strerror(errno));
				return -1;
			}
		} else {
			fprintf(stderr, "decky-smtpd-analyze: bad log: %s\n", tok);
			return -1;
		}
	}
	if (sink.json_fd == 2)
		sink.fallback_fd = -1;
	return 0;
}

int
main(int argc, char **argv)
{
	const char *log = "journal";
	struct sigaction sa = { .sa_handler = on_term };
	int watch = 0, i;
	unsigned waited = 0;
	char cur[PATH_MAX];

	spool = getenv("SMTP_SPOOL") ? getenv("SMTP_SPOOL") : "/var/lib/decky-smtpd";
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--once") == 0)
			watch = 0;
		else if (strcmp(argv[i], "--watch") == 0)
			watch = 1;
		else if (strncmp(argv[i], "--spool=", 8) == 0 && argv[i][8] != '\0')
			spool = argv[i] + 8;
		else if (strncmp(argv[i], "--log=", 6) == 0)
			log = argv[i] + 6;
		else
			usage();
	}
	if (setup_sinks(log) < 0)
		return 1;
	if (mime_init() < 0) {
		fprintf(stderr, "decky-smtpd-analyze: libmagic: cannot load its database\n");
		return 1;
	}
	shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	if (shared == MAP_FAILED) {
		perror("decky-smtpd-analyze: mmap");
		return 1;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (watch && (ifd = watches()) < 0)
		return 1;
	snprintf(cur, sizeof(cur), "%s/cur", spool);
	mkdir(cur, 0700);	/* (else only a session makes it, and every move would fail) */
	settle();
	while (!stop) {
		int waiting = scan("new") + scan("partial");

		if (!watch) {
			/* a message renamed into new/ just before its sidecar: wait for it */
			if (waiting == 0 || waited * ANALYZE_RESCAN_MS >= ANALYZE_SIDECAR_WAIT * 1000 + 500)
				break;
			waited++;
			poll(NULL, 0, ANALYZE_RESCAN_MS);
			continue;
		}
		{
			struct pollfd pfd = { .fd = ifd, .events = POLLIN };
			char ev[4096];

			if (poll(&pfd, 1, waiting ? ANALYZE_RESCAN_MS : ANALYZE_IDLE_MS) > 0)
				while (read(ifd, ev, sizeof(ev)) > 0)
					;
		}
	}
	return 0;
}
