/*
 * config.c — owns the directive table and everything generated from it: the
 * defaults, the file / environment / command-line setters, the printer of the
 * effective configuration and the Markdown reference (docs/config.md).
 *
 * Called on the main thread only, before workers start (config.h). No global
 * state: every function works on the struct it is given, so tests can build
 * as many configurations as they like.
 *
 * Invariants: every field of struct config is reached by exactly one row of
 * `directives`; every default string passes its own setter (config_defaults
 * asserts it), so a default can never be out of its documented range.
 */
#include "base/config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/config_int.h"
#include "base/errmsg.h"

#define LINE_MAX_BYTES 4096 /* longer lines are an error, never truncated */
/* The enum setter writes an int; make sure the enums really are int-sized. */
_Static_assert(sizeof(enum queue_overflow) == sizeof(int), "enum queue_overflow size");
_Static_assert(sizeof(enum log_level) == sizeof(int), "enum log_level size");
_Static_assert(sizeof(enum allow_anonymous) == sizeof(int), "enum allow_anonymous size");
_Static_assert(sizeof(enum tls_identity) == sizeof(int), "enum tls_identity size");

static const char *const overflow_names[] = {"drop_oldest", "drop_newest", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const anonymous_names[] = {"auto", "true", "false", NULL};
/* Per listener kind: "inherit" is stored as ANON_AUTO and means "as
 * allow_anonymous says". */
static const char *const inherit_names[] = {"inherit", "true", "false", NULL};
static const char *const identity_names[] = {"none", "cn", "san", NULL};
static const char *const profile_names[] = {"lan", "fast", NULL};
static const char *const sync_names[] = {"none", "write", "fsync", NULL};

/*
 * One macro per type. The key is the stringified field name, so key names and
 * field names cannot drift apart; the field's size is recorded so
 * config_defaults can assert that a U16 row really points at a uint16_t.
 */
/* clang-format off */
#define FIELD(f) #f, offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define INT(t, f, def, min, max, unit, help) {FIELD(f), t, 0, def, min, max, unit, NULL, help}
#define U8(...)  INT(DIR_U8, __VA_ARGS__)
#define U16(...) INT(DIR_U16, __VA_ARGS__)
#define U32(...) INT(DIR_U32, __VA_ARGS__)
#define U64(...) INT(DIR_U64, __VA_ARGS__)
#define BOOL(f, def, help)        {FIELD(f), DIR_BOOL, 0, def, 0, 0, NULL, NULL, help}
#define ENUM(f, names, def, help) {FIELD(f), DIR_ENUM, 0, def, 0, 0, NULL, names, help}
#define ADDR(f, def, help)        {FIELD(f), DIR_ADDR, 0, def, 0, 0, NULL, NULL, help}
#define PATH(f, def, help)        {FIELD(f), DIR_PATH, 0, def, 0, 0, NULL, NULL, help}
#define TEXT(f, def, help)        {FIELD(f), DIR_TEXT, 0, def, 0, 0, NULL, NULL, help}
#define ADDR_LIST(f, def, help) \
	{FIELD(f), DIR_ADDR_LIST, offsetof(struct config, f##_count), def, 0, 0, NULL, NULL, help}
#define ADDR_OPT(f, def, help) \
	{FIELD(f), DIR_ADDR_OPT, offsetof(struct config, f##_set), def, 0, 0, NULL, NULL, help}
#define NAME(f, def, help)        {FIELD(f), DIR_NAME, 0, def, 0, 0, NULL, NULL, help}
#define PEERS(f, def, help)       {FIELD(f), DIR_PEERS, 0, def, 0, 0, NULL, NULL, help}
#define ADDR_LIST_OPT(f, def, help) \
	{FIELD(f), DIR_ADDR_LIST_OPT, offsetof(struct config, f##_count), def, 0, 0, NULL, NULL, help}
/* clang-format on */

/* The one table. Order is the order of config_print and docs/config.md. */
static const struct directive directives[] = {
    /* Listeners and threads */
    ADDR_LIST(listen, "127.0.0.1:1883,[::1]:1883",
              "MQTT over TCP listeners, comma-separated host:port, [v6]:port or :port (any "
              "address); the default is loopback only (its [::1] is skipped where the host "
              "has no IPv6); to serve other hosts, e.g. 0.0.0.0:1883"),
    ADDR(metrics_listen, "127.0.0.1:9100",
         "HTTP listener for /metrics, /healthz and /readyz (no authentication); loopback by "
         "default, e.g. 0.0.0.0:9100 for a Prometheus on another host"),
    U32(workers, "0", 0, 1024, NULL, "worker threads; 0 = one per online CPU"),

    /* Limits */
    U32(max_connections, "1000000", 1, 16777216, NULL,
        "client connections per node; sockets beyond it are closed at accept"),
    U32(listener_max_connections, "0", 0, 16777216, NULL,
        "client connections per listener address (each of listen, tls_listen, ws_listen, "
        "wss_listen); beyond it new sockets are closed at accept; 0 = only max_connections"),
    U32(connect_rate_per_address, "0", 0, 1000000, NULL,
        "new connections accepted per second from one IP address, node-wide; beyond it they "
        "are closed at accept and counted; 0 = no limit"),
    U32(max_sessions, "2000000", 1, 67108864, NULL,
        "sessions per node, online and offline; a CONNECT that needs a new one beyond it "
        "is refused (0x97 quota exceeded; 3.1.1: server unavailable)"),
    U32(max_packet_size, "1048576", 64, 268435460, "bytes",
        "largest MQTT packet accepted, and the default limit for outbound packets"),
    U64(partial_packets_bytes_max, "67108864", 0, 1099511627776ull, "bytes",
        "node-wide budget for packets still being received (the buffered part of every "
        "connection's incomplete packet); a connection whose packet would take more is "
        "closed (0x97 quota exceeded) and counted; 0 = no budget"),
    U32(packet_receive_timeout_ms, "60000", 0, 86400000, "ms",
        "time a connection may take to send the rest of a packet it began (keep alive 0 "
        "does not bound it otherwise); beyond it it is closed (0x8D) and counted; 0 = no "
        "limit"),
    U32(connect_timeout_ms, "10000", 100, 3600000, "ms",
        "time a new socket has to send CONNECT before it is closed"),
    U16(keepalive_max_s, "65535", 1, 65535, "s",
        "largest keep-alive granted; larger client values are lowered (MQTT 5 Server Keep "
        "Alive)"),
    U32(session_expiry_max_s, "604800", 0, 4294967295u, "s",
        "cap on a client's session expiry interval; 0 = sessions end with the connection"),
    U16(receive_maximum, "1024", 1, 65535, NULL,
        "inbound QoS 1/2 PUBLISH unacknowledged per client (MQTT 5 Receive Maximum)"),
    U16(inflight_max, "128", 1, 65535, NULL, "outbound QoS 1/2 PUBLISH unacknowledged per session"),
    U32(queue_messages_max, "1000", 0, 16777216, NULL,
        "messages queued per session while offline or beyond inflight_max"),
    U64(queue_bytes_max, "16777216", 0, 1099511627776ull, "bytes",
        "bytes of messages queued per session"),
    ENUM(queue_overflow, overflow_names, "drop_oldest",
         "what a full session queue does: drop its oldest message or refuse the new one "
         "(both counted)"),
    BOOL(queue_qos0, "false", "also queue QoS 0 messages for offline persistent sessions"),
    U64(outbox_bytes_max, "1048576", 64, 1073741824, "bytes",
        "unsent bytes per connection; QoS 0 beyond it is dropped and counted"),
    U64(worker_transit_bytes_max, "16777216", 65536, 1099511627776ull, "bytes",
        "bytes in transit from one worker toward another (48 per delivery, and each message "
        "once); QoS 0 deliveries beyond it are dropped and counted (worker_behind)"),
    U16(topic_alias_max, "64", 0, 65535, NULL,
        "inbound topic aliases accepted per client (MQTT 5 Topic Alias Maximum); 0 = none"),
    U16(topic_alias_out_max, "64", 0, 65535, NULL,
        "outbound topic aliases used per client, at most its Topic Alias Maximum: a topic gets "
        "one when first sent, until these (or 4 KiB of topics) are used; 0 = none"),
    U32(topic_length_max, "65535", 1, 65535, "bytes", "longest topic name or filter accepted"),
    U32(topic_levels_max, "128", 1, 65535, NULL,
        "most '/'-separated levels in a topic name or filter"),
    U32(subscriptions_max, "1000", 1, 1048576, NULL,
        "subscriptions per client; SUBSCRIBE beyond it is refused"),

    /* Features announced in CONNACK (5.0) */
    U8(max_qos, "2", 0, 2, NULL, "highest QoS granted (MQTT 5 Maximum QoS)"),
    BOOL(retain_available, "true", "accept retained messages (MQTT 5 Retain Available)"),
    BOOL(wildcard_available, "true",
         "accept '+' and '#' in filters (MQTT 5 Wildcard Subscription Available)"),
    BOOL(shared_available, "true",
         "accept $share/ subscriptions (MQTT 5 Shared Subscription Available)"),
    BOOL(sub_id_available, "true",
         "accept subscription identifiers (MQTT 5 Subscription Identifier Available)"),

    /* Security */
    PATH(password_file, "",
         "users and their password hashes (mosquitto's format; `starling passwd` writes "
         "it); SIGHUP rereads it"),
    ENUM(allow_anonymous, anonymous_names, "auto",
         "accept clients without a user name (a verified client certificate is not anonymous); "
         "auto = yes unless a password file or client certificates (tls_ca_file) are set"),
    PATH(acl_file, "",
         "who may publish, subscribe and receive what (mosquitto's acl_file format); once set, "
         "what it does not allow is denied; rules for user names need password_file or "
         "tls_identity_as_username; SIGHUP rereads it"),
    ENUM(tls_allow_anonymous, inherit_names, "inherit",
         "allow_anonymous for the tls_listen addresses; inherit = as allow_anonymous"),
    ENUM(ws_allow_anonymous, inherit_names, "inherit",
         "allow_anonymous for the ws_listen addresses; inherit = as allow_anonymous"),
    ENUM(wss_allow_anonymous, inherit_names, "inherit",
         "allow_anonymous for the wss_listen addresses; inherit = as allow_anonymous"),
    U32(auth_cache_size, "65536", 0, 16777216, NULL,
        "credentials that passed a password check and are remembered, as a keyed MAC (never "
        "the password), so a reconnecting client skips the slow hash; a reload forgets them; "
        "0 = check every CONNECT"),
    U32(auth_failures_per_minute, "10", 0, 1000000, NULL,
        "failed authentications accepted from one address per minute; past it that address's "
        "CONNECTs are refused without checking (5.0: 0x9F), except credentials that passed "
        "recently, until twice the limit; a wrong password retried is not counted again; "
        "0 = no limit"),

    /* TLS */
    ADDR_LIST_OPT(tls_listen, "",
                  "MQTT over TLS listeners, like listen (the conventional port is 8883); empty = "
                  "none. Needs tls_cert_file and tls_key_file"),
    PATH(tls_cert_file, "", "the server's certificate chain (PEM, leaf first); SIGHUP rereads it"),
    PATH(tls_key_file, "",
         "the private key of tls_cert_file (PEM, unencrypted); SIGHUP rereads it"),
    PATH(tls_ca_file, "",
         "CA certificates (PEM) that client certificates are verified against; set, clients "
         "are asked for one; SIGHUP rereads it"),
    BOOL(tls_require_client_cert, "false",
         "mutual TLS: a client without a certificate tls_ca_file trusts fails the handshake "
         "(needs tls_ca_file)"),
    ENUM(tls_identity_as_username, identity_names, "none",
         "use the verified client certificate's subject CN, or its first DNS or email "
         "subjectAltName, as the MQTT user name; such a client needs no password (needs "
         "tls_ca_file)"),
    TEXT(tls_ciphers, "",
         "TLS 1.2 cipher list in OpenSSL's syntax; empty = OpenSSL's default (TLS 1.0 and 1.1 "
         "are never accepted)"),
    TEXT(tls_ciphersuites, "", "TLS 1.3 cipher suites, colon-separated; empty = OpenSSL's default"),
    TEXT(tls_groups, "",
         "key exchange groups, colon-separated (e.g. X25519:P-256); empty = OpenSSL's default"),

    /* WebSocket */
    ADDR_LIST_OPT(ws_listen, "",
                  "MQTT over WebSocket listeners, like listen (the conventional port is 8080): "
                  "an HTTP upgrade on ws_path with subprotocol mqtt; empty = none"),
    ADDR_LIST_OPT(wss_listen, "",
                  "MQTT over WebSocket over TLS listeners (the conventional port is 8443), with "
                  "the tls_* keys; empty = none"),
    TEXT(ws_path, "/mqtt", "the URL path WebSocket clients ask for"),

    /* Operations */
    BOOL(metrics, "true", "serve /metrics, /healthz and /readyz on metrics_listen"),
    U32(metrics_max_connections, "256", 4, 4096, NULL,
        "connections metrics_listen serves at once; when all are taken a new one closes the "
        "oldest (one still sending its request first), so a probe always gets in"),
    U32(metrics_request_timeout_ms, "3000", 100, 60000, "ms",
        "time a metrics_listen connection has to send its request head; idle and slow ones are "
        "closed after it (the answer then has 10 s to be read)"),
    PATH(metrics_token_file, "",
         "file holding a bearer token that /metrics then requires (Authorization: Bearer); "
         "/healthz and /readyz stay open; reread when the file changes"),
    PATH(metrics_basic_auth_file, "",
         "file holding user:password that /metrics then accepts as HTTP basic auth (with "
         "metrics_token_file: either one); reread when the file changes"),
    U32(sys_interval_s, "10", 0, 86400, "s",
        "how often the $SYS/broker/... topics are published (retained, changed values "
        "only); 0 = never"),
    U32(shutdown_grace_ms, "5000", 0, 600000, "ms",
        "on SIGTERM, the time clients get to receive their DISCONNECT and pending output "
        "before their connections are cut"),

    /* The cluster */
    NAME(node_name, "",
         "this node's name in the cluster, unique in it (a StatefulSet pod's name); empty = "
         "the host name"),
    ADDR_OPT(cluster_listen, "",
             "the cluster's address: membership (UDP) and the link between nodes (TCP) on "
             "the same port, e.g. 0.0.0.0:7946; empty = a single node, no cluster"),
    ADDR_OPT(cluster_advertise, "",
             "the address other nodes reach this one at (a pod's IP); empty = cluster_listen's "
             "(which must then not be 0.0.0.0)"),
    PEERS(cluster_seeds, "",
          "nodes to join through, host:port comma-separated (names are resolved at each "
          "attempt); empty = none"),
    PEERS(cluster_dns, "",
          "names whose A and AAAA records are the peers, host:port (a Kubernetes headless "
          "Service), resolved again every cluster_dns_interval_s; empty = none"),
    U32(cluster_dns_interval_s, "10", 1, 3600, "s", "how often cluster_dns is resolved again"),
    NAME(cluster_name, "starling",
         "nodes of another cluster name are refused, so two clusters on one network stay two"),
    PATH(cluster_secret_file, "",
         "file holding the cluster's shared secret: every membership packet is signed with it "
         "(HMAC-SHA256) and a node that cannot sign is refused; empty = none (trusted networks "
         "only)"),
    ENUM(cluster_profile, profile_names, "lan",
         "failure detection timing: lan = hashicorp/memberlist's LAN defaults (a crashed node "
         "is declared dead in about 6 s), fast = loopback and tests (about 1.5 s)"),
    U32(cluster_join_timeout_ms, "5000", 0, 600000, "ms",
        "with seeds or cluster_dns and nobody answering, /readyz becomes true after this "
        "(the first node of a cluster starts alone)"),
    U64(cluster_link_buffer_bytes, "33554432", 1048576, 1099511627776ull, "bytes",
        "messages waiting for one peer node, over all workers (each worker has its share, "
        "and up to 1 MiB more in flight on its connection); beyond it what is forwarded to "
        "that peer is dropped and counted (starling_cluster_link_drops_total)"),

    /* Persistence */
    BOOL(persistence, "false",
         "journal retained messages and persistent sessions (with their subscriptions, will "
         "and expiry) in data_dir, and the QoS 1/2 messages queued or in flight for those "
         "sessions, so that what was acknowledged survives a restart, kill -9 and (with "
         "persistence_sync = fsync) power loss (docs/operations.md \"Persistence\")"),
    PATH(data_dir, "/var/lib/starling",
         "the directory of the journal (created if missing; one node per directory)"),
    ENUM(persistence_sync, sync_names, "write",
         "when an acknowledgement may leave: write = after the journal's write completed "
         "(survives kill -9), fsync = after a group commit's fdatasync completed (survives "
         "power loss), none = at once, the write following in the same loop turn (kill -9 "
         "loses only what a worker had not yet handed to the kernel; power loss, what the "
         "kernel had not yet written back)"),
    U32(persistence_fsync_max_ms, "0", 0, 10000, "ms",
        "with fsync: how long a group gathers records before its write and fdatasync when "
        "none is in flight (more per flush, more latency); 0 = at once: the flush in flight "
        "is what gathers the next group"),
    U64(persistence_fsync_max_bytes, "1048576", 4096, 1073741824ull, "bytes",
        "with fsync: a group commit goes out when this many bytes wait, before "
        "persistence_fsync_max_ms"),
    U64(persistence_compact_bytes, "268435456", 1048576, 1099511627776ull, "bytes",
        "when the journals have grown by this much since the last compaction, every worker "
        "starts a new segment and writes a snapshot of its state, and the older files are "
        "deleted (also once after every start that recovered something)"),

    /* Logging */
    ENUM(log_level, level_names, "info",
         "least severe level written to stderr; SIGHUP "
         "rereads it"),
    BOOL(log_json, "false", "one JSON object per line instead of plain text; SIGHUP rereads it"),
};

#undef FIELD
#undef ADDR_OPT
#undef NAME
#undef PEERS
#undef INT
#undef U8
#undef U16
#undef U32
#undef U64
#undef BOOL
#undef ENUM
#undef ADDR
#undef ADDR_LIST
#undef ADDR_LIST_OPT
#undef PATH
#undef TEXT

#define N_DIRECTIVES (sizeof(directives) / sizeof(directives[0]))

/* ------------------------------------------------------------------------ */
/* Lookup */

static size_t min3(size_t a, size_t b, size_t c)
{
	size_t m = a < b ? a : b;
	return m < c ? m : c;
}

/* Levenshtein distance; keys are short (< 32 bytes), longer input is "far". */
size_t config_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 63 || lb > 63)
		return SIZE_MAX;
	size_t prev[64], cur[64];
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++)
			cur[j] =
			    min3(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]));
		memcpy(prev, cur, (lb + 1) * sizeof(prev[0]));
	}
	return prev[lb];
}

static const struct directive *find(const char *key)
{
	for (size_t i = 0; i < N_DIRECTIVES; i++)
		if (strcmp(directives[i].name, key) == 0)
			return &directives[i];
	return NULL;
}

/* The closest key within edit distance 2, or NULL: a typo gets a hint, an
 * unrelated word does not get a misleading one. */
static const char *suggest(const char *key)
{
	const char *best = NULL;
	size_t best_d = 3;
	for (size_t i = 0; i < N_DIRECTIVES; i++) {
		size_t d = config_edit_distance(key, directives[i].name);
		if (d < best_d) {
			best_d = d;
			best = directives[i].name;
		}
	}
	return best;
}

/* ------------------------------------------------------------------------ */
/* Generic setters: parse value, check it, store it at d->offset. On error
 * they write the reason only; config_set prefixes source and key. */

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

/* A unit suffix someone coming from other brokers would try ("64k", "1MB",
 * "10s"): worth a specific hint, while "12x" is just not a number. */
static bool looks_like_unit(const char *s)
{
	static const char *const units[] = {"k",  "K",   "m",  "M",  "g",   "G",   "kb",  "KB",
	                                    "mb", "MB",  "gb", "GB", "KiB", "MiB", "GiB", "ms",
	                                    "s",  "min", "h",  "B",  "b",   NULL};
	for (size_t i = 0; units[i] != NULL; i++)
		if (strcmp(s, units[i]) == 0)
			return true;
	return false;
}

static int set_int(const struct directive *d, void *field, const char *v, char *why, size_t why_len)
{
	if (*v == '\0') {
		seterr(why, why_len, "empty value, expected a number");
		return -1;
	}
	if (*v == '-' && is_digit(v[1])) {
		seterr(why, why_len, "\"%s\" is negative; the minimum is %llu", v,
		       (unsigned long long)d->min);
		return -1;
	}
	/* Decimal digits only: strtoull would take "+1", " 1", "0x10" and
	 * wrap "-1"; none of those belongs in a config file. */
	uint64_t n = 0;
	bool overflow = false;
	const char *p = v;
	for (; is_digit(*p); p++) {
		unsigned digit = (unsigned)(*p - '0');
		if (n > (UINT64_MAX - digit) / 10)
			overflow = true;
		else
			n = n * 10 + digit;
	}
	if (p == v || *p != '\0') {
		if (p != v && looks_like_unit(p))
			seterr(why, why_len,
			       "\"%s\" is not a number: unit suffixes are not accepted, write "
			       "plain decimal %s",
			       v, d->unit != NULL ? d->unit : "units");
		else
			seterr(why, why_len, "\"%s\" is not a number", v);
		return -1;
	}
	if (overflow || n > d->max) {
		seterr(why, why_len, "%s is above the maximum %llu", v, (unsigned long long)d->max);
		return -1;
	}
	if (n < d->min) {
		seterr(why, why_len, "%s is below the minimum %llu", v, (unsigned long long)d->min);
		return -1;
	}
	switch (d->type) {
	case DIR_U8:
		*(uint8_t *)field = (uint8_t)n;
		break;
	case DIR_U16:
		*(uint16_t *)field = (uint16_t)n;
		break;
	case DIR_U32:
		*(uint32_t *)field = (uint32_t)n;
		break;
	case DIR_U64:
		*(uint64_t *)field = n;
		break;
	default:
		assert(!"set_int on a non-integer directive");
	}
	return 0;
}

static int set_bool(const struct directive *d, void *field, const char *v, char *why,
                    size_t why_len)
{
	(void)d;
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*(bool *)field = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*(bool *)field = false;
			return 0;
		}
	}
	seterr(why, why_len, "\"%s\" is not a boolean (true/false, yes/no, on/off, 1/0)", v);
	return -1;
}

static int set_enum(const struct directive *d, void *field, const char *v, char *why,
                    size_t why_len)
{
	for (int i = 0; d->names[i] != NULL; i++) {
		if (strcasecmp(v, d->names[i]) == 0) {
			*(int *)field = i;
			return 0;
		}
	}
	char list[128] = "";
	for (size_t i = 0; d->names[i] != NULL; i++) {
		if (i > 0)
			strncat(list, ", ", sizeof(list) - strlen(list) - 1);
		strncat(list, d->names[i], sizeof(list) - strlen(list) - 1);
	}
	seterr(why, why_len, "\"%s\" is not one of %s", v, list);
	return -1;
}

/* Hosts are numeric or "localhost": resolving names at startup would make
 * the listeners depend on DNS, and an IP is what an operator binds anyway. */
static int parse_addr(const char *s, struct config_addr *out, char *why, size_t why_len)
{
	struct config_addr a = {{0}, 0};
	const char *colon;
	const char *host = s;
	size_t host_len;
	bool v6 = false;

	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':') {
			seterr(why, why_len, "\"%s\" is not an address: expected [v6]:port", s);
			return -1;
		}
		host = s + 1;
		host_len = (size_t)(close - host);
		colon = close + 1;
		v6 = true;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			seterr(why, why_len,
			       "\"%s\" is not an address: expected host:port, [v6]:port or :port",
			       s);
			return -1;
		}
		if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
			seterr(why, why_len,
			       "\"%s\" is not an address: put an IPv6 host in brackets, "
			       "[v6]:port",
			       s);
			return -1;
		}
		host_len = (size_t)(colon - s);
	}
	if (host_len >= sizeof(a.host)) {
		seterr(why, why_len, "\"%s\": host is longer than %d bytes", s,
		       CONFIG_HOST_MAX - 1);
		return -1;
	}
	memcpy(a.host, host, host_len);
	a.host[host_len] = '\0';

	const char *port = colon + 1;
	unsigned long n = 0;
	const char *p = port;
	for (; is_digit(*p) && n <= 65535; p++)
		n = n * 10 + (unsigned)(*p - '0');
	if (p == port || *p != '\0' || n > 65535) {
		seterr(why, why_len, "\"%s\": port \"%s\" is not a number 0..65535", s, port);
		return -1;
	}
	a.port = (uint16_t)n;

	unsigned char buf[16];
	if (v6) {
		if (inet_pton(AF_INET6, a.host, buf) != 1) {
			seterr(why, why_len, "\"%s\": \"%s\" is not an IPv6 address", s, a.host);
			return -1;
		}
	} else if (a.host[0] != '\0' && strcmp(a.host, "localhost") != 0 &&
	           inet_pton(AF_INET, a.host, buf) != 1) {
		seterr(why, why_len,
		       "\"%s\": host \"%s\" is not a numeric IPv4 address or localhost", s, a.host);
		return -1;
	}
	*out = a;
	return 0;
}

int config_parse_addr(const char *s, struct config_addr *out)
{
	return parse_addr(s, out, NULL, 0);
}

/* A path is taken as written: whether it can be read is checked where it is
 * loaded, so the message can say what the file is for. */
static int set_path(void *field, const char *v, char *why, size_t why_len)
{
	size_t n = strlen(v);
	if (n >= CONFIG_PATH_MAX) {
		snprintf(why, why_len, "a path of %zu bytes is longer than %d", n,
		         CONFIG_PATH_MAX - 1);
		return -1;
	}
	memcpy(field, v, n + 1);
	return 0;
}

static int set_addr(const struct directive *d, void *field, const char *v, char *why,
                    size_t why_len)
{
	(void)d;
	return parse_addr(v, field, why, why_len);
}

static bool addr_eq(const struct config_addr *a, const struct config_addr *b)
{
	return a->port == b->port && strcmp(a->host, b->host) == 0;
}

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

static int set_addr_list(const struct directive *d, void *field, const char *v, char *why,
                         size_t why_len)
{
	struct config_addr list[CONFIG_LISTEN_MAX];
	unsigned count = 0;
	const char *p = v;

	while (is_space(*p))
		p++;
	if (d->type == DIR_ADDR_LIST_OPT && *p == '\0')
		goto store; /* "": this kind of listener is off */
	/* Parse into a local list first: a bad element leaves the field as
	 * it was, like every other setter. */
	for (;;) {
		while (is_space(*p))
			p++;
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		while (len > 0 && is_space(p[len - 1]))
			len--;
		if (len == 0) {
			seterr(why, why_len, "\"%s\": empty address in the list", v);
			return -1;
		}
		if (count == CONFIG_LISTEN_MAX) {
			seterr(why, why_len, "\"%s\": more than %d addresses", v,
			       CONFIG_LISTEN_MAX);
			return -1;
		}
		char one[CONFIG_HOST_MAX + 16];
		if (len >= sizeof(one)) {
			seterr(why, why_len, "\"%.*s\" is too long for an address", (int)len, p);
			return -1;
		}
		memcpy(one, p, len);
		one[len] = '\0';
		if (parse_addr(one, &list[count], why, why_len) != 0)
			return -1;
		for (unsigned i = 0; i < count; i++) {
			if (addr_eq(&list[i], &list[count])) {
				seterr(why, why_len, "\"%s\" is listed twice", one);
				return -1;
			}
		}
		count++;
		if (end == NULL)
			break;
		p = end + 1;
	}
store:;
	struct config_addr *dst = field;
	memset(dst, 0, sizeof(list));
	memcpy(dst, list, count * sizeof(list[0]));
	*(unsigned *)((char *)field - d->offset + d->count_offset) = count;
	return 0;
}

/* An address or "" (not set): the flag beside the field says which. */
static int set_addr_opt(const struct directive *d, void *field, const char *v, char *why,
                        size_t why_len)
{
	bool *set = (bool *)((char *)field - d->offset + d->count_offset);
	if (*v == '\0') {
		memset(field, 0, sizeof(struct config_addr));
		*set = false;
		return 0;
	}
	if (parse_addr(v, field, why, why_len) != 0)
		return -1;
	*set = true;
	return 0;
}

/* A name nodes and clusters are known by in logs, metrics and DNS. */
static int set_name(void *field, const char *v, char *why, size_t why_len)
{
	size_t n = strlen(v);
	if (n >= CONFIG_NAME_MAX) {
		seterr(why, why_len, "\"%s\" is longer than %d bytes", v, CONFIG_NAME_MAX - 1);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		char ch = v[i];
		if (!(is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      ch == '.' || ch == '_' || ch == '-')) {
			seterr(why, why_len,
			       "\"%s\": only letters, digits, '.', '_' and '-' (not '%c')", v, ch);
			return -1;
		}
	}
	memcpy(field, v, n + 1);
	return 0;
}

/* A DNS name's characters, as RFC 1123 allows them in a host name. */
static bool host_name_ok(const char *h, size_t len)
{
	if (len == 0 || len > 253 || h[0] == '-' || h[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = h[i];
		if (!(is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      ch == '.' || ch == '-'))
			return false;
	}
	return true;
}

/* "host:port,host:port": hosts are names, IPv4 or [IPv6]; stored as given
 * without spaces. Names are resolved by the cluster, not here. */
static int set_peers(void *field, const char *v, char *why, size_t why_len)
{
	char out[CONFIG_PEERS_MAX];
	size_t used = 0;
	unsigned count = 0;
	const char *p = v;
	while (*p) {
		while (*p == ' ')
			p++;
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		while (len > 0 && p[len - 1] == ' ')
			len--;
		if (len == 0) {
			seterr(why, why_len, "\"%s\": an empty entry", v);
			return -1;
		}
		char one[300];
		if (len >= sizeof(one)) {
			seterr(why, why_len, "\"%.*s...\" is too long for a host:port", 40, p);
			return -1;
		}
		memcpy(one, p, len);
		one[len] = '\0';
		const char *colon = strrchr(one, ':');
		size_t hlen = colon ? (size_t)(colon - one) : 0;
		bool v6 = one[0] == '[' && hlen >= 2 && one[hlen - 1] == ']';
		unsigned long port = 0;
		const char *q = colon ? colon + 1 : "";
		for (; is_digit(*q) && port <= 65535; q++)
			port = port * 10 + (unsigned long)(*q - '0');
		unsigned char buf[16];
		char h[260];
		memcpy(h, v6 ? one + 1 : one, v6 ? hlen - 2 : hlen);
		h[v6 ? hlen - 2 : hlen] = '\0';
		bool host_ok = v6 ? inet_pton(AF_INET6, h, buf) == 1
		                  : (inet_pton(AF_INET, h, buf) == 1 || host_name_ok(h, strlen(h)));
		if (!colon || !host_ok || q == colon + 1 || *q != '\0' || port == 0 ||
		    port > 65535) {
			seterr(why, why_len,
			       "\"%s\" is not host:port (a name, an IPv4 address or [IPv6], and a "
			       "port "
			       "1..65535)",
			       one);
			return -1;
		}
		if (++count > CONFIG_PEERS_COUNT_MAX) {
			seterr(why, why_len, "more than %d entries", CONFIG_PEERS_COUNT_MAX);
			return -1;
		}
		if (used + len + 2 > sizeof(out)) {
			seterr(why, why_len, "longer than %d bytes", CONFIG_PEERS_MAX - 1);
			return -1;
		}
		if (used)
			out[used++] = ',';
		memcpy(out + used, one, len);
		used += len;
		p = end ? end + 1 : p + strlen(p);
	}
	out[used] = '\0';
	memcpy(field, out, used + 1);
	return 0;
}

int config_apply(const struct directive *d, void *base, const char *v, char *why, size_t why_len)
{
	void *field = (char *)base + d->offset;
	switch (d->type) {
	case DIR_U8:
	case DIR_U16:
	case DIR_U32:
	case DIR_U64:
		return set_int(d, field, v, why, why_len);
	case DIR_BOOL:
		return set_bool(d, field, v, why, why_len);
	case DIR_ENUM:
		return set_enum(d, field, v, why, why_len);
	case DIR_ADDR:
		return set_addr(d, field, v, why, why_len);
	case DIR_ADDR_LIST:
	case DIR_ADDR_LIST_OPT:
		return set_addr_list(d, field, v, why, why_len);
	case DIR_PATH:
	case DIR_TEXT:
		return set_path(field, v, why, why_len);
	case DIR_ADDR_OPT:
		return set_addr_opt(d, field, v, why, why_len);
	case DIR_NAME:
		return set_name(field, v, why, why_len);
	case DIR_PEERS:
		return set_peers(field, v, why, why_len);
	}
	assert(!"unknown directive type");
	return -1;
}

/* ------------------------------------------------------------------------ */
/* Public setters */

/* The field size each type's setter writes. */
size_t config_type_size(enum dir_type t)
{
	switch (t) {
	case DIR_U8:
		return sizeof(uint8_t);
	case DIR_U16:
		return sizeof(uint16_t);
	case DIR_U32:
		return sizeof(uint32_t);
	case DIR_U64:
		return sizeof(uint64_t);
	case DIR_BOOL:
		return sizeof(bool);
	case DIR_ENUM:
		return sizeof(int);
	case DIR_ADDR:
		return sizeof(struct config_addr);
	case DIR_ADDR_LIST:
	case DIR_ADDR_LIST_OPT:
		return sizeof(struct config_addr) * CONFIG_LISTEN_MAX;
	case DIR_PATH:
	case DIR_TEXT:
		return CONFIG_PATH_MAX;
	case DIR_ADDR_OPT:
		return sizeof(struct config_addr);
	case DIR_NAME:
		return CONFIG_NAME_MAX;
	case DIR_PEERS:
		return CONFIG_PEERS_MAX;
	}
	return 0;
}

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < N_DIRECTIVES; i++) {
		assert(directives[i].size == config_type_size(directives[i].type) &&
		       "directive type matches its field");
		char why[WHY_MAX];
		int rc = config_apply(&directives[i], c, directives[i].def, why, sizeof(why));
		if (rc != 0)
			fprintf(stderr, "config: default of %s: %s\n", directives[i].name, why);
		assert(rc == 0 && "every default passes its own setter");
	}
}

static void unknown_key(const char *source, const char *key, char *err, size_t err_len)
{
	const char *hint = suggest(key);
	if (hint != NULL)
		seterr(err, err_len, "%s: unknown key \"%s\" (did you mean \"%s\"?)", source, key,
		       hint);
	else
		seterr(err, err_len, "%s: unknown key \"%s\"", source, key);
}

int config_set(struct config *c, const char *source, const char *key, const char *value, char *err,
               size_t err_len)
{
	const struct directive *d = find(key);
	if (d == NULL && config_bridge_key(key))
		return config_bridge_set(c, source, key, value, err, err_len);
	if (d == NULL) {
		unknown_key(source, key, err, err_len);
		return -1;
	}
	char why[WHY_MAX];
	if (config_apply(d, c, value, why, sizeof(why)) != 0) {
		seterr(err, err_len, "%s: %s: %s", source, key, why);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Files */

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/*
 * Split one line (newline and CR already removed) into key and value, in
 * place. Returns 1 for a key/value line, 0 for blank or comment, -1 with
 * *why set for a syntax error; *key is set whenever a key was read, so the
 * error can name it.
 */
static int split_line(char *line, char **key, char **value, const char **why)
{
	char *p = line;
	*key = NULL;
	while (is_space(*p))
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	*key = p;
	while (*p != '\0' && *p != '=' && !is_space(*p) && *p != '#')
		p++;
	char *key_end = p;
	while (is_space(*p))
		p++;
	if (*p != '=') {
		*key_end = '\0';
		*why = "missing '=' (expected \"key = value\")";
		return -1;
	}
	*key_end = '\0';
	p++;
	while (is_space(*p))
		p++;

	if (*p == '"') {
		/* Quoted: '#' and leading/trailing blanks are literal;
		 * \" and \\ are the only escapes. */
		char *out = ++p;
		*value = out;
		for (;;) {
			if (*p == '\0') {
				*why = "unterminated quoted value";
				return -1;
			}
			if (*p == '"')
				break;
			if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
				p++;
			*out++ = *p++;
		}
		*out = '\0';
		p++;
		while (is_space(*p))
			p++;
		if (*p != '\0' && *p != '#') {
			*why = "unexpected text after the closing quote";
			return -1;
		}
		return 1;
	}

	*value = p;
	/* A bridge's topic rule runs to the end of the line, as mosquitto's
	 * do: its '#' is the wildcard ("sensors/# out 1"), not a comment. */
	bool rule = config_bridge_key(*key) && ends_with(*key, ".topic");
	char *end = rule ? NULL : strchr(p, '#');
	if (end == NULL)
		end = p + strlen(p);
	while (end > p && is_space(end[-1]))
		end--;
	*end = '\0';
	return 1;
}

/* Bridge keys a file's duplicate check remembers: beyond, not checked. */
#define BRIDGE_SEEN_MAX (CONFIG_BRIDGES_MAX * 32)

int config_load_file(struct config *c, const char *path, char *err, size_t err_len)
{
	int rc = -1;
	char *line = NULL;
	size_t cap = 0;
	unsigned seen_at[N_DIRECTIVES] = {0}; /* line of each key's first setting */
	struct {
		char key[96];
		unsigned line;
	} bridge_seen[BRIDGE_SEEN_MAX]; /* the same for bridges' keys */
	unsigned bridge_seen_len = 0;
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		seterr(err, err_len, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}

	for (unsigned lineno = 1;; lineno++) {
		errno = 0;
		ssize_t n = getline(&line, &cap, f);
		if (n < 0) {
			if (ferror(f)) {
				seterr(err, err_len, "%s: read error: %s", path,
				       strerror(errno ? errno : EIO));
				goto fail;
			}
			break;
		}
		size_t len = (size_t)n;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (len > LINE_MAX_BYTES) {
			seterr(err, err_len, "%s:%u: line is longer than %d bytes", path, lineno,
			       LINE_MAX_BYTES);
			goto fail;
		}
		if (strlen(line) != len) {
			seterr(err, err_len, "%s:%u: line contains a NUL byte", path, lineno);
			goto fail;
		}

		char source[LINE_MAX_BYTES];
		snprintf(source, sizeof(source), "%s:%u", path, lineno);
		char *key, *value;
		const char *why = NULL;
		int kind = split_line(line, &key, &value, &why);
		if (kind == 0)
			continue;
		if (kind < 0) {
			if (key != NULL && *key != '\0')
				seterr(err, err_len, "%s: %s: %s", source, key, why);
			else
				seterr(err, err_len, "%s: %s", source, why);
			goto fail;
		}
		if (*key == '\0') {
			seterr(err, err_len, "%s: missing key before '='", source);
			goto fail;
		}
		const struct directive *d = find(key);
		if (d != NULL) {
			size_t i = (size_t)(d - directives);
			/* A key set twice in one file is almost always an
			 * edit that forgot the first one; say where. */
			if (seen_at[i] != 0) {
				seterr(err, err_len, "%s: %s: already set on line %u", source, key,
				       seen_at[i]);
				goto fail;
			}
			seen_at[i] = lineno;
		} else if (config_bridge_key(key) && !ends_with(key, ".topic")) {
			/* The same for a bridge's keys; its topic lines repeat. */
			unsigned j = 0;
			while (j < bridge_seen_len && strcmp(bridge_seen[j].key, key) != 0)
				j++;
			if (j < bridge_seen_len) {
				seterr(err, err_len, "%s: %s: already set on line %u", source, key,
				       bridge_seen[j].line);
				goto fail;
			}
			if (j < BRIDGE_SEEN_MAX && strlen(key) < sizeof(bridge_seen[j].key)) {
				snprintf(bridge_seen[j].key, sizeof(bridge_seen[j].key), "%s", key);
				bridge_seen[j].line = lineno;
				bridge_seen_len++;
			}
		}
		if (config_set(c, source, key, value, err, err_len) != 0)
			goto fail;
	}
	rc = 0;
fail:
	free(line);
	fclose(f);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Environment */

#define ENV_PREFIX "STARLING_"

int config_load_env(struct config *c, char *const *envp, char *err, size_t err_len)
{
	const size_t plen = strlen(ENV_PREFIX);
	for (; envp != NULL && *envp != NULL; envp++) {
		const char *var = *envp;
		if (strncmp(var, ENV_PREFIX, plen) != 0)
			continue;
		const char *eq = strchr(var, '=');
		if (eq == NULL)
			continue;
		size_t name_len = (size_t)(eq - var);
		char key[128];
		size_t key_len = name_len - plen;
		const struct directive *d = NULL;
		if (key_len < sizeof(key)) {
			for (size_t i = 0; i < key_len; i++) {
				char ch = var[plen + i];
				key[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
			}
			key[key_len] = '\0';
			d = find(key);
		}
		char bridge_key[sizeof(key) + 8];
		if (d == NULL && key_len < sizeof(key) &&
		    config_bridge_env_key(key, bridge_key, sizeof(bridge_key))) {
			char source[sizeof(key) + 32];
			snprintf(source, sizeof(source), "environment %.*s", (int)name_len, var);
			if (config_set(c, source, bridge_key, eq + 1, err, err_len) != 0)
				return -1;
			continue;
		}
		if (d == NULL) {
			const char *hint = key_len < sizeof(key) ? suggest(key) : NULL;
			if (hint != NULL) {
				char upper[128];
				size_t i = 0;
				for (; hint[i] != '\0'; i++)
					upper[i] = (hint[i] >= 'a' && hint[i] <= 'z')
					               ? (char)(hint[i] - 'a' + 'A')
					               : hint[i];
				upper[i] = '\0';
				seterr(err, err_len,
				       "environment: unknown variable %.*s (did you mean "
				       "%s%s?)",
				       (int)name_len, var, ENV_PREFIX, upper);
			} else {
				seterr(err, err_len, "environment: unknown variable %.*s",
				       (int)name_len, var);
			}
			return -1;
		}
		char source[96];
		snprintf(source, sizeof(source), "environment %.*s", (int)name_len, var);
		if (config_set(c, source, d->name, eq + 1, err, err_len) != 0)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Cross-key checks */

static bool host_any(const char *h)
{
	return h[0] == '\0' || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0;
}

/* Would binding both fail with EADDRINUSE? Port 0 never collides. */
static bool addr_overlap(const struct config_addr *a, const struct config_addr *b)
{
	if (a->port == 0 || a->port != b->port)
		return false;
	return strcmp(a->host, b->host) == 0 || host_any(a->host) || host_any(b->host);
}

static void format_addr(const struct config_addr *a, char *buf, size_t len)
{
	if (strchr(a->host, ':') != NULL)
		snprintf(buf, len, "[%s]:%u", a->host, a->port);
	else
		snprintf(buf, len, "%s:%u", a->host, a->port);
}

int config_validate(const struct config *c, char *err, size_t err_len)
{
	if (c->listen_count == 0 || c->listen_count > CONFIG_LISTEN_MAX) {
		seterr(err, err_len, "listen: needs 1 to %d addresses, has %u", CONFIG_LISTEN_MAX,
		       c->listen_count);
		return -1;
	}
	for (unsigned i = 0; i < c->listen_count; i++) {
		if (addr_overlap(&c->listen[i], &c->metrics_listen)) {
			char a[CONFIG_HOST_MAX + 8], b[CONFIG_HOST_MAX + 8];
			format_addr(&c->listen[i], a, sizeof(a));
			format_addr(&c->metrics_listen, b, sizeof(b));
			seterr(err, err_len,
			       "metrics_listen: %s uses the same port as listen address %s", b, a);
			return -1;
		}
	}
	/* Every listener address against every other and the metrics one:
	 * binding both would fail with EADDRINUSE, or worse, succeed on two
	 * hosts and surprise. */
	struct {
		const char *key;
		const struct config_addr *addr;
	} all[4 * CONFIG_LISTEN_MAX + 1];
	/* The metrics address first, so a clash names the listener's key. */
	all[0].key = "metrics_listen", all[0].addr = &c->metrics_listen;
	unsigned n = 1;
	const struct {
		const char *key;
		const struct config_addr *list;
		unsigned count;
	} kinds[] = {{"listen", c->listen, c->listen_count},
	             {"tls_listen", c->tls_listen, c->tls_listen_count},
	             {"ws_listen", c->ws_listen, c->ws_listen_count},
	             {"wss_listen", c->wss_listen, c->wss_listen_count}};
	for (unsigned k = 0; k < 4; k++)
		for (unsigned i = 0; i < kinds[k].count && i < CONFIG_LISTEN_MAX; i++)
			all[n].key = kinds[k].key, all[n++].addr = &kinds[k].list[i];
	for (unsigned i = 1; i < n; i++) {
		for (unsigned j = 0; j < i; j++) {
			if (!addr_overlap(all[i].addr, all[j].addr))
				continue;
			char a[CONFIG_HOST_MAX + 8], b[CONFIG_HOST_MAX + 8];
			format_addr(all[i].addr, a, sizeof(a));
			format_addr(all[j].addr, b, sizeof(b));
			seterr(err, err_len, "%s: %s uses the same port as %s address %s",
			       all[i].key, a, all[j].key, b);
			return -1;
		}
	}
	if (c->wss_listen_count > 0 && (!c->tls_cert_file[0] || !c->tls_key_file[0])) {
		seterr(err, err_len, "wss_listen: needs tls_cert_file and tls_key_file");
		return -1;
	}
	if (c->ws_path[0] != '/') {
		seterr(err, err_len, "ws_path: \"%s\" must start with /", c->ws_path);
		return -1;
	}
	if (c->tls_listen_count > 0 && (!c->tls_cert_file[0] || !c->tls_key_file[0])) {
		seterr(err, err_len, "tls_listen: needs tls_cert_file and tls_key_file");
		return -1;
	}
	if (c->tls_require_client_cert && !c->tls_ca_file[0]) {
		seterr(err, err_len,
		       "tls_require_client_cert: needs tls_ca_file to verify client certificates");
		return -1;
	}
	if (c->tls_identity_as_username != TLS_IDENTITY_NONE && !c->tls_ca_file[0]) {
		seterr(err, err_len,
		       "tls_identity_as_username: needs tls_ca_file to verify client certificates");
		return -1;
	}
	/* The outbox must hold at least one packet of the largest size we
	 * send, or such a packet could never leave. */
	if (c->partial_packets_bytes_max && c->partial_packets_bytes_max < c->max_packet_size) {
		seterr(err, err_len,
		       "partial_packets_bytes_max: %llu is below max_packet_size %u; a packet of "
		       "the largest size could never be received",
		       (unsigned long long)c->partial_packets_bytes_max, c->max_packet_size);
		return -1;
	}
	if (c->outbox_bytes_max < c->max_packet_size) {
		seterr(err, err_len,
		       "outbox_bytes_max: %llu is below max_packet_size %u; the largest "
		       "packet would never fit",
		       (unsigned long long)c->outbox_bytes_max, c->max_packet_size);
		return -1;
	}
	return config_bridges_validate(c, err, err_len);
}

/* ------------------------------------------------------------------------ */
/* What a node exposes */

bool config_listen_is_default(const struct config *c)
{
	struct config def;
	config_defaults(&def);
	if (c->listen_count != def.listen_count)
		return false;
	for (unsigned i = 0; i < c->listen_count && i < CONFIG_LISTEN_MAX; i++)
		if (!addr_eq(&c->listen[i], &def.listen[i]))
			return false;
	return true;
}

bool config_anonymous_ok(const struct config *c, enum config_listener_kind kind)
{
	/* auto: anonymous clients are welcome until the node is configured to
	 * know its clients, by passwords or by client certificates. */
	bool client_certs = c->tls_ca_file[0] && c->tls_listen_count + c->wss_listen_count > 0;
	bool base = c->allow_anonymous == ANON_TRUE ||
	            (c->allow_anonymous == ANON_AUTO && !c->password_file[0] && !client_certs);
	enum allow_anonymous own = kind == CONFIG_KIND_MQTTS ? c->tls_allow_anonymous
	                           : kind == CONFIG_KIND_WS  ? c->ws_allow_anonymous
	                           : kind == CONFIG_KIND_WSS ? c->wss_allow_anonymous
	                                                     : ANON_AUTO;
	return own == ANON_AUTO ? base : own == ANON_TRUE;
}

/* snprintf at *used, never past len; a cut line ends in what fitted. */
__attribute__((format(printf, 4, 5))) static void append(char *buf, size_t len, size_t *used,
                                                         const char *fmt, ...)
{
	if (*used >= len)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *used, len - *used, fmt, ap);
	va_end(ap);
	if (n > 0)
		*used = *used + (size_t)n < len ? *used + (size_t)n : len - 1;
}

/* An address as an operator reads it: "*" for every address. */
static void shown_addr(const struct config_addr *a, char *buf, size_t len)
{
	struct config_addr any = *a;
	if (!any.host[0])
		memcpy(any.host, "*", 2);
	format_addr(&any, buf, len);
}

void config_exposure(const struct config *c, unsigned workers, char *buf, size_t len)
{
	const struct {
		const char *name;
		const struct config_addr *list;
		unsigned count;
		enum config_listener_kind kind;
	} kinds[] = {
	    {"mqtt", c->listen, c->listen_count, CONFIG_KIND_MQTT},
	    {"mqtts", c->tls_listen, c->tls_listen_count, CONFIG_KIND_MQTTS},
	    {"ws", c->ws_listen, c->ws_listen_count, CONFIG_KIND_WS},
	    {"wss", c->wss_listen, c->wss_listen_count, CONFIG_KIND_WSS},
	};
	size_t used = 0;
	buf[0] = '\0';
	append(buf, len, &used, "listeners");
	const char *sep = " ";
	for (unsigned k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		bool anon = config_anonymous_ok(c, kinds[k].kind);
		bool tls = kinds[k].kind == CONFIG_KIND_MQTTS || kinds[k].kind == CONFIG_KIND_WSS;
		for (unsigned i = 0; i < kinds[k].count && i < CONFIG_LISTEN_MAX; i++) {
			char a[CONFIG_HOST_MAX + 8];
			shown_addr(&kinds[k].list[i], a, sizeof(a));
			append(buf, len, &used, "%s%s %s (anonymous %s%s)", sep, kinds[k].name, a,
			       anon ? "allowed" : "refused",
			       tls && c->tls_require_client_cert ? ", client certificate required"
			                                         : "");
			sep = ", ";
		}
	}
	if (c->metrics) {
		char a[CONFIG_HOST_MAX + 8];
		shown_addr(&c->metrics_listen, a, sizeof(a));
		append(buf, len, &used, "; metrics http %s (no authentication)", a);
	} else {
		append(buf, len, &used, "; metrics off");
	}
	if (c->password_file[0])
		append(buf, len, &used, "; password_file %s", c->password_file);
	else
		append(buf, len, &used, "; password_file none");
	if (c->acl_file[0])
		append(buf, len, &used, "; acl_file %s", c->acl_file);
	else
		append(buf, len, &used,
		       "; acl_file none (every client may subscribe to every topic and "
		       "publish outside $SYS/)");
	if (c->cluster_listen_set) {
		/* Only with a cluster: a single node's line is what it always was. */
		char a[CONFIG_HOST_MAX + 8];
		shown_addr(&c->cluster_listen, a, sizeof(a));
		append(buf, len, &used, "; cluster %s%s on %s (%s)",
		       c->node_name[0] ? "node " : "this host's name", c->node_name, a,
		       c->cluster_secret_file[0] ? "signed with cluster_secret_file"
		                                 : "unsigned: any host that reaches it may join");
	}
	if (c->persistence) {
		static const char *const how[] = {
		    "none: a crash may lose the last ms of acknowledged work",
		    "write: acknowledged work survives kill -9",
		    "fsync: acknowledged work survives power loss"};
		append(
		    buf, len, &used,
		    "; persistence in %s (sessions, their messages and retained messages; sync %s)",
		    c->data_dir, how[c->persistence_sync]);
	} else {
		append(buf, len, &used,
		       "; persistence off (a restart loses sessions, queued and "
		       "retained messages)");
	}
	append(buf, len, &used, "; %u worker%s%s", workers, workers == 1 ? "" : "s",
	       c->workers == 0 ? " (one per online CPU)" : "");
}

/* ------------------------------------------------------------------------ */
/* Printing */

/* The value of one directive in file format; buf holds a full address list. */
void config_format_value(const struct directive *d, const void *base, char *buf, size_t len)
{
	const void *field = (const char *)base + d->offset;
	switch (d->type) {
	case DIR_U8:
		snprintf(buf, len, "%u", *(const uint8_t *)field);
		return;
	case DIR_U16:
		snprintf(buf, len, "%u", *(const uint16_t *)field);
		return;
	case DIR_U32:
		snprintf(buf, len, "%u", *(const uint32_t *)field);
		return;
	case DIR_U64:
		snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)field);
		return;
	case DIR_BOOL:
		snprintf(buf, len, "%s", *(const bool *)field ? "true" : "false");
		return;
	case DIR_ENUM: {
		int v = *(const int *)field;
		size_t n = 0;
		while (d->names[n] != NULL)
			n++;
		assert(v >= 0 && (size_t)v < n);
		snprintf(buf, len, "%s", d->names[v]);
		return;
	}
	case DIR_ADDR:
		format_addr(field, buf, len);
		return;
	case DIR_ADDR_OPT:
		if (!*(const bool *)((const char *)base + d->count_offset))
			snprintf(buf, len, "\"\"");
		else
			format_addr(field, buf, len);
		return;
	case DIR_ADDR_LIST:
	case DIR_ADDR_LIST_OPT: {
		const struct config_addr *list = field;
		unsigned count = *(const unsigned *)((const char *)base + d->count_offset);
		buf[0] = '\0';
		if (count == 0) {
			snprintf(buf, len, "\"\""); /* reads back as the empty list */
			return;
		}
		for (unsigned i = 0; i < count && i < CONFIG_LISTEN_MAX; i++) {
			char one[CONFIG_HOST_MAX + 8];
			format_addr(&list[i], one, sizeof(one));
			size_t used = strlen(buf);
			snprintf(buf + used, len - used, "%s%s", i > 0 ? "," : "", one);
		}
		return;
	}
	case DIR_PATH:
	case DIR_TEXT:
	case DIR_NAME:
	case DIR_PEERS: {
		/* Always quoted, so "" and paths with spaces or '#' read back. */
		const char *p = field;
		size_t used = 0;
		buf[used++] = '"';
		for (; *p && used + 3 < len; p++) {
			if (*p == '"' || *p == '\\')
				buf[used++] = '\\';
			buf[used++] = *p;
		}
		buf[used++] = '"';
		buf[used] = '\0';
		return;
	}
	}
	assert(!"unknown directive type");
}

#define VALUE_MAX (CONFIG_LISTEN_MAX * (CONFIG_HOST_MAX + 8) + 2 * CONFIG_PEERS_MAX + 16)

void config_print(const struct config *c, FILE *out)
{
	fprintf(out, "# Starling effective configuration; every key, in file format.\n");
	for (size_t i = 0; i < N_DIRECTIVES; i++) {
		char value[VALUE_MAX];
		config_format_value(&directives[i], c, value, sizeof(value));
		fprintf(out, "%s = %s\n", directives[i].name, value);
	}
	config_bridges_print(c, out);
}

/* The "values" column: what the setter accepts. */
void config_format_range(const struct directive *d, char *buf, size_t len)
{
	switch (d->type) {
	case DIR_U8:
	case DIR_U16:
	case DIR_U32:
	case DIR_U64:
		snprintf(buf, len, "%llu .. %llu%s%s", (unsigned long long)d->min,
		         (unsigned long long)d->max, d->unit != NULL ? " " : "",
		         d->unit != NULL ? d->unit : "");
		return;
	case DIR_BOOL:
		snprintf(buf, len, "true, false");
		return;
	case DIR_ENUM:
		buf[0] = '\0';
		for (size_t i = 0; d->names[i] != NULL; i++) {
			size_t used = strlen(buf);
			snprintf(buf + used, len - used, "%s`%s`", i > 0 ? ", " : "", d->names[i]);
		}
		return;
	case DIR_ADDR:
		snprintf(buf, len, "address");
		return;
	case DIR_ADDR_LIST:
		snprintf(buf, len, "1 .. %d addresses", CONFIG_LISTEN_MAX);
		return;
	case DIR_ADDR_LIST_OPT:
		snprintf(buf, len, "0 .. %d addresses", CONFIG_LISTEN_MAX);
		return;
	case DIR_PATH:
		snprintf(buf, len, "path");
		return;
	case DIR_TEXT:
		snprintf(buf, len, "text");
		return;
	case DIR_ADDR_OPT:
		snprintf(buf, len, "address or empty");
		return;
	case DIR_NAME:
		snprintf(buf, len, "name, up to %d bytes", CONFIG_NAME_MAX - 1);
		return;
	case DIR_PEERS:
		snprintf(buf, len, "0 .. %d host:port", CONFIG_PEERS_COUNT_MAX);
		return;
	}
	assert(!"unknown directive type");
}

void config_print_reference(FILE *out)
{
	struct config def;
	config_defaults(&def);
	fprintf(out, "| key | default | values | description |\n");
	fprintf(out, "|---|---|---|---|\n");
	for (size_t i = 0; i < N_DIRECTIVES; i++) {
		const struct directive *d = &directives[i];
		char value[VALUE_MAX], range[128];
		config_format_value(d, &def, value, sizeof(value));
		config_format_range(d, range, sizeof(range));
		fprintf(out, "| `%s` | `%s` | %s | %s |\n", d->name, value, range, d->help);
	}
	fprintf(out,
	        "\n"
	        "Value syntax:\n"
	        "\n"
	        "- Integers are plain decimal: no sign, no `0x`, no unit suffix (`64k`, `10s` are\n"
	        "  errors); the unit is part of the key name (`_bytes`, `_ms`, `_s`) or the\n"
	        "  values column.\n"
	        "- Booleans: `true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`.\n"
	        "- Addresses: `host:port`, `[v6]:port` or `:port` (any address); the host is a\n"
	        "  numeric IPv4 or IPv6 address or `localhost`; port 0 picks a free port.\n"
	        "  `listen` and `tls_listen` take up to %d of them, comma-separated;\n"
	        "  `tls_listen = \"\"` is the empty list.\n"
	        "- In a file: one `key = value` per line, `#` starts a comment, values may be\n"
	        "  double-quoted (`\\\"` and `\\\\` escape inside quotes), lines are at most %d\n"
	        "  bytes, and a key may appear once.\n"
	        "- Every key can be set as `STARLING_<KEY>` in the environment (e.g.\n"
	        "  `STARLING_MAX_PACKET_SIZE=65536`) and as `--<key>=<value>` on the command\n"
	        "  line. Later sources win: defaults, file, environment, command line.\n",
	        CONFIG_LISTEN_MAX, LINE_MAX_BYTES);
	config_bridges_reference(out);
}
