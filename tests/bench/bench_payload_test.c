/*
 * bench_payload_test.c — the payload header: exact bytes, round trip, and
 * refusal of foreign or short payloads; and the subscriber-side tracker
 * that turns headers into new / late / duplicate.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "payload.h"
#include "track.h"

Test(bench_payload, encodes_fixed_little_endian_layout)
{
	uint8_t buf[PAYLOAD_HEADER_LEN];
	struct payload_header h = {.run_id = 0x01020304,
	                           .pub_id = 0x0a0b0c0d,
	                           .seq = 0x1122334455667788ull,
	                           .sent_ns = 0x0102030405060708ull};
	payload_encode_header(buf, &h);
	static const uint8_t want[PAYLOAD_HEADER_LEN] = {
	    'S',  'B',  'H',  '1',  0x04, 0x03, 0x02, 0x01, 0x0d, 0x0c, 0x0b,
	    0x0a, 0,    0,    0,    0,    0x88, 0x77, 0x66, 0x55, 0x44, 0x33,
	    0x22, 0x11, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
	};
	cr_expect_arr_eq(buf, want, sizeof(want));
}

Test(bench_payload, round_trips)
{
	uint8_t buf[64];
	memset(buf, 'x', sizeof(buf));
	struct payload_header h = {
	    .run_id = 7, .pub_id = 123456, .seq = 1ull << 40, .sent_ns = 1700000000123456789ull};
	payload_encode_header(buf, &h);
	struct payload_header out;
	cr_assert(payload_decode_header(buf, sizeof(buf), &out));
	cr_expect_eq(out.run_id, 7);
	cr_expect_eq(out.pub_id, 123456);
	cr_expect_eq(out.seq, 1ull << 40);
	cr_expect_eq(out.sent_ns, 1700000000123456789ull);
	cr_expect_eq(buf[PAYLOAD_HEADER_LEN], 'x', "filler after the header is untouched");
}

Test(bench_payload, refuses_short_and_foreign_payloads)
{
	uint8_t buf[PAYLOAD_HEADER_LEN];
	struct payload_header h = {.run_id = 1, .pub_id = 2, .seq = 3, .sent_ns = 4}, out;
	payload_encode_header(buf, &h);
	cr_expect_not(payload_decode_header(buf, PAYLOAD_HEADER_LEN - 1, &out));
	cr_expect_not(
	    payload_decode_header((const uint8_t *)"hello world, not a bench payload!", 33, &out));
	buf[0] ^= 1;
	cr_expect_not(payload_decode_header(buf, sizeof(buf), &out));
}

Test(bench_track, in_order_late_and_duplicates)
{
	struct track t;
	cr_assert_eq(track_init(&t, 16), 0);
	cr_expect_eq(track_see(&t, 1, 9, 0), TRACK_NEW);
	cr_expect_eq(track_see(&t, 1, 9, 1), TRACK_NEW);
	cr_expect_eq(track_see(&t, 1, 9, 1), TRACK_DUP);
	cr_expect_eq(track_see(&t, 1, 9, 5), TRACK_NEW, "a gap is not yet loss");
	cr_expect_eq(track_see(&t, 1, 9, 3), TRACK_LATE);
	cr_expect_eq(track_see(&t, 1, 9, 3), TRACK_DUP);
	cr_expect_eq(track_see(&t, 1, 9, 0), TRACK_DUP);
	/* another publisher and another sink are tracked apart */
	cr_expect_eq(track_see(&t, 1, 10, 1), TRACK_NEW);
	cr_expect_eq(track_see(&t, 2, 9, 1), TRACK_NEW);
	/* the window slides across word boundaries */
	for (uint64_t s = 6; s < 1000; s++)
		cr_assert_eq(track_see(&t, 1, 9, s), TRACK_NEW);
	cr_expect_eq(track_see(&t, 1, 9, 999 - 64), TRACK_DUP);
	cr_expect_eq(track_see(&t, 1, 9, 999 - 200), TRACK_DUP);
	cr_expect_eq(track_see(&t, 1, 9, 10), TRACK_LATE, "older than the window");
	track_free(&t);
}

Test(bench_track, full_table_says_no_room)
{
	struct track t;
	cr_assert_eq(track_init(&t, 1), 0);
	int noroom = 0;
	for (uint32_t p = 0; p < 1000; p++)
		noroom += track_see(&t, 0, p, 0) == TRACK_NOROOM;
	cr_expect(noroom > 0, "a bounded table must refuse, not grow");
	track_free(&t);
}
