/*
 * acl.h — authorization rules (ACLs): which topics a client may publish to,
 * which filters it may subscribe to and which messages it may receive. Pure
 * logic: the broker loads a file with acl_load() and asks acl_check() from
 * its PUBLISH, SUBSCRIBE and delivery paths (retained and will messages
 * included). On SIGHUP it loads a new struct acl and swaps it in only when
 * the load succeeded; loading has no side effects beyond the new struct, and
 * a loaded struct acl is immutable, so any number of threads may call
 * acl_check() on it at the same time without locks.
 *
 * File format: mosquitto's acl_file, plus the `anonymous` and `client`
 * sections of ours. One directive per line; blank lines and lines whose
 * first non-blank character is '#' are ignored (comments are whole lines:
 * '#' after a filter or name is part of it, as in mosquitto). Leading and
 * trailing blanks and a CR before the LF are ignored.
 *
 *   topic read $SYS/#          lines before any section: anonymous clients
 *   anonymous                  starts the anonymous section again
 *   user alice                 rules for username "alice"
 *   topic readwrite home/alice/#
 *   topic deny home/alice/secret/#
 *   client sensor-17           rules for client id "sensor-17", any user
 *   topic write sensors/17/#
 *   pattern readwrite devices/%c/#     every client; %c = client id
 *   pattern read users/%u/inbox/#      %u = username
 *
 * `topic [ACCESS] FILTER` adds a rule to the current section; `pattern
 * [ACCESS] FILTER` adds one that applies to every client, wherever in the
 * file it is written. A section named twice continues where it left off
 * (the rules merge). Names (`user NAME`, `client NAME`) are the rest of the
 * line, 1 to ACL_NAME_MAX_BYTES bytes, and may contain blanks.
 *
 * ACCESS, default readwrite (as mosquitto):
 *   read       may subscribe to the filter and receive messages on its topics
 *   write      may publish to its topics
 *   readwrite  all three
 *   subscribe  may subscribe only; each message delivered through such a
 *              subscription still needs a `read` rule for its topic. Use it
 *              to let a client hold one wide subscription ("sensors/#") and
 *              receive only the parts it may read ("sensors/public/#"),
 *              including parts granted later by a reload, without the
 *              client having to subscribe again.
 *   deny       none of them on the topics the filter matches; it overrides
 *              every allowing rule that applies to the same request.
 * FILTER is an MQTT topic filter (§4.7.1), the rest of the line; it may
 * contain blanks, but then ACCESS must be written out: when the text after
 * `topic` holds a blank, its first word is always read as ACCESS. Rules
 * cannot name a shared subscription ("$share/..."): they are about topics.
 *
 * Which rules apply to a request from (user, client id); user NULL means an
 * anonymous client (no username):
 *   - the `user` section of that username (user != NULL),
 *   - the `client` section of that client id,
 *   - the anonymous section (user == NULL only; not for a named user),
 *   - every pattern, with %u and %c replaced by the username and client id.
 *     A pattern is skipped when a value it needs is unusable, so a client can
 *     never widen one (fail closed): %u for an anonymous client; a value that
 *     is empty or holds '/', '+', '#' or NUL (client id "+" must not turn
 *     "devices/%c/#" into "devices/+/#", every device); a value starting with
 *     '$' placed at the start of the filter (client id "$SYS" must not turn
 *     "%c/#" into "$SYS/#"); a result longer than 65535 bytes.
 *
 * Decisions, once an ACL is loaded everything not allowed is denied:
 *   ACL_PUBLISH, ACL_RECEIVE of topic T: denied when an applicable deny rule
 *     matches T; else allowed when an applicable rule granting the access
 *     matches T. Matching is MQTT's (mqtt_topic_match): a filter whose first
 *     level is '+' or '#' does not match a topic starting with '$'
 *     [MQTT-4.7.2-1], so `topic read #` does not grant $SYS/..., which needs
 *     its own `$SYS/#` rule (as in mosquitto), and `topic deny #` does not
 *     deny it either.
 *   ACL_SUBSCRIBE of filter F (a "$share/group/" prefix is removed first):
 *     allowed when one applicable rule granting subscribe covers F — every
 *     topic F can match is matched by that rule — and no applicable deny
 *     rule covers F. A deny rule that only overlaps F (some topics in both)
 *     does not refuse the subscription; the messages on those topics are
 *     refused by ACL_RECEIVE checks instead. *receive_check_out says whether
 *     each delivery through F needs an ACL_RECEIVE check: false only when no
 *     applicable deny rule overlaps F and one applicable read rule covers F
 *     (then every message F can match is receivable: the fast path).
 */
#ifndef STARLING_CORE_ACL_H
#define STARLING_CORE_ACL_H

#include <stdbool.h>
#include <stddef.h>

enum acl_access {
	ACL_PUBLISH = 1,   /* PUBLISH to a topic, retained and will messages too */
	ACL_SUBSCRIBE = 2, /* SUBSCRIBE to a filter */
	ACL_RECEIVE = 4,   /* delivery of a message on a topic to the client */
};

#define ACL_RULES_MAX        1000000u    /* rules in one file */
#define ACL_FILE_MAX_BYTES   (64u << 20) /* a larger file is refused */
#define ACL_NAME_MAX_BYTES   256u        /* user and client names */
#define ACL_FILTER_MAX_BYTES 65535u      /* an MQTT string, before and after %u/%c */

struct acl;

/*
 * Read and parse the file at path (errors name it: "path:7: ..."). Returns 0
 * with *out set, or -1 with a one-line message in err and *out untouched.
 */
int acl_load(const char *path, struct acl **out, char *err, size_t err_len);

/* The same from memory; name stands for the file in messages. */
int acl_parse(const char *name, const char *text, size_t len, struct acl **out, char *err,
              size_t err_len);

void acl_free(struct acl *a); /* NULL is fine */

/* Rules loaded: topic and pattern lines. */
size_t acl_rule_count(const struct acl *a);

/* The line of the first rule that depends on the user name (a `user`
 * section or a pattern with %u), 0 if there is none: such rules are only
 * as good as what authenticates user names (auth.c). */
unsigned acl_user_line(const struct acl *a);

/*
 * May (user, client_id) do access on topic (a topic name for ACL_PUBLISH and
 * ACL_RECEIVE, a topic filter for ACL_SUBSCRIBE)? user NULL = anonymous. For
 * ACL_SUBSCRIBE, *receive_check_out (may be NULL) tells whether deliveries
 * through this filter need ACL_RECEIVE checks; it is true whenever the answer
 * is false, and untouched for the other accesses. An invalid topic or filter
 * is denied. Allocates nothing; uses up to 64 KiB of stack for patterns.
 */
bool acl_check(const struct acl *a, const char *user, size_t user_len, const char *client_id,
               size_t client_id_len, enum acl_access access, const char *topic, size_t topic_len,
               bool *receive_check_out);

#endif
