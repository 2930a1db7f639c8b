/*
 * config_bridge.c — the keys of bridges: `bridge.NAME.KEY` in a file and on
 * the command line, STARLING_BRIDGE_NAME_KEY in the environment. A bridge
 * comes into being with the first key that names it, with every default
 * of its own table below; its `topic` key repeats (several lines, the flag
 * given several times, or several rules in one value separated by ';' or a
 * new line) and each rule is read as mosquitto reads its `topic` lines:
 *
 *   PATTERN [out|in|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]
 *
 * e.g. "sensors/# out 1 site1/ edge/": local topics site1/sensors/# go to
 * the remote as edge/sensors/#. A token may be double-quoted (`""` is the
 * empty prefix or pattern; \" and \\ escape inside quotes).
 *
 * The setters and printers are config.c's, over struct config_bridge
 * instead of struct config (config_int.h), so a bridge's keys read, print
 * and document themselves like every other key. Main thread only.
 */
#include <assert.h>
#include <string.h>

#include "base/config_int.h"
#include "base/errmsg.h"
#include "codec/topic.h"

#define PREFIX    "bridge."
#define RULES_SEP ";\n" /* between rules in one value */
#define TOKENS    6     /* a rule's tokens: one more than it may have */

static const char *const version_names[] = {"5.0", "3.1.1", NULL};
static const char *const overflow_names[] = {"drop_oldest", "drop_newest", NULL};

_Static_assert(sizeof(enum bridge_version) == sizeof(int), "enum bridge_version size");

/* clang-format off */
#define FIELD(f) #f, offsetof(struct config_bridge, f), sizeof(((struct config_bridge *)0)->f)
#define INT(t, f, def, min, max, unit, help) {FIELD(f), t, 0, def, min, max, unit, NULL, help}
#define U16(...) INT(DIR_U16, __VA_ARGS__)
#define U32(...) INT(DIR_U32, __VA_ARGS__)
#define U64(...) INT(DIR_U64, __VA_ARGS__)
#define BOOL(f, def, help)        {FIELD(f), DIR_BOOL, 0, def, 0, 0, NULL, NULL, help}
#define ENUM(f, names, def, help) {FIELD(f), DIR_ENUM, 0, def, 0, 0, NULL, names, help}
#define PATH(f, def, help)        {FIELD(f), DIR_PATH, 0, def, 0, 0, NULL, NULL, help}
#define TEXT(f, def, help)        {FIELD(f), DIR_TEXT, 0, def, 0, 0, NULL, NULL, help}
#define PEERS(f, def, help)       {FIELD(f), DIR_PEERS, 0, def, 0, 0, NULL, NULL, help}
/* clang-format on */

/* A bridge's keys, in the order of config_print and docs/config.md; the
 * repeatable `topic` is not a row (its rules are parsed below). */
static const struct directive keys[] = {
    PEERS(address, "",
          "the remote broker, host:port (a name, an IPv4 address or [IPv6]); several, "
          "comma-separated, are tried in turn when one cannot be reached (required); "
          "names are resolved again after a failed attempt or a lost link"),
    ENUM(version, version_names, "5.0",
         "the MQTT version spoken to the remote; with 5.0 the bridge's subscriptions use "
         "no-local, with 3.1.1 try_private marks the connection as a bridge's"),
    TEXT(client_id, "",
         "the client identifier at the remote; \"\" = the node's name (node_name, or the host "
         "name) and the bridge's, e.g. edge1.cloud"),
    BOOL(clean_start, "false",
         "start a fresh remote session at every connection; false keeps a persistent session, "
         "so the remote keeps what the bridge subscribed to while the link is down"),
    U32(session_expiry_s, "86400", 0, 4294967295ull, "s",
        "5.0: how long the remote keeps the bridge's session after the link drops (4294967295 "
        "= never)"),
    TEXT(username, "", "the user name given to the remote; \"\" = none"),
    TEXT(password, "", "the password given to the remote (with username); \"\" = none"),
    BOOL(tls, "false", "connect to the remote over TLS (1.2 or 1.3)"),
    PATH(cafile, "",
         "with tls: the CAs (PEM) the remote's certificate must chain to; \"\" = the system's "
         "(/etc/ssl/certs)"),
    PATH(certfile, "", "with tls: a client certificate (PEM chain) for the remote; \"\" = none"),
    PATH(keyfile, "", "with tls: the client certificate's private key (PEM)"),
    TEXT(sni, "",
         "with tls: the server name sent (SNI) and verified against the certificate; \"\" = "
         "the host of the address being tried"),
    BOOL(verify, "true",
         "with tls: verify the remote's certificate chain and name; false accepts any "
         "certificate (a warning is logged at every connection)"),
    U16(keepalive_s, "60", 5, 65535, "s",
        "keep-alive of the bridge's connection; a remote silent for 1.5 times it is cut"),
    U16(inflight_max, "1024", 1, 65535, NULL,
        "QoS 1/2 messages sent to the remote and not yet acknowledged (a 5.0 remote's receive "
        "maximum lowers it; the node's inflight_max does not apply); it sets the bridge's "
        "throughput over a long round trip, and how many a reconnect may resend"),
    U32(queue_messages_max, "100000", 1, 100000000, NULL,
        "QoS 1/2 messages for the remote held while the link is down or the window is full; "
        "beyond, queue_overflow decides and the drop is counted (QoS 0 is held only with "
        "queue_qos0, as for every session)"),
    U64(queue_bytes_max, "67108864", 1024, 1099511627776ull, "bytes",
        "the same bound in payload and topic bytes"),
    ENUM(queue_overflow, overflow_names, "drop_oldest",
         "a full queue: drop_oldest makes room, drop_newest refuses the new message; both are "
         "counted (starling_bridge_dropped_total)"),
    U32(reconnect_min_ms, "250", 10, 3600000, "ms",
        "the first wait before dialling again after a failure; it doubles at each failure up "
        "to reconnect_max_ms, with jitter, and starts over once a connection held"),
    U32(reconnect_max_ms, "1000", 10, 3600000, "ms",
        "the longest wait between attempts: how long, at worst, the bridge takes to notice "
        "that the remote is back"),
    BOOL(try_private, "true",
         "3.1.1: connect with the bridge bit (0x80 added to the protocol level, as mosquitto "
         "does) so a remote that knows it does not send the bridge's own messages back"),
};

#undef FIELD
#undef INT
#undef U16
#undef U32
#undef U64
#undef BOOL
#undef ENUM
#undef PATH
#undef TEXT
#undef PEERS

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static const struct directive *key_find(const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

/* The closest key within edit distance 2 ("topic" included), or NULL. */
static const char *key_suggest(const char *name)
{
	const char *best = NULL;
	size_t best_d = 3;
	for (size_t i = 0; i <= N_KEYS; i++) {
		const char *k = i < N_KEYS ? keys[i].name : "topic";
		size_t d = config_edit_distance(name, k);
		if (d < best_d)
			best_d = d, best = k;
	}
	return best;
}

bool config_bridge_key(const char *key)
{
	return strncmp(key, PREFIX, strlen(PREFIX)) == 0;
}

/* Names are lower-case letters, digits and '_': they are a level of
 * $SYS/broker/bridge/NAME/, a metric label, and part of an environment
 * variable's name, which folds case. */
static bool name_ok(const char *s, size_t len)
{
	if (len == 0 || len >= CONFIG_BRIDGE_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

const struct config_bridge *config_bridge_find(const struct config *c, const char *name)
{
	for (unsigned i = 0; i < c->bridge_count; i++)
		if (strcmp(c->bridges[i].name, name) == 0)
			return &c->bridges[i];
	return NULL;
}

/* The bridge called name (len bytes), made with its defaults when new.
 * NULL when CONFIG_BRIDGES_MAX exist already. */
static struct config_bridge *bridge_get(struct config *c, const char *name, size_t len)
{
	for (unsigned i = 0; i < c->bridge_count; i++)
		if (strlen(c->bridges[i].name) == len && memcmp(c->bridges[i].name, name, len) == 0)
			return &c->bridges[i];
	if (c->bridge_count == CONFIG_BRIDGES_MAX)
		return NULL;
	struct config_bridge *b = &c->bridges[c->bridge_count++];
	memset(b, 0, sizeof(*b));
	memcpy(b->name, name, len);
	for (size_t i = 0; i < N_KEYS; i++) {
		assert(keys[i].size == config_type_size(keys[i].type) &&
		       "directive type matches its field");
		char why[WHY_MAX];
		int rc = config_apply(&keys[i], b, keys[i].def, why, sizeof(why));
		assert(rc == 0 && "every default passes its own setter");
		(void)rc;
	}
	return b;
}

/* ------------------------------------------------------------------------ */
/* Topic rules */

/* The next token of a rule at *p: blanks skipped, a quoted token unquoted.
 * 1: a token in tok; 0: the rule ended (*p at its separator or the end);
 * -1: a bad token, why set. */
static int next_token(const char **p, char *tok, size_t cap, char *why, size_t why_len)
{
	const char *s = *p;
	while (*s == ' ' || *s == '\t' || *s == '\r')
		s++;
	*p = s;
	if (*s == '\0' || strchr(RULES_SEP, *s))
		return 0;
	size_t n = 0;
	if (*s == '"') {
		for (s++;; s++) {
			if (*s == '\0') {
				seterr(why, why_len, "an unterminated quoted token");
				return -1;
			}
			if (*s == '"')
				break;
			if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
				s++;
			if (n + 1 >= cap) {
				seterr(why, why_len, "a token longer than %zu bytes", cap - 1);
				return -1;
			}
			tok[n++] = *s;
		}
		s++;
		if (*s != '\0' && *s != ' ' && *s != '\t' && !strchr(RULES_SEP, *s)) {
			seterr(why, why_len, "text right after a closing quote");
			return -1;
		}
	} else {
		for (; *s && *s != ' ' && *s != '\t' && *s != '\r' && !strchr(RULES_SEP, *s); s++) {
			if (n + 1 >= cap) {
				seterr(why, why_len, "a token longer than %zu bytes", cap - 1);
				return -1;
			}
			tok[n++] = *s;
		}
	}
	tok[n] = '\0';
	*p = s;
	return 1;
}

/* prefix + pattern, a filter the codec accepts and not a shared one. */
static int check_side(const char *side, const char *prefix, const char *pattern, char *why,
                      size_t why_len)
{
	char full[CONFIG_BRIDGE_PREFIX_MAX + CONFIG_BRIDGE_PATTERN_MAX];
	snprintf(full, sizeof(full), "%s%s", prefix, pattern);
	if (strpbrk(prefix, "+#")) {
		seterr(why, why_len, "the %s prefix \"%s\" has a wildcard", side, prefix);
		return -1;
	}
	struct mqtt_view v = {(const uint8_t *)full, (uint32_t)strlen(full)};
	if (v.len == 0) {
		seterr(why, why_len, "an empty pattern needs a %s prefix", side);
		return -1;
	}
	if (mqtt_topic_filter_check(v) != MQTT_RC_SUCCESS) {
		seterr(why, why_len, "the %s filter \"%s\" is not a valid topic filter", side,
		       full);
		return -1;
	}
	if (strncmp(full, "$share/", 7) == 0) {
		seterr(why, why_len, "the %s filter \"%s\" is a shared subscription", side, full);
		return -1;
	}
	return 0;
}

/* One rule from *p (up to its separator) into r. 1: a rule; 0: none there
 * (blank); -1: why set. */
static int parse_rule(const char **p, struct config_bridge_topic *r, char *why, size_t why_len)
{
	char tok[TOKENS][CONFIG_BRIDGE_PATTERN_MAX];
	unsigned n = 0;
	for (;;) {
		char one[CONFIG_BRIDGE_PATTERN_MAX];
		int k = next_token(p, one, sizeof(one), why, why_len);
		if (k < 0)
			return -1;
		if (k == 0)
			break;
		if (n == TOKENS - 1) {
			seterr(why, why_len,
			       "more than 5 tokens (PATTERN [out|in|both [QOS [LOCAL_PREFIX "
			       "REMOTE_PREFIX]]])");
			return -1;
		}
		memcpy(tok[n++], one, strlen(one) + 1);
	}
	if (n == 0)
		return 0;
	memset(r, 0, sizeof(*r));
	r->dir = BRIDGE_OUT;
	if (strlen(tok[0]) >= sizeof(r->pattern)) {
		seterr(why, why_len, "the pattern is longer than %d bytes",
		       CONFIG_BRIDGE_PATTERN_MAX - 1);
		return -1;
	}
	memcpy(r->pattern, tok[0], strlen(tok[0]) + 1);
	if (n >= 2) {
		if (!strcmp(tok[1], "out"))
			r->dir = BRIDGE_OUT;
		else if (!strcmp(tok[1], "in"))
			r->dir = BRIDGE_IN;
		else if (!strcmp(tok[1], "both"))
			r->dir = BRIDGE_BOTH;
		else {
			seterr(why, why_len, "\"%s\" is not a direction (out, in or both)", tok[1]);
			return -1;
		}
	}
	if (n >= 3) {
		if (strlen(tok[2]) != 1 || tok[2][0] < '0' || tok[2][0] > '2') {
			seterr(why, why_len, "\"%s\" is not a QoS (0, 1 or 2)", tok[2]);
			return -1;
		}
		r->qos = (uint8_t)(tok[2][0] - '0');
	}
	if (n == 4) {
		seterr(why, why_len,
		       "a local prefix needs a remote prefix after it (\"\" for none)");
		return -1;
	}
	if (n == 5) {
		if (strlen(tok[3]) >= sizeof(r->local_prefix) ||
		    strlen(tok[4]) >= sizeof(r->remote_prefix)) {
			seterr(why, why_len, "a prefix is longer than %d bytes",
			       CONFIG_BRIDGE_PREFIX_MAX - 1);
			return -1;
		}
		memcpy(r->local_prefix, tok[3], strlen(tok[3]) + 1);
		memcpy(r->remote_prefix, tok[4], strlen(tok[4]) + 1);
	}
	if (check_side("local", r->local_prefix, r->pattern, why, why_len) != 0 ||
	    check_side("remote", r->remote_prefix, r->pattern, why, why_len) != 0)
		return -1;
	return 1;
}

static bool rule_eq(const struct config_bridge_topic *a, const struct config_bridge_topic *b)
{
	return a->dir == b->dir && !strcmp(a->pattern, b->pattern) &&
	       !strcmp(a->local_prefix, b->local_prefix) &&
	       !strcmp(a->remote_prefix, b->remote_prefix);
}

/* Every rule of v, appended to b's; all or none. */
static int add_rules(struct config_bridge *b, const char *v, char *why, size_t why_len)
{
	struct config_bridge_topic rules[CONFIG_BRIDGE_TOPICS_MAX];
	unsigned n = 0, count = 0;
	const char *p = v;
	for (;;) {
		struct config_bridge_topic r;
		int k = parse_rule(&p, &r, why, why_len);
		if (k < 0)
			return -1;
		if (k > 0) {
			count++;
			for (unsigned i = 0; i < b->topic_count + n; i++) {
				const struct config_bridge_topic *o =
				    i < b->topic_count ? &b->topics[i] : &rules[i - b->topic_count];
				if (rule_eq(o, &r)) {
					seterr(why, why_len, "rule %u: \"%s\" %s is given twice",
					       count, r.pattern,
					       r.dir == BRIDGE_OUT  ? "out"
					       : r.dir == BRIDGE_IN ? "in"
					                            : "both");
					return -1;
				}
			}
			if (b->topic_count + n == CONFIG_BRIDGE_TOPICS_MAX) {
				seterr(why, why_len, "more than %d topic rules",
				       CONFIG_BRIDGE_TOPICS_MAX);
				return -1;
			}
			rules[n++] = r;
		}
		if (*p == '\0')
			break;
		p++; /* a separator */
	}
	if (count == 0) {
		seterr(why, why_len,
		       "no rule (expected PATTERN [out|in|both [QOS [LOCAL_PREFIX "
		       "REMOTE_PREFIX]]])");
		return -1;
	}
	memcpy(&b->topics[b->topic_count], rules, n * sizeof(rules[0]));
	b->topic_count += n;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Setting */

int config_bridge_set(struct config *c, const char *source, const char *key, const char *v,
                      char *err, size_t err_len)
{
	const char *name = key + strlen(PREFIX);
	const char *dot = strchr(name, '.');
	if (!dot || dot == name || !dot[1]) {
		seterr(err, err_len,
		       "%s: %s: a bridge's key is bridge.NAME.KEY (e.g. "
		       "bridge.cloud.address)",
		       source, key);
		return -1;
	}
	size_t name_len = (size_t)(dot - name);
	if (!name_ok(name, name_len)) {
		seterr(
		    err, err_len,
		    "%s: %s: the bridge name \"%.*s\" must be 1 to %d lower-case letters, digits "
		    "or '_'",
		    source, key, (int)name_len, name, CONFIG_BRIDGE_NAME_MAX - 1);
		return -1;
	}
	const char *sub = dot + 1;
	const struct directive *d = key_find(sub);
	if (!d && strcmp(sub, "topic") != 0) {
		const char *hint = key_suggest(sub);
		if (hint)
			seterr(err, err_len,
			       "%s: unknown key \"%s\" (did you mean \"bridge.%.*s.%s\"?)", source,
			       key, (int)name_len, name, hint);
		else
			seterr(err, err_len,
			       "%s: unknown key \"%s\" (a bridge's keys: docs/config.md)", source,
			       key);
		return -1;
	}
	struct config_bridge *b = bridge_get(c, name, name_len);
	if (!b) {
		seterr(err, err_len, "%s: %s: more than %d bridges", source, key,
		       CONFIG_BRIDGES_MAX);
		return -1;
	}
	char why[WHY_MAX];
	int rc = d ? config_apply(d, b, v, why, sizeof(why)) : add_rules(b, v, why, sizeof(why));
	if (rc != 0) {
		seterr(err, err_len, "%s: %s: %s", source, key, why);
		return -1;
	}
	return 0;
}

bool config_bridge_env_key(const char *lower, char *out, size_t out_len)
{
	const char *bridge = "bridge_";
	if (strncmp(lower, bridge, strlen(bridge)) != 0)
		return false;
	const char *rest = lower + strlen(bridge);
	size_t len = strlen(rest);
	/* The longest key that ends the variable: names may hold '_' too
	 * (STARLING_BRIDGE_MY_CLOUD_CLIENT_ID is my_cloud's client_id). */
	const char *best = NULL;
	for (size_t i = 0; i <= N_KEYS; i++) {
		const char *k = i < N_KEYS ? keys[i].name : "topic";
		size_t kl = strlen(k);
		if (len > kl + 1 && rest[len - kl - 1] == '_' && !strcmp(rest + len - kl, k) &&
		    (!best || kl > strlen(best)))
			best = k;
	}
	if (!best)
		return false;
	int n =
	    snprintf(out, out_len, "%s%.*s.%s", PREFIX, (int)(len - strlen(best) - 1), rest, best);
	return n > 0 && (size_t)n < out_len;
}

/* ------------------------------------------------------------------------ */
/* Cross-key checks */

int config_bridges_validate(const struct config *c, char *err, size_t err_len)
{
	for (unsigned i = 0; i < c->bridge_count; i++) {
		const struct config_bridge *b = &c->bridges[i];
		const char *n = b->name;
		if (!b->address[0]) {
			seterr(err, err_len,
			       "bridge.%s.address: a bridge needs the remote's host:port", n);
			return -1;
		}
		if (b->topic_count == 0) {
			seterr(
			    err, err_len,
			    "bridge.%s.topic: a bridge needs at least one rule (e.g. \"# out 1\")",
			    n);
			return -1;
		}
		if (!b->tls && (b->cafile[0] || b->certfile[0] || b->keyfile[0] || b->sni[0])) {
			seterr(
			    err, err_len,
			    "bridge.%s.tls: is false, but bridge.%s.%s is set; set bridge.%s.tls = "
			    "true to use it",
			    n, n,
			    b->cafile[0]     ? "cafile"
			    : b->certfile[0] ? "certfile"
			    : b->keyfile[0]  ? "keyfile"
			                     : "sni",
			    n);
			return -1;
		}
		if (!b->certfile[0] != !b->keyfile[0]) {
			seterr(err, err_len, "bridge.%s.%s: needs bridge.%s.%s too", n,
			       b->certfile[0] ? "certfile" : "keyfile", n,
			       b->certfile[0] ? "keyfile" : "certfile");
			return -1;
		}
		if (b->reconnect_min_ms > b->reconnect_max_ms) {
			seterr(
			    err, err_len,
			    "bridge.%s.reconnect_min_ms: %u is above bridge.%s.reconnect_max_ms %u",
			    n, b->reconnect_min_ms, n, b->reconnect_max_ms);
			return -1;
		}
		if ((b->username[0] == '\0') && b->password[0] && b->version == BRIDGE_V311) {
			/* 3.1.1 forbids a password without a user name [MQTT-3.1.2-22]. */
			seterr(err, err_len,
			       "bridge.%s.password: MQTT 3.1.1 needs bridge.%s.username "
			       "with a password",
			       n, n);
			return -1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Printing */

/* A token as a rule reads it back: quoted when empty or holding a blank, a
 * quote, a backslash, a separator or '#'. */
static void put_token(char *buf, size_t len, size_t *used, const char *tok)
{
	bool quote = !*tok || strpbrk(tok, " \t\"\\;#");
	if (*used + 1 < len && *used)
		buf[(*used)++] = ' ';
	if (quote && *used + 1 < len)
		buf[(*used)++] = '"';
	for (; *tok && *used + 3 < len; tok++) {
		if (quote && (*tok == '"' || *tok == '\\'))
			buf[(*used)++] = '\\';
		buf[(*used)++] = *tok;
	}
	if (quote && *used + 1 < len)
		buf[(*used)++] = '"';
	buf[*used] = '\0';
}

/* One rule as the text that parses back to it. */
static void format_rule(const struct config_bridge_topic *r, char *buf, size_t len)
{
	static const char *const dirs[] = {"", "out", "in", "both"};
	size_t used = 0;
	buf[0] = '\0';
	put_token(buf, len, &used, r->pattern);
	put_token(buf, len, &used, dirs[r->dir & 3]);
	char q[2] = {(char)('0' + r->qos), '\0'};
	put_token(buf, len, &used, q);
	if (r->local_prefix[0] || r->remote_prefix[0]) {
		put_token(buf, len, &used, r->local_prefix);
		put_token(buf, len, &used, r->remote_prefix);
	}
}

void config_bridges_print(const struct config *c, FILE *out)
{
	for (unsigned i = 0; i < c->bridge_count; i++) {
		const struct config_bridge *b = &c->bridges[i];
		char value[CONFIG_PEERS_MAX + 16];
		for (size_t k = 0; k < N_KEYS; k++) {
			config_format_value(&keys[k], b, value, sizeof(value));
			fprintf(out, "bridge.%s.%s = %s\n", b->name, keys[k].name, value);
		}
		for (unsigned t = 0; t < b->topic_count; t++) {
			char rule[4 * CONFIG_BRIDGE_PATTERN_MAX];
			format_rule(&b->topics[t], rule, sizeof(rule));
			/* Quoted whole, so the file reader keeps its quotes and '#'. */
			fputs("bridge.", out);
			fprintf(out, "%s.topic = \"", b->name);
			for (const char *p = rule; *p; p++) {
				if (*p == '"' || *p == '\\')
					fputc('\\', out);
				fputc(*p, out);
			}
			fputs("\"\n", out);
		}
	}
}

void config_bridges_reference(FILE *out)
{
	struct config_bridge def;
	memset(&def, 0, sizeof(def));
	for (size_t i = 0; i < N_KEYS; i++) {
		char why[WHY_MAX];
		int rc = config_apply(&keys[i], &def, keys[i].def, why, sizeof(why));
		assert(rc == 0);
		(void)rc;
	}
	fprintf(
	    out,
	    "\n"
	    "## Bridges\n"
	    "\n"
	    "A bridge is a connection this node keeps to another MQTT broker (docs/bridges.md).\n"
	    "Its keys are `bridge.NAME.KEY`; the first key that names a bridge makes it, with\n"
	    "the defaults below. NAME is 1 to %d lower-case letters, digits or `_`; up to %d\n"
	    "bridges. In the environment: `STARLING_BRIDGE_NAME_KEY` (e.g.\n"
	    "`STARLING_BRIDGE_CLOUD_ADDRESS=cloud.example:8883`); on the command line:\n"
	    "`--bridge.NAME.KEY=value`.\n"
	    "\n"
	    "| key | default | values | description |\n"
	    "|---|---|---|---|\n",
	    CONFIG_BRIDGE_NAME_MAX - 1, CONFIG_BRIDGES_MAX);
	for (size_t i = 0; i < N_KEYS; i++) {
		char value[CONFIG_PEERS_MAX + 16], range[128];
		config_format_value(&keys[i], &def, value, sizeof(value));
		config_format_range(&keys[i], range, sizeof(range));
		fprintf(out, "| `bridge.NAME.%s` | `%s` | %s | %s |\n", keys[i].name, value, range,
		        keys[i].help);
	}
	fprintf(out,
	        "| `bridge.NAME.topic` | none | 1 .. %d rules | what the bridge carries: "
	        "`PATTERN [out\\|in\\|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]`, repeatable |\n",
	        CONFIG_BRIDGE_TOPICS_MAX);
	fprintf(
	    out,
	    "\n"
	    "Topic rules, as mosquitto's `topic` lines:\n"
	    "\n"
	    "- `PATTERN` is a topic filter (`+` and `#` allowed, not `$share/`); the direction\n"
	    "  defaults to `out` and the QoS to 0. `out` subscribes locally to\n"
	    "  LOCAL_PREFIX + PATTERN and publishes what matches to the remote with\n"
	    "  LOCAL_PREFIX replaced by REMOTE_PREFIX; `in` subscribes at the remote to\n"
	    "  REMOTE_PREFIX + PATTERN and publishes here with REMOTE_PREFIX replaced by\n"
	    "  LOCAL_PREFIX; `both` does both. QOS is the subscription's: a message goes\n"
	    "  on at the lower of its own QoS and it.\n"
	    "- e.g. `bridge.cloud.topic = sensors/# out 1 site1/ edge/` carries local\n"
	    "  `site1/sensors/t1` to the remote as `edge/sensors/t1`; `\"\"` is an empty\n"
	    "  prefix or pattern (`\"\" in 1 cmd/site1 edge/cmd` maps one topic to one).\n"
	    "- The key repeats: several lines in a file, the flag given several times, or\n"
	    "  several rules in one value separated by `;` or a new line (the way to give\n"
	    "  several in one environment variable). A token with a blank, `;` or `#` is\n"
	    "  double-quoted. The same rule given twice is an error.\n"
	    "- In a file a topic line runs to the end of the line: its `#` is the\n"
	    "  wildcard (`bridge.cloud.topic = # out 1`), not the start of a comment.\n");
}
