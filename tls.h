/*
 * tls.h - STARTTLS for the one connection of this process: OpenSSL's context, the
 * decky's certificate (made at first use as Debian makes its snakeoil), the
 * handshake over fd 0/1, and the client's fingerprint from its ClientHello.
 *
 * Nothing here blocks or waits: the fds are non-blocking once TLS starts, and
 * tls_accept(), tls_read() and tls_write() say what they wait for (TLS_WANT_READ,
 * TLS_WANT_WRITE); the shell polls with its own timeouts and calls again.
 */
#ifndef TLS_H
#define TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "ja.h"

#define TLS_FAIL	-1
#define TLS_WANT_READ	-2
#define TLS_WANT_WRITE	-3

/*
 * tls_init - the server context, with the key and certificate at these paths; if
 * both are missing they are made first (RSA 2048, self-signed, SHA-256, 3650 days,
 * CN and DNS name = hostname).  Session ticket keys rotate every ticket_period
 * seconds (0: 1800).  Once per process; 0, or -1 with a reason in err.
 */
int tls_init(const char *cert, const char *key, const char *hostname, unsigned long long ticket_period,
    char *err, size_t errsize);
/* tls_make_cert - make the pair unless both exist; 0 (made or there), or -1 */
int tls_make_cert(const char *cert, const char *key, const char *hostname, char *err, size_t errsize);

/* tls_start - TLS on these fds, after "220 2.0.0 Ready to start TLS"; 0 or -1 */
int tls_start(int rfd, int wfd);
/* tls_accept - the handshake: 1 when done, TLS_WANT_*, or TLS_FAIL */
int tls_accept(void);
/* tls_read - >0 bytes, 0 at the client's EOF, TLS_WANT_*, or TLS_FAIL */
ssize_t tls_read(void *buf, size_t len);
/* tls_write - >0 bytes written, TLS_WANT_*, or TLS_FAIL */
ssize_t tls_write(const void *buf, size_t len);
/* tls_stop - end TLS cleanly (close_notify) before the connection closes */
void tls_stop(void);
/* tls_pending - decrypted bytes waiting inside OpenSSL: read them before polling */
size_t tls_pending(void);

/* After tls_accept(), done or failed: */
const char *tls_version(void);		/* "TLSv1.3", or "" */
const char *tls_cipher(void);		/* OpenSSL's name, or "" */
const char *tls_error(void);		/* why it failed: OpenSSL's reason, or "" */
/* tls_library - the OpenSSL this program runs with, as "OpenSSL 3.0.17 1 Jul 2025" */
const char *tls_library(void);
/* tls_hello - the client's fingerprint, or NULL if no ClientHello was read */
const struct fingerprint *tls_hello(void);

#endif
