/*
 * makepersona.c - decky-smtpd --make-persona SEED: a persona file that makes one decky
 * of a fleet look unlike the others, each a plausible Debian 12 Postfix 3.7.
 *
 * Every choice comes from one stream of bytes, HMAC-SHA256 of the seed with a block
 * counter, so the same seed always gives the same file, byte for byte.  Only what a
 * Postfix admin varies is varied: the host name (and with it the certificate's CN),
 * smtpd_banner, message_size_limit, the SASL mechanisms Dovecot offers, and the time
 * the peer-name lookup takes before the greeting.  It reads nothing but the seed.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "makepersona.h"

#define N(a)	(sizeof(a) / sizeof(a[0]))

/* the stream: HMAC-SHA256(key, seed || counter), 32 bytes a block */
struct stream {
	const char *seed;
	size_t seed_len;
	uint32_t counter;
	unsigned char block[32];
	size_t used;
};

/* next - four more bytes of the stream, as a number */
static uint32_t
next(struct stream *s)
{
	static const char key[] = "decky-smtpd make-persona 1";
	unsigned char msg[MAKEPERSONA_SEED_MAX + 4];
	unsigned int len = sizeof(s->block);
	uint32_t v;

	if (s->used + 4 > sizeof(s->block) || s->counter == 0) {
		memcpy(msg, s->seed, s->seed_len);
		msg[s->seed_len] = (unsigned char)(s->counter >> 24);
		msg[s->seed_len + 1] = (unsigned char)(s->counter >> 16);
		msg[s->seed_len + 2] = (unsigned char)(s->counter >> 8);
		msg[s->seed_len + 3] = (unsigned char)s->counter;
		HMAC(EVP_sha256(), key, sizeof(key) - 1, msg, s->seed_len + 4, s->block, &len);
		s->counter++;
		s->used = 0;
	}
	v = (uint32_t)s->block[s->used] << 24 | (uint32_t)s->block[s->used + 1] << 16 |
	    (uint32_t)s->block[s->used + 2] << 8 | s->block[s->used + 3];
	s->used += 4;
	return v;
}

/* below - a number in [0, n): the bias of a 32-bit modulus is below 1e-7 here */
static uint32_t
below(struct stream *s, uint32_t n)
{
	return next(s) % n;
}

/* weighted - an index into a table whose weights are given in w (percent) */
static size_t
weighted(struct stream *s, const unsigned *w, size_t n)
{
	uint32_t r = below(s, 100), acc = 0;
	size_t i;

	for (i = 0; i < n; i++)
		if (r < (acc += w[i]))
			return i;
	return n - 1;
}

/* host names: what mail hosts are called, in domains as small firms name theirs */
static const char *const hosts[] = {
	"mail", "mail", "mail", "mx", "mx1", "mx2", "smtp", "smtp", "mail1", "mail2", "mailgw",
	"relay", "mta", "post", "mx01", "smtp1", "mailhost", "gw", "srv-mail", "mx-out"
};
static const char *const words[] = {
	"alder", "amber", "anchor", "apex", "arcadia", "aspen", "atlas", "bergmann", "birch",
	"bluewave", "boreal", "brightline", "cascade", "cedar", "clearpath", "cobalt", "coral",
	"crest", "delta", "eastgate", "elm", "ember", "falcon", "fjord", "granite", "harbor",
	"hartmann", "heron", "horizon", "indigo", "juniper", "kestrel", "keystone", "lakeside",
	"linden", "lumen", "maple", "meridian", "midland", "nordic", "northwind", "oakridge",
	"orbit", "pinnacle", "polaris", "quarry", "redwood", "ridge", "riverside", "saffron",
	"silverline", "solstice", "summit", "tandem", "tidewater", "vantage", "westbrook",
	"willow", "zenith", "zephyr"
};
static const char *const suffixes[] = {
	"", "", "", "", "-it", "-group", "-labs", "-systems", "tech", "-consulting", "-net", "-media"
};
static const char *const tlds[] = {
	"com", "com", "com", "net", "org", "de", "de", "co.uk", "nl", "fr", "eu", "io", "at",
	"ch", "be", "se", "pl", "it", "es", "cz"
};

/*
 * smtpd_banner: Debian's default "$myhostname ESMTP $mail_name (Debian/GNU)", the
 * upstream default without "(Debian/GNU)", and the admin who hides $mail_name
 */
static const char *const banners[] = { "%s ESMTP Postfix (Debian/GNU)", "%s ESMTP Postfix", "%s ESMTP" };
static const unsigned banner_w[] = { 70, 20, 10 };

/* message_size_limit: Postfix's default, its doubles, and the round MiB admins pick */
static const char *const sizes[] = {
	"10240000", "20480000", "26214400", "31457280", "52428800", "51200000", "104857600"
};
static const unsigned size_w[] = { 40, 15, 12, 8, 15, 5, 5 };

/* Dovecot's auth_mechanisms, in the order Postfix lists them */
static const char *const mechs[] = {
	"\"PLAIN\", \"LOGIN\"", "\"PLAIN\"", "\"PLAIN\", \"LOGIN\", \"CRAM-MD5\"", "\"LOGIN\", \"PLAIN\""
};
static const unsigned mech_w[] = { 60, 15, 15, 10 };

int
makepersona(const char *seed, FILE *out)
{
	struct stream s = { .seed = seed, .seed_len = strlen(seed) };
	const char *h, *w1, *w2, *sx, *tld, *size, *mech;
	char host[256], banner[300];
	unsigned lo, hi;
	size_t b;

	if (s.seed_len == 0 || s.seed_len > MAKEPERSONA_SEED_MAX)
		return -1;
	/* one choice a statement: the order of draws is the file's, on any compiler */
	h = hosts[below(&s, N(hosts))];
	w1 = words[below(&s, N(words))];
	w2 = below(&s, 3) == 0 ? words[below(&s, N(words))] : "";
	sx = *w2 == '\0' ? suffixes[below(&s, N(suffixes))] : "";
	tld = tlds[below(&s, N(tlds))];
	snprintf(host, sizeof(host), "%s.%s%s%s.%s", h, w1, w2, sx, tld);
	b = weighted(&s, banner_w, N(banners));
	snprintf(banner, sizeof(banner), banners[b], host);
	size = sizes[weighted(&s, size_w, N(sizes))];
	mech = mechs[weighted(&s, mech_w, N(mechs))];
	/* a peer-name lookup: a LAN resolver or a slow upstream one */
	lo = 5 + below(&s, 60);
	hi = lo + 60 + below(&s, 400);
	fprintf(out, "{\n"
	    "  \"hostname\": \"%s\",\n"
	    "  \"banner\": \"%s\",\n"
	    "  \"size-limit\": %s,\n"
	    "  \"auth-mechanisms\": [%s],\n"
	    "  \"greeting-delay\": \"%u-%u\"\n"
	    "}\n", host, banner, size, mech, lo, hi);
	return ferror(out) ? -1 : 0;
}
