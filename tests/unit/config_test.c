/*
 * config_test.c — the configuration an operator writes is the one the broker
 * runs: documented defaults, strict values with exact one-line errors,
 * file < environment < command line, print → load round trip, and the
 * committed docs/config.md equal to the generated reference.
 *
 * Also the logger (log.c), whose level and format are configuration keys.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "base/log.h"

/* Every key, written out independently of config.c's table. */
static const char *const all_keys[] = {
    "listen",
    "metrics_listen",
    "workers",
    "max_connections",
    "listener_max_connections",
    "connect_rate_per_address",
    "max_sessions",
    "max_packet_size",
    "partial_packets_bytes_max",
    "packet_receive_timeout_ms",
    "connect_timeout_ms",
    "keepalive_max_s",
    "session_expiry_max_s",
    "receive_maximum",
    "inflight_max",
    "queue_messages_max",
    "queue_bytes_max",
    "queue_overflow",
    "queue_qos0",
    "outbox_bytes_max",
    "worker_transit_bytes_max",
    "topic_alias_max",
    "topic_alias_out_max",
    "topic_length_max",
    "topic_levels_max",
    "subscriptions_max",
    "max_qos",
    "retain_available",
    "wildcard_available",
    "shared_available",
    "sub_id_available",
    "password_file",
    "allow_anonymous",
    "tls_allow_anonymous",
    "ws_allow_anonymous",
    "wss_allow_anonymous",
    "acl_file",
    "auth_cache_size",
    "auth_failures_per_minute",
    "tls_listen",
    "tls_cert_file",
    "tls_key_file",
    "tls_ca_file",
    "tls_require_client_cert",
    "tls_identity_as_username",
    "tls_ciphers",
    "tls_ciphersuites",
    "tls_groups",
    "ws_listen",
    "wss_listen",
    "ws_path",
    "metrics",
    "metrics_max_connections",
    "metrics_request_timeout_ms",
    "metrics_token_file",
    "metrics_basic_auth_file",
    "sys_interval_s",
    "shutdown_grace_ms",
    "node_name",
    "cluster_listen",
    "cluster_advertise",
    "cluster_seeds",
    "cluster_dns",
    "cluster_dns_interval_s",
    "cluster_name",
    "cluster_secret_file",
    "cluster_profile",
    "cluster_join_timeout_ms",
    "cluster_link_buffer_bytes",
    "persistence",
    "data_dir",
    "persistence_sync",
    "persistence_fsync_max_ms",
    "persistence_fsync_max_bytes",
    "persistence_compact_bytes",
    "log_level",
    "log_json",
};
#define N_KEYS (sizeof(all_keys) / sizeof(all_keys[0]))

/* ------------------------------------------------------------------------ */
/* Helpers */

static bool addr_is(const struct config_addr *a, const char *host, uint16_t port)
{
	return strcmp(a->host, host) == 0 && a->port == port;
}

/* Number of keys whose values differ; field by field, never memcmp (padding
 * and the unused tail of the listen array are not configuration). */
static unsigned config_diff(const struct config *a, const struct config *b)
{
	unsigned d = 0;
	bool listen_same = a->listen_count == b->listen_count;
	for (unsigned i = 0; listen_same && i < a->listen_count; i++)
		listen_same = addr_is(&a->listen[i], b->listen[i].host, b->listen[i].port);
	d += !listen_same;
	d += !addr_is(&a->metrics_listen, b->metrics_listen.host, b->metrics_listen.port);
#define DIFF(f) d += a->f != b->f
	DIFF(workers);
	DIFF(max_connections);
	DIFF(listener_max_connections);
	DIFF(connect_rate_per_address);
	DIFF(max_sessions);
	DIFF(max_packet_size);
	DIFF(partial_packets_bytes_max);
	DIFF(packet_receive_timeout_ms);
	DIFF(connect_timeout_ms);
	DIFF(keepalive_max_s);
	DIFF(session_expiry_max_s);
	DIFF(receive_maximum);
	DIFF(inflight_max);
	DIFF(queue_messages_max);
	DIFF(queue_bytes_max);
	DIFF(queue_overflow);
	DIFF(queue_qos0);
	DIFF(outbox_bytes_max);
	DIFF(worker_transit_bytes_max);
	DIFF(topic_alias_max);
	DIFF(topic_alias_out_max);
	DIFF(topic_length_max);
	DIFF(topic_levels_max);
	DIFF(subscriptions_max);
	DIFF(max_qos);
	DIFF(retain_available);
	DIFF(wildcard_available);
	DIFF(shared_available);
	DIFF(sub_id_available);
	d += strcmp(a->password_file, b->password_file) != 0;
	DIFF(allow_anonymous);
	DIFF(tls_allow_anonymous);
	DIFF(ws_allow_anonymous);
	DIFF(wss_allow_anonymous);
	d += strcmp(a->acl_file, b->acl_file) != 0;
	DIFF(auth_cache_size);
	DIFF(auth_failures_per_minute);
	bool tls_same = a->tls_listen_count == b->tls_listen_count;
	for (unsigned i = 0; tls_same && i < a->tls_listen_count; i++)
		tls_same = addr_is(&a->tls_listen[i], b->tls_listen[i].host, b->tls_listen[i].port);
	d += !tls_same;
	d += strcmp(a->tls_cert_file, b->tls_cert_file) != 0;
	d += strcmp(a->tls_key_file, b->tls_key_file) != 0;
	d += strcmp(a->tls_ca_file, b->tls_ca_file) != 0;
	DIFF(tls_require_client_cert);
	DIFF(tls_identity_as_username);
	d += strcmp(a->tls_ciphers, b->tls_ciphers) != 0;
	d += strcmp(a->tls_ciphersuites, b->tls_ciphersuites) != 0;
	d += strcmp(a->tls_groups, b->tls_groups) != 0;
	bool ws_same = a->ws_listen_count == b->ws_listen_count;
	for (unsigned i = 0; ws_same && i < a->ws_listen_count; i++)
		ws_same = addr_is(&a->ws_listen[i], b->ws_listen[i].host, b->ws_listen[i].port);
	d += !ws_same;
	bool wss_same = a->wss_listen_count == b->wss_listen_count;
	for (unsigned i = 0; wss_same && i < a->wss_listen_count; i++)
		wss_same = addr_is(&a->wss_listen[i], b->wss_listen[i].host, b->wss_listen[i].port);
	d += !wss_same;
	d += strcmp(a->ws_path, b->ws_path) != 0;
	DIFF(metrics);
	DIFF(metrics_max_connections);
	DIFF(metrics_request_timeout_ms);
	d += strcmp(a->metrics_token_file, b->metrics_token_file) != 0;
	d += strcmp(a->metrics_basic_auth_file, b->metrics_basic_auth_file) != 0;
	DIFF(sys_interval_s);
	DIFF(shutdown_grace_ms);
	DIFF(log_level);
	DIFF(log_json);
	d += strcmp(a->node_name, b->node_name) != 0;
	d += a->cluster_listen_set != b->cluster_listen_set ||
	     !addr_is(&a->cluster_listen, b->cluster_listen.host, b->cluster_listen.port);
	d += a->cluster_advertise_set != b->cluster_advertise_set ||
	     !addr_is(&a->cluster_advertise, b->cluster_advertise.host, b->cluster_advertise.port);
	d += strcmp(a->cluster_seeds, b->cluster_seeds) != 0;
	d += strcmp(a->cluster_dns, b->cluster_dns) != 0;
	DIFF(cluster_dns_interval_s);
	d += strcmp(a->cluster_name, b->cluster_name) != 0;
	d += strcmp(a->cluster_secret_file, b->cluster_secret_file) != 0;
	DIFF(cluster_profile);
	DIFF(cluster_join_timeout_ms);
	DIFF(cluster_link_buffer_bytes);
	DIFF(persistence);
	d += strcmp(a->data_dir, b->data_dir) != 0;
	DIFF(persistence_sync);
	DIFF(persistence_fsync_max_ms);
	DIFF(persistence_fsync_max_bytes);
	DIFF(persistence_compact_bytes);
#undef DIFF
	return d;
}

/* A temporary file holding exactly len bytes; the caller frees and unlinks. */
static char *write_tmp(const char *content, size_t len)
{
	char *path = strdup("/tmp/starling-config-test-XXXXXX");
	cr_assert_not_null(path);
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
	cr_assert_eq(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

/* Load content as a file; returns the rc, err filled, the file removed.
 * expect_prefix gets the "<path>" the error messages start with. */
static int load_str(struct config *c, const char *content, char *err, size_t err_len,
                    char *path_out, size_t path_len)
{
	char *path = write_tmp(content, strlen(content));
	int rc = config_load_file(c, path, err, err_len);
	if (path_out != NULL)
		snprintf(path_out, path_len, "%s", path);
	unlink(path);
	free(path);
	return rc;
}

/* Expect `content` to fail with "<path>:<suffix>". */
static void expect_file_error(const char *content, const char *suffix)
{
	struct config c;
	config_defaults(&c);
	char err[512] = "", path[128], want[768];
	cr_assert_eq(load_str(&c, content, err, sizeof(err), path, sizeof(path)), -1,
	             "accepted: %s", content);
	snprintf(want, sizeof(want), "%s:%s", path, suffix);
	cr_assert_str_eq(err, want);
}

static void expect_set_error(const char *key, const char *value, const char *want)
{
	struct config c, before;
	config_defaults(&c);
	before = c;
	char err[512] = "";
	cr_assert_eq(config_set(&c, "command line", key, value, err, sizeof(err)), -1,
	             "%s = \"%s\" was accepted", key, value);
	cr_assert_str_eq(err, want);
	cr_assert_eq(config_diff(&c, &before), 0, "a refused value changed the config");
}

static void set_ok(struct config *c, const char *key, const char *value)
{
	char err[512] = "";
	cr_assert_eq(config_set(c, "command line", key, value, err, sizeof(err)), 0, "%s", err);
}

/* ------------------------------------------------------------------------ */
/* Defaults */

Test(config, defaults_are_the_documented_ones)
{
	struct config c;
	memset(&c, 0xA5, sizeof(c)); /* config_defaults must set everything */
	config_defaults(&c);
	cr_assert_eq(c.listen_count, 2); /* loopback only, like mosquitto 2.0 */
	cr_assert(addr_is(&c.listen[0], "127.0.0.1", 1883));
	cr_assert(addr_is(&c.listen[1], "::1", 1883));
	cr_assert(addr_is(&c.metrics_listen, "127.0.0.1", 9100));
	cr_assert_eq(c.workers, 0);
	cr_assert_eq(c.max_connections, 1000000);
	cr_assert_eq(c.max_sessions, 2000000);
	cr_assert_eq(c.max_packet_size, 1048576);
	cr_assert_eq(c.connect_timeout_ms, 10000);
	cr_assert_eq(c.keepalive_max_s, 65535);
	cr_assert_eq(c.session_expiry_max_s, 604800);
	cr_assert_eq(c.receive_maximum, 1024);
	cr_assert_eq(c.inflight_max, 128);
	cr_assert_eq(c.queue_messages_max, 1000);
	cr_assert_eq(c.queue_bytes_max, 16777216);
	cr_assert_eq(c.queue_overflow, QUEUE_DROP_OLDEST);
	cr_assert_eq(c.queue_qos0, false);
	cr_assert_eq(c.outbox_bytes_max, 1048576);
	cr_assert_eq(c.topic_alias_max, 64);
	cr_assert_eq(c.topic_length_max, 65535);
	cr_assert_eq(c.topic_levels_max, 128);
	cr_assert_eq(c.subscriptions_max, 1000);
	cr_assert_eq(c.max_qos, 2);
	cr_assert(c.retain_available && c.wildcard_available && c.shared_available &&
	          c.sub_id_available);
	cr_assert_eq(c.log_level, LOG_INFO);
	cr_assert_eq(c.log_json, false);
	for (unsigned i = 2; i < CONFIG_LISTEN_MAX; i++)
		cr_assert(addr_is(&c.listen[i], "", 0), "unused listen slots are zeroed");
}

Test(config, defaults_pass_validation)
{
	struct config c;
	config_defaults(&c);
	char err[256] = "";
	cr_assert_eq(config_validate(&c, err, sizeof(err)), 0, "%s", err);
}

/* ------------------------------------------------------------------------ */
/* Setters, one type at a time */

Test(config, integers_take_decimal_within_range)
{
	struct config c;
	config_defaults(&c);
	set_ok(&c, "max_packet_size", "64");
	cr_assert_eq(c.max_packet_size, 64);
	set_ok(&c, "max_packet_size", "268435460");
	cr_assert_eq(c.max_packet_size, 268435460);
	set_ok(&c, "max_packet_size", "0000100"); /* decimal, not octal */
	cr_assert_eq(c.max_packet_size, 100);
	set_ok(&c, "receive_maximum", "65535");
	cr_assert_eq(c.receive_maximum, 65535);
	set_ok(&c, "receive_maximum", "1");
	cr_assert_eq(c.receive_maximum, 1);
	set_ok(&c, "max_qos", "0");
	cr_assert_eq(c.max_qos, 0);
	set_ok(&c, "session_expiry_max_s", "4294967295");
	cr_assert_eq(c.session_expiry_max_s, 4294967295u);
	set_ok(&c, "queue_bytes_max", "1099511627776");
	cr_assert_eq(c.queue_bytes_max, 1099511627776ull);
	set_ok(&c, "workers", "0");
	cr_assert_eq(c.workers, 0);
}

Test(config, integers_reject_garbage_sign_overflow_and_range)
{
	expect_set_error("max_packet_size", "12x",
	                 "command line: max_packet_size: \"12x\" is not a number");
	expect_set_error("max_packet_size", "",
	                 "command line: max_packet_size: empty value, "
	                 "expected a number");
	expect_set_error("max_packet_size", "+100",
	                 "command line: max_packet_size: \"+100\" is not a number");
	expect_set_error("max_packet_size", " 100",
	                 "command line: max_packet_size: \" 100\" is not a number");
	expect_set_error("max_packet_size", "0x100",
	                 "command line: max_packet_size: \"0x100\" is not a number");
	expect_set_error("max_packet_size", "1e6",
	                 "command line: max_packet_size: \"1e6\" is not a number");
	expect_set_error("max_packet_size", "-1",
	                 "command line: max_packet_size: \"-1\" is negative; the minimum is 64");
	expect_set_error("max_packet_size", "0",
	                 "command line: max_packet_size: 0 is below the minimum 64");
	expect_set_error("max_packet_size", "63",
	                 "command line: max_packet_size: 63 is below the minimum 64");
	expect_set_error("max_packet_size", "268435461",
	                 "command line: max_packet_size: 268435461 is above the maximum 268435460");
	expect_set_error("receive_maximum", "0",
	                 "command line: receive_maximum: 0 is below the minimum 1");
	expect_set_error("receive_maximum", "65536",
	                 "command line: receive_maximum: 65536 is above the maximum 65535");
	expect_set_error("max_qos", "3", "command line: max_qos: 3 is above the maximum 2");
	expect_set_error("queue_bytes_max", "18446744073709551616",
	                 "command line: queue_bytes_max: 18446744073709551616 is above the "
	                 "maximum 1099511627776");
	expect_set_error("inflight_max", "99999999999999999999999999",
	                 "command line: inflight_max: 99999999999999999999999999 is above the "
	                 "maximum 65535");
}

Test(config, sizes_take_no_unit_suffix_and_say_so)
{
	expect_set_error("max_packet_size", "64k",
	                 "command line: max_packet_size: \"64k\" is not a number: unit suffixes "
	                 "are not accepted, write plain decimal bytes");
	expect_set_error("queue_bytes_max", "16MB",
	                 "command line: queue_bytes_max: \"16MB\" is not a number: unit suffixes "
	                 "are not accepted, write plain decimal bytes");
	expect_set_error("connect_timeout_ms", "10s",
	                 "command line: connect_timeout_ms: \"10s\" is not a number: unit "
	                 "suffixes are not accepted, write plain decimal ms");
}

Test(config, booleans)
{
	static const char *const yes[] = {"true", "yes", "on", "1", "TRUE", "Yes"};
	static const char *const no[] = {"false", "no", "off", "0", "False", "OFF"};
	struct config c;
	config_defaults(&c);
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		c.queue_qos0 = false;
		set_ok(&c, "queue_qos0", yes[i]);
		cr_assert(c.queue_qos0, "%s", yes[i]);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		c.retain_available = true;
		set_ok(&c, "retain_available", no[i]);
		cr_assert_not(c.retain_available, "%s", no[i]);
	}
	expect_set_error("log_json", "maybe",
	                 "command line: log_json: \"maybe\" is not a boolean (true/false, yes/no, "
	                 "on/off, 1/0)");
	expect_set_error("log_json", "2",
	                 "command line: log_json: \"2\" is not a boolean (true/false, yes/no, "
	                 "on/off, 1/0)");
	expect_set_error("log_json", "",
	                 "command line: log_json: \"\" is not a boolean "
	                 "(true/false, yes/no, on/off, 1/0)");
}

Test(config, enums)
{
	struct config c;
	config_defaults(&c);
	set_ok(&c, "queue_overflow", "drop_newest");
	cr_assert_eq(c.queue_overflow, QUEUE_DROP_NEWEST);
	set_ok(&c, "queue_overflow", "drop_oldest");
	cr_assert_eq(c.queue_overflow, QUEUE_DROP_OLDEST);
	set_ok(&c, "log_level", "debug");
	cr_assert_eq(c.log_level, LOG_DEBUG);
	set_ok(&c, "log_level", "error");
	cr_assert_eq(c.log_level, LOG_ERROR);
	set_ok(&c, "log_level", "warn");
	cr_assert_eq(c.log_level, LOG_WARN);
	expect_set_error("queue_overflow", "drop_all",
	                 "command line: queue_overflow: \"drop_all\" is not one of drop_oldest, "
	                 "drop_newest");
	expect_set_error("log_level", "verbose",
	                 "command line: log_level: \"verbose\" is not one of error, warn, info, "
	                 "debug");
	expect_set_error("log_level", "2",
	                 "command line: log_level: \"2\" is not one of error, warn, info, debug");
}

Test(config, addresses_parse)
{
	struct config_addr a;
	cr_assert_eq(config_parse_addr("127.0.0.1:1883", &a), 0);
	cr_assert(addr_is(&a, "127.0.0.1", 1883));
	cr_assert_eq(config_parse_addr("[::1]:8883", &a), 0);
	cr_assert(addr_is(&a, "::1", 8883));
	cr_assert_eq(config_parse_addr("[::]:0", &a), 0);
	cr_assert(addr_is(&a, "::", 0));
	cr_assert_eq(config_parse_addr(":1883", &a), 0);
	cr_assert(addr_is(&a, "", 1883));
	cr_assert_eq(config_parse_addr("localhost:0", &a), 0, "port 0 = ephemeral, for tests");
	cr_assert(addr_is(&a, "localhost", 0));
	cr_assert_eq(config_parse_addr("0.0.0.0:65535", &a), 0);
	cr_assert(addr_is(&a, "0.0.0.0", 65535));

	static const char *const bad[] = {
	    "1883",           "127.0.0.1",        "::1:1883",     "[::1]1883", "[::1:1883",
	    "[1.2.3.4]:1883", "example.com:1883", "1.2.3:1883",   "1.2.3.4:",  "1.2.3.4:x",
	    "1.2.3.4:65536",  "1.2.3.4:-1",       "1.2.3.4:+80",  "",          ":",
	    "[]:1883",        "1.2.3.4:1883 ",    " 1.2.3.4:1883"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		a = (struct config_addr){"unchanged", 7};
		cr_assert_eq(config_parse_addr(bad[i], &a), -1, "accepted \"%s\"", bad[i]);
		cr_assert(addr_is(&a, "unchanged", 7), "\"%s\" changed the output", bad[i]);
	}
	char longhost[CONFIG_HOST_MAX + 16];
	memset(longhost, '1', sizeof(longhost));
	memcpy(longhost + sizeof(longhost) - 4, ":80", 4);
	cr_assert_eq(config_parse_addr(longhost, &a), -1);
}

Test(config, address_errors_are_specific)
{
	expect_set_error("metrics_listen", "9100",
	                 "command line: metrics_listen: \"9100\" is not an address: expected "
	                 "host:port, [v6]:port or :port");
	expect_set_error("metrics_listen", "::1:9100",
	                 "command line: metrics_listen: \"::1:9100\" is not an address: put an "
	                 "IPv6 host in brackets, [v6]:port");
	expect_set_error("metrics_listen", "example.com:9100",
	                 "command line: metrics_listen: \"example.com:9100\": host "
	                 "\"example.com\" is not a numeric IPv4 address or localhost");
	expect_set_error("metrics_listen", "1.2.3.4:70000",
	                 "command line: metrics_listen: \"1.2.3.4:70000\": port \"70000\" is not "
	                 "a number 0..65535");
	expect_set_error("metrics_listen", "[fe80::zz]:1",
	                 "command line: metrics_listen: \"[fe80::zz]:1\": \"fe80::zz\" is not an "
	                 "IPv6 address");
}

Test(config, listen_is_a_list_of_up_to_eight)
{
	struct config c;
	config_defaults(&c);
	set_ok(&c, "listen", "127.0.0.1:0, [::1]:0 ,:1884");
	cr_assert_eq(c.listen_count, 3);
	cr_assert(addr_is(&c.listen[0], "127.0.0.1", 0));
	cr_assert(addr_is(&c.listen[1], "::1", 0));
	cr_assert(addr_is(&c.listen[2], "", 1884));

	set_ok(&c, "listen", ":1,:2,:3,:4,:5,:6,:7,:8");
	cr_assert_eq(c.listen_count, CONFIG_LISTEN_MAX);
	cr_assert(addr_is(&c.listen[7], "", 8));
	set_ok(&c, "listen", "127.0.0.1:1");
	cr_assert_eq(c.listen_count, 1);
	cr_assert(addr_is(&c.listen[1], "", 0), "a shorter list clears the old tail");

	expect_set_error("listen", ":1,:2,:3,:4,:5,:6,:7,:8,:9",
	                 "command line: listen: \":1,:2,:3,:4,:5,:6,:7,:8,:9\": more than 8 "
	                 "addresses");
	expect_set_error("listen", ":1883,:1883",
	                 "command line: listen: \":1883\" is listed twice");
	expect_set_error("listen", ":1883,,:1884",
	                 "command line: listen: \":1883,,:1884\": empty address in the list");
	expect_set_error("listen", "", "command line: listen: \"\": empty address in the list");
	expect_set_error("listen", ":1883,bogus",
	                 "command line: listen: \"bogus\" is not an address: expected host:port, "
	                 "[v6]:port or :port");
}

Test(config, unknown_keys_suggest_the_closest)
{
	struct config c;
	config_defaults(&c);
	char err[256];
	cr_assert_eq(config_set(&c, "command line", "max_packet_sise", "1", err, sizeof(err)), -1);
	cr_assert_str_eq(err, "command line: unknown key \"max_packet_sise\" (did you mean "
	                      "\"max_packet_size\"?)");
	cr_assert_eq(config_set(&c, "command line", "workrs", "1", err, sizeof(err)), -1);
	cr_assert_str_eq(err, "command line: unknown key \"workrs\" (did you mean \"workers\"?)");
	cr_assert_eq(config_set(&c, "command line", "max_packet", "1", err, sizeof(err)), -1);
	cr_assert_str_eq(err, "command line: unknown key \"max_packet\"",
	                 "distance 5: no suggestion");
	cr_assert_eq(config_set(&c, "command line", "MAX_QOS", "1", err, sizeof(err)), -1,
	             "keys are lower case");
}

Test(config, small_error_buffers_are_safe)
{
	struct config c;
	config_defaults(&c);
	char err[8];
	cr_assert_eq(config_set(&c, "command line", "max_qos", "9", err, sizeof(err)), -1);
	cr_assert_eq(strlen(err), sizeof(err) - 1);
	cr_assert_eq(config_set(&c, "command line", "max_qos", "9", NULL, 0), -1);
}

/* ------------------------------------------------------------------------ */
/* Files */

Test(config, file_with_comments_blanks_quotes_and_crlf)
{
	const char *text = "# Starling test configuration\n"
	                   "\n"
	                   "   \t\n"
	                   "  # indented comment\n"
	                   "max_packet_size = 65536\n"
	                   "workers=3\r\n"
	                   "listen = \"127.0.0.1:0, [::1]:0\"   # two listeners\n"
	                   "metrics_listen=\":0\"\r\n"
	                   "log_level = debug # trailing comment\n"
	                   "queue_overflow\t=\tdrop_newest\t\n"
	                   "log_json = \"yes\"\n"
	                   "receive_maximum = \"12\" \r\n"
	                   "max_qos = 1"; /* no final newline */
	struct config c;
	config_defaults(&c);
	char err[512] = "";
	cr_assert_eq(load_str(&c, text, err, sizeof(err), NULL, 0), 0, "%s", err);
	cr_assert_eq(c.max_packet_size, 65536);
	cr_assert_eq(c.workers, 3);
	cr_assert_eq(c.listen_count, 2);
	cr_assert(addr_is(&c.listen[0], "127.0.0.1", 0));
	cr_assert(addr_is(&c.listen[1], "::1", 0));
	cr_assert(addr_is(&c.metrics_listen, "", 0));
	cr_assert_eq(c.log_level, LOG_DEBUG);
	cr_assert_eq(c.queue_overflow, QUEUE_DROP_NEWEST);
	cr_assert(c.log_json);
	cr_assert_eq(c.receive_maximum, 12);
	cr_assert_eq(c.max_qos, 1);
	cr_assert_eq(c.inflight_max, 128, "keys not in the file keep their defaults");
}

Test(config, empty_file_is_all_defaults)
{
	struct config c, def;
	config_defaults(&c);
	config_defaults(&def);
	char err[256] = "";
	cr_assert_eq(load_str(&c, "", err, sizeof(err), NULL, 0), 0, "%s", err);
	cr_assert_eq(config_diff(&c, &def), 0);
}

Test(config, file_errors_name_line_key_and_problem)
{
	expect_file_error("# a\nworkers = 1\nmax_packet = 100\n", "3: unknown key \"max_packet\"");
	expect_file_error(
	    "max_packet_sizee = 100\n",
	    "1: unknown key \"max_packet_sizee\" (did you mean \"max_packet_size\"?)");
	expect_file_error("\n\n\n\n\n\n\n\n\n\n\nmax_packet_size = 12x\n",
	                  "12: max_packet_size: \"12x\" is not a number");
	expect_file_error("max_packet_size = 0\n", "1: max_packet_size: 0 is below the minimum 64");
	expect_file_error("max_packet_size = \"12x\"\n",
	                  "1: max_packet_size: \"12x\" is not a number");
	expect_file_error("max_packet_size 100\n",
	                  "1: max_packet_size: missing '=' (expected \"key = value\")");
	expect_file_error("max_packet_size\n",
	                  "1: max_packet_size: missing '=' (expected \"key = value\")");
	expect_file_error(" = 5\n", "1: missing key before '='");
	expect_file_error("max_packet_size =\n",
	                  "1: max_packet_size: empty value, expected a number");
	expect_file_error("listen = \"127.0.0.1:0\n", "1: listen: unterminated quoted value");
	expect_file_error("listen = \"127.0.0.1:0\" x\n",
	                  "1: listen: unexpected text after the closing quote");
	expect_file_error("workers = 1\nmax_qos = 1\nworkers = 2\n",
	                  "3: workers: already set on line 1");
}

Test(config, quoted_hash_is_not_a_comment)
{
	/* '#' inside quotes reaches the setter, which names it in the error. */
	expect_file_error("log_level = \"info # not a comment\"\n",
	                  "1: log_level: \"info # not a comment\" is not one of error, warn, "
	                  "info, debug");
	expect_file_error("log_level = \"in\\\"fo\"\n",
	                  "1: log_level: \"in\"fo\" is not one of error, warn, info, debug");
}

Test(config, lines_longer_than_4096_bytes_are_errors)
{
	/* Exactly 4096 bytes (plus CRLF) is fine... */
	char line[4200];
	memset(line, ' ', sizeof(line));
	line[0] = '#';
	strcpy(line + 4096, "\r\n");
	struct config c;
	config_defaults(&c);
	char err[512] = "";
	cr_assert_eq(load_str(&c, line, err, sizeof(err), NULL, 0), 0, "%s", err);

	/* ...one more byte is an error, not a silent truncation into a
	 * different value. */
	char text[8192];
	memset(text, ' ', 4097);
	memcpy(text, "workers = 1", 11);
	strcpy(text + 4097, "\nmax_qos = 1\n");
	expect_file_error(text, "1: line is longer than 4096 bytes");
	strcpy(text, "workers = 1\n");
	memset(text + 12, '#', 5000);
	strcpy(text + 12 + 5000, "\n");
	expect_file_error(text, "2: line is longer than 4096 bytes");
}

Test(config, nul_bytes_are_errors)
{
	static const char text[] = "workers = 1\0 # hidden\n";
	char *path = write_tmp(text, sizeof(text) - 1);
	struct config c;
	config_defaults(&c);
	char err[512] = "", want[512];
	cr_assert_eq(config_load_file(&c, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:1: line contains a NUL byte", path);
	cr_assert_str_eq(err, want);
	unlink(path);
	free(path);
}

Test(config, missing_file_names_file_and_reason)
{
	struct config c;
	config_defaults(&c);
	char err[512] = "";
	cr_assert_eq(config_load_file(&c, "/nonexistent/starling.conf", err, sizeof(err)), -1);
	cr_assert_str_eq(err, "/nonexistent/starling.conf: cannot open: No such file or directory");
	cr_assert_eq(config_load_file(&c, "/", err, sizeof(err)), -1, "a directory");
	cr_assert_str_eq(err, "/: read error: Is a directory");
}

Test(config, a_bad_line_stops_the_file)
{
	struct config c;
	config_defaults(&c);
	char err[512] = "";
	cr_assert_eq(
	    load_str(&c, "workers = 2\nmax_qos = 5\ninflight_max = 7\n", err, sizeof(err), NULL, 0),
	    -1);
	cr_assert_eq(c.workers, 2, "lines before the error were applied");
	cr_assert_eq(c.max_qos, 2, "the bad value was not");
	cr_assert_eq(c.inflight_max, 128, "nothing after it was read");
}

/* ------------------------------------------------------------------------ */
/* Environment and precedence */

Test(config, environment_overrides_and_ignores_other_variables)
{
	char *envp[] = {"PATH=/usr/bin",
	                "STARLING_MAX_PACKET_SIZE=2048",
	                "STARLING_LISTEN=127.0.0.1:0,[::1]:0",
	                "STARLING_LOG_JSON=on",
	                "STARLINGX=1",
	                "HOME=/root",
	                NULL};
	struct config c;
	config_defaults(&c);
	char err[256] = "";
	cr_assert_eq(config_load_env(&c, envp, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.max_packet_size, 2048);
	cr_assert_eq(c.listen_count, 2);
	cr_assert(c.log_json);
	cr_assert_eq(config_load_env(&c, NULL, err, sizeof(err)), 0);
}

Test(config, environment_errors_name_the_variable)
{
	struct config c;
	config_defaults(&c);
	char err[256] = "";
	char *unknown[] = {"STARLING_MAX_PACKET=1", NULL};
	cr_assert_eq(config_load_env(&c, unknown, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "environment: unknown variable STARLING_MAX_PACKET");
	char *typo[] = {"STARLING_WORKER=1", NULL};
	cr_assert_eq(config_load_env(&c, typo, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "environment: unknown variable STARLING_WORKER (did you mean "
	                      "STARLING_WORKERS?)");
	char *bad[] = {"STARLING_MAX_QOS=3", NULL};
	cr_assert_eq(config_load_env(&c, bad, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "environment STARLING_MAX_QOS: max_qos: 3 is above the maximum 2");
	char *empty[] = {"STARLING_=1", NULL};
	cr_assert_eq(config_load_env(&c, empty, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "environment: unknown variable STARLING_");
	char longname[200] = "STARLING_";
	memset(longname + 9, 'A', 150);
	strcpy(longname + 159, "=1");
	char *too_long[] = {longname, NULL};
	cr_assert_eq(config_load_env(&c, too_long, err, sizeof(err)), -1);
	cr_assert(strncmp(err, "environment: unknown variable STARLING_AAAA", 43) == 0, "%s", err);
}

Test(config, file_then_environment_then_command_line)
{
	struct config c;
	config_defaults(&c);
	char err[512] = "";
	cr_assert_eq(
	    load_str(&c, "max_qos = 1\nworkers = 4\ninflight_max = 9\n", err, sizeof(err), NULL, 0),
	    0, "%s", err);
	char *envp[] = {"STARLING_MAX_QOS=0", "STARLING_WORKERS=5", NULL};
	cr_assert_eq(config_load_env(&c, envp, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(config_set(&c, "command line", "max_qos", "2", err, sizeof(err)), 0);
	cr_assert_eq(c.max_qos, 2, "command line beats environment and file");
	cr_assert_eq(c.workers, 5, "environment beats file");
	cr_assert_eq(c.inflight_max, 9, "file beats defaults");
	cr_assert_eq(c.receive_maximum, 1024, "defaults fill the rest");
}

/* ------------------------------------------------------------------------ */
/* Cross-key validation */

Test(config, validate_catches_cross_key_mistakes)
{
	struct config c;
	char err[256] = "";
	config_defaults(&c);
	set_ok(&c, "listen", ":9100");
	cr_assert_eq(config_validate(&c, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "metrics_listen: 127.0.0.1:9100 uses the same port as listen "
	                      "address :9100");

	config_defaults(&c);
	set_ok(&c, "listen", "127.0.0.1:0");
	set_ok(&c, "metrics_listen", "127.0.0.1:0");
	cr_assert_eq(config_validate(&c, err, sizeof(err)), 0, "port 0 never collides: %s", err);
	set_ok(&c, "listen", "127.0.0.1:1883");
	set_ok(&c, "metrics_listen", "127.0.0.2:1883");
	cr_assert_eq(config_validate(&c, err, sizeof(err)), 0, "different hosts: %s", err);

	config_defaults(&c);
	set_ok(&c, "max_packet_size", "2000000");
	cr_assert_eq(config_validate(&c, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "outbox_bytes_max: 1048576 is below max_packet_size 2000000; the "
	                      "largest packet would never fit");

	config_defaults(&c);
	c.listen_count = 0;
	cr_assert_eq(config_validate(&c, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "listen: needs 1 to 8 addresses, has 0");
}

Test(config, tls_listen_is_optional_and_checked_against_the_others)
{
	struct config c;
	char err[256] = "";
	config_defaults(&c);
	cr_assert_eq(c.tls_listen_count, 0, "no TLS listener by default");
	cr_assert_eq(c.tls_identity_as_username, TLS_IDENTITY_NONE);
	set_ok(&c, "tls_listen", "127.0.0.1:8883, :8884");
	cr_assert_eq(c.tls_listen_count, 2);
	cr_assert(addr_is(&c.tls_listen[1], "", 8884));
	set_ok(&c, "tls_listen", " ");
	cr_assert_eq(c.tls_listen_count, 0, "blank is the empty list");
	cr_assert(addr_is(&c.tls_listen[0], "", 0), "and clears the old entries");
	expect_set_error("tls_listen", ":8883,,:8884",
	                 "command line: tls_listen: \":8883,,:8884\": empty address in the list");
	expect_set_error("tls_identity_as_username", "dn",
	                 "command line: tls_identity_as_username: \"dn\" is not one of none, cn, "
	                 "san");

	config_defaults(&c);
	set_ok(&c, "tls_listen", ":8883");
	cr_assert_eq(config_validate(&c, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "tls_listen: needs tls_cert_file and tls_key_file");
	set_ok(&c, "tls_cert_file", "/x/cert.pem");
	set_ok(&c, "tls_key_file", "/x/key.pem");
	cr_assert_eq(config_validate(&c, err, sizeof(err)), 0, "%s", err);
	set_ok(&c, "listen", "127.0.0.1:8883");
	cr_assert_eq(config_validate(&c, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "tls_listen: :8883 uses the same port as listen address "
	                      "127.0.0.1:8883");
	set_ok(&c, "listen", ":1883");
	set_ok(&c, "tls_listen", "127.0.0.1:9100");
	cr_assert_eq(config_validate(&c, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "tls_listen: 127.0.0.1:9100 uses the same port as metrics_listen "
	                      "address 127.0.0.1:9100");
	set_ok(&c, "tls_listen", "127.0.0.1:8883,:8883");
	cr_assert_eq(config_validate(&c, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "tls_listen: :8883 uses the same port as tls_listen address "
	                      "127.0.0.1:8883");
	set_ok(&c, "tls_listen", ":8883");
	set_ok(&c, "ws_listen", ":8883");
	cr_assert_eq(config_validate(&c, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "ws_listen: :8883 uses the same port as tls_listen address :8883");
	set_ok(&c, "ws_listen", ":8080");
	set_ok(&c, "wss_listen", ":8080");
	cr_assert_eq(config_validate(&c, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "wss_listen: :8080 uses the same port as ws_listen address :8080");
	set_ok(&c, "wss_listen", "");
	set_ok(&c, "ws_listen", "");
	set_ok(&c, "ws_path", "mqtt");
	cr_assert_eq(config_validate(&c, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "ws_path: \"mqtt\" must start with /");
	set_ok(&c, "ws_path", "/mqtt");
	expect_set_error("tls_listen", "127.0.0.1:0,127.0.0.1:0",
	                 "command line: tls_listen: \"127.0.0.1:0\" is listed twice");
	set_ok(&c, "tls_listen", ":8883");
	set_ok(&c, "tls_require_client_cert", "true");
	cr_assert_eq(config_validate(&c, err, sizeof(err)), -1);
	cr_assert_str_eq(
	    err, "tls_require_client_cert: needs tls_ca_file to verify client certificates");
	set_ok(&c, "tls_require_client_cert", "false");
	set_ok(&c, "tls_identity_as_username", "cn");
	cr_assert_eq(config_validate(&c, err, sizeof(err)), -1);
	cr_assert_str_eq(
	    err, "tls_identity_as_username: needs tls_ca_file to verify client certificates");
	set_ok(&c, "tls_ca_file", "/x/ca.pem");
	cr_assert_eq(config_validate(&c, err, sizeof(err)), 0, "%s", err);
}

/* ------------------------------------------------------------------------ */
/* Printing */

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

Test(config, print_then_load_round_trips_every_key)
{
	static const char *const kv[][2] = {
	    {"listen", "127.0.0.1:0,[::1]:1884,:1885"},
	    {"metrics_listen", "[::]:9200"},
	    {"workers", "3"},
	    {"max_connections", "5000"},
	    {"listener_max_connections", "100"},
	    {"connect_rate_per_address", "20"},
	    {"max_sessions", "7000"},
	    {"max_packet_size", "2000000"},
	    {"partial_packets_bytes_max", "4000000"},
	    {"packet_receive_timeout_ms", "5000"},
	    {"connect_timeout_ms", "2500"},
	    {"keepalive_max_s", "300"},
	    {"session_expiry_max_s", "0"},
	    {"receive_maximum", "10"},
	    {"inflight_max", "20"},
	    {"queue_messages_max", "30"},
	    {"queue_bytes_max", "4294967296"},
	    {"queue_overflow", "drop_newest"},
	    {"queue_qos0", "true"},
	    {"outbox_bytes_max", "3000000"},
	    {"worker_transit_bytes_max", "1048576"},
	    {"topic_alias_max", "0"},
	    {"topic_alias_out_max", "8"},
	    {"topic_length_max", "1024"},
	    {"topic_levels_max", "16"},
	    {"subscriptions_max", "50"},
	    {"max_qos", "1"},
	    {"retain_available", "false"},
	    {"wildcard_available", "off"},
	    {"shared_available", "no"},
	    {"sub_id_available", "0"},
	    {"password_file", "/etc/starling/pass words"},
	    {"allow_anonymous", "true"},
	    {"tls_allow_anonymous", "false"},
	    {"ws_allow_anonymous", "true"},
	    {"wss_allow_anonymous", "false"},
	    {"acl_file", "/etc/starling/acl#1"},
	    {"auth_cache_size", "0"},
	    {"auth_failures_per_minute", "3"},
	    {"tls_listen", "127.0.0.1:8883,[::1]:8884"},
	    {"tls_cert_file", "/etc/starling/server chain.pem"},
	    {"tls_key_file", "/etc/starling/server.key"},
	    {"tls_ca_file", "/etc/starling/clients\"ca\".pem"},
	    {"tls_require_client_cert", "true"},
	    {"tls_identity_as_username", "san"},
	    {"tls_ciphers", "ECDHE+AESGCM:!aNULL"},
	    {"tls_ciphersuites", "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"},
	    {"tls_groups", "X25519:P-256"},
	    {"ws_listen", "127.0.0.1:8080"},
	    {"wss_listen", "[::1]:8443"},
	    {"ws_path", "/brokers/mqtt"},
	    {"metrics", "false"},
	    {"metrics_max_connections", "64"},
	    {"metrics_request_timeout_ms", "1500"},
	    {"metrics_token_file", "/run/secrets/metrics token"},
	    {"metrics_basic_auth_file", "/run/secrets/metrics-basic"},
	    {"sys_interval_s", "60"},
	    {"shutdown_grace_ms", "30000"},
	    {"node_name", "starling-0"},
	    {"cluster_listen", "0.0.0.0:7946"},
	    {"cluster_advertise", "10.0.0.7:7946"},
	    {"cluster_seeds", "starling-1.starling:7946, 10.0.0.9:7946,[fd00::1]:7946"},
	    {"cluster_dns", "starling-headless.default.svc.cluster.local:7946"},
	    {"cluster_dns_interval_s", "30"},
	    {"cluster_name", "edge-eu-1"},
	    {"cluster_secret_file", "/run/secrets/cluster"},
	    {"cluster_profile", "fast"},
	    {"cluster_join_timeout_ms", "0"},
	    {"cluster_link_buffer_bytes", "1048576"},
	    {"persistence", "true"},
	    {"data_dir", "/data/starling node"},
	    {"persistence_sync", "fsync"},
	    {"persistence_fsync_max_ms", "5"},
	    {"persistence_fsync_max_bytes", "65536"},
	    {"persistence_compact_bytes", "1048576"},
	    {"log_level", "debug"},
	    {"log_json", "yes"},
	};
	cr_assert_eq(sizeof(kv) / sizeof(kv[0]), N_KEYS);
	struct config def, c, back;
	config_defaults(&def);
	config_defaults(&c);
	for (size_t i = 0; i < N_KEYS; i++)
		set_ok(&c, kv[i][0], kv[i][1]);
	cr_assert_eq(config_diff(&def, &c), N_KEYS, "every key moved off its default");

	char *text = print_to_string(&c);
	config_defaults(&back);
	char err[512] = "";
	cr_assert_eq(load_str(&back, text, err, sizeof(err), NULL, 0), 0, "%s\n%s", err, text);
	cr_assert_eq(config_diff(&c, &back), 0, "printed:\n%s", text);
	char *again = print_to_string(&back);
	cr_assert_str_eq(again, text);
	free(again);
	free(text);

	/* The defaults round trip as well (what --check-config prints). */
	text = print_to_string(&def);
	config_defaults(&back);
	set_ok(&back, "max_qos", "0");
	cr_assert_eq(load_str(&back, text, err, sizeof(err), NULL, 0), 0, "%s", err);
	cr_assert_eq(config_diff(&def, &back), 0);
	free(text);
}

Test(config, print_names_every_key_once)
{
	struct config c;
	config_defaults(&c);
	char *text = print_to_string(&c);
	for (size_t i = 0; i < N_KEYS; i++) {
		char want[64];
		snprintf(want, sizeof(want), "\n%s = ", all_keys[i]);
		const char *at = strstr(text, want);
		cr_assert_not_null(at, "%s missing from:\n%s", all_keys[i], text);
		cr_assert_null(strstr(at + 1, want), "%s printed twice", all_keys[i]);
	}
	cr_assert(strstr(text, "\nlisten = 127.0.0.1:1883,[::1]:1883\n") != NULL, "%s", text);
	cr_assert(strstr(text, "\nmax_packet_size = 1048576\n") != NULL, "%s", text);
	cr_assert(strstr(text, "\nqueue_overflow = drop_oldest\n") != NULL, "%s", text);
	free(text);
}

static char *reference_to_string(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cr_assert_not_null(f);
	config_print_reference(f);
	fclose(f);
	return buf;
}

Test(config, cluster_keys_say_what_is_wrong)
{
	struct config c;
	config_defaults(&c);
	cr_assert_not(c.cluster_listen_set, "a single node unless asked");
	set_ok(&c, "cluster_listen", "127.0.0.1:7946");
	cr_assert(c.cluster_listen_set);
	set_ok(&c, "cluster_listen", "");
	cr_assert_not(c.cluster_listen_set, "\"\" turns it off again");
	set_ok(&c, "cluster_seeds", " a.example:1 ,b:2");
	cr_assert_str_eq(c.cluster_seeds, "a.example:1,b:2", "stored without the spaces");
	set_ok(&c, "cluster_seeds", "");
	cr_assert_str_eq(c.cluster_seeds, "");
	char err[256];
	static const char *const bad[][3] = {
	    {"cluster_seeds", "a b:1", "is not host:port"},
	    {"cluster_seeds", "a:0", "is not host:port"},
	    {"cluster_seeds", "a:70000", "is not host:port"},
	    {"cluster_seeds", "a:1,,b:2", "an empty entry"},
	    {"cluster_seeds", "[1.2.3.4]:5", "is not host:port"},
	    {"cluster_seeds", "-a:5", "is not host:port"},
	    {"cluster_dns", "svc", "is not host:port"},
	    {"node_name", "a/b", "only letters"},
	    {"node_name", "0123456789012345678901234567890123456789012345678901234567890123456789",
	     "longer than 64"},
	    {"cluster_name", "two words", "only letters"},
	    {"cluster_listen", "nowhere", "is not an address"},
	    {"cluster_profile", "wan", "is not one of"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_neq(config_set(&c, "test.conf:7", bad[i][0], bad[i][1], err, sizeof(err)),
		              0, "%s = %s accepted", bad[i][0], bad[i][1]);
		cr_assert(strstr(err, "test.conf:7") && strstr(err, bad[i][0]) &&
		              strstr(err, bad[i][2]),
		          "%s = %s: %s", bad[i][0], bad[i][1], err);
	}
	char many[2048] = "";
	for (int i = 0; i < 33; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "%sh%d:1", i ? "," : "",
		         i);
	cr_assert_neq(config_set(&c, "t", "cluster_seeds", many, err, sizeof(err)), 0);
	cr_assert(strstr(err, "more than 32"), "%s", err);
}

Test(config, reference_documents_every_key)
{
	char *ref = reference_to_string();
	size_t rows = 0;
	for (const char *p = ref; (p = strstr(p, "\n| `")) != NULL; p++)
		rows += strncmp(p, "\n| `bridge.", 10) != 0; /* bridge keys: config_bridge_test.c */
	cr_assert_eq(rows, N_KEYS, "one table row per key, and no others");
	for (size_t i = 0; i < N_KEYS; i++) {
		char want[64];
		snprintf(want, sizeof(want), "\n| `%s` | `", all_keys[i]);
		cr_assert_not_null(strstr(ref, want), "%s missing from the reference", all_keys[i]);
	}
	cr_assert_not_null(
	    strstr(ref, "| `max_packet_size` | `1048576` | 64 .. 268435460 bytes |"));
	cr_assert_not_null(strstr(ref, "| `queue_overflow` | `drop_oldest` | `drop_oldest`, "
	                               "`drop_newest` |"));
	free(ref);
}

/*
 * docs/config.md is the reference an operator reads; everything after its
 * marker line must be exactly config_print_reference(). The source tree is
 * found through __FILE__, which meson gives relative to the build root,
 * where meson test runs.
 */
#define DOCS_MARKER                                                                                \
	"<!-- Generated from core/base/config.c by config_print_reference(). Do not edit below. "  \
	"-->\n"

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, n, m);
	fclose(m);
	fclose(f);
	return buf;
}

Test(config, docs_config_md_is_the_generated_reference)
{
	static const char self[] = "tests/unit/config_test.c";
	const char *file = __FILE__;
	size_t root_len = strlen(file) - (sizeof(self) - 1);
	cr_assert_str_eq(file + root_len, self);
	char path[1024];
	snprintf(path, sizeof(path), "%.*sdocs/config.md", (int)root_len, file);

	char *doc = read_all(path);
	cr_assert_not_null(doc, "cannot read %s (cwd must be the build root): %s", path,
	                   strerror(errno));
	char *marker = strstr(doc, DOCS_MARKER);
	cr_assert_not_null(marker, "%s has no marker line:\n%s", path, DOCS_MARKER);
	const char *generated = marker + strlen(DOCS_MARKER);
	char *ref = reference_to_string();
	if (strcmp(generated, ref) != 0) {
		char cwd[512], fresh[1100];
		cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
		snprintf(fresh, sizeof(fresh), "%s/config.md.new", cwd);
		FILE *f = fopen(fresh, "w");
		cr_assert_not_null(f);
		fwrite(doc, 1, (size_t)(generated - doc), f); /* intro and marker */
		fputs(ref, f);
		fclose(f);
		char abs[PATH_MAX];
		if (realpath(path, abs) == NULL)
			snprintf(abs, sizeof(abs), "%s", path);
		/* stderr too: meson --print-errorlogs shows it, not the TAP. */
		fprintf(stderr,
		        "%s is out of date with core/base/config.c. Review the regenerated %s "
		        "and run:\n    cp %s %s\n",
		        abs, fresh, fresh, abs);
		cr_assert_fail("%s is out of date with core/base/config.c. The regenerated file is "
		               "%s; review it and run:\n    cp %s %s",
		               abs, fresh, fresh, abs);
	}
	free(ref);
	free(doc);
}

/* ------------------------------------------------------------------------ */
/* Logger */

static const struct timespec t0 = {.tv_sec = 1700000000, .tv_nsec = 123456789};

Test(log, text_line_has_utc_timestamp_millis_and_level)
{
	char buf[256];
	size_t n = log_format(buf, sizeof(buf), LOG_WARN, false, &t0, "queue full for \"c1\"");
	cr_assert_str_eq(buf, "2023-11-14T22:13:20.123Z WARN queue full for \"c1\"\n");
	cr_assert_eq(n, strlen(buf));
	log_format(buf, sizeof(buf), LOG_DEBUG, false, &t0, "x");
	cr_assert_str_eq(buf, "2023-11-14T22:13:20.123Z DEBUG x\n");
}

Test(log, text_escapes_control_characters_so_lines_cannot_be_forged)
{
	char buf[256];
	log_format(buf, sizeof(buf), LOG_INFO, false, &t0,
	           "id a\n2023-11-14T22:13:20.123Z ERROR fake\r\t\x01\x7f");
	cr_assert_str_eq(buf, "2023-11-14T22:13:20.123Z INFO id a\\n2023-11-14T22:13:20.123Z ERROR "
	                      "fake\\r\\t\\x01\\x7f\n");
}

Test(log, json_escapes_strings)
{
	char buf[256];
	log_format(buf, sizeof(buf), LOG_ERROR, true, &t0,
	           "a\"b\\c\nd\x01 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	cr_assert_str_eq(buf,
	                 "{\"ts\":\"2023-11-14T22:13:20.123Z\",\"level\":\"error\",\"msg\":"
	                 "\"a\\\"b\\\\c\\nd\\u0001 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}\n");
}

Test(log, json_replaces_invalid_utf8)
{
	char buf[256];
	/* stray continuation, overlong '/', surrogate, truncated sequence */
	log_format(buf, sizeof(buf), LOG_INFO, true, &t0, "\x80|\xc0\xaf|\xed\xa0\x80|\xe2\x82");
	cr_assert_str_eq(buf, "{\"ts\":\"2023-11-14T22:13:20.123Z\",\"level\":\"info\",\"msg\":"
	                      "\"\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd\"}\n");
}

Test(log, long_messages_are_cut_visibly_and_stay_one_line)
{
	char msg[1000];
	memset(msg, '"', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	char buf[128];
	for (int json = 0; json <= 1; json++) {
		size_t n = log_format(buf, sizeof(buf), LOG_INFO, json, &t0, msg);
		cr_assert_eq(n, strlen(buf));
		cr_assert_lt(n, sizeof(buf));
		const char *tail = json ? "...\"}\n" : "...\n";
		cr_assert_str_eq(buf + n - strlen(tail), tail, "%s", buf);
		cr_assert_eq(strchr(buf, '\n'), buf + n - 1, "one line: %s", buf);
		if (json) /* no escape cut in half: the char before "..." ends \" */
			cr_assert_eq(buf[n - strlen(tail) - 1], '"');
	}
}

static int evaluated;
static int count_eval(void)
{
	return ++evaluated;
}

/* Run fn with fd 2 pointing at a fresh temporary file; return its text. */
static char *capture_stderr(void (*fn)(void))
{
	char path[] = "/tmp/starling-log-test-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	int flags = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, flags | O_APPEND);
	int saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	char *text = read_all(path);
	unlink(path);
	cr_assert_not_null(text);
	return text;
}

static void log_some(void)
{
	log_init(LOG_WARN, false);
	LOG_DEBUG("debug %d", count_eval());
	LOG_INFO("info %d", count_eval());
	LOG_WARN("warn %d", count_eval());
	LOG_ERROR("error %d", count_eval());
	log_init(LOG_INFO, true);
	LOG_INFO("json %s", "on");
	log_init(LOG_INFO, false);
}

Test(log, macros_skip_disabled_levels_without_evaluating)
{
	evaluated = 0;
	char *text = capture_stderr(log_some);
	cr_assert_eq(evaluated, 2, "arguments of disabled levels are not evaluated");
	char *l1 = text, *l2 = strchr(l1, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
	cr_assert_eq(strncmp(l1 + 24, " WARN warn 1\n", 13), 0, "%s", text);
	cr_assert_eq(strncmp(l2 + 24, " ERROR error 2\n", 15), 0, "%s", text);
	cr_assert_eq(strncmp(l3, "{\"ts\":\"", 7), 0, "%s", text);
	cr_assert_not_null(strstr(l3, "\",\"level\":\"info\",\"msg\":\"json on\"}\n"), "%s", text);
	free(text);
}

#define THREADS 4
#define LINES   300

static void *log_many(void *arg)
{
	long id = (long)arg;
	char pad[200];
	memset(pad, 'a' + (int)id, sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	for (int i = 0; i < LINES; i++)
		LOG_INFO("t%ld %d %s", id, i, pad);
	return NULL;
}

static void log_from_threads(void)
{
	log_init(LOG_INFO, false);
	pthread_t t[THREADS];
	for (long i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, log_many, (void *)i);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
}

Test(log, lines_from_threads_never_interleave)
{
	char *text = capture_stderr(log_from_threads);
	int lines = 0;
	for (char *line = text; *line != '\0'; lines++) {
		char *nl = strchr(line, '\n');
		cr_assert_not_null(nl);
		*nl = '\0';
		long id;
		int i;
		char pad[256];
		cr_assert_eq(sscanf(line + 24, " INFO t%ld %d %255s", &id, &i, pad), 3, "%s", line);
		cr_assert_eq(strlen(pad), 199, "%s", line);
		for (size_t k = 0; k < 199; k++)
			cr_assert_eq(pad[k], 'a' + id, "%s", line);
		line = nl + 1;
	}
	cr_assert_eq(lines, THREADS * LINES);
	free(text);
}

Test(log, ratelimit_passes_n_per_second_and_counts_the_rest)
{
	struct log_ratelimit rl = {0};
	uint32_t sup = 99;
	for (int i = 0; i < 3; i++) {
		cr_assert(log_ratelimit_at(&rl, 3, 5000 + (uint64_t)i, &sup));
		cr_assert_eq(sup, 0);
	}
	for (int i = 0; i < 10; i++)
		cr_assert_not(log_ratelimit_at(&rl, 3, 5500, &sup));
	cr_assert_not(log_ratelimit_at(&rl, 3, 5999, &sup), "the window is one second");
	cr_assert(log_ratelimit_at(&rl, 3, 6000, &sup));
	cr_assert_eq(sup, 11, "the next window reports what the last one refused");
	cr_assert(log_ratelimit_at(&rl, 3, 9000, &sup));
	cr_assert_eq(sup, 0);
}

static void flood(void)
{
	log_init(LOG_INFO, false);
	struct log_ratelimit rl = {0};
	for (int i = 0; i < 5; i++)
		if (log_ratelimit_ok(&rl, 2, "line %d"))
			log_msg(LOG_INFO, "line %d", i);
	rl.window_start_ms -= 1000; /* as if a second passed */
	if (log_ratelimit_ok(&rl, 2, "after"))
		log_msg(LOG_INFO, "after");
	/* The macro names its call site's format. */
	for (int i = 0; i < 5; i++) {
		LOG_INFO_RL(1, "denied %s: %d", "x", i);
		if (i == 3) {
			/* no way to age a macro's state: wait the window out */
			struct timespec t = {1, 5 * 1000 * 1000};
			nanosleep(&t, NULL);
		}
	}
}

Test(log, ratelimit_reports_suppressed_lines)
{
	char *text = capture_stderr(flood);
	char *l = text;
	const char *want[] = {" INFO line 0\n",
	                      " INFO line 1\n",
	                      " WARN 3 similar lines suppressed: \"line %d\"\n",
	                      " INFO after\n",
	                      " INFO denied x: 0\n",
	                      " WARN 3 similar lines suppressed: \"denied %s: %d\"\n",
	                      " INFO denied x: 4\n"};
	for (size_t i = 0; i < 7; i++) {
		cr_assert_eq(strncmp(l + 24, want[i], strlen(want[i])), 0, "%s", text);
		l = strchr(l, '\n') + 1;
	}
	cr_assert_eq(*l, '\0', "%s", text);
	free(text);
}

/* ------------------------------------------------------------------------ */
/* What a node exposes */

Test(config, anonymous_rule_per_listener_kind)
{
	struct config c;
	config_defaults(&c);
	for (int k = CONFIG_KIND_MQTT; k <= CONFIG_KIND_WSS; k++)
		cr_assert(config_anonymous_ok(&c, k), "defaults: anonymous everywhere (kind %d)",
		          k);
	set_ok(&c, "password_file", "/x/passwd");
	cr_assert(!config_anonymous_ok(&c, CONFIG_KIND_MQTT), "auto: not with a password file");
	set_ok(&c, "ws_allow_anonymous", "true");
	cr_assert(config_anonymous_ok(&c, CONFIG_KIND_WS), "the kind's own key wins");
	cr_assert(!config_anonymous_ok(&c, CONFIG_KIND_WSS), "inherit");
	config_defaults(&c);
	set_ok(&c, "tls_listen", "127.0.0.1:8883");
	set_ok(&c, "tls_ca_file", "/x/ca.pem");
	cr_assert(!config_anonymous_ok(&c, CONFIG_KIND_MQTT), "auto: not with client certificates");
	set_ok(&c, "allow_anonymous", "true");
	cr_assert(config_anonymous_ok(&c, CONFIG_KIND_MQTTS));
	set_ok(&c, "tls_allow_anonymous", "false");
	cr_assert(!config_anonymous_ok(&c, CONFIG_KIND_MQTTS));
}

Test(config, exposure_line_names_every_listener)
{
	struct config c;
	char line[1024];
	config_defaults(&c);
	cr_assert(config_listen_is_default(&c));
	config_exposure(&c, 4, line, sizeof(line));
	cr_assert_str_eq(line, "listeners mqtt 127.0.0.1:1883 (anonymous allowed), mqtt [::1]:1883 "
	                       "(anonymous allowed); metrics http 127.0.0.1:9100 (no "
	                       "authentication); password_file none; acl_file none (every client "
	                       "may subscribe to every topic and publish outside $SYS/); "
	                       "persistence off (a restart loses sessions, queued and retained "
	                       "messages); 4 workers (one per online "
	                       "CPU)");
	set_ok(&c, "listen", ":1883");
	cr_assert(!config_listen_is_default(&c));
	set_ok(&c, "wss_listen", "[::]:8443");
	set_ok(&c, "tls_require_client_cert", "true");
	set_ok(&c, "metrics", "false");
	set_ok(&c, "workers", "1");
	set_ok(&c, "acl_file", "/etc/acl");
	config_exposure(&c, 1, line, sizeof(line));
	cr_assert_str_eq(line,
	                 "listeners mqtt *:1883 (anonymous allowed), wss [::]:8443 (anonymous "
	                 "allowed, client certificate required); metrics off; password_file "
	                 "none; acl_file /etc/acl; persistence off (a restart loses sessions, "
	                 "queued and retained messages); 1 "
	                 "worker");
	char small[24];
	config_exposure(&c, 1, small, sizeof(small));
	cr_assert_str_eq(small, "listeners mqtt *:1883 (", "cut, terminated");
}
