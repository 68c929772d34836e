/*
 * floor.c - the benchmark's floor: the least an SMTP responder on fd 0/1 can do.  It
 * greets, answers every command line with a fixed reply, swallows a DATA body up to
 * the lone dot and exits after QUIT or EOF.  No settings, no events, no spool: what
 * it costs per connection is the fork+exec of the activator plus a few syscalls.
 * It must never be used as a server for anything but the benchmark.
 */
#define _POSIX_C_SOURCE 200809L
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define BUF	16384

static char in[BUF], out[4096];
static size_t in_start, in_end, out_len;

/* say - queue one reply; it goes out right before the next blocking read */
static void
say(const char *s)
{
	size_t n = strlen(s);

	if (out_len + n > sizeof(out))
		return;
	memcpy(out + out_len, s, n);
	out_len += n;
}

/* flush - write the queued replies; 0 or -1 */
static int
flush(void)
{
	size_t off = 0;

	while (off < out_len) {
		ssize_t w = write(1, out + off, out_len - off);

		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	out_len = 0;
	return 0;
}

/* getline_ - the next line without its LF into *line; 1, or 0 at EOF or error */
static int
getline_(char **line, size_t *len)
{
	for (;;) {
		char *nl = memchr(in + in_start, '\n', in_end - in_start);
		ssize_t r;

		if (nl != NULL) {
			*line = in + in_start;
			*len = (size_t)(nl - *line);
			in_start += *len + 1;
			return 1;
		}
		if (in_start > 0) {
			memmove(in, in + in_start, in_end - in_start);
			in_end -= in_start;
			in_start = 0;
		}
		if (in_end == sizeof(in))	/* an over-long line: drop what we have */
			in_end = 0;
		if (flush() < 0 || (r = read(0, in + in_end, sizeof(in) - in_end)) <= 0)
			return 0;
		in_end += (size_t)r;
	}
}

int
main(void)
{
	char *line;
	size_t len;
	int data = 0;

	say("220 floor ESMTP\r\n");
	while (getline_(&line, &len)) {
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (data) {
			if (len == 1 && line[0] == '.') {
				data = 0;
				say("250 2.0.0 Ok: queued\r\n");
			}
		} else if (len >= 4 && strncasecmp(line, "DATA", 4) == 0) {
			data = 1;
			say("354 End data with <CR><LF>.<CR><LF>\r\n");
		} else if (len >= 4 && strncasecmp(line, "QUIT", 4) == 0) {
			say("221 2.0.0 Bye\r\n");
			break;
		} else {
			say("250 2.0.0 Ok\r\n");
		}
	}
	flush();
	return 0;
}
