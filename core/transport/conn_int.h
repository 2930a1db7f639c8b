/*
 * conn_int.h — what the files of transport/ share and nobody else uses:
 * the table's allocation, arming receives and accepts, the flush mark, the
 * lost-connection path and the TLS / WebSocket layers (layers.c).
 */
#ifndef STARLING_CORE_CONN_INT_H
#define STARLING_CORE_CONN_INT_H

#include "transport/conn.h"

/* conn.c */
struct conn *transport_conn_alloc(struct transport *tp, unsigned upper);
/* Make tp->tls exist from now on (a TLS connection dialled by a node
 * without TLS listeners). false: out of memory. */
bool transport_tls_table(struct transport *tp);
void conn_flush(struct transport *tp, struct conn *c);
/* The transport ends c on its own: why, then the layer above closes it. */
void conn_lost(struct transport *tp, struct conn *c, enum close_reason why);

/* accept.c */
void transport_accept_arm(struct transport *tp, unsigned listener);
void transport_recv_arm(struct transport *tp, struct conn *c);

/* layers.c: bytes from the socket through TLS and WebSocket to the layer
 * above; the outbox through them to tx. layers_stage: false when there is
 * nothing to send. */
void layers_received(struct transport *tp, struct conn *c, const uint8_t *data, uint32_t len);
bool layers_stage(struct transport *tp, struct conn *c);
/* A dialled TLS connection connected: start the handshake (its ClientHello
 * waits in TLS for the flush). false: it failed, and c was lost. */
bool layers_tls_start(struct transport *tp, struct conn *c);
/* c holds output the journal has not let go yet (conn.c). */
void conn_gated(struct transport *tp, struct conn *c);
struct ws_conn *ws_conn_new(const char *path, uint32_t max_frame_bytes);
void ws_conn_free(struct ws_conn *x); /* NULL is fine */

#endif
