/*
 * tls_dial_test.c — a connection dialled with TLS through the transport
 * (transport_dial_tls, conn.h) on a real ring, to a server on 127.0.0.1 run
 * by OpenSSL on a blocking socket in a thread: what a bridge relies on.
 * The layer above writes its first packet when opened() runs, before the
 * handshake: the server must read exactly those bytes, decrypted, after
 * it, and the answer must reach input(). A server whose certificate the
 * client refuses, and a TLS 1.3 server refusing a client without a
 * certificate (which the client learns only with its first read), must
 * reach lost() as CLOSE_TLS_HANDSHAKE, with a warning in the log that says
 * why. The node has no TLS listener, so the transport's TLS table is made
 * by the dial.
 *
 * The certificates are made by the openssl command, as in tls_test.c.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/config.h"
#include "io/op.h"
#include "io/ring.h"
#include "transport/conn.h"
#include "transport/tls.h"

#define RUN_MS 10000 /* how long a scenario may take */

static const char connect_pkt[] = "\x10\x0c\x00\x04MQTT\x05\x02\x00\x3c\x00"; /* 14 bytes */
static const char connack_pkt[] = "\x20\x03\x00\x00\x00";                     /* 5 bytes */
#define CONNECT_LEN (sizeof(connect_pkt) - 1)
#define CONNACK_LEN (sizeof(connack_pkt) - 1)

static char dir[64]; /* this test's certificates and log */

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

static void pki_make(void)
{
	snprintf(dir, sizeof(dir), "/tmp/starling-tls-dial-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	sh("cd %s && for ca in ca other-ca; do openssl req -x509 " EC " -keyout $ca.key "
	   "-out $ca.pem -days 30 -subj \"/CN=Starling test $ca\" 2>/dev/null || exit 1; done",
	   dir);
	sh("cd %s && printf 'basicConstraints=CA:FALSE\\nsubjectAltName=IP:127.0.0.1\\n' > "
	   "server.ext && openssl req " EC " -keyout server.key -out server.csr "
	   "-subj /CN=localhost 2>/dev/null && openssl x509 -req -in server.csr -CA ca.pem "
	   "-CAkey ca.key -set_serial 0x1001 -days 10 -extfile server.ext -out server.pem "
	   "2>/dev/null",
	   dir);
}

static void pki_remove(void)
{
	if (dir[0])
		sh("rm -rf %s", dir);
}

TestSuite(tls_dial, .init = pki_make, .fini = pki_remove, .timeout = 60);

/* ---- the server: OpenSSL on a blocking socket ------------------------------ */

struct server {
	int lfd;
	uint16_t port;
	SSL_CTX *ctx;
	pthread_t thread;
	bool handshake_ok;
	bool saw_close_notify; /* the client's close_notify after our answer */
	char got[64];          /* plaintext received before answering */
	size_t got_len;
	char err[256]; /* why SSL_accept failed */
};

static void *server_main(void *arg)
{
	struct server *s = arg;
	int fd = accept(s->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	SSL *ssl = SSL_new(s->ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_accept(ssl) != 1) {
		unsigned long e = ERR_peek_error();
		snprintf(s->err, sizeof(s->err), "%s", e ? ERR_reason_error_string(e) : "?");
		goto out;
	}
	s->handshake_ok = true;
	while (s->got_len < CONNECT_LEN) {
		int n = SSL_read(ssl, s->got + s->got_len, (int)(sizeof(s->got) - s->got_len));
		if (n <= 0)
			goto out;
		s->got_len += (size_t)n;
	}
	SSL_write(ssl, connack_pkt, (int)CONNACK_LEN);
	char b[16];
	s->saw_close_notify =
	    SSL_read(ssl, b, sizeof(b)) == 0 && SSL_get_error(ssl, 0) == SSL_ERROR_ZERO_RETURN;
out:
	SSL_free(ssl);
	close(fd); /* the client's linger ends with our end of stream */
	return NULL;
}

/* A server with our own server context: certificate server.pem; with
 * require, client certificates from ca.pem are required. */
static void server_start(struct server *s, bool require, int max_version)
{
	memset(s, 0, sizeof(*s));
	struct config *cfg = calloc(1, sizeof(*cfg));
	cr_assert_not_null(cfg);
	config_defaults(cfg);
	snprintf(cfg->tls_cert_file, sizeof(cfg->tls_cert_file), "%s/server.pem", dir);
	snprintf(cfg->tls_key_file, sizeof(cfg->tls_key_file), "%s/server.key", dir);
	if (require)
		snprintf(cfg->tls_ca_file, sizeof(cfg->tls_ca_file), "%s/ca.pem", dir);
	cfg->tls_require_client_cert = require;
	char err[512];
	s->ctx = tls_ctx_build(cfg, err, sizeof(err));
	free(cfg);
	cr_assert_not_null(s->ctx, "%s", err);
	if (max_version)
		SSL_CTX_set_max_proto_version(s->ctx, max_version);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(s->lfd, 4), 0);
	cr_assert_eq(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
	s->port = ntohs(a.sin_port);
	cr_assert_eq(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_join(struct server *s)
{
	pthread_join(s->thread, NULL);
	close(s->lfd);
	tls_ctx_discard(s->ctx);
}

/* ---- the layer above ------------------------------------------------------- */

static struct {
	struct transport *tp;
	bool opened;
	bool lost;
	uint8_t reason;      /* c->close_reason at lost() */
	char tls_error[256]; /* tls_conn_error at lost() */
	uint8_t got[64];     /* plaintext from input() */
	size_t got_len;
	unsigned reaped;
} up;

static void up_opened(void *ctx, struct conn *c)
{
	(void)ctx;
	up.opened = true;
	/* The CONNECT goes in at once, before the handshake finished. */
	uint8_t *p = conn_out_reserve(c, CONNECT_LEN, 1 << 20);
	cr_assert_not_null(p);
	memcpy(p, connect_pkt, CONNECT_LEN);
	conn_out_commit(up.tp, c, CONNECT_LEN);
}

static void up_input(void *ctx, struct conn *c, const uint8_t *data, uint32_t len)
{
	(void)ctx;
	(void)c;
	cr_assert_leq(up.got_len + len, sizeof(up.got));
	memcpy(up.got + up.got_len, data, len);
	up.got_len += len;
}

static void up_lost(void *ctx, struct conn *c)
{
	(void)ctx;
	up.lost = true;
	up.reason = c->close_reason;
	struct tls_conn *t = conn_tls(up.tp, c);
	snprintf(up.tls_error, sizeof(up.tls_error), "%s", t ? tls_conn_error(t) : "");
	conn_close(up.tp, c);
}

static void up_reaped(void *ctx, struct conn *c)
{
	(void)ctx;
	(void)c;
	up.reaped++;
}

/* ---- the worker ------------------------------------------------------------ */

struct node {
	struct config cfg;
	struct transport_node tn;
	struct worker_stats st;
	struct transport tp;
	struct ring ring;
	uint64_t now_ms;
};

static struct node *node_start(void)
{
	struct node *n = calloc(1, sizeof(*n));
	cr_assert_not_null(n);
	config_defaults(&n->cfg);
	cr_assert_eq(n->cfg.tls_listen_count + n->cfg.wss_listen_count, 0);
	struct listener *ln = &n->tn.listeners[0];
	ln->kind = LISTENER_DIAL;
	snprintf(ln->name, sizeof(ln->name), "bridge out");
	n->tn.listener_count = 1;
	n->now_ms = clock_now_ms();
	struct transport_ops ops = {
	    .conn_size = sizeof(struct conn),
	    .opened = up_opened,
	    .input = up_input,
	    .lost = up_lost,
	    .reaped = up_reaped,
	};
	cr_assert_eq(transport_init(&n->tp, 0, &n->cfg, &n->tn, &n->st, &n->now_ms, &ops), 0);
	cr_assert(!n->tp.has_tls, "no TLS listener: no table before a TLS dial");
	cr_assert_eq(ring_init(&n->ring, 0, 16, 4096), 0);
	transport_start(&n->tp, &n->ring);
	memset(&up, 0, sizeof(up));
	up.tp = &n->tp;
	return n;
}

static void node_stop(struct node *n)
{
	transport_fini(&n->tp);
	ring_exit(&n->ring);
	free(n);
}

/* Loop turns, as the worker runs them, until done() or RUN_MS. */
static void run(struct node *n, bool (*done)(struct node *))
{
	struct completion cq[64];
	uint64_t end = clock_now_ms() + RUN_MS;
	while (!done(n)) {
		cr_assert_lt(clock_now_ms(), end, "timed out");
		n->now_ms = clock_now_ms();
		transport_flush_all(&n->tp);
		cr_assert_eq(ring_submit_wait(&n->ring, 50), 0);
		unsigned k = ring_reap(&n->ring, cq, 64);
		for (unsigned i = 0; i < k; i++) {
			switch (op_kind(cq[i].ud)) {
			case OP_CONNECT:
				transport_dial_done(&n->tp, &cq[i]);
				break;
			case OP_RECV:
				transport_recv_done(&n->tp, &cq[i]);
				break;
			case OP_SEND:
				transport_send_done(&n->tp, &cq[i]);
				break;
			default:
				break;
			}
		}
		transport_rearm(&n->tp);
		transport_reap(&n->tp, 64, 0, 0);
	}
}

static bool answered(struct node *n)
{
	(void)n;
	return up.got_len >= CONNACK_LEN || up.lost;
}

static bool lost(struct node *n)
{
	(void)n;
	return up.lost;
}

static bool gone(struct node *n)
{
	return n->tp.conn_live == 0;
}

static struct conn *dial(struct node *n, struct server *s, const char *ca, bool verify)
{
	char cafile[128];
	snprintf(cafile, sizeof(cafile), "%s/%s", dir, ca);
	struct tls_client_opts o = {cafile, "", "", verify};
	char err[512];
	struct ssl_ctx_st *ctx = tls_client_ctx_build(&o, err, sizeof(err));
	cr_assert_not_null(ctx, "%s", err);
	struct tls_conn *t = tls_conn_new_client(ctx, "127.0.0.1", verify);
	tls_ctx_discard(ctx); /* the connection holds its own reference */
	cr_assert_not_null(t);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons(s->port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct conn *c = transport_dial_tls(&n->tp, 0, &a, sizeof(a), t);
	cr_assert_not_null(c);
	cr_assert(n->tp.has_tls && conn_tls(&n->tp, c) == t);
	return c;
}

/* stderr into dir/log while the scenario runs; its text afterwards. */
static int log_capture(void)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/log", dir);
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	int saved = dup(2);
	dup2(fd, 2);
	close(fd);
	return saved;
}

static void log_release(int saved, char *buf, size_t cap)
{
	dup2(saved, 2);
	close(saved);
	char path[128];
	snprintf(path, sizeof(path), "%s/log", dir);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	size_t n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
}

Test(tls_dial, the_first_packet_waits_for_the_handshake_and_the_answer_comes_back)
{
	int versions[] = {TLS1_2_VERSION, 0};
	for (unsigned v = 0; v < 2; v++) {
		struct server s;
		server_start(&s, false, versions[v]);
		struct node *n = node_start();
		struct conn *c = dial(n, &s, "ca.pem", true);
		run(n, answered);
		cr_assert(!up.lost, "lost: reason %u, %s", up.reason, up.tls_error);
		cr_assert(up.opened);
		cr_assert_eq(up.got_len, CONNACK_LEN);
		cr_assert_arr_eq(up.got, connack_pkt, CONNACK_LEN);
		cr_assert(conn_tls(&n->tp, c) && !conn_tls_handshaking(&n->tp, c));
		/* Our close: close_notify, then the server ends and we reap. */
		conn_close(&n->tp, c);
		run(n, gone);
		server_join(&s);
		cr_assert(s.handshake_ok, "%s", s.err);
		cr_assert_eq(s.got_len, CONNECT_LEN, "the CONNECT arrived once, whole");
		cr_assert_arr_eq(s.got, connect_pkt, CONNECT_LEN);
		cr_assert(s.saw_close_notify);
		cr_assert_eq(up.reaped, 1);
		cr_assert_eq(n->st.tls_handshakes, 0, "the metric counts our listeners only");
		node_stop(n);
	}
}

Test(tls_dial, a_server_from_another_ca_is_refused_and_the_log_says_why)
{
	struct server s;
	server_start(&s, false, 0);
	struct node *n = node_start();
	int saved = log_capture();
	dial(n, &s, "other-ca.pem", true);
	run(n, lost);
	run(n, gone);
	char log[4096];
	log_release(saved, log, sizeof(log));
	server_join(&s);
	cr_assert_eq(up.reason, CLOSE_TLS_HANDSHAKE);
	cr_assert_str_eq(up.tls_error, "certificate verify failed: unable to get local issuer "
	                               "certificate (server 127.0.0.1)");
	cr_assert(strstr(log, "TLS handshake failed with 127.0.0.1:") &&
	              strstr(log, "on bridge out: certificate verify failed: unable to get local "
	                          "issuer certificate (server 127.0.0.1)"),
	          "log: %s", log);
	cr_assert_eq(up.got_len, 0);
	cr_assert(!s.handshake_ok);
	for (unsigned f = 0; f < TLS_FAIL_COUNT; f++)
		cr_assert_eq(n->st.tls_failures[f], 0, "the metric counts our listeners only");
	node_stop(n);
}

Test(tls_dial, without_verification_the_same_server_is_served)
{
	struct server s;
	server_start(&s, false, 0);
	struct node *n = node_start();
	struct conn *c = dial(n, &s, "other-ca.pem", false);
	run(n, answered);
	cr_assert(!up.lost, "%s", up.tls_error);
	cr_assert_arr_eq(up.got, connack_pkt, CONNACK_LEN);
	conn_close(&n->tp, c);
	run(n, gone);
	server_join(&s);
	node_stop(n);
}

/* TLS 1.3: the client's side finished before the server checked for a
 * certificate; the refusal arrives as an alert at the first read. */
Test(tls_dial, a_server_requiring_a_certificate_fails_the_handshake)
{
	struct server s;
	server_start(&s, true, 0);
	struct node *n = node_start();
	int saved = log_capture();
	dial(n, &s, "ca.pem", true);
	run(n, lost);
	run(n, gone);
	char log[4096];
	log_release(saved, log, sizeof(log));
	server_join(&s);
	cr_assert(!s.handshake_ok);
	cr_assert_eq(up.reason, CLOSE_TLS_HANDSHAKE, "reason %u: %s", up.reason, up.tls_error);
	cr_assert(strstr(up.tls_error, "the server sent an alert"), "%s", up.tls_error);
	cr_assert(strstr(log, "TLS handshake failed with") && strstr(log, up.tls_error), "log: %s",
	          log);
	node_stop(n);
}
