/*
 * config.h — the node's configuration: one struct, filled from embedded
 * defaults, then a config file, then STARLING_<KEY> environment variables,
 * then --key=value command-line flags (later sources win).
 *
 * Every key is one row of a declarative table in config.c (nginx-style:
 * name, type, field, default, range, help); the parser, the environment and
 * flag overrides, the printer of the effective configuration and the
 * reference documentation (docs/config.md) are all generated from that table,
 * so they cannot drift apart.
 *
 * File format: one "key = value" per line; '#' starts a comment; blank lines
 * are ignored; values may be double-quoted. Lists are comma-separated.
 * Errors name the source (file:line, "environment" or "command line") and
 * the key, e.g. "starling.conf:12: max_packet_size: 0 is below the minimum 64".
 *
 * Read on the main thread before workers start; workers get a const pointer
 * and never write to it.
 */
#ifndef STARLING_CORE_CONFIG_H
#define STARLING_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_LISTEN_MAX      8
#define CONFIG_HOST_MAX        64
#define CONFIG_PATH_MAX        256
#define CONFIG_NAME_MAX        65   /* a node or cluster name: 64 bytes and the NUL */
#define CONFIG_PEERS_MAX       1024 /* "host:port,host:port": the bytes of a peer list */
#define CONFIG_PEERS_COUNT_MAX 32   /* peers in one list */
/* Workers a node runs at most: a larger workers key is capped to it. */
#define CONFIG_WORKERS_MAX 256

struct config_addr {
	char host[CONFIG_HOST_MAX]; /* numeric IPv4/IPv6 or "localhost"; "" = any */
	uint16_t port;              /* 0 = any free port (tests) */
};

enum queue_overflow {
	QUEUE_DROP_OLDEST = 0, /* "drop_oldest": make room, count the drop */
	QUEUE_DROP_NEWEST = 1, /* "drop_newest": refuse the new one, count it */
};

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Which part of a verified client certificate becomes the MQTT user name. */
enum tls_identity {
	TLS_IDENTITY_NONE = 0, /* "none": the CONNECT's user name and password, as on TCP */
	TLS_IDENTITY_CN = 1,   /* "cn": the subject's common name */
	TLS_IDENTITY_SAN = 2,  /* "san": the first DNS or email subjectAltName */
};

/* When an acknowledgement may leave (core/persist/README.md). */
enum persistence_sync {
	PERSIST_SYNC_NONE = 0, /* "none": written in the background; kill -9 may lose the last ms */
	PERSIST_SYNC_WRITE = 1, /* "write": after the write completed; survives kill -9 */
	PERSIST_SYNC_FSYNC = 2, /* "fsync": after a group commit reached the disk; power loss */
};

/* The cluster's timing (cluster/README.md has the parameters). */
enum cluster_profile {
	CLUSTER_PROFILE_LAN = 0,  /* "lan": hashicorp/memberlist's LAN defaults */
	CLUSTER_PROFILE_FAST = 1, /* "fast": loopback and tests; detection in ~1.5 s */
};

enum allow_anonymous {
	ANON_AUTO = 0,  /* "auto": allowed unless a password file is configured */
	ANON_TRUE = 1,  /* "true" */
	ANON_FALSE = 2, /* "false" */
};

/* Bridges (docs/config.md "Bridges"): keys bridge.NAME.KEY. */
#define CONFIG_BRIDGES_MAX        8
#define CONFIG_BRIDGE_NAME_MAX    33  /* 32 bytes and the NUL: a-z, 0-9, '_' */
#define CONFIG_BRIDGE_TOPICS_MAX  32  /* topic rules per bridge */
#define CONFIG_BRIDGE_PATTERN_MAX 256 /* bytes of a rule's pattern, and the NUL */
#define CONFIG_BRIDGE_PREFIX_MAX  128 /* bytes of a rule's prefix, and the NUL */

/* Which way a topic rule carries messages. */
enum bridge_dir {
	BRIDGE_OUT = 1,  /* "out": local publishes go to the remote */
	BRIDGE_IN = 2,   /* "in": the remote's publishes come here */
	BRIDGE_BOTH = 3, /* "both" (BRIDGE_OUT | BRIDGE_IN) */
};

enum bridge_version {
	BRIDGE_V5 = 0,   /* "5.0" */
	BRIDGE_V311 = 1, /* "3.1.1" */
};

/* One `topic` rule, "PATTERN [out|in|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]"
 * as mosquitto reads it: the local filter or topic is local_prefix +
 * pattern, the remote one remote_prefix + pattern. */
struct config_bridge_topic {
	char pattern[CONFIG_BRIDGE_PATTERN_MAX]; /* a filter; "" only with prefixes */
	char local_prefix[CONFIG_BRIDGE_PREFIX_MAX];
	char remote_prefix[CONFIG_BRIDGE_PREFIX_MAX];
	uint8_t dir; /* enum bridge_dir */
	uint8_t qos; /* 0..2: of the subscription made for the rule */
};

/* One bridge: a connection this node keeps to another broker. */
struct config_bridge {
	char name[CONFIG_BRIDGE_NAME_MAX];
	char address[CONFIG_PEERS_MAX]; /* host:port list, tried in turn (failover) */
	enum bridge_version version;
	char client_id[CONFIG_PATH_MAX]; /* "" = "<node name or host name>.<bridge name>" */
	bool clean_start;                /* false: a persistent remote session */
	uint32_t session_expiry_s;       /* 5.0: the remote session's expiry */
	char username[CONFIG_PATH_MAX];  /* "" = none */
	char password[CONFIG_PATH_MAX];  /* "" = none */
	bool tls;
	char cafile[CONFIG_PATH_MAX];   /* "" = the system's CAs */
	char certfile[CONFIG_PATH_MAX]; /* client certificate; "" = none */
	char keyfile[CONFIG_PATH_MAX];
	char sni[CONFIG_PATH_MAX]; /* server name to send and verify; "" = the address's host */
	bool verify;               /* verify the remote's certificate and name */
	uint16_t keepalive_s;
	uint16_t inflight_max;       /* QoS 1/2 sent and not acknowledged */
	uint32_t queue_messages_max; /* waiting for the link, QoS 1/2 (QoS 0 is not kept) */
	uint64_t queue_bytes_max;
	enum queue_overflow queue_overflow;
	uint32_t reconnect_min_ms; /* back-off: the first wait, doubling up to the max */
	uint32_t reconnect_max_ms;
	bool try_private; /* 3.1.1: announce a bridge (protocol level | 0x80) to stop echoes */
	struct config_bridge_topic topics[CONFIG_BRIDGE_TOPICS_MAX];
	unsigned topic_count;
};

struct config {
	/* Listeners and threads */
	struct config_addr listen[CONFIG_LISTEN_MAX]; /* "listen": MQTT over TCP */
	unsigned listen_count;
	struct config_addr metrics_listen; /* "metrics_listen": HTTP /metrics */
	uint32_t workers;                  /* 0 = one per online CPU */

	/* Limits */
	uint32_t max_connections;           /* per node; beyond it new sockets are closed */
	uint32_t listener_max_connections;  /* per listener address; 0 = no own limit */
	uint32_t connect_rate_per_address;  /* accepts per second per IP; 0 = no limit */
	uint32_t max_sessions;              /* per node, online and offline */
	uint32_t max_packet_size;           /* bytes, inbound and the default outbound */
	uint64_t partial_packets_bytes_max; /* bytes of incomplete packets node-wide; 0 = any */
	uint32_t packet_receive_timeout_ms; /* to finish a packet once begun; 0 = no limit */
	uint32_t connect_timeout_ms;        /* a socket must send CONNECT within this */
	uint16_t keepalive_max_s;           /* larger client keep-alives are lowered (5.0) */
	uint32_t session_expiry_max_s;      /* cap on a client's session expiry */
	uint16_t receive_maximum;           /* inbound QoS 1/2 unacknowledged per client */
	uint16_t inflight_max;              /* outbound QoS 1/2 unacknowledged per session */
	uint32_t queue_messages_max;        /* messages queued per session */
	uint64_t queue_bytes_max;           /* bytes queued per session */
	enum queue_overflow queue_overflow;
	bool queue_qos0;           /* queue QoS 0 for offline sessions too */
	uint64_t outbox_bytes_max; /* unsent bytes per connection; QoS 0 beyond is dropped */
	uint64_t worker_transit_bytes_max; /* toward another worker; QoS 0 beyond is dropped */
	uint16_t topic_alias_max;          /* inbound topic aliases accepted per client (5.0) */
	uint32_t topic_length_max;         /* bytes */
	uint32_t topic_levels_max;
	uint32_t subscriptions_max; /* per client */

	uint16_t topic_alias_out_max; /* outbound topic aliases used per client (5.0); 0 = none */

	/* Features announced in CONNACK (5.0) */
	uint8_t max_qos; /* 0..2 */
	bool retain_available;
	bool wildcard_available;
	bool shared_available;
	bool sub_id_available;

	/* Security */
	char password_file[CONFIG_PATH_MAX]; /* "" = none */
	enum allow_anonymous allow_anonymous;
	enum allow_anonymous tls_allow_anonymous; /* ANON_AUTO here means inherit */
	enum allow_anonymous ws_allow_anonymous;
	enum allow_anonymous wss_allow_anonymous;
	char acl_file[CONFIG_PATH_MAX];    /* "" = none: everyone may do everything */
	uint32_t auth_cache_size;          /* remembered passed credentials; 0 = none */
	uint32_t auth_failures_per_minute; /* per address; 0 = unlimited */

	/* TLS */
	struct config_addr tls_listen[CONFIG_LISTEN_MAX]; /* "tls_listen": MQTT over TLS */
	unsigned tls_listen_count;                        /* 0 = no TLS listener */
	struct config_addr ws_listen[CONFIG_LISTEN_MAX];  /* "ws_listen": MQTT over WebSocket */
	unsigned ws_listen_count;                         /* 0 = none */
	struct config_addr wss_listen[CONFIG_LISTEN_MAX]; /* "wss_listen": WebSocket over TLS */
	unsigned wss_listen_count;                        /* 0 = none */
	char tls_cert_file[CONFIG_PATH_MAX];              /* PEM chain, leaf first */
	char tls_key_file[CONFIG_PATH_MAX];               /* PEM private key */
	char tls_ca_file[CONFIG_PATH_MAX]; /* CAs for client certificates; "" = none asked */
	bool tls_require_client_cert;      /* mutual TLS: no certificate, no handshake */
	enum tls_identity tls_identity_as_username;
	char tls_ciphers[CONFIG_PATH_MAX];      /* TLS 1.2 cipher list; "" = OpenSSL's */
	char tls_ciphersuites[CONFIG_PATH_MAX]; /* TLS 1.3 suites; "" = OpenSSL's */
	char tls_groups[CONFIG_PATH_MAX];       /* key exchange groups; "" = OpenSSL's */
	char ws_path[CONFIG_PATH_MAX];          /* URL path of the WebSocket upgrade */

	/* Operations */
	bool metrics;               /* serve the HTTP ops listener */
	uint32_t sys_interval_s;    /* $SYS publishing period; 0 = off */
	uint32_t shutdown_grace_ms; /* SIGTERM: time to flush before cutting */

	/* The cluster (no cluster_listen: a single node, as without these keys) */
	char node_name[CONFIG_NAME_MAX];      /* this node's name in the cluster; "" = host name */
	struct config_addr cluster_listen;    /* TCP link and UDP membership; port 0 = off */
	bool cluster_listen_set;              /* cluster_listen was given ("" = off) */
	struct config_addr cluster_advertise; /* the address peers reach us at */
	bool cluster_advertise_set;           /* "" = cluster_listen's */
	char cluster_seeds[CONFIG_PEERS_MAX]; /* host:port list to join through; "" = none */
	char cluster_dns[CONFIG_PEERS_MAX];   /* names whose A/AAAA records are peers */
	uint32_t cluster_dns_interval_s;      /* how often cluster_dns is resolved again */
	char cluster_name[CONFIG_NAME_MAX];   /* nodes of other clusters are refused */
	char cluster_secret_file[CONFIG_PATH_MAX]; /* the shared secret's file; "" = none */
	enum cluster_profile cluster_profile;
	uint32_t cluster_join_timeout_ms;   /* ready alone when no seed answered by then */
	uint64_t cluster_link_buffer_bytes; /* waiting for one peer, all workers together */

	/* Persistence (core/persist/) */
	bool persistence;               /* journal what must survive a restart */
	char data_dir[CONFIG_PATH_MAX]; /* where the journal lives */
	enum persistence_sync persistence_sync;
	uint32_t persistence_fsync_max_ms;    /* a group commit waits at most this long */
	uint64_t persistence_fsync_max_bytes; /* or until this many bytes wait */
	uint64_t persistence_compact_bytes;   /* journal growth that starts a compaction */

	/* The ops listener's limits and /metrics credentials */
	uint32_t metrics_max_connections;              /* at once; a new one evicts the oldest */
	uint32_t metrics_request_timeout_ms;           /* to send the request head */
	char metrics_token_file[CONFIG_PATH_MAX];      /* bearer token; "" = none */
	char metrics_basic_auth_file[CONFIG_PATH_MAX]; /* user:password; "" = none */

	/* Logging */
	enum log_level log_level;
	bool log_json;

	/* Bridges, in the order their names first appeared */
	struct config_bridge bridges[CONFIG_BRIDGES_MAX];
	unsigned bridge_count;
};

/* Embedded defaults: MQTT on the loopback addresses only (127.0.0.1:1883
 * and [::1]:1883), metrics on 127.0.0.1:9100, like mosquitto 2.0 without a
 * configuration: a node nobody configured is reachable from its own host
 * only. Exposing it is one key (listen = 0.0.0.0:1883). */
void config_defaults(struct config *c);

/* Is c's listen list the embedded default one (no source changed it)? */
bool config_listen_is_default(const struct config *c);

/* Listener kinds, in the order of enum listener_kind (worker.h). */
enum config_listener_kind {
	CONFIG_KIND_MQTT = 0,
	CONFIG_KIND_MQTTS = 1,
	CONFIG_KIND_WS = 2,
	CONFIG_KIND_WSS = 3,
};

/* May clients without a user name (or verified certificate) connect on a
 * listener of this kind? The kind's own key, or when it says inherit,
 * allow_anonymous, whose auto means "yes until the node knows its
 * clients": no password file, and no client certificates asked for on a
 * TLS listener. The one statement of the rule: auth.c enforces it, the
 * first log line reports it. */
bool config_anonymous_ok(const struct config *c, enum config_listener_kind kind);

/* What the node exposes, on one line, for the first log line and
 * --check-config: every listener with kind and address and whether
 * anonymous clients may use it, the metrics listener, password file, ACL,
 * persistence and the worker count (workers as it will be resolved). */
void config_exposure(const struct config *c, unsigned workers, char *buf, size_t len);

/*
 * Apply one key. source names where it came from ("starling.conf:12",
 * "environment", "command line") for the error text. Returns 0, or -1 with a
 * one-line message in err: unknown key, bad value, out of range.
 */
int config_set(struct config *c, const char *source, const char *key, const char *value, char *err,
               size_t err_len);

/* Read a file of "key = value" lines. Returns 0 or -1 with err set. */
int config_load_file(struct config *c, const char *path, char *err, size_t err_len);

/*
 * Apply every STARLING_<KEY> variable of envp (key upper-cased, e.g.
 * STARLING_MAX_PACKET_SIZE). Unknown STARLING_ variables are errors.
 */
int config_load_env(struct config *c, char *const *envp, char *err, size_t err_len);

/* Checks across keys (e.g. at least one listener). 0 or -1 with err. */
int config_validate(const struct config *c, char *err, size_t err_len);

/* The effective configuration, in the file format, every key. */
void config_print(const struct config *c, FILE *out);

/* Markdown reference of every key: name, type, default, range, help. */
void config_print_reference(FILE *out);

/* The bridge named name, or NULL. */
const struct config_bridge *config_bridge_find(const struct config *c, const char *name);

/* Parse "host:port", "[v6]:port" or ":port" into an address. 0 or -1. */
int config_parse_addr(const char *s, struct config_addr *out);

#endif
