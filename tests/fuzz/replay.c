/*
 * replay.c - run inputs through the fuzz target without libFuzzer: a main() that reads
 * each file named on the command line and hands it to LLVMFuzzerTestOneInput().  Built
 * with the normal cc and ASan+UBSan, it lets `make check` replay the seed corpus and
 * every crasher kept in regressions/ with no clang installed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* slurp - the whole file; NULL on error */
static uint8_t *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL, *nbuf;
	size_t size = 0, n;

	*len = 0;
	if (f == NULL)
		return NULL;
	do {
		if (*len == size) {
			size = size ? size * 2 : 65536;
			if ((nbuf = realloc(buf, size)) == NULL)
				goto fail;
			buf = nbuf;
		}
		n = fread(buf + *len, 1, size - *len, f);
		*len += n;
	} while (n > 0);
	if (ferror(f))
		goto fail;
	fclose(f);
	return buf;
fail:
	free(buf);
	fclose(f);
	return NULL;
}

int
main(int argc, char **argv)
{
	int i;

	if (argc < 2) {
		fprintf(stderr, "usage: replay FILE...\n");
		return 2;
	}
	for (i = 1; i < argc; i++) {
		size_t len;
		uint8_t *buf = slurp(argv[i], &len);

		if (buf == NULL) {
			perror(argv[i]);
			return 2;
		}
		fprintf(stderr, "replay: %s (%zu bytes)\n", argv[i], len);
		LLVMFuzzerTestOneInput(buf, len);
		free(buf);
	}
	fprintf(stderr, "replay: %d inputs, no finding\n", argc - 1);
	return 0;
}
