/*
 * keys.h - the report's grouping keys made from client bytes: an address's domain, a
 * Subject normalised, what a non-SMTP client spoke.  Pure functions over the bytes
 * they are given and a caller's buffer; nothing allocates, nothing reads past len.
 */
#ifndef KEYS_H
#define KEYS_H

#include <stddef.h>

/* keys_domain - the lower-cased part after the last '@', or "(no domain)" */
size_t keys_domain(const char *p, size_t len, char *out, size_t size);
/* keys_subject - Re:/Fwd:/Fw: dropped, white space one space, lower case, digits '#' */
size_t keys_subject(const char *p, size_t len, char *out, size_t size);
/* keys_probe_kind - "http", "tls" (a ClientHello), "ssh" or "other" */
const char *keys_probe_kind(const char *p, size_t len);

#endif
