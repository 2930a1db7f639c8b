/*
 * topic.c — topic names and filters (§4.7, §4.8.2 of 5.0; §4.7 of 3.1.1).
 * Pure functions over views that the decoder has already checked as UTF-8.
 */
#include "topic.h"

#include <string.h>

static const uint8_t share_prefix[] = "$share/";
#define SHARE_PREFIX_LEN (sizeof(share_prefix) - 1)

bool mqtt_topic_name_valid(struct mqtt_view topic)
{
	return topic.len > 0 && !memchr(topic.ptr, '+', topic.len) &&
	       !memchr(topic.ptr, '#', topic.len);
}

/* The wildcard rules of §4.7.1 for a plain (non-shared) filter. */
static bool plain_filter_ok(struct mqtt_view f)
{
	if (f.len == 0)
		return false;
	for (uint32_t i = 0; i < f.len; i++) {
		uint8_t c = f.ptr[i];
		if (c != '+' && c != '#')
			continue;
		bool starts_level = i == 0 || f.ptr[i - 1] == '/';
		bool ends_level = i + 1 == f.len || f.ptr[i + 1] == '/';
		if (!starts_level || !ends_level)
			return false;
		if (c == '#' && i + 1 != f.len) /* '#' is the last character */
			return false;
	}
	return true;
}

static bool is_shared(struct mqtt_view f)
{
	return f.len >= SHARE_PREFIX_LEN && memcmp(f.ptr, share_prefix, SHARE_PREFIX_LEN) == 0;
}

void mqtt_filter_split(struct mqtt_view filter, struct mqtt_filter_parts *out)
{
	memset(out, 0, sizeof(*out));
	out->filter = filter;
	if (!is_shared(filter))
		return;
	const uint8_t *g = filter.ptr + SHARE_PREFIX_LEN;
	uint32_t rest = filter.len - (uint32_t)SHARE_PREFIX_LEN;
	const uint8_t *slash = memchr(g, '/', rest);
	if (!slash)
		return;
	out->shared = true;
	out->group = (struct mqtt_view){g, (uint32_t)(slash - g)};
	out->filter = (struct mqtt_view){slash + 1, rest - out->group.len - 1};
}

enum mqtt_rc mqtt_topic_filter_check(struct mqtt_view filter)
{
	if (!is_shared(filter))
		return plain_filter_ok(filter) ? MQTT_RC_SUCCESS : MQTT_RC_TOPIC_FILTER_INVALID;
	struct mqtt_filter_parts parts;
	mqtt_filter_split(filter, &parts);
	if (!parts.shared || parts.group.len == 0)
		return MQTT_RC_TOPIC_FILTER_INVALID;
	if (memchr(parts.group.ptr, '+', parts.group.len) ||
	    memchr(parts.group.ptr, '#', parts.group.len))
		return MQTT_RC_TOPIC_FILTER_INVALID;
	return plain_filter_ok(parts.filter) ? MQTT_RC_SUCCESS : MQTT_RC_TOPIC_FILTER_INVALID;
}

void mqtt_level_iter_init(struct mqtt_level_iter *it, struct mqtt_view s)
{
	it->p = s.ptr;
	it->end = s.ptr + s.len;
	it->done = s.len == 0;
}

bool mqtt_level_iter_next(struct mqtt_level_iter *it, struct mqtt_view *level)
{
	if (it->done)
		return false;
	const uint8_t *slash = memchr(it->p, '/', (size_t)(it->end - it->p));
	if (!slash) {
		*level = (struct mqtt_view){it->p, (uint32_t)(it->end - it->p)};
		it->done = true;
		return true;
	}
	*level = (struct mqtt_view){it->p, (uint32_t)(slash - it->p)};
	it->p = slash + 1;
	return true;
}

unsigned mqtt_topic_levels(struct mqtt_view s)
{
	unsigned n = 1;
	for (uint32_t i = 0; i < s.len; i++)
		n += s.ptr[i] == '/';
	return n;
}

bool mqtt_topic_match(struct mqtt_view filter, struct mqtt_view topic)
{
	if (filter.len == 0)
		return false;
	/* [MQTT-4.7.2-1]: no wildcard first level matches a '$' topic. */
	if (topic.len > 0 && topic.ptr[0] == '$' && (filter.ptr[0] == '+' || filter.ptr[0] == '#'))
		return false;

	struct mqtt_level_iter fi, ti;
	struct mqtt_view fl, tl;
	mqtt_level_iter_init(&fi, filter);
	mqtt_level_iter_init(&ti, topic);
	/* An empty topic has one empty level. */
	bool topic_empty = topic.len == 0;
	for (;;) {
		bool have_f = mqtt_level_iter_next(&fi, &fl);
		bool have_t;
		if (topic_empty) {
			have_t = true;
			tl = topic;
			topic_empty = false;
			ti.done = true;
		} else {
			have_t = mqtt_level_iter_next(&ti, &tl);
		}
		if (!have_f)
			return !have_t;
		if (fl.len == 1 && fl.ptr[0] == '#')
			return true; /* matches the parent level too: "a/#" ~ "a" */
		if (!have_t)
			return false;
		if (fl.len == 1 && fl.ptr[0] == '+')
			continue;
		if (!mqtt_view_eq(fl, tl))
			return false;
	}
}
