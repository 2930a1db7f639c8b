/*
 * tls.c — OpenSSL client connections over memory BIOs (see tls.h).
 *
 * rbio holds ciphertext received and not yet decrypted; wbio holds
 * ciphertext produced and not yet handed to the ring. Memory BIOs grow
 * without limit, so SSL_write never returns a partial write; the bench
 * bounds what it writes per client instead (publisher back-pressure).
 */
#include "tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>

struct tls_ctx {
	SSL_CTX *ssl_ctx;
};

struct tls_conn {
	SSL *ssl;
	BIO *rbio; /* network -> OpenSSL */
	BIO *wbio; /* OpenSSL -> network */
};

static void err_text(char *err, size_t err_len, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];
	ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(err, err_len, "%s: %s", what, e ? buf : "failed");
}

struct tls_ctx *tls_ctx_new(const char *cafile, const char *cert, const char *key, bool insecure,
                            char *err, size_t err_len)
{
	struct tls_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	ctx->ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx->ssl_ctx) {
		err_text(err, err_len, "SSL_CTX_new");
		goto fail;
	}
	SSL_CTX_set_min_proto_version(ctx->ssl_ctx, TLS1_2_VERSION);
	if (insecure) {
		SSL_CTX_set_verify(ctx->ssl_ctx, SSL_VERIFY_NONE, NULL);
	} else {
		SSL_CTX_set_verify(ctx->ssl_ctx, SSL_VERIFY_PEER, NULL);
		int ok = cafile && *cafile
		             ? SSL_CTX_load_verify_locations(ctx->ssl_ctx, cafile, NULL)
		             : SSL_CTX_set_default_verify_paths(ctx->ssl_ctx);
		if (ok != 1) {
			err_text(err, err_len, "CA file");
			goto fail;
		}
	}
	if (cert && *cert && SSL_CTX_use_certificate_chain_file(ctx->ssl_ctx, cert) != 1) {
		err_text(err, err_len, "certificate");
		goto fail;
	}
	if (key && *key && SSL_CTX_use_PrivateKey_file(ctx->ssl_ctx, key, SSL_FILETYPE_PEM) != 1) {
		err_text(err, err_len, "private key");
		goto fail;
	}
	return ctx;
fail:
	tls_ctx_free(ctx);
	return NULL;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
	if (!ctx)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, const char *server_name)
{
	struct tls_conn *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->ssl = SSL_new(ctx->ssl_ctx);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (!t->ssl || !t->rbio || !t->wbio) {
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		SSL_free(t->ssl);
		free(t);
		return NULL;
	}
	SSL_set_bio(t->ssl, t->rbio, t->wbio); /* the SSL owns both BIOs now */
	SSL_set_connect_state(t->ssl);
	if (server_name && *server_name) {
		/* an address is checked against the certificate's IP SANs, a name
		 * against its DNS SANs; SNI carries names only (RFC 6066 §3) */
		X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);
		if (X509_VERIFY_PARAM_set1_ip_asc(param, server_name) != 1) {
			SSL_set_tlsext_host_name(t->ssl, server_name);
			SSL_set1_host(t->ssl, server_name);
		}
	}
	return t;
}

void tls_conn_free(struct tls_conn *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	free(t);
}

static int want_more(struct tls_conn *t, int r)
{
	int e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	ERR_clear_error();
	return -1;
}

int tls_conn_handshake(struct tls_conn *t)
{
	int r = SSL_do_handshake(t->ssl);
	if (r == 1)
		return 1;
	return want_more(t, r);
}

int tls_conn_feed(struct tls_conn *t, const uint8_t *data, size_t len)
{
	return BIO_write(t->rbio, data, (int)len) == (int)len ? 0 : -1;
}

int tls_conn_read(struct tls_conn *t, uint8_t *buf, size_t cap)
{
	int r = SSL_read(t->ssl, buf, (int)cap);
	if (r > 0)
		return r;
	return want_more(t, r);
}

int tls_conn_write(struct tls_conn *t, const uint8_t *data, size_t len)
{
	int r = SSL_write(t->ssl, data, (int)len);
	return r == (int)len ? 0 : -1;
}

size_t tls_conn_pending(struct tls_conn *t)
{
	return BIO_ctrl_pending(t->wbio);
}

size_t tls_conn_take(struct tls_conn *t, uint8_t *buf, size_t cap)
{
	int r = BIO_read(t->wbio, buf, (int)cap);
	return r > 0 ? (size_t)r : 0;
}
