/*
 * main.c — the `starling` command: configuration (embedded defaults, then a
 * file, then STARLING_* variables, then --key=value flags), the broker's
 * start, and the main thread's only job afterwards: waiting for signals.
 *
 *   starling                         run on embedded defaults
 *   starling -c FILE [--key=value]   run with a config file
 *   starling --check-config FILE     validate and print the effective config
 *   starling --config-reference      print every key as Markdown
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "worker.h"

extern char **environ;

#define STARLING_VERSION "0.1.0"

static void usage(FILE *out)
{
	fprintf(out, "usage: starling [-c FILE] [--KEY=VALUE ...]\n"
	             "       starling --check-config FILE [--KEY=VALUE ...]\n"
	             "       starling --config-reference | --version | --help\n"
	             "With no arguments it runs on embedded defaults (MQTT on 0.0.0.0:1883).\n"
	             "Every key of docs/config.md may be given as --key=value or STARLING_KEY.\n");
}

int main(int argc, char **argv)
{
	static struct config cfg;
	char err[512];
	const char *file = NULL;
	bool check = false;
	config_defaults(&cfg);

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
	if (file && config_load_file(&cfg, file, err, sizeof(err)) != 0) {
		fprintf(stderr, "starling: %s\n", err);
		return 1;
	}
	if (config_load_env(&cfg, environ, err, sizeof(err)) != 0) {
		fprintf(stderr, "starling: %s\n", err);
		return 1;
	}
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
		if (config_set(&cfg, "command line", key, eq + 1, err, sizeof(err)) != 0) {
			fprintf(stderr, "starling: %s\n", err);
			return 1;
		}
	}
	if (config_validate(&cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "starling: %s\n", err);
		return 1;
	}
	if (check) {
		config_print(&cfg, stdout);
		return 0;
	}

	log_init(cfg.log_level, cfg.log_json);
	if (file)
		LOG_INFO("starling %s starting with %s", STARLING_VERSION, file);
	else
		LOG_INFO("starling %s starting on embedded defaults (no config file given)",
		         STARLING_VERSION);

	/* Workers inherit this mask: signals come to the main thread only. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	static struct broker b;
	if (broker_start(&b, &cfg) != 0) {
		LOG_ERROR("startup failed");
		b.start_failed = true;
		return 1;
	}
	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			LOG_INFO("SIGHUP: this version has nothing that reloads");
			continue;
		}
		LOG_INFO("%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		break;
	}
	broker_stop(&b);
	broker_free(&b);
	LOG_INFO("stopped");
	return 0;
}
