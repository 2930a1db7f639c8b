/*
 * scan.c — journal_scan (record.h): a journal file's header and records in
 * order, up to the first one that is torn or corrupt, reporting where the
 * good part ends. The only I/O of persist/'s record code: open, fstat and
 * pread on the file it is given, on the calling thread (recovery's).
 *
 * Memory is bounded by the largest record, not the file: one buffer of
 * CHUNK bytes, grown to hold a record when one is larger (at most
 * RECORD_HEAD + RECORD_LEN_MAX), refilled from where the unread bytes
 * begin. The end of the file is where pread returns 0, not fstat's size,
 * so a tail that changed after the fstat is still judged by its bytes.
 */
#include "persist/record.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/errmsg.h"

#define CHUNK (64u << 10) /* bytes read at a time while records are small */

static const char journal_magic[8] = {'S', 'T', 'R', 'L', 'J', 'N', 'L', '1'};

/* pread until n bytes or the end of the file: the bytes read, or -1. */
static ssize_t read_at(int fd, uint8_t *p, size_t n, uint64_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, p + got, n - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Say why the record at off (with n bytes of it at p) stopped the scan. */
static void explain(struct scan_result *res, const char *path, enum record_result rr,
                    const uint8_t *p, size_t n, uint64_t off)
{
	if (rr == RECORD_TORN && n < 4)
		seterr(res->err, sizeof(res->err),
		       "%s: torn record at offset %" PRIu64 ": %zu bytes", path, off, n);
	else if (rr == RECORD_TORN)
		seterr(res->err, sizeof(res->err),
		       "%s: torn record at offset %" PRIu64 ": %zu of %zu bytes", path, off, n,
		       (size_t)RECORD_HEAD + be32(p));
	else if (be32(p) < RECORD_FIXED || be32(p) > RECORD_LEN_MAX)
		seterr(res->err, sizeof(res->err),
		       "%s: corrupt record at offset %" PRIu64 ": length %" PRIu32 " out of bounds",
		       path, off, be32(p));
	else
		seterr(res->err, sizeof(res->err),
		       "%s: corrupt record at offset %" PRIu64 ": checksum mismatch", path, off);
}

int journal_scan(const char *path, scan_fn fn, void *ctx, struct scan_result *res)
{
	memset(res, 0, sizeof(*res));
	res->stop = RECORD_OK;
	res->good_end = JOURNAL_HEADER_BYTES;
	uint8_t *buf = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		seterr(res->err, sizeof(res->err), "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		seterr(res->err, sizeof(res->err), "%s: cannot stat: %s", path, strerror(errno));
		goto fail;
	}
	res->file_size = (uint64_t)st.st_size;

	uint8_t head[JOURNAL_HEADER_BYTES];
	ssize_t got = read_at(fd, head, sizeof(head), 0);
	if (got < 0) {
		seterr(res->err, sizeof(res->err), "%s: cannot read: %s", path, strerror(errno));
		goto fail;
	}
	if (got < JOURNAL_HEADER_BYTES) {
		seterr(res->err, sizeof(res->err),
		       "%s: %zd bytes, shorter than a journal header (%d)", path, got,
		       JOURNAL_HEADER_BYTES);
		goto fail;
	}
	if (memcmp(head, journal_magic, sizeof(journal_magic)) != 0) {
		seterr(res->err, sizeof(res->err), "%s: not a journal file (magic)", path);
		goto fail;
	}
	if (journal_header_get(head, sizeof(head), &res->header) != 0) {
		seterr(res->err, sizeof(res->err),
		       "%s: bad journal header (checksum, or a version this build does not read)",
		       path);
		goto fail;
	}

	size_t cap = CHUNK;
	buf = malloc(cap);
	if (!buf) {
		seterr(res->err, sizeof(res->err), "%s: out of memory", path);
		goto fail;
	}
	uint64_t base = JOURNAL_HEADER_BYTES; /* file offset of buf[0] */
	size_t have = 0, pos = 0;             /* bytes in buf; where the next record starts */
	bool eof = false;
	for (;;) {
		struct record r;
		size_t left = have - pos;
		enum record_result rr = record_read(buf + pos, left, &r);
		if (rr == RECORD_TORN && !eof) {
			/* Keep the unread bytes, make room for the whole record
			 * (its length is known once 4 bytes are), read more. */
			size_t need =
			    left >= 4 ? RECORD_HEAD + (size_t)be32(buf + pos) : RECORD_HEAD;
			memmove(buf, buf + pos, left);
			base += pos;
			have = left;
			pos = 0;
			if (need > cap) {
				size_t grown = (need + CHUNK - 1) / CHUNK * CHUNK;
				uint8_t *b = realloc(buf, grown);
				if (!b) {
					seterr(res->err, sizeof(res->err),
					       "%s: out of memory for a record of %zu bytes", path,
					       need);
					goto fail;
				}
				buf = b;
				cap = grown;
			}
			ssize_t n = read_at(fd, buf + have, cap - have, base + have);
			if (n < 0) {
				seterr(res->err, sizeof(res->err), "%s: cannot read: %s", path,
				       strerror(errno));
				goto fail;
			}
			eof = (size_t)n < cap - have;
			have += (size_t)n;
			continue;
		}
		if (rr == RECORD_TORN && left == 0)
			break; /* a clean end */
		uint64_t off = base + pos;
		if (rr != RECORD_OK) {
			res->stop = rr;
			explain(res, path, rr, buf + pos, left, off);
			break;
		}
		if (res->records > 0 && r.lsn <= res->last_lsn) {
			res->stop = RECORD_CORRUPT;
			seterr(res->err, sizeof(res->err),
			       "%s: record at offset %" PRIu64 ": lsn %" PRIu64
			       " not above the one before (%" PRIu64 ")",
			       path, off, r.lsn, res->last_lsn);
			break;
		}
		if (fn && fn(ctx, &r, off) != 0) {
			res->stop = RECORD_CORRUPT;
			if (res->err[0] == '\0')
				seterr(res->err, sizeof(res->err),
				       "%s: record at offset %" PRIu64 " (lsn %" PRIu64 ") refused",
				       path, off, r.lsn);
			break;
		}
		res->records++;
		res->last_lsn = r.lsn;
		pos += r.total;
		res->good_end = base + pos;
	}
	free(buf);
	close(fd);
	return 0;
fail:
	free(buf);
	close(fd);
	return -1;
}
