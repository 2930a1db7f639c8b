/*
 * codec_topic_test.c — topic names, topic filters, shared-subscription
 * parsing, level iteration and the reference matcher (§4.7, §4.8.2 of MQTT
 * 5.0; §4.7 of 3.1.1, whose examples are used verbatim), and MQTT UTF-8
 * string well-formedness (§1.5.4 of 5.0, §1.5.3 of 3.1.1).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "codec.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct mqtt_view v(const char *s)
{
	return mqtt_view_str(s);
}

/* ---------------------------------------------------------- topic names */

Test(topic, name_valid)
{
	static const char *const good[] = {
	    "a",
	    "a/b",
	    "/",
	    "//",
	    "a//b",
	    "/finance",
	    "sport/tennis/player1",
	    "$SYS/broker",
	    " ",
	    "Accounts payable",
	    "a/b/",
	    "$share/g/t",
	    "caf\xC3\xA9",
	};
	for (size_t i = 0; i < N(good); i++)
		cr_expect(mqtt_topic_name_valid(v(good[i])), "\"%s\" should be valid", good[i]);
}

Test(topic, name_invalid)
{
	/* [MQTT-4.7.3-1] at least one character; [MQTT-3.3.2-2] no wildcards. */
	static const char *const bad[] = {
	    "", "+", "#", "a/+", "a/#", "+/a", "#/a", "a+b", "a#b", "sport/tennis#", "a/b+",
	};
	for (size_t i = 0; i < N(bad); i++)
		cr_expect_not(mqtt_topic_name_valid(v(bad[i])), "\"%s\" should be invalid", bad[i]);
}

/* -------------------------------------------------------- topic filters */

Test(topic, filter_valid)
{
	static const char *const good[] = {
	    /* §4.7.1.2 and §4.7.1.3 examples. */
	    "sport/tennis/player1/#",
	    "sport/#",
	    "#",
	    "sport/tennis/#",
	    "+",
	    "+/tennis/#",
	    "sport/+/player1",
	    "sport/tennis/+",
	    "+/+",
	    "/+",
	    "sport/+",
	    /* Plain levels, empty levels. */
	    "a",
	    "/",
	    "a//b",
	    "a/",
	    "//",
	    "$SYS/#",
	    "$SYS/monitor/+",
	    /* Wildcards alone at every position. */
	    "+/+/+",
	    "+/#",
	    "a/+/b/#",
	    "+//#",
	    /* Not shared: "$share" needs its slash; "$sharex" is just a name. */
	    "$share",
	    "$sharex/a",
	    "$SHARE/g/+",
	    /* §4.8.2 shared. */
	    "$share/g/f",
	    "$share/g/#",
	    "$share/g/+",
	    "$share/group1/sport/+/player1",
	    "$share/g/+/x",
	    "$share/g//",
	    "$share/g/$share/x",
	};
	for (size_t i = 0; i < N(good); i++)
		cr_expect_eq(mqtt_topic_filter_check(v(good[i])), MQTT_RC_SUCCESS,
		             "\"%s\" should be valid", good[i]);
}

Test(topic, filter_invalid)
{
	static const char *const bad[] = {
	    /* [MQTT-4.7.3-1] */
	    "",
	    /* [MQTT-4.7.1-1]: '#' alone and last. §4.7.1.2 examples. */
	    "sport/tennis#",
	    "sport/tennis/#/ranking",
	    "#/",
	    "#/a",
	    "a/#/",
	    "##",
	    "a#",
	    "a/b#",
	    /* [MQTT-4.7.1-2]: '+' alone in its level. §4.7.1.3 example. */
	    "sport+",
	    "+sport",
	    "a/+b",
	    "a/b+/c",
	    "++",
	    "+#",
	    "#+",
	    "a/++",
	    /* [MQTT-4.8.2-1], [MQTT-4.8.2-2]: share name non-empty, no + # /,
	     * followed by '/' and a filter. */
	    "$share/",
	    "$share//f",
	    "$share/g",
	    "$share/g/",
	    "$share/+/f",
	    "$share/#/f",
	    "$share/g+/f",
	    "$share/g#/f",
	    "$share/a+b/f",
	    "$share/g/a#",
	    "$share/g/sport+",
	    "$share//",
	};
	for (size_t i = 0; i < N(bad); i++)
		cr_expect_eq(mqtt_topic_filter_check(v(bad[i])), MQTT_RC_TOPIC_FILTER_INVALID,
		             "\"%s\" should be invalid", bad[i]);
}

/* ---------------------------------------------------------- filter split */

static void split_is(const char *f, bool shared, const char *group, const char *filter)
{
	struct mqtt_filter_parts parts;
	memset(&parts, 0xA5, sizeof(parts));
	mqtt_filter_split(v(f), &parts);
	cr_expect_eq(parts.shared, shared, "\"%s\": shared %d", f, parts.shared);
	cr_expect(mqtt_view_eq_str(parts.group, group), "\"%s\": group \"%.*s\" want \"%s\"", f,
	          (int)parts.group.len, parts.group.len ? (const char *)parts.group.ptr : "",
	          group);
	cr_expect(mqtt_view_eq_str(parts.filter, filter), "\"%s\": filter \"%.*s\" want \"%s\"", f,
	          (int)parts.filter.len, parts.filter.len ? (const char *)parts.filter.ptr : "",
	          filter);
}

Test(topic, filter_split)
{
	split_is("$share/grp/a/b", true, "grp", "a/b");
	split_is("$share/g/#", true, "g", "#");
	split_is("$share/consumer1/sport/tennis/+", true, "consumer1", "sport/tennis/+");
	split_is("$share/g//", true, "g", "/");
	split_is("$share/g/$share/x", true, "g", "$share/x");
	split_is("a/b", false, "", "a/b");
	split_is("#", false, "", "#");
	split_is("$sharex/a", false, "", "$sharex/a");
	split_is("$share", false, "", "$share");
	split_is("$SYS/#", false, "", "$SYS/#");
}

/* The split parts point into the original bytes (zero copy). */
Test(topic, filter_split_points_into_input)
{
	const char *f = "$share/g/x/y";
	struct mqtt_filter_parts parts;
	mqtt_filter_split(v(f), &parts);
	cr_assert(parts.shared);
	cr_assert_eq((const char *)parts.group.ptr, f + 7);
	cr_assert_eq((const char *)parts.filter.ptr, f + 9);
}

/* ------------------------------------------------------------ levels */

static void levels_are(const char *s, const char *const *want, size_t n)
{
	struct mqtt_level_iter it;
	struct mqtt_view l;
	mqtt_level_iter_init(&it, v(s));
	for (size_t i = 0; i < n; i++) {
		cr_assert(mqtt_level_iter_next(&it, &l), "\"%s\": level %zu missing", s, i);
		cr_expect(mqtt_view_eq_str(l, want[i]), "\"%s\": level %zu is \"%.*s\" want \"%s\"",
		          s, i, (int)l.len, l.len ? (const char *)l.ptr : "", want[i]);
	}
	cr_expect_not(mqtt_level_iter_next(&it, &l), "\"%s\": more than %zu levels", s, n);
	cr_expect_not(mqtt_level_iter_next(&it, &l), "\"%s\": iterator restarted", s);
	cr_expect_eq(mqtt_topic_levels(v(s)), n, "\"%s\": mqtt_topic_levels %u want %zu", s,
	             mqtt_topic_levels(v(s)), n);
}

Test(topic, level_iteration)
{
	levels_are("a", (const char *const[]){"a"}, 1);
	levels_are("a/b/c", (const char *const[]){"a", "b", "c"}, 3);
	levels_are("sport/tennis/player1", (const char *const[]){"sport", "tennis", "player1"}, 3);
	/* §4.7.1.1: adjacent separators are a zero-length level. */
	levels_are("a//b", (const char *const[]){"a", "", "b"}, 3);
	levels_are("/finance", (const char *const[]){"", "finance"}, 2);
	levels_are("a/", (const char *const[]){"a", ""}, 2);
	levels_are("/", (const char *const[]){"", ""}, 2);
	levels_are("//", (const char *const[]){"", "", ""}, 3);
	levels_are("/a/", (const char *const[]){"", "a", ""}, 3);
	levels_are("+/#", (const char *const[]){"+", "#"}, 2);
}

Test(topic, levels_count)
{
	/* "one more than the count of '/'", including for the empty string. */
	cr_expect_eq(mqtt_topic_levels(v("")), 1);
	cr_expect_eq(mqtt_topic_levels(v("abc")), 1);
	cr_expect_eq(mqtt_topic_levels(v("a/b/c/d/e")), 5);
	cr_expect_eq(mqtt_topic_levels(v("///")), 4);
}

/* ------------------------------------------------------------- matching */

struct m {
	const char *filter;
	const char *topic;
	bool match;
};

static void check_matches(const struct m *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cr_expect_eq(mqtt_topic_match(v(rows[i].filter), v(rows[i].topic)), rows[i].match,
		             "filter \"%s\" topic \"%s\": want %s", rows[i].filter, rows[i].topic,
		             rows[i].match ? "match" : "no match");
}

Test(topic, match_multi_level_examples)
{
	/* §4.7.1.2 */
	static const struct m rows[] = {
	    {"sport/tennis/player1/#", "sport/tennis/player1", true},
	    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
	    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
	    {"sport/tennis/player1/#", "sport/tennis/player2", false},
	    {"sport/tennis/player1/#", "sport/tennis", false},
	    {"sport/#", "sport", true},
	    {"sport/#", "sport/", true},
	    {"sport/#", "sports", false},
	    {"sport/#", "sport/tennis/player1", true},
	    {"#", "sport", true},
	    {"#", "sport/tennis/player1", true},
	    {"#", "/", true},
	    {"#", "/finance", true},
	    {"a/b/#", "a", false},
	    {"a/b/#", "a/b", true},
	};
	check_matches(rows, N(rows));
}

Test(topic, match_single_level_examples)
{
	/* §4.7.1.3 */
	static const struct m rows[] = {
	    {"sport/tennis/+", "sport/tennis/player1", true},
	    {"sport/tennis/+", "sport/tennis/player2", true},
	    {"sport/tennis/+", "sport/tennis/player1/ranking", false},
	    {"sport/tennis/+", "sport/tennis", false},
	    {"sport/+", "sport", false},
	    {"sport/+", "sport/", true},
	    {"+/+", "/finance", true},
	    {"/+", "/finance", true},
	    {"+", "/finance", false},
	    {"+", "finance", true},
	    {"+/tennis/#", "sport/tennis/player1", true},
	    {"+/tennis/#", "sport/tennis", true},
	    {"+/tennis/#", "sport/golf", false},
	    {"sport/+/player1", "sport/tennis/player1", true},
	    {"sport/+/player1", "sport//player1", true},
	    {"sport/+/player1", "sport/tennis/player2", false},
	    {"a/+/#", "a", false},
	    {"a/+/#", "a/b", true},
	    {"+/+", "a", false},
	    {"+/+/+", "a/b/c", true},
	    {"+/+/+", "a/b", false},
	};
	check_matches(rows, N(rows));
}

Test(topic, match_dollar_topics)
{
	/* §4.7.2, [MQTT-4.7.2-1]. */
	static const struct m rows[] = {
	    {"#", "$SYS/monitor/Clients", false},
	    {"#", "$SYS", false},
	    {"+/monitor/Clients", "$SYS/monitor/Clients", false},
	    {"+", "$SYS", false},
	    {"+/#", "$SYS/x", false},
	    {"$SYS/#", "$SYS/monitor/Clients", true},
	    {"$SYS/#", "$SYS", true},
	    {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
	    {"$SYS/+/Clients", "$SYS/monitor/Clients", true},
	    {"$SYS", "$SYS", true},
	    /* '$' matters only as the first character of the topic. */
	    {"+/$x", "a/$x", true},
	    {"a/+", "a/$x", true},
	    {"#", "a/$SYS", true},
	};
	check_matches(rows, N(rows));
}

Test(topic, match_exact)
{
	/* §4.7.3: case sensitive, spaces allowed, leading '/' is distinct. */
	static const struct m rows[] = {
	    {"ACCOUNTS", "ACCOUNTS", true},
	    {"ACCOUNTS", "Accounts", false},
	    {"Accounts payable", "Accounts payable", true},
	    {"/finance", "finance", false},
	    {"finance", "/finance", false},
	    {"sport/tennis", "sport/tennis/", false},
	    {"sport/tennis/", "sport/tennis", false},
	    {"a/b", "a/b/c", false},
	    {"a/b/c", "a/b", false},
	    {"a//b", "a//b", true},
	    {"a//b", "a/b", false},
	    {"", "a", false},
	};
	check_matches(rows, N(rows));
}

/* ----------------------------------------------------------------- UTF-8 */

struct u {
	const char *name;
	const char *s;
	size_t n;
	bool ok;
};

#define U(name, lit, ok)                                                                           \
	{                                                                                          \
		name, lit, sizeof(lit) - 1, ok                                                     \
	}

static const struct u utf8_rows[] = {
    U("empty", "", true),
    U("ASCII", "hello/world", true),
    U("U+0001 (well-formed; only SHOULD NOT)", "\x01", true),
    U("U+007F", "\x7F", true),
    U("U+0080 C2 80", "\xC2\x80", true),
    U("U+07FF DF BF", "\xDF\xBF", true),
    U("U+0800 E0 A0 80", "\xE0\xA0\x80", true),
    U("U+D7FF ED 9F BF", "\xED\x9F\xBF", true),
    U("U+E000 EE 80 80", "\xEE\x80\x80", true),
    U("U+FEFF EF BB BF", "\xEF\xBB\xBF", true),
    U("U+FFFF EF BF BF", "\xEF\xBF\xBF", true),
    U("U+10000 F0 90 80 80", "\xF0\x90\x80\x80", true),
    U("U+10FFFF F4 8F BF BF", "\xF4\x8F\xBF\xBF", true),
    U("U+2A6D4 in text", "A\xF0\xAA\x9B\x94", true),
    /* [MQTT-1.5.4-2] */
    U("U+0000", "\x00", false),
    U("U+0000 inside",
      "a\x00"
      "b",
      false),
    U("overlong U+0000 C0 80", "\xC0\x80", false),
    /* Overlong forms. */
    U("overlong '/' C0 AF", "\xC0\xAF", false),
    U("overlong C1 BF", "\xC1\xBF", false),
    U("overlong E0 80 AF", "\xE0\x80\xAF", false),
    U("overlong U+07FF E0 9F BF", "\xE0\x9F\xBF", false),
    U("overlong U+FFFF F0 8F BF BF", "\xF0\x8F\xBF\xBF", false),
    /* [MQTT-1.5.4-1]: surrogates. */
    U("U+D800 ED A0 80", "\xED\xA0\x80", false),
    U("U+DBFF ED AF BF", "\xED\xAF\xBF", false),
    U("U+DC00 ED B0 80", "\xED\xB0\x80", false),
    U("U+DFFF ED BF BF", "\xED\xBF\xBF", false),
    U("CESU pair ED A0 BD ED B8 80", "\xED\xA0\xBD\xED\xB8\x80", false),
    /* Beyond Unicode. */
    U("U+110000 F4 90 80 80", "\xF4\x90\x80\x80", false),
    U("F5 80 80 80", "\xF5\x80\x80\x80", false),
    U("F7 BF BF BF", "\xF7\xBF\xBF\xBF", false),
    U("5-byte F8 88 80 80 80", "\xF8\x88\x80\x80\x80", false),
    U("6-byte FC 84 80 80 80 80", "\xFC\x84\x80\x80\x80\x80", false),
    U("FE", "\xFE", false),
    U("FF", "\xFF", false),
    /* Continuations. */
    U("lone continuation 80", "\x80", false),
    U("lone continuation BF after ASCII", "a\xBF", false),
    U("bad continuation C2 41", "\xC2\x41", false),
    U("bad continuation E2 28 A1", "\xE2\x28\xA1", false),
    U("bad continuation E2 82 28", "\xE2\x82\x28", false),
    U("bad continuation F0 28 8C BC", "\xF0\x28\x8C\xBC", false),
    U("bad continuation F0 90 28 BC", "\xF0\x90\x28\xBC", false),
    U("bad continuation F0 90 8C 28", "\xF0\x90\x8C\x28", false),
    U("two leads C3 C3", "\xC3\xC3", false),
    /* Truncated sequences at the end. */
    U("truncated C2", "\xC2", false),
    U("truncated E2 82", "\xE2\x82", false),
    U("truncated F0 90 80", "\xF0\x90\x80", false),
    U("truncated after ASCII", "abc\xE2\x82", false),
};

Test(utf8, table)
{
	for (size_t i = 0; i < N(utf8_rows); i++) {
		const struct u *r = &utf8_rows[i];
		cr_expect_eq(mqtt_utf8_valid((const uint8_t *)r->s, r->n), r->ok, "[%s] want %s",
		             r->name, r->ok ? "valid" : "invalid");
	}
}

/* The length bounds the check: bytes past it are not looked at. */
Test(utf8, length_is_respected)
{
	cr_expect(mqtt_utf8_valid((const uint8_t *)"ab\0", 2));
	cr_expect(mqtt_utf8_valid((const uint8_t *)"ab\xFF", 2));
	/* A valid two-byte character cut by the length is truncated. */
	cr_expect_not(mqtt_utf8_valid((const uint8_t *)"a\xC3\xA9", 2));
	cr_expect(mqtt_utf8_valid((const uint8_t *)"a\xC3\xA9", 3));
}

/* Long strings, a bad byte at every position: the word-at-a-time ASCII
 * path must see a U+0000 or a stray high byte wherever it sits. */
Test(utf8, bad_byte_at_every_position)
{
	uint8_t s[40];
	for (size_t n = 1; n <= sizeof(s); n++) {
		for (size_t k = 0; k < n; k++) {
			memset(s, 'a', n);
			cr_expect(mqtt_utf8_valid(s, n), "n %zu all ASCII", n);
			s[k] = 0x00;
			cr_expect_not(mqtt_utf8_valid(s, n), "n %zu U+0000 at %zu", n, k);
			s[k] = 0x80;
			cr_expect_not(mqtt_utf8_valid(s, n), "n %zu 0x80 at %zu", n, k);
			s[k] = 0xFF;
			cr_expect_not(mqtt_utf8_valid(s, n), "n %zu 0xFF at %zu", n, k);
			if (k + 1 < n) {
				s[k] = 0xC3;
				s[k + 1] = 0xA9; /* é */
				cr_expect(mqtt_utf8_valid(s, n), "n %zu é at %zu", n, k);
				s[k + 1] = 0x00; /* continuation replaced by NUL */
				cr_expect_not(mqtt_utf8_valid(s, n), "n %zu C3 00 at %zu", n, k);
			}
			if (k + 3 < n) {
				memcpy(s + k, "\xED\xA0\x80", 3); /* surrogate */
				cr_expect_not(mqtt_utf8_valid(s, n), "n %zu D800 at %zu", n, k);
			}
		}
	}
}
