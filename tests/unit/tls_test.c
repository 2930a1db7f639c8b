/*
 * tls_test.c — the client side of TLS (transport/tls.h) as a bridge's
 * operator sees it: a client connection paired in memory with one of our
 * own server connections, each one's ciphertext fed to the other, as the
 * ring would carry it. A client speaks first (its ClientHello exists before
 * anything was fed); it accepts a server whose chain leads to its CA and
 * whose certificate names what was dialled (a host name or an address), and
 * refuses any other with the reason in words ("certificate verify failed:
 * unable to get local issuer certificate (server 127.0.0.1)"), unless
 * verification is off; it presents its certificate to a server that
 * requires one; and a server's refusal of a missing certificate, which
 * TLS 1.3 delivers after the client's side of the handshake finished, is
 * still told apart as a failed handshake. Configuration errors name the
 * option and file. TLS 1.2 and 1.3 both.
 *
 * The certificates are made per test by the openssl command in a temporary
 * directory, as tests/integration/tls_test.py makes them: a CA, another CA
 * nobody trusts, a server certificate for 127.0.0.1 and localhost, and a
 * client certificate (alice) from the CA.
 */
#include <criterion/criterion.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "transport/tls.h"

#define PUMP_ROUNDS 16 /* flights a handshake may take; TLS 1.2 needs 4, 1.3 needs 3 */

static char dir[64];              /* this test's certificates */
static char path_buf[8][256];     /* p()'s results, round robin */
static unsigned path_next;        /* next path_buf */
static struct config *server_cfg; /* for tls_ctx_build */

/* dir/name, valid for the next 7 calls. */
static const char *p(const char *name)
{
	char *b = path_buf[path_next++ % 8];
	snprintf(b, sizeof(path_buf[0]), "%s/%s", dir, name);
	return b;
}

static void sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int rc = system(cmd);
	cr_assert_eq(rc, 0, "%s: exit %d", cmd, rc);
}

#define EC "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

/* A leaf certificate name.pem (key name.key) from ca, with extensions ext. */
static void leaf(const char *name, const char *subject, const char *ca, const char *ext)
{
	sh("cd %s && openssl req " EC " -keyout %s.key -out %s.csr -subj '%s' 2>/dev/null", dir,
	   name, name, subject);
	sh("cd %s && openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -set_serial 0x%x "
	   "-days 10 -extfile %s -out %s.pem 2>/dev/null",
	   dir, name, ca, ca, (unsigned)(name[0] << 8 | name[1]), ext, name);
}

static void pki_make(void)
{
	snprintf(dir, sizeof(dir), "/tmp/starling-tls-test-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	for (int i = 0; i < 2; i++) {
		const char *ca = i ? "other-ca" : "ca";
		sh("cd %s && openssl req -x509 " EC " -keyout %s.key -out %s.pem -days 30 "
		   "-subj '/CN=Starling test %s' 2>/dev/null",
		   dir, ca, ca, ca);
	}
	FILE *f = fopen(p("server.ext"), "w");
	cr_assert_not_null(f);
	fputs("basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n", f);
	fclose(f);
	f = fopen(p("client.ext"), "w");
	cr_assert_not_null(f);
	fputs("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n", f);
	fclose(f);
	leaf("server", "/CN=localhost", "ca", "server.ext");
	leaf("alice", "/O=Starling/CN=alice", "ca", "client.ext");

	server_cfg = calloc(1, sizeof(*server_cfg));
	cr_assert_not_null(server_cfg);
	config_defaults(server_cfg);
	snprintf(server_cfg->tls_cert_file, sizeof(server_cfg->tls_cert_file), "%s",
	         p("server.pem"));
	snprintf(server_cfg->tls_key_file, sizeof(server_cfg->tls_key_file), "%s", p("server.key"));
}

static void pki_remove(void)
{
	if (dir[0])
		sh("rm -rf %s", dir);
	free(server_cfg);
}

TestSuite(tls_client, .init = pki_make, .fini = pki_remove, .timeout = 60);

/* Our server context; client CAs from ca.pem, required when require. TLS
 * 1.2 only when max_version says so (0: up to 1.3). */
static struct ssl_ctx_st *server_ctx(bool require, int max_version)
{
	char err[512];
	snprintf(server_cfg->tls_ca_file, sizeof(server_cfg->tls_ca_file), "%s",
	         require ? p("ca.pem") : "");
	server_cfg->tls_require_client_cert = require;
	struct ssl_ctx_st *ctx = tls_ctx_build(server_cfg, err, sizeof(err));
	cr_assert_not_null(ctx, "%s", err);
	if (max_version)
		SSL_CTX_set_max_proto_version(ctx, max_version);
	return ctx;
}

static struct ssl_ctx_st *client_ctx(const char *ca, const char *cert, bool verify)
{
	char err[512];
	char certfile[256] = "", keyfile[256] = "";
	if (cert) {
		snprintf(certfile, sizeof(certfile), "%s/%s.pem", dir, cert);
		snprintf(keyfile, sizeof(keyfile), "%s/%s.key", dir, cert);
	}
	struct tls_client_opts o = {ca ? p(ca) : "", certfile, keyfile, verify};
	struct ssl_ctx_st *ctx = tls_client_ctx_build(&o, err, sizeof(err));
	cr_assert_not_null(ctx, "%s", err);
	return ctx;
}

/* Move what from has to send into to, as the ring would. */
static void carry(struct tls_conn *from, struct tls_conn *to)
{
	uint8_t buf[65536];
	size_t n;
	while ((n = tls_conn_take(from, buf, sizeof(buf))) > 0)
		cr_assert_eq(tls_conn_feed(to, buf, n), TLS_OK, "feed: %s", tls_conn_error(to));
}

struct pair {
	struct ssl_ctx_st *cctx, *sctx;
	struct tls_conn *c, *s;
	enum tls_result rc, rs; /* the last handshake results */
};

/* Both handshakes, flight by flight, until neither needs more: the client
 * first, with nothing fed, as after a connect. */
static void handshake(struct pair *x)
{
	x->rc = x->rs = TLS_AGAIN;
	for (int i = 0; i < PUMP_ROUNDS && (x->rc == TLS_AGAIN || x->rs == TLS_AGAIN); i++) {
		if (x->rc == TLS_AGAIN)
			x->rc = tls_conn_handshake(x->c);
		carry(x->c, x->s); /* an alert of a failing client, too */
		if (x->rs == TLS_AGAIN)
			x->rs = tls_conn_handshake(x->s);
		carry(x->s, x->c);
		if (x->rc == TLS_ERROR || x->rs == TLS_ERROR)
			break;
	}
	/* One failed: the other reads its alert. */
	if (x->rc == TLS_AGAIN)
		x->rc = tls_conn_handshake(x->c);
	if (x->rs == TLS_AGAIN)
		x->rs = tls_conn_handshake(x->s);
}

static void pair_open(struct pair *x, struct ssl_ctx_st *cctx, struct ssl_ctx_st *sctx,
                      const char *name, bool verify)
{
	x->cctx = cctx;
	x->sctx = sctx;
	x->c = tls_conn_new_client(cctx, name, verify);
	x->s = tls_conn_new(sctx, TLS_IDENTITY_CN);
	cr_assert(x->c && x->s);
	handshake(x);
}

static void pair_close(struct pair *x)
{
	tls_conn_free(x->c);
	tls_conn_free(x->s);
	tls_ctx_discard(x->cctx);
	tls_ctx_discard(x->sctx);
}

/* Plaintext from one side arrives whole at the other. */
static void send_and_read(struct tls_conn *from, struct tls_conn *to, const char *text)
{
	cr_assert_eq(tls_conn_write(from, (const uint8_t *)text, strlen(text)), TLS_OK);
	carry(from, to);
	uint8_t buf[256];
	size_t got = 0;
	int n;
	while ((n = tls_conn_read(to, buf + got, sizeof(buf) - got)) > 0)
		got += (size_t)n;
	cr_assert_eq(n, TLS_AGAIN, "read: %s", tls_conn_error(to));
	cr_assert_eq(got, strlen(text));
	cr_assert_arr_eq(buf, text, got);
}

static void both_established(struct pair *x)
{
	cr_assert_eq(x->rc, TLS_OK, "client: %s", x->rc == TLS_ERROR ? tls_conn_error(x->c) : "");
	cr_assert_eq(x->rs, TLS_OK, "server: %s", x->rs == TLS_ERROR ? tls_conn_error(x->s) : "");
	cr_assert(tls_conn_established(x->c) && tls_conn_established(x->s));
	/* CONNECT one way, CONNACK the other, after the handshake. */
	send_and_read(x->c, x->s, "\x10\x0c\x00\x04MQTT\x05\x02\x00\x3c\x00");
	send_and_read(x->s, x->c, "\x20\x03\x00\x00\x00");
}

static const int versions[] = {TLS1_2_VERSION, 0}; /* 0: up to TLS 1.3 */

Test(tls_client, speaks_first_a_client_hello_without_input)
{
	struct ssl_ctx_st *ctx = client_ctx("ca.pem", NULL, true);
	struct tls_conn *c = tls_conn_new_client(ctx, "127.0.0.1", true);
	cr_assert_not_null(c);
	cr_assert_eq(tls_conn_pending(c), 0);
	cr_assert_eq(tls_conn_handshake(c), TLS_AGAIN);
	uint8_t rec[5];
	cr_assert_gt(tls_conn_pending(c), sizeof(rec));
	cr_assert_eq(tls_conn_take(c, rec, sizeof(rec)), sizeof(rec));
	cr_assert_eq(rec[0], 22, "a handshake record"); /* RFC 8446 5.1 */
	cr_assert_eq(rec[1], 3);
	cr_assert(!tls_conn_established(c));
	/* Nothing may be written before the handshake finished. */
	cr_assert_eq(tls_conn_write(c, (const uint8_t *)"x", 1), TLS_ERROR);
	tls_conn_free(c);
	tls_ctx_discard(ctx);
}

Test(tls_client, trusts_a_server_from_its_ca_by_address_and_by_name)
{
	const char *names[] = {"127.0.0.1", "localhost"};
	for (unsigned v = 0; v < 2; v++) {
		for (unsigned n = 0; n < 2; n++) {
			struct pair x;
			pair_open(&x, client_ctx("ca.pem", NULL, true),
			          server_ctx(false, versions[v]), names[n], true);
			both_established(&x);
			cr_assert(tls_conn_has_cert(x.c), "the server's certificate was verified");
			cr_assert(!tls_conn_has_cert(x.s));
			pair_close(&x);
		}
	}
}

Test(tls_client, refuses_a_server_from_another_ca_saying_why)
{
	for (unsigned v = 0; v < 2; v++) {
		struct pair x;
		pair_open(&x, client_ctx("other-ca.pem", NULL, true),
		          server_ctx(false, versions[v]), "127.0.0.1", true);
		cr_assert_eq(x.rc, TLS_ERROR);
		cr_assert(!tls_conn_established(x.c));
		cr_assert_str_eq(
		    tls_conn_error(x.c),
		    "certificate verify failed: unable to get local issuer certificate "
		    "(server 127.0.0.1)");
		cr_assert_eq(tls_conn_fail_reason(x.c), TLS_FAIL_CERT_UNTRUSTED);
		/* Our alert tells the server too. */
		cr_assert_eq(x.rs, TLS_ERROR);
		cr_assert(strstr(tls_conn_error(x.s), "the client sent an alert"), "%s",
		          tls_conn_error(x.s));
		pair_close(&x);
	}
}

Test(tls_client, refuses_a_certificate_for_another_name_or_address)
{
	static const struct {
		const char *name, *why;
	} cases[] = {
	    {"broker.example.com", "certificate verify failed: hostname mismatch "
	                           "(server broker.example.com)"},
	    {"127.0.0.2", "certificate verify failed: IP address mismatch (server 127.0.0.2)"},
	    {"::1", "certificate verify failed: IP address mismatch (server ::1)"},
	};
	for (unsigned v = 0; v < 2; v++) {
		for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct pair x;
			pair_open(&x, client_ctx("ca.pem", NULL, true),
			          server_ctx(false, versions[v]), cases[i].name, true);
			cr_assert_eq(x.rc, TLS_ERROR, "%s was accepted", cases[i].name);
			cr_assert_str_eq(tls_conn_error(x.c), cases[i].why);
			cr_assert_eq(tls_conn_fail_reason(x.c), TLS_FAIL_CERT_INVALID);
			pair_close(&x);
		}
	}
}

Test(tls_client, without_verification_connects_to_any_server)
{
	/* The system's CAs or another CA: neither knows ours. */
	const char *cas[] = {"other-ca.pem", NULL};
	for (unsigned v = 0; v < 2; v++) {
		for (unsigned i = 0; i < 2; i++) {
			struct pair x;
			pair_open(&x, client_ctx(cas[i], NULL, false),
			          server_ctx(false, versions[v]), "broker.example.com", false);
			both_established(&x);
			cr_assert(!tls_conn_has_cert(x.c), "established, not verified");
			pair_close(&x);
		}
	}
}

Test(tls_client, presents_its_certificate_to_a_server_that_requires_one)
{
	for (unsigned v = 0; v < 2; v++) {
		struct pair x;
		pair_open(&x, client_ctx("ca.pem", "alice", true), server_ctx(true, versions[v]),
		          "localhost", true);
		both_established(&x);
		cr_assert(tls_conn_has_cert(x.s), "the server verified alice");
		size_t len;
		const char *id = tls_conn_identity(x.s, &len);
		cr_assert(id && len == 5 && memcmp(id, "alice", 5) == 0);
		cr_assert(!tls_conn_failed_early(x.c));
		pair_close(&x);
	}
}

/* Without a certificate: TLS 1.2 fails the client's handshake; TLS 1.3
 * finishes it and the server's alert comes with the first read, which must
 * still be told apart as the handshake failing (tls_conn_failed_early). */
Test(tls_client, a_server_requiring_a_certificate_refuses_a_client_without)
{
	for (unsigned v = 0; v < 2; v++) {
		struct pair x;
		pair_open(&x, client_ctx("ca.pem", NULL, true), server_ctx(true, versions[v]),
		          "127.0.0.1", true);
		cr_assert_eq(x.rs, TLS_ERROR);
		cr_assert_str_eq(tls_conn_error(x.s), "no client certificate (one is required)");
		if (x.rc == TLS_OK) {
			cr_assert_eq(versions[v], 0, "only TLS 1.3 finishes the client's side");
			uint8_t buf[64];
			cr_assert_eq(tls_conn_read(x.c, buf, sizeof(buf)), TLS_ERROR);
		}
		cr_assert(strstr(tls_conn_error(x.c), "the server sent an alert"), "%s",
		          tls_conn_error(x.c));
		cr_assert_eq(tls_conn_fail_reason(x.c), TLS_FAIL_PEER_ALERT);
		cr_assert(tls_conn_failed_early(x.c), "no application data came before");
		pair_close(&x);
	}
}

Test(tls_client, an_alert_after_data_is_not_a_failed_handshake)
{
	struct pair x;
	pair_open(&x, client_ctx("ca.pem", NULL, true), server_ctx(false, 0), "127.0.0.1", true);
	both_established(&x);
	/* A record the server cannot decrypt makes it send a fatal alert. */
	uint8_t junk[5 + 32] = {23, 3, 3, 0, 32};
	cr_assert_eq(tls_conn_feed(x.s, junk, sizeof(junk)), TLS_OK);
	uint8_t buf[64];
	cr_assert_eq(tls_conn_read(x.s, buf, sizeof(buf)), TLS_ERROR);
	carry(x.s, x.c);
	cr_assert_eq(tls_conn_read(x.c, buf, sizeof(buf)), TLS_ERROR);
	cr_assert_eq(tls_conn_fail_reason(x.c), TLS_FAIL_PEER_ALERT, "%s", tls_conn_error(x.c));
	cr_assert(!tls_conn_failed_early(x.c), "the CONNACK came before it");
	pair_close(&x);
}

Test(tls_client, configuration_errors_name_the_option_and_file)
{
	char err[512];
	char cafile[300], certfile[300], keyfile[300], other_key[300];
	snprintf(cafile, sizeof(cafile), "%s/ca.pem", dir);
	snprintf(certfile, sizeof(certfile), "%s/alice.pem", dir);
	snprintf(keyfile, sizeof(keyfile), "%s/alice.key", dir);
	snprintf(other_key, sizeof(other_key), "%s/server.key", dir);

	struct tls_client_opts o = {"/nonexistent/ca.pem", "", "", true};
	cr_assert_null(tls_client_ctx_build(&o, err, sizeof(err)));
	cr_assert_str_eq(err, "cafile /nonexistent/ca.pem: cannot open: No such file or directory");

	o = (struct tls_client_opts){keyfile, "", "", true}; /* a key is no CA */
	cr_assert_null(tls_client_ctx_build(&o, err, sizeof(err)));
	cr_assert(strncmp(err, "cafile ", 7) == 0 && strstr(err, keyfile), "%s", err);

	o = (struct tls_client_opts){cafile, certfile, "", true};
	cr_assert_null(tls_client_ctx_build(&o, err, sizeof(err)));
	cr_assert(strncmp(err, "certfile ", 9) == 0 && strstr(err, "needs keyfile"), "%s", err);

	o = (struct tls_client_opts){cafile, certfile, other_key, true};
	cr_assert_null(tls_client_ctx_build(&o, err, sizeof(err)));
	char want[700];
	snprintf(want, sizeof(want), "keyfile %s: does not match the certificate in %s", other_key,
	         certfile);
	cr_assert_str_eq(err, want);

	o = (struct tls_client_opts){cafile, certfile, keyfile, true};
	struct ssl_ctx_st *ctx = tls_client_ctx_build(&o, err, sizeof(err));
	cr_assert_not_null(ctx, "%s", err);
	tls_ctx_discard(ctx);
}
