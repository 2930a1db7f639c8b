/*
 * cursor.h — bounds-checked readers and writers over byte buffers, private to
 * core/codec. Every read says whether the bytes were there; every write
 * counts the bytes it needed even past the end of the buffer, so one code path
 * both sizes and encodes a packet (a writer with cap 0 only counts).
 */
#ifndef STARLING_CODEC_CURSOR_H
#define STARLING_CODEC_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "frame.h"
#include "mqtt.h"
#include "utf8.h"
#include "view.h"

/* Programmer errors: always on, even in release builds. */
#define CODEC_ASSERT(cond)                                                                         \
	do {                                                                                       \
		if (!(cond))                                                                       \
			codec_assert_fail(#cond, __FILE__, __LINE__);                              \
	} while (0)

_Noreturn void codec_assert_fail(const char *cond, const char *file, int line);

struct rd {
	const uint8_t *p;   /* next unread byte */
	const uint8_t *end; /* one past the last byte */
};

static inline struct rd rd_make(const uint8_t *p, size_t len)
{
	struct rd r = {p, p + len};
	return r;
}

static inline size_t rd_left(const struct rd *r)
{
	return (size_t)(r->end - r->p);
}

static inline bool rd_u8(struct rd *r, uint8_t *out)
{
	if (rd_left(r) < 1)
		return false;
	*out = *r->p++;
	return true;
}

static inline bool rd_u16(struct rd *r, uint16_t *out)
{
	if (rd_left(r) < 2)
		return false;
	*out = (uint16_t)(r->p[0] << 8 | r->p[1]);
	r->p += 2;
	return true;
}

static inline bool rd_u32(struct rd *r, uint32_t *out)
{
	if (rd_left(r) < 4)
		return false;
	*out = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
	r->p += 4;
	return true;
}

static inline bool rd_varint(struct rd *r, uint32_t *out)
{
	int n = mqtt_varint_decode(r->p, rd_left(r), out);
	if (n <= 0)
		return false;
	r->p += n;
	return true;
}

/* Two-byte length then that many bytes (Binary Data, §1.5.6). */
static inline bool rd_binary(struct rd *r, struct mqtt_view *out)
{
	uint16_t len;
	if (!rd_u16(r, &len) || rd_left(r) < len)
		return false;
	out->ptr = r->p;
	out->len = len;
	r->p += len;
	return true;
}

/* Binary Data that must also be a well-formed MQTT UTF-8 string. */
static inline enum mqtt_rc rd_utf8(struct rd *r, struct mqtt_view *out)
{
	if (!rd_binary(r, out) || !mqtt_utf8_valid(out->ptr, out->len))
		return MQTT_RC_MALFORMED_PACKET;
	return MQTT_RC_SUCCESS;
}

/* The rest of the buffer, consumed. */
static inline struct mqtt_view rd_rest(struct rd *r)
{
	struct mqtt_view v = {r->p, (uint32_t)rd_left(r)};
	r->p = r->end;
	return v;
}

struct wr {
	uint8_t *buf; /* may be NULL when cap is 0 */
	size_t cap;   /* bytes available */
	size_t len;   /* bytes needed so far; may exceed cap */
};

static inline void wr_bytes(struct wr *w, const void *p, size_t n)
{
	if (w->len + n <= w->cap && n > 0)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static inline void wr_u8(struct wr *w, uint8_t v)
{
	wr_bytes(w, &v, 1);
}

static inline void wr_u16(struct wr *w, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	wr_bytes(w, b, 2);
}

static inline void wr_u32(struct wr *w, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	wr_bytes(w, b, 4);
}

static inline void wr_varint(struct wr *w, uint32_t v)
{
	uint8_t b[4];
	int n = mqtt_varint_encode(v, b);
	wr_bytes(w, b, (size_t)n);
}

static inline void wr_binary(struct wr *w, struct mqtt_view v)
{
	CODEC_ASSERT(v.len <= UINT16_MAX);
	wr_u16(w, (uint16_t)v.len);
	wr_bytes(w, v.ptr, v.len);
}

static inline void wr_view(struct wr *w, struct mqtt_view v)
{
	wr_bytes(w, v.ptr, v.len);
}

#endif
