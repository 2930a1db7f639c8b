/*
 * scenario.c — options of a bench run: one table of names, types and
 * limits drives the command line, scenario files and the text sent to
 * agents, so the three can never disagree. Also the plan: who publishes
 * where and who subscribes to what, derived from the options alone so that
 * every process and agent computes the same plan without talking.
 */
#include "scenario.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payload.h"

enum opt_type { OPT_STR, OPT_U32, OPT_U64, OPT_BOOL, OPT_KIND };

struct opt {
	const char *name;
	enum opt_type type;
	size_t offset;
	size_t size;  /* of a string field */
	uint64_t max; /* of a number */
	const char *help;
};

#define S(f)      OPT_STR, offsetof(struct scenario, f), sizeof(((struct scenario *)0)->f), 0
#define U(f, max) OPT_U32, offsetof(struct scenario, f), 0, max
#define B(f)      OPT_BOOL, offsetof(struct scenario, f), 0, 1

static const struct opt opts[] = {
    {"scenario", OPT_KIND, offsetof(struct scenario, kind_name), 16, 0,
     "conn|pub|sub|pairs|fanin|fanout|shared"},
    {"hosts", S(hosts), "targets a,b:port,c (-h)"},
    {"sub-hosts", S(sub_hosts), "subscribers' targets instead of hosts (cross-node runs)"},
    {"port", U(port, 65535), "default port (-p)"},
    {"source", S(source), "source address range 127.0.0.2-127.0.0.254"},
    {"clients", U(clients, SCENARIO_CLIENTS_MAX), "conn: connections, pairs: pairs (-c)"},
    {"pubs", U(pubs, SCENARIO_CLIENTS_MAX), "publishers"},
    {"subs", U(subs, SCENARIO_CLIENTS_MAX), "subscribers"},
    {"groups", U(groups, 65535), "shared: $share groups; fanin: 1 = one shared group"},
    {"qos", U(qos, 2), "0, 1 or 2 (-q)"},
    {"mqtt", U(mqtt, 5), "protocol 4 (3.1.1) or 5 (-V)"},
    {"size", U(size_bytes, SCENARIO_PAYLOAD_MAX), "payload bytes, >= 32 (-s)"},
    {"rate", U(rate, 10000000), "messages/s per publisher, 0 unlimited (-r)"},
    {"inflight", U(inflight, SCENARIO_INFLIGHT_MAX), "QoS 1/2 unacknowledged per publisher"},
    {"e2e-window", U(e2e_window, SCENARIO_E2E_MAX), "per publisher, undelivered; 0 off"},
    {"count", OPT_U64, offsetof(struct scenario, count), 0, UINT64_C(1) << 40,
     "messages per publisher, 0 until duration (-n)"},
    {"duration", U(duration_s, 86400), "seconds of publishing or of holding (-d)"},
    {"connect-rate", U(connect_rate, 10000000), "connections/s in all, 0 unlimited"},
    {"connect-timeout", U(connect_timeout_s, 3600), "seconds per connection attempt"},
    {"keepalive", U(keepalive_s, 65535), "MQTT keep alive seconds"},
    {"drain", U(drain_s, 3600), "max seconds to wait for deliveries after publishing"},
    {"session-expiry", U(session_expiry_s, UINT32_MAX), "v5 session expiry (persistent)"},
    {"persistent", B(persistent), "persistent sessions (clean start 0)"},
    {"retain", B(retain), "publish retained"},
    {"tls", B(tls), "TLS"},
    {"ws", B(ws), "MQTT over WebSocket (with --tls: wss)"},
    {"ws-path", S(ws_path), "WebSocket upgrade path (default /mqtt)"},
    {"insecure", B(insecure), "TLS without certificate verification"},
    {"json", B(json), "final report as JSON on stdout"},
    {"quiet", B(quiet), "no live lines"},
    {"cafile", S(cafile), "CA certificate file (PEM)"},
    {"cert", S(cert), "client certificate (PEM)"},
    {"key", S(key), "client private key (PEM)"},
    {"topic-prefix", S(topic_prefix), "topics are <prefix>/<n>"},
    {"id-prefix", S(id_prefix), "client ids <prefix>-<n>"},
    {"username", S(username), "MQTT user name"},
    {"password", S(password), "MQTT password"},
    {"procs", U(procs, SCENARIO_PROCS_MAX), "worker processes (-P)"},
    {"broker-pid", U(broker_pid, UINT32_MAX), "broker pid for RSS/CPU readings"},
};

#define OPT_COUNT (sizeof(opts) / sizeof(opts[0]))

static const char *const kind_names[] = {"conn",  "pub",    "sub",   "pairs",
                                         "fanin", "fanout", "shared"};

void scenario_defaults(struct scenario *sc)
{
	memset(sc, 0, sizeof(*sc));
	snprintf(sc->kind_name, sizeof(sc->kind_name), "pairs");
	sc->kind = SCENARIO_PAIRS;
	snprintf(sc->hosts, sizeof(sc->hosts), "127.0.0.1");
	sc->port = 1883;
	sc->qos = 0;
	sc->mqtt = 5;
	sc->size_bytes = 64;
	sc->inflight = 16;
	sc->duration_s = 10;
	sc->connect_rate = 2000;
	sc->connect_timeout_s = 15;
	sc->keepalive_s = 60;
	sc->drain_s = 5;
	sc->procs = 1;
	snprintf(sc->topic_prefix, sizeof(sc->topic_prefix), "bench");
	snprintf(sc->ws_path, sizeof(sc->ws_path), "/mqtt");
}

static const struct opt *opt_find(const char *name)
{
	for (size_t i = 0; i < OPT_COUNT; i++)
		if (strcmp(opts[i].name, name) == 0)
			return &opts[i];
	return NULL;
}

int scenario_is_switch(const char *name)
{
	const struct opt *o = opt_find(name);
	return o ? o->type == OPT_BOOL : -1;
}

int scenario_set(struct scenario *sc, const char *name, const char *value, char *err,
                 size_t err_len)
{
	const struct opt *o = opt_find(name);
	if (!o) {
		snprintf(err, err_len, "unknown option '%s'", name);
		return -1;
	}
	char *field = (char *)sc + o->offset;
	switch (o->type) {
	case OPT_KIND:
		for (size_t k = 0; k < sizeof(kind_names) / sizeof(kind_names[0]); k++) {
			if (strcmp(value, kind_names[k]) == 0) {
				snprintf(sc->kind_name, sizeof(sc->kind_name), "%s", value);
				sc->kind = (enum scenario_kind)k;
				return 0;
			}
		}
		snprintf(err, err_len, "unknown scenario '%s'", value);
		return -1;
	case OPT_STR:
		if (strlen(value) >= o->size) {
			snprintf(err, err_len, "%s: longer than %zu bytes", name, o->size - 1);
			return -1;
		}
		memcpy(field, value, strlen(value) + 1);
		return 0;
	case OPT_BOOL:
		if (!value || !*value || strcmp(value, "1") == 0 || strcmp(value, "true") == 0 ||
		    strcmp(value, "yes") == 0) {
			*(bool *)field = true;
			return 0;
		}
		if (strcmp(value, "0") == 0 || strcmp(value, "false") == 0 ||
		    strcmp(value, "no") == 0) {
			*(bool *)field = false;
			return 0;
		}
		snprintf(err, err_len, "%s: expected 0 or 1, got '%s'", name, value);
		return -1;
	case OPT_U32:
	case OPT_U64: {
		char *end = NULL;
		errno = 0;
		unsigned long long v = strtoull(value, &end, 10);
		if (errno || end == value || *end || value[0] == '-' || v > o->max) {
			snprintf(err, err_len, "%s: expected a number 0..%" PRIu64 ", got '%s'",
			         name, o->max, value);
			return -1;
		}
		if (o->type == OPT_U32)
			*(uint32_t *)field = (uint32_t)v;
		else
			*(uint64_t *)field = (uint64_t)v;
		return 0;
	}
	}
	return -1;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

int scenario_parse_text(struct scenario *sc, const char *text, char *err, size_t err_len)
{
	char line[1024];
	unsigned lineno = 0;
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		lineno++;
		if (n >= sizeof(line)) {
			snprintf(err, err_len, "line %u: too long", lineno);
			return -1;
		}
		memcpy(line, p, n);
		line[n] = 0;
		p += n + (nl ? 1 : 0);
		char *hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		char *s = trim(line);
		if (!*s)
			continue;
		char *eq = strpbrk(s, "= \t");
		const char *value = "";
		if (eq) {
			bool had_eq = *eq == '=';
			*eq = 0;
			char *v = trim(eq + 1);
			if (!had_eq && *v == '=')
				v = trim(v + 1);
			value = v;
		}
		char sub[256];
		if (scenario_set(sc, trim(s), value, sub, sizeof(sub)) < 0) {
			snprintf(err, err_len, "line %u: %s", lineno, sub);
			return -1;
		}
	}
	return 0;
}

int scenario_load_file(struct scenario *sc, const char *path, char *err, size_t err_len)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return -1;
	}
	static char text[64 * 1024];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = 0;
	char sub[256];
	if (scenario_parse_text(sc, text, sub, sizeof(sub)) < 0) {
		snprintf(err, err_len, "%s: %s", path, sub);
		return -1;
	}
	return 0;
}

int scenario_format(const struct scenario *sc, char *buf, size_t cap)
{
	size_t off = 0;
	for (size_t i = 0; i < OPT_COUNT; i++) {
		const struct opt *o = &opts[i];
		const char *field = (const char *)sc + o->offset;
		int n = 0;
		switch (o->type) {
		case OPT_KIND:
		case OPT_STR:
			n = snprintf(buf + off, cap - off, "%s = %s\n", o->name, field);
			break;
		case OPT_BOOL:
			n = snprintf(buf + off, cap - off, "%s = %d\n", o->name,
			             *(const bool *)field ? 1 : 0);
			break;
		case OPT_U32:
			n = snprintf(buf + off, cap - off, "%s = %u\n", o->name,
			             *(const uint32_t *)field);
			break;
		case OPT_U64:
			n = snprintf(buf + off, cap - off, "%s = %" PRIu64 "\n", o->name,
			             *(const uint64_t *)field);
			break;
		}
		if (n < 0 || (size_t)n >= cap - off)
			return -1;
		off += (size_t)n;
	}
	return (int)off;
}

void scenario_print_options(void)
{
	for (size_t i = 0; i < OPT_COUNT; i++)
		fprintf(stderr, "  --%-16s %s\n", opts[i].name, opts[i].help);
}

int scenario_finish(struct scenario *sc, char *err, size_t err_len)
{
	/* shape defaults: a flag left at 0 takes the scenario's usual size */
	switch (sc->kind) {
	case SCENARIO_CONN:
		if (!sc->clients)
			sc->clients = 100;
		sc->pubs = sc->subs = 0;
		break;
	case SCENARIO_PAIRS:
		if (!sc->clients)
			sc->clients = 10;
		sc->pubs = sc->subs = sc->clients;
		break;
	case SCENARIO_PUB:
		if (!sc->pubs)
			sc->pubs = sc->clients ? sc->clients : 10;
		sc->subs = 0;
		break;
	case SCENARIO_SUB:
		if (!sc->subs)
			sc->subs = sc->clients ? sc->clients : 10;
		sc->pubs = 0;
		break;
	case SCENARIO_FANIN:
		if (!sc->pubs)
			sc->pubs = 100;
		if (!sc->subs)
			sc->subs = 1;
		break;
	case SCENARIO_FANOUT:
		if (!sc->pubs)
			sc->pubs = 1;
		if (!sc->subs)
			sc->subs = 100;
		break;
	case SCENARIO_SHARED:
		if (!sc->pubs)
			sc->pubs = 10;
		if (!sc->subs)
			sc->subs = 10;
		if (!sc->groups)
			sc->groups = 1;
		if (sc->groups > sc->subs) {
			snprintf(err, err_len, "groups (%u) > subs (%u)", sc->groups, sc->subs);
			return -1;
		}
		break;
	}
	if (sc->mqtt != 4 && sc->mqtt != 5) {
		snprintf(err, err_len, "mqtt must be 4 (3.1.1) or 5");
		return -1;
	}
	if (sc->size_bytes < PAYLOAD_HEADER_LEN) {
		snprintf(err, err_len, "size must be >= %u (the payload header)",
		         PAYLOAD_HEADER_LEN);
		return -1;
	}
	if ((uint64_t)sc->pubs + sc->subs > SCENARIO_CLIENTS_MAX) {
		snprintf(err, err_len, "too many clients");
		return -1;
	}
	if (sc->ws_path[0] != '/' || strpbrk(sc->ws_path, " \t\r\n")) {
		/* it goes into the request line verbatim */
		snprintf(err, err_len, "ws-path must start with / and hold no spaces");
		return -1;
	}
	if (!sc->inflight)
		sc->inflight = 1;
	if (!sc->procs)
		sc->procs = 1;
	if (!sc->connect_timeout_s)
		sc->connect_timeout_s = 1;
	if (sc->persistent && sc->mqtt == 5 && !sc->session_expiry_s)
		sc->session_expiry_s = 3600;
	if (!sc->duration_s && !sc->count && sc->kind != SCENARIO_CONN) {
		snprintf(err, err_len, "give a duration or a count");
		return -1;
	}
	return 0;
}

void plan_make(const struct scenario *sc, struct plan *p)
{
	memset(p, 0, sizeof(*p));
	if (sc->kind == SCENARIO_CONN) {
		p->clients_total = sc->clients;
		return;
	}
	p->subs_total = sc->subs;
	p->pubs_total = sc->pubs;
	p->clients_total = sc->subs + sc->pubs;
	switch (sc->kind) {
	case SCENARIO_PAIRS:
		p->per_msg = 1;
		break;
	case SCENARIO_FANIN:
		p->per_msg = sc->groups ? 1 : sc->subs;
		break;
	case SCENARIO_FANOUT:
		p->per_msg = sc->subs;
		break;
	case SCENARIO_SHARED:
		p->per_msg = sc->groups;
		break;
	default:
		p->per_msg = 0; /* pub alone, or sub of someone else's publishers */
		break;
	}
}

enum client_role plan_role(const struct plan *p, uint32_t client)
{
	if (p->subs_total == 0 && p->pubs_total == 0)
		return ROLE_IDLE;
	return client < p->subs_total ? ROLE_SUB : ROLE_PUB;
}

uint32_t plan_rank(const struct plan *p, uint32_t client)
{
	return plan_role(p, client) == ROLE_PUB ? client - p->subs_total : client;
}

uint32_t plan_slice(const struct plan *p, uint32_t client, uint32_t slices)
{
	return plan_rank(p, client) % slices;
}

void plan_pub_topic(const struct scenario *sc, uint32_t pub_rank, char *buf, size_t cap)
{
	if (sc->kind == SCENARIO_FANOUT)
		snprintf(buf, cap, "%s/all", sc->topic_prefix);
	else
		snprintf(buf, cap, "%s/%u", sc->topic_prefix, pub_rank);
}

void plan_sub_filter(const struct scenario *sc, uint32_t sub_rank, char *buf, size_t cap)
{
	switch (sc->kind) {
	case SCENARIO_PAIRS:
		snprintf(buf, cap, "%s/%u", sc->topic_prefix, sub_rank);
		break;
	case SCENARIO_FANOUT:
		snprintf(buf, cap, "%s/all", sc->topic_prefix);
		break;
	case SCENARIO_SHARED:
		snprintf(buf, cap, "$share/g%u/%s/+", sub_rank % sc->groups, sc->topic_prefix);
		break;
	case SCENARIO_FANIN:
		if (sc->groups)
			snprintf(buf, cap, "$share/g0/%s/+", sc->topic_prefix);
		else
			snprintf(buf, cap, "%s/+", sc->topic_prefix);
		break;
	default:
		snprintf(buf, cap, "%s/#", sc->topic_prefix);
		break;
	}
}

uint32_t plan_sub_sink(const struct scenario *sc, const struct plan *p, uint32_t sub_rank)
{
	/* groups get sink ids above every client index */
	if (sc->kind == SCENARIO_SHARED)
		return p->clients_total + sub_rank % sc->groups;
	if (sc->kind == SCENARIO_FANIN && sc->groups)
		return p->clients_total;
	return sub_rank;
}

static bool in_range(uint32_t slice, uint32_t lo, uint32_t hi)
{
	return slice >= lo && slice < hi;
}

uint32_t plan_local_deliveries(const struct scenario *sc, const struct plan *p, uint32_t pub_rank,
                               uint32_t lo, uint32_t hi, uint32_t slices)
{
	uint32_t n = 0;
	switch (sc->kind) {
	case SCENARIO_PAIRS:
		return in_range(pub_rank % slices, lo, hi) ? 1 : 0;
	case SCENARIO_FANOUT:
	case SCENARIO_FANIN:
		if (sc->kind == SCENARIO_FANIN && sc->groups) {
			for (uint32_t s = 0; s < p->subs_total; s++)
				if (!in_range(s % slices, lo, hi))
					return 0;
			return 1;
		}
		for (uint32_t s = 0; s < p->subs_total; s++)
			n += in_range(s % slices, lo, hi);
		return n;
	case SCENARIO_SHARED:
		for (uint32_t g = 0; g < sc->groups; g++) {
			bool all = true;
			for (uint32_t s = g; s < p->subs_total; s += sc->groups)
				all = all && in_range(s % slices, lo, hi);
			n += all;
		}
		return n;
	default:
		return 0;
	}
}
