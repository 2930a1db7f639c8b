/*
 * file.c — bounded whole-file reads for the files an operator names.
 *
 * The buffer starts at the size fstat gives plus one byte, so the common
 * case is one allocation and two reads (the second sees end of file); the
 * spare byte tells "exactly max" from "grew past max".
 */
#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/errmsg.h"

/* " (64 MiB)" after a limit of whole mebibytes, so operators need not count digits. */
static void mib_suffix(char *out, size_t cap, size_t max)
{
	out[0] = '\0';
	if (max >= (1u << 20) && (max & ((1u << 20) - 1)) == 0)
		snprintf(out, cap, " (%zu MiB)", max >> 20);
}

int file_read_all(const char *path, size_t max, char **text, size_t *len, char *err, size_t err_len)
{
	char mib[32];
	mib_suffix(mib, sizeof(mib), max);
	*text = NULL;
	*len = 0;
	char *buf = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		seterr(err, err_len, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		seterr(err, err_len, "%s: cannot stat: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		seterr(err, err_len, "%s: not a regular file", path);
		goto fail;
	}
	if ((uint64_t)st.st_size > max) {
		seterr(err, err_len, "%s: %llu bytes, more than the limit of %zu%s", path,
		       (unsigned long long)st.st_size, max, mib);
		goto fail;
	}
	size_t cap = (size_t)st.st_size + 1, used = 0; /* cap excludes the NUL's byte */
	buf = malloc(cap + 1);
	if (buf == NULL) {
		seterr(err, err_len, "%s: out of memory", path);
		goto fail;
	}
	for (;;) {
		if (used == cap) {
			if (cap > max)
				break; /* max + 1 bytes read: refused below */
			size_t ncap = cap * 2 < max + 1 ? cap * 2 : max + 1;
			char *nb = realloc(buf, ncap + 1);
			if (nb == NULL) {
				seterr(err, err_len, "%s: out of memory", path);
				goto fail;
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t n = read(fd, buf + used, cap - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			seterr(err, err_len, "%s: read error: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	if (used > max) {
		seterr(err, err_len, "%s: more than the limit of %zu bytes%s", path, max, mib);
		goto fail;
	}
	close(fd);
	buf[used] = '\0';
	*text = buf;
	*len = used;
	return 0;
fail:
	free(buf);
	close(fd);
	return -1;
}
