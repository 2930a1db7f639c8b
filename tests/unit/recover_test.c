/*
 * recover_test.c — the node's state back from its journal
 * (core/persist/recover.c), on journal directories written here byte by
 * byte with record.h's encoders: every record kind replayed across
 * writers whose stamps interleave, against a model applied in stamp order;
 * a compacted journal (a snapshot per owner plus a tail) recovers the same
 * state as the segments it replaces; a tail cut at every offset and a bit
 * flipped at every offset give the state of exactly the records before the
 * damage, and the file is cut there on disk; a missing directory, files
 * with bad headers and names that are not journal files; the sessions'
 * messages (README "Messages"): which session a REC_MSG's places reach,
 * what DONE, REL/COMP, SENT and IN_QOS2/IN_REL leave, against a model
 * too, and a cut or damaged journal of them.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/config.h"
#include "codec.h"
#include "persist/record.h"
#include "persist/recover.h"
#include "rng.h"
#include "route/msg.h"
#include "session/session.h"

/* Criterion's workers end without LeakSanitizer's check at exit, so each
 * test asks for it when its last reference is given back. */
#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif
#ifdef HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

#define NOW 1000000u /* monotonic ms, writing and recovering */

static uint64_t wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- directories --------------------------------------------------------- */

static char tmpdir[64];

static void make_tmpdir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/starling-recover-test-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tree(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char sub[512];
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		struct stat st;
		if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
			remove_tree(sub);
		else
			unlink(sub);
	}
	closedir(d);
	rmdir(path);
}

static void remove_tmpdir(void)
{
	remove_tree(tmpdir);
}

/* No message (nor anything else) left unreachable: every reference recovery
 * handed over, and every one it dropped, was given back. */
static void no_leaks(void)
{
#ifdef HAVE_LSAN
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "leaks: see above");
#endif
}

TestSuite(recover, .init = make_tmpdir, .fini = remove_tmpdir);

/* A data directory under tmpdir (name "" = tmpdir itself) with its journal
 * directory made; its path into out. */
static void data_dir(char *out, size_t cap, const char *name)
{
	if (name[0]) {
		snprintf(out, cap, "%s/%s", tmpdir, name);
		cr_assert_eq(mkdir(out, 0700), 0, "%s: %s", out, strerror(errno));
	} else {
		snprintf(out, cap, "%s", tmpdir);
	}
	char j[300];
	snprintf(j, sizeof(j), "%s/journal", out);
	cr_assert_eq(mkdir(j, 0700), 0, "%s: %s", j, strerror(errno));
}

static void file_path(char *out, size_t cap, const char *dir, const char *name)
{
	snprintf(out, cap, "%s/journal/%s", dir, name);
}

static void write_bytes(const char *dir, const char *name, const uint8_t *b, size_t len)
{
	char path[400];
	file_path(path, sizeof(path), dir, name);
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(b, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

/* The whole file, malloc'd; its size into *len. */
static uint8_t *read_bytes(const char *dir, const char *name, size_t *len)
{
	char path[400];
	file_path(path, sizeof(path), dir, name);
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	uint8_t *b = malloc(1 << 20);
	cr_assert_not_null(b);
	*len = fread(b, 1, 1 << 20, f);
	fclose(f);
	return b;
}

static uint64_t size_of(const char *dir, const char *name)
{
	char path[400];
	file_path(path, sizeof(path), dir, name);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
	return (uint64_t)st.st_size;
}

/* w<writer>-<segment, 16 hex digits>.<ext> */
static const char *journal_name(unsigned writer, uint64_t segment, const char *ext)
{
	static char name[64];
	snprintf(name, sizeof(name), "w%03u-%016llx.%s", writer, (unsigned long long)segment, ext);
	return name;
}

/* ---- messages ------------------------------------------------------------ */

/* As record_test.c makes one: a retained PUBLISH, encoded, decoded, copied.
 * A single node: origin_rank 0. */
static struct msg *make(const char *topic, const char *payload, uint8_t qos, uint32_t expiry_s,
                        uint8_t version)
{
	uint8_t wire[512];
	struct mqtt_packet p = {.type = MQTT_PUBLISH};
	p.publish.topic = mqtt_view_str(topic);
	p.publish.payload = mqtt_view_str(payload);
	p.publish.qos = qos;
	p.publish.retain = true;
	p.publish.packet_id = qos ? 7 : 0;
	if (version == MQTT_V5) {
		if (expiry_s) {
			p.publish.props.has |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
			p.publish.props.message_expiry_s = expiry_s;
		}
		p.publish.props.has |= MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE);
		p.publish.props.content_type = mqtt_view_str("text/plain");
	}
	size_t n = mqtt_encode(&p, version, wire, sizeof(wire));
	cr_assert_gt(n, 0);
	struct mqtt_packet d;
	cr_assert_eq(mqtt_decode_buf(wire, n, version, &d, NULL), MQTT_RC_SUCCESS);
	struct msg *m =
	    msg_new(&d.publish, version, d.publish.topic, (struct sess_id){3, 4, 1}, NOW);
	cr_assert_not_null(m);
	m->wall_ms = 1700000000000ull;
	m->origin_rank = 0;
	return m;
}

/* ---- the history: operations, and the model of their result -------------- */

enum op_kind {
	OP_SET,     /* a retained message */
	OP_DEL,     /* REC_RETAIN_DEL */
	OP_EXPIRED, /* a set whose Message Expiry passed before recovery */
	OP_UNKNOWN, /* a record of type 200: framing only */
};

struct op {
	uint8_t kind;
	uint64_t stamp; /* 0 for OP_UNKNOWN */
	char topic[24];
	char payload[24];
	uint8_t version, qos;
	uint32_t expiry_s; /* OP_SET, 5.0: an expiry still to come */
};

static struct op op_set(uint64_t stamp, const char *topic, const char *payload, uint8_t version,
                        uint8_t qos, uint32_t expiry_s)
{
	struct op o = {.kind = OP_SET, .stamp = stamp, .version = version, .qos = qos};
	snprintf(o.topic, sizeof(o.topic), "%s", topic);
	snprintf(o.payload, sizeof(o.payload), "%s", payload);
	o.expiry_s = version == MQTT_V5 ? expiry_s : 0;
	return o;
}

static struct op op_del(uint64_t stamp, const char *topic)
{
	struct op o = {.kind = OP_DEL, .stamp = stamp};
	snprintf(o.topic, sizeof(o.topic), "%s", topic);
	return o;
}

static struct op op_expired(uint64_t stamp, const char *topic)
{
	struct op o = op_set(stamp, topic, "gone", MQTT_V5, 1, 1);
	o.kind = OP_EXPIRED;
	return o;
}

static struct op op_unknown(void)
{
	return (struct op){.kind = OP_UNKNOWN};
}

/* One topic's retained message. */
struct entry {
	char topic[24];
	char payload[24];
	size_t payload_len;
	uint64_t stamp;
	uint8_t version, qos;
	bool expires;  /* with a Message Expiry still to come */
	struct msg *m; /* recovered, kept (state.keep) */
};

#define ENTRIES_MAX 128

struct state {
	struct entry e[ENTRIES_MAX];
	size_t n;
	bool keep; /* keep the recovered messages (else unref'd at once) */
};

static struct state *state_new(void)
{
	struct state *s = calloc(1, sizeof(*s));
	cr_assert_not_null(s);
	return s;
}

static void state_free(struct state *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->e[i].m)
			msg_unref(s->e[i].m);
	free(s);
}

static long state_find(const struct state *s, const char *topic)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->e[i].topic, topic) == 0)
			return (long)i;
	return -1;
}

static int by_topic(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->topic, ((const struct entry *)b)->topic);
}

static void state_sort(struct state *s)
{
	qsort(s->e, s->n, sizeof(s->e[0]), by_topic);
}

/* Apply one operation, as the live store would. */
static void model_apply(struct state *s, const struct op *o)
{
	if (o->kind == OP_UNKNOWN)
		return;
	long i = state_find(s, o->topic);
	if (o->kind != OP_SET) {
		if (i >= 0)
			s->e[i] = s->e[--s->n];
		return;
	}
	if (i < 0) {
		cr_assert_lt(s->n, ENTRIES_MAX);
		i = (long)s->n++;
	}
	struct entry *e = &s->e[i];
	memset(e, 0, sizeof(*e));
	snprintf(e->topic, sizeof(e->topic), "%s", o->topic);
	snprintf(e->payload, sizeof(e->payload), "%s", o->payload);
	e->payload_len = strlen(o->payload);
	e->stamp = o->stamp;
	e->version = o->version;
	e->qos = o->qos;
	e->expires = o->expiry_s != 0;
}

static int by_stamp(const void *a, const void *b)
{
	uint64_t x = ((const struct op *)a)->stamp, y = ((const struct op *)b)->stamp;
	return x < y ? -1 : x > y;
}

/* The state n operations leave, applied in stamp order (not the order
 * given: that is the files'). */
static struct state *model_of(const struct op *ops, size_t n)
{
	struct op *sorted = malloc((n ? n : 1) * sizeof(*sorted));
	cr_assert_not_null(sorted);
	memcpy(sorted, ops, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), by_stamp);
	struct state *s = state_new();
	for (size_t i = 0; i < n; i++)
		model_apply(s, &sorted[i]);
	free(sorted);
	state_sort(s);
	return s;
}

static void state_expect(const struct state *got, const struct state *want, const char *what)
{
	cr_assert_eq(got->n, want->n, "%s: %zu retained messages, want %zu", what, got->n, want->n);
	for (size_t i = 0; i < got->n; i++) {
		const struct entry *g = &got->e[i], *w = &want->e[i];
		cr_assert_str_eq(g->topic, w->topic, "%s: entry %zu", what, i);
		cr_assert_eq(g->payload_len, w->payload_len, "%s: %s", what, g->topic);
		cr_assert_eq(memcmp(g->payload, w->payload, g->payload_len), 0,
		             "%s: %s: %.*s, want %s", what, g->topic, (int)g->payload_len,
		             g->payload, w->payload);
		cr_assert_eq(g->stamp, w->stamp, "%s: %s: stamp %llu, want %llu", what, g->topic,
		             (unsigned long long)g->stamp, (unsigned long long)w->stamp);
		cr_assert_eq(g->version, w->version, "%s: %s", what, g->topic);
		cr_assert_eq(g->qos, w->qos, "%s: %s", what, g->topic);
		cr_assert_eq(g->expires, w->expires, "%s: %s", what, g->topic);
	}
}

static bool state_same(const struct state *a, const struct state *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct entry *x = &a->e[i], *y = &b->e[i];
		if (strcmp(x->topic, y->topic) != 0 || x->payload_len != y->payload_len ||
		    memcmp(x->payload, y->payload, x->payload_len) != 0 || x->stamp != y->stamp ||
		    x->version != y->version || x->qos != y->qos || x->expires != y->expires)
			return false;
	}
	return true;
}

/* ---- journal files ------------------------------------------------------- */

/* A file being written in memory: header, then sealed records. */
struct jfile {
	uint8_t *b;
	size_t len, cap;
	uint64_t lsn;
	size_t *end; /* where each record ends */
	size_t n, end_cap;
};

static void jf_init(struct jfile *f, uint16_t writer, uint16_t kind, uint64_t segment)
{
	memset(f, 0, sizeof(*f));
	f->cap = 4096;
	f->b = malloc(f->cap);
	cr_assert_not_null(f->b);
	struct journal_header h = {
	    .version = JOURNAL_VERSION,
	    .writer = writer,
	    .kind = kind,
	    .segment = segment,
	    .created_wall_ms = wall_now(),
	};
	journal_header_put(f->b, &h);
	f->len = JOURNAL_HEADER_BYTES;
	f->lsn = 100 + segment;
}

static void jf_free(struct jfile *f)
{
	free(f->b);
	free(f->end);
	memset(f, 0, sizeof(*f));
}

/* Room for a record of total bytes at the end: where it starts (valid
 * until the next jf_room). */
static uint8_t *jf_room(struct jfile *f, size_t total)
{
	while (f->len + total > f->cap) {
		f->cap *= 2;
		f->b = realloc(f->b, f->cap);
		cr_assert_not_null(f->b);
	}
	return f->b + f->len;
}

/* Seal the record jf_room gave, its payload in place: the next lsn (gaps
 * of 1 to 3: strictly increasing, not always by one). */
static void jf_seal(struct jfile *f, size_t total, uint8_t type)
{
	f->lsn += 1 + f->lsn % 3;
	record_seal(f->b + f->len, total, type, f->lsn, wall_now());
	f->len += total;
	if (f->n == f->end_cap) {
		f->end_cap = f->end_cap ? f->end_cap * 2 : 64;
		f->end = realloc(f->end, f->end_cap * sizeof(*f->end));
		cr_assert_not_null(f->end);
	}
	f->end[f->n++] = f->len;
}

/* A REC_RETAIN_SET of m, written at (now_ms, now_wall_ms). */
static void jf_put_msg(struct jfile *f, const struct msg *m, uint64_t stamp, uint64_t now_ms,
                       uint64_t now_wall_ms)
{
	size_t total = record_size(rec_retain_set_size(m));
	uint8_t *rec = jf_room(f, total);
	rec_retain_set_put(record_payload(rec), m, stamp, now_ms, now_wall_ms);
	jf_seal(f, total, REC_RETAIN_SET);
}

static void jf_op(struct jfile *f, const struct op *o)
{
	switch (o->kind) {
	case OP_SET: {
		struct msg *m = make(o->topic, o->payload, o->qos, o->expiry_s, o->version);
		jf_put_msg(f, m, o->stamp, NOW, wall_now());
		msg_unref(m);
		break;
	}
	case OP_EXPIRED: {
		/* 1 s of expiry, written 5 s later by the monotonic clock: its
		 * time (a second ago by the wall clock) has passed. */
		struct msg *m = make(o->topic, o->payload, o->qos, 1, MQTT_V5);
		jf_put_msg(f, m, o->stamp, NOW + 5000, wall_now() - 1000);
		msg_unref(m);
		break;
	}
	case OP_DEL: {
		size_t tl = strlen(o->topic);
		size_t total = record_size(rec_retain_del_size(tl));
		uint8_t *rec = jf_room(f, total);
		rec_retain_del_put(record_payload(rec), (const uint8_t *)o->topic, tl, o->stamp, 0,
		                   wall_now());
		jf_seal(f, total, REC_RETAIN_DEL);
		break;
	}
	default: {
		size_t total = record_size(5);
		uint8_t *rec = jf_room(f, total);
		memcpy(record_payload(rec), "later", 5);
		jf_seal(f, total, 200);
		break;
	}
	}
}

/* ---- recovery ------------------------------------------------------------ */

static void collect(void *ctx, struct msg *m)
{
	struct state *s = ctx;
	cr_assert_lt(s->n, ENTRIES_MAX);
	struct entry *e = &s->e[s->n];
	memset(e, 0, sizeof(*e));
	cr_assert_lt(m->pub.topic.len, sizeof(e->topic));
	memcpy(e->topic, m->pub.topic.ptr, m->pub.topic.len);
	cr_assert_eq(state_find(s, e->topic), -1, "%s handed over twice", e->topic);
	cr_assert_leq(m->pub.payload.len, sizeof(e->payload));
	memcpy(e->payload, m->pub.payload.ptr, m->pub.payload.len);
	e->payload_len = m->pub.payload.len;
	e->stamp = m->retain_stamp;
	e->version = m->version;
	e->qos = m->pub.qos;
	e->expires = m->expires_at_ms != 0;
	cr_assert(m->pub.retain, "%s: a retained message", e->topic);
	cr_assert_eq(m->origin_rank, 0);
	cr_assert_eq(m->wall_ms, 1700000000000ull, "%s: its publish time kept", e->topic);
	if (e->expires)
		cr_assert_gt(m->expires_at_ms, NOW, "%s: not expired", e->topic);
	if (s->keep)
		e->m = m;
	else
		msg_unref(m);
	s->n++;
}

static void config_for(struct config *c, const char *dir)
{
	config_defaults(c);
	c->persistence = true;
	cr_assert_lt(strlen(dir), sizeof(c->data_dir));
	snprintf(c->data_dir, sizeof(c->data_dir), "%s", dir);
}

/* recover_run on dir, which must succeed: the state, sorted. */
static struct state *recover_dir(const char *dir, bool keep, struct recover_result *res)
{
	static struct config c; /* large: not on the stack */
	config_for(&c, dir);
	struct state *s = state_new();
	s->keep = keep;
	char err[256] = "";
	cr_assert_eq(recover_run(&c, NOW, collect, NULL, NULL, s, res, err, sizeof(err)), 0, "%s",
	             err);
	state_sort(s);
	cr_assert_eq(res->retained, s->n, "retained counts what was handed over");
	return s;
}

/* ---- 1: every record kind ------------------------------------------------ */

Test(recover, every_record_kind_replays)
{
	char dir[300];
	data_dir(dir, sizeof(dir), "");
	/* Two writers' files; stamps interleave between them, so the order
	 * the files are read in (by name) is not the order of the writes. */
	const struct op a[] = {
	    op_set(1, "a", "a1", MQTT_V311, 1, 0),
	    op_set(3, "b", "b3", MQTT_V5, 2, 3600),
	    op_set(4, "a", "a4", MQTT_V31, 0, 0),
	    op_del(6, "b"),
	    op_unknown(),
	    op_expired(8, "c"), /* later than c5 in the other file: c is gone */
	    op_set(10, "d", "d10", MQTT_V311, 2, 0),
	    op_set(13, "g", "g13", MQTT_V5, 0, 0), /* beats g12, read after it */
	};
	const struct op b[] = {
	    op_set(2, "b", "b2", MQTT_V311, 0, 0), /* older than b3, read after it */
	    op_set(5, "c", "c5", MQTT_V5, 1, 0),
	    op_set(7, "a", "a7", MQTT_V5, 1, 600),
	    op_set(9, "e", "e9", MQTT_V31, 1, 0),
	    op_del(11, "d"),
	    op_set(12, "g", "g12", MQTT_V311, 1, 0),
	    op_set(14, "h", "h14", MQTT_V5, 2, 0),
	    op_del(15, "x/never/set"),
	    op_set(16, "b", "b16", MQTT_V311, 1, 0), /* set again after its delete */
	};
	size_t na = sizeof(a) / sizeof(a[0]), nb = sizeof(b) / sizeof(b[0]);
	struct jfile fa, fb;
	jf_init(&fa, 0, JOURNAL_KIND_SEGMENT, 3);
	for (size_t i = 0; i < na; i++)
		jf_op(&fa, &a[i]);
	jf_init(&fb, 1, JOURNAL_KIND_SEGMENT, 5);
	for (size_t i = 0; i < nb; i++)
		jf_op(&fb, &b[i]);
	write_bytes(dir, journal_name(0, 3, "log"), fa.b, fa.len);
	write_bytes(dir, journal_name(1, 5, "log"), fb.b, fb.len);

	struct op all[32];
	memcpy(all, a, sizeof(a));
	memcpy(all + na, b, sizeof(b));
	struct state *want = model_of(all, na + nb);
	/* The model itself, by hand: a7, b16, e9, g13, h14. */
	cr_assert_eq(want->n, 5);
	cr_assert_str_eq(want->e[0].payload, "a7");
	cr_assert_str_eq(want->e[1].payload, "b16");
	cr_assert_str_eq(want->e[2].payload, "e9");
	cr_assert_str_eq(want->e[3].payload, "g13");
	cr_assert_str_eq(want->e[4].payload, "h14");

	struct recover_result res;
	struct state *got = recover_dir(dir, false, &res);
	state_expect(got, want, "recovered");
	cr_assert_eq(res.files, 2);
	cr_assert_eq(res.records, na + nb, "every good record, the unknown one too");
	cr_assert_eq(res.bytes, fa.len + fb.len);
	cr_assert_eq(res.cut, 0);
	cr_assert_eq(res.cut_bytes, 0);
	cr_assert_eq(res.unknown, 1);
	cr_assert_eq(res.retained, 5);
	cr_assert_eq(res.retained_expired, 1);
	cr_assert_eq(res.next_segment, 6, "the largest segment + 1");
	cr_assert_eq(res.next_stamp, 17, "the largest stamp + 1");
	cr_assert_eq(size_of(dir, journal_name(0, 3, "log")), fa.len, "nothing cut");
	cr_assert_eq(size_of(dir, journal_name(1, 5, "log")), fb.len, "nothing cut");

	/* Read again: the same (recovery changes nothing that is whole). */
	struct recover_result again;
	struct state *got2 = recover_dir(dir, false, &again);
	state_expect(got2, want, "recovered twice");
	cr_assert_eq(again.records, res.records);
	cr_assert_eq(again.next_stamp, res.next_stamp);

	state_free(got2);
	state_free(got);
	state_free(want);
	jf_free(&fa);
	jf_free(&fb);
	no_leaks();
}

/* ---- 2: compaction ------------------------------------------------------- */

#define TOPICS  50
#define WRITERS 3

static void random_op(struct rng *r, struct op *o, uint64_t stamp)
{
	char topic[24], payload[24];
	snprintf(topic, sizeof(topic), "t/%u", rng_below(r, TOPICS));
	snprintf(payload, sizeof(payload), "p%llu", (unsigned long long)stamp);
	uint8_t version = (uint8_t)(MQTT_V31 + rng_below(r, 3));
	uint8_t qos = (uint8_t)rng_below(r, 3);
	uint32_t k = rng_below(r, 100);
	if (k < 55)
		*o = op_set(stamp, topic, payload, version, qos, 0);
	else if (k < 80)
		*o = op_del(stamp, topic);
	else if (k < 88)
		*o = op_expired(stamp, topic);
	else
		*o = op_set(stamp, topic, payload, MQTT_V5, qos, 3600);
}

/* n random operations from stamp first on, by random writers, into the
 * files of segment seg of every writer (written into each dir given). */
static void write_tail(struct rng *r, struct op *ops, size_t n, uint64_t first, uint64_t seg,
                       const char *dir1, const char *dir2)
{
	struct jfile f[WRITERS];
	for (unsigned w = 0; w < WRITERS; w++)
		jf_init(&f[w], (uint16_t)w, JOURNAL_KIND_SEGMENT, seg);
	for (size_t i = 0; i < n; i++) {
		random_op(r, &ops[i], first + i);
		jf_op(&f[rng_below(r, WRITERS)], &ops[i]);
	}
	for (unsigned w = 0; w < WRITERS; w++) {
		write_bytes(dir1, journal_name(w, seg, "log"), f[w].b, f[w].len);
		write_bytes(dir2, journal_name(w, seg, "log"), f[w].b, f[w].len);
		jf_free(&f[w]);
	}
}

static void compaction_run(uint64_t seed)
{
	struct rng r;
	rng_seed(&r, seed);
	char full[300], compact[300], name[64];
	snprintf(name, sizeof(name), "full-%llu", (unsigned long long)seed);
	data_dir(full, sizeof(full), name);
	snprintf(name, sizeof(name), "compact-%llu", (unsigned long long)seed);
	data_dir(compact, sizeof(compact), name);

	/* The history: each writer's records in segments of random length
	 * (numbers that skip, and differ between writers). */
	enum { HISTORY = 2000, TAIL = 300 };
	struct op *ops = calloc(HISTORY + TAIL, sizeof(*ops));
	cr_assert_not_null(ops);
	struct jfile cur[WRITERS];
	uint64_t seg[WRITERS], max_seg = 0;
	size_t files = 0;
	for (unsigned w = 0; w < WRITERS; w++) {
		seg[w] = 1 + rng_below(&r, 3);
		jf_init(&cur[w], (uint16_t)w, JOURNAL_KIND_SEGMENT, seg[w]);
	}
	for (size_t i = 0; i < HISTORY; i++) {
		unsigned w = rng_below(&r, WRITERS);
		if (rng_below(&r, 100) < 2) {
			write_bytes(full, journal_name(w, seg[w], "log"), cur[w].b, cur[w].len);
			files++;
			jf_free(&cur[w]);
			seg[w] += 1 + rng_below(&r, 2);
			jf_init(&cur[w], (uint16_t)w, JOURNAL_KIND_SEGMENT, seg[w]);
		}
		random_op(&r, &ops[i], i + 1);
		jf_op(&cur[w], &ops[i]);
	}
	for (unsigned w = 0; w < WRITERS; w++) {
		write_bytes(full, journal_name(w, seg[w], "log"), cur[w].b, cur[w].len);
		files++;
		jf_free(&cur[w]);
		if (seg[w] > max_seg)
			max_seg = seg[w];
	}

	/* State A: what the segments hold. */
	struct recover_result ra;
	struct state *a = recover_dir(full, true, &ra);
	struct state *want_a = model_of(ops, HISTORY);
	state_expect(a, want_a, "the segments");
	cr_assert_eq(ra.files, files);
	cr_assert_eq(ra.records, HISTORY);
	cr_assert_eq(ra.next_segment, max_seg + 1);
	cr_assert_eq(ra.next_stamp, HISTORY + 1);
	cr_assert_gt(a->n, 5, "seed %llu: a state worth compacting", (unsigned long long)seed);

	/* The compacted form: state A split between two owners' snapshots
	 * (each message with the stamp its winning write had), in segment
	 * gen, and nothing of the old segments. */
	uint64_t gen = max_seg + 1;
	struct jfile snap[2];
	for (unsigned k = 0; k < 2; k++)
		jf_init(&snap[k], (uint16_t)k, JOURNAL_KIND_SNAPSHOT, gen);
	for (size_t i = 0; i < a->n; i++)
		jf_put_msg(&snap[rng_below(&r, 2)], a->e[i].m, a->e[i].stamp, NOW, wall_now());
	for (unsigned k = 0; k < 2; k++) {
		write_bytes(compact, journal_name(k, gen, "snap"), snap[k].b, snap[k].len);
		jf_free(&snap[k]);
	}

	/* The same tail after both. */
	write_tail(&r, ops + HISTORY, TAIL, HISTORY + 1, gen, full, compact);

	struct recover_result rf, rc;
	struct state *f = recover_dir(full, false, &rf);
	struct state *c = recover_dir(compact, false, &rc);
	struct state *want = model_of(ops, HISTORY + TAIL);
	char what[64];
	snprintf(what, sizeof(what), "seed %llu: segments + tail", (unsigned long long)seed);
	state_expect(f, want, what);
	snprintf(what, sizeof(what), "seed %llu: snapshots + tail", (unsigned long long)seed);
	state_expect(c, f, what);
	cr_assert_eq(rc.retained, rf.retained);
	cr_assert_eq(rc.next_stamp, rf.next_stamp);
	cr_assert_eq(rc.next_stamp, HISTORY + TAIL + 1);
	cr_assert_eq(rc.next_segment, gen + 1);
	cr_assert_eq(rf.next_segment, gen + 1);
	cr_assert_eq(rc.files, 2 + WRITERS);
	cr_assert_eq(rc.records, a->n + TAIL);
	cr_assert_eq(rc.cut + rf.cut, 0);
	cr_assert_eq(rc.unknown + rf.unknown, 0);

	state_free(want);
	state_free(c);
	state_free(f);
	state_free(want_a);
	state_free(a);
	free(ops);
}

Test(recover, compaction_equivalence, .timeout = 120)
{
	rng_run_seeds(6, compaction_run);
	no_leaks();
}

/* ---- 3, 4: damage -------------------------------------------------------- */

/* A small journal: sets and deletes on 4 topics, every record changing
 * the state (so every prefix leaves a state of its own). */
#define SMALL 12

static void small_journal(struct jfile *f, struct op ops[SMALL])
{
	const struct op h[SMALL] = {
	    op_set(1, "a", "a1", MQTT_V311, 1, 0),
	    op_set(2, "b", "b2", MQTT_V5, 0, 0),
	    op_set(3, "c", "c3", MQTT_V31, 2, 0),
	    op_del(4, "a"),
	    op_set(5, "d", "d5", MQTT_V5, 1, 3600),
	    op_set(6, "a", "a6", MQTT_V311, 0, 0),
	    op_del(7, "c"),
	    op_set(8, "b", "b8", MQTT_V5, 2, 0),
	    op_del(9, "d"),
	    op_set(10, "c", "c10", MQTT_V311, 2, 0),
	    op_del(11, "b"),
	    op_set(12, "a", "a12", MQTT_V5, 1, 0),
	};
	memcpy(ops, h, sizeof(h));
	jf_init(f, 0, JOURNAL_KIND_SEGMENT, 1);
	for (size_t i = 0; i < SMALL; i++)
		jf_op(f, &ops[i]);
}

/* Records wholly within the first len bytes. */
static size_t records_within(const struct jfile *f, size_t len)
{
	size_t k = 0;
	while (k < f->n && f->end[k] <= len)
		k++;
	return k;
}

/* Where the first k records end. */
static size_t boundary(const struct jfile *f, size_t k)
{
	return k ? f->end[k - 1] : JOURNAL_HEADER_BYTES;
}

Test(recover, torn_tail_at_every_offset)
{
	char dir[300];
	data_dir(dir, sizeof(dir), "");
	struct jfile f;
	struct op ops[SMALL];
	small_journal(&f, ops);
	struct state *models[SMALL + 1];
	for (size_t k = 0; k <= SMALL; k++)
		models[k] = model_of(ops, k);
	for (size_t k = 1; k <= SMALL; k++)
		cr_assert(!state_same(models[k], models[k - 1]), "record %zu changes the state", k);
	const char *name = journal_name(0, 1, "log");

	for (size_t cut = JOURNAL_HEADER_BYTES; cut <= f.len; cut++) {
		write_bytes(dir, name, f.b, cut);
		size_t k = records_within(&f, cut);
		size_t good = boundary(&f, k);
		char what[64];
		snprintf(what, sizeof(what), "cut at %zu (%zu records before)", cut, k);
		struct recover_result res;
		struct state *s = recover_dir(dir, false, &res);
		state_expect(s, models[k], what);
		cr_assert_eq(res.files, 1, "%s", what);
		cr_assert_eq(res.records, k, "%s", what);
		cr_assert_eq(res.bytes, cut, "%s", what);
		cr_assert_eq(res.cut, cut == good ? 0 : 1, "%s", what);
		cr_assert_eq(res.cut_bytes, cut - good, "%s", what);
		cr_assert_eq(res.next_stamp, k + 1, "%s", what);
		cr_assert_eq(res.next_segment, 2, "%s", what);
		cr_assert_eq(size_of(dir, name), good, "%s: the file cut at the last good record",
		             what);
		state_free(s);

		/* Once cut, the file reads clean, to the same state. */
		s = recover_dir(dir, false, &res);
		state_expect(s, models[k], what);
		cr_assert_eq(res.cut, 0, "%s: cut once", what);
		cr_assert_eq(res.records, k, "%s", what);
		state_free(s);
	}
	for (size_t k = 0; k <= SMALL; k++)
		state_free(models[k]);
	jf_free(&f);
	no_leaks();
}

Test(recover, flipped_bit_at_every_offset, .timeout = 120)
{
	char dir[300];
	data_dir(dir, sizeof(dir), "");
	struct jfile f;
	struct op ops[SMALL];
	small_journal(&f, ops);
	struct state *models[SMALL + 1];
	for (size_t k = 0; k <= SMALL; k++)
		models[k] = model_of(ops, k);
	const char *name = journal_name(0, 1, "log");
	uint8_t *b = malloc(f.len);
	cr_assert_not_null(b);

	for (size_t at = JOURNAL_HEADER_BYTES; at < f.len; at++) {
		size_t damaged = records_within(&f, at); /* the record holding byte at */
		for (unsigned bit = 0; bit < 8; bit++) {
			memcpy(b, f.b, f.len);
			b[at] ^= (uint8_t)(1u << bit);
			write_bytes(dir, name, b, f.len);
			char what[80];
			snprintf(what, sizeof(what), "bit %u of byte %zu (record %zu)", bit, at,
			         damaged);
			struct recover_result res;
			struct state *s = recover_dir(dir, false, &res);
			size_t k = res.records;
			/* The state of a prefix no longer than the records before
			 * the damage, and of the prefix recovery says it kept. */
			cr_assert_leq(k, damaged, "%s: %zu records kept", what, k);
			state_expect(s, models[k], what);
			/* CRC-32C catches every single-bit error (the length is
			 * inside the checksum): that prefix is all of them. */
			cr_assert_eq(k, damaged, "%s: %zu records kept", what, k);
			cr_assert_eq(res.cut, 1, "%s", what);
			cr_assert_eq(res.cut_bytes, f.len - boundary(&f, k), "%s", what);
			cr_assert_eq(size_of(dir, name), boundary(&f, k), "%s: cut on disk", what);
			cr_assert_eq(res.next_stamp, k + 1, "%s", what);
			state_free(s);
		}
	}
	free(b);
	for (size_t k = 0; k <= SMALL; k++)
		state_free(models[k]);
	jf_free(&f);
	no_leaks();
}

/* ---- 5, 6: no journal, bad headers, other names --------------------------- */

Test(recover, missing_directory_is_empty)
{
	/* A data directory without journal/, and one that is not there. */
	char nothing[300];
	snprintf(nothing, sizeof(nothing), "%s/not-there", tmpdir);
	const char *dirs[] = {tmpdir, nothing};
	for (size_t i = 0; i < 2; i++) {
		static struct config c;
		config_for(&c, dirs[i]);
		struct state *s = state_new();
		struct recover_result res;
		memset(&res, 0xAB, sizeof(res));
		char err[256] = "";
		cr_assert_eq(recover_run(&c, NOW, collect, NULL, NULL, s, &res, err, sizeof(err)),
		             0, "%s", err);
		cr_assert_eq(s->n, 0);
		cr_assert_eq(res.files, 0);
		cr_assert_eq(res.records, 0);
		cr_assert_eq(res.bytes, 0);
		cr_assert_eq(res.cut, 0);
		cr_assert_eq(res.unknown, 0);
		cr_assert_eq(res.retained, 0);
		cr_assert_eq(res.retained_expired, 0);
		cr_assert_eq(res.next_segment, 1);
		cr_assert_eq(res.next_stamp, 1);
		state_free(s);
	}
	/* An empty journal directory: the same. */
	char dir[300];
	data_dir(dir, sizeof(dir), "");
	struct recover_result res;
	struct state *s = recover_dir(dir, false, &res);
	cr_assert_eq(s->n, 0);
	cr_assert_eq(res.files, 0);
	cr_assert_eq(res.next_segment, 1);
	cr_assert_eq(res.next_stamp, 1);
	state_free(s);
	no_leaks();
}

/* A whole file whose records would change the state if it were read:
 * "stray" set, and the good file's topics overwritten (later stamps). */
static void stray_file(struct jfile *f, uint16_t writer, uint64_t segment)
{
	jf_init(f, writer, JOURNAL_KIND_SEGMENT, segment);
	struct op o = op_set(100, "stray", "stray", MQTT_V311, 0, 0);
	jf_op(f, &o);
	o = op_del(101, "a");
	jf_op(f, &o);
	o = op_set(102, "b", "stray-b", MQTT_V311, 0, 0);
	jf_op(f, &o);
}

static const struct op good_ops[] = {
    {.kind = OP_SET, .stamp = 1, .topic = "a", .payload = "a1", .version = MQTT_V311},
    {.kind = OP_SET, .stamp = 2, .topic = "b", .payload = "b2", .version = MQTT_V5, .qos = 1},
    {.kind = OP_SET, .stamp = 3, .topic = "c", .payload = "c3", .version = MQTT_V31, .qos = 2},
};
#define GOOD_OPS (sizeof(good_ops) / sizeof(good_ops[0]))

static void good_file(const char *dir, const char *name, size_t *len)
{
	struct jfile f;
	jf_init(&f, 0, JOURNAL_KIND_SEGMENT, 2);
	for (size_t i = 0; i < GOOD_OPS; i++)
		jf_op(&f, &good_ops[i]);
	write_bytes(dir, name, f.b, f.len);
	*len = f.len;
	jf_free(&f);
}

Test(recover, a_file_with_a_bad_header_is_skipped)
{
	char dir[300];
	data_dir(dir, sizeof(dir), "");
	size_t good_len;
	good_file(dir, journal_name(0, 2, "log"), &good_len);

	struct jfile f;
	stray_file(&f, 1, 9);
	struct {
		const char *name;
		uint8_t *b;
		size_t len;
	} bad[6];
	size_t nbad = 0;
	/* a header checksum that does not hold */
	bad[nbad].name = strdup(journal_name(1, 9, "log"));
	bad[nbad].b = malloc(f.len);
	memcpy(bad[nbad].b, f.b, f.len);
	bad[nbad].b[20] ^= 0x01; /* the segment number */
	bad[nbad++].len = f.len;
	/* another magic */
	bad[nbad].name = strdup(journal_name(2, 4, "snap"));
	bad[nbad].b = malloc(f.len);
	memcpy(bad[nbad].b, f.b, f.len);
	bad[nbad].b[0] = 'X';
	bad[nbad++].len = f.len;
	/* a version this build does not read, its checksum right */
	struct journal_header h2 = {.version = 2, .writer = 3, .segment = 4};
	bad[nbad].name = strdup(journal_name(3, 4, "log"));
	bad[nbad].b = malloc(f.len);
	memcpy(bad[nbad].b, f.b, f.len);
	journal_header_put(bad[nbad].b, &h2);
	bad[nbad++].len = f.len;
	/* shorter than a header */
	bad[nbad].name = strdup(journal_name(4, 4, "log"));
	bad[nbad].b = malloc(f.len);
	memcpy(bad[nbad].b, f.b, f.len);
	bad[nbad++].len = JOURNAL_HEADER_BYTES - 1;
	/* empty: a crash right after the file was made */
	bad[nbad].name = strdup(journal_name(5, 4, "log"));
	bad[nbad].b = malloc(1);
	bad[nbad++].len = 0;
	/* zeros */
	bad[nbad].name = strdup(journal_name(6, 4, "log"));
	bad[nbad].b = calloc(1, f.len);
	bad[nbad++].len = f.len;
	for (size_t i = 0; i < nbad; i++)
		write_bytes(dir, bad[i].name, bad[i].b, bad[i].len);

	struct recover_result res;
	struct state *s = recover_dir(dir, false, &res);
	struct state *want = model_of(good_ops, GOOD_OPS);
	state_expect(s, want, "the good file alone");
	cr_assert_eq(res.files, 1, "the bad files are not counted as read");
	cr_assert_eq(res.records, GOOD_OPS);
	cr_assert_eq(res.bytes, good_len);
	cr_assert_eq(res.cut, 0, "a bad header is not a cut tail");
	cr_assert_eq(res.next_stamp, 4, "no stamp from a file not read");
	cr_assert_eq(res.next_segment, 10, "a new segment does not take a name that is there");
	for (size_t i = 0; i < nbad; i++) {
		size_t len;
		uint8_t *now = read_bytes(dir, bad[i].name, &len);
		cr_assert_eq(len, bad[i].len, "%s left as it was", bad[i].name);
		cr_assert_eq(memcmp(now, bad[i].b, len), 0, "%s left as it was", bad[i].name);
		free(now);
		free(bad[i].b);
		free((char *)bad[i].name);
	}
	state_free(want);
	state_free(s);
	jf_free(&f);
	no_leaks();
}

Test(recover, names_that_do_not_match_are_ignored)
{
	char dir[300];
	data_dir(dir, sizeof(dir), "");
	size_t good_len;
	good_file(dir, journal_name(0, 2, "log"), &good_len);
	struct jfile f;
	stray_file(&f, 0, 0x63);
	static const char *const names[] = {
	    "notes.txt",
	    "w000-zz.log",
	    "w000-0000000000000063",
	    "w000-0000000000000063.log.tmp",
	    "w000-0000000000000063.logs",
	    "w000-0000000000000063.snapshot",
	    "w000-0000000000000063.LOG",
	    "w000-0000000000000063.txt",
	    "W000-0000000000000063.log",
	    "w000_0000000000000063.log",
	    "x000-0000000000000063.log",
	    ".w000-0000000000000063.log",
	    "w000-0000000000000063.log~",
	};
	size_t n = sizeof(names) / sizeof(names[0]);
	for (size_t i = 0; i < n; i++)
		write_bytes(dir, names[i], f.b, f.len);
	/* and a directory: not looked into */
	char sub[400];
	snprintf(sub, sizeof(sub), "%s/journal/old", dir);
	cr_assert_eq(mkdir(sub, 0700), 0);
	write_bytes(dir, "old/w000-0000000000000063.log", f.b, f.len);

	struct recover_result res;
	struct state *s = recover_dir(dir, false, &res);
	struct state *want = model_of(good_ops, GOOD_OPS);
	state_expect(s, want, "the journal file alone");
	cr_assert_eq(res.files, 1);
	cr_assert_eq(res.records, GOOD_OPS);
	cr_assert_eq(res.bytes, good_len);
	cr_assert_eq(res.next_segment, 3, "no segment number from another name");
	cr_assert_eq(res.next_stamp, 4);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(size_of(dir, names[i]), f.len, "%s left alone", names[i]);

	/* The control: the same bytes under a journal name are read. */
	write_bytes(dir, journal_name(0, 0x63, "log"), f.b, f.len);
	struct recover_result res2;
	struct state *s2 = recover_dir(dir, false, &res2);
	cr_assert_eq(res2.files, 2);
	cr_assert_eq(res2.next_segment, 0x64);
	cr_assert_eq(res2.next_stamp, 103);
	cr_assert_neq(state_find(s2, "stray"), -1);
	cr_assert_eq(state_find(s2, "a"), -1);

	state_free(s2);
	state_free(want);
	state_free(s);
	jf_free(&f);
	no_leaks();
}

/* ---- 8: a compaction's mark ---------------------------------------------- */

/* A round whose deletions a crash interrupted: the segment with the delete
 * of "t" is gone, an older one with its set is still there. The mark says
 * the round's snapshots were durable: what is older no longer counts, so
 * "t" stays deleted, and the leftover is removed. A mark naming a snapshot
 * that is not there (a partial copy) counts for nothing. */
Test(recover, a_complete_mark_supersedes_older_files)
{
	char dir[300];
	data_dir(dir, sizeof(dir), "");
	struct jfile old, snap;
	jf_init(&old, 0, JOURNAL_KIND_SEGMENT, 1);
	struct op set_t = op_set(3, "t", "t3", MQTT_V311, 1, 0);
	struct op set_u = op_set(4, "u", "u4", MQTT_V311, 1, 0);
	jf_op(&old, &set_t);
	jf_op(&old, &set_u);
	write_bytes(dir, journal_name(0, 1, "log"), old.b, old.len);
	/* (segment 2, with "t"'s delete at stamp 5, was deleted) */
	jf_init(&snap, 0, JOURNAL_KIND_SNAPSHOT, 5);
	jf_op(&snap, &set_u); /* the snapshot holds the state: u only */
	write_bytes(dir, journal_name(0, 5, "snap"), snap.b, snap.len);

	/* Without a mark, the leftover brings "t" back: the hazard. */
	struct recover_result res;
	struct state *got = recover_dir(dir, true, &res);
	cr_assert_eq(got->n, 2, "no mark: every file counts");
	state_free(got);

	/* A mark naming a snapshot that is not there counts for nothing. */
	const char *bad = "w000-0000000000000005.snap\nw001-0000000000000005.snap\n";
	write_bytes(dir, "c-0000000000000005.done", (const uint8_t *)bad, strlen(bad));
	got = recover_dir(dir, true, &res);
	cr_assert_eq(got->n, 2, "an incomplete mark: every file still counts");
	state_free(got);
	cr_assert_gt(size_of(dir, journal_name(0, 1, "log")), 0);

	const char *good = "w000-0000000000000005.snap\n";
	write_bytes(dir, "c-0000000000000005.done", (const uint8_t *)good, strlen(good));
	got = recover_dir(dir, true, &res);
	cr_assert_eq(got->n, 1, "the mark: only the snapshot and what is newer count");
	cr_assert_str_eq(got->e[0].topic, "u");
	cr_assert_eq(res.next_segment, 6);
	state_free(got);
	char path[400];
	file_path(path, sizeof(path), dir, journal_name(0, 1, "log"));
	cr_assert_neq(access(path, F_OK), 0, "the interrupted deletion was finished");
	jf_free(&old);
	jf_free(&snap);
}

/* ---- sessions ------------------------------------------------------------- */

/* The encoded state (session_encode_state, malloc'd) of a session for cid
 * whose expiry is expiry_s, subscribed to one filter. */
static uint8_t *sess_state(const char *cid, uint32_t expiry_s, const char *filter, size_t *enc_len)
{
	size_t cid_len = strlen(cid);
	struct session *s =
	    session_new((const uint8_t *)cid, (uint16_t)cid_len, (struct sess_id){1, 1, 0});
	cr_assert_not_null(s);
	session_set_expiry(s, expiry_s);
	s->version = MQTT_V5; /* as the CONNECT set it */
	struct sub_opts o = {.qos = 1, .sub_id = expiry_s};
	cr_assert_eq(session_sub_add(s, mqtt_view_str(filter), o, 10), 1);
	s->expires_at_ms = NOW + 5000; /* offline, 5 s to go */
	uint8_t *enc = session_encode_state(s, NOW, enc_len);
	cr_assert_not_null(enc);
	session_free(s);
	return enc;
}

/* A REC_SESS_PUT of a session for cid whose expiry (a marker of the
 * version written) is expiry_s, subscribed to one filter; or, expiry_s 0,
 * a REC_SESS_END. */
static void jf_sess(struct jfile *f, uint64_t stamp, const char *cid, uint32_t expiry_s,
                    const char *filter)
{
	size_t cid_len = strlen(cid), enc_len = 0;
	uint8_t *enc = expiry_s ? sess_state(cid, expiry_s, filter, &enc_len) : NULL;
	size_t total = record_size(rec_sess_size(cid_len, enc_len, false));
	uint8_t *rec = jf_room(f, total);
	rec_sess_put(record_payload(rec), stamp, NULL, (const uint8_t *)cid, cid_len, enc, enc_len);
	jf_seal(f, total, expiry_s ? REC_SESS_PUT : REC_SESS_END);
	free(enc);
}

struct sess_got {
	char cid[16][16];
	uint32_t expiry[16];
	char filter[16][16];
	unsigned n;
};

static int collect_sess(void *ctx, const uint8_t *cid, size_t cid_len, const uint8_t *enc,
                        size_t len, uint64_t wall_ms, struct sess_id *where)
{
	struct sess_got *g = ctx;
	*where = (struct sess_id){(uint32_t)g->n + 1, 1, 0};
	cr_assert_lt(g->n, 16);
	cr_assert_gt(wall_ms, 0);
	struct session *s = session_decode(enc, len, (struct sess_id){1, 1, 0}, NOW);
	cr_assert_not_null(s, "a recovered session decodes");
	cr_assert_eq(s->client_id_len, cid_len);
	cr_assert_eq(memcmp(s->client_id, cid, cid_len), 0);
	cr_assert_eq(s->sub_count, 1);
	cr_assert_eq(s->infl_count + s->q_len + s->rx_qos2_count, 0, "no messages in the state");
	snprintf(g->cid[g->n], sizeof(g->cid[0]), "%.*s", (int)cid_len, (const char *)cid);
	snprintf(g->filter[g->n], sizeof(g->filter[0]), "%s", s->subs[0].filter);
	g->expiry[g->n++] = s->expiry_s;
	cr_assert_eq(s->subs[0].opts.sub_id, s->expiry_s, "options kept");
	session_free(s);
	return 0;
}

static long got_find(const struct sess_got *g, const char *cid)
{
	for (unsigned i = 0; i < g->n; i++)
		if (strcmp(g->cid[i], cid) == 0)
			return i;
	return -1;
}

Test(recover, sessions_the_last_record_of_a_client_id_wins)
{
	char dir[300];
	data_dir(dir, sizeof(dir), "");
	/* Two writers (a session moves between workers on takeover): the
	 * stamps, not the files' order, say which record is the last. */
	struct jfile a, b;
	jf_init(&a, 0, JOURNAL_KIND_SEGMENT, 1);
	jf_init(&b, 1, JOURNAL_KIND_SEGMENT, 1);
	jf_sess(&a, 1, "p", 100, "p/1"); /* p: put, moved to b (put 4), ended there (6) */
	jf_sess(&b, 4, "p", 101, "p/2");
	jf_sess(&b, 6, "p", 0, NULL);
	jf_sess(&a, 2, "q", 200, "q/1"); /* q: ended (3), then a new one (9) */
	jf_sess(&a, 3, "q", 0, NULL);
	jf_sess(&b, 9, "q", 201, "q/2");
	jf_sess(&b, 5, "r", 300, "r/1"); /* r: its later put is in the file read first */
	jf_sess(&a, 8, "r", 301, "r/2");
	jf_sess(&a, 7, "s", 400, "s/1"); /* s: one put */
	jf_sess(&b, 11, "t", 0, NULL);   /* t: an end with no put: nothing */
	/* A malformed session record, its checksum good: skipped, counted. */
	size_t total = record_size(12);
	uint8_t *rec = jf_room(&a, total);
	memset(record_payload(rec), 0, 12); /* client id length 0 */
	jf_seal(&a, total, REC_SESS_PUT);
	write_bytes(dir, journal_name(0, 1, "log"), a.b, a.len);
	write_bytes(dir, journal_name(1, 1, "log"), b.b, b.len);
	jf_free(&a);
	jf_free(&b);

	static struct config c;
	config_for(&c, dir);
	struct sess_got g = {0};
	struct recover_result res;
	char err[256] = "";
	cr_assert_eq(recover_run(&c, NOW, NULL, collect_sess, NULL, &g, &res, err, sizeof(err)), 0,
	             "%s", err);
	cr_assert_eq(res.sessions, 3);
	cr_assert_eq(g.n, 3);
	cr_assert_eq(got_find(&g, "p"), -1, "p ended");
	cr_assert_eq(got_find(&g, "t"), -1, "t never was");
	long q = got_find(&g, "q"), r = got_find(&g, "r"), s = got_find(&g, "s");
	cr_assert(q >= 0 && r >= 0 && s >= 0);
	cr_assert_eq(g.expiry[q], 201);
	cr_assert_str_eq(g.filter[q], "q/2");
	cr_assert_eq(g.expiry[r], 301);
	cr_assert_str_eq(g.filter[r], "r/2");
	cr_assert_eq(g.expiry[s], 400);
	cr_assert_eq(res.rejected, 1);
	cr_assert_eq(res.next_sess_stamp, 12);
	cr_assert_eq(res.next_stamp, 1, "the retained order is its own");
	no_leaks();
}

/* ---- messages of persistent sessions ------------------------------------- */

/* A record of the message journal (README "Messages"), as these tests write
 * it: a file is an array of them, in file order. */
enum jop_kind {
	J_PLACED, /* REC_SESS_PLACED: cid lived at (run, at) */
	J_END,    /* REC_SESS_END of cid */
	J_MSG,    /* REC_MSG of run, naming the targets t[] (up to a generation 0) */
	J_DONE,   /* REC_MSG_DONE: stamp is the message's */
	J_REL,    /* REC_MSG_REL (msg_stamp 0: a snapshot's) */
	J_COMP,   /* REC_MSG_COMP */
	J_SENT,   /* REC_MSG_SENT */
	J_IN,     /* REC_IN_QOS2 */
	J_IN_REL, /* REC_IN_REL */
	J_MSG_IN, /* REC_MSG_IN: a J_MSG with the inbound id (cid, pid) of its publisher */
};

/* A REC_MSG's Message Expiry. */
enum { EXP_NONE, EXP_PASSED, EXP_TO_COME };

#define JOP_TARGETS 8

struct jop {
	uint8_t kind;
	uint64_t stamp;     /* the record's; J_DONE: the message's */
	uint64_t msg_stamp; /* J_REL, J_SENT */
	uint64_t run;       /* J_PLACED, J_MSG, J_MSG_IN */
	struct sess_id at;  /* J_PLACED */
	const char *cid;    /* all but J_MSG */
	uint16_t pid;       /* J_REL, J_COMP, J_SENT, J_IN, J_IN_REL, J_MSG_IN */
	uint8_t expiry;     /* J_MSG, J_MSG_IN: EXP_* */
	struct rec_msg_target t[JOP_TARGETS];
};

/* clang-format off */
#define AT(w, s, g) {.worker = (w), .slot = (s), .gen = (g)}
#define TG(place, q, fl, sub) {.id = place, .qos = (q), .flags = (fl), .sub_id = (sub)}
#define R_PLACED(st, r, place, c)                                                                  \
	{.kind = J_PLACED, .stamp = (st), .run = (r), .at = place, .cid = (c)}
#define R_END(st, c) {.kind = J_END, .stamp = (st), .cid = (c)}
#define R_MSG(st, r, ...) {.kind = J_MSG, .stamp = (st), .run = (r), .t = {__VA_ARGS__}}
#define R_MSG_EXP(st, r, e, ...)                                                                   \
	{.kind = J_MSG, .stamp = (st), .run = (r), .expiry = (e), .t = {__VA_ARGS__}}
#define R_DONE(ms, c) {.kind = J_DONE, .stamp = (ms), .cid = (c)}
#define R_REL(st, ms, p, c) {.kind = J_REL, .stamp = (st), .msg_stamp = (ms), .pid = (p), .cid = (c)}
#define R_COMP(st, p, c) {.kind = J_COMP, .stamp = (st), .pid = (p), .cid = (c)}
#define R_SENT(st, ms, p, c)                                                                       \
	{.kind = J_SENT, .stamp = (st), .msg_stamp = (ms), .pid = (p), .cid = (c)}
#define R_IN(st, p, c)     {.kind = J_IN, .stamp = (st), .pid = (p), .cid = (c)}
#define R_IN_REL(st, p, c) {.kind = J_IN_REL, .stamp = (st), .pid = (p), .cid = (c)}
#define R_MSG_IN(st, r, p, c, ...)                                                                 \
	{.kind = J_MSG_IN, .stamp = (st), .run = (r), .pid = (p), .cid = (c), .t = {__VA_ARGS__}}
#define COUNT(a)           (sizeof(a) / sizeof((a)[0]))
/* clang-format on */

static size_t jop_targets(const struct jop *o)
{
	size_t n = 0;
	while (n < JOP_TARGETS && o->t[n].id.gen)
		n++;
	return n;
}

/* The message of a REC_MSG of stamp s: a QoS 2 PUBLISH of "m<s>" on m/x, not
 * retained; 5.0 with a Message Expiry (1 s: EXP_PASSED; an hour), else 3.1.1. */
static struct msg *make_jmsg(uint64_t stamp, uint8_t expiry)
{
	char payload[24];
	snprintf(payload, sizeof(payload), "m%llu", (unsigned long long)stamp);
	uint8_t version = expiry == EXP_NONE ? MQTT_V311 : MQTT_V5;
	uint8_t wire[256];
	struct mqtt_packet p = {.type = MQTT_PUBLISH};
	p.publish.topic = mqtt_view_str("m/x");
	p.publish.payload = mqtt_view_str(payload);
	p.publish.qos = 2;
	p.publish.packet_id = 7;
	if (expiry != EXP_NONE) {
		p.publish.props.has |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
		p.publish.props.message_expiry_s = expiry == EXP_PASSED ? 1 : 3600;
	}
	size_t n = mqtt_encode(&p, version, wire, sizeof(wire));
	cr_assert_gt(n, 0);
	struct mqtt_packet d;
	cr_assert_eq(mqtt_decode_buf(wire, n, version, &d, NULL), MQTT_RC_SUCCESS);
	struct msg *m =
	    msg_new(&d.publish, version, d.publish.topic, (struct sess_id){3, 4, 1}, NOW);
	cr_assert_not_null(m);
	return m;
}

static void jf_jop(struct jfile *f, const struct jop *o)
{
	size_t total, cid_len = o->cid ? strlen(o->cid) : 0;
	uint8_t *rec;
	switch (o->kind) {
	case J_PLACED: {
		size_t enc_len;
		uint8_t *enc = sess_state(o->cid, 100, "t/#", &enc_len);
		struct rec_place pl = {.run = o->run, .id = o->at};
		total = record_size(rec_sess_size(cid_len, enc_len, true));
		rec = jf_room(f, total);
		rec_sess_put(record_payload(rec), o->stamp, &pl, (const uint8_t *)o->cid, cid_len,
		             enc, enc_len);
		jf_seal(f, total, REC_SESS_PLACED);
		free(enc);
		return;
	}
	case J_END:
		jf_sess(f, o->stamp, o->cid, 0, NULL);
		return;
	case J_MSG:
	case J_MSG_IN: {
		size_t n = jop_targets(o);
		struct msg *m = make_jmsg(o->stamp, o->expiry);
		bool in = o->kind == J_MSG_IN;
		total = record_size(in ? rec_msg_in_size(m, n, cid_len) : rec_msg_size(m, n));
		rec = jf_room(f, total);
		/* As OP_EXPIRED: 1 s of expiry written 5 s later, a second ago by
		 * the wall clock. */
		bool passed = o->expiry == EXP_PASSED;
		uint64_t now = passed ? NOW + 5000 : NOW, wall = wall_now() - (passed ? 1000 : 0);
		struct rec_inbound ri = {o->pid, (const uint8_t *)o->cid, (uint16_t)cid_len};
		if (in)
			rec_msg_in_put(record_payload(rec), &ri, m, o->stamp, o->run, o->t, n, now,
			               wall);
		else
			rec_msg_put(record_payload(rec), m, o->stamp, o->run, o->t, n, now, wall);
		jf_seal(f, total, in ? REC_MSG_IN : REC_MSG);
		msg_unref(m);
		return;
	}
	case J_DONE:
		total = record_size(rec_msg_done_size(cid_len));
		rec = jf_room(f, total);
		rec_msg_done_put(record_payload(rec), o->stamp, (const uint8_t *)o->cid, cid_len);
		jf_seal(f, total, REC_MSG_DONE);
		return;
	default: {
		static const uint8_t types[] = {
		    [J_REL] = REC_MSG_REL, [J_COMP] = REC_MSG_COMP, [J_SENT] = REC_MSG_SENT,
		    [J_IN] = REC_IN_QOS2,  [J_IN_REL] = REC_IN_REL,
		};
		uint8_t type = types[o->kind];
		bool with_msg = rec_release_with_msg(type);
		struct rec_release r = {
		    .stamp = o->stamp,
		    .msg_stamp = o->msg_stamp,
		    .pid = o->pid,
		    .client_id = (const uint8_t *)o->cid,
		    .client_id_len = (uint16_t)cid_len,
		};
		total = record_size(rec_release_size(cid_len, with_msg));
		rec = jf_room(f, total);
		rec_release_put(record_payload(rec), &r, with_msg);
		jf_seal(f, total, type);
		return;
	}
	}
}

/* A file of ops: w<writer>-<segment>.log, or .snap. */
static void write_jops(const char *dir, uint16_t writer, uint16_t kind, uint64_t segment,
                       const struct jop *ops, size_t n)
{
	struct jfile f;
	jf_init(&f, writer, kind, segment);
	for (size_t i = 0; i < n; i++)
		jf_jop(&f, &ops[i]);
	write_bytes(dir,
	            journal_name(writer, segment, kind == JOURNAL_KIND_SNAPSHOT ? "snap" : "log"),
	            f.b, f.len);
	jf_free(&f);
}

/* What recovery gave back: a message, a PUBREL owed, an inbound QoS 2 id. */
enum { G_MSG, G_REL, G_IN };

struct got {
	char cid[16];
	uint8_t kind;
	uint64_t stamp; /* G_MSG: the message's (m->jstamp); else 0 */
	uint8_t qos, flags;
	uint32_t sub_id;
	uint16_t pid;
};

#define GOT_MAX   64
#define MSESS_MAX 16

struct mgot {
	const char *refuse; /* the session callback refuses this client id (-1) */
	const char *tire;   /* and says this one expired while the node was down (1) */
	char cid[MSESS_MAX][16];
	int rc[MSESS_MAX];        /* what the session callback said */
	uint64_t last[MSESS_MAX]; /* the stamp of the last message each got */
	unsigned sessions;
	bool messages_began, releases_began;
	struct got g[GOT_MAX];
	size_t n;
};

/* The session callback: each session decodes as its client id's, is offered
 * once, before any message; where = (worker 9, slot = its number, gen 1). */
static int mgot_sess(void *ctx, const uint8_t *cid, size_t cid_len, const uint8_t *enc, size_t len,
                     uint64_t wall_ms, struct sess_id *where)
{
	struct mgot *g = ctx;
	cr_assert(!g->messages_began, "every session is offered before any message");
	cr_assert_lt(g->sessions, MSESS_MAX);
	cr_assert_lt(cid_len, sizeof(g->cid[0]));
	cr_assert_gt(wall_ms, 0);
	struct session *s = session_decode(enc, len, (struct sess_id){1, 1, 0}, NOW);
	cr_assert_not_null(s, "a recovered session decodes");
	cr_assert(s->client_id_len == cid_len && memcmp(s->client_id, cid, cid_len) == 0,
	          "the session of its client id");
	session_free(s);
	unsigned i = g->sessions++;
	snprintf(g->cid[i], sizeof(g->cid[i]), "%.*s", (int)cid_len, (const char *)cid);
	for (unsigned k = 0; k < i; k++)
		cr_assert_str_neq(g->cid[k], g->cid[i], "%s offered twice", g->cid[i]);
	/* Set even when refused: recovery must not use it then. */
	*where = (struct sess_id){.worker = 9, .slot = i + 1, .gen = 1};
	int rc = 0;
	if (g->refuse && strcmp(g->cid[i], g->refuse) == 0)
		rc = -1;
	else if (g->tire && strcmp(g->cid[i], g->tire) == 0)
		rc = 1;
	g->rc[i] = rc;
	return rc;
}

/* The message callback: every message (m set) to a restored session, per
 * session in stamp order and once, before any PUBREL or inbound id (m NULL). */
static void mgot_msg(void *ctx, struct sess_id where, struct msg *m, uint8_t qos, uint8_t flags,
                     uint32_t sub_id, uint16_t pid)
{
	struct mgot *g = ctx;
	g->messages_began = true;
	cr_assert(where.worker == 9 && where.gen == 1 && where.slot >= 1 &&
	              where.slot <= g->sessions,
	          "a place the session callback gave");
	unsigned i = where.slot - 1;
	cr_assert_eq(g->rc[i], 0, "%s was not restored: it gets nothing", g->cid[i]);
	cr_assert_lt(g->n, GOT_MAX);
	struct got *e = &g->g[g->n++];
	memset(e, 0, sizeof(*e));
	_Static_assert(sizeof(e->cid) == sizeof(g->cid[0]), "client ids of one size");
	memcpy(e->cid, g->cid[i], sizeof(e->cid)); /* (snprintf: -Wrestrict, one struct) */
	e->qos = qos;
	e->flags = flags;
	e->sub_id = sub_id;
	e->pid = pid;
	if (!m) {
		g->releases_began = true;
		cr_assert(qos == 2 || qos == 0, "%s: a PUBREL (2) or an inbound id (0)", e->cid);
		e->kind = qos == 2 ? G_REL : G_IN;
		cr_assert_eq(flags, 0);
		cr_assert_eq(sub_id, 0);
		cr_assert_gt(pid, 0, "%s: a packet id", e->cid);
		return;
	}
	e->kind = G_MSG;
	e->stamp = m->jstamp;
	cr_assert(!g->releases_began, "%s: messages before PUBRELs and inbound ids", e->cid);
	cr_assert(m->recovered, "%s: message %llu marked as recovered", e->cid,
	          (unsigned long long)m->jstamp);
	cr_assert_gt(m->jstamp, g->last[i], "%s: message %llu after %llu: stamp order, once each",
	             e->cid, (unsigned long long)m->jstamp, (unsigned long long)g->last[i]);
	g->last[i] = m->jstamp;
	char want[24];
	snprintf(want, sizeof(want), "m%llu", (unsigned long long)m->jstamp);
	cr_assert(m->pub.payload.len == strlen(want) &&
	              memcmp(m->pub.payload.ptr, want, m->pub.payload.len) == 0,
	          "%s: the message of stamp %s", e->cid, want);
	cr_assert(mqtt_view_eq_str(m->pub.topic, "m/x"));
	cr_assert_eq(m->pub.qos, 2);
	cr_assert(!m->pub.retain);
	if (m->expires_at_ms)
		cr_assert_gt(m->expires_at_ms, NOW, "%s: %s not expired", e->cid, want);
	cr_assert(qos == 1 || qos == 2);
	if (qos != 2)
		cr_assert_eq(pid, 0, "%s: only a QoS 2 delivery has a packet id", e->cid);
	msg_unref(m);
}

static void no_retained(void *ctx, struct msg *m)
{
	(void)ctx;
	msg_unref(m);
	cr_assert_fail("no retained message in this journal");
}

static int got_cmp(const void *a, const void *b)
{
	const struct got *x = a, *y = b;
	int c = strcmp(x->cid, y->cid);
	if (c)
		return c;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if (x->stamp != y->stamp)
		return x->stamp < y->stamp ? -1 : 1;
	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

static const char *const got_kinds[] = {"message", "PUBREL", "inbound"};

/* got[0..n) and want[0..wn) hold the same entries, in any order. */
static void got_expect(const struct got *got, size_t n, const struct got *want, size_t wn,
                       const char *what)
{
	struct got a[GOT_MAX], b[GOT_MAX];
	cr_assert(n <= GOT_MAX && wn <= GOT_MAX);
	memcpy(a, got, n * sizeof(*a));
	memcpy(b, want, wn * sizeof(*b));
	qsort(a, n, sizeof(*a), got_cmp);
	qsort(b, wn, sizeof(*b), got_cmp);
	for (size_t i = 0; i < n || i < wn; i++) {
		cr_assert(i < n, "%s: %s missing its %s %llu (pid %u)", what, b[i].cid,
		          got_kinds[b[i].kind], (unsigned long long)b[i].stamp, b[i].pid);
		cr_assert(i < wn, "%s: %s got %s %llu (pid %u), not expected", what, a[i].cid,
		          got_kinds[a[i].kind], (unsigned long long)a[i].stamp, a[i].pid);
		const struct got *x = &a[i], *y = &b[i];
		cr_assert(
		    got_cmp(x, y) == 0 && x->qos == y->qos && x->flags == y->flags &&
		        x->sub_id == y->sub_id,
		    "%s: entry %zu: %s %s %llu qos %u flags %u sub %u pid %u, want %s %s %llu "
		    "qos %u flags %u sub %u pid %u",
		    what, i, x->cid, got_kinds[x->kind], (unsigned long long)x->stamp, x->qos,
		    x->flags, x->sub_id, x->pid, y->cid, got_kinds[y->kind],
		    (unsigned long long)y->stamp, y->qos, y->flags, y->sub_id, y->pid);
	}
}

/* recover_run on dir, which must succeed, into g; the counts agree with
 * what the callbacks were given. */
static void recover_msgs(const char *dir, struct mgot *g, struct recover_result *res)
{
	static struct config c;
	config_for(&c, dir);
	char err[256] = "";
	cr_assert_eq(
	    recover_run(&c, NOW, no_retained, mgot_sess, mgot_msg, g, res, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(res->sessions + res->sessions_refused + res->sessions_expired, g->sessions);
	uint64_t count[3] = {0};
	for (size_t i = 0; i < g->n; i++)
		count[g->g[i].kind]++;
	cr_assert_eq(res->messages, count[G_MSG], "res.messages counts what was given");
	cr_assert_eq(res->releases, count[G_REL], "res.releases counts what was given");
	cr_assert_eq(res->inbound, count[G_IN], "res.inbound counts what was given");
	cr_assert_eq(res->next_stamp, 1, "the retained order is its own");
	cr_assert_eq(res->unknown + res->rejected, 0);
}

/* ---- the model: README "Messages", applied to a list of records ---------- */

struct mmodel {
	struct got g[GOT_MAX];
	size_t n;
	uint64_t sessions, refused, expired_sessions;
	uint64_t messages, expired, orphaned, releases, inbound;
	uint64_t next_sess_stamp, next_run;
};

static bool is_sess(const struct jop *o)
{
	return o->kind == J_PLACED || o->kind == J_END;
}

/* The session record of cid with the highest stamp: NULL when none. */
static const struct jop *last_sess(const struct jop *ops, size_t n, const char *cid)
{
	const struct jop *last = NULL;
	for (size_t i = 0; i < n; i++)
		if (is_sess(&ops[i]) && strcmp(ops[i].cid, cid) == 0 &&
		    (!last || ops[i].stamp > last->stamp))
			last = &ops[i];
	return last;
}

static uint64_t end_of(const struct jop *ops, size_t n, const char *cid)
{
	uint64_t end = 0;
	for (size_t i = 0; i < n; i++)
		if (ops[i].kind == J_END && strcmp(ops[i].cid, cid) == 0 && ops[i].stamp > end)
			end = ops[i].stamp;
	return end;
}

static bool restored(const struct jop *ops, size_t n, const char *cid, const char *refuse,
                     const char *tire)
{
	const struct jop *last = last_sess(ops, n, cid);
	return last && last->kind == J_PLACED && !(refuse && strcmp(cid, refuse) == 0) &&
	       !(tire && strcmp(cid, tire) == 0);
}

static bool rel_key(const struct jop *a, const struct jop *b)
{
	bool ain = a->kind == J_IN || a->kind == J_IN_REL || a->kind == J_MSG_IN;
	bool bin = b->kind == J_IN || b->kind == J_IN_REL || b->kind == J_MSG_IN;
	return ain == bin && a->pid == b->pid && strcmp(a->cid, b->cid) == 0;
}

static bool is_rel(const struct jop *o)
{
	return o->kind == J_REL || o->kind == J_COMP || o->kind == J_IN || o->kind == J_IN_REL ||
	       o->kind == J_MSG_IN;
}

static void model_add(struct mmodel *out, const char *cid, uint8_t kind, uint64_t stamp,
                      uint8_t qos, uint8_t flags, uint32_t sub_id, uint16_t pid)
{
	cr_assert_lt(out->n, GOT_MAX);
	struct got *e = &out->g[out->n++];
	memset(e, 0, sizeof(*e));
	snprintf(e->cid, sizeof(e->cid), "%s", cid);
	e->kind = kind;
	e->stamp = stamp;
	e->qos = qos;
	e->flags = flags;
	e->sub_id = sub_id;
	e->pid = pid;
}

static void model_msgs(const struct jop *ops, size_t n, const char *refuse, const char *tire,
                       struct mmodel *out)
{
	memset(out, 0, sizeof(*out));
	uint64_t max_stamp = 0, max_run = 0;
	for (size_t i = 0; i < n; i++) {
		if (ops[i].stamp > max_stamp)
			max_stamp = ops[i].stamp;
		if (ops[i].run > max_run)
			max_run = ops[i].run;
	}
	out->next_sess_stamp = max_stamp + 1;
	out->next_run = max_run + 1;

	/* Sessions: each client id whose last record is a PLACED is offered. */
	for (size_t i = 0; i < n; i++) {
		if (!is_sess(&ops[i]) || last_sess(ops, i, ops[i].cid))
			continue; /* not a session record, or its client id seen before */
		if (last_sess(ops, n, ops[i].cid)->kind != J_PLACED)
			continue;
		if (refuse && strcmp(ops[i].cid, refuse) == 0)
			out->refused++;
		else if (tire && strcmp(ops[i].cid, tire) == 0)
			out->expired_sessions++;
		else
			out->sessions++;
	}

	/* Messages, in stamp order (a stable sort: file order within a stamp). */
	const struct jop *msgs[128];
	size_t nm = 0;
	for (size_t i = 0; i < n; i++) {
		if (ops[i].kind != J_MSG && ops[i].kind != J_MSG_IN)
			continue;
		cr_assert_lt(nm, COUNT(msgs));
		size_t at = nm++;
		while (at > 0 && msgs[at - 1]->stamp > ops[i].stamp) {
			msgs[at] = msgs[at - 1];
			at--;
		}
		msgs[at] = &ops[i];
	}
	struct {
		uint64_t stamp;
		const char *cid;
	} given[128];
	size_t ng = 0;
	for (size_t k = 0; k < nm; k++) {
		const struct jop *j = msgs[k];
		for (size_t ti = 0; ti < jop_targets(j); ti++) {
			const struct rec_msg_target *t = &j->t[ti];
			/* The place: whose PLACED named it, and its last stamp. */
			const char *cid = NULL;
			uint64_t last_put = 0;
			for (size_t i = 0; i < n; i++) {
				if (ops[i].kind != J_PLACED || ops[i].run != j->run ||
				    !sess_id_eq(ops[i].at, t->id))
					continue;
				if (!cid)
					cid = ops[i].cid;
				if (ops[i].stamp > last_put)
					last_put = ops[i].stamp;
			}
			if (!cid || !restored(ops, n, cid, refuse, tire) ||
			    end_of(ops, n, cid) > last_put) {
				out->orphaned++;
				continue;
			}
			bool done = false, seen = false;
			for (size_t i = 0; i < n; i++)
				done |= ((ops[i].kind == J_DONE && ops[i].stamp == j->stamp) ||
				         (ops[i].kind == J_REL && ops[i].msg_stamp == j->stamp)) &&
				        strcmp(ops[i].cid, cid) == 0;
			for (size_t i = 0; i < ng; i++)
				seen |=
				    given[i].stamp == j->stamp && strcmp(given[i].cid, cid) == 0;
			if (done || seen)
				continue;
			cr_assert_lt(ng, COUNT(given));
			given[ng].stamp = j->stamp;
			given[ng++].cid = cid;
			if (j->expiry == EXP_PASSED) {
				out->expired++;
				continue;
			}
			/* A QoS 2 delivery that went out: the packet id of its
			 * last REC_MSG_SENT by stamp. */
			const struct jop *sent = NULL;
			for (size_t i = 0; t->qos == 2 && i < n; i++)
				if (ops[i].kind == J_SENT && ops[i].msg_stamp == j->stamp &&
				    strcmp(ops[i].cid, cid) == 0 &&
				    (!sent || ops[i].stamp > sent->stamp))
					sent = &ops[i];
			out->messages++;
			model_add(out, cid, G_MSG, j->stamp, t->qos, t->flags, t->sub_id,
			          sent ? sent->pid : 0);
		}
	}

	/* Per (client id, packet id, which way) the last record by stamp. */
	for (size_t i = 0; i < n; i++) {
		if (!is_rel(&ops[i]))
			continue;
		bool first = true;
		const struct jop *last = &ops[i];
		for (size_t k = 0; k < n; k++) {
			if (k == i || !is_rel(&ops[k]) || !rel_key(&ops[k], &ops[i]))
				continue;
			if (k < i)
				first = false;
			if (ops[k].stamp > last->stamp)
				last = &ops[k];
		}
		if (!first ||
		    !(last->kind == J_REL || last->kind == J_IN || last->kind == J_MSG_IN) ||
		    !restored(ops, n, last->cid, refuse, tire) ||
		    last->stamp <= end_of(ops, n, last->cid))
			continue;
		if (last->kind == J_REL) {
			out->releases++;
			model_add(out, last->cid, G_REL, 0, 2, 0, 0, last->pid);
		} else {
			out->inbound++;
			model_add(out, last->cid, G_IN, 0, 0, 0, 0, last->pid);
		}
	}
}

/* What recovery gave (g, res) is what the model says of ops. */
static void model_expect(const struct jop *ops, size_t n, const struct mgot *g,
                         const struct recover_result *res, const char *what)
{
	struct mmodel m;
	model_msgs(ops, n, g->refuse, g->tire, &m);
	got_expect(g->g, g->n, m.g, m.n, what);
	cr_assert_eq(res->sessions, m.sessions, "%s: sessions", what);
	cr_assert_eq(res->sessions_refused, m.refused, "%s: sessions refused", what);
	cr_assert_eq(res->sessions_expired, m.expired_sessions, "%s: sessions expired", what);
	cr_assert_eq(res->messages, m.messages, "%s: messages", what);
	cr_assert_eq(res->messages_expired, m.expired, "%s: messages expired", what);
	cr_assert_eq(res->messages_orphaned, m.orphaned, "%s: messages orphaned", what);
	cr_assert_eq(res->releases, m.releases, "%s: releases", what);
	cr_assert_eq(res->inbound, m.inbound, "%s: inbound", what);
	cr_assert_eq(res->next_sess_stamp, m.next_sess_stamp, "%s: next_sess_stamp", what);
	cr_assert_eq(res->next_run, m.next_run, "%s: next_run", what);
}

/* ops of several files, one array (for the model: it does not care which). */
static size_t jops_cat(struct jop *out, size_t cap, const struct jop *a, size_t na,
                       const struct jop *b, size_t nb, const struct jop *c, size_t nc)
{
	cr_assert_leq(na + nb + nc, cap);
	memcpy(out, a, na * sizeof(*a));
	memcpy(out + na, b, nb * sizeof(*b));
	memcpy(out + na + nb, c, nc * sizeof(*c));
	return na + nb + nc;
}

/* clang-format off */
#define GOT_MSG(c, st, q, fl, sub, p)                                                              \
	{.cid = c, .kind = G_MSG, .stamp = (st), .qos = (q), .flags = (fl), .sub_id = (sub), .pid = (p)}
#define GOT_REL(c, p) {.cid = c, .kind = G_REL, .qos = 2, .pid = (p)}
#define GOT_IN(c, p)  {.cid = c, .kind = G_IN, .qos = 0, .pid = (p)}
/* clang-format on */

/* Places of run 7 (and one of run 5) for the next test. */
#define P_MOVER1  AT(0, 1, 1)
#define P_MOVER2  AT(1, 1, 1)
#define P_ALICE   AT(0, 2, 1)
#define P_BOB     AT(1, 2, 1)
#define P_PHX_OLD AT(0, 3, 1)
#define P_PHX_NEW AT(0, 3, 2) /* the same slot, its next generation */
#define P_GONE    AT(0, 4, 1)
#define P_REFUSED AT(1, 3, 1)
#define P_TIRED   AT(1, 4, 1)
#define P_ELDER5  AT(0, 1, 1) /* in run 5: mover's place in run 7 */
#define P_ELDER7  AT(1, 5, 1)
#define P_NOBODY  AT(0, 9, 1) /* no session record names it */
#define P_STAY    AT(1, 6, 1)

Test(recover, messages_reach_the_sessions_their_places_name)
{
	char dir[300];
	data_dir(dir, sizeof(dir), "");
	/* Two writers' segments 3 (the stamps interleave between them) and
	 * worker 1's snapshot of round 4 (its sessions, with fresh stamps,
	 * each followed by a copy of every message it holds, naming its
	 * current place alone); the round's mark was never written, so all
	 * three are read. */
	static const struct jop a[] = {
	    /* elder: placed in run 5, a message then; placed again in run 7
	     * (the start re-places every session): it still gets it, once. */
	    R_PLACED(1, 5, P_ELDER5, "elder"),
	    R_MSG(2, 5, TG(P_ELDER5, 1, 0, 5)),
	    R_PLACED(4, 7, P_MOVER1, "mover"),
	    R_PLACED(5, 7, P_ALICE, "alice"),
	    R_PLACED(7, 7, P_PHX_OLD, "phoenix"),
	    R_PLACED(8, 7, P_GONE, "gone"),
	    R_MSG(11, 7, TG(P_MOVER1, 1, 0, 1), TG(P_ALICE, 1, 1, 2), TG(P_BOB, 2, 2, 3),
	          TG(P_PHX_OLD, 1, 0, 4), TG(P_GONE, 1, 0, 5), TG(P_REFUSED, 1, 0, 6),
	          TG(P_TIRED, 1, 0, 7), TG(P_NOBODY, 1, 0, 8)),
	    R_DONE(11, "alice"),                   /* alice is done with 11; bob is not */
	    R_END(15, "phoenix"),                  /* phoenix ends ... */
	    R_MSG(16, 7, TG(P_PHX_OLD, 1, 0, 4)),  /* (its old place, after the end) */
	    R_PLACED(17, 7, P_PHX_NEW, "phoenix"), /* ... and comes back elsewhere */
	    R_MSG_EXP(18, 7, EXP_TO_COME, TG(P_PHX_NEW, 1, 0, 9), TG(P_ALICE, 2, 1, 10)),
	    /* mover's old place, after it moved (a plan made before): still
	     * mover's, and in this file, read before 13 in the other one. */
	    R_MSG(21, 7, TG(P_MOVER1, 1, 0, 1)),
	    /* stay: an END between two PLACED at one place; the later one,
	     * read last (in the snapshot), is the place's last: 23 reaches it. */
	    R_PLACED(22, 7, P_STAY, "stay"),
	    R_MSG(23, 7, TG(P_STAY, 2, 0, 11)),
	};
	static const struct jop b[] = {
	    R_PLACED(3, 7, P_ELDER7, "elder"),
	    R_PLACED(6, 7, P_BOB, "bob"),
	    R_PLACED(9, 7, P_REFUSED, "refused"),
	    R_PLACED(10, 7, P_TIRED, "tired"),
	    R_PLACED(12, 7, P_MOVER2, "mover"), /* a takeover moved it to worker 1 */
	    R_MSG(13, 7, TG(P_MOVER2, 1, 0, 1), TG(P_BOB, 1, 0, 3)),
	    R_END(19, "gone"),
	    R_MSG_EXP(20, 7, EXP_PASSED, TG(P_MOVER2, 1, 0, 1), TG(P_BOB, 2, 0, 3)),
	    R_END(24, "stay"),
	};
	/* clang-format off */
	static const struct jop snap[] = {
	    R_PLACED(30, 7, P_MOVER2, "mover"), /* mover and the copies of its messages */
	    R_MSG(11, 7, TG(P_MOVER2, 1, 0, 1)),
	    R_MSG(13, 7, TG(P_MOVER2, 1, 0, 1)),
	    R_MSG(21, 7, TG(P_MOVER2, 1, 0, 1)),
	    R_PLACED(31, 7, P_BOB, "bob"), /* bob and his */
	    R_MSG(11, 7, TG(P_BOB, 2, 2, 3)),
	    R_MSG(13, 7, TG(P_BOB, 1, 0, 3)),
	    R_PLACED(32, 7, P_REFUSED, "refused"), /* (no copy of 11 for these two) */
	    R_PLACED(33, 7, P_TIRED, "tired"),
	    R_PLACED(34, 7, P_ELDER7, "elder"),
	    R_MSG(2, 7, TG(P_ELDER7, 1, 0, 5)), /* 2, of run 5: its copy names run 7 */
	    R_PLACED(35, 7, P_STAY, "stay"),
	};
	/* clang-format on */
	write_jops(dir, 0, JOURNAL_KIND_SEGMENT, 3, a, COUNT(a));
	write_jops(dir, 1, JOURNAL_KIND_SEGMENT, 3, b, COUNT(b));
	write_jops(dir, 1, JOURNAL_KIND_SNAPSHOT, 4, snap, COUNT(snap));

	struct mgot g = {.refuse = "refused", .tire = "tired"};
	struct recover_result res;
	recover_msgs(dir, &g, &res);

	static const struct got want[] = {
	    GOT_MSG("elder", 2, 1, 0, 5, 0),
	    GOT_MSG("mover", 11, 1, 0, 1, 0), /* by its old place */
	    GOT_MSG("mover", 13, 1, 0, 1, 0), /* by its new one */
	    GOT_MSG("mover", 21, 1, 0, 1, 0), /* by its old place, after the move */
	    GOT_MSG("alice", 18, 2, 1, 10, 0),
	    GOT_MSG("bob", 11, 2, 2, 3, 0),
	    GOT_MSG("bob", 13, 1, 0, 3, 0),
	    GOT_MSG("phoenix", 18, 1, 0, 9, 0), /* by its new place; 11 and 16 not */
	    GOT_MSG("stay", 23, 2, 0, 11, 0),
	};
	got_expect(g.g, g.n, want, COUNT(want), "recovered");
	cr_assert_eq(res.messages, 9);
	cr_assert_eq(res.messages_expired, 2, "20, to mover and to bob");
	/* 11 to phoenix's old place (it ended after), to gone (ended), to
	 * refused and tired (not restored), to a place nobody held; 16 to
	 * phoenix's old place. */
	cr_assert_eq(res.messages_orphaned, 6);
	cr_assert_eq(res.releases + res.inbound, 0);
	cr_assert_eq(g.sessions, 8, "every client id whose last record is a PLACED (not gone)");
	cr_assert_eq(res.sessions, 6);
	cr_assert_eq(res.sessions_refused, 1);
	cr_assert_eq(res.sessions_expired, 1);
	cr_assert_eq(res.files, 3);
	cr_assert_eq(res.records, COUNT(a) + COUNT(b) + COUNT(snap));
	cr_assert_eq(res.cut, 0);
	cr_assert_eq(res.next_run, 8, "above run 7");
	cr_assert_eq(res.next_sess_stamp, 36, "above the snapshot's last stamp");
	cr_assert_eq(res.next_segment, 5);

	/* The model says the same. */
	struct jop all[64];
	size_t n = jops_cat(all, COUNT(all), a, COUNT(a), b, COUNT(b), snap, COUNT(snap));
	model_expect(all, n, &g, &res, "the model");

	/* Read again: the same (nothing is cut, nothing used up). */
	struct mgot g2 = {.refuse = "refused", .tire = "tired"};
	struct recover_result res2;
	recover_msgs(dir, &g2, &res2);
	got_expect(g2.g, g2.n, want, COUNT(want), "recovered twice");
	cr_assert_eq(res2.messages_orphaned, res.messages_orphaned);

	/* Everyone restored: 11 reaches refused and tired too. */
	struct mgot g3 = {0};
	struct recover_result res3;
	recover_msgs(dir, &g3, &res3);
	cr_assert_eq(res3.sessions, 8);
	cr_assert_eq(res3.messages, 11, "11 to refused and to tired as well");
	cr_assert_eq(res3.messages_orphaned, 4);
	model_expect(all, n, &g3, &res3, "the model, everyone restored");
	no_leaks();
}

/* Places of run 3 for the next test. */
#define P_Q      AT(0, 1, 1)
#define P_PUB    AT(1, 1, 1)
#define P_EX_OLD AT(0, 2, 1)
#define P_EX_NEW AT(0, 2, 2)
#define P_REF    AT(1, 2, 1)

Test(recover, qos2_packet_ids_pubrels_owed_and_inbound_ids)
{
	char dir[300];
	data_dir(dir, sizeof(dir), "");
	/* Read in name order: w000's segment, w000's snapshot, w001's segment.
	 * Where two records of one key disagree, the one read last is never
	 * the one with the highest stamp: only the stamps decide. */
	static const struct jop a[] = {
	    R_PLACED(1, 3, P_Q, "q2"),
	    R_PLACED(3, 3, P_EX_OLD, "ex"),
	    R_MSG(7, 3, TG(P_Q, 2, 0, 2)), /* a QoS 2 delivery not sent yet */
	    R_SENT(8, 5, 22, "q2"),        /* 5 went out again under 22 (21 in w001, before) */
	    R_MSG(9, 3, TG(P_Q, 1, 0, 3)),
	    R_SENT(11, 10, 30, "q2"),
	    R_MSG(13, 3, TG(P_Q, 2, 0, 4)),
	    R_SENT(14, 13, 31, "q2"),
	    R_COMP(16, 31, "q2"),    /* after the REL (w001): 31 is complete */
	    R_REL(20, 17, 32, "q2"), /* after the COMP (w001) of an older use of 32 */
	    R_IN(21, 5, "pub"),
	    R_IN_REL(23, 6, "pub"),
	    R_IN_REL(24, 7, "pub"),
	    R_MSG(27, 3, TG(P_EX_OLD, 2, 0, 6)),
	    R_SENT(28, 27, 40, "ex"),
	    R_REL(29, 0, 41, "ex"),
	    R_IN(30, 42, "ex"),
	    R_END(31, "ex"), /* its PUBREL 41 and inbound 42 go with it */
	    R_PLACED(32, 3, P_EX_NEW, "ex"),
	    R_MSG(33, 3, TG(P_EX_NEW, 2, 0, 7)),
	    R_SENT(34, 33, 40, "ex"), /* 40 again, for the new session's message */
	};
	static const struct jop snap[] = {
	    /* worker 0's sessions at round 2: q2 and ex, fresh stamps */
	    R_PLACED(40, 3, P_Q, "q2"),
	    R_MSG(5, 3, TG(P_Q, 2, 0, 1)),
	    R_SENT(41, 5, 22, "q2"),
	    R_MSG(7, 3, TG(P_Q, 2, 0, 2)),
	    R_MSG(9, 3, TG(P_Q, 1, 0, 3)),
	    R_REL(42, 0, 30, "q2"),
	    R_REL(43, 0, 32, "q2"),
	    R_REL(44, 0, 60, "q2"), /* its segment's REL is gone: the snapshot's holds */
	    R_IN(45, 30, "q2"),     /* inbound 30: another table than PUBREL 30 */
	    R_PLACED(46, 3, P_EX_NEW, "ex"),
	    R_MSG(33, 3, TG(P_EX_NEW, 2, 0, 7)),
	    R_SENT(47, 33, 40, "ex"),
	};
	static const struct jop b[] = {
	    R_PLACED(2, 3, P_PUB, "pub"),
	    R_PLACED(4, 3, P_REF, "refused"),
	    R_MSG(5, 3, TG(P_Q, 2, 0, 1)),
	    R_SENT(6, 5, 21, "q2"),
	    R_MSG(10, 3, TG(P_Q, 2, 0, 5)),
	    R_REL(12, 10, 30, "q2"), /* PUBREC of 10: done with it, PUBREL 30 owed */
	    R_REL(15, 13, 31, "q2"),
	    R_MSG(17, 3, TG(P_Q, 2, 0, 8)),
	    R_SENT(18, 17, 32, "q2"),
	    R_COMP(19, 32, "q2"),
	    R_IN(22, 6, "pub"), /* released at 23 */
	    R_IN(25, 7, "pub"), /* 7 again after its release at 24 */
	    R_IN(26, 30, "q2"),
	    R_MSG(35, 3, TG(P_REF, 2, 0, 9)),
	    R_REL(36, 0, 50, "refused"),
	    R_IN(37, 51, "refused"),
	};
	write_jops(dir, 0, JOURNAL_KIND_SEGMENT, 1, a, COUNT(a));
	write_jops(dir, 0, JOURNAL_KIND_SNAPSHOT, 2, snap, COUNT(snap));
	write_jops(dir, 1, JOURNAL_KIND_SEGMENT, 1, b, COUNT(b));

	struct mgot g = {.refuse = "refused"};
	struct recover_result res;
	recover_msgs(dir, &g, &res);
	static const struct got want[] = {
	    GOT_MSG("q2", 5, 2, 0, 1, 22), /* the later SENT's id */
	    GOT_MSG("q2", 7, 2, 0, 2, 0),
	    GOT_MSG("q2", 9, 1, 0, 3, 0),
	    GOT_REL("q2", 30),
	    GOT_REL("q2", 32),
	    GOT_REL("q2", 60),
	    GOT_IN("q2", 30),
	    GOT_IN("pub", 5),
	    GOT_IN("pub", 7),
	    GOT_MSG("ex", 33, 2, 0, 7, 40),
	};
	got_expect(g.g, g.n, want, COUNT(want), "recovered");
	cr_assert_eq(res.messages, 4, "10, 13, 17 released: not again");
	cr_assert_eq(res.releases, 3);
	cr_assert_eq(res.inbound, 3);
	cr_assert_eq(res.messages_orphaned, 2, "27 to ex's old place, 35 to refused");
	cr_assert_eq(res.messages_expired, 0);
	cr_assert_eq(res.sessions, 3);
	cr_assert_eq(res.sessions_refused, 1);
	cr_assert_eq(res.next_run, 4);
	cr_assert_eq(res.next_sess_stamp, 48);
	cr_assert_eq(res.next_segment, 3);

	struct jop all[64];
	size_t n = jops_cat(all, COUNT(all), a, COUNT(a), snap, COUNT(snap), b, COUNT(b));
	model_expect(all, n, &g, &res, "the model");

	/* refused restored after all: its PUBREL and inbound id come back;
	 * 35 reaches it. */
	struct mgot g2 = {0};
	struct recover_result res2;
	recover_msgs(dir, &g2, &res2);
	cr_assert_eq(res2.messages, 5);
	cr_assert_eq(res2.releases, 4);
	cr_assert_eq(res2.inbound, 4);
	model_expect(all, n, &g2, &res2, "the model, everyone restored");
	no_leaks();
}

/* next_sess_stamp is above the stamp of every kind of record of the
 * sessions' order, and next_run above every run a record names. */
Test(recover, every_record_kind_moves_the_session_order_and_the_run)
{
	static const struct {
		struct jop op;
		uint64_t run; /* next_run wanted */
	} cases[] = {
	    {R_PLACED(50, 2, AT(0, 2, 1), "b"), 3},
	    {R_PLACED(50, 12, AT(0, 2, 1), "b"), 13},
	    {R_END(50, "b"), 3},
	    {R_END(50, "a"), 3},
	    {R_MSG(50, 2, TG(AT(0, 1, 1), 1, 0, 1)), 3},
	    {R_MSG(50, 9, TG(AT(0, 1, 1), 1, 0, 1)), 10}, /* names no place: orphaned */
	    {R_DONE(50, "a"), 3},
	    {R_REL(50, 3, 9, "a"), 3},
	    {R_COMP(50, 9, "a"), 3},
	    {R_SENT(50, 3, 9, "a"), 3},
	    {R_IN(50, 9, "a"), 3},
	    {R_IN_REL(50, 9, "a"), 3},
	};
	for (size_t i = 0; i < COUNT(cases); i++) {
		char dir[300], name[32];
		snprintf(name, sizeof(name), "case-%zu", i);
		data_dir(dir, sizeof(dir), name);
		struct jop ops[] = {R_PLACED(1, 2, AT(0, 1, 1), "a"), cases[i].op};
		write_jops(dir, (uint16_t)i, JOURNAL_KIND_SEGMENT, 1, ops, 2);
		struct mgot g = {0};
		struct recover_result res;
		recover_msgs(dir, &g, &res);
		cr_assert_eq(res.next_sess_stamp, 51, "case %zu", i);
		cr_assert_eq(res.next_run, cases[i].run, "case %zu", i);
		char what[32];
		snprintf(what, sizeof(what), "case %zu", i);
		model_expect(ops, 2, &g, &res, what);
	}
	no_leaks();
}

/* A small journal of every message record kind, one file; in the records
 * the full journal leaves out (DONE, REL, END) things that a prefix of it
 * gives back. */
static const struct jop small_msgs[] = {
    R_PLACED(1, 1, AT(0, 1, 1), "a"),
    R_PLACED(2, 1, AT(0, 2, 1), "b"),
    R_MSG(3, 1, TG(AT(0, 1, 1), 1, 0, 1), TG(AT(0, 2, 1), 2, 0, 2)),
    R_SENT(4, 3, 9, "b"),
    R_MSG(5, 1, TG(AT(0, 1, 1), 2, 0, 1)),
    R_DONE(3, "a"),
    R_REL(7, 5, 10, "a"),
    R_IN(8, 11, "b"),
    R_PLACED(9, 1, AT(0, 3, 1), "a"), /* a moved */
    R_MSG(10, 1, TG(AT(0, 3, 1), 1, 0, 1), TG(AT(0, 2, 1), 1, 0, 2)),
    R_COMP(11, 10, "a"),
    R_END(12, "b"),
    R_PLACED(13, 1, AT(0, 4, 1), "b"), /* b again, elsewhere */
    R_MSG(14, 1, TG(AT(0, 1, 1), 1, 0, 1), TG(AT(0, 2, 1), 2, 0, 2), TG(AT(0, 4, 1), 2, 0, 3)),
    R_SENT(15, 14, 12, "b"),
    R_MSG_EXP(16, 1, EXP_PASSED, TG(AT(0, 3, 1), 1, 0, 1)),
    R_MSG_IN(17, 1, 21, "b", TG(AT(0, 3, 1), 2, 0, 4)), /* b's QoS 2 PUBLISH to a */
    R_MSG_IN(18, 1, 22, "b", TG(AT(0, 3, 1), 1, 0, 5)), /* and one more, released: */
    R_IN_REL(19, 22, "b"),
};
#define SMALL_MSGS COUNT(small_msgs)

/* Is e something the journal holds for its session at all: a message some
 * REC_MSG names it for (with no packet id, or one a REC_MSG_SENT gave it),
 * a PUBREL a REC_MSG_REL made owed, an id a REC_IN_QOS2 received? */
static bool in_small_msgs(const struct got *e)
{
	static const struct {
		const char *cid;
		uint8_t kind;
		uint64_t stamp;
		uint16_t pid;
	} named[] = {
	    {"a", G_MSG, 3, 0},   {"b", G_MSG, 3, 0},  {"b", G_MSG, 3, 9},  {"a", G_MSG, 5, 0},
	    {"a", G_MSG, 10, 0},  {"b", G_MSG, 10, 0}, {"a", G_MSG, 14, 0}, {"b", G_MSG, 14, 0},
	    {"b", G_MSG, 14, 12}, {"a", G_REL, 0, 10}, {"b", G_IN, 0, 11},  {"a", G_MSG, 17, 0},
	    {"b", G_IN, 0, 21},   {"a", G_MSG, 18, 0}, {"b", G_IN, 0, 22},
	};
	for (size_t i = 0; i < COUNT(named); i++)
		if (strcmp(e->cid, named[i].cid) == 0 && e->kind == named[i].kind &&
		    e->stamp == named[i].stamp && e->pid == named[i].pid)
			return true;
	return false;
}

static void small_msgs_check(const struct mgot *g, const struct recover_result *res, size_t k,
                             const char *what)
{
	for (size_t i = 0; i < g->n; i++)
		cr_assert(in_small_msgs(&g->g[i]),
		          "%s: %s got %s %llu (pid %u): not in the journal", what, g->g[i].cid,
		          got_kinds[g->g[i].kind], (unsigned long long)g->g[i].stamp, g->g[i].pid);
	model_expect(small_msgs, k, g, res, what);
}

/* The whole small journal, by hand: what the model is checked against. */
static void small_msgs_whole(const struct mgot *g, const struct recover_result *res)
{
	static const struct got want[] = {
	    GOT_MSG("a", 10, 1, 0, 1, 0),  /* by its new place; 3 done, 5 released */
	    GOT_MSG("a", 14, 1, 0, 1, 0),  /* by its old place */
	    GOT_MSG("b", 14, 2, 0, 3, 12), /* by its new place, under its SENT's id */
	    GOT_MSG("a", 17, 2, 0, 4, 0),  /* a REC_MSG_IN's message */
	    GOT_IN("b", 21),               /* and its inbound id, not released */
	    GOT_MSG("a", 18, 1, 0, 5, 0),  /* the other's message; its id was released */
	};
	got_expect(g->g, g->n, want, COUNT(want), "the whole journal");
	cr_assert_eq(res->messages_expired, 1);
	cr_assert_eq(res->messages_orphaned, 3, "3, 10, 14 to b's place before its end");
	cr_assert_eq(res->next_sess_stamp, 20);
	cr_assert_eq(res->next_run, 2);
}

Test(recover, torn_tail_with_messages_at_every_offset, .timeout = 120)
{
	char dir[300];
	data_dir(dir, sizeof(dir), "");
	struct jfile f;
	jf_init(&f, 0, JOURNAL_KIND_SEGMENT, 1);
	for (size_t i = 0; i < SMALL_MSGS; i++)
		jf_jop(&f, &small_msgs[i]);
	const char *name = journal_name(0, 1, "log");

	for (size_t cut = JOURNAL_HEADER_BYTES; cut <= f.len; cut++) {
		write_bytes(dir, name, f.b, cut);
		size_t k = records_within(&f, cut);
		size_t good = boundary(&f, k);
		char what[64];
		snprintf(what, sizeof(what), "cut at %zu (%zu records before)", cut, k);
		struct mgot g = {0};
		struct recover_result res;
		recover_msgs(dir, &g, &res);
		small_msgs_check(&g, &res, k, what);
		if (k == SMALL_MSGS)
			small_msgs_whole(&g, &res);
		cr_assert_eq(res.records, k, "%s", what);
		cr_assert_eq(res.cut, cut == good ? 0 : 1, "%s", what);
		cr_assert_eq(res.cut_bytes, cut - good, "%s", what);
		cr_assert_eq(size_of(dir, name), good, "%s: the file cut at the last good record",
		             what);
	}
	jf_free(&f);
	no_leaks();
}

Test(recover, flipped_bit_with_messages_at_every_offset, .timeout = 120)
{
	char dir[300];
	data_dir(dir, sizeof(dir), "");
	struct jfile f;
	jf_init(&f, 0, JOURNAL_KIND_SEGMENT, 1);
	for (size_t i = 0; i < SMALL_MSGS; i++)
		jf_jop(&f, &small_msgs[i]);
	const char *name = journal_name(0, 1, "log");
	uint8_t *b = malloc(f.len);
	cr_assert_not_null(b);

	/* Every byte, one bit of it: bit (offset mod 8), so each bit of each
	 * field is flipped somewhere. */
	for (size_t at = JOURNAL_HEADER_BYTES; at < f.len; at++) {
		size_t damaged = records_within(&f, at); /* the record holding byte at */
		unsigned bit = at % 8;
		memcpy(b, f.b, f.len);
		b[at] ^= (uint8_t)(1u << bit);
		write_bytes(dir, name, b, f.len);
		char what[80];
		snprintf(what, sizeof(what), "bit %u of byte %zu (record %zu)", bit, at, damaged);
		struct mgot g = {0};
		struct recover_result res;
		recover_msgs(dir, &g, &res);
		size_t k = res.records;
		cr_assert_leq(k, damaged, "%s: %zu records kept", what, k);
		small_msgs_check(&g, &res, k, what);
		cr_assert_eq(k, damaged, "%s: %zu records kept", what, k);
		cr_assert_eq(res.cut, 1, "%s", what);
		cr_assert_eq(size_of(dir, name), boundary(&f, k), "%s: cut on disk", what);
	}
	free(b);
	jf_free(&f);
	no_leaks();
}
