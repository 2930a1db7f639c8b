/*
 * scenario.h — what a bench run does: the scenario shape, its sizes and
 * rates, and the plan derived from it (which client index is a publisher or
 * a subscriber, on which topic, in which slice).
 *
 * The struct is plain data (fixed arrays, no pointers), so it is copied into
 * forked workers, serialised as "key = value" lines for scenario files and
 * agents, and compared field by field. Every option has one name, used on
 * the command line as --name and in files as "name = value".
 */
#ifndef STARLING_BENCH_SCENARIO_H
#define STARLING_BENCH_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum scenario_kind {
	SCENARIO_CONN = 0,
	SCENARIO_PUB,
	SCENARIO_SUB,
	SCENARIO_PAIRS,
	SCENARIO_FANIN,
	SCENARIO_FANOUT,
	SCENARIO_SHARED,
};

#define SCENARIO_STR_MAX      256
#define SCENARIO_CLIENTS_MAX  10000000u
#define SCENARIO_INFLIGHT_MAX 65535u
#define SCENARIO_E2E_MAX      4096u
#define SCENARIO_PAYLOAD_MAX  (16u * 1024 * 1024)
#define SCENARIO_PROCS_MAX    64u

struct scenario {
	char kind_name[16];               /* conn pub sub pairs fanin fanout shared */
	enum scenario_kind kind;          /* from kind_name */
	char hosts[SCENARIO_STR_MAX];     /* "a,b:1884,c": targets, clients spread round-robin */
	char sub_hosts[SCENARIO_STR_MAX]; /* subscribers' targets instead ("": hosts): a
	                                   * cluster's publishers on one node, subscribers
	                                   * on another */
	uint32_t port;                    /* default port for hosts without one */
	char source[SCENARIO_STR_MAX];    /* "127.0.0.2-127.0.0.254": bind() range, or "" */
	uint32_t clients;                 /* conn: connections; pairs: pairs */
	uint32_t pubs;                    /* publishers (pub fanin fanout shared) */
	uint32_t subs;                    /* subscribers (sub fanin fanout shared) */
	uint32_t groups;                  /* shared: $share groups; fanin: 1 = shared sub */
	uint32_t qos;                     /* 0..2, for publishes and subscriptions */
	uint32_t mqtt;                    /* protocol: 4 (3.1.1) or 5 */
	uint32_t size_bytes;              /* payload size, >= PAYLOAD_HEADER_LEN */
	uint32_t rate;                    /* messages/s per publisher; 0 unlimited */
	uint32_t inflight;                /* QoS 1/2 messages awaiting ack per publisher */
	uint32_t e2e_window;              /* per publisher, messages not yet delivered; 0 off */
	uint64_t count;                   /* messages per publisher; 0: until duration */
	uint32_t duration_s;              /* publishing time, or conn hold time */
	uint32_t connect_rate;            /* new connections/s over the whole run; 0 unlimited */
	uint32_t connect_timeout_s;       /* TCP+TLS+CONNACK (+SUBACK) deadline per client */
	uint32_t keepalive_s;             /* MQTT keep alive */
	uint32_t drain_s;                 /* after publishing, wait at most this for deliveries */
	uint32_t session_expiry_s;        /* v5 session expiry with persistent sessions */
	bool persistent;                  /* clean session / clean start = 0 */
	bool retain;                      /* publish with the retain flag */
	bool tls;                         /* TLS over TCP */
	bool ws;                          /* MQTT over WebSocket (over TLS too with tls: wss) */
	bool insecure;                    /* TLS without verifying the broker's certificate */
	bool json;                        /* final report as JSON on stdout */
	bool quiet;                       /* no live lines */
	char cafile[SCENARIO_STR_MAX];
	char cert[SCENARIO_STR_MAX];
	char key[SCENARIO_STR_MAX];
	char ws_path[SCENARIO_STR_MAX]; /* request target of the WebSocket upgrade */
	char topic_prefix[64];          /* topics are <prefix>/<n> */
	char id_prefix[64];             /* client ids are <prefix>-<index>; "" = sb<run id> */
	char username[64];
	char password[64];
	uint32_t procs;      /* worker processes on this machine */
	uint32_t broker_pid; /* for RSS and CPU readings; 0 none */
};

void scenario_defaults(struct scenario *sc);
/* Set one option by name. Returns 0, or -1 with a message in err. */
int scenario_set(struct scenario *sc, const char *name, const char *value, char *err,
                 size_t err_len);
/* Does the option take no value on the command line (a switch)? -1 unknown. */
int scenario_is_switch(const char *name);
/* Read "name = value" lines ('#' comments); -1 with a message on error. */
int scenario_load_file(struct scenario *sc, const char *path, char *err, size_t err_len);
/* Write every option as "name = value\n". Returns bytes written (< cap) or -1. */
int scenario_format(const struct scenario *sc, char *buf, size_t cap);
/* Parse the output of scenario_format (or a file's text). */
int scenario_parse_text(struct scenario *sc, const char *text, char *err, size_t err_len);
/* Fill in defaults that depend on the kind and check ranges. */
int scenario_finish(struct scenario *sc, char *err, size_t err_len);
/* A one-line usage text of every option. */
void scenario_print_options(void);

/* The plan: client indexes are [0, subs) subscribers then publishers. */
enum client_role {
	ROLE_IDLE = 0, /* conn */
	ROLE_SUB,
	ROLE_PUB,
};

struct plan {
	uint32_t clients_total; /* all clients of the run */
	uint32_t subs_total;    /* subscribers */
	uint32_t pubs_total;    /* publishers */
	uint32_t per_msg;       /* deliveries expected per published message; 0 unknown */
};

void plan_make(const struct scenario *sc, struct plan *p);
enum client_role plan_role(const struct plan *p, uint32_t client);
/* Index among its role (subscriber n, publisher n). */
uint32_t plan_rank(const struct plan *p, uint32_t client);
/* Slice of a client: by rank, so publisher i and subscriber i share one. */
uint32_t plan_slice(const struct plan *p, uint32_t client, uint32_t slices);
/* Topic a publisher of this rank publishes to. */
void plan_pub_topic(const struct scenario *sc, uint32_t pub_rank, char *buf, size_t cap);
/* Filter a subscriber of this rank subscribes to. */
void plan_sub_filter(const struct scenario *sc, uint32_t sub_rank, char *buf, size_t cap);
/* Sink of a subscriber: its own index, or its $share group (for tracking). */
uint32_t plan_sub_sink(const struct scenario *sc, const struct plan *p, uint32_t sub_rank);
/*
 * Deliveries of one message of publisher pub_rank that land on subscribers
 * in slices [lo, hi) of slices, for the end-to-end window. With shared
 * groups a group counts only when all its members are in the range.
 */
uint32_t plan_local_deliveries(const struct scenario *sc, const struct plan *p, uint32_t pub_rank,
                               uint32_t lo, uint32_t hi, uint32_t slices);

#endif
