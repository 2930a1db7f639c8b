/*
 * stats_test.c — a worker's statistics as other threads see them: publish
 * then read gives back every word, stats_add sums word by word, the word
 * index macros agree with offsetof(), the CONNACK slot and loop bucket
 * classifications (inclusive "le" bounds, the +Inf bucket), the close
 * reason of every server reason code and the label names, and a reader
 * racing a publishing writer never sees a counter go backwards or a value
 * that was never published.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "ops/stats.h"
#include "mqtt.h"

/* ---- word views --------------------------------------------------------- */

static void to_words(const struct worker_stats *s, uint64_t w[STATS_WORDS])
{
	memcpy(w, s, sizeof(*s));
}

static void from_words(struct worker_stats *s, const uint64_t w[STATS_WORDS])
{
	memcpy(s, w, sizeof(*s));
}

/* Distinct, non-trivial values per word (and different high bits, so a
 * copy that truncated to 32 bits would show). */
static void fill(struct worker_stats *s, uint64_t seed)
{
	uint64_t w[STATS_WORDS];
	for (size_t i = 0; i < STATS_WORDS; i++)
		w[i] = seed * 0x9E3779B97F4A7C15ULL + (uint64_t)i * 0x100000001ULL + 1;
	from_words(s, w);
}

/* ---- publish / read / add ---------------------------------------------- */

Test(stats, publish_then_read_returns_every_word)
{
	static struct stats_pub pub; /* static: zeroed, and 64-byte aligned */
	struct worker_stats in, out;
	fill(&in, 7);
	memset(&out, 0xA5, sizeof(out));

	stats_publish(&pub, &in);
	stats_read(&pub, &out);
	cr_assert_eq(memcmp(&in, &out, sizeof(in)), 0);

	uint64_t wi[STATS_WORDS], wo[STATS_WORDS];
	to_words(&in, wi);
	to_words(&out, wo);
	for (size_t i = 0; i < STATS_WORDS; i++)
		cr_assert_eq(wo[i], wi[i], "word %zu: %llu != %llu", i, (unsigned long long)wo[i],
		             (unsigned long long)wi[i]);
	/* A few by name, so the test reads like what a scrape would check. */
	cr_assert_eq(out.conns_accepted, in.conns_accepted);
	cr_assert_eq(out.msgs_in[2], in.msgs_in[2]);
	cr_assert_eq(out.loop_busy_hist[STATS_LOOP_BUCKETS - 1],
	             in.loop_busy_hist[STATS_LOOP_BUCKETS - 1]);
	cr_assert_eq(out.last_turn_ms, in.last_turn_ms);
}

Test(stats, republish_replaces_previous_values)
{
	static struct stats_pub pub;
	struct worker_stats a, b, out;
	fill(&a, 1);
	fill(&b, 2);
	stats_publish(&pub, &a);
	stats_publish(&pub, &b);
	stats_read(&pub, &out);
	cr_assert_eq(memcmp(&out, &b, sizeof(b)), 0);

	/* Publishing all zeros is visible too (no "skip zero" shortcut). */
	memset(&a, 0, sizeof(a));
	stats_publish(&pub, &a);
	stats_read(&pub, &out);
	cr_assert_eq(memcmp(&out, &a, sizeof(a)), 0);
}

Test(stats, add_sums_field_by_field)
{
	struct worker_stats a, b, sum;
	fill(&a, 3);
	fill(&b, 11);
	a.conns_accepted = 10;
	b.conns_accepted = 32;
	a.msgs_in[1] = 5;
	b.msgs_in[1] = 7;
	a.conns_closed[CLOSE_KEEPALIVE_TIMEOUT] = 100;
	b.conns_closed[CLOSE_KEEPALIVE_TIMEOUT] = 1;
	a.last_turn_ms = 1000;
	b.last_turn_ms = 2000;

	sum = a;
	stats_add(&sum, &b);
	cr_assert_eq(sum.conns_accepted, 42);
	cr_assert_eq(sum.msgs_in[1], 12);
	cr_assert_eq(sum.conns_closed[CLOSE_KEEPALIVE_TIMEOUT], 101);
	cr_assert_eq(sum.last_turn_ms, 3000);

	uint64_t wa[STATS_WORDS], wb[STATS_WORDS], ws[STATS_WORDS];
	to_words(&a, wa);
	to_words(&b, wb);
	to_words(&sum, ws);
	for (size_t i = 0; i < STATS_WORDS; i++)
		cr_assert_eq(ws[i], wa[i] + wb[i], "word %zu", i);

	/* The addend is left alone. */
	struct worker_stats b2;
	fill(&b2, 11);
	b2.conns_accepted = 32;
	b2.msgs_in[1] = 7;
	b2.conns_closed[CLOSE_KEEPALIVE_TIMEOUT] = 1;
	b2.last_turn_ms = 2000;
	cr_assert_eq(memcmp(&b, &b2, sizeof(b)), 0);
}

Test(stats, add_into_zero_is_a_copy)
{
	struct worker_stats z = {0}, a;
	fill(&a, 5);
	stats_add(&z, &a);
	cr_assert_eq(memcmp(&z, &a, sizeof(a)), 0);
}

Test(stats, word_index_is_offset_over_eight)
{
	cr_assert_eq(STATS_WORDS * 8, sizeof(struct worker_stats));
	cr_assert_eq(STATS_WORD(conns_accepted), 0);
	cr_assert_eq(STATS_WORD(conns_accepted), offsetof(struct worker_stats, conns_accepted) / 8);
	cr_assert_eq(STATS_WORD(drops_expired), offsetof(struct worker_stats, drops_expired) / 8);
	cr_assert_eq(STATS_WORD(loop_turns), offsetof(struct worker_stats, loop_turns) / 8);
	cr_assert_eq(STATS_WORD(last_turn_ms), offsetof(struct worker_stats, last_turn_ms) / 8);
	cr_assert_eq(STATS_WORD(last_turn_ms), STATS_WORDS - 1);

	/* And the index addresses the field: write through the word view. */
	struct worker_stats s = {0};
	uint64_t w[STATS_WORDS] = {0};
	w[STATS_WORD(drops_denied)] = 77;
	from_words(&s, w);
	cr_assert_eq(s.drops_denied, 77);
}

/* ---- CONNACK slots ------------------------------------------------------ */

Test(stats, connack_slot_of_codes)
{
	cr_assert_eq(stats_connack_slot(MQTT_RC_SUCCESS), 0);
	cr_assert_eq(stats_connack_slot(MQTT_RC_UNSPECIFIED_ERROR), 1);
	cr_assert_eq(stats_connack_slot(MQTT_RC_NOT_AUTHORIZED), 8);
	cr_assert_eq(stats_connack_slot(MQTT_RC_CONNECTION_RATE_EXCEEDED), 32);
	cr_assert_eq(stats_connack_slot((enum mqtt_rc)0x01), STATS_CONNACK_SLOTS - 1);
	cr_assert_eq(stats_connack_slot((enum mqtt_rc)0xA0), STATS_CONNACK_SLOTS - 1);
	cr_assert_eq(stats_connack_slot((enum mqtt_rc)0x7F), STATS_CONNACK_SLOTS - 1);
	cr_assert_eq(STATS_CONNACK_SLOTS - 1, 33);
}

Test(stats, connack_code_inverts_slot)
{
	cr_assert_eq(stats_connack_code(0), 0x00);
	for (unsigned s = 1; s <= 32; s++)
		cr_assert_eq(stats_connack_code(s), 0x80 + s - 1, "slot %u", s);
	cr_assert_eq(stats_connack_code(33), 0xFF);
	for (unsigned s = 0; s <= 32; s++)
		cr_assert_eq(stats_connack_slot((enum mqtt_rc)stats_connack_code(s)), s, "slot %u",
		             s);
	for (unsigned rc = 0x80; rc <= 0x9F; rc++) {
		unsigned s = stats_connack_slot((enum mqtt_rc)rc);
		cr_assert_lt(s, STATS_CONNACK_SLOTS, "rc 0x%02X", rc);
		cr_assert_eq(stats_connack_code(s), rc, "rc 0x%02X", rc);
	}
}

/* ---- loop histogram ----------------------------------------------------- */

Test(stats, loop_bounds_strictly_increase)
{
	cr_assert_gt(stats_loop_bounds_ns[0], 0);
	for (unsigned i = 1; i < STATS_LOOP_BUCKETS - 1; i++)
		cr_assert_gt(stats_loop_bounds_ns[i], stats_loop_bounds_ns[i - 1], "bound %u", i);
	cr_assert_eq(stats_loop_bounds_ns[0], 10000);
	cr_assert_eq(stats_loop_bounds_ns[STATS_LOOP_BUCKETS - 2], 1000000000ULL);
}

Test(stats, loop_bucket_bounds_are_inclusive)
{
	cr_assert_eq(stats_loop_bucket(0), 0);
	cr_assert_eq(stats_loop_bucket(10000), 0);
	cr_assert_eq(stats_loop_bucket(10001), 1);
	for (unsigned i = 0; i < STATS_LOOP_BUCKETS - 1; i++) {
		uint64_t b = stats_loop_bounds_ns[i];
		cr_assert_eq(stats_loop_bucket(b), i, "bound %u (%llu ns)", i,
		             (unsigned long long)b);
		cr_assert_eq(stats_loop_bucket(b + 1), i + 1, "just above bound %u", i);
		if (i > 0)
			cr_assert_eq(stats_loop_bucket(stats_loop_bounds_ns[i - 1] + 1), i);
	}
	cr_assert_eq(stats_loop_bucket(1000000001ULL), STATS_LOOP_BUCKETS - 1);
	cr_assert_eq(stats_loop_bucket(60ULL * 1000000000ULL), STATS_LOOP_BUCKETS - 1);
	cr_assert_eq(stats_loop_bucket(UINT64_MAX), STATS_LOOP_BUCKETS - 1);
}

/* ---- close reasons ------------------------------------------------------ */

Test(stats, close_reason_of_server_codes)
{
	cr_assert_eq(stats_close_reason_of(MQTT_RC_SUCCESS), CLOSE_CLIENT_DISCONNECT);
	cr_assert_eq(stats_close_reason_of(MQTT_RC_DISCONNECT_WITH_WILL), CLOSE_CLIENT_DISCONNECT);
	cr_assert_eq(stats_close_reason_of(MQTT_RC_KEEP_ALIVE_TIMEOUT), CLOSE_KEEPALIVE_TIMEOUT);
	cr_assert_eq(stats_close_reason_of(MQTT_RC_SESSION_TAKEN_OVER), CLOSE_TAKEN_OVER);
	cr_assert_eq(stats_close_reason_of(MQTT_RC_SERVER_SHUTTING_DOWN), CLOSE_SHUTDOWN);

	static const unsigned limit[] = {0x95, 0x93, 0x97, 0x96, 0x9F};
	for (size_t i = 0; i < sizeof(limit) / sizeof(limit[0]); i++)
		cr_assert_eq(stats_close_reason_of((enum mqtt_rc)limit[i]), CLOSE_LIMIT, "0x%02X",
		             limit[i]);
	static const unsigned server[] = {0x80, 0x83, 0x88, 0x89};
	for (size_t i = 0; i < sizeof(server) / sizeof(server[0]); i++)
		cr_assert_eq(stats_close_reason_of((enum mqtt_rc)server[i]), CLOSE_SERVER_ERROR,
		             "0x%02X", server[i]);
	static const unsigned proto[] = {0x81, 0x82, 0x94, 0x90};
	for (size_t i = 0; i < sizeof(proto) / sizeof(proto[0]); i++)
		cr_assert_eq(stats_close_reason_of((enum mqtt_rc)proto[i]), CLOSE_PROTOCOL_ERROR,
		             "0x%02X", proto[i]);

	/* Every code lands on a real reason, never CLOSE_UNSET. */
	for (unsigned rc = 0; rc <= 0xFF; rc++) {
		enum close_reason r = stats_close_reason_of((enum mqtt_rc)rc);
		cr_assert(r > CLOSE_UNSET && r < CLOSE_REASON_COUNT, "0x%02X -> %d", rc, (int)r);
	}
}

static bool is_label_word(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
			return false;
	return true;
}

Test(stats, close_reason_names_distinct_and_labelable)
{
	for (unsigned r = CLOSE_UNSET + 1; r < CLOSE_REASON_COUNT; r++) {
		const char *n = stats_close_reason_name((enum close_reason)r);
		cr_assert_not_null(n, "reason %u", r);
		cr_assert(is_label_word(n), "reason %u: \"%s\" is not [a-z_]+", r, n);
		cr_assert_str_neq(n, "unknown", "reason %u", r);
		for (unsigned q = CLOSE_UNSET + 1; q < r; q++)
			cr_assert_str_neq(n, stats_close_reason_name((enum close_reason)q),
			                  "reasons %u and %u share \"%s\"", q, r, n);
	}
	cr_assert_str_eq(stats_close_reason_name(CLOSE_KEEPALIVE_TIMEOUT), "keep_alive_timeout");
	cr_assert_str_eq(stats_close_reason_name(CLOSE_REASON_COUNT), "unknown");
	cr_assert_str_eq(stats_close_reason_name((enum close_reason)1000), "unknown");
	cr_assert_str_eq(stats_close_reason_name((enum close_reason) - 1), "unknown");
}

/* ---- a reader racing the writer ----------------------------------------- */

#define RACE_PUBLISHES 200000
#define RACE_SENTINEL  0x5EED5EED5EED5EEDULL

static struct stats_pub race_pub;
static atomic_bool race_done;
static atomic_bool race_reading; /* the reader has made its first read */

static void *race_writer(void *arg)
{
	(void)arg;
	struct worker_stats s;
	uint64_t w[STATS_WORDS];
	for (size_t i = 0; i < STATS_WORDS; i++)
		w[i] = RACE_SENTINEL;
	from_words(&s, w);
	/* Start once the reader reads, so the two really overlap (on a
	 * loaded machine the writer could otherwise finish first). */
	while (!atomic_load(&race_reading))
		sched_yield();
	for (uint64_t n = 1; n <= RACE_PUBLISHES; n++) {
		s.loop_turns = n;
		s.msgs_in[0] = n;
		stats_publish(&race_pub, &s);
	}
	atomic_store(&race_done, true);
	return NULL;
}

struct race_result {
	uint64_t reads;
	uint64_t last_turns;
	uint64_t last_msgs;
	uint64_t backwards;
	uint64_t garbage;
	uint64_t out_of_range;
};

static void race_check(struct race_result *r, const struct worker_stats *s)
{
	uint64_t w[STATS_WORDS];
	to_words(s, w);
	for (size_t i = 0; i < STATS_WORDS; i++) {
		if (i == STATS_WORD(loop_turns) || i == STATS_WORD(msgs_in[0]))
			continue;
		if (w[i] != RACE_SENTINEL)
			r->garbage++;
	}
	if (s->loop_turns < r->last_turns || s->msgs_in[0] < r->last_msgs)
		r->backwards++;
	if (s->loop_turns == 0 || s->loop_turns > RACE_PUBLISHES || s->msgs_in[0] == 0 ||
	    s->msgs_in[0] > RACE_PUBLISHES)
		r->out_of_range++;
	r->last_turns = s->loop_turns;
	r->last_msgs = s->msgs_in[0];
	r->reads++;
}

static void *race_reader(void *arg)
{
	struct race_result *r = arg;
	struct worker_stats s;
	while (!atomic_load(&race_done)) {
		stats_read(&race_pub, &s);
		race_check(r, &s);
		atomic_store(&race_reading, true);
	}
	/* One read after the writer finished: the last publication is whole. */
	stats_read(&race_pub, &s);
	race_check(r, &s);
	return NULL;
}

Test(stats, concurrent_reader_never_sees_counters_go_backwards, .timeout = 60)
{
	/* First publication before the reader starts, so every read sees a
	 * published value (never the zero-initialised copy). */
	struct worker_stats s0;
	uint64_t w[STATS_WORDS];
	for (size_t i = 0; i < STATS_WORDS; i++)
		w[i] = RACE_SENTINEL;
	from_words(&s0, w);
	s0.loop_turns = 1;
	s0.msgs_in[0] = 1;
	stats_publish(&race_pub, &s0);
	atomic_store(&race_done, false);
	atomic_store(&race_reading, false);

	struct race_result r = {0};
	pthread_t wr, rd;
	cr_assert_eq(pthread_create(&rd, NULL, race_reader, &r), 0);
	cr_assert_eq(pthread_create(&wr, NULL, race_writer, NULL), 0);
	cr_assert_eq(pthread_join(wr, NULL), 0);
	cr_assert_eq(pthread_join(rd, NULL), 0);

	cr_log_info("%llu concurrent reads", (unsigned long long)r.reads);
	cr_assert_gt(r.reads, 1);
	cr_assert_eq(r.backwards, 0, "a counter went backwards %llu times",
	             (unsigned long long)r.backwards);
	cr_assert_eq(r.garbage, 0, "%llu words never published were seen",
	             (unsigned long long)r.garbage);
	cr_assert_eq(r.out_of_range, 0, "%llu counter values never published were seen",
	             (unsigned long long)r.out_of_range);
	cr_assert_eq(r.last_turns, RACE_PUBLISHES);
	cr_assert_eq(r.last_msgs, RACE_PUBLISHES);
}
