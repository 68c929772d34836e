/*
 * rfc822.c - an SMTP address argument read the way Postfix 3.7 reads it.
 *
 * Postfix's smtpd takes one pair of outer angle brackets off the argument of MAIL
 * FROM, RCPT TO or VRFY and gives the rest to its RFC 822 address parser, not to an
 * RFC 5321 one.  So white space between tokens vanishes (<x @y.z> is x@y.z), comments
 * vanish, "phrase <addr>" and "group: addr;" forms are understood, quotes and
 * backslashes come off, '[' opens a domain literal, and two words with no operator
 * between them begin a second address, which Postfix refuses.  Its resolver
 * (trivial-rewrite) then decides where the address goes: local domains come off,
 * user%domain and domain!user route on, a quoted local part with routing in it is
 * opened.  Scanners tell a honeypot from Postfix by exactly these answers; this file
 * gives the same verdicts, from its own code.  It reads nothing but its arguments
 * and writes only into the caller's buffer.  Its scratch lists, bounded by the
 * input, are static rather than 130 KiB of stack: one caller at a time, as a process
 * serves one session.
 */
#include <string.h>

#include "rfc822.h"

enum {
	T_WORD = 256,	/* an atom or a quoted string: the same once internal */
	T_LITERAL,	/* a [domain literal] */
	T_COMMENT,	/* a (comment), kept only in the resolver's lists */
};

struct token {
	unsigned short type;		/* an operator byte, T_WORD or T_LITERAL */
	unsigned short off, len;	/* its text in the list's text */
	unsigned char quoted;		/* a word that was (or needs) a quoted string */
};

/*
 * A token list.  Every token and text byte of a scan takes at least one byte of
 * input; the resolver adds a host name and a few tokens, and re-scans a local part
 * at most once an iteration: past the room it gives up on the address.
 */
#define LIST_MAX	(RFC822_TEXT_MAX + 512)

struct list {
	struct token tok[LIST_MAX];
	char text[2 * RFC822_TEXT_MAX + 512];
	int ntok;
	size_t tlen;
	int full;
	/*
	 * The resolver's lists are as Postfix's tok822_scan_addr() makes them: comments
	 * stay, and two words in a row are internalized with a space between.
	 */
	int flat;
};

/* is_blank - what separates tokens; \v and \f are ordinary bytes to Postfix here */
static int
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* is_op - RFC 822 specials, and Postfix's '%', '!' and '|': one-byte tokens */
static int
is_op(char c)
{
	return c != '\0' && strchr("|%!()<>@,;:\\\".[]", c) != NULL;
}

/* empty - no tokens and no text; flat: see struct list.  A list once full stays so. */
static void
empty(struct list *l, int flat)
{
	l->ntok = 0;
	l->tlen = 0;
	l->flat = flat;
}

/* add_text - one byte of token text */
static void
add_text(struct list *l, char c)
{
	if (l->tlen < sizeof(l->text))
		l->text[l->tlen++] = c;
	else
		l->full = 1;
}

/* add - a new token, its text to come; NULL when the list is full */
static struct token *
add(struct list *l, int type)
{
	struct token *t;

	if (l->ntok == LIST_MAX) {
		l->full = 1;
		return NULL;
	}
	t = &l->tok[l->ntok++];
	t->type = (unsigned short)type;
	t->quoted = 0;
	t->off = (unsigned short)l->tlen;
	t->len = 0;
	return t;
}

/*
 * collect - the text of a word from p[*i] on: up to the byte close, or for an atom
 * (close 0) up to white space or an operator.  A backslash passes the next byte as
 * it is; white space becomes a space.
 */
static void
collect(struct list *l, const char *p, size_t n, size_t *i, char close)
{
	for (; *i < n; (*i)++) {
		char c = p[*i];

		if (c == '\\') {
			if (++*i == n)
				break;
			c = p[*i];
		} else if (close != '\0' ? c == close : (is_blank(c) || is_op(c))) {
			break;
		}
		add_text(l, is_blank(c) ? ' ' : c);
	}
}

/* skip_comment - past the ')' that closes a comment opened before p[i]; they nest */
static size_t
skip_comment(const char *p, size_t n, size_t i)
{
	size_t depth = 1;

	while (i < n) {
		char c = p[i++];

		if (c == '(')
			depth++;
		else if (c == ')' && --depth == 0)
			break;
		else if (c == '\\' && i < n)
			i++;
	}
	return i;
}

/*
 * needs_quotes - what makes an atom a quoted string once it is scanned: a
 * control byte, a space or an operator (all three only by way of a backslash)
 */
static int
needs_quotes(const char *p, size_t n)
{
	while (n-- > 0) {
		unsigned char c = (unsigned char)*p++;

		if (c < 0x20 || c == 0x7f || c == ' ' || is_op((char)c))
			return 1;
	}
	return 0;
}

/*
 * scan - append p[0..n) to the list as tokens.  Comments are dropped here: Postfix
 * moves them out of every address, and they never change how the rest is grouped.
 */
static void
scan(struct list *l, const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && !l->full) {
		char c = p[i];
		struct token *t;

		if (is_blank(c)) {
			i++;
			continue;
		}
		if (c == '(') {
			size_t from = i;

			i = skip_comment(p, n, i + 1);
			if (l->flat && (t = add(l, T_COMMENT)) != NULL) {
				while (from < i)
					add_text(l, p[from++]);
				t->len = (unsigned short)(l->tlen - t->off);
			}
			continue;
		}
		if (c != '\\' && c != '"' && c != '[' && is_op(c)) {
			if (add(l, (unsigned char)c) != NULL)
				i++;
			continue;
		}
		if ((t = add(l, c == '[' ? T_LITERAL : T_WORD)) == NULL)
			break;
		if (c == '"' || c == '[') {
			i++;
			collect(l, p, n, &i, c == '"' ? '"' : ']');
			if (i < n)
				i++;	/* the closing byte; none at the end is no error */
		} else {
			collect(l, p, n, &i, '\0');
		}
		t->len = (unsigned short)(l->tlen - t->off);
		t->quoted = c == '"' || (c != '[' && needs_quotes(l->text + t->off, t->len));
	}
}

/* The addresses found: how many, and the tokens of the last (rightmost) one. */
struct found {
	int naddr, lo, hi;
};

/* group - tokens [lo, hi) are an address, if there are any; found right to left */
static void
group(struct found *f, int lo, int hi)
{
	if (lo >= hi)
		return;
	if (f->naddr++ == 0) {
		f->lo = lo;
		f->hi = hi;
	}
}

enum { WANT_WORD = 1, IN_GROUP = 2 };

/*
 * parse - group the tokens into addresses, right to left as Postfix does: "right"
 * is where the tokens not yet grouped end.  Operators bind words into one address;
 * ',' and ';' end one; "<...>" is one, and the phrase before it none; "name:"
 * before a ';' opens a group whose name is none.
 */
static void
parse(const struct list *sc, struct found *f)
{
	int i = sc->ntok - 1, right = sc->ntok, state = WANT_WORD;

	f->naddr = f->lo = f->hi = 0;
	while (i >= 0) {
		int t = sc->tok[i].type;

		if (t == ';') {
			group(f, i + 1, right);
			right = i--;
			state = IN_GROUP | WANT_WORD;
		} else if (t == ':' && (state & IN_GROUP)) {
			group(f, i + 1, right);
			while (i >= 0 && sc->tok[i].type != ',')
				i--;
			right = i;
		} else if (t == '>') {
			int lt = i - 1;

			group(f, i + 1, right);
			while (lt >= 0 && sc->tok[lt].type != '<')
				lt--;
			group(f, lt + 1, i);
			for (i = lt; i >= 0; i--) {
				t = sc->tok[i].type;
				if (t < T_WORD && strchr(">;,:", t) != NULL)
					break;
			}
			right = i;
			state |= WANT_WORD;
		} else if (t >= T_WORD) {
			/* two words in a row: Postfix puts the missing comma between them */
			if (!(state & WANT_WORD)) {
				group(f, i + 1, right);
				right = i + 1;
			}
			state &= ~WANT_WORD;
			i--;
		} else if (t == ',') {
			group(f, i + 1, right);
			right = i--;
			state |= WANT_WORD;
		} else {
			state |= WANT_WORD;
			i--;
		}
	}
	group(f, 0, right);
}

/*
 * internal - tokens t[0..n) in internal form: no quotes, and no spaces between
 * unless the list is flat
 */
static size_t
internal(const struct list *l, const struct token *t, int n, char *out, size_t size)
{
	size_t len = 0;
	int i;

	for (i = 0; i < n; i++) {
		const char *p = t[i].type >= T_WORD ? l->text + t[i].off : NULL;
		size_t k = p != NULL ? t[i].len : 1;

		if (len + k + 3 >= size)
			break;
		if (l->flat && i > 0 && t[i].type >= T_WORD && t[i - 1].type >= T_WORD)
			out[len++] = ' ';
		if (t[i].type == T_LITERAL)
			out[len++] = '[';
		if (p != NULL)
			memcpy(out + len, p, k);
		else
			out[len] = (char)t[i].type;
		len += k;
		if (t[i].type == T_LITERAL)
			out[len++] = ']';
	}
	out[len] = '\0';
	return len;
}

int
rfc822_address(const char *text, size_t len, char *out, size_t size, size_t *outlen)
{
	static struct list l;
	struct found f;
	const char *colon;

	if (len > RFC822_TEXT_MAX)
		return -1;
	if (len >= 2 && text[0] == '<' && text[len - 1] == '>')
		text++, len -= 2;
	/* the deprecated source route: <@a,@b:user@domain> is user@domain */
	if (len > 0 && text[0] == '@' && (colon = memchr(text, ':', len)) != NULL) {
		len -= (size_t)(colon + 1 - text);
		text = colon + 1;
	}
	l.full = 0;
	empty(&l, 0);
	scan(&l, text, len);
	parse(&l, &f);
	*outlen = internal(&l, l.tok + f.lo, f.hi - f.lo, out, size);
	return f.naddr;
}

/* --- the resolver --------------------------------------------------------------- */

/* find - the first (last if from_end) token of this type, or -1 */
static int
find(const struct list *l, int type, int from_end)
{
	int i;

	for (i = 0; i < l->ntok; i++) {
		int k = from_end ? l->ntok - 1 - i : i;

		if (l->tok[k].type == type)
			return k;
	}
	return -1;
}

/* dot_string - is this local part an RFC 822 dot-atom (else Postfix quotes it)? */
static int
dot_string(const char *p, size_t n)
{
	size_t i;

	if (n == 0 || p[0] == '.' || p[n - 1] == '.')
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if ((c == '.' && i + 1 < n && p[i + 1] == '.') || c == ' ' || c < 0x20 ||
		    c == 0x7f || strchr("()<>@,;:\\\"[]", c) != NULL)
			return 0;
	}
	return 1;
}

/*
 * load - an address in internal form as Postfix's resolver takes it up: its local
 * part put in quotes when it is no dot-atom (quote_822_local), then all scanned as
 * one string, so that a bracket in a source route may reach into the local part
 */
static void
load(struct list *l, const char *addr, size_t len)
{
	static char buf[2 * RFC822_TEXT_MAX + 4];
	const char *at = addr + len, *start = addr, *colon;
	size_t n = 0;

	if (len > 0 && addr[0] == '@' && (colon = memchr(addr, ':', len)) != NULL)
		start = colon + 1;
	while (at > start && at[-1] != '@')
		at--;
	if (at == start)
		at = addr + len;	/* no '@': all local part */
	else
		at--;
	if (len > RFC822_TEXT_MAX) {
		l->full = 1;
		return;
	}
	memcpy(buf, addr, (size_t)(start - addr));
	n = (size_t)(start - addr);
	if (dot_string(start, (size_t)(at - start))) {
		memcpy(buf + n, start, (size_t)(at - start));
		n += (size_t)(at - start);
	} else {
		buf[n++] = '"';
		for (; start < at; start++) {
			if (*start == '"' || *start == '\\' || *start == '\r')
				buf[n++] = '\\';
			buf[n++] = *start;
		}
		buf[n++] = '"';
	}
	memcpy(buf + n, at, (size_t)(addr + len - at));
	n += (size_t)(addr + len - at);
	scan(l, buf, n);
}

/* drop_dot - a trailing dot of the domain goes, but not from "..", "@." or no '@' */
static void
drop_dot(struct list *l)
{
	int n = l->ntok;

	if (n >= 2 && l->tok[n - 1].type == '.' && find(l, '@', 1) >= 0 &&
	    l->tok[n - 2].type != '.' && l->tok[n - 2].type != '@')
		l->ntok--;
}

static void
reverse(struct token *t, int n)
{
	int i;

	for (i = 0; i < n / 2; i++) {
		struct token x = t[i];

		t[i] = t[n - 1 - i];
		t[n - 1 - i] = x;
	}
}

/*
 * rewrite - Postfix's canonical rewriting (the "local" rule set): source route off;
 * without '@', domain!user becomes user@domain, else user%domain user@domain, else
 * user@origin; then one trailing dot off the domain
 */
static void
rewrite(struct list *l, const char *origin)
{
	int colon, bang, pct, i;

	if (l->ntok == 0)
		return;
	if (l->ntok == 1 && l->tok[0].type == '@') {
		l->ntok = 0;
		return;
	}
	if (l->tok[0].type == '@' && (colon = find(l, ':', 0)) >= 0 && colon != l->ntok - 1) {
		/* a loop, not memmove: valgrind takes a fortified memmove for a memcpy */
		for (i = colon + 1; i < l->ntok; i++)
			l->tok[i - colon - 1] = l->tok[i];
		l->ntok -= colon + 1;
	}
	if (find(l, '@', 1) < 0) {
		if ((bang = find(l, '!', 0)) >= 0) {
			/* site ! user: reversed whole, then each part back: user ! site */
			reverse(l->tok, l->ntok);
			bang = l->ntok - 1 - bang;
			reverse(l->tok, bang);
			reverse(l->tok + bang + 1, l->ntok - bang - 1);
			l->tok[bang].type = '@';
		} else if ((pct = find(l, '%', 1)) >= 0) {
			l->tok[pct].type = '@';
		} else if (add(l, '@') != NULL) {
			scan(l, origin, strlen(origin));
		}
	}
	drop_dot(l);
}

/* last_of - the last byte of text[0..n) that is c, or NULL */
static char *
last_of(char *text, size_t n, char c)
{
	while (n > 0)
		if (text[--n] == c)
			return text + n;
	return NULL;
}

int
rfc822_resolve(const char *addr, size_t len, const char *origin,
    int (*local)(const void *, const char *, size_t), const void *ctx,
    char *out, size_t size, size_t *outlen)
{
	static struct list l;
	static char buf[RFC822_TEXT_MAX + 2], saved[RFC822_TEXT_MAX + 2];
	size_t nsaved = 0;
	int at, remote = 0, loops;
	size_t n;

	/*
	 * smtpd has the address rewritten to canonical form (rewrite_clnt_internal)
	 * before it asks for it to be resolved: one round of rewrite() first
	 */
	l.full = 0;
	empty(&l, 1);
	load(&l, addr, len);
	rewrite(&l, origin);
	n = internal(&l, l.tok, l.ntok, buf, sizeof(buf));
	empty(&l, 1);
	load(&l, buf, n);
	for (loops = 0; loops <= (int)len + 100 && !l.full; loops++) {
		drop_dot(&l);
		/* a local domain comes off (kept for later); a remote one ends the search */
		if ((at = find(&l, '@', 1)) >= 0) {
			if (at + 1 < l.ntok) {
				n = internal(&l, l.tok + at + 1, l.ntok - at - 1, buf, sizeof(buf));
				if (!local(ctx, buf, n)) {
					remote = 1;
					break;
				}
			}
			/* kept as text: a local domain is a plain name or literal */
			nsaved = internal(&l, l.tok + at, l.ntok - at, saved, sizeof(saved));
			l.ntok = at;
		}
		if (find(&l, '@', 1) >= 0 || find(&l, '!', 0) >= 0 || find(&l, '%', 0) >= 0) {
			rewrite(&l, origin);
			continue;
		}
		/* a quoted local part with routing in it is opened (resolve_dequoted_address) */
		if (l.ntok == 1 && l.tok[0].quoted) {
			struct token t = l.tok[0];
			char *text = l.text + t.off, *op;

			if ((op = last_of(text, t.len, '@')) == NULL &&
			    (op = last_of(text, t.len, '%')) == NULL)
				op = last_of(text, t.len, '!');
			if (op != NULL) {
				/* user%domain is user@domain, quoted again; domain!user as it is */
				int bang = *op == '!';

				if (!bang)
					*op = '@';
				n = internal(&l, &t, 1, buf, sizeof(buf));
				empty(&l, 1);	/* nothing refers to the old text now */
				if (bang)
					scan(&l, buf, n);
				else
					load(&l, buf, n);
				rewrite(&l, origin);
				continue;
			}
		}
		/* an empty local part is the mailer daemon's */
		if (l.ntok == 1 && l.tok[0].quoted && l.tok[0].len == 0)
			l.ntok = 0;
		if (l.ntok == 0)
			scan(&l, "MAILER-DAEMON", 13);
		break;
	}
	if (!remote) {
		if (nsaved > 0)
			scan(&l, saved, nsaved);
		else if (add(&l, '@') != NULL)
			scan(&l, origin, strlen(origin));
	}
	*outlen = internal(&l, l.tok, l.ntok, out, size);
	if (l.full)
		return RFC822_ERROR;
	return remote ? RFC822_REMOTE : RFC822_LOCAL;
}
