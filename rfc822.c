/*
 * rfc822.c - an SMTP address argument read the way Postfix 3.7 reads it.
 *
 * Postfix's smtpd takes one pair of outer angle brackets off the argument of MAIL
 * FROM, RCPT TO or VRFY and gives the rest to its RFC 822 address parser, not to an
 * RFC 5321 one.  So white space between tokens vanishes (<x @y.z> is x@y.z), comments
 * vanish, "phrase <addr>" and "group: addr;" forms are understood, quotes and
 * backslashes come off, '[' opens a domain literal, and two words with no operator
 * between them begin a second address, which Postfix refuses.  Scanners tell a
 * honeypot from Postfix by exactly these answers; this file gives the same verdicts.
 * It reads nothing but its arguments and writes only into the caller's buffer.
 */
#include <string.h>

#include "rfc822.h"

enum {
	T_WORD = 256,	/* an atom or a quoted string: the same once internal */
	T_LITERAL,	/* a [domain literal] */
};

struct token {
	unsigned short type;		/* an operator byte, T_WORD or T_LITERAL */
	unsigned short off, len;	/* its text in the scan's text */
};

/* Every token and every byte of text takes at least one byte of input. */
struct scan {
	struct token tok[RFC822_TEXT_MAX];
	char text[RFC822_TEXT_MAX];
	int ntok;
	size_t tlen;
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

/*
 * collect - the text of a word from p[*i] on: up to the byte close, or for an atom
 * (close 0) up to white space or an operator.  A backslash passes the next byte as
 * it is; white space becomes a space.
 */
static void
collect(struct scan *sc, const char *p, size_t n, size_t *i, char close)
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
		sc->text[sc->tlen++] = is_blank(c) ? ' ' : c;
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
 * scan - p[0..n) as tokens.  Comments are dropped here: Postfix moves them out of
 * every address, and they never change how the rest is grouped.
 */
static void
scan(struct scan *sc, const char *p, size_t n)
{
	size_t i = 0;

	sc->ntok = 0;
	sc->tlen = 0;
	while (i < n) {
		char c = p[i];
		struct token *t;

		if (is_blank(c)) {
			i++;
			continue;
		}
		if (c == '(') {
			i = skip_comment(p, n, i + 1);
			continue;
		}
		t = &sc->tok[sc->ntok++];
		t->off = (unsigned short)sc->tlen;
		if (c == '"' || c == '[') {
			t->type = c == '"' ? T_WORD : T_LITERAL;
			i++;
			collect(sc, p, n, &i, c == '"' ? '"' : ']');
			if (i < n)
				i++;	/* the closing byte; none at the end is no error */
		} else if (c != '\\' && is_op(c)) {
			t->type = (unsigned char)c;
			i++;
		} else {
			t->type = T_WORD;
			collect(sc, p, n, &i, '\0');
		}
		t->len = (unsigned short)(sc->tlen - t->off);
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
parse(const struct scan *sc, struct found *f)
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

static void
put(char *out, size_t size, size_t *n, const char *p, size_t len)
{
	if (len > size - 1 - *n)
		len = size - 1 - *n;
	memcpy(out + *n, p, len);
	*n += len;
}

int
rfc822_address(const char *text, size_t len, char *out, size_t size, size_t *outlen)
{
	struct scan sc;
	struct found f;
	const char *colon;
	size_t n = 0;
	int i;

	if (len > RFC822_TEXT_MAX)
		return -1;
	if (len >= 2 && text[0] == '<' && text[len - 1] == '>')
		text++, len -= 2;
	/* the deprecated source route: <@a,@b:user@domain> is user@domain */
	if (len > 0 && text[0] == '@' && (colon = memchr(text, ':', len)) != NULL) {
		len -= (size_t)(colon + 1 - text);
		text = colon + 1;
	}
	scan(&sc, text, len);
	parse(&sc, &f);
	for (i = f.lo; i < f.hi; i++) {
		const struct token *t = &sc.tok[i];
		char c = (char)t->type;

		if (t->type == T_LITERAL)
			put(out, size, &n, "[", 1);
		if (t->type >= T_WORD)
			put(out, size, &n, sc.text + t->off, t->len);
		else
			put(out, size, &n, &c, 1);
		if (t->type == T_LITERAL)
			put(out, size, &n, "]", 1);
	}
	out[n] = '\0';
	*outlen = n;
	return f.naddr;
}
