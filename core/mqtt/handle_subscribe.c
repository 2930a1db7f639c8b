/*
 * handle_subscribe.c — SUBSCRIBE and UNSUBSCRIBE (§3.8, §3.10): one reason
 * code per filter, the session's own list, the node's index (this worker's
 * copy first, then a delta to every other worker), and retained messages
 * asked for after the SUBACK is queued so they follow it [MQTT-3.8.4-?].
 */
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "base/log.h"
#include "loop/worker.h"
#include "session/session.h"

static bool has_wildcard(struct mqtt_view f)
{
	return memchr(f.ptr, '+', f.len) || memchr(f.ptr, '#', f.len);
}

void handle_subscribe(struct worker *w, struct client *cl, struct mqtt_subscribe *sub)
{
	const struct config *cfg = w->cfg;
	struct session *s = cl->sess;
	uint32_t sub_id = 0;
	if (cl->version == MQTT_V5 && (sub->props.has & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID))) {
		if (!cfg->sub_id_available) {
			client_close(w, cl, MQTT_RC_SUB_IDS_NOT_SUPPORTED, true);
			return;
		}
		sub_id = sub->props.sub_id;
	}
	uint8_t *rcs = malloc(sub->count);
	bool *want_retained = calloc(sub->count, sizeof(bool));
	if (!rcs || !want_retained) {
		free(rcs);
		free(want_retained);
		client_close(w, cl, MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR, true);
		return;
	}

	/* A persistent session's subscriptions are journaled before the SUBACK:
	 * while the journal refuses records, new ones are refused too. */
	bool journaled = session_journal_wanted(w, s);
	bool refuse_new = journaled && !journal_accepting(&w->journal);
	bool changed = false;
	struct mqtt_view cid = {(const uint8_t *)s->client_id, s->client_id_len};
	size_t ulen;
	const char *user = session_username(s, &ulen);
	struct mqtt_entry_iter it;
	struct mqtt_sub_entry e;
	uint32_t i = 0;
	mqtt_sub_iter_init(&it, sub, cl->version);
	while (mqtt_sub_iter_next(&it, &e) && i < sub->count) {
		enum mqtt_rc rc = (enum mqtt_rc)e.rc;
		struct mqtt_filter_parts parts;
		if (rc == MQTT_RC_SUCCESS) {
			mqtt_filter_split(e.filter, &parts);
			if (parts.shared && !cfg->shared_available)
				rc = MQTT_RC_SHARED_SUBS_NOT_SUPPORTED;
			else if (has_wildcard(parts.filter) && !cfg->wildcard_available)
				rc = MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED;
			else if (e.filter.len > cfg->topic_length_max ||
			         mqtt_topic_levels(parts.filter) > cfg->topic_levels_max)
				rc = MQTT_RC_TOPIC_FILTER_INVALID;
			else if (!auth_subscribe(w->mq.acl, user, ulen, cid, e.filter)) {
				rc = MQTT_RC_NOT_AUTHORIZED;
				LOG_INFO_RL(LOG_CLIENT_RL,
				            "denied SUBSCRIBE from %s (client \"%s\", %s%.*s%s) to "
				            "\"%.*s\": not authorized",
				            conn_peer(&cl->c), s->client_id,
				            user ? "user \"" : "anonymous", user ? (int)ulen : 0,
				            user ? user : "", user ? "\"" : "", (int)e.filter.len,
				            (const char *)e.filter.ptr);
			}
		}
		if (rc == MQTT_RC_SUCCESS) {
			uint8_t qos = e.qos < cfg->max_qos ? e.qos : cfg->max_qos;
			struct sub_opts opts = {.sub_id = sub_id,
			                        .qos = qos,
			                        .no_local = e.no_local || cl->bridge_peer,
			                        .rap = e.retain_as_published,
			                        .journaled = journaled};
			/* -1: the index cannot take more now (mail.h), or the
			 * journal cannot keep it. */
			int added =
			    route_congested(&w->route) || refuse_new
			        ? -1
			        : session_sub_add(s, e.filter, opts, cfg->subscriptions_max);
			struct sub_entry se = {s->id, opts};
			if (added >= 0 && !route_subscribe(&w->route, e.filter, &se)) {
				/* No memory for the change: as if over a quota. */
				if (added == 1)
					session_sub_remove(s, e.filter);
				added = -1;
			}
			if (added < 0) {
				rc = MQTT_RC_QUOTA_EXCEEDED;
			} else {
				changed = true;
				rc = (enum mqtt_rc)qos;
				/* Retained messages [MQTT-3.3.1-9..11]: never for
				 * a shared subscription [MQTT-4.8.2-?]. */
				want_retained[i] =
				    !parts.shared && (e.retain_handling == 0 ||
				                      (e.retain_handling == 1 && added == 1));
			}
		}
		rcs[i++] = cl->version == MQTT_V5 ? (uint8_t)rc : mqtt_rc_to_v3_suback(rc);
	}

	if (changed && journaled)
		session_journal(w, s, false); /* the SUBACK waits for it */
	struct mqtt_packet a = {.type = MQTT_SUBACK};
	a.suback.packet_id = sub->packet_id;
	a.suback.rcs = (struct mqtt_view){rcs, i};
	client_send(w, cl, &a);
	if (client_closing(cl)) {
		/* The SUBACK did not fit the client (output.c): s may be gone. */
		free(rcs);
		free(want_retained);
		return;
	}

	mqtt_sub_iter_init(&it, sub, cl->version);
	for (uint32_t k = 0; k < i && mqtt_sub_iter_next(&it, &e); k++) {
		if (!want_retained[k])
			continue;
		struct sub_entry se = {
		    s->id, {.sub_id = sub_id, .qos = e.qos < cfg->max_qos ? e.qos : cfg->max_qos}};
		route_retained_query(&w->route, e.filter, &se);
	}
	free(rcs);
	free(want_retained);
}

void handle_unsubscribe(struct worker *w, struct client *cl, struct mqtt_unsubscribe *u)
{
	struct session *s = cl->sess;
	uint8_t *rcs = malloc(u->count);
	if (!rcs) {
		client_close(w, cl, MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR, true);
		return;
	}
	struct mqtt_entry_iter it;
	struct mqtt_view f;
	uint32_t i = 0;
	bool changed = false;
	mqtt_unsub_iter_init(&it, u);
	while (mqtt_unsub_iter_next(&it, &f) && i < u->count) {
		bool existed = session_sub_remove(s, f);
		if (existed)
			route_unsubscribe(&w->route, f, s->id);
		rcs[i++] = existed ? MQTT_RC_SUCCESS : MQTT_RC_NO_SUBSCRIPTION_EXISTED;
		changed |= existed;
	}
	if (changed && session_journal_wanted(w, s))
		session_journal(w, s, false); /* the UNSUBACK waits for it */
	struct mqtt_packet a = {.type = MQTT_UNSUBACK};
	a.suback.packet_id = u->packet_id;
	a.suback.rcs = (struct mqtt_view){rcs, i};
	client_send(w, cl, &a);
	free(rcs);
}
