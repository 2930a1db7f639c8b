/*
 * payload.c — encode and decode the bench payload header (layout in
 * payload.h). Explicit byte order so a run can span machines of any
 * endianness. Pure.
 */
#include "payload.h"

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

void payload_encode_header(uint8_t *buf, const struct payload_header *h)
{
	put_u32(buf, PAYLOAD_MAGIC);
	put_u32(buf + 4, h->run_id);
	put_u32(buf + 8, h->pub_id);
	put_u32(buf + 12, 0);
	put_u64(buf + 16, h->seq);
	put_u64(buf + 24, h->sent_ns);
}

bool payload_decode_header(const uint8_t *buf, size_t len, struct payload_header *out)
{
	if (len < PAYLOAD_HEADER_LEN || get_u32(buf) != PAYLOAD_MAGIC)
		return false;
	out->run_id = get_u32(buf + 4);
	out->pub_id = get_u32(buf + 8);
	out->seq = get_u64(buf + 16);
	out->sent_ns = get_u64(buf + 24);
	return true;
}
