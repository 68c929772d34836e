/*
 * ja.c - JA3 and JA4 from the parts of a ClientHello.
 *
 * JA3: "version,ciphers,extensions,groups,point-formats", decimal values joined
 * with '-', GREASE values left out, extensions in the order sent; JA3_HASH is its
 * MD5.  JA4 (TLS over TCP): "t" + highest version offered + 'd' (SNI present) or
 * 'i' + cipher and extension counts + the first ALPN's first and last characters,
 * then the first 12 hex digits of SHA-256 over the sorted ciphers, and over the
 * sorted extensions (without SNI and ALPN) with the signature algorithms as sent.
 * Every list is read within its own length and its body's: a hostile hello gives a
 * short fingerprint, never a read past the bytes OpenSSL handed over.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ja.h"

#define EXT_SNI		0x0000
#define EXT_ALPN	0x0010

/* A bounded text that digests every byte appended, kept or not. */
struct text {
	char *buf;
	size_t size, len;
	EVP_MD_CTX *md;
	int bad;
};

static void
put(struct text *t, const char *s, size_t n)
{
	size_t room = t->size - 1 - t->len;

	if (t->md != NULL && n > 0 && EVP_DigestUpdate(t->md, s, n) != 1)
		t->bad = 1;
	memcpy(t->buf + t->len, s, n < room ? n : room);
	t->len += n < room ? n : room;
	t->buf[t->len] = '\0';
}

static void
putf(struct text *t, const char *fmt, ...)
{
	char b[16];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(b, sizeof(b), fmt, ap);
	va_end(ap);
	put(t, b, n > 0 ? (size_t)n : 0);
}

static int
start(struct text *t, char *buf, size_t size, const EVP_MD *md)
{
	t->buf = buf;
	t->size = size;
	t->len = 0;
	t->bad = 0;
	buf[0] = '\0';
	if (md == NULL) {
		t->md = NULL;
		return 0;
	}
	if ((t->md = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(t->md, md, NULL) != 1)
		t->bad = 1;
	return t->bad ? -1 : 0;
}

/* finish - the digest in hex, cut to hexlen digits; the text's context is freed */
static int
finish(struct text *t, char *hex, size_t hexlen)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned n = 0, i;

	if (!t->bad && EVP_DigestFinal_ex(t->md, d, &n) != 1)
		t->bad = 1;
	EVP_MD_CTX_free(t->md);
	t->md = NULL;
	for (i = 0; i < n && 2 * i < hexlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	hex[hexlen] = '\0';
	return t->bad ? -1 : 0;
}

/* grease - RFC 8701's reserved values: 0x0a0a, 0x1a1a, ... 0xfafa */
static int
grease(unsigned v)
{
	return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

static unsigned
be16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

/*
 * vec - the items of a TLS vector: a length prefix of 1 or 2 bytes, then the items;
 * the length is believed only as far as the body goes.  Returns the bytes.
 */
static size_t
vec(const unsigned char *body, size_t len, size_t prefix, const unsigned char **items)
{
	size_t n;

	*items = NULL;
	if (body == NULL || len < prefix)
		return 0;
	n = prefix == 1 ? body[0] : be16(body);
	if (n > len - prefix)
		n = len - prefix;
	*items = body + prefix;
	return n;
}

static int
cmp16(const void *a, const void *b)
{
	return (int)*(const unsigned short *)a - (int)*(const unsigned short *)b;
}

/* sorted - the non-GREASE values, sorted, as "%04x" joined with ',' into t */
static int
sorted(struct text *t, unsigned short *v, size_t n)
{
	size_t i;

	qsort(v, n, sizeof(*v), cmp16);
	for (i = 0; i < n; i++)
		putf(t, i ? ",%04x" : "%04x", v[i]);
	return 0;
}

static const char *
ja4_version(unsigned v)
{
	switch (v) {
	case 0x0304: return "13";
	case 0x0303: return "12";
	case 0x0302: return "11";
	case 0x0301: return "10";
	case 0x0300: return "s3";
	case 0x0002: return "s2";
	case 0xfeff: return "d1";
	case 0xfefd: return "d2";
	case 0xfefc: return "d3";
	default: return "00";
	}
}

static int
alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* names - SNI's first host_name and the ALPN protocols offered, as sent */
static void
names(const struct hello *h, struct fingerprint *fp)
{
	const unsigned char *p;
	size_t n = vec(h->sni, h->sni_len, 2, &p), i, len;

	for (i = 0; i + 3 <= n; i += 3 + len) {
		len = be16(p + i + 1);
		if (len > n - i - 3)
			len = n - i - 3;
		if (p[i] == 0) {
			fp->sni_len = len < sizeof(fp->sni) ? len : sizeof(fp->sni) - 1;
			memcpy(fp->sni, p + i + 3, fp->sni_len);
			break;
		}
	}
	n = vec(h->alpn, h->alpn_len, 2, &p);
	for (i = 0; i < n; i += 1 + len) {
		len = p[i];
		if (len > n - i - 1)
			len = n - i - 1;
		if (fp->alpn_len + (i > 0) + len >= sizeof(fp->alpn))
			break;
		if (i > 0)
			fp->alpn[fp->alpn_len++] = ',';
		memcpy(fp->alpn + fp->alpn_len, p + i + 1, len);
		fp->alpn_len += len;
	}
}

static int
ja3(const struct hello *h, struct fingerprint *fp)
{
	struct text t;
	const unsigned char *p;
	size_t i, n, k;

	if (start(&t, fp->ja3, sizeof(fp->ja3), EVP_md5()) < 0)
		return finish(&t, fp->ja3_hash, 32), -1;
	putf(&t, "%u,", h->version);
	for (i = 0, k = 0; i + 2 <= h->ciphers_len; i += 2)
		if (!grease(be16(h->ciphers + i)))
			putf(&t, k++ ? "-%u" : "%u", be16(h->ciphers + i));
	put(&t, ",", 1);
	for (i = 0, k = 0; i < h->next; i++)
		if (!grease((unsigned)h->ext[i]))
			putf(&t, k++ ? "-%u" : "%u", (unsigned)h->ext[i]);
	put(&t, ",", 1);
	n = vec(h->groups, h->groups_len, 2, &p);
	for (i = 0, k = 0; i + 2 <= n; i += 2)
		if (!grease(be16(p + i)))
			putf(&t, k++ ? "-%u" : "%u", be16(p + i));
	put(&t, ",", 1);
	n = vec(h->formats, h->formats_len, 1, &p);
	for (i = 0; i < n; i++)
		putf(&t, i ? "-%u" : "%u", p[i]);
	return finish(&t, fp->ja3_hash, 32);
}

static int
ja4(const struct hello *h, struct fingerprint *fp)
{
	char a[16], b_txt[JA_STR_MAX], c_txt[JA_STR_MAX], b[13], c[13], alpn[3] = "00";
	unsigned short *v;
	const unsigned char *p;
	struct text t;
	unsigned best = 0;
	size_t i, n, nc = 0, ne = 0, nall = 0, nsig;
	int sni = 0, r = 0;

	n = vec(h->versions, h->versions_len, 1, &p);
	for (i = 0; i + 2 <= n; i += 2)
		if (!grease(be16(p + i)) && be16(p + i) > best)
			best = be16(p + i);
	if (best == 0)
		best = h->version;
	n = vec(h->alpn, h->alpn_len, 2, &p);
	if (n > 1 && p[0] > 0 && p[0] <= n - 1) {
		unsigned char f = p[1], l = p[p[0]];

		if (alnum(f) && alnum(l))
			alpn[0] = (char)f, alpn[1] = (char)l;
		else
			snprintf(alpn, sizeof(alpn), "%x%x", f >> 4, l & 0xf);
	}

	/* one array for both sorted lists: at most 32767 ciphers, 65535/4 extensions */
	if ((v = malloc((h->ciphers_len / 2 + h->next + 1) * sizeof(*v))) == NULL)
		return -1;
	for (i = 0; i + 2 <= h->ciphers_len; i += 2)
		if (!grease(be16(h->ciphers + i)))
			v[nc++] = (unsigned short)be16(h->ciphers + i);
	start(&t, b_txt, sizeof(b_txt), EVP_sha256());
	sorted(&t, v, nc);
	if (nc == 0)
		EVP_MD_CTX_free(t.md), snprintf(b, sizeof(b), "000000000000");
	else if (finish(&t, b, 12) < 0)
		r = -1;

	for (i = 0; i < h->next; i++) {
		unsigned e = (unsigned)h->ext[i] & 0xffff;

		if (grease(e))
			continue;
		nall++;
		if (e == EXT_SNI)
			sni = 1;
		else if (e != EXT_ALPN)
			v[ne++] = (unsigned short)e;
	}
	start(&t, c_txt, sizeof(c_txt), EVP_sha256());
	sorted(&t, v, ne);
	n = vec(h->sigalgs, h->sigalgs_len, 2, &p);
	for (i = 0, nsig = 0; i + 2 <= n; i += 2)
		if (!grease(be16(p + i)))
			putf(&t, nsig++ ? ",%04x" : "_%04x", be16(p + i));
	if (ne == 0 && nsig == 0)
		EVP_MD_CTX_free(t.md), snprintf(c, sizeof(c), "000000000000");
	else if (finish(&t, c, 12) < 0)
		r = -1;
	free(v);

	snprintf(a, sizeof(a), "t%s%c%02zu%02zu%.2s", ja4_version(best), sni ? 'd' : 'i',
	    nc > 99 ? 99 : nc, nall > 99 ? 99 : nall, alpn);
	snprintf(fp->ja4, sizeof(fp->ja4), "%s_%s_%s", a, b, c);
	start(&t, fp->ja4_r, sizeof(fp->ja4_r), NULL);
	put(&t, a, strlen(a));
	put(&t, "_", 1);
	put(&t, b_txt, strlen(b_txt));
	put(&t, "_", 1);
	put(&t, c_txt, strlen(c_txt));
	return r;
}

/* skip - past a vector with a prefix of n bytes; 0 if it runs past the end */
static int
skip(const unsigned char **p, size_t *left, size_t n)
{
	size_t len;

	if (*left < n)
		return 0;
	len = n == 1 ? (*p)[0] : be16(*p);
	if (*left - n < len)
		return 0;
	*p += n + len;
	*left -= n + len;
	return 1;
}

size_t
ja_ext_types(const unsigned char *msg, size_t len, int *types, size_t max)
{
	const unsigned char *p = msg + 4;
	size_t left, body, n = 0;

	if (len < 4 || msg[0] != 1)
		return 0;
	left = (size_t)msg[1] << 16 | (size_t)msg[2] << 8 | msg[3];
	if (left > len - 4)
		return 0;
	/* legacy_version, random, then session id, cipher suites, compression methods */
	if (left < 34)
		return 0;
	p += 34, left -= 34;
	if (!skip(&p, &left, 1) || !skip(&p, &left, 2) || !skip(&p, &left, 1) || left < 2)
		return 0;
	body = be16(p);
	p += 2, left -= 2;
	if (body < left)
		left = body;
	while (left >= 4 && n < max) {
		types[n++] = (int)be16(p);
		p += 2, left -= 2;
		if (!skip(&p, &left, 2))
			break;
	}
	return n;
}

int
ja_fingerprint(const struct hello *h, struct fingerprint *fp)
{
	memset(fp, 0, sizeof(*fp));
	names(h, fp);
	if (ja3(h, fp) < 0 || ja4(h, fp) < 0) {
		memset(fp, 0, sizeof(*fp));
		return -1;
	}
	return 0;
}
