/*
 * tls.h — TLS for bench clients through OpenSSL memory BIOs: the ring moves
 * ciphertext, OpenSSL never touches a socket. Each connection owns one
 * struct tls_conn; the context is per worker. Not thread-safe (one worker).
 */
#ifndef STARLING_BENCH_TLS_H
#define STARLING_BENCH_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tls_ctx;
struct tls_conn;

/* NULL with a message in err on failure. cafile/cert/key may be "". */
struct tls_ctx *tls_ctx_new(const char *cafile, const char *cert, const char *key, bool insecure,
                            char *err, size_t err_len);
void tls_ctx_free(struct tls_ctx *ctx);

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, const char *server_name);
void tls_conn_free(struct tls_conn *t);
/* Drive the handshake: 1 done, 0 needs more input, -1 failed. */
int tls_conn_handshake(struct tls_conn *t);
/* Ciphertext arrived from the network; -1 on failure. */
int tls_conn_feed(struct tls_conn *t, const uint8_t *data, size_t len);
/* Plaintext out: bytes read (0 when none is ready), -1 on failure or close. */
int tls_conn_read(struct tls_conn *t, uint8_t *buf, size_t cap);
/* Plaintext in, to be encrypted; -1 on failure. */
int tls_conn_write(struct tls_conn *t, const uint8_t *data, size_t len);
/* Ciphertext waiting to be sent, and taking it. */
size_t tls_conn_pending(struct tls_conn *t);
size_t tls_conn_take(struct tls_conn *t, uint8_t *buf, size_t cap);

#endif
