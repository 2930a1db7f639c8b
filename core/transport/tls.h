/*
 * tls.h — TLS for the MQTT listeners: the node's OpenSSL context (built at
 * start, rebuilt by SIGHUP) and one connection's TLS state over memory BIOs;
 * and TLS for connections the node dials (bridges): a client context and
 * client connections over the same memory BIOs. The ring moves ciphertext;
 * OpenSSL never sees a socket, so no call here can block a worker.
 *
 * Threads: tls_new, tls_ctx_build, tls_install and tls_free run on the main
 * thread. tls_ctx_acquire and every tls_conn_* function run on a worker, on
 * that worker's connections only. tls_client_ctx_build reads files: call it
 * where blocking is fine (the main thread, at start or reload); the context
 * it returns may then be shared by workers for tls_conn_new_client (OpenSSL
 * contexts are safe to share once built and no longer changed).
 *
 * Context replacement follows auth_acl_acquire/auth_reload (auth.h): a
 * worker acquires the current context at the top of each loop turn and uses
 * only that one for SSL_new during the turn; the main thread drops its
 * reference to a replaced context only after every worker has acquired a
 * newer generation. Connections made from the old context keep it alive
 * through their own reference (SSL_new takes one), so they go on working.
 */
#ifndef STARLING_CORE_TLS_H
#define STARLING_CORE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/config.h"
#include "ops/stats.h"

struct tls;        /* the node's context and its generations */
struct tls_conn;   /* one connection's TLS state */
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

#define TLS_IDENTITY_MAX 256 /* bytes of a certificate identity used as a user name */

/* A context from cfg's certificate, key, CA and cipher keys, or NULL with
 * one line in err naming the key and file ("tls_key_file /x: ..."). */
struct ssl_ctx_st *tls_ctx_build(const struct config *cfg, char *err, size_t err_len);
void tls_ctx_discard(struct ssl_ctx_st *ctx);

/* A client's options. Paths are "" when not set, never NULL. */
struct tls_client_opts {
	const char *cafile;   /* the CAs to trust; "": the system's (default verify paths) */
	const char *certfile; /* our certificate chain, for servers that ask; "": none */
	const char *keyfile;  /* its key (unencrypted PEM); set exactly when certfile is */
	bool verify;          /* check the server's chain and name; false: trust any server
	                       * (the caller says so in the log) */
};

/* A client context (TLS 1.2 and 1.3, no renegotiation), or NULL with one
 * line in err naming the option and file ("cafile /x: ..."). */
struct ssl_ctx_st *tls_client_ctx_build(const struct tls_client_opts *o, char *err, size_t err_len);

/* The node's TLS, NULL with err when a file is bad. */
struct tls *tls_new(const struct config *cfg, unsigned workers, char *err, size_t err_len);
void tls_free(struct tls *t);
/* SIGHUP: make ctx (from tls_ctx_build) the context of new connections
 * (takes it). Returns once every worker has moved to it, then drops the old
 * one; after a bound it keeps the old one allocated instead (freed by
 * tls_free) rather than free it under a worker. */
void tls_install(struct tls *t, struct ssl_ctx_st *ctx);
/* Worker, top of every turn: the context for this turn's accepts. */
struct ssl_ctx_st *tls_ctx_acquire(struct tls *t, uint16_t worker);

/* A server-side connection; NULL when out of memory. */
struct tls_conn *tls_conn_new(struct ssl_ctx_st *ctx, enum tls_identity identity);
/* A client-side connection to server_name (a host name, or an IPv4 or IPv6
 * address without brackets), from a tls_client_ctx_build context; NULL when
 * out of memory. The name goes out as SNI unless it is an address; with
 * verify the server's certificate must chain to the context's CAs and name
 * server_name (a DNS SAN for a name, an IP SAN for an address), which must
 * then not be "". tls_conn_handshake on it, before anything was fed, puts
 * the ClientHello into the pending ciphertext. */
struct tls_conn *tls_conn_new_client(struct ssl_ctx_st *ctx, const char *server_name, bool verify);
void tls_conn_free(struct tls_conn *t);

enum tls_result {
	TLS_OK = 1,     /* handshake: finished */
	TLS_AGAIN = 0,  /* needs more ciphertext */
	TLS_EOF = -1,   /* read: the peer sent close_notify */
	TLS_ERROR = -2, /* failed; tls_conn_error says why */
};

/* Ciphertext from the socket; TLS_ERROR past TLS_RBIO_MAX buffered. */
enum tls_result tls_conn_feed(struct tls_conn *t, const uint8_t *data, size_t len);
/* Drive the handshake with what was fed. */
enum tls_result tls_conn_handshake(struct tls_conn *t);
bool tls_conn_established(const struct tls_conn *t);
/* Plaintext: > 0 bytes read, or a tls_result (TLS_AGAIN, TLS_EOF, TLS_ERROR). */
int tls_conn_read(struct tls_conn *t, uint8_t *buf, size_t cap);
/* Encrypt len bytes of plaintext into the outgoing ciphertext (all or
 * nothing: memory BIOs do not take partial writes). */
enum tls_result tls_conn_write(struct tls_conn *t, const uint8_t *data, size_t len);
/* Queue close_notify once, if the session allows one (finished, not failed). */
void tls_conn_close_notify(struct tls_conn *t);
/* Ciphertext waiting to be sent, and taking up to cap bytes of it. */
size_t tls_conn_pending(const struct tls_conn *t);
size_t tls_conn_take(struct tls_conn *t, uint8_t *buf, size_t cap);

/* After TLS_ERROR: the reason for the metrics and a phrase for the log
 * ("certificate verify failed: unable to get local issuer certificate
 * (server 10.0.0.2)" when a client refused the server's certificate). */
enum tls_fail tls_conn_fail_reason(const struct tls_conn *t);
const char *tls_conn_error(const struct tls_conn *t);
/* After the handshake: "TLSv1.3 TLS_AES_256_GCM_SHA384", and the verified
 * certificate identity the listener asked for (NULL: none; *len set). */
const char *tls_conn_describe(const struct tls_conn *t);
const char *tls_conn_identity(const struct tls_conn *t, size_t *len);
/* The peer presented a certificate that was verified. */
bool tls_conn_has_cert(const struct tls_conn *t);
/* A client connection failed on an alert from the server before any
 * application data came: under TLS 1.3 a server checks our certificate
 * after our side of the handshake finished, so its refusal arrives with
 * the first read, yet it is the handshake that failed. */
bool tls_conn_failed_early(const struct tls_conn *t);

#endif
