/*
 * ja.h - TLS client fingerprints from a ClientHello: JA3 (Salesforce) and JA4
 * (FoxIO, TLS over TCP).  Pure: it gets the hello's parts as the client sent them
 * and hashes with libcrypto; tls.c reads them with OpenSSL's ClientHello callback,
 * the fuzzer makes them up.
 */
#ifndef JA_H
#define JA_H

#include <stddef.h>

/* The parts of a ClientHello the fingerprints need; bodies as sent, NULL if absent. */
struct hello {
	unsigned version;			/* legacy_version, e.g. 0x0303 */
	const unsigned char *ciphers;		/* cipher suites, 2 bytes each */
	size_t ciphers_len;
	const int *ext;				/* extension types in the order sent */
	size_t next;
	const unsigned char *sni, *alpn, *groups, *formats, *sigalgs, *versions;
	size_t sni_len, alpn_len, groups_len, formats_len, sigalgs_len, versions_len;
};

#define JA_STR_MAX 1024		/* JA3 and JA4_r text kept; longer is cut (the hash is whole) */
#define JA_NAME_MAX 256		/* SNI and the ALPN list */

struct fingerprint {
	char ja3[JA_STR_MAX];
	char ja3_hash[33];		/* MD5 of the whole JA3 string, hex */
	char ja4[48];			/* t13d1516h2_8daaf6152771_e5627efa2ab1 */
	char ja4_r[JA_STR_MAX];		/* JA4 with the sorted lists, unhashed */
	char sni[JA_NAME_MAX];		/* the first host_name, as sent */
	size_t sni_len;
	char alpn[JA_NAME_MAX];		/* the protocols offered, comma-separated */
	size_t alpn_len;
};

/*
 * ja_ext_types - the extension types of a ClientHello handshake message (type 1,
 * its 3-byte length, then the body), in the order sent, at most max of them; how
 * many, or 0 if it is not one.  OpenSSL's ClientHello callback lists only the
 * extensions OpenSSL knows (3.0), so the order comes from the message itself.
 */
size_t ja_ext_types(const unsigned char *msg, size_t len, int *types, size_t max);

/* ja_fingerprint - fill fp from h; 0, or -1 if libcrypto failed (fp then empty) */
int ja_fingerprint(const struct hello *h, struct fingerprint *fp);

#endif
