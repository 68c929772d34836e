/*
 * persona.h - what a decky may vary, and the process settings beside it: one table,
 * filled from the built-in Postfix defaults, then a JSON persona file, then the
 * environment (SMTP_<NAME>), then options (--name=value).
 */
#ifndef PERSONA_H
#define PERSONA_H

#include <stdio.h>

#include "session.h"

#define WEAK_MAX	4096	/* credentials in an auth-weak-file */

/* where a setting's value came from; the sources apply in this order */
enum persona_source {
	PS_DEFAULT,		/* built in, or derived from the machine */
	PS_FILE,		/* the persona file */
	PS_ENV,			/* SMTP_<NAME> */
	PS_OPTION		/* --name=value */
};

#define PERSONA_SETTINGS_MAX	32	/* room in source[] (persona.c checks) */
#define PERSONA_SOURCES_MAX	768	/* "name=source ..." of every setting, and more */
#define PERSONA_UNKNOWN_MAX	256	/* names of unknown SMTP_ variables, space-separated */

struct persona {
	/* the persona */
	char *hostname;			/* NULL: the machine's host name */
	char *banner;			/* NULL: "<hostname> ESMTP Postfix (Debian/GNU)" */
	char *ehlo_keywords;		/* names, in order: SIZE and AUTH get their values */
	char *auth_mechanisms;		/* offered: PLAIN LOGIN CRAM-MD5 */
	int auth_policy;		/* auth-policy: enum auth_policy (session.h) */
	char *auth_weak_file;		/* the operator's weak credentials, "user:password" lines */
	unsigned long long auth_succeed_after;	/* this attempt of a session succeeds; 0: none */
	unsigned long long auth_failure_delay;	/* ms, Dovecot's auth_failure_delay; 0: no waits */
	int relay_open;			/* relay: open (1) or deny (0) */
	unsigned long long size_limit;
	unsigned long long recipient_limit;
	unsigned long long soft_errors, hard_errors;
	unsigned long long timeout;	/* seconds */
	unsigned long long session_time;	/* seconds */
	unsigned long long session_bytes;
	unsigned long long event_burst;		/* events a session logs before pacing */
	unsigned long long event_rate;		/* events a second after that */
	unsigned long long error_sleep;	/* milliseconds */
	unsigned long long greeting_min, greeting_max;	/* milliseconds */
	char *spool;			/* NULL: $STATE_DIRECTORY, else /var/lib/decky-smtpd */
	unsigned long long spool_budget;	/* bytes; 0: none */
	char *tls_cert, *tls_key;	/* NULL: <spool>/tls/cert.pem, key.pem (made at first use) */
	unsigned long long tls_ticket_period;	/* seconds a ticket key encrypts */
	/* the process */
	char *log;
	char *fallback_log;
	char *persona;			/* the file these came from, if any */
	unsigned char source[PERSONA_SETTINGS_MAX];	/* enum persona_source, per setting */
};

/* persona_defaults - the built-in stock Debian 12 Postfix 3.7 */
void persona_defaults(struct persona *);
/* persona_free - the strings the settings own */
void persona_free(struct persona *);
/* persona_set - one setting by name from text, from a source; 0, or -1 with a reason in err */
int persona_set(struct persona *, enum persona_source, const char *name, const char *value,
    char *err, size_t errsize);
/* persona_file - a JSON object of settings; -1 with "FILE:line:col: reason" in err */
int persona_file(struct persona *, const char *path, char *err, size_t errsize);
/* persona_env - every SMTP_<NAME> that is set; a bad one is skipped, -1 and the
 * first in err */
int persona_env(struct persona *, char *err, size_t errsize);
/* persona_sources - "name=source ..." for each setting not at its default (source
 * file, env or option), in table order; "default" when there is none */
void persona_sources(const struct persona *, char *buf, size_t size);
/* persona_unknown - the names of the SMTP_ variables set that are no setting's,
 * space-separated (a name that does not fit is left out), and in hint
 * "VAR: did you mean SMTP_NAME?" for the first that is close to a setting's
 * variable ("" if none is); their count */
int persona_unknown(char *buf, size_t size, char *hint, size_t hintsize);
/* persona_print - the effective settings, one "name = value" a line */
void persona_print(const struct persona *, FILE *);
/* persona_names - the setting names, space-separated, for usage */
void persona_names(FILE *);
/* persona_env_name - "size-limit" -> "SMTP_SIZE_LIMIT" */
void persona_env_name(char *buf, size_t size, const char *name);

/* persona_weak - the credentials of an auth-weak-file ("user:password" lines) */
int persona_weak(const char *path, struct cred **list, size_t *n, char *err, size_t errsize);

#endif
