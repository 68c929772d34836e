/*
 * penalty.h - Dovecot's timing of AUTH answers (auth_failure_delay and its anvil's
 * per-address penalty), for the shell to hand the session as ops->auth_wait.
 */
#ifndef PENALTY_H
#define PENALTY_H

#include <stdint.h>

#include "session.h"

#define PENALTY_SUMS	10	/* guesses remembered per address (anvil's CHECKSUM_VALUE_PTR_COUNT) */

/* One address's record in the table file: 128 bytes. */
struct penalty_slot {
	char ident[48];
	uint32_t penalty;
	uint32_t nsum;
	int64_t last_penalty;
	uint32_t sum[PENALTY_SUMS];
	char pad[128 - 48 - 4 - 4 - 8 - 4 * PENALTY_SUMS];
};

struct penalty {
	char path[4200];		/* the table file, "" for none */
	char ident[48];			/* the client address; IPv6 by its /48 */
	unsigned delay_ms;		/* auth_failure_delay; 0: no waits at all */
	unsigned last;			/* the penalty this dialogue began with */
	int fd;				/* the table, open and locked between load and save */
	struct penalty_slot own;	/* this process's copy of the record */
};

/* penalty_init - for the client at addr; the table in dir (NULL: none) */
void penalty_init(struct penalty *, const char *dir, const char *addr, unsigned delay_ms);
/* penalty_wait - struct session_ops' auth_wait (ctx: a struct penalty) */
unsigned penalty_wait(void *ctx, enum auth_moment, unsigned long sum, unsigned after);

#endif
