/*
 * view.h — a borrowed run of bytes. Decoded packets point into the buffer
 * they were decoded from, so a view lives exactly as long as that buffer.
 */
#ifndef STARLING_CODEC_VIEW_H
#define STARLING_CODEC_VIEW_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

struct mqtt_view {
	const uint8_t *ptr; /* first byte; may be NULL when len is 0 */
	uint32_t len;       /* bytes */
};

/* A view of a NUL-terminated C string (tests, config, the bench). */
static inline struct mqtt_view mqtt_view_str(const char *s)
{
	struct mqtt_view v = {(const uint8_t *)s, (uint32_t)strlen(s)};
	return v;
}

static inline bool mqtt_view_eq(struct mqtt_view a, struct mqtt_view b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static inline bool mqtt_view_eq_str(struct mqtt_view a, const char *s)
{
	return mqtt_view_eq(a, mqtt_view_str(s));
}

#endif
