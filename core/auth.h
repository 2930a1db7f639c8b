/*
 * auth.h — who may connect, publish, subscribe and receive. The broker asks
 * here at each of those points and nowhere else, so the security issue
 * (password file, client certificates, ACLs, enhanced authentication)
 * changes this module's policy, not the handlers.
 *
 * Called on the worker that owns the connection; must not block (a slow
 * check, like a password hash, must be offloaded by the implementation and
 * answered later — the handlers will then need an asynchronous variant).
 */
#ifndef STARLING_CORE_AUTH_H
#define STARLING_CORE_AUTH_H

#include <stdbool.h>

#include "config.h"
#include "packet.h"
#include "view.h"

/* CONNECT: MQTT_RC_SUCCESS, or the reason to refuse it with (0x86, 0x87, 0x8C ...). */
enum mqtt_rc auth_connect(const struct config *cfg, const struct mqtt_connect *k);

/* May this client publish to topic? (false: 5.0 PUBACK/PUBREC 0x87, else dropped) */
bool auth_publish(const struct config *cfg, struct mqtt_view client_id, struct mqtt_view topic);

/* May this client subscribe to filter? (false: SUBACK 0x87 / 0x80) */
bool auth_subscribe(const struct config *cfg, struct mqtt_view client_id, struct mqtt_view filter);

#endif
