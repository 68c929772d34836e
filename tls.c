/*
 * tls.c - STARTTLS with OpenSSL: see tls.h.
 *
 * The context is set up as Postfix 3.7 on Debian 12 sets up smtpd's, as seen on the
 * wire (nmap ssl-enum-ciphers, openssl s_client): TLS 1.0 to 1.3 at security level
 * 0, its "medium" cipher list (anonymous suites included) in the client's order of
 * preference, ECDHE on its curves, DHE sized as OpenSSL's dh_auto sizes it, no
 * compression, no client renegotiation, one session ticket per handshake, with
 * ticket keys every process of the decky shares and that rotate as Postfix's tlsmgr
 * rotates them, so a client can resume as with Postfix.  The certificate is the decky's own, made
 * the way Debian's make-ssl-cert makes the snakeoil a stock Postfix serves.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"

/* Postfix 3.7: tls_medium_cipherlist and tls_eecdh_auto_curves */
#define CIPHERS		"aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH"
#define GROUPS		"X25519:X448:P-256:P-521:P-384"
#define CERT_DAYS	3650		/* make-ssl-cert's default */
#define CERT_BITS	2048

static SSL_CTX *ctx;
static SSL *ssl;
static struct fingerprint fp;
static int hello_seen;
static int ext_order[16384];		/* a ClientHello's extension types, as sent */
static size_t next_order;		/* how many; 0 until a ClientHello is read */
static char why[256];
static int broken;			/* a fatal error: no close_notify may follow */

/* --- the certificate -------------------------------------------------------------- */

static void
openssl_err(char *err, size_t errsize, const char *what)
{
	unsigned long e = ERR_get_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	snprintf(err, errsize, "%s: %s", what, r ? r : "failed");
	ERR_clear_error();
}

/* dns_name - a host name make-ssl-cert would put in subjectAltName as it is */
static int
dns_name(const char *h)
{
	if (*h == '\0')
		return 0;
	for (; *h; h++)
		if (!(*h == '.' || *h == '-' || *h == '_' || (*h >= '0' && *h <= '9') ||
		    (*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z')))
			return 0;
	return 1;
}

static int
add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *e;
	int ok;

	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	if ((e = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) == NULL)
		return -1;
	ok = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok ? 0 : -1;
}

/* self_signed - "openssl req -new -x509 -days 3650 -nodes -sha256" with ssleay.cnf */
static X509 *
self_signed(EVP_PKEY *key, const char *host)
{
	X509 *x = X509_new();
	X509_NAME *name;
	BIGNUM *serial = BN_new();
	char san[300], cn[65];
	size_t cnlen = strlen(host);

	/* X.509 caps CN at 64: like make-ssl-cert, the short name there, the full one in SAN */
	if (cnlen > 64) {
		cnlen = strcspn(host, ".");
		cnlen = cnlen > 64 ? 64 : cnlen;
	}
	memcpy(cn, host, cnlen);
	cn[cnlen] = '\0';

	if (x == NULL || serial == NULL || !X509_set_version(x, 2) ||
	    !BN_rand(serial, 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
	    BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) == NULL ||
	    X509_gmtime_adj(X509_getm_notBefore(x), 0) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), CERT_DAYS, 0, NULL) == NULL ||
	    (name = X509_get_subject_name(x)) == NULL ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) ||
	    !X509_set_issuer_name(x, name) || !X509_set_pubkey(x, key) ||
	    add_ext(x, NID_basic_constraints, "CA:FALSE") < 0)
		goto fail;
	snprintf(san, sizeof(san), "DNS:%s", host);
	if ((dns_name(host) && add_ext(x, NID_subject_alt_name, san) < 0) ||
	    add_ext(x, NID_subject_key_identifier, "hash") < 0 || !X509_sign(x, key, EVP_sha256()))
		goto fail;
	BN_free(serial);
	return x;
fail:
	BN_free(serial);
	X509_free(x);
	return NULL;
}

/* write_pem - into path.tmp, fsync'd, then renamed: a reader sees all of it or none */
static int
write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *x)
{
	char tmp[PATH_MAX];
	FILE *f;
	int fd, ok;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -1;
	unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)) < 0)
		return -1;
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		return -1;
	}
	ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, x);
	ok = ok && fflush(f) == 0 && fsync(fd) == 0;
	if (fclose(f) != 0 || !ok || rename(tmp, path) < 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int
exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* make_dir_of - the directory a path is in, and its parents, made (0700) if missing */
static void
make_dir_of(const char *path)
{
	char dir[PATH_MAX];
	char *p;

	snprintf(dir, sizeof(dir), "%s", path);
	if ((p = strrchr(dir, '/')) == NULL || p == dir)
		return;
	*p = '\0';
	for (p = dir + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(dir, 0700);
			*p = '/';
		}
	mkdir(dir, 0700);
}

int
tls_make_cert(const char *cert, const char *key, const char *hostname, char *err, size_t errsize)
{
	char lock[PATH_MAX];
	EVP_PKEY *pk = NULL;
	X509 *x = NULL;
	int lfd, r = -1;

	if (exists(cert) && exists(key))
		return 0;
	/* one maker at a time: the first connections of a new decky may come together */
	make_dir_of(key);
	make_dir_of(cert);
	snprintf(lock, sizeof(lock), "%s.lock", key);
	if ((lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 || flock(lfd, LOCK_EX) < 0) {
		snprintf(err, errsize, "%s: %s", lock, strerror(errno));
		if (lfd >= 0)
			close(lfd);
		return -1;
	}
	if (exists(cert) && exists(key)) {
		r = 0;	/* another process made them while we waited */
	} else if (exists(cert) || exists(key)) {
		snprintf(err, errsize, "%s: only one of the key and the certificate exists",
		    exists(cert) ? cert : key);
	} else if ((pk = EVP_RSA_gen(CERT_BITS)) == NULL || (x = self_signed(pk, hostname)) == NULL) {
		openssl_err(err, errsize, "making the certificate");
	} else if (write_pem(key, 0600, pk, NULL) < 0 || write_pem(cert, 0644, NULL, x) < 0) {
		snprintf(err, errsize, "writing %s: %s", exists(key) ? cert : key, strerror(errno));
		unlink(key);
	} else {
		r = 0;
	}
	EVP_PKEY_free(pk);
	X509_free(x);
	close(lfd);
	return r;
}

/* --- the ClientHello -------------------------------------------------------------- */

/*
 * on_message - OpenSSL's message callback: the first ClientHello's extension types
 * in the order sent, every one of them (the ClientHello callback comes later and
 * lists only those OpenSSL knows)
 */
static void
on_message(int write_p, int version, int content_type, const void *buf, size_t len, SSL *s,
    void *arg)
{
	(void)version;
	(void)s;
	(void)arg;
	if (!write_p && content_type == SSL3_RT_HANDSHAKE && next_order == 0 && !hello_seen)
		next_order = ja_ext_types(buf, len, ext_order, sizeof(ext_order) / sizeof(ext_order[0]));
}

/* on_hello - OpenSSL's ClientHello callback: the fingerprint, then carry on */
static int
on_hello(SSL *s, int *alert, void *arg)
{
	static const int want[] = { 0x0000, 0x0010, 0x000a, 0x000b, 0x000d, 0x002b };
	const unsigned char *body[6] = { NULL };
	size_t len[6] = { 0 }, i;
	struct hello h = { 0 };
	int *ext = NULL;

	(void)alert;
	(void)arg;
	/* the first hello only: a second comes after a HelloRetryRequest */
	if (hello_seen || SSL_client_hello_isv2(s))
		return SSL_CLIENT_HELLO_SUCCESS;
	hello_seen = 1;
	h.version = SSL_client_hello_get0_legacy_version(s);
	h.ciphers_len = SSL_client_hello_get0_ciphers(s, &h.ciphers);
	if (next_order > 0) {
		h.ext = ext_order;
		h.next = next_order;
	} else if (SSL_client_hello_get1_extensions_present(s, &ext, &h.next)) {
		h.ext = ext;
	}
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!SSL_client_hello_get0_ext(s, (unsigned)want[i], &body[i], &len[i]))
			body[i] = NULL, len[i] = 0;
	h.sni = body[0], h.sni_len = len[0];
	h.alpn = body[1], h.alpn_len = len[1];
	h.groups = body[2], h.groups_len = len[2];
	h.formats = body[3], h.formats_len = len[3];
	h.sigalgs = body[4], h.sigalgs_len = len[4];
	h.versions = body[5], h.versions_len = len[5];
	if (ja_fingerprint(&h, &fp) < 0)
		hello_seen = 0;
	OPENSSL_free(ext);
	return SSL_CLIENT_HELLO_SUCCESS;
}

/* --- the context and the connection ------------------------------------------------ */

/*
 * Ticket keys rotate as Postfix's tlsmgr rotates them (tls_scache_key(), tlsmgr_key()):
 * a key encrypts for half of smtpd_tls_session_cache_timeout (1800 s), then only
 * decrypts for as long again; tlsmgr keeps two, the current and the previous.  Here
 * the key of period n is derived from the decky's secret (the SHA-512 of its private
 * key), so every process agrees without shared state: the name (16 bytes) and the
 * AES-256-CBC key (32) are the first 48 bytes of SHA-512(secret "n" n), the HMAC key
 * (32) the first 32 of SHA-512(secret "m" n).  The periods start at a phase of the decky's own, not on the
 * hour.  XXX as Postfix's ticket_cb, a ticket of the previous key resumes without a
 * new ticket (TLS 1.2; TLS 1.3 always sends one).
 */
#define TICKET_NAME	16
#define TICKET_KEY	32
static unsigned char secret[64];
static unsigned long long period = 1800;
static unsigned long long phase;

struct ticket_key {
	unsigned char name[TICKET_NAME], hmac[TICKET_KEY], aes[TICKET_KEY];
};

/* ticket_key - the key of period n */
static int
ticket_key(unsigned long long n, struct ticket_key *k)
{
	unsigned char in[sizeof(secret) + 1 + 8], md[2][64];
	int i, ok;

	memcpy(in, secret, sizeof(secret));
	for (i = 0; i < 8; i++)
		in[sizeof(secret) + 1 + i] = (unsigned char)(n >> (56 - 8 * i));
	in[sizeof(secret)] = 'n';
	ok = EVP_Digest(in, sizeof(in), md[0], NULL, EVP_sha512(), NULL);
	in[sizeof(secret)] = 'm';
	ok = ok && EVP_Digest(in, sizeof(in), md[1], NULL, EVP_sha512(), NULL);
	memcpy(k->name, md[0], TICKET_NAME);
	memcpy(k->aes, md[0] + TICKET_NAME, TICKET_KEY);
	memcpy(k->hmac, md[1], TICKET_KEY);
	OPENSSL_cleanse(in, sizeof(in));
	OPENSSL_cleanse(md, sizeof(md));
	return ok ? 0 : -1;
}

/* on_ticket - OpenSSL's ticket key callback: encrypt with the current key, decrypt with it or the previous */
static int
on_ticket(SSL *s, unsigned char name[16], unsigned char iv[EVP_MAX_IV_LENGTH], EVP_CIPHER_CTX *c,
    EVP_MAC_CTX *h, int enc)
{
	unsigned long long n = ((unsigned long long)time(NULL) + phase) / period;
	struct ticket_key k;
	OSSL_PARAM params[3];
	int r = 0, i;

	(void)s;
	for (i = 0; i < (enc ? 1 : 2) && r == 0; i++) {
		if (n < (unsigned long long)i || ticket_key(n - (unsigned long long)i, &k) < 0)
			break;
		if (!enc && memcmp(name, k.name, TICKET_NAME) != 0)
			continue;
		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
		params[1] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, TICKET_KEY);
		params[2] = OSSL_PARAM_construct_end();
		if (!EVP_MAC_CTX_set_params(h, params))
			r = -1;
		else if (enc)
			r = RAND_bytes(iv, 16) == 1 && memcpy(name, k.name, TICKET_NAME) &&
			    EVP_EncryptInit_ex(c, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1 ? 1 : -1;
		else
			r = EVP_DecryptInit_ex(c, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1 ? 1 : -1;
	}
	OPENSSL_cleanse(&k, sizeof(k));
	return r;
}

/* ticket_keys - the decky's secret, its phase, and the callback */
static int
ticket_keys(SSL_CTX *c, unsigned long long seconds)
{
	unsigned char *der = NULL, md[64];
	EVP_PKEY *pk = SSL_CTX_get0_privatekey(c);
	int len, ok, i;

	if (pk == NULL || (len = i2d_PrivateKey(pk, &der)) <= 0)
		return -1;
	ok = EVP_Digest(der, (size_t)len, secret, NULL, EVP_sha512(), NULL) &&
	    EVP_Digest(secret, sizeof(secret), md, NULL, EVP_sha512(), NULL);
	OPENSSL_clear_free(der, (size_t)len);
	period = seconds > 0 ? seconds : 1800;
	for (phase = 0, i = 0; i < 8; i++)
		phase = phase << 8 | md[i];
	phase %= period;
	return ok && SSL_CTX_set_tlsext_ticket_key_evp_cb(c, on_ticket) == 1 ? 0 : -1;
}

int
tls_init(const char *cert, const char *key, const char *hostname, unsigned long long ticket_period,
    char *err, size_t errsize)
{
	if (ctx != NULL)
		return 0;
	if (tls_make_cert(cert, key, hostname, err, errsize) < 0)
		return -1;
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		openssl_err(err, errsize, "SSL_CTX_new");
		return -1;
	}
	SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_dh_auto(ctx, 1);
	SSL_CTX_set_num_tickets(ctx, 1);
	SSL_CTX_set_client_hello_cb(ctx, on_hello, NULL);
	SSL_CTX_set_msg_callback(ctx, on_message);
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, CIPHERS) != 1 || SSL_CTX_set1_groups_list(ctx, GROUPS) != 1) {
		openssl_err(err, errsize, "cipher list");
	} else if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		openssl_err(err, errsize, cert);
	} else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		openssl_err(err, errsize, key);
	} else if (ticket_keys(ctx, ticket_period) < 0) {
		openssl_err(err, errsize, "session ticket keys");
	} else {
		return 0;
	}
	SSL_CTX_free(ctx);
	ctx = NULL;
	return -1;
}

int
tls_start(int rfd, int wfd)
{
	if (ctx == NULL || (ssl = SSL_new(ctx)) == NULL)
		return -1;
	if (!SSL_set_rfd(ssl, rfd) || !SSL_set_wfd(ssl, wfd))
		return -1;
	SSL_set_accept_state(ssl);
	return 0;
}

/* outcome - an OpenSSL return value as TLS_WANT_*, or TLS_FAIL with the reason kept */
static int
outcome(int r)
{
	unsigned long e;
	const char *reason;

	switch (SSL_get_error(ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return TLS_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return TLS_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (why[0] == '\0')
			snprintf(why, sizeof(why), "%s", errno ? strerror(errno) : "unexpected eof");
		break;
	default:
		if (why[0] == '\0' && (e = ERR_peek_last_error()) != 0) {
			reason = ERR_reason_error_string(e);
			snprintf(why, sizeof(why), "%s", reason ? reason : "protocol error");
		}
	}
	ERR_clear_error();
	if (why[0] == '\0')
		snprintf(why, sizeof(why), "protocol error");
	broken = 1;
	return TLS_FAIL;
}

int
tls_accept(void)
{
	int r;

	errno = 0;
	if ((r = SSL_accept(ssl)) == 1)
		return 1;
	r = outcome(r);
	/* an EOF in the middle of the handshake is a failure, not an end */
	return r == 0 ? TLS_FAIL : r;
}

ssize_t
tls_read(void *buf, size_t len)
{
	int r;

	errno = 0;
	if ((r = SSL_read(ssl, buf, len > INT_MAX ? INT_MAX : (int)len)) > 0)
		return r;
	return outcome(r);
}

ssize_t
tls_write(const void *buf, size_t len)
{
	int r;

	errno = 0;
	if ((r = SSL_write(ssl, buf, len > INT_MAX ? INT_MAX : (int)len)) > 0)
		return r;
	r = outcome(r);
	return r == 0 ? TLS_FAIL : r;
}

void
tls_stop(void)
{
	/* close_notify, as Postfix sends it at the end of a session; no wait for the reply */
	if (ssl != NULL && !broken && SSL_is_init_finished(ssl))
		SSL_shutdown(ssl);
}

size_t
tls_pending(void)
{
	return ssl != NULL ? (size_t)SSL_pending(ssl) : 0;
}

const char *
tls_version(void)
{
	return ssl != NULL && SSL_is_init_finished(ssl) ? SSL_get_version(ssl) : "";
}

const char *
tls_cipher(void)
{
	const char *c = ssl != NULL && SSL_is_init_finished(ssl) ? SSL_get_cipher_name(ssl) : NULL;

	return c != NULL ? c : "";
}

const char *
tls_error(void)
{
	return why;
}

const char *
tls_library(void)
{
	return OpenSSL_version(OPENSSL_VERSION);
}

const struct fingerprint *
tls_hello(void)
{
	return hello_seen ? &fp : NULL;
}
