/*
 * registry.h — which session holds each client identifier on this node
 * [MQTT-3.1.4-2: one network connection per client id].
 *
 * Deviation from DESIGN.md, on purpose: the design shards this map across
 * workers behind mailboxes. It is touched only on CONNECT and at session end,
 * never on the publish path, so one mutex-protected hash map is simpler,
 * makes concurrent CONNECTs with one id trivially ordered, and costs
 * nothing measurable at our connect rates. The cluster issue will put the
 * cross-node home-node arbitration in front of it.
 */
#ifndef STARLING_CORE_REGISTRY_H
#define STARLING_CORE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "session/sess_id.h"

struct registry;

struct registry *registry_new(void);
void registry_free(struct registry *r);

/*
 * Make id the owner of client_id. When another session held it, *prev gets
 * that session and the function returns true (the caller takes it over).
 * Returns false with *prev untouched when the id was free. -1 on no memory.
 */
int registry_claim(struct registry *r, const char *client_id, size_t len, struct sess_id id,
                   struct sess_id *prev);

/* Make id the owner of client_id only if nobody holds it: 0 when it did,
 * 1 with *prev set when another session holds it (left as it is), -1 on
 * no memory. (A bridge's own session: made once, found again after.) */
int registry_claim_free(struct registry *r, const char *client_id, size_t len, struct sess_id id,
                        struct sess_id *prev);

/* Forget client_id if id still owns it (a newer claim is left alone). */
void registry_release(struct registry *r, const char *client_id, size_t len, struct sess_id id);

/* Number of client ids held. */
size_t registry_count(struct registry *r);

#endif
