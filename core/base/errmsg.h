/*
 * errmsg.h — one-line error messages written into a caller's buffer, the
 * way every loader here reports ("path:7: key: why"). Any thread.
 */
#ifndef STARLING_ERRMSG_H
#define STARLING_ERRMSG_H

#include <stddef.h>

/* snprintf into err, tolerating err == NULL or err_len == 0. */
__attribute__((format(printf, 3, 4))) void seterr(char *err, size_t err_len, const char *fmt, ...);

#endif
