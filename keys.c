/*
 * keys.c - grouping keys from client bytes (see keys.h).  Every output is cut to the
 * caller's size; nothing here reads past the length it is given.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "keys.h"

size_t
keys_domain(const char *p, size_t len, char *out, size_t size)
{
	const char *at = len > 0 ? memrchr(p, '@', len) : NULL;
	size_t i, n;

	if (size == 0)
		return 0;
	if (at == NULL) {
		snprintf(out, size, "(no domain)");
		return strlen(out);
	}
	n = len - (size_t)(at + 1 - p);
	if (n >= size)
		n = size - 1;
	for (i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)at[1 + i]);
	return n;
}

/* prefix - does [p, e) start with the reply or forward prefix s, in any case? */
static int
prefix(const char *p, const char *e, const char *s)
{
	size_t n = strlen(s);

	return (size_t)(e - p) >= n && strncasecmp(p, s, n) == 0;
}

size_t
keys_subject(const char *p, size_t len, char *out, size_t size)
{
	static const char *prefixes[] = { "re:", "fwd:", "fw:", NULL };
	const char *e = p + len;
	size_t n = 0, i;
	int again = 1;

	if (size == 0)
		return 0;
	while (again) {
		again = 0;
		while (p < e && isspace((unsigned char)*p))
			p++;
		for (i = 0; prefixes[i] != NULL; i++)
			if (prefix(p, e, prefixes[i])) {
				p += strlen(prefixes[i]);
				again = 1;
				break;
			}
	}
	for (; p < e && n + 1 < size; p++) {
		unsigned char c = (unsigned char)*p;

		if (isspace(c)) {
			if (n > 0 && out[n - 1] != ' ')
				out[n++] = ' ';
		} else if (isdigit(c)) {
			if (n == 0 || out[n - 1] != '#')
				out[n++] = '#';
		} else
			out[n++] = (char)tolower(c);
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	return n;
}

const char *
keys_probe_kind(const char *p, size_t len)
{
	static const char *http[] = { "GET ", "POST ", "HEAD ", "PUT ", "OPTIONS ",
	    "CONNECT ", "DELETE ", "PRI * HTTP", NULL };
	size_t i;

	if (len >= 2 && (unsigned char)p[0] == 0x16 && p[1] == 0x03)
		return "tls";	/* a TLS ClientHello on the plain port */
	if (len >= 4 && memcmp(p, "SSH-", 4) == 0)
		return "ssh";
	for (i = 0; http[i] != NULL; i++)
		if (len >= strlen(http[i]) && memcmp(p, http[i], strlen(http[i])) == 0)
			return "http";
	return "other";
}
