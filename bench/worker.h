/*
 * worker.h — one bench worker process: its io_uring, its slice of the
 * simulated clients, and the state they share. Internal to the worker's
 * files (worker.c: setup, timers and the loop; io.c: ring operations and
 * byte buffers; client.c: the MQTT side of a client).
 *
 * Everything here is owned by the single thread of one worker process.
 */
#ifndef STARLING_BENCH_WORKER_H
#define STARLING_BENCH_WORKER_H

#include <liburing.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "e2e.h"
#include "scenario.h"
#include "shared.h"
#include "stats.h"
#include "tls.h"
#include "track.h"
#include "ws.h"

#define NO_PUB UINT32_MAX

/* Limits of one worker. */
#define RING_ENTRIES   4096u
#define RECV_BUF_COUNT 512u         /* provided receive buffers, a power of two */
#define RECV_BUF_BYTES (16u * 1024) /* each */
#define RECV_GROUP     1            /* buffer group id */
#define TX_BUF_BYTES   (16u * 1024) /* standard send buffer */
#define TX_HIGH_BYTES  (64u * 1024) /* publishers pause above this much queued */
#define TX_FREE_MAX    1024u        /* standard send buffers kept for reuse */
#define CONNECTING_MAX 512u         /* connects in progress at once */
#define PUB_BATCH      32u          /* messages per publisher per loop turn */
#define TARGETS_MAX    64u
#define SOURCES_MAX    65536u
#define E2E_STALL_NS   (1000ull * 1000 * 1000)

enum client_state {
	CS_NEW = 0, /* not started */
	CS_TCP,     /* connect() in flight */
	CS_TLS,     /* TLS handshake */
	CS_WS,      /* WebSocket upgrade sent, waiting for the 101 */
	CS_CONNACK, /* CONNECT sent, waiting for CONNACK */
	CS_SUBACK,  /* SUBSCRIBE sent, waiting for SUBACK */
	CS_READY,   /* connected (and subscribed) */
	CS_CLOSING, /* shut down, waiting for its operations to complete */
	CS_CLOSED,  /* fd closed, buffers freed; final */
};

enum client_flag {
	CF_RECV_ARMED = 1u << 0,   /* a multishot recv is outstanding */
	CF_SEND_BUSY = 1u << 1,    /* a send is outstanding */
	CF_CONNECT_BUSY = 1u << 2, /* a connect is outstanding */
	CF_ON_FLUSH = 1u << 3,     /* on the flush list */
	CF_ON_REARM = 1u << 4,     /* on the re-arm list */
	CF_UP = 1u << 5,           /* counted in conn_up */
	CF_BYE = 1u << 6,          /* close once everything queued is sent */
	CF_ON_REAP = 1u << 7,      /* on the reap list */
};

struct txbuf {
	uint32_t len; /* bytes queued */
	uint32_t off; /* bytes already sent */
	uint32_t cap; /* bytes of data[] */
	uint8_t data[];
};

struct rxbuf {
	uint32_t len; /* bytes of a partial packet held */
	uint32_t cap;
	uint8_t data[];
};

/* A simulated client: kept small, an idle one owns no buffers. */
struct client {
	int fd;                /* -1 when none */
	uint32_t gen;          /* bumped when the fd changes; in user_data */
	uint32_t id;           /* global client index */
	uint32_t pub;          /* index into worker.pubs, or NO_PUB */
	uint8_t state;         /* enum client_state */
	uint8_t role;          /* enum client_role */
	uint16_t flags;        /* enum client_flag */
	uint32_t tx_s;         /* last send, seconds since worker start (keep alive) */
	uint64_t t0_ns;        /* start of the current connect attempt (monotonic) */
	struct txbuf *tx;      /* being filled */
	struct txbuf *tx_busy; /* owned by the kernel while CF_SEND_BUSY */
	struct rxbuf *rx;      /* partial packet, or NULL */
	struct tls_conn *tls;  /* or NULL */
};

struct pubstate {
	uint32_t client;       /* slot in worker.clients */
	uint32_t rank;         /* global publisher rank */
	uint64_t seq;          /* next sequence number */
	uint64_t due_ns;       /* next send under a rate (monotonic) */
	uint64_t progress_ns;  /* last e2e head move */
	uint32_t inflight;     /* QoS 1/2 awaiting acknowledgement */
	uint32_t inflight_max; /* min(--inflight, broker's receive maximum) */
	uint32_t slot_next;    /* where to look for a free packet id */
	uint32_t e2e_target;   /* local deliveries per message */
	uint8_t *slots;        /* [scenario.inflight]: 0 free, 1 sent, 2 PUBREC'd */
	char *topic;
	uint16_t topic_len;
	bool on_ready; /* in worker.ready */
	bool in_heap;  /* in worker.heap */
	bool done;     /* finished, counted in pubs_done */
};

struct worker {
	const struct scenario *sc;
	struct plan plan;
	struct shared *sh;
	struct stats *st;            /* sh->stats[index] */
	uint32_t index;              /* worker number in this machine */
	uint32_t slice;              /* global slice of this worker */
	uint32_t slices;             /* global slice count */
	uint32_t slice_lo, slice_hi; /* slices on this machine, for e2e targets */

	struct io_uring ring;
	struct io_uring_buf_ring *br;
	uint8_t *recv_bufs;

	struct client *clients;
	uint32_t client_count;
	struct pubstate *pubs;
	uint32_t pub_count;

	uint32_t *flush; /* clients with bytes to send */
	uint32_t flush_count;
	uint32_t *rearm; /* clients whose multishot recv ended */
	uint32_t rearm_count;
	uint32_t *reap; /* closing clients */
	uint32_t reap_count;
	uint32_t *ready; /* publishers that may be able to send now */
	uint32_t ready_count;
	uint32_t *heap; /* rate-limited publishers by due_ns */
	uint32_t heap_count;

	struct txbuf **tx_free;
	uint32_t tx_free_count;

	struct track track;
	struct e2e e2e;
	struct tls_ctx *tls;
	struct ws_ctx *ws;         /* with --ws, else NULL */
	struct ws_conn **ws_conns; /* [client_count] with --ws: upgrade or partial frame */
	bool ws_logged;            /* a failed upgrade was reported on stderr */
	uint8_t *plain;            /* scratch: TLS plaintext in, packet out, (ws) frame out */
	uint8_t *payload;          /* a publish body: header + filler */
	uint32_t rx_max;           /* largest packet accepted, bytes */

	struct sockaddr_storage targets[TARGETS_MAX];
	socklen_t target_lens[TARGETS_MAX];
	char target_names[TARGETS_MAX][128];
	uint32_t target_count; /* all of them: hosts, then sub_hosts */
	uint32_t pub_targets;  /* of those, hosts' (everyone's when sub_hosts is empty) */
	uint32_t source_first, source_count; /* IPv4, host order */

	uint64_t start_ns; /* monotonic */
	uint64_t now_ns;
	uint64_t go_ns;            /* when publishing began here, 0 before */
	uint64_t end_ns;           /* publishing ends (duration), 0 none */
	uint64_t stop_ns;          /* stop seen, 0 before */
	uint64_t tick_ns;          /* next housekeeping */
	uint64_t rate_interval_ns; /* between messages of one publisher, 0 unlimited */
	uint32_t next_connect;     /* next client slot to connect */
	uint32_t connecting;       /* connects in progress */
	uint32_t closed;           /* clients in CS_CLOSED */
	double connect_rate_w;     /* this worker's share, per second; 0 unlimited */
	bool published_this_turn;
};

/* worker.c */
int worker_run(const struct scenario *sc, struct shared *sh, uint32_t index, uint32_t slice,
               uint32_t slices, uint32_t slice_lo, uint32_t slice_hi);
void worker_ready_push(struct worker *w, uint32_t pub);

/* io.c */
int io_setup(struct worker *w);
void io_teardown(struct worker *w);
void io_connect_start(struct worker *w, struct client *c);
void io_arm_recv(struct worker *w, struct client *c);
/* Room for n plaintext bytes of c's output, or NULL when over the limit. */
uint8_t *io_out_reserve(struct worker *w, struct client *c, uint32_t n);
/* n bytes written at the reserved place: queue (encrypt) and mark for flush. */
void io_out_commit(struct worker *w, struct client *c, uint32_t n);
/* After the last packet (DISCONNECT): a WebSocket close frame. */
void io_out_end(struct worker *w, struct client *c);
uint32_t io_out_queued(const struct client *c);
void io_flush_all(struct worker *w);
void io_close(struct worker *w, struct client *c, enum fail_reason reason, bool failure);
void io_reap_all(struct worker *w);
void io_dispatch(struct worker *w, struct io_uring_cqe *cqe);
void io_list_add(uint32_t *list, uint32_t *count, struct client *c, struct worker *w,
                 uint16_t flag);
struct io_uring_sqe *io_sqe(struct worker *w);

/* client.c */
void client_on_connected(struct worker *w, struct client *c); /* TCP (+TLS, +WS) up */
void client_on_bytes(struct worker *w, struct client *c, const uint8_t *data, size_t len);
void client_send_ping(struct worker *w, struct client *c);
void client_send_disconnect(struct worker *w, struct client *c);
/* Publish up to max messages; returns how many were sent. */
uint32_t client_publish(struct worker *w, struct pubstate *p, uint32_t max);
bool client_pub_blocked(struct worker *w, struct pubstate *p);

static inline uint64_t worker_clock_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t worker_wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
