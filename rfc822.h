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

#endif
