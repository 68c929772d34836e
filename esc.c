/*
 * esc.c - terminal-safe escaping of client bytes (see esc.h).  It reads only the
 * bytes it is given and writes no control byte.
 */
#include <string.h>

#include "esc.h"

static size_t
one(char *out, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";

	if (c == '\\') {
		out[0] = out[1] = '\\';
		return 2;
	}
	if (c >= 0x20 && c < 0x7f) {
		out[0] = (char)c;
		return 1;
	}
	out[0] = '\\', out[1] = 'x', out[2] = hex[c >> 4], out[3] = hex[c & 15];
	return 4;
}

size_t
esc_fput(FILE *f, const char *p, size_t len, size_t max)
{
	char b[4];
	size_t i, n = 0, k;

	for (i = 0; i < len && i < max; i++) {
		k = one(b, (unsigned char)p[i]);
		fwrite(b, 1, k, f);
		n += k;
	}
	if (i < len) {
		fputs("...", f);
		n += 3;
	}
	return n;
}

size_t
esc_buf(char *buf, size_t size, const char *p, size_t len, size_t max)
{
	char b[4];
	size_t i, n = 0, k;

	if (size < 4) {	/* no room for "..." and the NUL */
		if (size > 0)
			buf[0] = '\0';
		return 0;
	}
	for (i = 0; i < len && i < max; i++) {
		k = one(b, (unsigned char)p[i]);
		if (n + k + 3 >= size)
			break;
		memcpy(buf + n, b, k);
		n += k;
	}
	if (i < len) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return n;
}
