/*
 * auth.c — the policy of this version: no password file, certificates or
 * ACLs exist yet, so every client is anonymous and allowed everything but
 * publishing into $SYS/, as DESIGN.md's embedded defaults say ("anonymous
 * access"). Enhanced
 * authentication (5.0 AUTH) is not offered: a CONNECT naming a method is
 * refused with 0x8C [MQTT-4.12.0-1].
 */
#include "auth.h"

#include <string.h>

enum mqtt_rc auth_connect(const struct config *cfg, const struct mqtt_connect *k)
{
	(void)cfg;
	if (k->version == MQTT_V5 && (k->props.has & MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD)))
		return MQTT_RC_BAD_AUTHENTICATION_METHOD;
	return MQTT_RC_SUCCESS;
}

bool auth_publish(const struct config *cfg, struct mqtt_view client_id, struct mqtt_view topic)
{
	(void)cfg;
	(void)client_id;
	/* $SYS/ is the broker's own tree (sys.c): a client publishing there
	 * would forge the broker's statistics, as mosquitto also refuses. */
	static const char sys[] = "$SYS/";
	if (topic.len >= sizeof(sys) - 1 && memcmp(topic.ptr, sys, sizeof(sys) - 1) == 0)
		return false;
	return true;
}

bool auth_subscribe(const struct config *cfg, struct mqtt_view client_id, struct mqtt_view filter)
{
	(void)cfg;
	(void)client_id;
	(void)filter;
	return true;
}
