/*
 * session_priv.h - what the files of the state machine share, and nothing outside
 * them may use (session.h is the one interface of the shell and the fuzzer).
 *
 * The files form a tree: reply.c at the bottom (the catalogue, reply(), the event
 * helpers, small text helpers); address.c (the address and argument grammar of
 * MAIL, RCPT, VRFY and ETRN) above it; message.c (DATA, BDAT, the header scan,
 * the transaction) and sasl.c (the AUTH dialogues and policies) above those; and
 * session.c on top (the command table, its handlers, the dispatch).  No file calls
 * one above it.
 */
#ifndef SESSION_PRIV_H
#define SESSION_PRIV_H

#include <stddef.h>

#include "b64.h"
#include "rfc822.h"
#include "session.h"

#define ADDR_MAX	1024	/* an address kept for events (bounded by the line) */
#define HELO_MAX	256	/* HELO name kept for events */
#define RCPT_LIST_MAX	EVENT_VALUE_MAX	/* the comma-joined recipients of message_accepted */
#define SASL_RESPONSE_MAX 12288	/* smtpd_sasl_response_limit: a longer AUTH response gets 500 */
#define AUTH_MAX	B64_DECODED_MAX(SASL_RESPONSE_MAX)	/* one decoded AUTH response */
#define JUNK_MAX	100	/* smtpd_junk_command_limit */
#define RCPT_OVERSHOOT_MAX 1000	/* smtpd_recipient_overshoot_limit */
#define PARAMS_MAX	512	/* MAIL FROM parameters kept for the sidecar */
#define HDR_MAX		256	/* a header value kept for events and the sidecar */
#define HDR_NAME_MAX	16	/* the longest header name we look for, with room */
#define HEADER_MAX	102400	/* header_size_limit: Subject: and the like are looked for in these */

/* States as bits, so a command table row says where a verb is legal with one mask. */
enum {
	S_IDLE = 1 << 0,	/* no transaction */
	S_MAIL = 1 << 1,	/* after MAIL FROM */
	S_RCPT = 1 << 2,	/* after at least one RCPT TO */
	S_DATA = 1 << 3,	/* reading a DATA body */
	S_BDAT = 1 << 4,	/* reading a BDAT chunk (raw bytes) */
	S_AUTH = 1 << 5,	/* in an AUTH dialogue */
	S_TX = S_MAIL | S_RCPT
};

/* The reply catalogue (reply.c): Postfix's words. */
enum reply_id {
	R_GREETING, R_HELO, R_EHLO_LINE, R_OK, R_MAIL_OK, R_RCPT_OK, R_DATA, R_QUEUED, R_BYE,
	R_BDAT_OK, R_BDAT_QUEUED, R_AUTH_OK, R_AUTH_USER, R_AUTH_PASS, R_AUTH_EMPTY, R_AUTH_CHALLENGE,
	R_HELO_SYNTAX, R_EHLO_SYNTAX, R_MAIL_SYNTAX, R_RCPT_SYNTAX, R_DATA_SYNTAX,
	R_BDAT_SYNTAX, R_VRFY_SYNTAX, R_AUTH_SYNTAX, R_ETRN_SYNTAX,
	R_NESTED_MAIL, R_NEED_MAIL, R_NEED_RCPT, R_NO_RCPT,
	R_DATA_AFTER_BDAT, R_UNKNOWN, R_BAD_SYNTAX, R_BAD_UTF8, R_RSET_SYNTAX, R_STARTTLS_SYNTAX,
	R_ETRN_IN_TX, R_AUTH_FAILED, R_AUTH_BAD_IR, R_AUTH_BAD_RESP, R_TOO_MANY_ERRORS, R_TIMEOUT, R_TOO_MANY_RCPT,
	R_SIZE_EXCEEDED, R_SIZE_FS, R_FILE_TOO_BIG, R_CHUNK_TOO_BIG, R_DISCARDED, R_QUEUE_WRITE, R_NO_STORAGE, R_RELAY_DENIED, R_BAD_SENDER, R_BAD_RCPT,
	R_UNSUPPORTED, R_BAD_SIZE, R_BAD_RET, R_BAD_ENVID, R_BAD_NOTIFY, R_BAD_ORCPT,
	R_RCPT_AFTER_BDAT, R_XCLIENT, R_XCLIENT_SYNTAX, R_NON_SMTP, R_AUTH_ALREADY, R_AUTH_DISABLED, R_IN_TX,
	R_AUTH_ABORTED, R_AUTH_MECH, R_AUTH_TEMP, R_AUTH_TOO_LONG, R_NULL_BDAT, R_MAIL_AFTER_BDAT, R_ETRN_INVALID, R_VRFY, R_USER_UNKNOWN,
	R_ETRN, R_TLS_UNAVAILABLE, R_TLS_READY, R_TLS_ACTIVE, R_TLS_LOCAL, R_COUNT
};

enum auth_step { AUTH_NONE, AUTH_PLAIN, AUTH_LOGIN_USER, AUTH_LOGIN_PASS, AUTH_CRAM };

/*
 * hdrscan - a byte-at-a-time scan of the message header for three fields, so that
 * DATA lines and BDAT chunks feed it alike.  Values are kept raw (no RFC 2047
 * decoding), unfolded with one space, and cut at HDR_MAX.
 */
enum { H_SUBJECT, H_FROM, H_MESSAGE_ID, H_COUNT, H_NONE = H_COUNT };

struct hdrscan {
	int done;			/* the empty line that ends the header was seen */
	int bol;			/* at the start of a line */
	int in_name;			/* reading a field name */
	int cur;			/* the field whose value is being read, or H_NONE */
	char name[HDR_NAME_MAX];
	size_t name_len;
	char val[H_COUNT][HDR_MAX];
	size_t len[H_COUNT];
};

struct session {
	const struct session_conf *conf;
	const struct session_ops *ops;
	unsigned state;
	int helo_seen;
	int authenticated;
	int tls;			/* the handshake is done: this is a TLS session */
	int starttls;			/* STARTTLS was answered 220: the handshake is next */
	int ended;			/* the disconnect event has been sent */
	int hangup;			/* a reply that closes the connection was sent */
	int skip_rest;			/* the line was over-long: drop its rest */
	int held;			/* ... and answer its head (held) when it ends */
	char head[SESSION_LINE_MAX + 1];	/* the first SESSION_LINE_MAX bytes of that line */
	size_t head_len;
	unsigned errors;
	unsigned junk;
	struct session_delay delay[SESSION_DELAYS_MAX];	/* error sleeps in the output */
	size_t ndelay;
	char code[4];			/* the code of the last reply, for events */
	const char *cur;		/* the command line being handled, for events */
	size_t cur_len;

	char helo[HELO_MAX];
	size_t helo_len;

	/* the transaction */
	char from[ADDR_MAX];
	size_t from_len;
	char from_params[PARAMS_MAX];
	size_t from_params_len;
	char rcpts[RCPT_LIST_MAX];
	size_t rcpts_len;
	unsigned nrcpt;
	unsigned rcpt_overshoot;	/* RCPTs past the limit in this transaction */
	int smtputf8;			/* MAIL FROM said SMTPUTF8: non-ASCII domains pass */
	int bdat_seen;

	/* the message being received */
	int msg_open;
	int msg_failed;			/* 0, or the store's MSG_ERROR / MSG_FULL */
	struct hdrscan hdr;		/* Subject:, From:, Message-ID: as they pass */
	int at_bol;			/* the next body line starts a line */
	int data_first;			/* no DATA line but "From " lines yet */
	unsigned long body_bytes;
	unsigned long data_size;	/* DATA as Postfix counts it (see data_line) */
	unsigned long bdat_left;
	int bdat_last;
	enum reply_id bdat_refused;	/* the reply after a dropped chunk, or R_COUNT */
	enum reply_id bdat_poisoned;	/* after a chunk past the size limit: 552, then 551;
					   R_COUNT while the transaction is sound */
	const char *bdat_poison_why;	/* why, for the partial message at LAST */
	unsigned long bdat_chunk;
	unsigned long bdat_count;	/* the message as Postfix counts it (see stored_size) */
	char bdat_arg[64];		/* the BDAT arguments, for its event */
	char last_byte;
	char qid[32];

	/* an AUTH dialogue */
	enum auth_step auth;
	char auth_mech[32];
	char auth_user[AUTH_MAX];
	size_t auth_user_len;
	char auth_raw[EVENT_VALUE_MAX];	/* the client's base64 so far (LOGIN: user, pass) */
	size_t auth_raw_len;
	char auth_resp[SASL_RESPONSE_MAX];	/* a response line, gathered from its pieces */
	size_t auth_resp_len;
	unsigned auth_wait;		/* ms Dovecot takes before its next answer */
	unsigned auth_tries;		/* credentials given a verdict in this session */
	char login[HDR_MAX];		/* the user name that AUTH accepted, for the sidecar */
	size_t login_len;

	char out[SESSION_OUT_MAX + SESSION_OUT_SLACK];
	size_t out_len;
};

/* --- reply.c ---------------------------------------------------------------- */

enum echo { AS_SENT, BLANKED };

void reply(struct session *s, enum reply_id id, ...);
void pause_reply(struct session *s, unsigned ms);
void field(struct event *ev, const char *name, const char *val, size_t len);
void some(struct event *ev, const char *name, const struct bytes *b);
void fieldz(struct event *ev, const char *name, const char *val);
void emit(struct session *s, struct event *ev);
struct event event(enum event_type type, int priority);
void command_why(struct session *s, const char *verb, const char *line, size_t len, const char *why);
void command_event(struct session *s, const char *verb, const char *line, size_t len);
size_t bounded_copy(char *dst, size_t size, const char *src, size_t len);
int is_space(char c);
void skip_space(const char **p, size_t *len);
void reply_echo(struct session *s, enum reply_id id, const char *bytes, size_t len, enum echo how);
struct bytes bytes(const char *p, size_t len);
int arg_empty(const char *arg, size_t len);

/* --- address.c -------------------------------------------------------------- */

enum { ARG_NONE, ARG_OK, ARG_OPEN };

enum { EMPTY_OK = 1, UTF8_OK = 2 };

enum { P_MAIL = 1, P_RCPT = 2 };

struct path {
	const char *addr;	/* as sent, without a pair of outer angle brackets */
	size_t len;
	char internal[RFC822_TEXT_MAX + 2];	/* the address Postfix takes from it */
	size_t ilen;
	char resolved[RFC822_TEXT_MAX + 2];	/* where its resolver sends that: user@domain */
	size_t rlen;
	size_t at;		/* the '@' before its domain (the last) */
	int where;		/* RFC822_LOCAL or RFC822_REMOTE */
	int smtputf8;		/* MAIL FROM's parameters ask for SMTPUTF8 */
	const char *params;	/* the ESMTP parameters, as sent */
	size_t params_len;
};

int valid_hostname(const char *p, size_t len);
int valid_literal(const char *p, size_t len);
int next_arg(const char **args, size_t *left, const char **tok, size_t *tlen);
int ascii(const char *p, size_t len);
int unknown_user(const struct path *p);
int read_address(const struct session *s, const char *tok, size_t tlen, int ok, struct path *p);
int parse_path(const struct session *s, const char *arg, size_t len, const char *key, struct path *p);
int number(const char *p, size_t len, unsigned long *n);
int esmtp_params(struct session *s, unsigned verb, const char *params, size_t left);

/* --- message.c -------------------------------------------------------------- */

void cmd_data(struct session *s, const char *arg, size_t len);
void cmd_bdat(struct session *s, const char *arg, size_t len);
void reset_transaction(struct session *s, const char *why);
void data_line(struct session *s, const char *line, size_t len, enum line_end end);

/* --- sasl.c ----------------------------------------------------------------- */

void cmd_auth(struct session *s, const char *arg, size_t len);
void auth_unfinished(struct session *s, const char *result);
int auth_line(struct session *s, const char *line, size_t len, enum line_end end);

/* A handler gets the argument text after the verb (leading spaces kept). */

#endif
