/*
 * file.h — read an operator's whole file (passwords, ACLs) with a bound.
 *
 * Pure apart from the file system; any thread.
 */
#ifndef STARLING_FILE_H
#define STARLING_FILE_H

#include <stddef.h>

/* Read the regular file at path, of at most max bytes, into a malloc'd
 * buffer with a NUL after its last byte (*text; *len counts the bytes
 * without the NUL). Reads to end of file rather than trusting its size, so
 * a file that grows while it is read is still refused past max. Returns 0,
 * or -1 with *text NULL and err naming the path and the reason ("cannot
 * open: ...", "not a regular file", "N bytes, more than the limit ..."). */
int file_read_all(const char *path, size_t max, char **text, size_t *len, char *err,
                  size_t err_len);

#endif
