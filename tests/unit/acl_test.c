/*
 * acl_test.c — the authorization rules an operator writes are the ones the
 * broker enforces: mosquitto's acl_file syntax with exact file:line errors,
 * default deny, which sections apply to whom, deny over allow, the access
 * words, %u / %c that no client id or username can widen, the '$' rule
 * [MQTT-4.7.2-1], subscription coverage and the receive-check fast path.
 *
 * Random runs compare acl_check() with a brute-force reference written here
 * (PUBLISH and RECEIVE), filter coverage and overlap with an enumeration of
 * topics, and check that a subscription granted without receive checks can
 * only deliver receivable topics. Fixed seeds; STARLING_TEST_SEED=<n>
 * replays one.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/acl.h"
#include "rng.h"
#include "topic.h"

/* ---- helpers ------------------------------------------------------------ */

static struct acl *parse_ok(const char *text)
{
	char err[512] = "";
	struct acl *a = NULL;
	int rc = acl_parse("acl", text, strlen(text), &a, err, sizeof(err));
	cr_assert_eq(rc, 0, "parse failed: %s", err);
	cr_assert_not_null(a);
	return a;
}

static void parse_err(const char *text, const char *want)
{
	char err[512] = "";
	struct acl *sentinel = (struct acl *)&err; /* must stay untouched */
	struct acl *a = sentinel;
	int rc = acl_parse("acl", text, strlen(text), &a, err, sizeof(err));
	cr_assert_eq(rc, -1, "expected an error for:\n%s", text);
	cr_assert_eq(a, sentinel, "*out written on error");
	cr_assert_str_eq(err, want);
}

static size_t slen(const char *s)
{
	return s ? strlen(s) : 0;
}

static bool pub(const struct acl *a, const char *user, const char *cid, const char *topic)
{
	return acl_check(a, user, slen(user), cid, strlen(cid), ACL_PUBLISH, topic, strlen(topic),
	                 NULL);
}

static bool recv(const struct acl *a, const char *user, const char *cid, const char *topic)
{
	return acl_check(a, user, slen(user), cid, strlen(cid), ACL_RECEIVE, topic, strlen(topic),
	                 NULL);
}

/* SUBSCRIBE; *rc_out gets receive_check_out when rc_out is given. */
static bool sub(const struct acl *a, const char *user, const char *cid, const char *filter,
                bool *rc_out)
{
	bool rc = false;
	bool ok = acl_check(a, user, slen(user), cid, strlen(cid), ACL_SUBSCRIBE, filter,
	                    strlen(filter), &rc);
	if (!ok)
		cr_assert(rc, "a refused subscription must say receive checks are needed");
	if (rc_out)
		*rc_out = rc;
	return ok;
}

/* ---- parsing ------------------------------------------------------------ */

Test(acl_parse, empty_file_denies_everything)
{
	struct acl *a = parse_ok("");
	cr_assert_eq(acl_rule_count(a), 0);
	cr_assert_not(pub(a, NULL, "c", "a"));
	cr_assert_not(pub(a, "alice", "c", "a"));
	cr_assert_not(recv(a, NULL, "c", "a"));
	cr_assert_not(sub(a, NULL, "c", "#", NULL));
	acl_free(a);
	acl_free(NULL);
}

Test(acl_parse, omitted_access_is_readwrite)
{
	struct acl *a = parse_ok("topic a/b\n");
	cr_assert_eq(acl_rule_count(a), 1);
	cr_assert(pub(a, NULL, "c", "a/b"));
	cr_assert(recv(a, NULL, "c", "a/b"));
	cr_assert(sub(a, NULL, "c", "a/b", NULL));
	cr_assert_not(pub(a, NULL, "c", "a/c"));
	acl_free(a);
}

/* The broker refuses rules for user names that nothing authenticates
 * (auth.c): it needs the line of the first one. */
Test(acl_parse, first_rule_depending_on_the_user_name)
{
	struct acl *a = parse_ok("topic read a\nclient c\ntopic b\npattern read d/%c\n");
	cr_assert_eq(acl_user_line(a), 0, "client ids and %%c are not user names");
	acl_free(a);
	a = parse_ok("# x\ntopic read a\npattern read u/%u/#\nuser bob\ntopic b\n");
	cr_assert_eq(acl_user_line(a), 3);
	acl_free(a);
	a = parse_ok("topic u/%u\n\nuser alice\ntopic b\npattern read u/%u/#\n");
	cr_assert_eq(acl_user_line(a), 3, "%%u in a topic line is literal text");
	acl_free(a);
}

Test(acl_parse, every_access_word)
{
	static const struct {
		const char *word;
		bool pub, sub, recv;
	} cases[] = {
	    {"read", false, true, true},     {"write", true, false, false},
	    {"readwrite", true, true, true}, {"subscribe", false, true, false},
	    {"deny", false, false, false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[64];
		snprintf(text, sizeof(text), "topic %s x/#\n", cases[i].word);
		struct acl *a = parse_ok(text);
		cr_assert_eq(pub(a, NULL, "c", "x/1"), cases[i].pub, "%s publish", cases[i].word);
		cr_assert_eq(sub(a, NULL, "c", "x/+", NULL), cases[i].sub, "%s subscribe",
		             cases[i].word);
		cr_assert_eq(recv(a, NULL, "c", "x/1"), cases[i].recv, "%s receive", cases[i].word);
		/* The same word in a pattern. */
		snprintf(text, sizeof(text), "pattern %s x/%%c/#\n", cases[i].word);
		acl_free(a);
		a = parse_ok(text);
		cr_assert_eq(pub(a, NULL, "c", "x/c/1"), cases[i].pub, "%s pattern publish",
		             cases[i].word);
		cr_assert_eq(recv(a, NULL, "c", "x/c/1"), cases[i].recv, "%s pattern receive",
		             cases[i].word);
		acl_free(a);
	}
}

Test(acl_parse, comments_and_blank_lines)
{
	struct acl *a = parse_ok("# a comment\n"
	                         "\n"
	                         "   \t \n"
	                         "   # indented comment\n"
	                         "topic read a\n"
	                         "#topic read b\n"
	                         "\n");
	cr_assert_eq(acl_rule_count(a), 1);
	cr_assert(recv(a, NULL, "c", "a"));
	cr_assert_not(recv(a, NULL, "c", "b"));
	acl_free(a);
}

Test(acl_parse, crlf_and_no_final_newline)
{
	struct acl *a = parse_ok("user alice\r\ntopic write a/b\r\n\r\ntopic read c");
	cr_assert_eq(acl_rule_count(a), 2);
	cr_assert(pub(a, "alice", "c", "a/b"));
	cr_assert_not(pub(a, "alice", "c", "a/b\r"));
	cr_assert(recv(a, "alice", "c", "c"));
	acl_free(a);
}

Test(acl_parse, leading_and_trailing_whitespace)
{
	struct acl *a = parse_ok("  \tuser   bob \t \n"
	                         "\t topic \t read \t  a/b  \t\n");
	cr_assert(recv(a, "bob", "c", "a/b"));
	cr_assert_not(recv(a, "bob ", "c", "a/b"));
	cr_assert_not(recv(a, "bob", "c", "a/b  "));
	acl_free(a);
}

Test(acl_parse, filters_and_names_with_spaces)
{
	struct acl *a = parse_ok("user Jane Doe\n"
	                         "topic read my room/temp sensor\n"
	                         "topic readwrite read\n"); /* a topic named "read" */
	cr_assert(recv(a, "Jane Doe", "c", "my room/temp sensor"));
	cr_assert(pub(a, "Jane Doe", "c", "read"));
	cr_assert_not(recv(a, "Jane", "c", "my room/temp sensor"));
	cr_assert_not(recv(a, "Jane Doe", "c", "my room/temp"));
	acl_free(a);
	/* A blank means ACCESS must come first: no silent "my room" filter. */
	parse_err(
	    "topic my room\n",
	    "acl:1: topic: \"my\" is not an access (read, write, readwrite, subscribe, deny)");
}

Test(acl_parse, duplicate_sections_merge)
{
	struct acl *a = parse_ok("user alice\n"
	                         "topic read a\n"
	                         "user bob\n"
	                         "topic read b\n"
	                         "user alice\n"
	                         "topic write c\n"
	                         "client k\n"
	                         "topic read k1\n"
	                         "anonymous\n"
	                         "topic read anon\n"
	                         "client k\n"
	                         "topic read k2\n");
	cr_assert_eq(acl_rule_count(a), 6);
	cr_assert(recv(a, "alice", "x", "a"));
	cr_assert(pub(a, "alice", "x", "c"));
	cr_assert_not(recv(a, "alice", "x", "b"));
	cr_assert(recv(a, "bob", "x", "b"));
	cr_assert_not(pub(a, "bob", "x", "c"));
	cr_assert(recv(a, "bob", "k", "k1"));
	cr_assert(recv(a, "bob", "k", "k2"));
	cr_assert(recv(a, NULL, "x", "anon"));
	acl_free(a);
}

Test(acl_parse, error_bad_access_word)
{
	parse_err(
	    "user a\n"
	    "topic read x\n"
	    "topic reed a/b\n",
	    "acl:3: topic: \"reed\" is not an access (read, write, readwrite, subscribe, deny)");
	parse_err("pattern Read a/%c\n",
	          "acl:1: pattern: \"Read\" is not an access (read, write, readwrite, subscribe, "
	          "deny)");
}

Test(acl_parse, error_bad_filter_names_line)
{
	parse_err("# 1\n\n# 3\nuser alice\ntopic read a\r\n\ntopic read a/#/b\n",
	          "acl:7: topic: \"a/#/b\" is not a valid topic filter");
	parse_err("pattern write a+/%c\n", "acl:1: pattern: \"a+/%c\" is not a valid topic filter");
	parse_err("topic a/b#\n", "acl:1: topic: \"a/b#\" is not a valid topic filter");
	/* A trailing comment is not a comment: it makes the filter invalid. */
	parse_err("topic read $SYS/#   # broker stats\n",
	          "acl:1: topic: \"$SYS/#   # broker stats\" is not a valid topic filter");
	parse_err("topic read $share/g/a\n", "acl:1: topic: \"$share/g/a\" names a shared "
	                                     "subscription; write the topic filter without "
	                                     "$share/group/");
	parse_err("topic read a/\xff\n", "acl:1: topic: topic filter is not valid UTF-8");
}

Test(acl_parse, error_missing_filter)
{
	parse_err("topic\n", "acl:1: topic: missing topic filter");
	parse_err("\ntopic read\n", "acl:2: topic: missing topic filter");
	parse_err("topic deny   \t\n", "acl:1: topic: missing topic filter");
	parse_err("pattern subscribe\n", "acl:1: pattern: missing topic filter");
}

Test(acl_parse, error_unknown_keyword)
{
	parse_err("user a\nTopic read x\n",
	          "acl:2: unknown keyword \"Topic\" (expected topic, pattern, user, client or "
	          "anonymous)");
	parse_err("topicread x\n", "acl:1: unknown keyword \"topicread\" (expected topic, "
	                           "pattern, user, client or anonymous)");
	parse_err("anonymous bob\n",
	          "acl:1: anonymous: unexpected \"bob\"; the section takes no name");
}

Test(acl_parse, error_section_without_name)
{
	parse_err("topic read a\nuser\n", "acl:2: user: missing user name");
	parse_err("user  \t\n", "acl:1: user: missing user name");
	parse_err("client\n", "acl:1: client: missing client id");
}

Test(acl_parse, name_length_limit)
{
	char text[600];
	char name[300];
	memset(name, 'n', 256);
	name[256] = '\0';
	snprintf(text, sizeof(text), "user %s\ntopic read a\n", name);
	struct acl *a = parse_ok(text);
	cr_assert(recv(a, name, "c", "a"));
	acl_free(a);
	strcat(name, "n");
	snprintf(text, sizeof(text), "client %s\n", name);
	parse_err(text, "acl:1: client: client id is longer than 256 bytes");
	parse_err("user \xc3\n", "acl:1: user: user name is not valid UTF-8");
}

Test(acl_parse, nul_byte_is_an_error)
{
	static const char text[] = "topic read a\ntopic read b\0c\n";
	char err[256];
	struct acl *a = NULL;
	cr_assert_eq(acl_parse("x.acl", text, sizeof(text) - 1, &a, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "x.acl:2: line contains a NUL byte");
	/* err may be absent. */
	cr_assert_eq(acl_parse("x.acl", text, sizeof(text) - 1, &a, NULL, 0), -1);
	cr_assert_null(a);
}

Test(acl_parse, filter_length_limit)
{
	size_t n = ACL_FILTER_MAX_BYTES + 1;
	char *text = malloc(n + 32);
	strcpy(text, "topic read ");
	size_t off = strlen(text);
	memset(text + off, 'f', n);
	text[off + n] = '\0';
	parse_err(text, "acl:1: topic: topic filter is longer than 65535 bytes");
	text[off + n - 1] = '\0'; /* 65535 bytes: fine */
	struct acl *a = parse_ok(text);
	cr_assert(recv(a, NULL, "c", text + off));
	acl_free(a);
	free(text);
}

Test(acl_parse, rule_count_limit)
{
	size_t lines = ACL_RULES_MAX + 1;
	static const char line[] = "topic a\n";
	size_t ll = sizeof(line) - 1;
	char *text = malloc(lines * ll + 1);
	for (size_t i = 0; i < lines; i++)
		memcpy(text + i * ll, line, ll);
	char err[256];
	struct acl *a = NULL;
	cr_assert_eq(acl_parse("big", text, (lines - 1) * ll, &a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(acl_rule_count(a), ACL_RULES_MAX);
	acl_free(a);
	a = NULL;
	cr_assert_eq(acl_parse("big", text, lines * ll, &a, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "big:1000001: more than 1000000 rules");
	cr_assert_null(a);
	free(text);
}

Test(acl_parse, many_sections_are_kept_apart)
{
	/* Enough sections to grow the hash table several times. */
	enum { N = 5000 };
	char *text = malloc(N * 96);
	size_t o = 0;
	for (int i = 0; i < N; i++)
		o += (size_t)sprintf(text + o,
		                     "user u%d\ntopic read t/%d\nclient u%d\ntopic write w/%d\n", i,
		                     i, i, i);
	char err[256];
	struct acl *a = NULL;
	cr_assert_eq(acl_parse("many", text, o, &a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(acl_rule_count(a), 2 * N);
	for (int i = 0; i < N; i += 7) {
		char u[16], t[16], other[16], w[16];
		snprintf(u, sizeof(u), "u%d", i);
		snprintf(t, sizeof(t), "t/%d", i);
		snprintf(w, sizeof(w), "w/%d", i);
		snprintf(other, sizeof(other), "t/%d", (i + 1) % N);
		cr_assert(recv(a, u, "none", t));
		cr_assert_not(recv(a, u, "none", other));
		cr_assert_not(recv(a, NULL, u, t), "user section used for a client id");
		cr_assert(pub(a, NULL, u, w));
		cr_assert_not(pub(a, u, "none", w), "client section used for a user name");
	}
	acl_free(a);
	free(text);
}

Test(acl_load, file_and_errors_name_the_path)
{
	char path[] = "/tmp/acl_test_XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	static const char good[] = "user alice\ntopic readwrite home/alice/#\n";
	cr_assert_eq(write(fd, good, sizeof(good) - 1), (ssize_t)(sizeof(good) - 1));
	char err[512];
	struct acl *a = NULL;
	cr_assert_eq(acl_load(path, &a, err, sizeof(err)), 0, "%s", err);
	cr_assert(pub(a, "alice", "c", "home/alice/door"));
	acl_free(a);

	static const char bad[] = "user bob\ntopic raed x\n";
	cr_assert_eq(ftruncate(fd, 0), 0);
	cr_assert_eq(pwrite(fd, bad, sizeof(bad) - 1, 0), (ssize_t)(sizeof(bad) - 1));
	a = NULL;
	cr_assert_eq(acl_load(path, &a, err, sizeof(err)), -1);
	char want[600];
	snprintf(want, sizeof(want),
	         "%s:2: topic: \"raed\" is not an access (read, write, readwrite, subscribe, deny)",
	         path);
	cr_assert_str_eq(err, want);
	cr_assert_null(a);

	/* Over 64 MiB is refused before it is read (a sparse file). */
	cr_assert_eq(ftruncate(fd, (off_t)ACL_FILE_MAX_BYTES + 1), 0);
	cr_assert_eq(acl_load(path, &a, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: 67108865 bytes, more than the limit of 67108864 (64 MiB)",
	         path);
	cr_assert_str_eq(err, want);
	close(fd);
	unlink(path);

	cr_assert_eq(acl_load(path, &a, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
	cr_assert_str_eq(err, want);
	cr_assert_eq(acl_load("/tmp", &a, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "/tmp: not a regular file");

	/* The in-memory limit too; the text is not read. */
	cr_assert_eq(acl_parse("m", "", (size_t)ACL_FILE_MAX_BYTES + 1, &a, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "m: 67108865 bytes, more than the limit of 67108864 (64 MiB)");
}

/* ---- who the rules apply to --------------------------------------------- */

Test(acl_check, default_deny)
{
	struct acl *a = parse_ok("user alice\ntopic readwrite a/#\n");
	cr_assert(pub(a, "alice", "c", "a/b"));
	cr_assert_not(pub(a, "alice", "c", "b"));
	cr_assert_not(pub(a, "bob", "c", "a/b"));
	cr_assert_not(pub(a, NULL, "c", "a/b"));
	cr_assert_not(recv(a, "bob", "c", "a/b"));
	cr_assert_not(sub(a, "bob", "c", "a/b", NULL));
	acl_free(a);
}

Test(acl_check, user_client_and_anonymous_sections)
{
	struct acl *a = parse_ok("topic read public/#\n" /* anonymous, mosquitto-style */
	                         "user alice\n"
	                         "topic readwrite home/alice/#\n"
	                         "client sensor-17\n"
	                         "topic write sensors/17/#\n"
	                         "anonymous\n"
	                         "topic read lobby\n");
	/* The user section, by username only. */
	cr_assert(pub(a, "alice", "any", "home/alice/x"));
	cr_assert_not(pub(a, "bob", "any", "home/alice/x"));
	cr_assert_not(pub(a, NULL, "alice", "home/alice/x"));
	/* The client section, whatever the user. */
	cr_assert(pub(a, NULL, "sensor-17", "sensors/17/t"));
	cr_assert(pub(a, "alice", "sensor-17", "sensors/17/t"));
	cr_assert(pub(a, "bob", "sensor-17", "sensors/17/t"));
	cr_assert_not(pub(a, "bob", "sensor-18", "sensors/17/t"));
	/* Both at once: alice on sensor-17 has the union. */
	cr_assert(pub(a, "alice", "sensor-17", "home/alice/x"));
	/* Anonymous rules, both before any section and after `anonymous`. */
	cr_assert(recv(a, NULL, "c", "public/news"));
	cr_assert(recv(a, NULL, "c", "lobby"));
	cr_assert_not(recv(a, "alice", "c", "public/news"), "anonymous rules apply to a user");
	cr_assert_not(recv(a, "alice", "c", "lobby"));
	/* An empty username is a username, not anonymous. */
	cr_assert_not(acl_check(a, "", 0, "c", 1, ACL_RECEIVE, "lobby", 5, NULL));
	acl_free(a);
}

Test(acl_check, deny_overrides_allow)
{
	struct acl *a = parse_ok("user alice\n"
	                         "topic readwrite home/alice/#\n"
	                         "topic deny home/alice/secret/#\n"
	                         "client locked\n"
	                         "topic deny home/#\n"
	                         "pattern deny home/%u/vault\n");
	cr_assert(pub(a, "alice", "c", "home/alice/door"));
	cr_assert_not(pub(a, "alice", "c", "home/alice/secret"));
	cr_assert_not(pub(a, "alice", "c", "home/alice/secret/x"));
	cr_assert_not(recv(a, "alice", "c", "home/alice/secret/x"));
	/* A deny from another section wins too: client, pattern. */
	cr_assert_not(pub(a, "alice", "locked", "home/alice/door"));
	cr_assert_not(pub(a, "alice", "c", "home/alice/vault"));
	cr_assert(pub(a, "alice", "c", "home/alice/vault/x"));
	/* Deny before the allow in the file changes nothing. */
	struct acl *b = parse_ok("topic deny a/b\ntopic readwrite a/#\n");
	cr_assert_not(pub(b, NULL, "c", "a/b"));
	cr_assert(pub(b, NULL, "c", "a/c"));
	acl_free(b);
	acl_free(a);
}

Test(acl_check, read_write_subscribe_readwrite)
{
	struct acl *a = parse_ok("topic read r/#\n"
	                         "topic write w/#\n"
	                         "topic subscribe s/#\n"
	                         "topic readwrite rw/#\n");
	bool rc;
	cr_assert(sub(a, NULL, "c", "r/+", &rc));
	cr_assert_not(rc);
	cr_assert(recv(a, NULL, "c", "r/x"));
	cr_assert_not(pub(a, NULL, "c", "r/x"));

	cr_assert(pub(a, NULL, "c", "w/x"));
	cr_assert_not(sub(a, NULL, "c", "w/x", NULL));
	cr_assert_not(recv(a, NULL, "c", "w/x"));

	cr_assert(sub(a, NULL, "c", "s/#", &rc));
	cr_assert(rc, "subscribe-only: every delivery must be checked");
	cr_assert_not(recv(a, NULL, "c", "s/x"));
	cr_assert_not(pub(a, NULL, "c", "s/x"));

	cr_assert(pub(a, NULL, "c", "rw/x"));
	cr_assert(recv(a, NULL, "c", "rw/x"));
	cr_assert(sub(a, NULL, "c", "rw/#", &rc));
	cr_assert_not(rc);
	acl_free(a);
}

Test(acl_check, subscribe_wide_receive_narrow)
{
	/* The use of `subscribe`: one wide subscription, reads decided per message. */
	struct acl *a = parse_ok("topic subscribe sensors/#\ntopic read sensors/public/#\n");
	bool rc;
	cr_assert(sub(a, NULL, "c", "sensors/#", &rc));
	cr_assert(rc);
	cr_assert(recv(a, NULL, "c", "sensors/public/t"));
	cr_assert_not(recv(a, NULL, "c", "sensors/private/t"));
	cr_assert(sub(a, NULL, "c", "sensors/public/+", &rc));
	cr_assert_not(rc);
	acl_free(a);
}

/* ---- patterns ------------------------------------------------------------ */

Test(acl_pattern, substitutes_username_and_client_id)
{
	struct acl *a = parse_ok("pattern readwrite devices/%c/#\n"
	                         "pattern read users/%u/inbox/#\n"
	                         "pattern write log/%u/%c\n"
	                         "pattern write dev-%c-x/state\n");
	cr_assert(pub(a, "alice", "d1", "devices/d1/temp"));
	cr_assert(pub(a, NULL, "d1", "devices/d1"), "patterns apply to anonymous clients");
	cr_assert_not(pub(a, "alice", "d1", "devices/d2/temp"));
	cr_assert(recv(a, "alice", "d1", "users/alice/inbox/1"));
	cr_assert_not(recv(a, "alice", "d1", "users/bob/inbox/1"));
	cr_assert(pub(a, "alice", "d1", "log/alice/d1"));
	cr_assert_not(pub(a, "alice", "d1", "log/d1/alice"));
	cr_assert(pub(a, "alice", "d1", "dev-d1-x/state"));
	cr_assert_not(pub(a, "alice", "d1", "dev-d2-x/state"));
	bool rc;
	cr_assert(sub(a, "alice", "d1", "devices/d1/+", &rc));
	cr_assert_not(rc);
	cr_assert_not(sub(a, "alice", "d1", "devices/+/x", NULL));
	acl_free(a);
}

Test(acl_pattern, username_pattern_skipped_for_anonymous)
{
	struct acl *a = parse_ok("pattern read users/%u/#\npattern read all/%c/%u\n");
	/* Not "users//#", not "users/(null)/#". */
	cr_assert_not(recv(a, NULL, "c", "users//x"));
	cr_assert_not(recv(a, NULL, "c", "users/x"));
	cr_assert_not(recv(a, NULL, "c", "all/c/"));
	cr_assert_not(sub(a, NULL, "c", "users/+/#", NULL));
	cr_assert(recv(a, "u", "c", "all/c/u"));
	/* An empty username has no namespace either. */
	cr_assert_not(acl_check(a, "", 0, "c", 1, ACL_RECEIVE, "users//x", 8, NULL));
	acl_free(a);
}

Test(acl_pattern, values_cannot_widen_a_pattern)
{
	struct acl *a = parse_ok("pattern readwrite devices/%c/#\n"
	                         "pattern readwrite %c/#\n"
	                         "pattern readwrite users/%u\n");
	static const char *const bad_ids[] = {"a/#", "+", "#", "a/b", "x+", "$SYS"};
	for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
		const char *id = bad_ids[i];
		cr_assert_not(pub(a, NULL, id, "devices/a/x"), "id %s", id);
		cr_assert_not(pub(a, NULL, id, "devices/other/x"), "id %s", id);
		cr_assert_not(sub(a, NULL, id, "devices/+/#", NULL), "id %s", id);
		cr_assert_not(sub(a, NULL, id, "#", NULL), "id %s", id);
		cr_assert_not(recv(a, NULL, id, "$SYS/broker/load"), "id %s", id);
	}
	/* A '$' id is fine inside a level, only not as the first level. */
	cr_assert(pub(a, NULL, "$x", "devices/$x/t"));
	cr_assert_not(pub(a, NULL, "$x", "$x/t"));
	/* NUL inside a value. */
	cr_assert_not(acl_check(a, NULL, 0, "a\0b", 3, ACL_PUBLISH, "devices/a", 9, NULL));
	/* An empty client id substitutes nothing. */
	cr_assert_not(acl_check(a, NULL, 0, "", 0, ACL_PUBLISH, "devices//x", 10, NULL));
	/* Usernames the same way. */
	cr_assert_not(pub(a, "+", "c", "users/x"));
	cr_assert_not(pub(a, "a/b", "c", "users/a/b"));
	cr_assert(pub(a, "a b", "c", "users/a b"));
	acl_free(a);
}

Test(acl_pattern, topic_lines_keep_percent_literal)
{
	struct acl *a = parse_ok("topic read devices/%c\npattern read p/%x/%%c\n");
	cr_assert(recv(a, NULL, "d1", "devices/%c"));
	cr_assert_not(recv(a, NULL, "d1", "devices/d1"));
	/* Only %u and %c are replaced; "%%c" is '%' then %c. */
	cr_assert(recv(a, NULL, "d1", "p/%x/%d1"));
	acl_free(a);
}

Test(acl_pattern, substituted_filter_length_limit)
{
	/* "%u/#" with a username of n bytes is n + 2 bytes; it also matches
	 * the topic equal to the username (the '#' parent rule). */
	struct acl *a = parse_ok("pattern read %u/#\n");
	size_t n = ACL_FILTER_MAX_BYTES - 2;
	char *u = malloc(n + 2);
	memset(u, 'u', n + 1);
	u[n] = '\0';
	cr_assert(recv(a, u, "c", u), "65535-byte filter applies");
	u[n] = 'u';
	u[n + 1] = '\0';
	cr_assert_not(recv(a, u, "c", u), "65536-byte filter must not apply");
	free(u);
	acl_free(a);
}

/* ---- the '$' rule [MQTT-4.7.2-1] ---------------------------------------- */

Test(acl_check, dollar_topics_need_explicit_rules)
{
	struct acl *a = parse_ok("topic readwrite #\n"
	                         "topic read +/x\n"
	                         "topic deny #\n"
	                         "user mon\n"
	                         "topic read $SYS/#\n");
	/* Anonymous: "#" is granted then denied, for non-'$' topics only. */
	cr_assert_not(pub(a, NULL, "c", "a"));
	cr_assert_not(recv(a, NULL, "c", "$SYS/x"), "'#' must not grant $SYS");
	cr_assert_not(recv(a, NULL, "c", "$SYS"));
	cr_assert_not(sub(a, NULL, "c", "$SYS/#", NULL));
	acl_free(a);

	a = parse_ok("topic readwrite #\nuser mon\ntopic read $SYS/#\ntopic deny #\n");
	cr_assert(pub(a, NULL, "c", "a/b"));
	cr_assert_not(recv(a, NULL, "c", "$SYS/broker/load"));
	cr_assert_not(pub(a, NULL, "c", "$x"));
	/* mon: "deny #" does not reach $SYS, the explicit rule grants it. */
	cr_assert(recv(a, "mon", "c", "$SYS/broker/load"));
	cr_assert(recv(a, "mon", "c", "$SYS"), "'$SYS/#' matches its parent");
	cr_assert_not(recv(a, "mon", "c", "a"));
	bool rc;
	cr_assert(sub(a, "mon", "c", "$SYS/+/load", &rc));
	cr_assert_not(rc);
	acl_free(a);
}

/* ---- subscription coverage ------------------------------------------------ */

Test(acl_subscribe, plus_rule_coverage)
{
	struct acl *a = parse_ok("topic read a/+\n");
	cr_assert(sub(a, NULL, "c", "a/b", NULL));
	cr_assert(sub(a, NULL, "c", "a/+", NULL));
	cr_assert(sub(a, NULL, "c", "a/", NULL)); /* an empty level is a level */
	cr_assert_not(sub(a, NULL, "c", "a/#", NULL), "a/# matches a and a/b/c");
	cr_assert_not(sub(a, NULL, "c", "a/b/c", NULL));
	cr_assert_not(sub(a, NULL, "c", "a", NULL));
	cr_assert_not(sub(a, NULL, "c", "+/b", NULL));
	cr_assert_not(sub(a, NULL, "c", "#", NULL));
	acl_free(a);
}

Test(acl_subscribe, hash_rule_coverage)
{
	struct acl *a = parse_ok("topic read a/#\n");
	static const char *const yes[] = {"a", "a/#", "a/+/c", "a/b", "a/+", "a/b/c/d", "a//#"};
	static const char *const no[] = {"#", "+", "+/b", "b", "b/#", "+/#", "ab"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		cr_assert(sub(a, NULL, "c", yes[i], NULL), "a/# should cover %s", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		cr_assert_not(sub(a, NULL, "c", no[i], NULL), "a/# should not cover %s", no[i]);
	acl_free(a);

	a = parse_ok("topic read #\n");
	cr_assert(sub(a, NULL, "c", "+/x", NULL));
	cr_assert(sub(a, NULL, "c", "#", NULL));
	cr_assert(sub(a, NULL, "c", "+", NULL));
	cr_assert_not(sub(a, NULL, "c", "$SYS/x", NULL));
	cr_assert_not(sub(a, NULL, "c", "$SYS/#", NULL));
	acl_free(a);

	/* "+/#" matches every non-'$' topic, as "#" does. */
	a = parse_ok("topic read +/#\n");
	cr_assert(sub(a, NULL, "c", "#", NULL));
	cr_assert(sub(a, NULL, "c", "+", NULL));
	cr_assert_not(sub(a, NULL, "c", "$SYS/#", NULL));
	acl_free(a);

	a = parse_ok("topic read +/x\n");
	cr_assert(sub(a, NULL, "c", "+/x", NULL), "'+/x' matches no '$' topic either");
	cr_assert(sub(a, NULL, "c", "b/x", NULL));
	cr_assert_not(sub(a, NULL, "c", "$SYS/x", NULL));
	acl_free(a);
}

Test(acl_subscribe, shared_prefix_is_stripped)
{
	struct acl *a = parse_ok("topic read a/b\n");
	bool rc;
	cr_assert(sub(a, NULL, "c", "$share/g/a/b", &rc));
	cr_assert_not(rc);
	cr_assert_not(sub(a, NULL, "c", "$share/g/a/c", NULL));
	cr_assert_not(sub(a, NULL, "c", "$share/a/b", NULL), "\"$share/a/b\" is filter b");
	cr_assert_not(sub(a, NULL, "c", "$share/g", NULL), "invalid shared filter");
	acl_free(a);
}

Test(acl_subscribe, deny_covering_refuses_deny_overlapping_checks)
{
	struct acl *a = parse_ok("topic read a/#\n"
	                         "topic deny a/secret/#\n"
	                         "topic deny a/+/private\n");
	bool rc;
	cr_assert_not(sub(a, NULL, "c", "a/secret/x", &rc), "inside a deny");
	cr_assert(rc);
	cr_assert_not(sub(a, NULL, "c", "a/secret/#", NULL));
	cr_assert_not(sub(a, NULL, "c", "a/secret", NULL), "'#' parent");
	cr_assert_not(sub(a, NULL, "c", "a/b/private", NULL));
	cr_assert(sub(a, NULL, "c", "a/#", &rc), "an overlapping deny does not refuse");
	cr_assert(rc, "but deliveries must be checked");
	cr_assert(sub(a, NULL, "c", "a/+", &rc));
	cr_assert(rc, "a/+ can match a/secret");
	cr_assert(sub(a, NULL, "c", "a/+/public", &rc));
	cr_assert(rc, "a/+/public can match a/secret/public");
	cr_assert(sub(a, NULL, "c", "a/b/public", &rc));
	cr_assert_not(rc, "no deny overlaps a/b/public");
	cr_assert(sub(a, NULL, "c", "a/b", &rc));
	cr_assert_not(rc);
	cr_assert(sub(a, NULL, "c", "a/b/+", &rc));
	cr_assert(rc, "a/b/+ can match a/b/private");
	cr_assert(recv(a, NULL, "c", "a/b/public"));
	cr_assert_not(recv(a, NULL, "c", "a/b/private"));
	acl_free(a);
}

Test(acl_subscribe, receive_check_cases)
{
	struct acl *a = parse_ok("topic read r/#\n"
	                         "topic subscribe s/#\n"
	                         "topic read s/open/#\n"
	                         "topic deny #\n" /* overlaps every non-'$' filter */
	                         "user mon\n"
	                         "topic read $SYS/#\n");
	bool rc = false;
	cr_assert_not(sub(a, NULL, "c", "r/x", &rc), "deny # covers it");
	cr_assert(rc);
	acl_free(a);

	a = parse_ok("topic read r/#\n"
	             "topic subscribe s/#\n"
	             "topic read s/open/#\n"
	             "topic deny $SYS/#\n"
	             "user mon\n"
	             "topic read $SYS/#\n");
	cr_assert(sub(a, NULL, "c", "r/x", &rc));
	cr_assert_not(rc, "read covers, deny $SYS/# does not overlap r/x");
	cr_assert(sub(a, NULL, "c", "s/#", &rc));
	cr_assert(rc, "subscribe covers, read does not");
	cr_assert(sub(a, NULL, "c", "s/open/+", &rc));
	cr_assert_not(rc, "read s/open/# covers it");
	cr_assert(sub(a, "mon", "c", "$SYS/#", &rc));
	cr_assert_not(rc, "mon has no anonymous deny");
	/* Refused: still true. */
	rc = false;
	cr_assert_not(sub(a, NULL, "c", "x/#", &rc));
	cr_assert(rc);
	/* NULL out pointer, and other accesses leave it alone. */
	cr_assert(acl_check(a, NULL, 0, "c", 1, ACL_SUBSCRIBE, "r/x", 3, NULL));
	rc = false;
	cr_assert(acl_check(a, NULL, 0, "c", 1, ACL_RECEIVE, "r/x", 3, &rc));
	cr_assert_not(rc);
	acl_free(a);
}

Test(acl_check, invalid_topics_and_filters_are_denied)
{
	struct acl *a = parse_ok("topic readwrite #\n");
	cr_assert_not(pub(a, NULL, "c", "a/+"), "wildcard in a topic name [MQTT-3.3.2-2]");
	cr_assert_not(pub(a, NULL, "c", "a/#"));
	cr_assert_not(recv(a, NULL, "c", "+"));
	cr_assert_not(acl_check(a, NULL, 0, "c", 1, ACL_PUBLISH, "", 0, NULL));
	cr_assert_not(sub(a, NULL, "c", "a/#/b", NULL));
	cr_assert_not(sub(a, NULL, "c", "a+", NULL));
	cr_assert_not(acl_check(a, NULL, 0, "c", 1, ACL_SUBSCRIBE, "", 0, NULL));
	cr_assert(pub(a, NULL, "c", "a b/c"));
	acl_free(a);
}

/* ---- random cross-checks ------------------------------------------------ */

/* Sections the random ACLs use; the reference knows them by index. */
enum { SEC_ANON, SEC_PATTERN, SEC_U1, SEC_U2, SEC_C1, SEC_C2, SEC_N };
static const char *const sec_header[SEC_N] = {"anonymous", NULL,        "user u1",
                                              "user u2",   "client c1", "client c2"};
static const char *const access_name[] = {"read", "write", "readwrite", "subscribe", "deny"};
static const unsigned access_bits[] = {ACL_SUBSCRIBE | ACL_RECEIVE, ACL_PUBLISH,
                                       ACL_PUBLISH | ACL_SUBSCRIBE | ACL_RECEIVE, ACL_SUBSCRIBE, 0};
#define ACCESS_DENY 4

struct ref_rule {
	int section;
	int access; /* index into access_name */
	char filter[64];
};

/* Levels of rule filters; patterns also draw %u and %c. */
static const char *const rule_levels[] = {"a", "b", "$SYS", "", "u1", "c1", "+"};
static const char *const pattern_levels[] = {"%u", "%c", "x%c"};
/* Topics use the values substitution produces. */
static const char *const topic_levels[] = {"a", "b", "$SYS", "", "u1", "c1", "c2", "xc1", "z"};
static const char *const users[] = {NULL, "u1", "u2", "a", "", "+", "c1", "$SYS"};
static const char *const clients[] = {"c1", "c2", "a", "$SYS", "x/y", "#", "", "u1"};

#define N_OF(x) (sizeof(x) / sizeof((x)[0]))

static void random_filter(struct rng *r, char *out, bool pattern)
{
	do {
		out[0] = '\0';
		unsigned levels = 1 + rng_below(r, 4);
		for (unsigned i = 0; i < levels; i++) {
			if (i)
				strcat(out, "/");
			uint32_t n = (uint32_t)N_OF(rule_levels) + 1 +
			             (pattern ? (uint32_t)N_OF(pattern_levels) : 0);
			uint32_t k = rng_below(r, n);
			if (k < N_OF(rule_levels))
				strcat(out, rule_levels[k]);
			else if (k == N_OF(rule_levels))
				strcat(out, i + 1 == levels ? "#" : "+");
			else
				strcat(out, pattern_levels[k - N_OF(rule_levels) - 1]);
		}
	} while (out[0] == '\0');
}

static void random_topic(struct rng *r, char *out)
{
	do {
		out[0] = '\0';
		unsigned levels = 1 + rng_below(r, 4);
		for (unsigned i = 0; i < levels; i++) {
			if (i)
				strcat(out, "/");
			strcat(out, topic_levels[rng_below(r, (uint32_t)N_OF(topic_levels))]);
		}
	} while (out[0] == '\0');
}

/* The ACL text for rules, section by section in a random-ish order. */
static char *acl_text(const struct ref_rule *rules, size_t n)
{
	char *text = malloc(n * 96 + 1);
	text[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		char line[96];
		if (rules[i].section == SEC_PATTERN) {
			snprintf(line, sizeof(line), "pattern %s %s\n",
			         access_name[rules[i].access], rules[i].filter);
		} else {
			snprintf(line, sizeof(line), "%s\ntopic %s %s\n",
			         sec_header[rules[i].section], access_name[rules[i].access],
			         rules[i].filter);
		}
		strcat(text, line);
	}
	return text;
}

static bool ref_applies(int section, const char *user, const char *client)
{
	switch (section) {
	case SEC_ANON:
		return user == NULL;
	case SEC_PATTERN:
		return true;
	case SEC_U1:
		return user && strcmp(user, "u1") == 0;
	case SEC_U2:
		return user && strcmp(user, "u2") == 0;
	case SEC_C1:
		return strcmp(client, "c1") == 0;
	case SEC_C2:
		return strcmp(client, "c2") == 0;
	}
	return false;
}

static bool ref_value_ok(const char *v)
{
	return v && *v && !strpbrk(v, "/+#");
}

/* Naive %u / %c replacement; false when the pattern does not apply. */
static bool ref_subst(const char *pat, const char *user, const char *client, char *out)
{
	if (strstr(pat, "%u") && !ref_value_ok(user))
		return false;
	if (strstr(pat, "%c") && !ref_value_ok(client))
		return false;
	out[0] = '\0';
	for (const char *p = pat; *p; p++) {
		if (p[0] == '%' && p[1] == 'u') {
			strcat(out, user);
			p++;
		} else if (p[0] == '%' && p[1] == 'c') {
			strcat(out, client);
			p++;
		} else {
			strncat(out, p, 1);
		}
	}
	return !(out[0] == '$' && pat[0] != '$');
}

static bool ref_check(const struct ref_rule *rules, size_t n, const char *user, const char *client,
                      unsigned access, const char *topic)
{
	bool allowed = false;
	for (size_t i = 0; i < n; i++) {
		if (!ref_applies(rules[i].section, user, client))
			continue;
		char f[256];
		if (rules[i].section == SEC_PATTERN) {
			if (!ref_subst(rules[i].filter, user, client, f))
				continue;
		} else {
			strcpy(f, rules[i].filter);
		}
		if (!mqtt_topic_match(mqtt_view_str(f), mqtt_view_str(topic)))
			continue;
		if (rules[i].access == ACCESS_DENY)
			return false;
		if (access_bits[rules[i].access] & access)
			allowed = true;
	}
	return allowed;
}

static size_t random_rules(struct rng *r, struct ref_rule *rules, size_t max)
{
	size_t n = 1 + rng_below(r, (uint32_t)max);
	for (size_t i = 0; i < n; i++) {
		rules[i].section = (int)rng_below(r, SEC_N);
		/* Fewer denies, so that allows are seen too. */
		rules[i].access = (int)rng_below(r, 9);
		if (rules[i].access > ACCESS_DENY)
			rules[i].access = rules[i].access == 8 ? ACCESS_DENY : rules[i].access - 4;
		random_filter(r, rules[i].filter, rules[i].section == SEC_PATTERN);
	}
	return n;
}

static size_t cross_checked;

static void publish_receive_run(uint64_t seed)
{
	struct rng r;
	rng_seed(&r, seed);
	struct ref_rule rules[12];
	size_t n = random_rules(&r, rules, 12);
	char *text = acl_text(rules, n);
	struct acl *a = parse_ok(text);
	cr_assert_eq(acl_rule_count(a), n);
	for (int q = 0; q < 300; q++) {
		const char *user = users[rng_below(&r, (uint32_t)N_OF(users))];
		const char *client = clients[rng_below(&r, (uint32_t)N_OF(clients))];
		char topic[64];
		random_topic(&r, topic);
		unsigned access = rng_below(&r, 2) ? ACL_PUBLISH : ACL_RECEIVE;
		bool want = ref_check(rules, n, user, client, access, topic);
		bool got = acl_check(a, user, slen(user), client, strlen(client), access, topic,
		                     strlen(topic), NULL);
		cr_assert_eq(
		    got, want, "seed %llu: %s user=%s client=%s topic=\"%s\": got %d want %d\n%s",
		    (unsigned long long)seed, access == ACL_PUBLISH ? "publish" : "receive",
		    user ? user : "(anonymous)", client, topic, got, want, text);
		cross_checked += want;
	}
	acl_free(a);
	free(text);
}

Test(acl_random, publish_and_receive_match_reference)
{
	cross_checked = 0;
	rng_run_seeds(400, publish_receive_run);
	if (!getenv("STARLING_TEST_SEED"))
		cr_assert_gt(cross_checked, 1000, "too few allowed cases: the test is too weak");
}

/*
 * Every topic of 1..5 levels over {a, b, c, $SYS, "", z}: z stands for any
 * literal no filter names, 5 levels for "deeper than any filter". Enough
 * to decide coverage and overlap of filters of up to 4 such levels.
 */
static char (*universe)[32];
static size_t universe_n;

static void build_universe(void)
{
	static const char *const lv[] = {"a", "b", "c", "$SYS", "", "z"};
	size_t cap = 6 + 36 + 216 + 1296 + 7776;
	universe = malloc(cap * sizeof(*universe));
	universe_n = 0;
	for (unsigned levels = 1; levels <= 5; levels++) {
		unsigned total = 1;
		for (unsigned i = 0; i < levels; i++)
			total *= 6;
		for (unsigned k = 0; k < total; k++) {
			char *t = universe[universe_n];
			t[0] = '\0';
			unsigned x = k;
			for (unsigned i = 0; i < levels; i++, x /= 6) {
				if (i)
					strcat(t, "/");
				strcat(t, lv[x % 6]);
			}
			if (t[0] != '\0') /* "" is not a topic name */
				universe_n++;
		}
	}
}

static void coverage_run(uint64_t seed)
{
	struct rng r;
	rng_seed(&r, seed);
	for (int q = 0; q < 20; q++) {
		char rf[64], f[64];
		rng_levels(&r, rf, sizeof(rf), 2);
		rng_levels(&r, f, sizeof(f), 2);
		bool covers = true, overlap = false, f_any = false;
		for (size_t i = 0; i < universe_n; i++) {
			struct mqtt_view t = mqtt_view_str(universe[i]);
			bool in_f = mqtt_topic_match(mqtt_view_str(f), t);
			bool in_r = mqtt_topic_match(mqtt_view_str(rf), t);
			f_any |= in_f;
			if (in_f && !in_r)
				covers = false;
			if (in_f && in_r)
				overlap = true;
		}
		cr_assert(f_any, "filter %s matches nothing in the universe", f);
		char text[160];
		/* A read rule: subscribe allowed exactly when it covers. */
		snprintf(text, sizeof(text), "topic read %s\n", rf);
		struct acl *a = parse_ok(text);
		bool rc;
		cr_assert_eq(sub(a, NULL, "c", f, &rc), covers, "seed %llu: %s covers %s: want %d",
		             (unsigned long long)seed, rf, f, covers);
		cr_assert_eq(rc, !covers);
		acl_free(a);
		/* A deny under reads that cover every filter: refused exactly when
		 * the deny covers, checked exactly when it overlaps. */
		snprintf(text, sizeof(text), "topic read #\ntopic read $SYS/#\ntopic deny %s\n",
		         rf);
		a = parse_ok(text);
		cr_assert_eq(sub(a, NULL, "c", f, &rc), !covers,
		             "seed %llu: deny %s covers %s: want %d", (unsigned long long)seed, rf,
		             f, covers);
		cr_assert_eq(rc, overlap, "seed %llu: deny %s overlaps %s: want %d",
		             (unsigned long long)seed, rf, f, overlap);
		acl_free(a);
	}
}

Test(acl_random, coverage_and_overlap_match_enumeration)
{
	build_universe();
	rng_run_seeds(60, coverage_run);
	free(universe);
}

static size_t fast_paths;

/* A topic f likely matches: each '+' a random level, '#' zero to two of
 * them (zero: the parent, "a/#" ~ "a"). The caller checks that it does. */
static void topic_of_filter(struct rng *r, const char *f, char *out)
{
	out[0] = '\0';
	struct mqtt_level_iter it;
	struct mqtt_view l;
	mqtt_level_iter_init(&it, mqtt_view_str(f));
	bool first = true;
	while (mqtt_level_iter_next(&it, &l)) {
		bool hash = l.len == 1 && l.ptr[0] == '#';
		unsigned reps = hash ? rng_below(r, 3) : 1;
		if (hash && reps == 0 && first)
			reps = 1; /* "#" alone still needs a level */
		for (unsigned i = 0; i < reps; i++) {
			if (!first)
				strcat(out, "/");
			first = false;
			if (hash || (l.len == 1 && l.ptr[0] == '+'))
				strcat(out,
				       topic_levels[rng_below(r, (uint32_t)N_OF(topic_levels))]);
			else
				strncat(out, (const char *)l.ptr, l.len);
		}
	}
	if (out[0] == '\0')
		strcpy(out, "z");
}

static void fast_path_run(uint64_t seed)
{
	struct rng r;
	rng_seed(&r, seed);
	struct ref_rule rules[10];
	size_t n = random_rules(&r, rules, 10);
	char *text = acl_text(rules, n);
	struct acl *a = parse_ok(text);
	for (int q = 0; q < 20; q++) {
		const char *user = users[rng_below(&r, (uint32_t)N_OF(users))];
		const char *client = clients[rng_below(&r, (uint32_t)N_OF(clients))];
		char f[64];
		random_filter(&r, f, false);
		bool rc;
		if (!sub(a, user, client, f, &rc) || rc)
			continue;
		fast_paths++;
		for (int k = 0; k < 200; k++) {
			char t[128];
			if (k % 2)
				random_topic(&r, t);
			else
				topic_of_filter(&r, f, t);
			if (!mqtt_topic_match(mqtt_view_str(f), mqtt_view_str(t)))
				continue;
			cr_assert(
			    recv(a, user, client, t),
			    "seed %llu: %s subscribed %s without checks but may not receive %s\n%s",
			    (unsigned long long)seed, user ? user : "(anonymous)", f, t, text);
		}
	}
	acl_free(a);
	free(text);
}

Test(acl_random, fast_path_subscriptions_only_deliver_receivable_topics)
{
	fast_paths = 0;
	rng_run_seeds(1000, fast_path_run);
	if (!getenv("STARLING_TEST_SEED"))
		cr_assert_gt(fast_paths, 50,
		             "too few fast-path subscriptions: the test is too weak");
}
