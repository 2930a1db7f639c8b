/*
 * worker.h — the I/O layer of a node: the broker (what all workers share,
 * read-only after start), a worker (one thread, one io_uring ring, its
 * connections and sessions, its copy of the subscription index, its retained
 * shard) and a connection. Internal to core/: handlers, routing and the loop
 * include it; pure modules (session, subidx, retain, msg) do not.
 *
 * Ownership (DESIGN.md "Ownership"): a connection and its attached session
 * belong to exactly one worker; only that worker's thread reads or writes
 * them. Other workers reach them only through mailboxes.
 */
#ifndef STARLING_CORE_WORKER_H
#define STARLING_CORE_WORKER_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "codec.h"
#include "base/config.h"
#include "io/mbox.h"
#include "route/msg.h"
#include "session/registry.h"
#include "route/retain.h"
#include "session/sess_id.h"
#include "session/session.h"
#include "ops/stats.h"
#include "route/subidx.h"

#define WORKERS_MAX   256
#define LISTENERS_MAX (4 * CONFIG_LISTEN_MAX) /* listen, tls_listen, ws_listen, wss_listen */

struct worker;
struct tls;
struct tls_conn;
struct ssl_ctx_st;
struct ws;

enum listener_kind {
	LISTENER_MQTT = 0,  /* MQTT over TCP (cfg->listen) */
	LISTENER_MQTTS = 1, /* MQTT over TLS (cfg->tls_listen) */
	LISTENER_WS = 2,    /* MQTT over WebSocket (cfg->ws_listen) */
	LISTENER_WSS = 3,   /* MQTT over WebSocket over TLS (cfg->wss_listen) */
};

/* One listening address; every worker has a socket on each. */
struct listener {
	uint8_t kind;                    /* enum listener_kind */
	uint16_t port;                   /* bound port */
	atomic_uint conns;               /* open connections (listener_max_connections) */
	char name[CONFIG_HOST_MAX + 16]; /* "mqtt host:port" or "mqtts host:port", logs */
};

/* What every worker shares. Immutable after broker_start() except where noted. */
struct broker {
	const struct config *cfg;
	unsigned worker_count;
	struct worker **workers;         /* [worker_count] */
	struct mbox **mboxes;            /* [from * worker_count + to]; NULL when from == to */
	struct registry *registry;       /* client id -> session; locked inside */
	struct auth *auth;               /* access policy (auth.h); shared, thread-safe */
	atomic_uint conn_count;          /* connections open on the node (limit check) */
	atomic_uint sess_count;          /* sessions on the node, online and offline (limit) */
	atomic_uint conn_max;            /* most connections open at once since start ($SYS) */
	atomic_bool stopping;            /* main: SIGTERM seen; /readyz answers 503 */
	atomic_uint stop_wills_out;      /* workers whose shutdown wills are all in mailboxes */
	atomic_ullong rx_bytes;          /* rx buffers of incomplete packets, node-wide (budget) */
	pthread_barrier_t start_barrier; /* workers and main: every ring is up */
	bool start_failed;               /* main: listeners failed, workers must exit */
	uint64_t start_ms;               /* monotonic start time */
	struct tls *tls;                 /* TLS context (tls.h); NULL without tls_listen */
	struct listener listeners[LISTENERS_MAX]; /* cfg->listen, then cfg->tls_listen */
	unsigned listener_count;
};

enum conn_auth {
	CONN_AUTH_NONE = 0, /* not checked (yet) */
	CONN_AUTH_PASSED,   /* the password matched: the re-read CONNECT goes on */
	CONN_AUTH_FAILED,   /* it did not: the re-read CONNECT is refused */
};

enum conn_state {
	CONN_NEW = 0,       /* accepted; the first packet must be CONNECT */
	CONN_WAIT_AUTH,     /* CONNECT seen, kept in rx; its password is being checked */
	CONN_WAIT_TAKEOVER, /* CONNECT seen; waiting for a session from another worker */
	CONN_ACTIVE,        /* CONNACK sent */
	CONN_CLOSING,       /* flushing its last bytes; reaped at the end of the turn */
};

/* A closing connection's socket (worker.c's reap loop). */
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

/* A connection's topic aliases (5.0), both ways, allocated when the first is
 * used: one pointer in struct conn for both keeps it in its size class. */
struct conn_aliases {
	char **in;             /* inbound [1..cfg->topic_alias_max]; NULL until one is set */
	struct alias_out *out; /* outbound (session.h); NULL when the client takes none */
};

struct conn {
	/* Ordered by size so nothing pads: 160 bytes, a jemalloc size class. */
	uint64_t deadline_ms;         /* connect timeout, or 1.5 x keep alive after the last
	                               * packet; while closing: when the close began */
	uint8_t *rx;                  /* bytes of an incomplete packet */
	uint8_t *out;                 /* encoded packets waiting to be sent */
	uint8_t *tx;                  /* the buffer the kernel is sending */
	struct conn_aliases *aliases; /* topic aliases both ways; NULL until one is used */
	struct session *sess;         /* attached session, once CONNACK is decided */
	struct session *pending;      /* CONN_WAIT_TAKEOVER: the session being set up */
	struct conn *next_flush;      /* worker's flush list */
	struct conn *next_close;      /* worker's close list */
	int fd;
	uint32_t slot; /* index in the worker's connection table */
	uint32_t gen;  /* generation of the slot (24 bits used in user_data) */
	uint32_t rx_len;
	uint32_t rx_cap;
	uint32_t out_len;
	uint32_t out_cap;
	uint32_t tx_len;
	uint32_t tx_off;             /* bytes of tx already sent */
	uint32_t client_max_packet;  /* the client's Maximum Packet Size; 0 = no limit */
	uint16_t keepalive_s;        /* negotiated; 0 = none */
	uint16_t client_receive_max; /* the client's Receive Maximum (5.0), else 65535 */
	uint16_t server_keepalive_s; /* 5.0 Server Keep Alive to send; 0 = none */
	uint8_t state;               /* enum conn_state */
	uint8_t version;             /* protocol level; 0 until CONNECT */
	bool recv_armed;             /* a multishot receive is pending */
	bool send_busy;              /* a send is in flight */
	bool on_flush_list;
	bool on_close_list;
	bool on_rearm_list;
	bool on_resume_list;   /* buffered input waits for the loop's resume step */
	uint8_t shut;          /* enum conn_shut: how far shutdown() went while closing */
	bool assigned_id;      /* we chose the client id (5.0: tell the client) */
	bool expiry_capped;    /* we lowered the session expiry (5.0: tell it) */
	bool clean_start;      /* as the CONNECT asked */
	uint8_t close_reason;  /* enum close_reason once closing (metrics) */
	uint8_t listener;      /* index in b->listeners it came in on (TCP or TLS) */
	uint8_t auth;          /* enum conn_auth: the password check's verdict */
	struct peer_addr peer; /* the client's address, for logs */
	uint32_t rx_since_ms;  /* low 32 bits of now_ms when rx's incomplete packet began
	                        * (or a packet last completed): packet_receive_timeout_ms */
};

/* A subscription change or a retained lookup, shared by the workers it is
 * sent to; the last one to handle it frees it. */
struct sub_delta {
	atomic_uint refs;
	bool add;       /* MB_SUB_DELTA: add (else remove) */
	uint64_t at_ns; /* monotonic time it was made (retained lookups) */
	struct sub_entry e;
	struct sess_id was; /* add: first remove this session's entry (a move); gen 0 = none */
	uint16_t filter_len;
	char filter[]; /* NUL-terminated */
};

/* One subscription a publish matched (routing scratch). */
struct match {
	struct sub_entry e;
	bool shared;
};

struct mbox_overflow {
	struct mbox_msg *items; /* messages that did not fit, oldest first */
	uint32_t len;
	uint32_t cap;
	uint64_t sent_bytes; /* sum of `bytes` sent toward this worker (ring + overflow) */
};

/* A worker's way out on SIGTERM (worker.c, stop_step): every session's
 * will is published first, and connections stay open until what they are
 * owed has gone out, as far as their windows allow, within half of
 * shutdown_grace_ms; the other half is for their DISCONNECT and last bytes. */
enum stop_phase {
	STOP_NONE = 0, /* serving */
	STOP_WILLS,    /* our wills are published; their mail may still wait in our overflow */
	STOP_SETTLE,   /* ours are in the mailboxes: deliver, once every worker's are too */
	STOP_CLOSING,  /* connections told (0x8B) and closing; exit when none is left */
};

struct worker {
	uint16_t id;
	struct broker *b;
	const struct config *cfg;
	pthread_t thread;
	struct io_uring ring;
	int stop_fd; /* eventfd: the main thread writes to stop us */
	uint64_t stop_buf;
	int verify_fd; /* eventfd: password verdicts wait (auth.h); -1 without passwords */
	uint64_t verify_buf;
	const struct acl *acl;  /* this turn's ACL (auth_acl_acquire); NULL = none */
	uint64_t acl_gen;       /* its generation */
	atomic_bool stopping;   /* set by the main thread, read by us */
	uint8_t stop_phase;     /* enum stop_phase */
	uint64_t stop_began_ms; /* when begin_stop ran (the grace counts from here) */
	bool init_failed;       /* ring setup failed in the worker thread */

	int listen_fds[LISTENERS_MAX]; /* [i] listens on b->listeners[i] */
	unsigned listen_count;
	bool accept_armed[LISTENERS_MAX];
	/* Out of descriptors (or memory), an accept fails at once each time it
	 * is armed: accepting pauses until this time, or until one of our
	 * connections is reaped, with a back-off doubling to ACCEPT_BACKOFF_MAX_MS. */
	uint64_t accept_paused_until_ms; /* 0: not paused */
	uint32_t accept_backoff_ms;      /* the last pause; 0 after an accept succeeded */
	uint32_t accept_fails_unlogged;  /* failures since the last line about them */
	uint64_t accept_next_log_ms;     /* one line per ACCEPT_LOG_MS at most */

	/* TLS, only when the node has TLS listeners. The state of a TLS
	 * connection lives here, by connection slot, not in struct conn: a
	 * pointer per slot costs plain connections 8 bytes in a table instead
	 * of growing every conn past its jemalloc size class. */
	struct ssl_ctx_st *ssl_ctx; /* this turn's context (tls_ctx_acquire) */
	struct tls_conn **tls;      /* slot -> TLS state, NULL for plain TCP; [conn_cap] */
	struct ws_conn **ws;        /* slot -> WebSocket state, NULL otherwise; [conn_cap],
	                             * only with ws or wss listeners */

	struct io_uring_buf_ring *br; /* provided receive buffers */
	uint8_t *bufs;
	unsigned buf_count;
	unsigned buf_size;

	struct conn **conns; /* slot -> connection or NULL */
	uint32_t *conn_gens; /* slot -> current generation */
	uint32_t conn_cap;
	uint32_t *conn_free; /* free slots, a stack */
	uint32_t conn_free_len;
	uint32_t conn_live;

	struct session **sess; /* slot -> session or NULL */
	/* slot -> where its session moved (takeover by a connection on any
	 * worker) and until when mail for it is passed on; the slot is reused
	 * only after that (sessions.c). to.gen == 0: not moved. */
	struct sess_moved {
		struct sess_id to;
		uint64_t until_ms;
	} * sess_moved;
	uint32_t *sess_gens;
	uint32_t sess_cap;
	uint32_t *sess_free;
	uint32_t sess_free_len;

	struct subidx *subs;     /* this worker's copy of the node's index */
	struct retain *retained; /* this worker's shard */

	struct conn *flush_list;
	struct conn *close_list;
	struct rearm { /* receives ended by -ENOBUFS, re-armed next turn */
		uint32_t slot;
		uint32_t gen; /* a connection reaped meanwhile no longer matches */
	} * rearm;
	uint32_t rearm_len;
	uint32_t rearm_cap;
	/* Connections whose buffered input is read again at the loop's resume
	 * step (a password verdict or a taken-over session arrived): [conn_cap]
	 * entries, so a push never fails; each connection is there once. */
	struct rearm *resume;
	uint32_t resume_len;
	struct conn *in_process; /* the connection whose input is being parsed: never nested */

	struct mbox_overflow *overflow; /* [worker_count] outbound backlog */
	bool *wake_pending;             /* [worker_count] pushed this turn */

	struct sub_delta **rq; /* retained lookups to answer after the next full drain */
	uint32_t rq_len;
	uint32_t rq_cap;

	struct match *match_buf; /* routing scratch */
	uint32_t match_len;
	uint32_t match_cap;

	uint64_t now_ms;        /* cached at the top of each loop turn */
	uint64_t next_sweep_ms; /* next timer sweep */
	uint32_t sweep_cursor;  /* connection slot the next sweep starts at */
	struct worker_stats st;
	struct worker_stats st_reported; /* st at the last drop report */
	uint64_t next_report_ms;         /* next drop report */
	uint64_t next_publish_ms;        /* next stats_publish() */
	struct sys_state *sys;           /* worker 0: $SYS publishing state; else NULL */
	struct stats_pub pub;            /* st as other threads see it (stats.h) */
	/* The maxima behind st.loop_turn_max_ns and st.mbox_depth_max: this
	 * window's [0] and the previous one's [1], turned every STALL_WINDOW_MS. */
	uint64_t turn_max_ns[2];
	uint64_t depth_max[2];
	uint64_t stall_window_end_ms;
};

/* broker.c */
/* The workers cfg asks for: its workers key, or one per online CPU; at most
 * WORKERS_MAX. */
unsigned broker_worker_count(const struct config *cfg);
/* 0, or -1 with err saying why in one line (port in use, no ring ...). */
int broker_start(struct broker *b, const struct config *cfg, char *err, size_t err_len);
/* Ask every worker to stop (they drain and exit); broker_stop also joins them. */
void broker_signal_stop(struct broker *b);
void broker_stop(struct broker *b);
void broker_free(struct broker *b);

/* worker.c: the loop and the ring */
struct worker *worker_new(struct broker *b, uint16_t id);
void worker_free(struct worker *w);
void *worker_main(void *arg);
struct io_uring_sqe *worker_sqe(struct worker *w);

/* Bytes of a peer's address: 4, 16, or 0 when unknown. */
static inline size_t peer_addr_len(const struct peer_addr *p)
{
	return p->family == AF_INET ? 4 : p->family == AF_INET6 ? 16 : 0;
}

/* A WebSocket connection's framing state and the bytes it produced that
 * wait to be sent (the upgrade's answer, pongs, frames). */
struct ws_conn {
	struct ws *ws;
	uint8_t *wire;
	uint32_t wire_len;
	uint32_t wire_cap;
};

/* c's WebSocket state, or NULL. */
static inline struct ws_conn *conn_ws(const struct worker *w, const struct conn *c)
{
	return w->ws ? w->ws[c->slot] : NULL;
}

/* c's TLS state, or NULL for a plain TCP connection. */
static inline struct tls_conn *conn_tls(const struct worker *w, const struct conn *c)
{
	return w->tls ? w->tls[c->slot] : NULL;
}

/* conn.c: bytes in, bytes out, closing */
/* WebSocket state for a connection from a ws or wss listener. */
struct ws_conn *ws_conn_new(const char *path, uint32_t max_frame_bytes);
void ws_conn_free(struct ws_conn *x); /* NULL is fine */
/* Bytes from the socket: decrypted first on a TLS connection. */
void conn_received(struct worker *w, struct conn *c, const uint8_t *data, uint32_t len);
/* Plaintext MQTT bytes. */
void conn_input(struct worker *w, struct conn *c, const uint8_t *data, uint32_t len);
/* The TLS handshake is still running (the connect timeout says so). */
bool conn_tls_handshaking(const struct worker *w, const struct conn *c);
/* Encode p into c's outbox. false when the outbox is full (caller decides). */
bool conn_send_packet(struct worker *w, struct conn *c, const struct mqtt_packet *p);
void conn_flush(struct worker *w, struct conn *c);
/* Close c: send a 5.0 DISCONNECT with rc first when rc != 0 and the protocol
 * allows; publish the will when will is true. */
void conn_close(struct worker *w, struct conn *c, enum mqtt_rc rc, bool will);
void conn_reap(struct worker *w, struct conn *c);
/* Free c's receive buffer and take it off the node's partial-packet budget. */
void conn_rx_release(struct worker *w, struct conn *c);
struct conn *conn_get(struct worker *w, uint32_t slot, uint32_t gen);
/* "address:port" of c, in a per-thread buffer valid until the next call:
 * one per log line. */
const char *conn_peer(const struct conn *c);
/* "host:port" of the listener c came in on (static storage per listener). */
const char *conn_listener(const struct worker *w, const struct conn *c);
/* A connection that was waiting (password check, takeover) may go on: its
 * buffered input is parsed at the loop's resume step, never from inside the
 * handler that decided it (which may itself be parsing that input). */
void conn_want_resume(struct worker *w, struct conn *c);
/* The loop's resume step: parse the buffered input of every connection
 * conn_want_resume() named, until none is left. */
void conn_resume_all(struct worker *w);

/* handle_*.c: one decoded packet in, effects out */
void handle_connect(struct worker *w, struct conn *c, struct mqtt_packet *p, enum mqtt_rc rc);
void handle_publish(struct worker *w, struct conn *c, struct mqtt_publish *p);
void handle_puback(struct worker *w, struct conn *c, uint8_t type, struct mqtt_ack *a);
void handle_pubrel(struct worker *w, struct conn *c, struct mqtt_ack *a);
void handle_subscribe(struct worker *w, struct conn *c, struct mqtt_subscribe *s);
void handle_unsubscribe(struct worker *w, struct conn *c, struct mqtt_unsubscribe *u);
void handle_disconnect(struct worker *w, struct conn *c, struct mqtt_reason *r);
void handle_takeover(struct worker *w, const struct mbox_msg *m);
void handle_handover(struct worker *w, const struct mbox_msg *m);
void connect_finish(struct worker *w, struct conn *c, struct session *s, bool present);

/* route.c: where messages go */
/* Returns the number of sessions it was delivered or queued to. */
unsigned route_publish(struct worker *w, struct msg *m);
void deliver_local(struct worker *w, struct sess_id to, struct msg *m, uint8_t qos, uint8_t flags,
                   uint32_t sub_id);
/* A session is ending: its unacknowledged shared-subscription messages go
 * to another member of their group [MQTT 5.0 §4.8.2]. */
void shared_handoff(struct worker *w, struct session *s);
void session_pump(struct worker *w, struct session *s);
void session_resend(struct worker *w, struct session *s);
void index_change(struct worker *w, bool add, struct mqtt_view filter, const struct sub_entry *e);
/* A moving session's subscription: the entry of `was` becomes e, in one
 * step on every worker, so no publish in between finds neither. */
void index_move(struct worker *w, struct mqtt_view filter, const struct sub_entry *e,
                struct sess_id was);
void retained_query(struct worker *w, struct mqtt_view filter, const struct sub_entry *e);
/* Keep a lookup for this shard until the mailboxes were drained (takes d). */
void retained_defer(struct worker *w, struct sub_delta *d);
/* Answer a deferred lookup from this worker's shard and release d. */
void retained_answer(struct worker *w, struct sub_delta *d);
void retained_store(struct worker *w, struct msg *m);
void mbox_send(struct worker *w, uint16_t to, const struct mbox_msg *m);
void mbox_dispatch(struct worker *w, const struct mbox_msg *m);
void will_publish(struct worker *w, struct session *s);

/* sys_publish.c: $SYS/broker/... on worker 0 */
struct sys_state *sys_state_new(void);
void sys_state_free(struct sys_state *s);
/* Publish the $SYS topics when their interval has passed. */
void sys_tick(struct worker *w);

/* sessions.c: the worker's session table */
struct session *sess_get(struct worker *w, struct sess_id id);
struct sess_id sess_reserve(struct worker *w);
void sess_install(struct worker *w, struct session *s, struct sess_id id);
void sess_release_slot(struct worker *w, struct sess_id id);
/* End a session: remove its subscriptions everywhere, forget its id. */
void sess_end(struct worker *w, struct session *s);
/* Detach s from this worker for a move to the session `to`: its index
 * entries now name `to`, and so does s->id; mail still addressed to the old
 * id is passed on to `to` for SESS_MOVED_MS. */
void sess_detach(struct worker *w, struct session *s, struct sess_id to);
/* A detached session that no one adopts (its new connection died while
 * waiting): remove its index entries (they name s->id) and free it. */
void sess_unindex_free(struct worker *w, struct session *s);
/* Where the session `id` moved, when it did so lately (for mail still on its way). */
bool sess_moved_to(struct worker *w, struct sess_id id, struct sess_id *to);
/* Recycle an empty slot whose moved session's forwarding time is over
 * (the sweep's pass over the session table). */
void sess_moved_expire(struct worker *w, uint32_t slot);

struct sub_delta *sub_delta_new(bool add, struct mqtt_view filter, const struct sub_entry *e);
void sub_delta_unref(struct sub_delta *d);

#endif
