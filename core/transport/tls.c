/*
 * tls.c — the node's OpenSSL server context, client contexts for the
 * connections the node dials, and each TLS connection's state (see tls.h
 * for threads and the replacement protocol).
 *
 * A connection is an SSL over two memory BIOs: rbio holds ciphertext that
 * arrived and is not decrypted yet, wbio ciphertext produced and not yet
 * handed to the ring. Nothing here touches a file descriptor, so no OpenSSL
 * call can block a worker. Bounds: rbio is drained after every feed, so it
 * holds at most one incomplete record (16 KiB + overhead) plus one receive
 * buffer, checked against TLS_RBIO_MAX; wbio holds what conn.c encrypted
 * from an outbox that is bounded already (conn.c), plus handshake messages
 * and alerts, and is emptied by every flush. A memory BIO keeps the
 * capacity it grew to, so an empty one above BIO_KEEP_BYTES is replaced by
 * a fresh one: after a burst an idle connection goes back to holding only
 * its SSL (about 14.5 KiB with OpenSSL 3.0 and SSL_MODE_RELEASE_BUFFERS,
 * 50 KiB without), not the largest flush it ever made.
 *
 * Only TLS 1.2 and 1.3 are offered; renegotiation is off (TLS 1.2 clients
 * could otherwise make the server do handshake work at will, and a memory
 * BIO write could then want a read), so SSL_write always completes. The
 * same holds for the client side.
 *
 * A client connection speaks first: tls_conn_handshake on a fresh one puts
 * the ClientHello into wbio without anything having been fed. Its errors
 * name the server it dialled, and a failed verification says why in
 * X509_verify_cert_error_string's words, so that an operator with the wrong
 * CA file reads the reason, not "handshake failure".
 */
#include "transport/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/check.h"
#include "base/log.h"

#define TLS_RBIO_MAX   (64u << 10) /* undecrypted bytes one connection may hold */
#define RELOAD_WAIT_MS 2000        /* how long a reload waits for workers to move on */
#define RETIRED_MAX    16          /* replaced contexts a slow worker kept from freeing */
#define WRITE_CHUNK    (16u << 20) /* SSL_write takes an int: bytes per call */
#define BIO_KEEP_BYTES 1024        /* an empty BIO may keep this much capacity */

struct tls {
	_Atomic(SSL_CTX *) ctx;        /* for new connections */
	_Atomic uint64_t gen;          /* bumped by every tls_install */
	unsigned workers;              /* entries of seen */
	_Atomic uint64_t *seen;        /* the gen each worker's current turn uses */
	SSL_CTX *retired[RETIRED_MAX]; /* main thread only: freed by tls_free */
	unsigned retired_len;
};

struct tls_conn {
	SSL *ssl;
	BIO *rbio;             /* network -> OpenSSL (owned by ssl) */
	BIO *wbio;             /* OpenSSL -> network (owned by ssl) */
	char *server_name;     /* client: the name dialled, for errors; NULL on a server */
	bool established;      /* handshake finished */
	bool failed;           /* a fatal error: no close_notify may follow */
	bool notified;         /* close_notify queued */
	bool has_cert;         /* the peer's certificate was verified */
	bool client;           /* we dialled: the peer is a server */
	bool read_any;         /* application data arrived (tls_conn_failed_early) */
	uint8_t identity_mode; /* enum tls_identity */
	uint8_t fail;          /* enum tls_fail, after TLS_ERROR */
	uint16_t identity_len; /* 0: no identity */
	char error[200];       /* why, after TLS_ERROR (a long server name is cut) */
	char identity[TLS_IDENTITY_MAX + 1];
};

/* The first queued OpenSSL error as a phrase, and the queue emptied (the
 * next SSL call's SSL_get_error needs an empty queue). */
static const char *take_error(char *buf, size_t len)
{
	unsigned long e = ERR_peek_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	snprintf(buf, len, "%s", r ? r : "unknown OpenSSL error");
	ERR_clear_error();
	return buf;
}

/* An encrypted key would make OpenSSL ask for a passphrase on the terminal:
 * refuse instead, and note (u: a bool, or NULL) that it was asked, so the
 * error can say why rather than OpenSSL's "interrupted or cancelled". */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	if (u)
		*(bool *)u = true;
	return -1;
}

/* fopen first: "cannot open: No such file or directory" beats PEM errors. */
static bool readable(const char *key, const char *path, char *err, size_t err_len)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, err_len, "%s %s: cannot open: %s", key, path, strerror(errno));
		return false;
	}
	fclose(f);
	return true;
}

/* A certificate chain and its key into ctx, or false with one line in err
 * naming the option (cert_opt, key_opt) and the file. */
static bool load_cert_key(SSL_CTX *ctx, const char *cert_opt, const char *cert, const char *key_opt,
                          const char *key, char *err, size_t err_len)
{
	char why[160];
	if (!readable(cert_opt, cert, err, err_len))
		return false;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(err, err_len, "%s %s: %s", cert_opt, cert, take_error(why, sizeof(why)));
		return false;
	}
	if (!readable(key_opt, key, err, err_len))
		return false;
	bool encrypted = false;
	SSL_CTX_set_default_passwd_cb_userdata(ctx, &encrypted);
	bool loaded = SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1;
	SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL); /* &encrypted ends here */
	if (!loaded && encrypted) {
		ERR_clear_error();
		snprintf(err, err_len,
		         "%s %s: the key is encrypted, and encrypted keys are not "
		         "supported (nobody could type its passphrase at a restart); decrypt it "
		         "with `openssl pkey -in %s -out NEW_FILE` and keep that file mode 0600",
		         key_opt, key, key);
		return false;
	}
	unsigned long e = ERR_peek_error();
	/* OpenSSL's "key values mismatch" does not say with what. */
	bool mismatch = loaded ? SSL_CTX_check_private_key(ctx) != 1
	                       : ERR_GET_LIB(e) == ERR_LIB_X509 &&
	                             ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH;
	if (mismatch) {
		ERR_clear_error();
		snprintf(err, err_len, "%s %s: does not match the certificate in %s", key_opt, key,
		         cert);
		return false;
	}
	if (!loaded) {
		snprintf(err, err_len, "%s %s: %s", key_opt, key, take_error(why, sizeof(why)));
		return false;
	}
	return true;
}

struct ssl_ctx_st *tls_ctx_build(const struct config *cfg, char *err, size_t err_len)
{
	char why[160];
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		snprintf(err, err_len, "TLS context: %s", take_error(why, sizeof(why)));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	                             SSL_OP_NO_COMPRESSION);
	/* An idle connection gives its 16 KiB record buffers back. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	/* Resumed sessions must be told apart from other applications' when
	 * client certificates are verified (OpenSSL refuses them otherwise). */
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"starling", 8);

	if (!load_cert_key(ctx, "tls_cert_file", cfg->tls_cert_file, "tls_key_file",
	                   cfg->tls_key_file, err, err_len))
		goto fail;
	if (cfg->tls_ca_file[0]) {
		if (!readable("tls_ca_file", cfg->tls_ca_file, err, err_len))
			goto fail;
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->tls_ca_file);
		if (SSL_CTX_load_verify_locations(ctx, cfg->tls_ca_file, NULL) != 1 || !names) {
			sk_X509_NAME_pop_free(names, X509_NAME_free);
			snprintf(err, err_len, "tls_ca_file %s: %s", cfg->tls_ca_file,
			         take_error(why, sizeof(why)));
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names); /* takes names */
		SSL_CTX_set_verify(
		    ctx,
		    SSL_VERIFY_PEER |
		        (cfg->tls_require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
		    NULL);
		SSL_CTX_set_verify_depth(ctx, 8);
	}
	if (cfg->tls_ciphers[0] && SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers) != 1) {
		snprintf(err, err_len, "tls_ciphers \"%s\": %s", cfg->tls_ciphers,
		         take_error(why, sizeof(why)));
		goto fail;
	}
	if (cfg->tls_ciphersuites[0] && SSL_CTX_set_ciphersuites(ctx, cfg->tls_ciphersuites) != 1) {
		snprintf(err, err_len, "tls_ciphersuites \"%s\": %s", cfg->tls_ciphersuites,
		         take_error(why, sizeof(why)));
		goto fail;
	}
	if (cfg->tls_groups[0] && SSL_CTX_set1_groups_list(ctx, cfg->tls_groups) != 1) {
		snprintf(err, err_len, "tls_groups \"%s\": %s", cfg->tls_groups,
		         take_error(why, sizeof(why)));
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

struct ssl_ctx_st *tls_client_ctx_build(const struct tls_client_opts *o, char *err, size_t err_len)
{
	char why[160];
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		snprintf(err, err_len, "TLS context: %s", take_error(why, sizeof(why)));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Renegotiation off for the reason the server has (the file's top). */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	/* The CAs are loaded even without verification: a file named in the
	 * configuration that cannot be read is an error either way. */
	if (o->cafile[0]) {
		if (!readable("cafile", o->cafile, err, err_len))
			goto fail;
		if (SSL_CTX_load_verify_locations(ctx, o->cafile, NULL) != 1) {
			snprintf(err, err_len, "cafile %s: %s", o->cafile,
			         take_error(why, sizeof(why)));
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		snprintf(err, err_len, "cafile \"\" (the system's CAs): %s",
		         take_error(why, sizeof(why)));
		goto fail;
	}
	if (!o->certfile[0] != !o->keyfile[0]) { /* one without the other */
		if (o->certfile[0])
			snprintf(err, err_len, "certfile %s: needs keyfile, its key", o->certfile);
		else
			snprintf(err, err_len, "keyfile %s: needs certfile, its certificate",
			         o->keyfile);
		goto fail;
	}
	if (o->certfile[0] &&
	    !load_cert_key(ctx, "certfile", o->certfile, "keyfile", o->keyfile, err, err_len))
		goto fail;
	/* Each connection sets its own mode too (tls_conn_new_client). */
	SSL_CTX_set_verify(ctx, o->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void tls_ctx_discard(struct ssl_ctx_st *ctx)
{
	SSL_CTX_free(ctx);
}

struct tls *tls_new(const struct config *cfg, unsigned workers, char *err, size_t err_len)
{
	struct tls *t = calloc(1, sizeof(*t));
	_Atomic uint64_t *seen = calloc(workers ? workers : 1, sizeof(*seen));
	SSL_CTX *ctx = t && seen ? tls_ctx_build(cfg, err, err_len) : NULL;
	if (!ctx) {
		if (!t || !seen)
			snprintf(err, err_len, "out of memory");
		free(seen);
		free(t);
		return NULL;
	}
	t->workers = workers;
	t->seen = seen;
	atomic_init(&t->ctx, ctx);
	atomic_init(&t->gen, 1);
	return t;
}

void tls_free(struct tls *t)
{
	if (!t)
		return;
	SSL_CTX_free(atomic_load(&t->ctx));
	for (unsigned i = 0; i < t->retired_len; i++)
		SSL_CTX_free(t->retired[i]);
	free(t->seen);
	free(t);
}

void tls_install(struct tls *t, struct ssl_ctx_st *ctx)
{
	SSL_CTX *old = atomic_exchange(&t->ctx, ctx);
	uint64_t gen = atomic_fetch_add(&t->gen, 1) + 1;
	/* A worker may hold `old` between its acquire and its SSL_new (which
	 * takes the connection's own reference): dropping ours before every
	 * worker has acquired a newer generation could free it under that
	 * SSL_new. Afterwards only connections refer to it, each through its
	 * own reference, so the free below ends our share, not their context.
	 * Workers turn at least every 250 ms. */
	struct timespec step = {0, 10 * 1000 * 1000};
	for (unsigned waited = 0; waited < RELOAD_WAIT_MS; waited += 10) {
		unsigned behind = 0;
		for (unsigned i = 0; i < t->workers; i++)
			behind += atomic_load(&t->seen[i]) < gen;
		if (!behind) {
			SSL_CTX_free(old);
			return;
		}
		nanosleep(&step, NULL);
	}
	if (t->retired_len < RETIRED_MAX) {
		t->retired[t->retired_len++] = old;
		LOG_WARN("SIGHUP: a worker did not pick up the new TLS context within %u ms; the "
		         "old one stays allocated until exit",
		         RELOAD_WAIT_MS);
	} else {
		LOG_WARN("SIGHUP: a worker did not pick up the new TLS context within %u ms; the "
		         "old one is leaked",
		         RELOAD_WAIT_MS);
	}
}

struct ssl_ctx_st *tls_ctx_acquire(struct tls *t, uint16_t worker)
{
	/* The generation first: a worker that reports generation g loaded the
	 * pointer after g was published, so it holds g's context or newer. */
	uint64_t gen = atomic_load_explicit(&t->gen, memory_order_acquire);
	SSL_CTX *ctx = atomic_load_explicit(&t->ctx, memory_order_acquire);
	/* seen[] is a line every worker writes: only when it changes, not
	 * every turn (that would bounce the line between cores). */
	if (atomic_load_explicit(&t->seen[worker], memory_order_relaxed) != gen)
		atomic_store_explicit(&t->seen[worker], gen, memory_order_release);
	return ctx;
}

/* An SSL over two memory BIOs, in neither state yet. */
static struct tls_conn *conn_new(SSL_CTX *ctx)
{
	struct tls_conn *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->ssl = SSL_new(ctx);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (!t->ssl || !t->rbio || !t->wbio) {
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		SSL_free(t->ssl);
		free(t);
		ERR_clear_error();
		return NULL;
	}
	/* An empty rbio means "more later", never end of stream. */
	BIO_set_mem_eof_return(t->rbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio); /* the SSL owns both BIOs now */
	return t;
}

struct tls_conn *tls_conn_new(struct ssl_ctx_st *ctx, enum tls_identity identity)
{
	struct tls_conn *t = conn_new(ctx);
	if (!t)
		return NULL;
	t->identity_mode = (uint8_t)identity;
	SSL_set_accept_state(t->ssl);
	return t;
}

struct tls_conn *tls_conn_new_client(struct ssl_ctx_st *ctx, const char *server_name, bool verify)
{
	/* Verifying a certificate against no name would accept any name the
	 * CA signed: a caller's mistake, not a configuration's. */
	CHECK(server_name && (!verify || server_name[0]));
	struct tls_conn *t = conn_new(ctx);
	if (!t)
		return NULL;
	t->client = true;
	t->server_name = strdup(server_name);
	uint8_t ip[16];
	bool numeric =
	    inet_pton(AF_INET, server_name, ip) == 1 || inet_pton(AF_INET6, server_name, ip) == 1;
	bool ok = t->server_name != NULL;
	/* SNI carries host names only, never a literal address (RFC 6066 3). */
	if (ok && server_name[0] && !numeric)
		ok = SSL_set_tlsext_host_name(t->ssl, server_name) == 1;
	if (ok && verify) {
		SSL_set_verify(t->ssl, SSL_VERIFY_PEER, NULL);
		/* An address is matched against the certificate's IP SANs, a name
		 * against its DNS SANs (or CN without any), "*.x" whole labels only. */
		X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);
		if (numeric) {
			ok = X509_VERIFY_PARAM_set1_ip_asc(param, server_name) == 1;
		} else {
			SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			ok = SSL_set1_host(t->ssl, server_name) == 1;
		}
	} else if (ok) {
		SSL_set_verify(t->ssl, SSL_VERIFY_NONE, NULL);
	}
	if (!ok) {
		ERR_clear_error();
		tls_conn_free(t);
		return NULL;
	}
	SSL_set_connect_state(t->ssl);
	return t;
}

void tls_conn_free(struct tls_conn *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	free(t->server_name);
	free(t);
}

static enum tls_fail verify_fail(long v)
{
	switch (v) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return TLS_FAIL_CERT_EXPIRED;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_UNTRUSTED:
	case X509_V_ERR_CERT_CHAIN_TOO_LONG:
		return TLS_FAIL_CERT_UNTRUSTED;
	default:
		return TLS_FAIL_CERT_INVALID;
	}
}

/* A failed SSL call: classify it for the metrics, word it for the log
 * (naming the peer by its role: a client we serve, a server we dialled). */
static enum tls_result failed(struct tls_conn *t, int r)
{
	int e = SSL_get_error(t->ssl, r);
	const char *peer = t->client ? "server" : "client";
	t->failed = true;
	if (e == SSL_ERROR_ZERO_RETURN) {
		t->fail = TLS_FAIL_CLOSED;
		snprintf(t->error, sizeof(t->error), "the %s closed the session", peer);
		ERR_clear_error();
		return TLS_ERROR;
	}
	unsigned long code = ERR_peek_error();
	char why[96];
	take_error(why, sizeof(why));
	t->fail = TLS_FAIL_OTHER;
	if (e != SSL_ERROR_SSL || ERR_GET_LIB(code) != ERR_LIB_SSL) {
		snprintf(t->error, sizeof(t->error), "%s", why);
		return TLS_ERROR;
	}
	int reason = ERR_GET_REASON(code);
	switch (reason) {
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_HTTP_REQUEST:
	case SSL_R_HTTPS_PROXY_REQUEST:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
	case SSL_R_UNKNOWN_PROTOCOL:
	case SSL_R_RECORD_LENGTH_MISMATCH:
	case SSL_R_WRONG_SSL_VERSION:
		/* Before the handshake these mean the bytes were not TLS at all
		 * (plaintext MQTT sends 0x10 where a record type goes; a plain
		 * listener we dialled answers with 0x20 or nothing). */
		if (!t->established) {
			t->fail = TLS_FAIL_NOT_TLS;
			if (t->client)
				snprintf(t->error, sizeof(t->error),
				         "the server %s does not answer in TLS (%s)",
				         t->server_name, why);
			else
				snprintf(t->error, sizeof(t->error), "not a TLS client hello (%s)",
				         why);
			return TLS_ERROR;
		}
		break;
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_VERSION_TOO_LOW:
	case SSL_R_NO_PROTOCOLS_AVAILABLE:
		t->fail = TLS_FAIL_VERSION;
		snprintf(t->error, sizeof(t->error), "protocol version below TLS 1.2 (%s)", why);
		return TLS_ERROR;
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		t->fail = TLS_FAIL_NO_CERT;
		snprintf(t->error, sizeof(t->error), "no client certificate (one is required)");
		return TLS_ERROR;
	case SSL_R_CERTIFICATE_VERIFY_FAILED: {
		long v = SSL_get_verify_result(t->ssl);
		t->fail = (uint8_t)verify_fail(v);
		if (t->client)
			snprintf(t->error, sizeof(t->error),
			         "certificate verify failed: %s (server %s)",
			         X509_verify_cert_error_string(v), t->server_name);
		else
			snprintf(t->error, sizeof(t->error), "client certificate refused: %s",
			         X509_verify_cert_error_string(v));
		return TLS_ERROR;
	}
	case SSL_R_NO_SHARED_CIPHER:
	case SSL_R_NO_SHARED_GROUPS:
	case SSL_R_NO_SUITABLE_KEY_SHARE:
		t->fail = TLS_FAIL_NO_SHARED_CIPHER;
		snprintf(t->error, sizeof(t->error), "nothing in common with the %s (%s)", peer,
		         why);
		return TLS_ERROR;
	default:
		break;
	}
	if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256) {
		t->fail = TLS_FAIL_PEER_ALERT;
		snprintf(t->error, sizeof(t->error), "the %s sent an alert: %s", peer, why);
		return TLS_ERROR;
	}
	snprintf(t->error, sizeof(t->error), "%s", why);
	return TLS_ERROR;
}

enum tls_result tls_conn_feed(struct tls_conn *t, const uint8_t *data, size_t len)
{
	if (BIO_write(t->rbio, data, (int)len) != (int)len) {
		ERR_clear_error();
		t->failed = true;
		t->fail = TLS_FAIL_OTHER;
		snprintf(t->error, sizeof(t->error), "out of memory for received data");
		return TLS_ERROR;
	}
	if (BIO_ctrl_pending(t->rbio) > TLS_RBIO_MAX) {
		t->failed = true;
		t->fail = TLS_FAIL_OTHER;
		snprintf(t->error, sizeof(t->error), "over %u bytes of undecrypted input",
		         TLS_RBIO_MAX);
		return TLS_ERROR;
	}
	return TLS_OK;
}

/* The identity the listener asked for, from the verified certificate;
 * none when it is missing, too long, or holds a NUL (it becomes an MQTT
 * user name, which may not [MQTT-1.5.4-2]). */
static void take_identity(struct tls_conn *t, X509 *cert)
{
	const unsigned char *p = NULL;
	int len = 0;
	unsigned char *utf8 = NULL;
	GENERAL_NAMES *names = NULL;
	if (t->identity_mode == TLS_IDENTITY_CN) {
		X509_NAME *subject = X509_get_subject_name(cert);
		int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
		X509_NAME_ENTRY *entry = i >= 0 ? X509_NAME_get_entry(subject, i) : NULL;
		if (entry)
			len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
		p = utf8;
	} else if (t->identity_mode == TLS_IDENTITY_SAN) {
		names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
		for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
			GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
			if (g->type == GEN_DNS || g->type == GEN_EMAIL) {
				p = ASN1_STRING_get0_data(g->d.ia5);
				len = ASN1_STRING_length(g->d.ia5);
				break;
			}
		}
	}
	if (p && len > 0 && len <= TLS_IDENTITY_MAX && !memchr(p, 0, (size_t)len)) {
		memcpy(t->identity, p, (size_t)len);
		t->identity[len] = '\0';
		t->identity_len = (uint16_t)len;
	}
	OPENSSL_free(utf8);
	GENERAL_NAMES_free(names);
	ERR_clear_error();
}

enum tls_result tls_conn_handshake(struct tls_conn *t)
{
	if (t->established)
		return TLS_OK;
	if (t->failed)
		return TLS_ERROR;
	int r = SSL_do_handshake(t->ssl);
	if (r != 1) {
		int e = SSL_get_error(t->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return TLS_AGAIN;
		return failed(t, r);
	}
	t->established = true;
	X509 *cert = SSL_get0_peer_certificate(t->ssl);
	/* With SSL_VERIFY_PEER a certificate that failed verification ended
	 * the handshake already; checking again costs nothing. */
	t->has_cert = cert && SSL_get_verify_result(t->ssl) == X509_V_OK;
	if (t->has_cert && t->identity_mode != TLS_IDENTITY_NONE)
		take_identity(t, cert);
	return TLS_OK;
}

bool tls_conn_established(const struct tls_conn *t)
{
	return t->established;
}

/* An empty memory BIO's capacity, to decide whether to trim it. */
static size_t bio_capacity(BIO *b)
{
	BUF_MEM *m = NULL;
	BIO_get_mem_ptr(b, &m);
	return m ? m->max : 0;
}

/* Replace the empty rbio or wbio by a fresh one when it grew past
 * BIO_KEEP_BYTES. SSL_set0_* frees the old one. Out of memory: keep it. */
static void trim(struct tls_conn *t, bool rbio)
{
	BIO *old = rbio ? t->rbio : t->wbio;
	if (BIO_ctrl_pending(old) != 0 || bio_capacity(old) <= BIO_KEEP_BYTES)
		return;
	BIO *fresh = BIO_new(BIO_s_mem());
	if (!fresh) {
		ERR_clear_error();
		return;
	}
	if (rbio) {
		BIO_set_mem_eof_return(fresh, -1);
		SSL_set0_rbio(t->ssl, fresh);
		t->rbio = fresh;
	} else {
		SSL_set0_wbio(t->ssl, fresh);
		t->wbio = fresh;
	}
}

int tls_conn_read(struct tls_conn *t, uint8_t *buf, size_t cap)
{
	if (t->failed)
		return TLS_ERROR;
	int r = SSL_read(t->ssl, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
	if (r > 0) {
		t->read_any = true;
		return r;
	}
	int e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		trim(t, true); /* everything decrypted: the rbio is empty */
		return TLS_AGAIN;
	}
	if (e == SSL_ERROR_ZERO_RETURN) {
		ERR_clear_error();
		return TLS_EOF; /* close_notify: ours may still follow */
	}
	return failed(t, r);
}

enum tls_result tls_conn_write(struct tls_conn *t, const uint8_t *data, size_t len)
{
	if (t->failed || !t->established)
		return TLS_ERROR;
	while (len > 0) {
		int n = len > WRITE_CHUNK ? (int)WRITE_CHUNK : (int)len;
		int r = SSL_write(t->ssl, data, n);
		if (r != n)
			return failed(t, r);
		data += n;
		len -= (size_t)n;
	}
	return TLS_OK;
}

void tls_conn_close_notify(struct tls_conn *t)
{
	if (!t->established || t->failed || t->notified)
		return;
	t->notified = true;
	SSL_shutdown(t->ssl); /* 0: ours is queued in wbio; we do not wait for theirs */
	ERR_clear_error();
}

size_t tls_conn_pending(const struct tls_conn *t)
{
	return BIO_ctrl_pending(t->wbio);
}

size_t tls_conn_take(struct tls_conn *t, uint8_t *buf, size_t cap)
{
	int r = BIO_read(t->wbio, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
	trim(t, false);
	return r > 0 ? (size_t)r : 0;
}

enum tls_fail tls_conn_fail_reason(const struct tls_conn *t)
{
	return (enum tls_fail)t->fail;
}

const char *tls_conn_error(const struct tls_conn *t)
{
	return t->error[0] ? t->error : "unknown";
}

const char *tls_conn_describe(const struct tls_conn *t)
{
	static _Thread_local char buf[96];
	snprintf(buf, sizeof(buf), "%s %s", SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl));
	return buf;
}

const char *tls_conn_identity(const struct tls_conn *t, size_t *len)
{
	*len = t->identity_len;
	return t->identity_len ? t->identity : NULL;
}

bool tls_conn_has_cert(const struct tls_conn *t)
{
	return t->has_cert;
}

bool tls_conn_failed_early(const struct tls_conn *t)
{
	return t->client && t->failed && !t->read_any && t->fail == TLS_FAIL_PEER_ALERT;
}
