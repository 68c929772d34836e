/*
 * b64.h - RFC 4648 base64, as SMTP AUTH (RFC 4954) and the JSON sink need it.
 * Pure functions over caller-supplied buffers; nothing allocates.
 */
#ifndef B64_H
#define B64_H

#include <stddef.h>

/* Decoded size is at most this for len input bytes. */
#define B64_DECODED_MAX(len) ((len) / 4 * 3 + 3)
/* Encoded size (without NUL) for len input bytes. */
#define B64_ENCODED_LEN(len) (((len) + 2) / 3 * 4)

/* b64_decode - decode strict base64 (padding required); -1 on bad input, else length */
long b64_decode(const char *in, size_t len, unsigned char *out, size_t outsize);
/* b64_encode - encode len bytes; out must hold B64_ENCODED_LEN(len) + 1 */
size_t b64_encode(const unsigned char *in, size_t len, char *out);

#endif
