/*
 * session.h - the SMTP state machine of decky-smtpd, with no I/O of its own.
 *
 * The shell (smtpd.c) feeds it one input line at a time, with how the line ended,
 * and sends what session_output() holds before it blocks on a read.  Everything the
 * session needs from the world (names, limits, queue files, the event sink) comes in
 * through struct session_conf and struct session_ops, so tests and the fuzzer drive
 * it without sockets, clocks or files.
 */
#ifndef SESSION_H
#define SESSION_H

#include <stddef.h>

/* How a line handed to session_line() ended. */
enum line_end {
	LE_CRLF,		/* "\r\n" */
	LE_LF,			/* a bare "\n" */
	LE_NONE			/* no end yet: the line was longer than the reader's buffer */
};

/* What session_line() asks the shell to do next. */
enum session_next {
	SN_CONTINUE,		/* read the next line */
	SN_CLOSE,		/* send the output, then close the connection */
	SN_STARTTLS		/* send the output (220), drop what the client pipelined,
				   do the TLS handshake, then call session_tls() */
};

/* Why a session ended; the disconnect event names it. */
enum session_end {
	END_QUIT,		/* the client said QUIT */
	END_EOF,		/* the client closed the connection */
	END_TIMEOUT,		/* the client was idle too long */
	END_ERRORS,		/* the hard error limit was reached */
	END_REJECTED,		/* a non-SMTP command (HTTP and the like) */
	END_WRITE,		/* a reply could not be sent: the client vanished */
	END_READ,		/* reading failed (reset) */
	END_PROTOCOL,		/* a protocol error that Postfix hangs up on */
	END_SIGNAL,		/* the process was told to stop (SIGTERM) */
	END_SESSION_TIME,	/* the session's wall time ran out */
	END_SESSION_BYTES,	/* the client sent more than a session may */
	END_TLS			/* the TLS handshake after STARTTLS failed */
};

/* Event types: the seed's table plus "command" for every other client command. */
enum event_type {
	EV_CONNECT,
	EV_EHLO,
	EV_AUTH,
	EV_MAIL,
	EV_RCPT,
	EV_MESSAGE,
	EV_PARTIAL,
	EV_COMMAND,
	EV_DISCONNECT,
	EV_PERSONA_ERROR,
	EV_TLS,
	EV_REPEAT,		/* repeat_summary: events coalesced (flood.c) */
	EV_COUNT
};

#define EVENT_MAX_FIELDS 16
/* The longest value an event keeps (the sink cuts longer ones): room for AUTH LOGIN's
   two responses at Postfix's smtpd_sasl_response_limit (12288 bytes) each. */
#define EVENT_VALUE_MAX 24576

/* One field of an event: an upper-case name and length-delimited bytes. */
struct field {
	const char *name;
	const char *val;
	size_t len;
};

struct event {
	enum event_type type;
	int priority;			/* syslog priority */
	size_t nfield;
	struct field field[EVENT_MAX_FIELDS];
};

/* A bounded, length-delimited piece of client bytes. */
struct bytes {
	const char *p;
	size_t len;
};

/* What the session knows of a message when it closes it: the store's sidecar. */
struct msg_info {
	const char *partial;		/* NULL: accepted; else why it was cut off */
	struct bytes helo, from, from_params, rcpts, auth_user;
	struct bytes subject, hdr_from, hdr_message_id;
	unsigned nrcpt;
	unsigned long body_bytes;	/* as received, after dot-unstuffing */
};

/* msg_write's answers besides 0 */
#define MSG_ERROR	-1		/* the store failed: 451 */
#define MSG_FULL	-2		/* the spool budget is spent: 452 */

/* The credential policies of auth-policy. */
enum auth_policy {
	AUTH_ACCEPT,		/* every well-formed credential is good */
	AUTH_REJECT,		/* every one fails */
	AUTH_WEAK		/* only weak ones: a user name that is its password, or a
				   pair of the shipped list or the operator's */
};

/* A user name and password the weak policy accepts (NUL-terminated). */
struct cred {
	const char *user, *pass;
};

/* When the session asks the shell how long Dovecot would take (auth_wait). */
enum auth_moment {
	AUTH_BEGIN,		/* a dialogue starts: Dovecot's penalty for this client */
	AUTH_FAILED,		/* a credential failed: its delay; the penalty grows */
	AUTH_PASSED		/* one succeeded: the penalty is cleared */
};

/* What the shell provides: the event sink and the message store. */
struct session_ops {
	void *ctx;			/* for event() */
	void (*event)(void *ctx, const struct event *ev);
	void *msg_ctx;			/* for the msg_* callbacks */
	/* Is there room for another message?  1 or 0 (Postfix's 452 at MAIL). */
	int (*msg_room)(void *ctx);
	/* Open a new message, write its queue id (NUL-terminated) to qid; 0 or -1. */
	int (*msg_open)(void *ctx, char *qid, size_t qidsize);
	/* Append body bytes; 0, MSG_ERROR or MSG_FULL.  The store may buffer. */
	int (*msg_write)(void *ctx, const char *buf, size_t len);
	/*
	 * Close the message: durable as accepted (info->partial NULL) or kept as
	 * partial evidence; 0 or -1.  It is never dropped unless it holds no bytes.
	 */
	int (*msg_close)(void *ctx, const struct msg_info *info);
	/*
	 * Can TLS start (the certificate and key are there or could be made)?  0 or -1
	 * (Postfix's 454).  Called with ctx at STARTTLS, before the 220.
	 */
	int (*tls_ready)(void *ctx);
	/*
	 * How many milliseconds Dovecot would take at this moment of an AUTH dialogue
	 * (sum: a digest of the user name and password, 0 when there is none; after:
	 * what the session already waits before this answer).  NULL: none.  Called
	 * with auth_ctx.
	 */
	void *auth_ctx;
	unsigned (*auth_wait)(void *ctx, enum auth_moment, unsigned long sum, unsigned after);
};

/* What the shell learnt from a TLS handshake; empty pieces are left out of the event. */
struct tls_info {
	int ok;				/* the handshake completed */
	struct bytes version, cipher, sni, alpn, error;
	struct bytes ja3, ja3_hash, ja4, ja4_r;
	struct bytes discarded;		/* what the client pipelined after STARTTLS */
};

/* The persona and the limits: fixed for the life of a session. */
struct session_conf {
	const char *hostname;		/* myhostname */
	const char *local_addr;		/* the address the client reached, or NULL */
	const char *banner;		/* greeting text after "220 " */
	const char *ehlo_keywords;	/* advertised, in order; SIZE and AUTH get values */
	const char *auth_mechs;		/* offered, space-separated: PLAIN LOGIN CRAM-MD5 */
	enum auth_policy auth_policy;	/* what AUTH accepts */
	const struct cred *weak;	/* the operator's weak credentials (AUTH_WEAK) */
	size_t nweak;
	unsigned auth_succeed_after;	/* this attempt of a session succeeds (0: none) */
	int relay_open;			/* 1: relay for anyone; 0: only after AUTH */
	const char *cram_challenge;	/* "<random.time@host>", from the shell */
	unsigned long max_size;		/* message_size_limit, SIZE keyword */
	unsigned max_rcpt;		/* smtpd_recipient_limit */
	unsigned soft_errors;		/* smtpd_soft_error_limit */
	unsigned hard_errors;		/* smtpd_hard_error_limit */
	unsigned error_sleep_ms;	/* smtpd_error_sleep_time */
};

struct session;

struct session *session_new(const struct session_conf *, const struct session_ops *);
void session_free(struct session *);
void session_greet(struct session *);
enum session_next session_line(struct session *, const char *line, size_t len, enum line_end);
/*
 * session_tls - after SN_STARTTLS: the handshake's outcome, as a tls event.  If it
 * succeeded the session goes on inside TLS (EHLO no longer offers STARTTLS); if not,
 * the shell ends it with END_TLS.
 */
void session_tls(struct session *, const struct tls_info *);
/* session_end - the connection is over; emits disconnect once (a no-op after QUIT) */
void session_end(struct session *, enum session_end);
const char *session_output(struct session *, size_t *len);
void session_output_done(struct session *);
/*
 * Error sleeps: before the output up to delay[i].end is sent, sleep delay[i].ms, in
 * order; a batch with any should be sent at once, as Postfix flushes after each.
 */
struct session_delay {
	size_t end;
	unsigned ms;
};
#define SESSION_DELAYS_MAX 32
size_t session_delays(const struct session *, const struct session_delay **);
/* BDAT: while this is non-zero, the shell hands raw bytes to session_bytes() */
size_t session_want_bytes(const struct session *);
void session_bytes(struct session *, const char *buf, size_t len);

/*
 * Output: the shell sends it when it holds SESSION_OUT_MAX bytes or more; one call
 * of session_line() or session_bytes() adds less than SESSION_OUT_SLACK.
 */
#define SESSION_OUT_MAX 4096
#define SESSION_OUT_SLACK 4096

/* Lines longer than this (line_length_limit) are handed over in LE_NONE pieces. */
#define SESSION_LINE_MAX 2048

/*
 * session_flush_due - must the output go now?  Replies wait for the next read
 * (pipelining), unless an error sleep is among them (Postfix flushes after each) or
 * they fill SESSION_OUT_MAX.  The shell asks after every session_line()/_bytes().
 */
int session_flush_due(const struct session *);

#endif
