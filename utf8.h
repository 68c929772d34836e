/*
 * utf8.h - strict UTF-8 validation, for the session and the fuzz target's checks.
 */
#ifndef UTF8_H
#define UTF8_H

#include <stddef.h>

/* utf8_valid - are these len bytes well-formed UTF-8?  1 or 0 */
int utf8_valid(const unsigned char *p, size_t len);

#endif
