/*
 * rfc822.h - an SMTP address argument read the way Postfix reads it: with its
 * RFC 822 address parser, not an RFC 5321 one.
 */
#ifndef RFC822_H
#define RFC822_H

#include <stddef.h>

/* the longest argument read; longer ones are refused (a command line is shorter) */
#define RFC822_TEXT_MAX	4096

/*
 * rfc822_address - the address Postfix takes from the argument text[0..len): how
 * many addresses it holds (Postfix refuses more than one; 0 is the empty address,
 * as <>), and the last one in internal (unquoted) form in out, at most size - 1
 * bytes and NUL-terminated, its length in *outlen.  -1 if len > RFC822_TEXT_MAX.
 */
int rfc822_address(const char *text, size_t len, char *out, size_t size, size_t *outlen);

/* What Postfix's resolver makes of an address: */
enum { RFC822_ERROR = -1, RFC822_REMOTE, RFC822_LOCAL };

/*
 * rfc822_resolve - an address in internal form (as rfc822_address gives it) as
 * Postfix's trivial-rewrite resolves it: local domains (those local() says so of)
 * come off, user%domain and domain!user become user@domain, a quoted local part
 * with routing in it is opened, a bare user gets @myhostname (also Postfix's
 * myorigin here).  The result,
 * user@domain, goes to out like rfc822_address's; RFC822_LOCAL if it stayed in a
 * local domain, RFC822_REMOTE if not, RFC822_ERROR if it grew past all room.  The
 * caller checks the domain (Postfix refuses one that is no host name or literal).
 */
int rfc822_resolve(const char *addr, size_t len, const char *myhostname,
    int (*local)(const void *ctx, const char *domain, size_t len), const void *ctx,
    char *out, size_t size, size_t *outlen);

#endif
