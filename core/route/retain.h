/*
 * retain.h — the retained messages of one shard (DESIGN.md "Retained
 * messages": topics are sharded across workers by hash, each worker owns one
 * store and is the only thread that touches it). Pure data structure: time
 * comes in as an argument.
 *
 * A store holds one reference to each retained message.
 */
#ifndef STARLING_CORE_RETAIN_H
#define STARLING_CORE_RETAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route/msg.h"
#include "view.h"

struct retain;

struct retain *retain_new(void);
void retain_free(struct retain *rs); /* drops every reference */

/*
 * Make m the retained message of its topic (m->pub.topic), replacing and
 * releasing the previous one; a message with an empty payload deletes the
 * topic's retained message instead [MQTT-3.3.1-6, -7] and is not kept.
 * Last writer wins across a cluster: m changes nothing when the message
 * held is later by (wall_ms, origin_rank) (a replica that arrived late).
 * Takes its own reference when it keeps m. Returns -1 when out of memory.
 */
int retain_put(struct retain *rs, struct msg *m);

/*
 * Call fn for every retained message whose topic matches the plain (not
 * shared) filter, skipping — and dropping — those expired at now_ms. Topics
 * beginning with '$' are not matched by a leading wildcard [MQTT-4.7.2-1].
 * fn may take its own reference. Returns the number of calls.
 */
typedef void (*retain_fn)(void *ctx, struct msg *m);
size_t retain_match(struct retain *rs, struct mqtt_view filter, uint64_t now_ms, retain_fn fn,
                    void *ctx);

/* Call fn for every retained message, '$' topics included. */
void retain_each(struct retain *rs, retain_fn fn, void *ctx);

size_t retain_count(const struct retain *rs);
size_t retain_bytes(const struct retain *rs); /* sum of size_bytes */

/* Which of n shards owns a topic: a stable hash, the same on every worker. */
unsigned retain_shard_of(struct mqtt_view topic, unsigned n);

#endif
