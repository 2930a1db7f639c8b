/*
 * check.c — what CHECK does when an invariant does not hold: one line on
 * stderr (not through log.c, whose state may be what broke) and abort(), so
 * a core dump or a sanitizer report shows where.
 */
#include "base/check.h"

#include <stdio.h>
#include <stdlib.h>

void check_failed(const char *cond, const char *file, int line, const char *func)
{
	fprintf(stderr, "starling: invariant failed: %s (%s:%d, %s)\n", cond, file, line, func);
	fflush(stderr);
	abort();
}
