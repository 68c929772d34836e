/*
 * message.c - the message of a transaction: DATA lines (dot-stuffing, the end of
 * data as Postfix reads it), BDAT chunks (RFC 3030), the scan of the header for
 * the events, and the hand-over to the shell's store.  The store keeps the bytes
 * as they came; nothing here touches a file.
 */
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "session_priv.h"
#include "utf8.h"

static void close_message(struct session *, const char *partial);

static const char *const hdr_names[H_COUNT] = {
	[H_SUBJECT] = "subject", [H_FROM] = "from", [H_MESSAGE_ID] = "message-id",
};


/* reset_transaction - forget the envelope; a message still open is kept as partial */
void
reset_transaction(struct session *s, const char *why)
{
	if (s->msg_open)
		close_message(s, why);
	s->from_len = 0;
	s->from[0] = '\0';
	s->from_params_len = 0;
	s->rcpts_len = 0;
	s->rcpts[0] = '\0';
	s->nrcpt = 0;
	s->rcpt_overshoot = 0;
	s->smtputf8 = 0;
	s->bdat_seen = 0;
	s->bdat_poisoned = R_COUNT;
	s->bdat_count = 0;
	s->last_byte = '\0';
	s->body_bytes = 0;
	s->msg_failed = 0;
	s->state = S_IDLE;
}

/* open_message - ask the shell for a queue file; 451 when it cannot */
static int
open_message(struct session *s)
{
	s->body_bytes = 0;
	s->msg_failed = 0;
	s->qid[0] = '\0';
	memset(&s->hdr, 0, sizeof(s->hdr));
	s->hdr.bol = 1;
	s->hdr.cur = H_NONE;
	if (s->ops->msg_open == NULL || s->ops->msg_open(s->ops->msg_ctx, s->qid, sizeof(s->qid)) < 0) {
		reply(s, R_QUEUE_WRITE);
		s->errors++;
		return -1;
	}
	s->msg_open = 1;
	return 0;
}

void
cmd_data(struct session *s, const char *arg, size_t len)
{
	if (s->nrcpt == 0) {
		reply(s, (s->state & S_TX) ? R_NO_RCPT : R_NEED_RCPT);
		goto fail;
	}
	if (!arg_empty(arg, len)) {
		reply(s, R_DATA_SYNTAX);
		goto fail;
	}
	if (s->bdat_seen) {
		reply(s, R_DATA_AFTER_BDAT);
		goto fail;
	}
	if (open_message(s) < 0)
		goto fail_noerr;
	s->state = S_DATA;
	s->at_bol = 1;
	s->data_first = 1;
	s->data_size = 0;
	reply(s, R_DATA);
	command_event(s, "DATA", s->cur, s->cur_len);
	return;
fail:
	s->errors++;
fail_noerr:
	command_event(s, "DATA", s->cur, s->cur_len);
}


/* message_fields - what message_accepted and message_partial both carry */
static void
message_fields(struct session *s, struct event *ev, char *nbytes, char *count)
{
	snprintf(nbytes, 24, "%lu", s->body_bytes);
	snprintf(count, 16, "%u", s->nrcpt);
	field(ev, "MAIL_FROM", s->from, s->from_len);
	field(ev, "RCPT_TO", s->rcpts, s->rcpts_len);
	fieldz(ev, "RCPT_COUNT", count);
	fieldz(ev, "BODY_BYTES", nbytes);
	fieldz(ev, "MSG_ID", s->qid);
	field(ev, "HDR_SUBJECT", s->hdr.val[H_SUBJECT], s->hdr.len[H_SUBJECT]);
	field(ev, "HDR_FROM", s->hdr.val[H_FROM], s->hdr.len[H_FROM]);
	field(ev, "HDR_MESSAGE_ID", s->hdr.val[H_MESSAGE_ID], s->hdr.len[H_MESSAGE_ID]);
}

/* store - hand the message to the store: accepted (partial NULL) or kept as partial */
static int
store(struct session *s, const char *partial)
{
	struct msg_info info;

	memset(&info, 0, sizeof(info));
	info.partial = partial;
	info.helo = bytes(s->helo, s->helo_len);
	info.from = bytes(s->from, s->from_len);
	info.from_params = bytes(s->from_params, s->from_params_len);
	info.rcpts = bytes(s->rcpts, s->rcpts_len);
	info.auth_user = bytes(s->login, s->login_len);
	info.subject = bytes(s->hdr.val[H_SUBJECT], s->hdr.len[H_SUBJECT]);
	info.hdr_from = bytes(s->hdr.val[H_FROM], s->hdr.len[H_FROM]);
	info.hdr_message_id = bytes(s->hdr.val[H_MESSAGE_ID], s->hdr.len[H_MESSAGE_ID]);
	info.nrcpt = s->nrcpt;
	info.body_bytes = s->body_bytes;
	s->msg_open = 0;
	return s->ops->msg_close(s->ops->msg_ctx, &info);
}

/* message_event - message_accepted, or message_partial with its reason and reply */
static void
message_event(struct session *s, const char *partial, const char *code)
{
	struct event ev = event(partial ? EV_PARTIAL : EV_MESSAGE, partial ? 4 : 5);
	char nbytes[24], count[16];

	message_fields(s, &ev, nbytes, count);
	if (partial != NULL) {
		fieldz(&ev, "REASON", partial);
		if (code != NULL)
			fieldz(&ev, "REPLY", code);
	}
	emit(s, &ev);
}

/* close_message - a message cut off (RSET, EOF, timeout ...): kept, and an event */
static void
close_message(struct session *s, const char *partial)
{
	store(s, partial);
	message_event(s, partial, NULL);
}

/* finish_message - the end of DATA or BDAT LAST: make it durable, then answer */
static void
finish_message(struct session *s, unsigned long bdat_total)
{
	static const struct {
		const char *why;
		enum reply_id reply;
	} refusals[] = {
		{ "budget", R_NO_STORAGE },
		{ "write_error", R_QUEUE_WRITE },
		{ "too_big", R_FILE_TOO_BIG },
	};
	int k = -1;

	if (s->msg_failed == MSG_FULL)
		k = 0;
	else if (s->msg_failed)
		k = 1;
	else if ((s->bdat_seen ? s->body_bytes : s->data_size) > s->conf->max_size)
		k = 2;
	else if (store(s, NULL) < 0)
		k = 1;	/* not durable: the store keeps what it can as partial */
	if (k >= 0) {
		reply(s, refusals[k].reply);
		s->errors++;
		if (s->msg_open)
			store(s, refusals[k].why);
		message_event(s, refusals[k].why, s->code);
	} else {
		if (s->bdat_seen)
			reply(s, R_BDAT_QUEUED, bdat_total, s->qid);
		else
			reply(s, R_QUEUED, s->qid);
		message_event(s, NULL, NULL);
		/* a delivered message clears the client's record, as in Postfix */
		s->errors = 0;
		s->junk = 0;
	}
	reset_transaction(s, NULL);
}

/* hdrscan - feed header bytes; stops looking at the empty line that ends the header */
static void
hdrscan(struct hdrscan *h, const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len && !h->done; i++) {
		char c = buf[i];

		if (h->bol && (c == '\r' || c == '\n')) {
			/* an empty line (CRLF or a bare LF): the header is over */
			h->done = 1;
			break;
		}
		if (c == '\n') {
			h->bol = 1;
			h->in_name = 0;
			continue;
		}
		if (h->bol) {
			h->bol = 0;
			if (c == ' ' || c == '\t') {
				/* a folded continuation of the current field: one space */
				if (h->cur != H_NONE && h->len[h->cur] > 0 && h->len[h->cur] < HDR_MAX)
					h->val[h->cur][h->len[h->cur]++] = ' ';
				continue;
			}
			h->cur = H_NONE;
			h->in_name = 1;
			h->name_len = 0;
		}
		if (h->in_name) {
			if (c == ':') {
				int k;

				h->in_name = 0;
				for (k = 0; k < H_COUNT; k++)
					if (strlen(hdr_names[k]) == h->name_len &&
					    strncasecmp(hdr_names[k], h->name, h->name_len) == 0 &&
					    h->len[k] == 0)
						h->cur = k;
			} else if (h->name_len < sizeof(h->name)) {
				h->name[h->name_len++] = c;
			} else {
				h->in_name = 0;
			}
			continue;
		}
		if (h->cur == H_NONE || c == '\r')
			continue;
		if (h->len[h->cur] == 0 && (c == ' ' || c == '\t'))
			continue;
		if (h->len[h->cur] < HDR_MAX)
			h->val[h->cur][h->len[h->cur]++] = c;
	}
}

/*
 * body - message bytes to the store.  Bytes past the size limit are stored too (the
 * message is refused, but kept as evidence); after a store failure nothing is.
 */
static void
body(struct session *s, const char *buf, size_t len)
{
	int rc;

	if (len == 0)
		return;
	s->body_bytes += len;
	if (!s->hdr.done) {
		hdrscan(&s->hdr, buf, len);
		/* header_size_limit: past it, Postfix takes the rest for the body */
		if (s->body_bytes >= HEADER_MAX)
			s->hdr.done = 1;
	}
	if (s->msg_failed)
		return;
	if ((rc = s->ops->msg_write(s->ops->msg_ctx, buf, len)) < 0)
		s->msg_failed = rc == MSG_FULL ? MSG_FULL : MSG_ERROR;
}

/* from_line - a Unix mailbox "From " line, with any '>' before it */
static int
from_line(const char *p, size_t len)
{
	size_t i = 0;

	while (i < len && p[i] == '>')
		i++;
	return len - i >= 5 && memcmp(p + i, "From ", 5) == 0;
}

/*
 * data_line - one line of a DATA body (RFC 5321 4.5.2: dot-stuffing).  As Postfix
 * with smtpd_forbid_bare_newline = no: a bare LF ends a line, every CR before the
 * line end is taken off (so ".\r\r\n" ends the message), and each line counts its
 * length without them plus two toward message_size_limit.  The store gets the bytes
 * as they came, after dot-unstuffing.
 */
void
data_line(struct session *s, const char *line, size_t len, enum line_end end)
{
	static const char *const ending[] = { [LE_CRLF] = "\r\n", [LE_LF] = "\n", [LE_NONE] = "" };
	size_t n = len, stuffed = 0;

	if (end == LE_CRLF)
		while (n > 0 && line[n - 1] == '\r')
			n--;
	/* XXX Postfix turns leading "From " lines into a header it does not count */
	if (s->data_first && from_line(line, n))
		goto keep;
	s->data_first = 0;
	if (s->at_bol && n > 0 && line[0] == '.') {
		if (n == 1 && end != LE_NONE) {
			finish_message(s, 0);
			return;
		}
		stuffed = 1;
	}
	s->data_size += n - stuffed + 2;
keep:
	body(s, line + stuffed, len - stuffed);
	body(s, ending[end], end == LE_CRLF ? 2 : end == LE_LF ? 1 : 0);
	s->at_bol = end != LE_NONE;
}

/* spoil_bdat - an error ends the BDAT transaction: later chunks get 551 until LAST */
static void
spoil_bdat(struct session *s, enum reply_id id, const char *why)
{
	s->bdat_seen = 1;
	s->bdat_poisoned = id;
	s->bdat_poison_why = why;
}

/*
 * cmd_bdat - RFC 3030: "BDAT size [LAST]"; the chunk follows as raw bytes and the
 * reply comes after it.  Without a recipient the chunk is dropped; a chunk past the
 * size limit poisons the transaction as in Postfix (552, then 551 for each chunk up
 * to LAST), but its bytes, and the later chunks', are kept as partial evidence.
 */
void
cmd_bdat(struct session *s, const char *arg, size_t len)
{
	const char *tok, *params = arg;
	size_t left = len, tlen;
	unsigned long size;

	s->bdat_last = 0;
	if (!next_arg(&params, &left, &tok, &tlen) || number(tok, tlen, &size) < 0)
		goto syntax;
	if (next_arg(&params, &left, &tok, &tlen)) {
		if (tlen != 4 || strncasecmp(tok, "LAST", 4) != 0 || !arg_empty(params, left))
			goto syntax;
		s->bdat_last = 1;
	}
	if (size == 0 && !s->bdat_last) {
		/* Postfix's first check, in any state; the transaction is spoilt */
		reply(s, R_NULL_BDAT);
		s->errors++;
		spoil_bdat(s, R_DISCARDED, "bdat_error");
		command_event(s, "BDAT", s->cur, s->cur_len);
		return;
	}
	s->bdat_refused = R_COUNT;
	s->bdat_chunk = size;
	if (s->bdat_poisoned != R_COUNT)
		s->bdat_poisoned = R_DISCARDED;	/* kept if a message is open */
	else if (s->nrcpt == 0)
		s->bdat_refused = (s->state & S_TX) ? R_NO_RCPT : R_NEED_RCPT;
	else if (!s->msg_open && open_message(s) < 0)
		s->bdat_refused = R_QUEUE_WRITE;
	else if (s->body_bytes + size > s->conf->max_size)
		spoil_bdat(s, R_CHUNK_TOO_BIG, "too_big");
	if (s->bdat_refused == R_COUNT)
		s->bdat_seen = 1;
	s->bdat_left = size;
	s->state |= S_BDAT;
	bounded_copy(s->bdat_arg, sizeof(s->bdat_arg), s->cur, s->cur_len);
	if (size == 0)
		session_bytes(s, "", 0);
	return;
syntax:
	/* a client that cannot say how much follows cannot be followed: hang up */
	reply(s, R_BDAT_SYNTAX);
	s->errors++;
	s->hangup = 1;
	command_event(s, "BDAT", s->cur, s->cur_len);
}

/*
 * stored_size - what Postfix counts of a chunk: a bare LF becomes CR LF in its queue
 * file.  prev is the byte before the chunk.
 */
static unsigned long
stored_size(const char *buf, size_t len, char prev)
{
	unsigned long n = len;
	const char *p = buf, *end = buf + len, *lf;

	while ((lf = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if ((lf == buf ? prev : lf[-1]) != '\r')
			n++;
		p = lf + 1;
	}
	return n;
}

size_t
session_want_bytes(const struct session *s)
{
	return (s->state & S_BDAT) ? s->bdat_left : 0;
}

void
session_bytes(struct session *s, const char *buf, size_t len)
{
	unsigned long total;

	if (!(s->state & S_BDAT) || len > s->bdat_left)
		abort();
	if (s->bdat_refused == R_COUNT && s->msg_open && len > 0) {
		body(s, buf, len);
		s->bdat_count += stored_size(buf, len, s->last_byte);
		s->last_byte = buf[len - 1];
	}
	s->bdat_left -= len;
	if (s->bdat_left > 0)
		return;
	s->state &= ~S_BDAT;
	if (s->bdat_refused != R_COUNT) {
		reply(s, s->bdat_refused);
		s->errors++;
		if (s->bdat_refused == R_NO_RCPT || s->bdat_refused == R_NEED_RCPT) {
			/* a transaction that has seen BDAT: no MAIL or RCPT, 551 for chunks */
			spoil_bdat(s, R_DISCARDED, "bdat_error");
			if (s->bdat_last)
				reset_transaction(s, NULL);
		}
	} else if (s->bdat_poisoned != R_COUNT) {
		reply(s, s->bdat_poisoned, s->bdat_chunk);
		s->errors++;
		if (s->bdat_last) {
			command_event(s, "BDAT", s->bdat_arg, strlen(s->bdat_arg));
			reset_transaction(s, s->bdat_poison_why);
			return;
		}
	} else if (s->bdat_last) {
		/* XXX: Postfix counts the line end it adds to an unterminated message */
		total = s->bdat_count + (s->bdat_count == 0 || s->last_byte == '\n' ? 0 : 2);
		finish_message(s, total);
	} else if (s->msg_failed) {
		reply(s, s->msg_failed == MSG_FULL ? R_NO_STORAGE : R_QUEUE_WRITE);
		s->errors++;
	} else {
		reply(s, R_BDAT_OK, s->bdat_chunk);
	}
	command_event(s, "BDAT", s->bdat_arg, strlen(s->bdat_arg));
}
