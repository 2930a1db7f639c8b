/*
 * persist_cmd.c — `starling backup DIR`, `starling export FILE`, `starling
 * import FILE` (core/persist/README.md "Backups, export and import"), and
 * the lock a running node holds on its data_dir.
 *
 * backup: a copy of a running node's journal, made without stopping it.
 *   Every file is append-only or written whole before older ones are
 *   deleted, and recovery merges files by stamp and cuts a torn tail, so
 *   copying each file up to its size at that moment gives a journal that
 *   recovers to a state the node had (each value one it held). A file
 *   that vanishes between the listing and its copy (a compaction deleted
 *   it, its snapshot being newer than the listing) restarts the copy.
 * export: the state as JSON lines, one object per line (the format below),
 *   readable by any tool and by any later version: MQTT's own encoding for
 *   each message body, base64 in JSON.
 * import: an export into the data_dir of a node that is not running, as a
 *   snapshot file its next start recovers; imported values are newer than
 *   anything already there.
 *
 * Export format, version 1 (one JSON object per line, UTF-8):
 *   {"format":"starling-export","version":1,"exported_at_ms":N}
 *   {"kind":"retained","topic":"a/b","protocol":5,"qos":1,"published_ms":N,
 *    "expires_at_ms":N,"body":"BASE64"}
 * protocol: 3, 4 or 5 (MQTT 3.1, 3.1.1, 5.0); body: the PUBLISH packet's
 * variable header and payload as that protocol encodes them at that qos
 * (topic name, a packet identifier when qos > 0, for 5.0 the properties,
 * then the payload), as the publisher sent it; expires_at_ms: wall-clock
 * ms, 0 = never.
 *   {"kind":"session","client_id":"c1","recorded_ms":N,"state":"BASE64"}
 * A persistent session: state is its encoded form (session/codec.c, whose
 * first byte is that format's version: client id, user name, protocol
 * level, expiry, will, subscriptions with their options, packet id
 * counter; no messages), its remaining times (expiry, will delay) counted
 * from recorded_ms, wall-clock.
 *   {"kind":"message","client_id":"c1","topic":"a/b","protocol":5,"qos":2,
 *    "retain":0,"expires_at_ms":N,"deliver_qos":1,"deliver_flags":0,
 *    "sub_id":0,"packet_id":0,"body":"BASE64"}
 * A QoS 1/2 message the session of client_id (on a line before it) holds,
 * in the order it gets them: protocol, qos, retain and body as the
 * publisher sent it (as for "retained"); deliver_qos (1 or 2),
 * deliver_flags (1 retain as published, 2 through a shared subscription)
 * and sub_id as the session gets it; packet_id: for a QoS 2 delivery that
 * went out, the id it went out under (0 otherwise).
 *   {"kind":"pubrel","client_id":"c1","packet_id":N}
 * A PUBREL the session owes (its client sent PUBREC, not yet PUBCOMP).
 *   {"kind":"inbound_qos2","client_id":"c1","packet_id":N}
 * A QoS 2 packet id of the session's client awaiting its PUBREL.
 * Unknown keys are ignored; lines of unknown kinds are skipped and counted.
 */
#include "persist/persist_cmd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/hash.h"
#include "persist/journal.h"
#include "persist/record.h"
#include "persist/recover.h"
#include "session/session.h"

#define BACKUP_TRIES    10
#define EXPORT_LINE_MAX (400u << 20) /* a line: base64 of the largest body and change */

/* ---- the lock ------------------------------------------------------------ */

int persist_lock(const char *data_dir, char *err, size_t err_len)
{
	char path[CONFIG_PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/LOCK", data_dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		snprintf(err, err_len, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		char pid[32] = "";
		ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		snprintf(err, err_len, "data_dir %s is in use by another starling%s%s%s", data_dir,
		         pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
		close(fd);
		return -1;
	}
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		/* the pid is a courtesy for the message above; the lock holds */
	}
	return fd;
}

/* ---- backup -------------------------------------------------------------- */

static bool journal_file(const char *name)
{
	unsigned w;
	uint64_t seg;
	enum journal_file k;
	return journal_name_parse(name, &w, &seg, &k) == 0; /* segments, snapshots, marks */
}

/* Copy from's first size bytes (as it is now) to to. 0, 1 when from is
 * gone, -1 on an error (err). */
static int copy_file(const char *from, const char *to, uint64_t *bytes, char *err, size_t err_len)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0 && errno == ENOENT)
		return 1;
	if (in < 0) {
		snprintf(err, err_len, "cannot read %s: %s", from, strerror(errno));
		return -1;
	}
	struct stat st;
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (out < 0 || fstat(in, &st) != 0) {
		snprintf(err, err_len, "cannot write %s: %s", to, strerror(errno));
		close(in);
		if (out >= 0)
			close(out);
		return -1;
	}
	static char buf[1 << 20];
	uint64_t left = (uint64_t)st.st_size;
	int rc = 0;
	while (left > 0) {
		ssize_t n = read(in, buf, left < sizeof(buf) ? left : sizeof(buf));
		if (n <= 0)
			break; /* shorter than it was: the copy is what there was */
		if (write(out, buf, (size_t)n) != n) {
			snprintf(err, err_len, "cannot write %s: %s", to, strerror(errno));
			rc = -1;
			break;
		}
		left -= (uint64_t)n;
		*bytes += (uint64_t)n;
	}
	if (rc == 0 && fsync(out) != 0) {
		snprintf(err, err_len, "cannot flush %s: %s", to, strerror(errno));
		rc = -1;
	}
	close(in);
	close(out);
	return rc;
}

static void count_put(void *ctx, struct msg *m)
{
	(*(uint64_t *)ctx)++;
	msg_unref(m);
}

static int backup(const struct config *cfg, const char *dir)
{
	char err[1200]; /* two paths and a reason */
	char src[CONFIG_PATH_MAX + 16], dst[CONFIG_PATH_MAX + 16];
	snprintf(src, sizeof(src), "%s/journal", cfg->data_dir);
	snprintf(dst, sizeof(dst), "%s/journal", dir);
	if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
		fprintf(stderr, "starling backup: cannot create %s: %s\n", dir, strerror(errno));
		return 1;
	}
	if (mkdir(dst, 0750) != 0) {
		fprintf(stderr, "starling backup: cannot create %s: %s%s\n", dst, strerror(errno),
		        errno == EEXIST ? " (back up into a new directory)" : "");
		return 1;
	}
	uint64_t files = 0, bytes = 0;
	for (int attempt = 1;; attempt++) {
		DIR *d = opendir(src);
		if (!d) {
			fprintf(stderr, "starling backup: cannot read %s: %s\n", src,
			        strerror(errno));
			return 1;
		}
		struct dirent *de;
		bool vanished = false;
		files = bytes = 0;
		int rc = 0;
		while (rc == 0 && (de = readdir(d))) {
			if (!journal_file(de->d_name))
				continue;
			char from[sizeof(src) + 300], to[sizeof(dst) + 300];
			snprintf(from, sizeof(from), "%s/%s", src, de->d_name);
			snprintf(to, sizeof(to), "%s/%s", dst, de->d_name);
			rc = copy_file(from, to, &bytes, err, sizeof(err));
			if (rc == 1) {
				vanished = true;
				rc = 0;
			} else if (rc == 0) {
				files++;
			}
		}
		closedir(d);
		if (rc != 0) {
			fprintf(stderr, "starling backup: %s\n", err);
			return 1;
		}
		if (!vanished)
			break;
		if (attempt == BACKUP_TRIES) {
			fprintf(stderr,
			        "starling backup: files kept vanishing under the copy (a "
			        "compaction every moment?); tried %d times\n",
			        attempt);
			return 1;
		}
		/* A compaction removed a file we listed: start again, clean. */
		DIR *x = opendir(dst);
		while (x && (de = readdir(x)))
			if (journal_file(de->d_name))
				unlinkat(dirfd(x), de->d_name, 0);
		if (x)
			closedir(x);
	}
	int dfd = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	/* Read the copy as a start would (cutting what a write in progress
	 * left torn): it must recover. */
	struct config b = *cfg;
	snprintf(b.data_dir, sizeof(b.data_dir), "%s", dir);
	struct recover_result r;
	uint64_t retained = 0;
	if (recover_run(&b, clock_now_ms(), count_put, NULL, NULL, &retained, &r, err,
	                sizeof(err)) != 0) {
		fprintf(stderr, "starling backup: the copy does not read back: %s\n", err);
		return 1;
	}
	printf("backup of %s in %s: %llu files, %llu bytes; it holds %llu retained messages. "
	       "Start a node on it with --data-dir=%s (or copy %s into a data_dir).\n",
	       src, dst, (unsigned long long)files, (unsigned long long)bytes,
	       (unsigned long long)retained, dir, dst);
	return 0;
}

/* ---- export -------------------------------------------------------------- */

struct exporter {
	FILE *out;
	uint64_t now_ms, now_wall, count, sessions, messages;
	char **cids; /* the exported sessions' client ids, by the slot their messages name */
	size_t cids_len, cids_cap;
	bool failed;
};

static void json_string(FILE *f, const uint8_t *p, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* The message's body, base64, and its expiry on the wall clock (0: never). */
static char *export_body(const struct exporter *e, const struct msg *m, uint64_t *expires)
{
	/* The body was copied whole behind the topic (msg.c). */
	const uint8_t *body = m->data + m->pub.topic.len;
	size_t body_len = m->size_bytes - sizeof(*m) - m->pub.topic.len;
	char *b64 = malloc(4 * ((body_len + 2) / 3) + 1);
	if (b64)
		EVP_EncodeBlock((unsigned char *)b64, body, (int)body_len);
	*expires = 0;
	if (m->expires_at_ms)
		*expires =
		    e->now_wall + (m->expires_at_ms > e->now_ms ? m->expires_at_ms - e->now_ms : 0);
	return b64;
}

static void export_one(void *ctx, struct msg *m)
{
	struct exporter *e = ctx;
	uint64_t expires;
	char *b64 = export_body(e, m, &expires);
	if (!b64) {
		e->failed = true;
		msg_unref(m);
		return;
	}
	fputs("{\"kind\":\"retained\",\"topic\":", e->out);
	json_string(e->out, m->pub.topic.ptr, m->pub.topic.len);
	fprintf(e->out,
	        ",\"protocol\":%u,\"qos\":%u,\"published_ms\":%llu,\"expires_at_ms\":%llu,"
	        "\"body\":\"%s\"}\n",
	        m->version, m->pub.qos, (unsigned long long)m->wall_ms, (unsigned long long)expires,
	        b64);
	e->count++;
	free(b64);
	msg_unref(m);
}

/* A session's message, a PUBREL it owes or an inbound QoS 2 id it awaits
 * PUBREL for (recover.h: recover_message_fn), after its session's line. */
static void export_message(void *ctx, struct sess_id where, struct msg *m, uint8_t qos,
                           uint8_t flags, uint32_t sub_id, uint16_t pid)
{
	struct exporter *e = ctx;
	if (where.slot >= e->cids_len) {
		if (m)
			msg_unref(m);
		return;
	}
	const char *cid = e->cids[where.slot];
	if (!m) {
		fprintf(e->out,
		        "{\"kind\":\"%s\",\"client_id\":", qos == 2 ? "pubrel" : "inbound_qos2");
		json_string(e->out, (const uint8_t *)cid, strlen(cid));
		fprintf(e->out, ",\"packet_id\":%u}\n", pid);
		return;
	}
	uint64_t expires;
	char *b64 = export_body(e, m, &expires);
	if (!b64) {
		e->failed = true;
		msg_unref(m);
		return;
	}
	fputs("{\"kind\":\"message\",\"client_id\":", e->out);
	json_string(e->out, (const uint8_t *)cid, strlen(cid));
	fputs(",\"topic\":", e->out);
	json_string(e->out, m->pub.topic.ptr, m->pub.topic.len);
	fprintf(e->out,
	        ",\"protocol\":%u,\"qos\":%u,\"retain\":%u,\"expires_at_ms\":%llu,"
	        "\"deliver_qos\":%u,\"deliver_flags\":%u,\"sub_id\":%u,\"packet_id\":%u,"
	        "\"body\":\"%s\"}\n",
	        m->version, m->pub.qos, m->pub.retain, (unsigned long long)expires, qos, flags,
	        sub_id, pid, b64);
	e->messages++;
	free(b64);
	msg_unref(m);
}

static int export_session(void *ctx, const uint8_t *cid, size_t cid_len, const uint8_t *enc,
                          size_t len, uint64_t wall_ms, struct sess_id *where)
{
	struct exporter *e = ctx;
	if (e->cids_len == e->cids_cap) {
		size_t cap = e->cids_cap ? e->cids_cap * 2 : 256;
		char **x = realloc(e->cids, cap * sizeof(*x));
		if (!x) {
			e->failed = true;
			return -1;
		}
		e->cids = x;
		e->cids_cap = cap;
	}
	char *b64 = malloc(4 * ((len + 2) / 3) + 1);
	char *copy = strndup((const char *)cid, cid_len);
	if (!b64 || !copy) {
		free(b64);
		free(copy);
		e->failed = true;
		return -1;
	}
	/* Its messages name it by this slot (export_message). */
	*where = (struct sess_id){(uint32_t)e->cids_len, 1, 0};
	e->cids[e->cids_len++] = copy;
	EVP_EncodeBlock((unsigned char *)b64, enc, (int)len);
	fputs("{\"kind\":\"session\",\"client_id\":", e->out);
	json_string(e->out, cid, cid_len);
	fprintf(e->out, ",\"recorded_ms\":%llu,\"state\":\"%s\"}\n", (unsigned long long)wall_ms,
	        b64);
	free(b64);
	e->sessions++;
	return 0;
}

static int export_state(const struct config *cfg, const char *file)
{
	char err[1200]; /* two paths and a reason */
	FILE *out = strcmp(file, "-") ? fopen(file, "wx") : stdout;
	if (!out) {
		fprintf(stderr, "starling export: cannot create %s: %s%s\n", file, strerror(errno),
		        errno == EEXIST ? " (it exists: export into a new file)" : "");
		return 1;
	}
	struct exporter e = {.out = out, .now_ms = clock_now_ms(), .now_wall = clock_wall_ms()};
	fprintf(out, "{\"format\":\"starling-export\",\"version\":1,\"exported_at_ms\":%llu}\n",
	        (unsigned long long)e.now_wall);
	struct recover_result r;
	int rc = recover_read(cfg, e.now_ms, export_one, export_session, export_message, &e, &r,
	                      err, sizeof(err));
	for (size_t i = 0; i < e.cids_len; i++)
		free(e.cids[i]);
	free(e.cids);
	if (rc != 0 || e.failed || fflush(out) != 0 || (out != stdout && fsync(fileno(out)) != 0)) {
		fprintf(stderr, "starling export: %s\n",
		        rc ? err : "out of memory or cannot write");
		if (out != stdout)
			fclose(out);
		return 1;
	}
	if (out != stdout)
		fclose(out);
	fprintf(stderr,
	        "starling export: %llu sessions with %llu queued messages and %llu retained "
	        "messages from %s/journal to %s\n",
	        (unsigned long long)e.sessions, (unsigned long long)e.messages,
	        (unsigned long long)e.count, cfg->data_dir, file);
	return 0;
}

/* ---- import -------------------------------------------------------------- */

/* A flat JSON object's members, strings unescaped in place. */
struct member {
	const char *key;
	char *str; /* a string value, NUL-terminated; NULL for a number */
	size_t str_len;
	unsigned long long num;
};

#define MEMBERS_MAX 16

static int hexval(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
	                              : -1;
}

/* Unescape the string at *p (after its opening quote) in place; *p moves
 * past the closing quote. NULL when malformed. */
static char *json_unescape(char **p, size_t *len)
{
	char *s = *p, *w = *p;
	for (;;) {
		char c = *s++;
		if (c == '\0')
			return NULL;
		if (c == '"')
			break;
		if (c != '\\') {
			*w++ = c;
			continue;
		}
		c = *s++;
		if (c == 'u') {
			int v = 0;
			for (int i = 0; i < 4; i++) {
				int h = hexval(s[i]);
				if (h < 0)
					return NULL;
				v = v * 16 + h;
			}
			s += 4;
			if (v >= 0x80)
				return NULL; /* our exports escape only control characters */
			*w++ = (char)v;
		} else if (c == '"' || c == '\\' || c == '/') {
			*w++ = c;
		} else if (c == 'n' || c == 't' || c == 'r' || c == 'b' || c == 'f') {
			*w++ = c == 'n'   ? '\n'
			       : c == 't' ? '\t'
			       : c == 'r' ? '\r'
			       : c == 'b' ? '\b'
			                  : '\f';
		} else {
			return NULL;
		}
	}
	char *start = *p;
	*len = (size_t)(w - start);
	*w = '\0';
	*p = s;
	return start;
}

static void skip_ws(char **p)
{
	while (**p == ' ' || **p == '\t' || **p == '\r' || **p == '\n')
		(*p)++;
}

/* Parse one line's object. The number of members, or -1. */
static int parse_line(char *p, struct member *m)
{
	int n = 0;
	skip_ws(&p);
	if (*p++ != '{')
		return -1;
	skip_ws(&p);
	if (*p == '}')
		return 0;
	for (;;) {
		skip_ws(&p);
		if (*p++ != '"' || n == MEMBERS_MAX)
			return -1;
		size_t kl;
		char *key = json_unescape(&p, &kl);
		if (!key)
			return -1;
		skip_ws(&p);
		if (*p++ != ':')
			return -1;
		skip_ws(&p);
		m[n].key = key;
		m[n].str = NULL;
		if (*p == '"') {
			p++;
			m[n].str = json_unescape(&p, &m[n].str_len);
			if (!m[n].str)
				return -1;
		} else if (*p >= '0' && *p <= '9') {
			char *end;
			errno = 0;
			m[n].num = strtoull(p, &end, 10);
			if (errno)
				return -1;
			p = end;
		} else {
			return -1;
		}
		n++;
		skip_ws(&p);
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p != '}')
			return -1;
		p++;
		skip_ws(&p);
		return *p == '\0' ? n : -1;
	}
}

static const struct member *get(const struct member *m, int n, const char *key)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(m[i].key, key))
			return &m[i];
	return NULL;
}

struct snapfile {
	uint8_t *buf;
	size_t len, cap;
	uint64_t lsn;
};

static int snap_room(struct snapfile *s, size_t total);

static int snap_add(struct snapfile *s, const struct msg *m, uint64_t stamp, uint64_t now_ms,
                    uint64_t wall)
{
	size_t total = record_size(rec_retain_set_size(m));
	if (snap_room(s, total) != 0)
		return -1;
	uint8_t *rec = s->buf + s->len;
	rec_retain_set_put(record_payload(rec), m, stamp, now_ms, wall);
	record_seal(rec, total, REC_RETAIN_SET, ++s->lsn, wall);
	s->len += total;
	return 0;
}

/* Room for total more bytes. */
static int snap_room(struct snapfile *s, size_t total)
{
	if (s->len + total <= s->cap)
		return 0;
	size_t cap = s->cap ? s->cap * 2 : 1 << 16;
	while (cap < s->len + total)
		cap *= 2;
	uint8_t *p = realloc(s->buf, cap);
	if (!p)
		return -1;
	s->buf = p;
	s->cap = cap;
	return 0;
}

/* A session of the import: REC_SESS_PLACED at (run, worker 0, slot, 1), the
 * place its messages name. */
static int snap_add_session(struct snapfile *s, const uint8_t *cid, size_t cid_len,
                            const uint8_t *enc, size_t enc_len, uint64_t stamp, uint64_t wall,
                            const struct rec_place *place)
{
	size_t total = record_size(rec_sess_size(cid_len, enc_len, true));
	if (snap_room(s, total) != 0)
		return -1;
	uint8_t *rec = s->buf + s->len;
	rec_sess_put(record_payload(rec), stamp, place, cid, cid_len, enc, enc_len);
	record_seal(rec, total, REC_SESS_PLACED, ++s->lsn, wall);
	s->len += total;
	return 0;
}

/* The import's sessions by client id: the slot of their place. */
struct cid_map {
	struct cid_slot {
		char *cid; /* own copy; NULL: empty */
		uint32_t slot;
	} * e;
	size_t cap, len;
};

static size_t cid_at(const struct cid_map *t, const char *cid)
{
	size_t at = hash_bytes(cid, strlen(cid)) & (t->cap - 1);
	while (t->e[at].cid && strcmp(t->e[at].cid, cid) != 0)
		at = (at + 1) & (t->cap - 1);
	return at;
}

/* The slot of cid, or -1 when the import has no session of that id. */
static long cid_find(const struct cid_map *t, const char *cid)
{
	if (!t->cap)
		return -1;
	size_t at = cid_at(t, cid);
	return t->e[at].cid ? (long)t->e[at].slot : -1;
}

/* cid gets the next slot: 0, or -1 (a second session of one id, or no memory). */
static int cid_add(struct cid_map *t, const char *cid, uint32_t *slot)
{
	if ((t->len + 1) * 2 > t->cap) {
		struct cid_map n = {calloc(t->cap ? t->cap * 2 : 256, sizeof(*t->e)),
		                    t->cap ? t->cap * 2 : 256, t->len};
		if (!n.e)
			return -1;
		for (size_t i = 0; i < t->cap; i++)
			if (t->e[i].cid)
				n.e[cid_at(&n, t->e[i].cid)] = t->e[i];
		free(t->e);
		*t = n;
	}
	size_t at = cid_at(t, cid);
	if (t->e[at].cid || !(t->e[at].cid = strdup(cid)))
		return -1;
	t->e[at].slot = *slot = (uint32_t)t->len++;
	return 0;
}

static void cid_map_free(struct cid_map *t)
{
	for (size_t i = 0; i < t->cap; i++)
		free(t->e[i].cid);
	free(t->e);
}

/* base64 into a malloc'd buffer; its length into *len, or NULL. */
static unsigned char *unbase64(const char *str, size_t str_len, size_t *len)
{
	unsigned char *raw = malloc(str_len / 4 * 3 + 3);
	int n = raw ? EVP_DecodeBlock(raw, (const unsigned char *)str, (int)str_len) : -1;
	/* EVP_DecodeBlock counts the padding's zero bytes in */
	if (n >= 0 && str_len >= 1 && str[str_len - 1] == '=')
		n--;
	if (n >= 0 && str_len >= 2 && str[str_len - 2] == '=')
		n--;
	if (n < 0) {
		free(raw);
		return NULL;
	}
	*len = (size_t)n;
	return raw;
}

/* The message of a "retained" or "message" line: its topic, protocol, qos
 * and body (base64 of the PUBLISH body as sent) rebuilt as the broker
 * decodes a PUBLISH, its expires_at_ms (wall clock) turned monotonic. 0 with
 * *out, 1 it expired (nothing made), -1 not a message this build reads. */
static int import_msg(const struct member *m, int n, bool retain, uint64_t now_ms, uint64_t wall,
                      struct msg **out)
{
	const struct member *topic = get(m, n, "topic"), *proto = get(m, n, "protocol"),
	                    *qos = get(m, n, "qos"), *exp = get(m, n, "expires_at_ms"),
	                    *body = get(m, n, "body");
	*out = NULL;
	if (!topic || !topic->str || topic->str_len == 0 || topic->str_len > UINT16_MAX || !proto ||
	    proto->str || !qos || qos->str || qos->num > 2 || !body || !body->str)
		return -1;
	size_t len;
	unsigned char *raw = unbase64(body->str, body->str_len, &len);
	struct msg *msg =
	    raw ? msg_from_body(
	              raw, len, (uint8_t)proto->num, (uint8_t)qos->num, retain,
	              (struct mqtt_view){(const uint8_t *)topic->str, (uint32_t)topic->str_len},
	              now_ms)
	        : NULL;
	free(raw);
	if (!msg)
		return -1;
	if (exp && !exp->str && exp->num) {
		if (exp->num <= wall) {
			msg_unref(msg);
			return 1;
		}
		msg->expires_at_ms = now_ms + (exp->num - wall);
	}
	*out = msg;
	return 0;
}

/* One "session" line: checked by decoding it as a start would. 0, or -1. */
static int import_session(struct snapfile *s, const struct member *m, int n, uint64_t stamp,
                          uint64_t now_ms, uint64_t run, struct cid_map *cids)
{
	const struct member *cid = get(m, n, "client_id"), *at = get(m, n, "recorded_ms"),
	                    *state = get(m, n, "state");
	if (!cid || !cid->str || cid->str_len == 0 || cid->str_len > UINT16_MAX || !at || at->str ||
	    !state || !state->str)
		return -1;
	size_t len;
	unsigned char *raw = unbase64(state->str, state->str_len, &len);
	if (!raw)
		return -1;
	struct session *sess = session_decode(raw, len, (struct sess_id){1, 1, 0}, now_ms);
	bool ok = sess && sess->client_id_len == cid->str_len &&
	          memcmp(sess->client_id, cid->str, cid->str_len) == 0 && sess->infl_count == 0 &&
	          sess->q_len == 0 && sess->rx_qos2_count == 0;
	session_free(sess);
	uint32_t slot;
	ok = ok && strlen(cid->str) == cid->str_len && cid_add(cids, cid->str, &slot) == 0;
	struct rec_place place = {run, {ok ? slot : 0, 1, 0}};
	int rc = ok ? snap_add_session(s, (const uint8_t *)cid->str, cid->str_len, raw, len, stamp,
	                               at->num, &place)
	            : -1;
	free(raw);
	return rc;
}

/* A packet id's state as a record of `type` (msg_journal.h). */
static int snap_add_packet_id(struct snapfile *s, uint8_t type, const struct rec_release *r,
                              uint64_t wall)
{
	bool with_msg = rec_release_with_msg(type);
	size_t total = record_size(rec_release_size(r->client_id_len, with_msg));
	if (snap_room(s, total) != 0)
		return -1;
	uint8_t *rec = s->buf + s->len;
	rec_release_put(record_payload(rec), r, with_msg);
	record_seal(rec, total, type, ++s->lsn, wall);
	s->len += total;
	return 0;
}

/* One "message", "pubrel" or "inbound_qos2" line of a session imported
 * before it: 0, 1 expired (left out), or -1. *stamps is the next stamp. */
static int import_message(struct snapfile *s, const struct member *m, int n, const char *kind,
                          uint64_t *stamps, uint64_t now_ms, uint64_t wall, uint64_t run,
                          const struct cid_map *cids)
{
	const struct member *cid = get(m, n, "client_id"), *pid = get(m, n, "packet_id");
	long slot =
	    cid && cid->str && strlen(cid->str) == cid->str_len ? cid_find(cids, cid->str) : -1;
	if (slot < 0 || !pid || pid->str || pid->num > UINT16_MAX)
		return -1;
	struct rec_release r = {.pid = (uint16_t)pid->num,
	                        .client_id = (const uint8_t *)cid->str,
	                        .client_id_len = (uint16_t)cid->str_len};
	if (strcmp(kind, "message") != 0) {
		if (r.pid == 0)
			return -1;
		r.stamp = (*stamps)++;
		return snap_add_packet_id(s, !strcmp(kind, "pubrel") ? REC_MSG_REL : REC_IN_QOS2,
		                          &r, wall);
	}
	const struct member *retain = get(m, n, "retain"), *dq = get(m, n, "deliver_qos"),
	                    *df = get(m, n, "deliver_flags"), *sub = get(m, n, "sub_id");
	if (!retain || retain->str || !dq || dq->str || dq->num < 1 || dq->num > 2 || !df ||
	    df->str || (df->num & ~3ull) || !sub || sub->str || sub->num > 0x0FFFFFFF)
		return -1;
	struct msg *msg;
	int got = import_msg(m, n, retain->num != 0, now_ms, wall, &msg);
	if (got != 0)
		return got;
	struct rec_msg_target t = {.id = {(uint32_t)slot, 1, 0},
	                           .sub_id = (uint32_t)sub->num,
	                           .qos = (uint8_t)dq->num,
	                           .flags = (uint8_t)df->num};
	uint64_t stamp = (*stamps)++;
	size_t total = record_size(rec_msg_size(msg, 1));
	int rc = snap_room(s, total);
	if (rc == 0) {
		uint8_t *rec = s->buf + s->len;
		rec_msg_put(record_payload(rec), msg, stamp, run, &t, 1, now_ms, wall);
		record_seal(rec, total, REC_MSG, ++s->lsn, wall);
		s->len += total;
	}
	msg_unref(msg);
	if (rc == 0 && r.pid && t.qos == 2) { /* it went out under that id: again so */
		r.stamp = (*stamps)++;
		r.msg_stamp = stamp;
		rc = snap_add_packet_id(s, REC_MSG_SENT, &r, wall);
	}
	return rc;
}

static void discard_put(void *ctx, struct msg *m)
{
	(void)ctx;
	msg_unref(m);
}

static int import_state(const struct config *cfg, const char *file)
{
	char err[1200]; /* two paths and a reason */
	char dir[CONFIG_PATH_MAX + 16];
	if (journal_dir(cfg, dir, sizeof(dir), err, sizeof(err)) != 0) {
		fprintf(stderr, "starling import: %s\n", err);
		return 1;
	}
	int lock = persist_lock(cfg->data_dir, err, sizeof(err));
	if (lock < 0) {
		fprintf(stderr, "starling import: %s: stop the node first\n", err);
		return 1;
	}
	/* What is there already: imported values must come after it. */
	struct recover_result r;
	uint64_t now_ms = clock_now_ms(), wall = clock_wall_ms();
	if (recover_run(cfg, now_ms, discard_put, NULL, NULL, NULL, &r, err, sizeof(err)) != 0) {
		fprintf(stderr, "starling import: %s\n", err);
		close(lock);
		return 1;
	}
	FILE *in = strcmp(file, "-") ? fopen(file, "r") : stdin;
	if (!in) {
		fprintf(stderr, "starling import: cannot read %s: %s\n", file, strerror(errno));
		close(lock);
		return 1;
	}
	struct snapfile s = {0};
	struct journal_header h = {.version = JOURNAL_VERSION,
	                           .kind = JOURNAL_KIND_SNAPSHOT,
	                           .segment = r.next_segment,
	                           .created_wall_ms = wall};
	s.cap = 1 << 16;
	s.buf = malloc(s.cap);
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	uint64_t lineno = 0, count = 0, skipped = 0, expired = 0, stamp = r.next_stamp;
	uint64_t sessions = 0, messages = 0, sess_stamp = r.next_sess_stamp;
	struct cid_map cids = {0};
	int rc = s.buf ? 0 : 1;
	if (s.buf) {
		journal_header_put(s.buf, &h);
		s.len = JOURNAL_HEADER_BYTES;
	}
	while (rc == 0 && (got = getline(&line, &cap, in)) > 0) {
		lineno++;
		if ((size_t)got > EXPORT_LINE_MAX) {
			fprintf(stderr, "starling import: %s:%llu: line too long\n", file,
			        (unsigned long long)lineno);
			rc = 1;
			break;
		}
		struct member m[MEMBERS_MAX];
		int n = parse_line(line, m);
		const struct member *kind = n > 0 ? get(m, n, "kind") : NULL;
		if (lineno == 1) {
			const struct member *f = n > 0 ? get(m, n, "format") : NULL;
			const struct member *v = n > 0 ? get(m, n, "version") : NULL;
			if (!f || !f->str || strcmp(f->str, "starling-export") || !v || v->str ||
			    v->num != 1) {
				fprintf(stderr,
				        "starling import: %s:1: not a starling export of version "
				        "1\n",
				        file);
				rc = 1;
			}
			continue;
		}
		if (n < 0 || !kind || !kind->str) {
			fprintf(stderr, "starling import: %s:%llu: not a JSON object with a kind\n",
			        file, (unsigned long long)lineno);
			rc = 1;
			break;
		}
		if (!strcmp(kind->str, "message") || !strcmp(kind->str, "pubrel") ||
		    !strcmp(kind->str, "inbound_qos2")) {
			int done = import_message(&s, m, n, kind->str, &sess_stamp, now_ms, wall,
			                          r.next_run, &cids);
			if (done < 0) {
				fprintf(
				    stderr,
				    "starling import: %s:%llu: not a %s this build reads (after "
				    "its session's line)\n",
				    file, (unsigned long long)lineno, kind->str);
				rc = 1;
				break;
			}
			expired += done == 1;
			messages += done == 0 && !strcmp(kind->str, "message");
			continue;
		}
		if (!strcmp(kind->str, "session")) {
			if (import_session(&s, m, n, sess_stamp++, now_ms, r.next_run, &cids) !=
			    0) {
				fprintf(stderr,
				        "starling import: %s:%llu: not a session this build reads "
				        "(client_id, recorded_ms, state; one per client id)\n",
				        file, (unsigned long long)lineno);
				rc = 1;
				break;
			}
			sessions++;
			continue;
		}
		if (strcmp(kind->str, "retained")) {
			skipped++; /* a later version's kind */
			continue;
		}
		struct msg *msg;
		int made = import_msg(m, n, true, now_ms, wall, &msg);
		if (made < 0) {
			fprintf(stderr,
			        "starling import: %s:%llu: not a retained message this build "
			        "reads (topic, protocol, qos, body)\n",
			        file, (unsigned long long)lineno);
			rc = 1;
			break;
		}
		if (made == 1) {
			expired++;
			continue;
		}
		const struct member *pub = get(m, n, "published_ms");
		msg->wall_ms = pub && !pub->str ? pub->num : wall;
		if (snap_add(&s, msg, stamp++, now_ms, wall) != 0)
			rc = 1;
		msg_unref(msg);
		count++;
	}
	free(line);
	if (in != stdin)
		fclose(in);
	if (rc == 0 && lineno == 0) {
		fprintf(stderr, "starling import: %s is empty\n", file);
		rc = 1;
	}
	char path[sizeof(dir) + 48];
	snprintf(path, sizeof(path), "%s/w000-%016llx.snap", dir,
	         (unsigned long long)r.next_segment);
	if (rc == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || write(fd, s.buf, s.len) != (ssize_t)s.len || fsync(fd) != 0 ||
		    dfd < 0 || fsync(dfd) != 0) {
			fprintf(stderr, "starling import: cannot write %s: %s\n", path,
			        strerror(errno));
			rc = 1;
			if (fd >= 0)
				unlink(path);
		}
		if (fd >= 0)
			close(fd);
		if (dfd >= 0)
			close(dfd);
	}
	free(s.buf);
	cid_map_free(&cids);
	close(lock);
	if (rc == 0)
		fprintf(
		    stderr,
		    "starling import: %llu sessions with %llu queued messages and %llu retained "
		    "messages from %s into %s (%llu expired left out, %llu lines of other kinds "
		    "skipped); the node recovers them at its next start\n",
		    (unsigned long long)sessions, (unsigned long long)messages,
		    (unsigned long long)count, file, path, (unsigned long long)expired,
		    (unsigned long long)skipped);
	return rc;
}

int persist_cmd(const char *cmd, const struct config *cfg, const char *arg)
{
	if (!strcmp(cmd, "backup"))
		return backup(cfg, arg);
	if (!strcmp(cmd, "export"))
		return export_state(cfg, arg);
	return import_state(cfg, arg);
}
