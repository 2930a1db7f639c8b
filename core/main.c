/*
 * main.c — the `starling` command: configuration (embedded defaults, then a
 * file, then STARLING_* variables, then --key=value flags), the broker's
 * start, and the main thread's only job afterwards: waiting for signals.
 *
 *   starling                         run on embedded defaults
 *   starling -c FILE [--key=value]   run with a config file
 *   starling --check-config FILE     load everything a start would, print the config
 *   starling --config-reference      print every key as Markdown
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/passwd.h"
#include "base/config.h"
#include "base/log.h"
#include "cluster.h" /* cluster/ */
#include "loop/worker.h"
#include "ops/ops.h"
#include "persist/persist_cmd.h"
#include "transport/tls.h"

extern char **environ;

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: starling [-c FILE] [--KEY=VALUE ...]\n"
	    "       starling passwd [-c | -D] [-b] [-I ITERATIONS] FILE USER [PASSWORD]\n"
	    "       starling backup DIR | export FILE | import FILE [-c FILE] [--KEY=VALUE ...]\n"
	    "       starling --check-config FILE [--KEY=VALUE ...]\n"
	    "       starling --config-reference | --version | --help\n"
	    "With no arguments it runs on embedded defaults: MQTT on 127.0.0.1:1883 and\n"
	    "[::1]:1883, metrics on 127.0.0.1:9100 (this host only); --listen=0.0.0.0:1883\n"
	    "serves other hosts.\n"
	    "Every key of docs/config.md may be given as --key=value or STARLING_KEY.\n");
}

/* Can this host bind [::1]? Not where IPv6 is off (a container without
 * IPv6: EADDRNOTAVAIL, or no AF_INET6 at all). */
static bool ipv6_loopback_usable(void)
{
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	bool ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* The embedded default listens on both loopback addresses, like
 * mosquitto's "localhost"; on a host without IPv6 it is 127.0.0.1 alone
 * rather than a broker that cannot start with no configuration. An
 * address an operator wrote is never dropped: failing to bind it is an
 * error. */
static void drop_default_ipv6(struct config *cfg)
{
	if (!config_listen_is_default(cfg) || ipv6_loopback_usable())
		return;
	unsigned n = 0;
	for (unsigned i = 0; i < cfg->listen_count; i++)
		if (strcmp(cfg->listen[i].host, "::1") != 0)
			cfg->listen[n++] = cfg->listen[i];
	cfg->listen_count = n;
}

static bool loopback(const char *host)
{
	return !strncmp(host, "127.", 4) || !strcmp(host, "::1") || !strcmp(host, "localhost");
}

/* A listener other hosts can reach that lets anonymous clients in only
 * because nothing said otherwise (auto, no password file): worth a
 * warning, since with no ACL they may read every topic and set retained
 * messages. Saying allow_anonymous = true (or the kind's key) silences it.
 * Writes the warning into buf, or "" when there is none. */
static void anonymous_warning(const struct config *cfg, char *buf, size_t len)
{
	const struct {
		const char *kind;
		const struct config_addr *list;
		unsigned count;
		enum allow_anonymous own;
	} kinds[] = {
	    {"mqtt", cfg->listen, cfg->listen_count, ANON_AUTO},
	    {"mqtts", cfg->tls_listen, cfg->tls_listen_count, cfg->tls_allow_anonymous},
	    {"ws", cfg->ws_listen, cfg->ws_listen_count, cfg->ws_allow_anonymous},
	    {"wss", cfg->wss_listen, cfg->wss_listen_count, cfg->wss_allow_anonymous},
	};
	buf[0] = '\0';
	if (cfg->allow_anonymous != ANON_AUTO)
		return;
	for (unsigned k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		if (kinds[k].own != ANON_AUTO ||
		    !config_anonymous_ok(cfg, (enum config_listener_kind)k))
			continue;
		for (unsigned i = 0; i < kinds[k].count; i++) {
			const struct config_addr *a = &kinds[k].list[i];
			if (loopback(a->host))
				continue;
			snprintf(
			    buf, len,
			    "anonymous clients may connect from other hosts on %s %s%s%s:%u%s: "
			    "set password_file (and acl_file), or allow_anonymous = true if that "
			    "is meant",
			    kinds[k].kind, strchr(a->host, ':') ? "[" : "",
			    a->host[0] ? a->host : "*", strchr(a->host, ':') ? "]" : "", a->port,
			    cfg->acl_file[0] ? "" : " with no ACL");
			return;
		}
	}
}

/* The configuration from every source, in order: defaults, the file, the
 * environment, the flags. 0, or -1 with err filled in. */
static int load_config(struct config *cfg, const char *file, int argc, char **argv, char *err,
                       size_t err_len)
{
	config_defaults(cfg);
	if (file && config_load_file(cfg, file, err, err_len) != 0)
		return -1;
	if (config_load_env(cfg, environ, err, err_len) != 0)
		return -1;
	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--", 2) != 0 || !strchr(argv[i], '='))
			continue;
		char key[128];
		const char *eq = strchr(argv[i], '=');
		size_t len = (size_t)(eq - argv[i] - 2);
		if (len >= sizeof(key))
			len = sizeof(key) - 1;
		memcpy(key, argv[i] + 2, len);
		key[len] = '\0';
		for (char *p = key; *p; p++)
			if (*p == '-')
				*p = '_'; /* --max-packet-size works too */
		if (config_set(cfg, "command line", key, eq + 1, err, err_len) != 0)
			return -1;
	}
	drop_default_ipv6(cfg);
	return config_validate(cfg, err, err_len);
}

/* --check-config: what a start loads besides the configuration, loaded and
 * dropped in broker_start's order, with its messages: the password file
 * and the ACL (auth.c), then, when there is a TLS or wss listener, the
 * certificate, key, CA and cipher keys (tls.c). It binds nothing, so a
 * port in use shows only at start. 0, or -1 with err. */
static int check_files(const struct config *cfg, char *err, size_t err_len)
{
	if (auth_check(cfg, err, err_len) != 0 || cluster_node_check(cfg, err, err_len) != 0)
		return -1;
	if (cfg->tls_listen_count + cfg->wss_listen_count > 0) {
		struct ssl_ctx_st *ctx = tls_ctx_build(cfg, err, err_len);
		if (!ctx)
			return -1;
		tls_ctx_discard(ctx);
	}
	return 0;
}

/* SIGHUP: read every source again. What can change live changes now; for
 * the rest, a line says it waits for a restart. A bad file changes nothing.
 * TLS material, passwords and ACLs are read again every time. The keys that differ are found by
 * printing both configurations: the printer already covers every key of the table. */
/* Keys SIGHUP applies at once; the others wait for a restart. */
static bool live_key(const char *line)
{
	static const char *const live[] = {"log_level ",
	                                   "log_json ",
	                                   "password_file ",
	                                   "acl_file ",
	                                   "allow_anonymous ",
	                                   "auth_failures_per_minute ",
	                                   "tls_cert_file ",
	                                   "tls_key_file ",
	                                   "tls_ca_file ",
	                                   "tls_ciphers ",
	                                   "tls_ciphersuites ",
	                                   "tls_groups ",
	                                   "tls_require_client_cert "};
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
		if (!strncmp(line, live[i], strlen(live[i])))
			return true;
	return false;
}

static void reload(struct broker *br, struct config *running, const char *file, int argc,
                   char **argv)
{
	static struct config next;
	char err[512];
	if (load_config(&next, file, argc, argv, err, sizeof(err)) != 0) {
		LOG_ERROR("SIGHUP: %s; keeping the running configuration", err);
		return;
	}
	/* TLS material, password file and ACL are read again even when their
	 * names did not change: their content is what changes. All or
	 * nothing: the new TLS context is built (and can fail) before the
	 * password file and ACL are swapped, and installed only after. A node
	 * started without TLS listeners has no context to replace; one whose
	 * new configuration drops them (a restart-time change) keeps its. */
	struct ssl_ctx_st *ctx = NULL;
	if (br->tls && next.tls_listen_count > 0 &&
	    !(ctx = tls_ctx_build(&next, err, sizeof(err)))) {
		LOG_ERROR("SIGHUP: %s; keeping the running configuration and TLS context", err);
		return;
	}
	if (auth_reload(br->auth, &next, err, sizeof(err)) != 0) {
		tls_ctx_discard(ctx);
		LOG_ERROR("SIGHUP: %s; keeping the running configuration", err);
		return;
	}
	bool tls_read = ctx != NULL;
	if (ctx)
		tls_install(br->tls, ctx); /* new connections from now on; old ones keep theirs */
	char *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	FILE *fa = open_memstream(&a, &alen), *fb = open_memstream(&b, &blen);
	if (fa)
		config_print(running, fa);
	if (fb)
		config_print(&next, fb);
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	unsigned changed = 0;
	char *sa = NULL, *sb = NULL;
	for (char *la = a ? strtok_r(a, "\n", &sa) : NULL, *lb = b ? strtok_r(b, "\n", &sb) : NULL;
	     la && lb; la = strtok_r(NULL, "\n", &sa), lb = strtok_r(NULL, "\n", &sb)) {
		if (!strcmp(la, lb) || la[0] == '#')
			continue;
		changed++;
		/* TLS keys are live only where there is a context to rebuild. */
		bool live = live_key(lb) && (strncmp(lb, "tls_", 4) != 0 || br->tls);
		LOG_INFO("SIGHUP: %s%s", lb, live ? "" : " (takes effect at restart)");
	}
	free(a);
	free(b);
	log_init(next.log_level, next.log_json);
	/* The running configuration takes the live keys, so the next SIGHUP
	 * compares against what is in force. Workers do not read these. */
	running->log_level = next.log_level;
	running->log_json = next.log_json;
	memcpy(running->password_file, next.password_file, sizeof(next.password_file));
	memcpy(running->acl_file, next.acl_file, sizeof(next.acl_file));
	running->allow_anonymous = next.allow_anonymous;
	running->auth_failures_per_minute = next.auth_failures_per_minute;
	if (tls_read) {
		/* Workers read none of these: the context carries them. */
		memcpy(running->tls_cert_file, next.tls_cert_file, sizeof(next.tls_cert_file));
		memcpy(running->tls_key_file, next.tls_key_file, sizeof(next.tls_key_file));
		memcpy(running->tls_ca_file, next.tls_ca_file, sizeof(next.tls_ca_file));
		memcpy(running->tls_ciphers, next.tls_ciphers, sizeof(next.tls_ciphers));
		memcpy(running->tls_ciphersuites, next.tls_ciphersuites,
		       sizeof(next.tls_ciphersuites));
		memcpy(running->tls_groups, next.tls_groups, sizeof(next.tls_groups));
		running->tls_require_client_cert = next.tls_require_client_cert;
	}
	LOG_INFO("SIGHUP: %s%s%s", changed ? "reloaded" : "configuration unchanged",
	         running->password_file[0] || running->acl_file[0]
	             ? "; password file and ACL read again"
	             : "",
	         tls_read ? "; TLS certificate, key and CA read again" : "");
}

/* Join the workers, but not forever: a worker that does not stop within
 * the grace period (plus a margin) must not keep a pod in Terminating. */
static bool join_within(struct broker *b, uint64_t ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)(ms / 1000);
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	for (unsigned i = 0; i < b->worker_count; i++)
		if (pthread_timedjoin_np(b->workers[i]->thread, NULL, &until) != 0) {
			LOG_ERROR("worker %u did not stop within %llu ms; exiting anyway", i,
			          (unsigned long long)ms);
			return false;
		}
	return true;
}

/* starling backup DIR | export FILE | import FILE, with the node's
 * configuration sources (its data_dir): persist_cmd.h. */
static int persist_main(int argc, char **argv)
{
	static struct config cfg;
	char err[512];
	const char *file = NULL, *arg = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "starling %s: %s needs a file\n", argv[0], argv[i]);
				return 2;
			}
			file = argv[++i];
		} else if (strncmp(argv[i], "--", 2) == 0 && strchr(argv[i], '=')) {
			continue; /* a key: load_config takes it */
		} else if (!arg) {
			arg = argv[i];
		} else {
			fprintf(stderr, "starling %s: unexpected argument \"%s\"\n", argv[0],
			        argv[i]);
			return 2;
		}
	}
	if (!arg) {
		fprintf(stderr, "starling %s: needs a %s\n", argv[0],
		        strcmp(argv[0], "backup") ? "file (- for the standard output or input)"
		                                  : "directory");
		usage(stderr);
		return 2;
	}
	if (load_config(&cfg, file, argc, argv, err, sizeof(err)) != 0) {
		fprintf(stderr, "starling: %s\n", err);
		return 1;
	}
	log_init(LOG_WARN, false);
	return persist_cmd(argv[0], &cfg, arg);
}

int main(int argc, char **argv)
{
	static struct config cfg;
	char err[512];
	const char *file = NULL;
	bool check = false;
	if (argc > 1 && !strcmp(argv[1], "passwd"))
		return passwd_main(argc - 1, argv + 1);
	if (argc > 1 && (!strcmp(argv[1], "backup") || !strcmp(argv[1], "export") ||
	                 !strcmp(argv[1], "import")))
		return persist_main(argc - 1, argv + 1);

	/* First pass: which file, which mode. Flags apply after the file and
	 * the environment, so they win. */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config") ||
		    !strcmp(argv[i], "--check-config")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "starling: %s needs a file\n", argv[i]);
				return 2;
			}
			check |= !strcmp(argv[i], "--check-config");
			file = argv[++i];
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--version")) {
			printf("starling %s\n", STARLING_VERSION);
			return 0;
		} else if (!strcmp(argv[i], "--config-reference")) {
			config_print_reference(stdout);
			return 0;
		} else if (strncmp(argv[i], "--", 2) != 0 || !strchr(argv[i], '=')) {
			fprintf(stderr, "starling: unknown argument \"%s\"\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (load_config(&cfg, file, argc, argv, err, sizeof(err)) != 0 ||
	    (check && check_files(&cfg, err, sizeof(err)) != 0)) {
		fprintf(stderr, "starling: %s\n", err);
		return 1;
	}
	/* What the node exposes, first: an operator (or a scanner of logs)
	 * sees at once whether it listens beyond this host and who may
	 * connect. */
	char exposure[LOG_LINE_MAX - 256];
	config_exposure(&cfg, broker_worker_count(&cfg), exposure, sizeof(exposure));
	char warning[512];
	anonymous_warning(&cfg, warning, sizeof(warning));
	if (check) {
		if (warning[0])
			fprintf(stderr, "starling: warning: %s\n", warning);
		printf("# %s\n", exposure);
		config_print(&cfg, stdout);
		return 0;
	}

	log_init(cfg.log_level, cfg.log_json);
	if (file)
		LOG_INFO("starling %s starting with %s: %s", STARLING_VERSION, file, exposure);
	else
		LOG_INFO("starling %s starting on embedded defaults (no config file given): %s",
		         STARLING_VERSION, exposure);
	if (warning[0])
		LOG_WARN("%s", warning);

	/* Workers inherit this mask: signals come to the main thread only.
	 * sigwait() also makes this work as PID 1 in a container, where
	 * default signal actions do not apply. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* The cluster, when configured: who we are, then the link as the
	 * workers' extension, then membership once the workers listen. */
	struct cluster_identity cid;
	int clustered = cluster_identity_load(&cfg, &cid, err, sizeof(err));
	if (clustered < 0) {
		LOG_ERROR("cannot start: %s", err);
		return 1;
	}
	static struct broker b;
	struct cluster_link *link =
	    clustered ? cluster_link_new(&cfg, &cid, &b.cluster_view) : NULL;
	if (clustered && !link) {
		LOG_ERROR("cannot start: cluster: out of memory");
		return 1;
	}
	if (broker_start(&b, &cfg, link ? cluster_link_ext(link) : NULL, err, sizeof(err)) != 0) {
		LOG_ERROR("cannot start: %s", err);
		return 1;
	}
	struct ops *ops = NULL;
	if (cfg.metrics && !(ops = ops_start(&b, err, sizeof(err)))) {
		LOG_ERROR("cannot start: %s", err);
		broker_stop(&b);
		return 1;
	}
	struct cluster_node *cluster =
	    cluster_node_start(&cfg, &b.cluster_view, &cid, err, sizeof(err));
	explicit_bzero(cid.secret, sizeof(cid.secret)); /* membership and the link have theirs */
	if (!cluster && err[0]) {
		LOG_ERROR("cannot start: %s", err);
		ops_stop(ops);
		broker_stop(&b);
		return 1;
	}
	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			reload(&b, &cfg, file, argc, argv);
			continue;
		}
		LOG_INFO("%s: stopping (grace %u ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
		         cfg.shutdown_grace_ms);
		break;
	}
	/* Not ready from now on: a load balancer stops sending clients here
	 * while the workers tell theirs to go. The cluster hears first that we
	 * leave (peers drop us within a gossip round, never as dead). */
	atomic_store(&b.stopping, true);
	cluster_node_stop(cluster);
	broker_signal_stop(&b);
	if (!join_within(&b, (uint64_t)cfg.shutdown_grace_ms + 5000)) {
		ops_stop(ops);
		return 1;
	}
	ops_stop(ops);
	broker_free(&b);
	cluster_link_free(link);
	LOG_INFO("stopped");
	return 0;
}
