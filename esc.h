/*
 * esc.h - client bytes made safe for a terminal: printable ASCII as it is, a
 * backslash doubled, every other byte as \xNN.  The output never holds a control
 * byte, so nothing a client sent can move the cursor, set a title or ring a bell.
 */
#ifndef ESC_H
#define ESC_H

#include <stddef.h>
#include <stdio.h>

/* esc_fput - write len bytes escaped to f, at most max of them (then "...");
 * returns how many characters it wrote */
size_t esc_fput(FILE *f, const char *p, size_t len, size_t max);
/* esc_buf - the same into buf, NUL-terminated; "..." where max or size cut it short;
 * returns its length */
size_t esc_buf(char *buf, size_t size, const char *p, size_t len, size_t max);

#endif
