/*
 * subidx.h — the subscription index: a trie over topic levels mapping
 * filters to the sessions subscribed to them (DESIGN.md "Subscription
 * index"). Every worker owns one full copy for the whole node and is the
 * only thread that touches it; copies are kept equal by applying the same
 * deltas in the same order. Pure data structure: no I/O, no clocks.
 *
 * Matching follows §4.7 of MQTT 5.0: '+' matches one level, '#' the parent
 * and any number of levels below, and a filter starting with a wildcard does
 * not match a topic starting with '$' [MQTT-4.7.2-1]. It must agree with
 * mqtt_topic_match() in core/codec/topic.h, the reference matcher.
 *
 * Shared subscriptions "$share/{group}/{filter}" [§4.8.2] are stored under
 * {filter} in a group; a match yields one member of each matching group,
 * chosen round-robin, so a group receives each message once.
 */
#ifndef STARLING_CORE_SUBIDX_H
#define STARLING_CORE_SUBIDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "session/sess_id.h"
#include "view.h"

/* Options of one subscription that matter when delivering (§3.8.3.1). */
struct sub_opts {
	uint32_t sub_id; /* Subscription Identifier, 0 = none */
	uint8_t qos;     /* maximum QoS granted, 0..2 */
	bool no_local;   /* not to the publishing session itself */
	bool rap;        /* Retain As Published */
	bool journaled;  /* a persistent session's, journaled (persist/msg_journal.h): the
	                  * QoS 1/2 messages it matches are written to the journal */
};

struct sub_entry {
	struct sess_id who;
	struct sub_opts opts;
};

struct subidx;

struct subidx *subidx_new(void);
void subidx_free(struct subidx *ix);

/*
 * Subscribe who to filter (already valid per mqtt_topic_filter_check(),
 * possibly "$share/g/f"). A second subscription of the same session
 * (compared by slot and worker: a new generation of the slot replaces the
 * old one) to the same filter replaces its options [MQTT-3.8.4-3].
 * Returns 1 when added, 0 when replaced, -1 when out of memory (the index is
 * unchanged).
 */
int subidx_add(struct subidx *ix, struct mqtt_view filter, const struct sub_entry *e);

/* Unsubscribe; returns true when the subscription existed. */
bool subidx_remove(struct subidx *ix, struct mqtt_view filter, struct sess_id who);

/*
 * Call fn once for every non-shared subscription matching topic, and once per
 * matching shared group with the member whose turn it is (then the group's
 * turn advances). shared says which kind the call is. A session subscribed
 * with several matching filters is reported once per filter; merging
 * overlapping subscriptions is the caller's job. Returns the number of calls.
 */
typedef void (*subidx_fn)(void *ctx, const struct sub_entry *e, bool shared);
size_t subidx_match(struct subidx *ix, struct mqtt_view topic, subidx_fn fn, void *ctx);

/* Which shared groups a match reports (for a message another node
 * forwarded: plan.h). */
enum subidx_groups {
	SUBIDX_GROUPS_ALL = 0,   /* one member of each group, whatever it names */
	SUBIDX_GROUPS_LOCAL = 1, /* one member of each group with members on this node,
	                          * among those (members naming nodes are passed) */
	SUBIDX_GROUPS_NONE = 2,  /* no group */
};
size_t subidx_match_groups(struct subidx *ix, struct mqtt_view topic, enum subidx_groups groups,
                           subidx_fn fn, void *ctx);
/* How many lists the last match reported from: one filter's subscribers
 * count as one, each shared group's member as one. With one, no session
 * was reported twice (a session holds one subscription per filter), so
 * there is nothing to merge. */
uint32_t subidx_match_lists(const struct subidx *ix);

/*
 * The member of the shared group named by filter ("$share/g/f", exactly as
 * subscribed) whose turn it is, a session here or a peer node with members
 * (SESS_WORKER_NODE); the turn advances. false when the group has no
 * members. Used to hand a departed member's messages to the group
 * [MQTT 5.0 §4.8.2].
 */
bool subidx_shared_pick(struct subidx *ix, struct mqtt_view filter, struct sub_entry *out);

/* Subscriptions of this node's sessions held by exactly this filter as
 * subscribed: sessions for a plain filter, members of the group for
 * "$share/g/f". Entries naming peer nodes (SESS_WORKER_NODE) do not count:
 * this is what a node's own routes are made of. */
size_t subidx_filter_count(const struct subidx *ix, struct mqtt_view filter);

/* Subscriptions stored (a shared member counts once), and shared groups. */
size_t subidx_count(const struct subidx *ix);
size_t subidx_group_count(const struct subidx *ix);

#endif
