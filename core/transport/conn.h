/*
 * conn.h — connections as bytes (DESIGN.md "Workers"): a worker's table of
 * connections (slot + generation, so a completion that outlives its
 * connection is recognised as stale), admission at accept, receiving into
 * the ring's provided buffers, TLS and WebSocket as byte transforms, an
 * outbox handed to the kernel once per loop turn, and a lingering close.
 *
 * Nothing here knows MQTT or sessions. The layer above (mqtt/, through
 * struct transport_ops) allocates its per-connection state behind struct
 * conn (conn_size), is handed the plaintext bytes that arrive, writes the
 * bytes it answers into the outbox (conn_out_*), decides when a connection
 * closes (conn_close) and is told when the transport lost one on its own
 * (end of stream, a socket, TLS or WebSocket error) and when its memory goes.
 * Connections are accepted on listeners or dialled (plain TCP or TLS as a
 * client: transport_dial, transport_dial_tls).
 *
 * Only the owning worker's thread calls these; struct transport_node is the
 * part every worker shares (listeners and node-wide connection counts).
 */
#ifndef STARLING_CORE_CONN_H
#define STARLING_CORE_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/check.h"
#include "base/config.h"
#include "io/op.h"
#include "ops/stats.h"
#include "persist/barrier.h"

struct ring;
struct completion;
struct tls_conn;
struct ssl_ctx_st;
struct ws;

#define LISTENERS_MAX                                                                              \
	(4 * CONFIG_LISTEN_MAX + 2 + CONFIG_BRIDGES_MAX) /* listen, tls_listen, ws_listen,         \
	                                                  * wss_listen; the link and its dialling; \
	                                                  * one per bridge */

enum listener_kind {
	LISTENER_MQTT = 0,   /* MQTT over TCP (cfg->listen) */
	LISTENER_MQTTS = 1,  /* MQTT over TLS (cfg->tls_listen) */
	LISTENER_WS = 2,     /* MQTT over WebSocket (cfg->ws_listen) */
	LISTENER_WSS = 3,    /* MQTT over WebSocket over TLS (cfg->wss_listen) */
	LISTENER_LINK = 4,   /* another node's link (cfg->cluster_listen, TCP) */
	LISTENER_DIAL = 5,   /* not a socket: connections this node dialled */
	LISTENER_BRIDGE = 6, /* not a socket: one bridge's connections (MQTT, dialled) */
};

/* Who handles a connection's bytes: the layer registered for its
 * listener's `upper` (transport_add_upper). MQTT is 0. */
#define TRANSPORT_UPPERS_MAX 4

/* One listening address; every worker has a socket on each (a dialling
 * pseudo-listener has none: it names where dialled connections belong). */
struct listener {
	uint8_t kind;                    /* enum listener_kind */
	uint8_t upper;                   /* index of the layer above (transport_add_upper) */
	uint16_t port;                   /* bound port */
	atomic_uint conns;               /* open connections (listener_max_connections) */
	char name[CONFIG_HOST_MAX + 16]; /* "mqtt host:port" or "mqtts host:port", logs */
};

/* What every worker's transport shares: set up by the main thread at start,
 * then only the atomics change. */
struct transport_node {
	struct listener listeners[LISTENERS_MAX];
	unsigned listener_count;
	atomic_uint conn_count; /* connections open on the node (max_connections) */
	atomic_uint conn_max;   /* most connections open at once since start ($SYS) */
};

/* A closing connection's socket (the reap step). */
enum conn_shut {
	CONN_SHUT_NONE = 0, /* flushing its last bytes */
	CONN_SHUT_WR,       /* all sent, FIN sent; draining what the client still sends */
	CONN_SHUT_RDWR,     /* cut: past the grace period, or done */
};

/* A peer's address in 20 bytes; conn_peer() formats it for a log line. */
struct peer_addr {
	uint8_t addr[16]; /* IPv4 in the first 4 bytes, or IPv6 */
	uint16_t port;
	uint8_t family; /* AF_INET, AF_INET6, or 0 when unknown */
};

/* Bytes of a peer's address: 4, 16, or 0 when unknown. */
static inline size_t peer_addr_len(const struct peer_addr *p)
{
	return p->family == AF_INET ? 4 : p->family == AF_INET6 ? 16 : 0;
}

/* One connection's bytes. The layer above puts its own fields behind it
 * (conn_size): both parts together stay in jemalloc's 160-byte class. */
struct conn {
	uint8_t *out;            /* bytes waiting to be sent (the layer above appends) */
	uint8_t *tx;             /* the buffer the kernel is sending */
	struct conn *next_flush; /* the flush list */
	struct conn *next_close; /* the close list */
	int fd;
	uint32_t slot;           /* index in the worker's connection table */
	uint32_t gen;            /* generation of the slot (24 bits used in user_data) */
	uint32_t out_len;        /* bytes in out */
	uint32_t out_cap;        /* bytes allocated for out */
	uint32_t tx_len;         /* bytes of tx */
	uint32_t tx_off;         /* bytes of tx already sent */
	uint32_t close_began_ms; /* low 32 bits of now_ms when the close began */
	struct peer_addr peer;   /* the client's address, for logs and limits */
	uint8_t listener;        /* index in the node's listeners it came in on */
	uint8_t close_reason;    /* enum close_reason (stats.h), once known */
	uint8_t shut;            /* enum conn_shut: how far shutdown() went while closing */
	bool recv_armed : 1;     /* a multishot receive is pending */
	bool send_busy : 1;      /* a send is in flight */
	bool on_flush_list : 1;
	bool on_close_list : 1;
	bool on_rearm_list : 1;
	bool on_gate_list : 1; /* output waits for the journal (transport_ungate) */
	bool closing : 1;      /* conn_close ran: flushing its last bytes, reaped later */
	bool dialling : 1;     /* we connected it and the connect has not completed */
};

/* A layer above (MQTT, the cluster's link). ctx is passed back to every call. */
struct transport_ops {
	size_t conn_size; /* bytes per connection, struct conn first */
	void *ctx;
	/* May a connection from this address come in (a rate per address)?
	 * Asked before a byte is read. */
	bool (*admit)(void *ctx, const struct peer_addr *peer);
	/* A connection was accepted: set up the part behind struct conn. */
	void (*opened)(void *ctx, struct conn *c);
	/* Plaintext bytes arrived (after TLS and WebSocket). */
	void (*input)(void *ctx, struct conn *c, const uint8_t *data, uint32_t len);
	/* The transport lost c on its own (c->close_reason says why): the
	 * layer above ends what it holds and calls conn_close. */
	void (*lost)(void *ctx, struct conn *c);
	/* c is about to be freed: release the part behind struct conn. */
	void (*reaped)(void *ctx, struct conn *c);
};

/* A receive ended by a dry buffer pool, re-armed on a later turn. */
struct slot_ref {
	uint32_t slot;
	uint32_t gen; /* a connection reaped meanwhile no longer matches */
};

/* A WebSocket connection's framing state and the bytes it produced that
 * wait to be sent (the upgrade's answer, pongs, frames). */
struct ws_conn {
	struct ws *ws;
	uint8_t *wire;
	uint32_t wire_len;
	uint32_t wire_cap;
};

/* One worker's connections. */
struct transport {
	uint16_t id;                 /* the worker */
	const struct config *cfg;    /* the node's configuration */
	struct ring *ring;           /* the worker's ring */
	struct transport_node *node; /* shared with the other workers */
	struct worker_stats *st;     /* the worker's counters */
	const uint64_t *now_ms;      /* the worker's clock, read once per turn */
	struct transport_ops uppers[TRANSPORT_UPPERS_MAX]; /* the layers above, by index */
	struct ssl_ctx_st *ssl_ctx; /* this turn's TLS context (tls_ctx_acquire); NULL: no TLS */
	bool has_tls;  /* TLS listeners, or a TLS connection was dialled: keep a TLS table */
	bool has_ws;   /* the node has WebSocket listeners: keep a ws table */
	bool stopping; /* no new connections */

	/* The table: slot -> connection, its generation, free slots. */
	struct conn **conns; /* [conn_cap], NULL where free */
	uint32_t *conn_gens; /* [conn_cap] current generation of each slot */
	uint32_t *conn_free; /* a stack of free slots */
	uint32_t conn_free_len;
	uint32_t conn_cap;
	uint32_t conn_live; /* connections in the table */
	/* TLS and WebSocket state by slot, not in struct conn: a pointer per
	 * slot costs plain connections 8 bytes in a table instead of growing
	 * every conn past its size class. NULL without such listeners. */
	struct tls_conn **tls; /* [conn_cap] */
	struct ws_conn **ws;   /* [conn_cap] */

	struct conn *flush_list; /* connections with output to hand to the kernel */
	struct conn *close_list; /* closing connections, reaped when done */
	struct slot_ref *rearm;  /* receives ended by -ENOBUFS */
	uint32_t rearm_len;
	uint32_t rearm_cap;
	/* The journal's position (persistence on; NULL: off): output written
	 * while records wait is held until they are durable (barrier.h). */
	const struct ack_barrier *barrier;
	struct out_gate *gates; /* [conn_cap] (with a barrier): each connection's marks, in
	                         * a table like tls and ws, so struct conn keeps its size */
	struct slot_ref *gated; /* connections holding such output */
	uint32_t gated_len;
	uint32_t gated_cap;

	/* Listening sockets: [i] listens on node->listeners[i]. */
	int listen_fds[LISTENERS_MAX];
	unsigned listen_count;
	bool accept_armed[LISTENERS_MAX];
	/* Out of descriptors (or memory), an accept fails at once each time it
	 * is armed: accepting pauses until this time, or until one of our
	 * connections is reaped, with a back-off doubling to a second. */
	uint64_t accept_paused_until_ms; /* 0: not paused */
	uint32_t accept_backoff_ms;      /* the last pause; 0 after an accept succeeded */
	uint32_t accept_fails_unlogged;  /* failures since the last line about them */
	uint64_t accept_next_log_ms;     /* one line per 10 s at most */
};

/* Set up tp (the table starts empty); ops is the layer above of index 0
 * (MQTT). 0, or -1 when out of memory. */
int transport_init(struct transport *tp, uint16_t id, const struct config *cfg,
                   struct transport_node *node, struct worker_stats *st, const uint64_t *now_ms,
                   const struct transport_ops *ops);
/* Hold output behind the journal's records (persistence on). */
void transport_set_barrier(struct transport *tp, const struct ack_barrier *b);
/* The journal advanced: connections whose output waited get flushed this
 * turn (as far as the journal now allows). */
void transport_ungate(struct transport *tp);
/* Another layer above, for the listeners whose `upper` is index (before
 * the worker starts). */
void transport_add_upper(struct transport *tp, unsigned index, const struct transport_ops *ops);

/* The layer above c. */
static inline const struct transport_ops *conn_ops(const struct transport *tp, const struct conn *c)
{
	return &tp->uppers[tp->node->listeners[c->listener].upper];
}

/* Is c MQTT's (upper 0), not another layer's (the cluster's link)? */
static inline bool conn_is_mqtt(const struct transport *tp, const struct conn *c)
{
	return tp->node->listeners[c->listener].upper == 0;
}

/* Close every connection of the layers other than MQTT (stopping). */
void transport_close_others(struct transport *tp);

/* Dial addr (a struct sockaddr of addr_len bytes) for the layer of the
 * pseudo-listener `listener` (kind LISTENER_DIAL or LISTENER_BRIDGE): the connection exists at
 * once, its layer's opened() runs when the connect completed, lost() when
 * it failed. NULL when no socket or memory (errno says which). */
struct conn *transport_dial(struct transport *tp, unsigned listener, const void *addr,
                            uint32_t addr_len);
/* The same over TLS, t from tls_conn_new_client (taken, also on failure).
 * When the connect completed the ClientHello goes out (after opened());
 * what the layer writes waits in the outbox until the handshake finished.
 * A failed handshake is logged with tls_conn_error's words and reaches the
 * layer through lost() with CLOSE_TLS_HANDSHAKE. */
struct conn *transport_dial_tls(struct transport *tp, unsigned listener, const void *addr,
                                uint32_t addr_len, struct tls_conn *t);
void transport_dial_done(struct transport *tp, const struct completion *cqe);
/* Close every socket and free every connection (after the loop ended). */
void transport_fini(struct transport *tp);

/* Arm the listeners (when the ring exists). */
void transport_start(struct transport *tp, struct ring *r);
/* Stop accepting: the listening sockets close. */
void transport_stop_accepting(struct transport *tp);

/* Completions by op kind (io/op.h). */
void transport_accept_done(struct transport *tp, const struct completion *cqe);
void transport_recv_done(struct transport *tp, const struct completion *cqe);
void transport_send_done(struct transport *tp, const struct completion *cqe);

/* The loop's send step: hand every connection's new output to the kernel.
 * The list is taken whole; connections marked meanwhile wait for the next. */
void transport_flush_all(struct transport *tp);
/* The loop's reap step: free closing connections whose last bytes went and
 * whose linger ended, at most max of them. stop_cut_ms: while the node
 * stops, the time by which everything is cut (0: not stopping). Returns how
 * many went. */
unsigned transport_reap(struct transport *tp, unsigned max, uint64_t stop_cut_ms,
                        uint32_t grace_ms);
/* Re-arm receives the pool ran dry for and, past a pause, the accepts. */
void transport_rearm(struct transport *tp);
/* When accepting resumes after a pause (0: not paused). */
uint64_t transport_accept_wakeup_ms(const struct transport *tp);

/* The connection in slot with generation gen, or NULL when it is gone.
 * (Inline, like the outbox's functions below: they are on every delivery's
 * path and cross a file boundary the compiler does not see through.) */
static inline struct conn *conn_get(const struct transport *tp, uint32_t slot, uint32_t gen)
{
	if (slot >= tp->conn_cap)
		return NULL;
	struct conn *c = tp->conns[slot];
	return c && ((c->gen ^ gen) & OP_GEN_MASK) == 0 ? c : NULL;
}

/* "address:port" of c, in a per-thread buffer valid until the next call:
 * one per log line. */
const char *conn_peer(const struct conn *c);
/* "kind host:port" of the listener c came in on. */
const char *conn_listener(const struct transport *tp, const struct conn *c);
/* The kind of that listener (enum listener_kind). */
unsigned conn_listener_kind(const struct transport *tp, const struct conn *c);

/* Did we dial c (the cluster's link, a bridge), rather than accept it? */
static inline bool conn_dialled(const struct transport *tp, const struct conn *c)
{
	uint8_t k = tp->node->listeners[c->listener].kind;
	return k == LISTENER_DIAL || k == LISTENER_BRIDGE;
}

/* c's TLS state, or NULL for a connection without TLS. */
static inline struct tls_conn *conn_tls(const struct transport *tp, const struct conn *c)
{
	return tp->tls ? tp->tls[c->slot] : NULL;
}
/* c's WebSocket state, or NULL. */
static inline struct ws_conn *conn_ws(const struct transport *tp, const struct conn *c)
{
	return tp->ws ? tp->ws[c->slot] : NULL;
}
/* The TLS handshake is still running. */
bool conn_tls_handshaking(const struct transport *tp, const struct conn *c);

/* The outbox. conn_out_spare: where the next bytes would go and how many
 * fit without growing (0: none). conn_out_reserve: room for need more bytes
 * unless the outbox would pass limit (NULL then, or without memory).
 * conn_out_commit: n bytes were written there; c gets flushed this turn. */
static inline uint8_t *conn_out_spare(struct conn *c, size_t *room)
{
	*room = c->out_cap - c->out_len;
	return *room ? c->out + c->out_len : NULL;
}
uint8_t *conn_out_reserve(struct conn *c, size_t need, uint64_t limit);
/* c has something to send this turn. */
static inline void conn_mark_flush(struct transport *tp, struct conn *c)
{
	if (!c->on_flush_list) {
		c->on_flush_list = true;
		c->next_flush = tp->flush_list;
		tp->flush_list = c;
	}
}
static inline void conn_out_commit(struct transport *tp, struct conn *c, size_t n)
{
	CHECK(c->out_len + n <= c->out_cap);
	if (tp->barrier && barrier_pending(tp->barrier))
		gate_mark(&tp->gates[c->slot], tp->barrier, c->out_len); /* it follows a record */
	c->out_len += (uint32_t)n;
	conn_mark_flush(tp, c);
}
/* Nothing waits to be sent: the outbox, a send in flight, WebSocket output. */
bool conn_output_idle(const struct transport *tp, const struct conn *c);

/* Start closing c (the layer above decided, or was told through lost()):
 * it sends what is in its outbox, shuts the write side, lingers, and is
 * reaped. Idempotent. */
void conn_close(struct transport *tp, struct conn *c);

#endif
