/*
 * session_int.h — what session/codec.c needs from session.c and nobody
 * else may use: putting a message in flight under a given packet id and
 * state, as a decoded session had it.
 */
#ifndef STARLING_CORE_SESSION_INT_H
#define STARLING_CORE_SESSION_INT_H

#include "session/session.h"

/* false when the entry is not valid (id 0 or in use, QoS, state, a message
 * where the state has none) or memory ran out. Takes a reference to m. */
bool session_infl_restore(struct session *s, struct msg *m, uint16_t pid, uint8_t qos,
                          uint8_t state, uint8_t flags, uint32_t sub_id);

#endif
