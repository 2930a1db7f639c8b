/*
 * config_bridge_test.c — a bridge's keys (config_bridge.c): bridge.NAME.KEY
 * from a file, the environment and flags, defaults per bridge, topic rules
 * read as mosquitto reads them (with the '#' of a file line kept), exact
 * one-line errors, the cross-key checks, and print → load giving the same
 * bridges back.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"

static void set_ok(struct config *c, const char *key, const char *value)
{
	char err[512] = "";
	cr_assert_eq(config_set(c, "command line", key, value, err, sizeof(err)), 0, "%s", err);
}

/* key = value fails with an error holding every one of want (NULL-ended). */
static void set_fails(struct config *c, const char *key, const char *value, const char *want)
{
	char err[512] = "";
	cr_assert_neq(config_set(c, "test.conf:3", key, value, err, sizeof(err)), 0,
	              "%s = %s accepted", key, value);
	cr_assert(strstr(err, "test.conf:3: ") == err, "%s", err);
	cr_assert(strstr(err, want), "%s = %s: \"%s\" has no \"%s\"", key, value, err, want);
}

static const char *write_file(const char *text)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/starling-bridge-test-XXXXXX");
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

Test(config_bridge, a_bridge_starts_with_its_defaults)
{
	struct config c;
	config_defaults(&c);
	cr_assert_eq(c.bridge_count, 0, "no bridge unless one is named");
	cr_assert_null(config_bridge_find(&c, "cloud"));
	set_ok(&c, "bridge.cloud.address", "cloud.example:8883");
	cr_assert_eq(c.bridge_count, 1);
	const struct config_bridge *b = config_bridge_find(&c, "cloud");
	cr_assert_not_null(b);
	cr_assert_str_eq(b->name, "cloud");
	cr_assert_str_eq(b->address, "cloud.example:8883");
	cr_assert_eq(b->version, BRIDGE_V5);
	cr_assert_not(b->clean_start, "a persistent remote session by default");
	cr_assert_eq(b->session_expiry_s, 86400);
	cr_assert_not(b->tls);
	cr_assert(b->verify, "TLS verifies unless told not to");
	cr_assert_eq(b->keepalive_s, 60);
	cr_assert_eq(b->inflight_max, 1024);
	cr_assert_eq(b->queue_messages_max, 100000);
	cr_assert_eq(b->queue_bytes_max, 67108864);
	cr_assert_eq(b->queue_overflow, QUEUE_DROP_OLDEST);
	cr_assert_eq(b->reconnect_min_ms, 250);
	cr_assert_eq(b->reconnect_max_ms, 1000);
	cr_assert(b->try_private);
	cr_assert_eq(b->topic_count, 0);

	/* A second bridge is a second set, the first keeps its values. */
	set_ok(&c, "bridge.other_2.version", "3.1.1");
	set_ok(&c, "bridge.cloud.keepalive_s", "30");
	cr_assert_eq(c.bridge_count, 2);
	cr_assert_eq(config_bridge_find(&c, "other_2")->version, BRIDGE_V311);
	cr_assert_eq(config_bridge_find(&c, "other_2")->keepalive_s, 60);
	cr_assert_eq(config_bridge_find(&c, "cloud")->keepalive_s, 30);
	cr_assert_eq(config_bridge_find(&c, "cloud")->version, BRIDGE_V5);
}

Test(config_bridge, topic_rules_read_as_mosquitto_reads_them)
{
	struct config c;
	config_defaults(&c);
	set_ok(&c, "bridge.cloud.topic", "sensors/# out 1 site1/ edge/");
	set_ok(&c, "bridge.cloud.topic", "#");
	set_ok(&c, "bridge.cloud.topic", "cmd/+ in");
	set_ok(&c, "bridge.cloud.topic", "\"\" both 2 local/one \"remote/two words\"");
	const struct config_bridge *b = config_bridge_find(&c, "cloud");
	cr_assert_eq(b->topic_count, 4, "the key repeats: every rule is kept");
	const struct config_bridge_topic *t = b->topics;
	cr_assert_str_eq(t[0].pattern, "sensors/#");
	cr_assert_eq(t[0].dir, BRIDGE_OUT);
	cr_assert_eq(t[0].qos, 1);
	cr_assert_str_eq(t[0].local_prefix, "site1/");
	cr_assert_str_eq(t[0].remote_prefix, "edge/");
	cr_assert_str_eq(t[1].pattern, "#");
	cr_assert_eq(t[1].dir, BRIDGE_OUT, "out unless said");
	cr_assert_eq(t[1].qos, 0, "QoS 0 unless said");
	cr_assert_str_eq(t[1].local_prefix, "");
	cr_assert_eq(t[2].dir, BRIDGE_IN);
	cr_assert_str_eq(t[3].pattern, "");
	cr_assert_eq(t[3].dir, BRIDGE_BOTH);
	cr_assert_eq(t[3].qos, 2);
	cr_assert_str_eq(t[3].local_prefix, "local/one");
	cr_assert_str_eq(t[3].remote_prefix, "remote/two words");

	/* Several rules in one value (the environment's way): ';' or a new
	 * line between them, all or none. */
	set_ok(&c, "bridge.env.topic", "a/# out 1; b/# in 2\nc both");
	const struct config_bridge *e = config_bridge_find(&c, "env");
	cr_assert_eq(e->topic_count, 3);
	cr_assert_str_eq(e->topics[1].pattern, "b/#");
	cr_assert_eq(e->topics[1].dir, BRIDGE_IN);
	cr_assert_str_eq(e->topics[2].pattern, "c");
	set_fails(&c, "bridge.env.topic", "d out 1; e sideways", "\"sideways\" is not a direction");
	cr_assert_eq(e->topic_count, 3, "a value with a bad rule adds none of its rules");
}

Test(config_bridge, bad_rules_and_keys_say_what_is_wrong)
{
	struct config c;
	config_defaults(&c);
	static const char *const bad[][3] = {
	    {"bridge.cloud.topic", "a/# sideways", "\"sideways\" is not a direction"},
	    {"bridge.cloud.topic", "a/# out 3", "\"3\" is not a QoS"},
	    {"bridge.cloud.topic", "a/# out one", "\"one\" is not a QoS"},
	    {"bridge.cloud.topic", "a/# out 1 site/", "needs a remote prefix"},
	    {"bridge.cloud.topic", "a/# out 1 a/ b/ c", "more than 5 tokens"},
	    {"bridge.cloud.topic", "a/#/b out 1", "is not a valid topic filter"},
	    {"bridge.cloud.topic", "a/b+ out 1", "is not a valid topic filter"},
	    {"bridge.cloud.topic", "a out 1 +/ b/", "local prefix \"+/\" has a wildcard"},
	    {"bridge.cloud.topic", "a out 1 x/ #/", "remote prefix \"#/\" has a wildcard"},
	    {"bridge.cloud.topic", "\"\" out 1", "an empty pattern needs a local prefix"},
	    {"bridge.cloud.topic", "$share/g/a out 1", "is a shared subscription"},
	    {"bridge.cloud.topic", "\"a out 1", "unterminated quoted token"},
	    {"bridge.cloud.topic", "\"a\"b out 1", "right after a closing quote"},
	    {"bridge.cloud.topic", " ; ", "no rule"},
	    {"bridge.cloud.tpoic", "a", "did you mean \"bridge.cloud.topic\""},
	    {"bridge.cloud.adress", "a:1", "did you mean \"bridge.cloud.address\""},
	    {"bridge.cloud.nonsense_key", "1", "unknown key \"bridge.cloud.nonsense_key\""},
	    {"bridge.cloud", "a:1", "bridge.NAME.KEY"},
	    {"bridge..address", "a:1", "bridge.NAME.KEY"},
	    {"bridge.Cloud.address", "a:1", "lower-case letters, digits or '_'"},
	    {"bridge.my-cloud.address", "a:1", "lower-case letters, digits or '_'"},
	    {"bridge.cloud.address", "nowhere", "is not host:port"},
	    {"bridge.cloud.version", "4", "is not one of 5.0, 3.1.1"},
	    {"bridge.cloud.keepalive_s", "1", "below the minimum 5"},
	    {"bridge.cloud.queue_bytes_max", "64k", "unit suffixes are not accepted"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		set_fails(&c, bad[i][0], bad[i][1], bad[i][2]);
	/* The full error of one: source, key, reason. */
	char err[512];
	cr_assert_neq(
	    config_set(&c, "edge.conf:9", "bridge.cloud.topic", "a/# out 7", err, sizeof(err)), 0);
	cr_assert_str_eq(err, "edge.conf:9: bridge.cloud.topic: \"7\" is not a QoS (0, 1 or 2)");

	set_ok(&c, "bridge.cloud.topic", "a/# out 1");
	set_fails(&c, "bridge.cloud.topic", "a/# out 2", "is given twice");
	set_ok(&c, "bridge.cloud.topic", "a/# in 2"); /* another direction is another rule */

	char rules[8192] = "";
	for (int i = 0; i < CONFIG_BRIDGE_TOPICS_MAX + 1; i++)
		snprintf(rules + strlen(rules), sizeof(rules) - strlen(rules), "t%d;", i);
	set_fails(&c, "bridge.many.topic", rules, "more than 32 topic rules");

	for (int i = 0; i < CONFIG_BRIDGES_MAX; i++) {
		char key[64];
		snprintf(key, sizeof(key), "bridge.b%d.keepalive_s", i);
		if (c.bridge_count < CONFIG_BRIDGES_MAX)
			set_ok(&c, key, "10");
	}
	set_fails(&c, "bridge.one_too_many.keepalive_s", "10", "more than 8 bridges");
}

/* A minimal valid bridge, then one key that breaks a cross-key rule. */
static void validate_fails(const char *key, const char *value, const char *want)
{
	struct config c;
	config_defaults(&c);
	set_ok(&c, "bridge.cloud.address", "127.0.0.1:1884");
	set_ok(&c, "bridge.cloud.topic", "# out 1");
	char err[512] = "";
	cr_assert_eq(config_validate(&c, err, sizeof(err)), 0, "%s", err);
	if (key)
		set_ok(&c, key, value);
	cr_assert_neq(config_validate(&c, err, sizeof(err)), 0, "%s = %s passed", key, value);
	cr_assert(strstr(err, want), "%s = %s: \"%s\" has no \"%s\"", key, value, err, want);
}

Test(config_bridge, cross_key_checks)
{
	validate_fails("bridge.cloud.cafile", "/etc/ssl/certs/ca-certificates.crt",
	               "bridge.cloud.tls: is false, but bridge.cloud.cafile is set");
	validate_fails("bridge.cloud.sni", "cloud.example", "bridge.cloud.sni is set");
	validate_fails("bridge.cloud.reconnect_min_ms", "5000",
	               "bridge.cloud.reconnect_min_ms: 5000 is above");
	validate_fails("bridge.empty.keepalive_s", "10", "bridge.empty.address: a bridge needs");
	validate_fails("bridge.empty.address", "a:1",
	               "bridge.empty.topic: a bridge needs at least");

	struct config c;
	config_defaults(&c);
	char err[512] = "";
	set_ok(&c, "bridge.cloud.address", "127.0.0.1:1884");
	set_ok(&c, "bridge.cloud.topic", "# out 1");
	set_ok(&c, "bridge.cloud.tls", "true");
	set_ok(&c, "bridge.cloud.certfile", "/c.pem");
	cr_assert_neq(config_validate(&c, err, sizeof(err)), 0);
	cr_assert_str_eq(err, "bridge.cloud.certfile: needs bridge.cloud.keyfile too");
	set_ok(&c, "bridge.cloud.keyfile", "/k.pem");
	cr_assert_eq(config_validate(&c, err, sizeof(err)), 0, "%s", err);
	set_ok(&c, "bridge.cloud.version", "3.1.1");
	set_ok(&c, "bridge.cloud.password", "secret");
	cr_assert_neq(config_validate(&c, err, sizeof(err)), 0);
	cr_assert(strstr(err, "3.1.1 needs bridge.cloud.username"), "%s", err);
}

Test(config_bridge, a_file_line_keeps_its_hash_and_repeats_only_topic)
{
	const char *path = write_file("# an edge gateway\n"
	                              "bridge.cloud.address = 127.0.0.1:1884, 127.0.0.2:1884\n"
	                              "bridge.cloud.topic = # out 1\n"
	                              "bridge.cloud.topic = sensors/# in 2 site1/ edge/\n"
	                              "bridge.cloud.keepalive_s = 20 # a comment still\n");
	struct config c;
	config_defaults(&c);
	char err[512] = "";
	cr_assert_eq(config_load_file(&c, path, err, sizeof(err)), 0, "%s", err);
	const struct config_bridge *b = config_bridge_find(&c, "cloud");
	cr_assert_not_null(b);
	cr_assert_str_eq(b->address, "127.0.0.1:1884,127.0.0.2:1884");
	cr_assert_eq(b->topic_count, 2);
	cr_assert_str_eq(b->topics[0].pattern, "#", "'#' is the wildcard, not a comment");
	cr_assert_eq(b->topics[0].qos, 1);
	cr_assert_str_eq(b->topics[1].pattern, "sensors/#");
	cr_assert_eq(b->keepalive_s, 20, "other keys keep their comments");
	unlink(path);

	path = write_file("bridge.cloud.address = 127.0.0.1:1884\n"
	                  "bridge.cloud.topic = a out\n"
	                  "bridge.cloud.address = 127.0.0.1:1885\n");
	config_defaults(&c);
	cr_assert_neq(config_load_file(&c, path, err, sizeof(err)), 0);
	char want[256];
	snprintf(want, sizeof(want), "%s:3: bridge.cloud.address: already set on line 1", path);
	cr_assert_str_eq(err, want);
	unlink(path);
}

Test(config_bridge, the_environment_names_bridges_in_upper_case)
{
	struct config c;
	config_defaults(&c);
	char *env[] = {"STARLING_BRIDGE_MY_CLOUD_ADDRESS=127.0.0.1:1884",
	               "STARLING_BRIDGE_MY_CLOUD_CLIENT_ID=edge-7",
	               "STARLING_BRIDGE_MY_CLOUD_TOPIC=a/# out 1;b/# in 2",
	               "STARLING_BRIDGE_MY_CLOUD_SESSION_EXPIRY_S=60", NULL};
	char err[512] = "";
	cr_assert_eq(config_load_env(&c, env, err, sizeof(err)), 0, "%s", err);
	const struct config_bridge *b = config_bridge_find(&c, "my_cloud");
	cr_assert_not_null(b, "names may hold '_': the longest key ends the variable");
	cr_assert_str_eq(b->address, "127.0.0.1:1884");
	cr_assert_str_eq(b->client_id, "edge-7");
	cr_assert_eq(b->session_expiry_s, 60);
	cr_assert_eq(b->topic_count, 2);

	char *bad[] = {"STARLING_BRIDGE_MY_CLOUD_KEEPALIVE=5", NULL};
	cr_assert_neq(config_load_env(&c, bad, err, sizeof(err)), 0);
	cr_assert(strstr(err, "unknown variable STARLING_BRIDGE_MY_CLOUD_KEEPALIVE"), "%s", err);
	char *bad_value[] = {"STARLING_BRIDGE_X_QUEUE_OVERFLOW=drop_all", NULL};
	cr_assert_neq(config_load_env(&c, bad_value, err, sizeof(err)), 0);
	cr_assert(strstr(err, "environment STARLING_BRIDGE_X_QUEUE_OVERFLOW: "
	                      "bridge.x.queue_overflow: \"drop_all\" is not one of"),
	          "%s", err);
}

static char *print_to_string(const struct config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cr_assert_not_null(f);
	config_print(c, f);
	fclose(f);
	return buf;
}

Test(config_bridge, print_then_load_gives_the_same_bridges)
{
	struct config c;
	config_defaults(&c);
	set_ok(&c, "bridge.cloud.address", "cloud.example:8883");
	set_ok(&c, "bridge.cloud.tls", "true");
	set_ok(&c, "bridge.cloud.password", "p\"w #1");
	set_ok(&c, "bridge.cloud.topic", "sensors/# out 1 site1/ edge/");
	set_ok(&c, "bridge.cloud.topic", "\"\" both 2 \"local;one\" \"re\\\"mote two\"");
	set_ok(&c, "bridge.second.address", "127.0.0.1:1");
	set_ok(&c, "bridge.second.topic", "#");
	char *text = print_to_string(&c);
	cr_assert(strstr(text, "\nbridge.cloud.address = \"cloud.example:8883\"\n"), "%s", text);
	cr_assert(strstr(text, "\nbridge.second.topic = \"\\\"#\\\" out 0\"\n"), "%s", text);

	FILE *f = fopen("/tmp/starling-bridge-print.conf", "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	struct config back;
	config_defaults(&back);
	char err[512] = "";
	cr_assert_eq(config_load_file(&back, "/tmp/starling-bridge-print.conf", err, sizeof(err)),
	             0, "%s\n%s", err, text);
	unlink("/tmp/starling-bridge-print.conf");
	cr_assert_eq(back.bridge_count, 2);
	for (unsigned i = 0; i < 2; i++)
		cr_assert_eq(memcmp(&back.bridges[i], &c.bridges[i], sizeof(c.bridges[i])), 0,
		             "bridge %s reads back as it was printed:\n%s", c.bridges[i].name,
		             text);
	free(text);
}

Test(config_bridge, the_reference_documents_every_bridge_key)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	config_print_reference(f);
	fclose(f);
	static const char *const keys[] = {
	    "address",          "version",        "client_id",        "clean_start",
	    "session_expiry_s", "username",       "password",         "tls",
	    "cafile",           "certfile",       "keyfile",          "sni",
	    "verify",           "keepalive_s",    "inflight_max",     "queue_messages_max",
	    "queue_bytes_max",  "queue_overflow", "reconnect_min_ms", "reconnect_max_ms",
	    "try_private",      "topic"};
	size_t rows = 0;
	for (const char *p = buf; (p = strstr(p, "\n| `bridge.NAME.")) != NULL; p++)
		rows++;
	cr_assert_eq(rows, sizeof(keys) / sizeof(keys[0]), "one row per bridge key");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char want[64];
		snprintf(want, sizeof(want), "\n| `bridge.NAME.%s` | ", keys[i]);
		cr_assert_not_null(strstr(buf, want), "%s missing", keys[i]);
	}
	cr_assert_not_null(strstr(buf, "| `bridge.NAME.version` | `5.0` | `5.0`, `3.1.1` |"));
	free(buf);
}
