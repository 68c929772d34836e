/*
 * makepersona.h - a persona file made from a seed (decky-smtpd --make-persona).
 */
#ifndef MAKEPERSONA_H
#define MAKEPERSONA_H

#include <stdio.h>

#define MAKEPERSONA_SEED_MAX	255	/* bytes of seed */

/* makepersona - write the persona file of seed (1 to 255 bytes) to out; 0, or -1 */
int makepersona(const char *seed, FILE *out);

#endif
