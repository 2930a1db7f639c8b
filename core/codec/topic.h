/*
 * topic.h — topic names and topic filters (§4.7 of 5.0): validation,
 * splitting into levels, shared-subscription parsing (§4.8.2) and the
 * reference matcher that the subscription index and ACLs are tested against.
 *
 * Strings here are already UTF-8 checked by the decoder. Pure.
 */
#ifndef STARLING_CODEC_TOPIC_H
#define STARLING_CODEC_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt.h"
#include "view.h"

/*
 * A topic name as carried by PUBLISH, a will or a Response Topic: at least
 * one byte [MQTT-4.7.3-1] and no '+' or '#' [MQTT-3.3.2-2]. (A 5.0 PUBLISH
 * with a topic alias may carry an empty name; its decoder allows for that.)
 */
bool mqtt_topic_name_valid(struct mqtt_view topic);

/*
 * A topic filter (§4.7.1): at least one byte [MQTT-4.7.3-1], '#' alone in the
 * last level [MQTT-4.7.1-1], '+' alone in its level [MQTT-4.7.1-2]; a
 * "$share/" filter must have a non-empty group name without '+', '#' or '/'
 * followed by '/' and a valid filter [MQTT-4.8.2-1] [MQTT-4.8.2-2].
 * Returns MQTT_RC_SUCCESS or MQTT_RC_TOPIC_FILTER_INVALID.
 */
enum mqtt_rc mqtt_topic_filter_check(struct mqtt_view filter);

/* A filter split into its shared-subscription parts. */
struct mqtt_filter_parts {
	struct mqtt_view group;  /* share name; len 0 when not shared */
	struct mqtt_view filter; /* the filter to match against topics */
	bool shared;             /* "$share/group/filter" form */
};

/* Split a filter already accepted by mqtt_topic_filter_check(). */
void mqtt_filter_split(struct mqtt_view filter, struct mqtt_filter_parts *out);

/* Walk a topic or filter level by level; levels may be empty ("a//b"). */
struct mqtt_level_iter {
	const uint8_t *p;   /* start of the next level */
	const uint8_t *end; /* end of the string */
	bool done;          /* no level remains */
};

void mqtt_level_iter_init(struct mqtt_level_iter *it, struct mqtt_view s);
bool mqtt_level_iter_next(struct mqtt_level_iter *it, struct mqtt_view *level);

/* Number of levels: one more than the count of '/'. */
unsigned mqtt_topic_levels(struct mqtt_view s);

/*
 * Does the (non-shared) filter match the topic name? Topics beginning with
 * '$' are not matched by a filter beginning with a wildcard [MQTT-4.7.2-1].
 * "a/#" also matches "a" [§4.7.1.2]. This is the simple reference matcher;
 * the broker's subscription index must agree with it.
 */
bool mqtt_topic_match(struct mqtt_view filter, struct mqtt_view topic);

#endif
