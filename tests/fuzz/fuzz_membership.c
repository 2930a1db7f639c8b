/*
 * fuzz_membership.c — libFuzzer target over the membership layer's receive
 * path (cluster/swim.h: swim_receive, and what received packets make
 * swim_tick do): datagrams from peers are the one input of the failure
 * detector that an outsider controls.
 *
 * Input: one mode byte, then records, each a big-endian u16 length and
 * that many bytes (a short last record takes what is left; at most
 * RECORDS_MAX). Mode & 3:
 *   0  no secret; each record is a datagram as received
 *   1  secret "fuzz-secret"; each record is a datagram as received (only
 *      seeds carry a right MAC: the fuzzer meets the MAC check)
 *   2  secret; each record is an encoded Packet, which the harness seals
 *      with the right MAC, so the fuzzer reaches what comes after it
 *   3  no secret; each record is an encoded Packet, wrapped as a datagram
 * Between records the virtual clock moves on ((mode >> 2) * 8 + 1 ms) and
 * swim_tick runs when due; at the end the clock runs far ahead (suspicions
 * run out, records are forgotten), the instance leaves and is freed.
 * Seeds: tests/fuzz/make_membership_corpus.py (hand-encoded protobuf).
 *
 * Promises: nothing crashes or leaks (ASan); every verdict is a receive
 * reason; a sealed packet is never refused as AUTH; an unsealed record
 * with neither secret nor MAC is never refused as forged; member counts
 * stay within members_max; every datagram out is within its bound and
 * addressed; every event names a printable member; the counters add up.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_membership: " __VA_ARGS__);                          \
			fputc('\n', stderr);                                                       \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define RECORDS_MAX 16
#define MEMBERS_MAX 8 /* small, so the table fills and records are evicted */

static const uint8_t SECRET[] = "fuzz-secret";
#define SECRET_LEN (sizeof(SECRET) - 1)

static bool printable(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

static size_t put_varint(uint8_t *out, size_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

/* Datagram{packet = 1, mac = 2}, the MAC when sealed: what a peer sends. */
static uint8_t *wrap(const uint8_t *packet, size_t len, bool seal, size_t *out_len)
{
	uint8_t *out = malloc(len + 64);
	size_t n = 0;
	out[n++] = 0x0a;
	n += put_varint(out + n, len);
	if (len)
		memcpy(out + n, packet, len);
	n += len;
	if (seal) {
		unsigned mac_len = 0;
		static const uint8_t none[1];
		out[n++] = 0x12;
		out[n++] = 32;
		HMAC(EVP_sha256(), SECRET, (int)SECRET_LEN, len ? packet : none, len, out + n,
		     &mac_len);
		FUZZ_CHECK(mac_len == 32, "HMAC-SHA256 of %u bytes", mac_len);
		n += 32;
	}
	*out_len = n;
	return out;
}

static void drain(struct swim *s)
{
	struct swim_datagram d;
	while (swim_next_send(s, &d)) {
		FUZZ_CHECK(d.len > 0 && d.len <= SWIM_PUSH_PULL_BYTES_MAX, "datagram of %zu bytes",
		           d.len);
		FUZZ_CHECK(printable(d.to, SWIM_ADDRESS_MAX), "datagram to \"%s\"", d.to);
	}
	struct swim_event ev;
	while (swim_next_event(s, &ev)) {
		FUZZ_CHECK(ev.type >= SWIM_EV_JOINED && ev.type <= SWIM_EV_PAYLOAD, "event %d",
		           (int)ev.type);
		FUZZ_CHECK(printable(ev.name, SWIM_NAME_MAX), "event about \"%s\"", ev.name);
		FUZZ_CHECK(printable(ev.address, SWIM_ADDRESS_MAX), "event address \"%s\"",
		           ev.address);
		FUZZ_CHECK(strcmp(ev.name, "fuzz-self") != 0, "an event about ourselves");
		FUZZ_CHECK(ev.payload_len <= SWIM_PAYLOAD_MAX, "payload of %u", ev.payload_len);
		if (ev.type != SWIM_EV_RESTARTED)
			FUZZ_CHECK(ev.epoch_before == ev.epoch, "epoch_before on %s",
			           swim_event_name(ev.type));
	}
}

static void check_members(const struct swim *s)
{
	size_t total = 0, cursor = 0;
	struct swim_member_info mi;
	while (swim_member_next(s, &cursor, &mi)) {
		FUZZ_CHECK(printable(mi.name, SWIM_NAME_MAX), "member \"%s\"", mi.name);
		FUZZ_CHECK(printable(mi.address, SWIM_ADDRESS_MAX), "address \"%s\"", mi.address);
		FUZZ_CHECK(mi.state >= SWIM_ALIVE && mi.state <= SWIM_LEFT, "state %d",
		           (int)mi.state);
		FUZZ_CHECK(strcmp(mi.name, "fuzz-self") != 0, "ourselves as a member");
		struct swim_member_info again;
		FUZZ_CHECK(swim_member_get(s, mi.name, &again) && again.epoch == mi.epoch,
		           "member %s not found by name", mi.name);
		total++;
	}
	size_t by_state = 0;
	for (int st = SWIM_ALIVE; st <= SWIM_LEFT; st++)
		by_state += swim_member_count(s, (enum swim_state)st);
	FUZZ_CHECK(total == by_state && total <= MEMBERS_MAX, "%zu members, %zu by state", total,
	           by_state);
	FUZZ_CHECK(swim_health_score(s) < 8, "health %u", swim_health_score(s));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned mode = data[0] & 3;
	uint64_t step_ms = (uint64_t)(data[0] >> 2) * 8 + 1;
	bool secret = mode == 1 || mode == 2;

	struct swim_params p;
	FUZZ_CHECK(swim_params_profile(&p, "fast") == 0, "no fast profile");
	p.members_max = MEMBERS_MAX;
	p.events_max = 16;
	p.out_max = 8;
	struct swim_node self = {
	    .name = "fuzz-self",
	    .address = "10.0.0.1:7946",
	    .epoch = 5,
	    .cluster = "fuzz",
	    .secret = secret ? SECRET : NULL,
	    .secret_len = secret ? SECRET_LEN : 0,
	    .seed = 1,
	};
	struct swim *s = swim_new(&p, &self);
	FUZZ_CHECK(s, "swim_new failed");
	uint64_t now = 1000;
	const char *seeds[] = {"10.0.0.2:7946", "10.0.0.3:7946"};
	swim_join(s, now, seeds, 2);
	swim_set_payload(s, (const uint8_t *)"digest", 6);
	drain(s);

	size_t pos = 1, accepted = 0;
	uint64_t received = 0;
	for (int r = 0; r < RECORDS_MAX && pos < size; r++) {
		size_t len = 0;
		if (pos + 2 <= size) {
			len = (size_t)data[pos] << 8 | data[pos + 1];
			pos += 2;
		} else {
			pos = size;
		}
		if (len > size - pos)
			len = size - pos;
		const uint8_t *rec = data + pos;
		pos += len;

		uint8_t *buf;
		size_t buf_len;
		if (mode >= 2) {
			buf = wrap(rec, len, mode == 2, &buf_len);
		} else {
			buf = malloc(len ? len : 1); /* exactly len bytes: ASan sees overreads */
			memcpy(buf, rec, len);
			buf_len = len;
		}
		enum swim_drop why =
		    swim_receive(s, now, r & 1 ? "10.0.0.2:7946" : NULL, buf, buf_len);
		received++;
		FUZZ_CHECK(why <= SWIM_DROP_STALE_EPOCH, "receive says %s", swim_drop_name(why));
		if (mode == 2)
			FUZZ_CHECK(why != SWIM_DROP_AUTH, "a sealed packet refused as forged");
		if (mode == 3)
			FUZZ_CHECK(why != SWIM_DROP_AUTH,
			           "refused as forged, with no secret and no MAC");
		accepted += why == SWIM_DROP_NONE;
		free(buf);

		now += step_ms;
		if (swim_next_deadline_ms(s) <= now)
			swim_tick(s, now);
		drain(s);
		check_members(s);
		/* a member heard of can be probed at once */
		size_t cursor = 0;
		struct swim_member_info mi;
		if (swim_member_next(s, &cursor, &mi)) {
			char name[SWIM_NAME_MAX + 1];
			snprintf(name, sizeof(name), "%s", mi.name);
			int rc = swim_probe_now(s, now, name);
			FUZZ_CHECK(rc == 0 || rc < 0, "probe_now %d", rc);
			drain(s);
		}
	}

	const struct swim_counters *c = swim_counters(s);
	uint64_t refused = 0;
	for (int k = SWIM_DROP_MALFORMED; k <= SWIM_DROP_STALE_EPOCH; k++)
		refused += c->dropped[k];
	FUZZ_CHECK(c->packets_received == received && refused + accepted == received,
	           "%lu received, %lu refused, %zu accepted", (unsigned long)c->packets_received,
	           (unsigned long)refused, accepted);

	/* Let time run: probes fail, suspicions run out, the dead are forgotten. */
	for (int k = 0; k < 40; k++) {
		now += 250;
		swim_tick(s, now);
		drain(s);
		check_members(s);
	}
	now += 120000;
	swim_tick(s, now);
	drain(s);
	check_members(s);
	swim_leave(s, now);
	drain(s);
	swim_free(s);
	return 0;
}
