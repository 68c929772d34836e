/*
 * report_fuzz - libFuzzer target over what decky-smtpd-report does with journal values
 * (client bytes): the grouping keys (keys.c), the terminal escape (esc.c) and the
 * bounded counting table (count.c).  It aborts when an escaped value holds a control
 * byte or when the table's counts stop adding up to what was added.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../count.h"
#include "../../esc.h"
#include "../../keys.h"

#define CAP	8	/* small, so that eviction is exercised */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char out[4 * 65536 + 1];
	const char *p = (const char *)data;
	struct count_table *t;
	struct count_entry *rows[CAP];
	size_t i, n, start;
	uint64_t sum;

	n = esc_buf(out, sizeof(out), p, size, size);
	for (i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] >= 0x7f)
			abort();
	if (out[n] != '\0')
		abort();
	/* cut short by the buffer and by max, as a MESSAGE value is: "..." and within size */
	n = esc_buf(out, 41, p, size, size % 29);
	if (n >= 41 || out[n] != '\0' || (size > size % 29 && (n < 3 || memcmp(out + n - 3, "...", 3) != 0)))
		abort();
	for (i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] >= 0x7f)
			abort();
	n = keys_domain(p, size, out, 300);
	if (n >= 300)
		abort();
	n = keys_subject(p, size, out, 300);
	if (n >= 300)
		abort();
	(void)keys_probe_kind(p, size);
	/* each NUL-separated word of the input, counted */
	if ((t = count_new(CAP)) == NULL)
		return 0;
	for (start = 0, i = 0; i <= size; i++) {
		if (i < size && data[i] != 0)
			continue;
		count_add(t, p + start, i - start, 1, (uint64_t)i + 1);
		start = i + 1;
	}
	n = count_sorted(t, rows, CAP);
	for (sum = 0, i = 0; i < n; i++) {
		sum += rows[i]->count;
		if (rows[i]->err > rows[i]->count || (i > 0 && rows[i]->count > rows[i - 1]->count))
			abort();
	}
	if (sum != t->total || n != t->n || t->n > CAP)
		abort();
	count_free(t);
	return 0;
}
