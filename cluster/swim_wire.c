/*
 * swim_wire.c — membership datagrams as bytes (proto/membership.proto): the
 * only file of the membership layer that sees protobuf-c or OpenSSL. Pure:
 * no I/O, no state; any thread.
 *
 * A datagram is a Datagram{packet, mac}: the encoded Packet and, when the
 * cluster has a secret, HMAC-SHA256(secret, packet). Decoding checks, in
 * this order, so each refusal is counted under the first reason that
 * applies: size and Datagram syntax (MALFORMED), the MAC (AUTH: a packet is
 * not read before it is authenticated), Packet syntax (MALFORMED), the
 * version (VERSION), the cluster name (CLUSTER), then every value against
 * its bounds (MALFORMED). A packet is accepted whole or not at all, so a
 * refused one changes nothing.
 *
 * The MAC proves the packet came from a holder of the secret; it does not
 * hide it or stop replays. A replayed packet can only repeat old news,
 * which epochs and incarnations already order.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base/check.h"
#include "membership.pb-c.h"
#include "swim_int.h"

typedef Starling__Membership__Datagram Datagram;
typedef Starling__Membership__Packet Packet;
typedef Starling__Membership__Member Member;

/* The wire's states are enum swim_state's values: records convert by cast. */
_Static_assert((int)STARLING__MEMBERSHIP__STATE__STATE_ALIVE == (int)SWIM_ALIVE, "alive");
_Static_assert((int)STARLING__MEMBERSHIP__STATE__STATE_SUSPECT == (int)SWIM_SUSPECT, "suspect");
_Static_assert((int)STARLING__MEMBERSHIP__STATE__STATE_DEAD == (int)SWIM_DEAD, "dead");
_Static_assert((int)STARLING__MEMBERSHIP__STATE__STATE_LEFT == (int)SWIM_LEFT, "left");

/* What a decoded datagram holds on to until wire_release. */
struct hold {
	Datagram *dg;
	Packet *pkt;
	struct wire_member members[]; /* the updates, then the records */
};

bool wire_text_ok(const char *s, size_t max)
{
	if (!s || !s[0])
		return false;
	size_t n = 0;
	for (; s[n]; n++)
		if (n >= max || (unsigned char)s[n] < 0x21 || (unsigned char)s[n] > 0x7e)
			return false;
	return true;
}

static bool mac_compute(const struct wire_keys *k, const uint8_t *data, size_t len,
                        uint8_t mac[SWIM_MAC_BYTES])
{
	static const uint8_t none[1];
	unsigned mac_len = 0;
	if (!HMAC(EVP_sha256(), k->secret, (int)k->secret_len, len ? data : none, len, mac,
	          &mac_len))
		return false;
	CHECK(mac_len == SWIM_MAC_BYTES);
	return true;
}

static bool member_ok(const Member *m)
{
	if (!wire_text_ok(m->name, SWIM_NAME_MAX) || !wire_text_ok(m->address, SWIM_ADDRESS_MAX))
		return false;
	if ((int)m->state < (int)SWIM_ALIVE || (int)m->state > (int)SWIM_LEFT)
		return false;
	return !m->from || !m->from[0] || wire_text_ok(m->from, SWIM_NAME_MAX);
}

static void member_in(const Member *m, struct wire_member *out)
{
	*out = (struct wire_member){
	    .name = m->name,
	    .address = m->address,
	    .from = m->from ? m->from : "",
	    .epoch = m->epoch,
	    .incarnation = m->incarnation,
	    .state = (uint8_t)m->state,
	};
}

/* Bounds of everything after the cluster check; true when all hold. */
static bool packet_ok(const Packet *pkt)
{
	if (!wire_text_ok(pkt->from, SWIM_NAME_MAX) ||
	    !wire_text_ok(pkt->from_address, SWIM_ADDRESS_MAX))
		return false;
	if (pkt->ping && !wire_text_ok(pkt->ping->target, SWIM_NAME_MAX))
		return false;
	if (pkt->ping_req && (!wire_text_ok(pkt->ping_req->target, SWIM_NAME_MAX) ||
	                      !wire_text_ok(pkt->ping_req->target_address, SWIM_ADDRESS_MAX)))
		return false;
	if (pkt->n_updates > SWIM_UPDATES_MAX)
		return false;
	for (size_t i = 0; i < pkt->n_updates; i++)
		if (!member_ok(pkt->updates[i]))
			return false;
	const Starling__Membership__PushPull *pp = pkt->push_pull;
	if (pp) {
		if (pp->parts == 0 || pp->part >= pp->parts || pp->n_members > SWIM_RECORDS_MAX)
			return false;
		for (size_t i = 0; i < pp->n_members; i++)
			if (!member_ok(pp->members[i]))
				return false;
	}
	if (pkt->payload && pkt->payload->data.len > SWIM_PAYLOAD_MAX)
		return false;
	return true;
}

enum swim_drop wire_decode(const struct wire_keys *k, const uint8_t *bytes, size_t len,
                           struct wire_packet *out, void **hold)
{
	*hold = NULL;
	if (len == 0 || len > SWIM_DATAGRAM_BYTES_MAX)
		return SWIM_DROP_MALFORMED;
	Datagram *dg = starling__membership__datagram__unpack(NULL, len, bytes);
	if (!dg)
		return SWIM_DROP_MALFORMED;
	enum swim_drop why = SWIM_DROP_NONE;
	Packet *pkt = NULL;
	struct hold *h = NULL;

	if (k->secret) {
		uint8_t mac[SWIM_MAC_BYTES];
		if (dg->mac.len != SWIM_MAC_BYTES ||
		    !mac_compute(k, dg->packet.data, dg->packet.len, mac) ||
		    CRYPTO_memcmp(mac, dg->mac.data, SWIM_MAC_BYTES) != 0) {
			why = SWIM_DROP_AUTH;
			goto fail;
		}
	} else if (dg->mac.len != 0) {
		why =
		    SWIM_DROP_AUTH; /* the sender has a secret we lack: not our cluster's config */
		goto fail;
	}
	pkt = starling__membership__packet__unpack(NULL, dg->packet.len, dg->packet.data);
	if (!pkt) {
		why = SWIM_DROP_MALFORMED;
		goto fail;
	}
	if (pkt->version != SWIM_VERSION) {
		why = SWIM_DROP_VERSION;
		goto fail;
	}
	if (!pkt->cluster || strcmp(pkt->cluster, k->cluster) != 0) {
		why = SWIM_DROP_CLUSTER;
		goto fail;
	}
	if (!packet_ok(pkt)) {
		why = SWIM_DROP_MALFORMED;
		goto fail;
	}

	size_t n_records = pkt->push_pull ? pkt->push_pull->n_members : 0;
	h = malloc(sizeof(*h) + (pkt->n_updates + n_records) * sizeof(struct wire_member));
	if (!h) {
		why = SWIM_DROP_MALFORMED; /* out of memory: as if it never arrived */
		goto fail;
	}
	h->dg = dg;
	h->pkt = pkt;
	for (size_t i = 0; i < pkt->n_updates; i++)
		member_in(pkt->updates[i], &h->members[i]);
	for (size_t i = 0; i < n_records; i++)
		member_in(pkt->push_pull->members[i], &h->members[pkt->n_updates + i]);

	*out = (struct wire_packet){
	    .from = pkt->from,
	    .from_address = pkt->from_address,
	    .from_epoch = pkt->from_epoch,
	    .from_incarnation = pkt->from_incarnation,
	    .from_left = pkt->from_left,
	    .updates = h->members,
	    .updates_len = pkt->n_updates,
	};
	if (pkt->ping) {
		out->has_ping = true;
		out->ping_seq = pkt->ping->seq;
		out->ping_target = pkt->ping->target;
	}
	if (pkt->ack) {
		out->has_ack = true;
		out->ack_seq = pkt->ack->seq;
	}
	if (pkt->ping_req) {
		out->has_ping_req = true;
		out->req_seq = pkt->ping_req->seq;
		out->req_target = pkt->ping_req->target;
		out->req_target_address = pkt->ping_req->target_address;
		out->req_nack = pkt->ping_req->nack;
		out->req_nack_after_ms = pkt->ping_req->nack_after_ms;
	}
	if (pkt->nack) {
		out->has_nack = true;
		out->nack_seq = pkt->nack->seq;
	}
	if (pkt->push_pull) {
		out->has_push_pull = true;
		out->pp_reply = pkt->push_pull->reply;
		out->pp_join = pkt->push_pull->join;
		out->pp_part = pkt->push_pull->part;
		out->pp_parts = pkt->push_pull->parts;
		out->records = h->members + pkt->n_updates;
		out->records_len = n_records;
	}
	if (pkt->payload) {
		out->has_payload = true;
		out->payload = pkt->payload->data.data;
		out->payload_len = pkt->payload->data.len;
	}
	*hold = h;
	return SWIM_DROP_NONE;

fail:
	if (pkt)
		starling__membership__packet__free_unpacked(pkt, NULL);
	starling__membership__datagram__free_unpacked(dg, NULL);
	return why;
}

void wire_release(void *hold)
{
	struct hold *h = hold;
	if (!h)
		return;
	starling__membership__packet__free_unpacked(h->pkt, NULL);
	starling__membership__datagram__free_unpacked(h->dg, NULL);
	free(h);
}

/* ---- encoding ----------------------------------------------------------- */

static size_t varint_size(size_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static void member_out(const struct wire_member *m, Member *out)
{
	starling__membership__member__init(out);
	out->name = (char *)m->name;
	out->address = (char *)m->address;
	out->from = (char *)(m->from ? m->from : "");
	out->epoch = m->epoch;
	out->incarnation = m->incarnation;
	out->state = (Starling__Membership__State)m->state;
}

size_t wire_member_size(const struct wire_member *m)
{
	Member msg;
	member_out(m, &msg);
	size_t n = starling__membership__member__get_packed_size(&msg);
	return 1 + varint_size(n) + n; /* fields 13 (updates) and 5 (members): 1-byte keys */
}

size_t wire_datagram_size(const struct wire_keys *k, size_t packet_len)
{
	return 1 + varint_size(packet_len) + packet_len + (k->secret ? 2 + SWIM_MAC_BYTES : 0);
}

/* A Packet and its parts, filled from p; lists only when with_lists. */
struct enc {
	Packet pkt;
	Starling__Membership__Ping ping;
	Starling__Membership__Ack ack;
	Starling__Membership__PingReq req;
	Starling__Membership__Nack nack;
	Starling__Membership__PushPull pp;
	Starling__Membership__Payload payload;
	Member *msgs;  /* updates then records */
	Member **ptrs; /* likewise */
};

static bool enc_fill(struct enc *e, const struct wire_keys *k, const struct wire_packet *p,
                     bool with_lists)
{
	starling__membership__packet__init(&e->pkt);
	e->msgs = NULL;
	e->ptrs = NULL;
	Packet *pkt = &e->pkt;
	pkt->version = SWIM_VERSION;
	pkt->cluster = (char *)k->cluster;
	pkt->from = (char *)p->from;
	pkt->from_address = (char *)p->from_address;
	pkt->from_epoch = p->from_epoch;
	pkt->from_incarnation = p->from_incarnation;
	pkt->from_left = p->from_left;
	if (p->has_ping) {
		starling__membership__ping__init(&e->ping);
		e->ping.seq = p->ping_seq;
		e->ping.target = (char *)p->ping_target;
		pkt->ping = &e->ping;
	}
	if (p->has_ack) {
		starling__membership__ack__init(&e->ack);
		e->ack.seq = p->ack_seq;
		pkt->ack = &e->ack;
	}
	if (p->has_ping_req) {
		starling__membership__ping_req__init(&e->req);
		e->req.seq = p->req_seq;
		e->req.target = (char *)p->req_target;
		e->req.target_address = (char *)p->req_target_address;
		e->req.nack = p->req_nack;
		e->req.nack_after_ms = p->req_nack_after_ms;
		pkt->ping_req = &e->req;
	}
	if (p->has_nack) {
		starling__membership__nack__init(&e->nack);
		e->nack.seq = p->nack_seq;
		pkt->nack = &e->nack;
	}
	if (p->has_push_pull) {
		starling__membership__push_pull__init(&e->pp);
		e->pp.reply = p->pp_reply;
		e->pp.join = p->pp_join;
		e->pp.part = p->pp_part;
		e->pp.parts = p->pp_parts;
		pkt->push_pull = &e->pp;
	}
	if (p->has_payload) {
		starling__membership__payload__init(&e->payload);
		e->payload.data.data = (uint8_t *)p->payload;
		e->payload.data.len = p->payload_len;
		pkt->payload = &e->payload;
	}
	size_t n = p->updates_len + (p->has_push_pull ? p->records_len : 0);
	if (!with_lists || n == 0)
		return true;
	e->msgs = malloc(n * sizeof(*e->msgs));
	e->ptrs = malloc(n * sizeof(*e->ptrs));
	if (!e->msgs || !e->ptrs)
		return false;
	for (size_t i = 0; i < n; i++) {
		const struct wire_member *m =
		    i < p->updates_len ? &p->updates[i] : &p->records[i - p->updates_len];
		member_out(m, &e->msgs[i]);
		e->ptrs[i] = &e->msgs[i];
	}
	pkt->n_updates = p->updates_len;
	pkt->updates = p->updates_len ? e->ptrs : NULL;
	if (p->has_push_pull) {
		e->pp.n_members = p->records_len;
		e->pp.members = p->records_len ? e->ptrs + p->updates_len : NULL;
	}
	return true;
}

static void enc_done(struct enc *e)
{
	free(e->msgs);
	free(e->ptrs);
}

size_t wire_base_size(const struct wire_keys *k, const struct wire_packet *p)
{
	struct enc e;
	enc_fill(&e, k, p, false);
	size_t n = starling__membership__packet__get_packed_size(&e.pkt);
	enc_done(&e);
	return n;
}

uint8_t *wire_encode(const struct wire_keys *k, const struct wire_packet *p, size_t *len)
{
	struct enc e;
	uint8_t *packet = NULL, *out = NULL;
	if (!enc_fill(&e, k, p, true))
		goto fail;
	size_t packet_len = starling__membership__packet__get_packed_size(&e.pkt);
	packet = malloc(packet_len ? packet_len : 1);
	if (!packet)
		goto fail;
	CHECK(starling__membership__packet__pack(&e.pkt, packet) == packet_len);

	Datagram dg;
	uint8_t mac[SWIM_MAC_BYTES];
	starling__membership__datagram__init(&dg);
	dg.packet.data = packet;
	dg.packet.len = packet_len;
	if (k->secret) {
		if (!mac_compute(k, packet, packet_len, mac))
			goto fail;
		dg.mac.data = mac;
		dg.mac.len = SWIM_MAC_BYTES;
	}
	*len = starling__membership__datagram__get_packed_size(&dg);
	CHECK(*len == wire_datagram_size(k, packet_len));
	out = malloc(*len);
	if (!out)
		goto fail;
	CHECK(starling__membership__datagram__pack(&dg, out) == *len);
	free(packet);
	enc_done(&e);
	return out;

fail:
	free(packet);
	enc_done(&e);
	return NULL;
}
