/*
 * mail.h (route) — the route's kinds of mailbox message and their bodies
 * (io/mbox.h carries them opaquely; only route.c reads them).
 */
#ifndef STARLING_CORE_ROUTE_MAIL_H
#define STARLING_CORE_ROUTE_MAIL_H

#include <stdint.h>

#include "io/mail.h"
#include "route/delta.h"
#include "route/msg.h"
#include "route/route.h"

enum route_mail_kind {
	MAIL_DELIVER = MAIL_KIND_ROUTE, /* a message for a session of the receiver */
	MAIL_DELTA,                     /* an index change to apply */
	MAIL_RETAIN_PUT,                /* a retained message for the receiver's shard */
	MAIL_RETAIN_QUERY,              /* a new subscription's lookup in that shard */
};

struct mail_deliver {
	struct msg *m; /* one reference moves with the mail */
	struct sess_id to;
	uint32_t sub_id;
	uint8_t qos;
	uint8_t flags; /* PLAN_RETAIN, PLAN_SHARED */
};

struct mail_delta {
	struct route_delta *d; /* one of its references moves with the mail */
};

struct mail_retain_put {
	struct msg *m; /* one reference moves with the mail */
};

struct mail_retain_query {
	struct retained_lookup *q; /* owned by the receiver from now on */
};

_Static_assert(sizeof(struct mail_deliver) <= MBOX_BODY_BYTES, "fits a mailbox message");
_Static_assert(sizeof(struct mail_delta) <= MBOX_BODY_BYTES, "fits a mailbox message");

#endif
