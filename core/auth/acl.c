/*
 * acl.c — owns the ACL file parser and the decisions made from a loaded ACL
 * (semantics and file format in acl.h).
 *
 * Who may call: acl_load() / acl_parse() from any thread (the broker loads
 * at start and on SIGHUP); they touch nothing but the struct they build, so
 * a failed reload leaves the running ACL as it was. acl_check() from any
 * number of threads at once: a loaded struct acl is never written again (no
 * lazy caches, no counters), so readers need no lock. acl_free() once no
 * reader can still hold the pointer (the broker's job).
 *
 * Layout: one arena holds every name and filter; one rule array holds every
 * rule, grouped by section, so a section is a (first, count) range. Section
 * 0 is the anonymous section and section 1 the patterns; `user` and `client`
 * sections are found by an open-addressing hash table over (kind, name), so
 * a check costs at most two probes plus the rules that apply, never a scan
 * of every section. Patterns are one list, tried for every request.
 *
 * Invariants of a loaded ACL:
 *  - every rule filter passed mqtt_topic_filter_check(), is not "$share/",
 *    is valid UTF-8 and at most ACL_FILTER_MAX_BYTES long;
 *  - a substituted pattern value never holds '/', '+', '#' or NUL and is
 *    not empty, so substitution keeps a filter valid and cannot add levels
 *    or wildcards;
 *  - sections' ranges tile the rule array in section order.
 *
 * Matching is §4.7 of MQTT 5.0 via mqtt_topic_match(), the reference
 * matcher, including [MQTT-4.7.2-1] ('$' topics and leading wildcards).
 * covers() and overlaps() below reason about two filters with the same
 * rules; tests/unit/acl_test.c checks them against topic enumeration.
 *
 * Limits: ACL_FILE_MAX_BYTES per file, ACL_RULES_MAX rules,
 * ACL_NAME_MAX_BYTES per name, ACL_FILTER_MAX_BYTES per filter before and
 * after substitution (the substitution buffer is on the stack: no
 * allocation in acl_check).
 */
#include "auth/acl.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/errmsg.h"
#include "base/file.h"
#include "mqtt.h"
#include "topic.h"
#include "utf8.h"
#include "view.h"

#define SECTION_ANON    0u  /* index of the anonymous section */
#define SECTION_PATTERN 1u  /* index of the pattern list */
#define QUOTE_MAX_BYTES 200 /* of a filter or word quoted in an error */

enum section_kind {
	KIND_ANON,
	KIND_PATTERN,
	KIND_USER,
	KIND_CLIENT,
};

enum rule_flag {
	RULE_DENY = 1,  /* deny: matches refuse, grants is 0 */
	RULE_HAS_U = 2, /* pattern holding %u */
	RULE_HAS_C = 4, /* pattern holding %c */
};

struct acl_rule {
	uint32_t filter_off; /* of the filter in acl.text */
	uint16_t filter_len; /* bytes, 1..ACL_FILTER_MAX_BYTES */
	uint8_t grants;      /* enum acl_access bits allowed; 0 for deny */
	uint8_t flags;       /* enum rule_flag bits */
};

struct acl_section {
	uint32_t name_off;   /* of the name in acl.text; user and client only */
	uint16_t name_len;   /* bytes, 1..ACL_NAME_MAX_BYTES */
	uint8_t kind;        /* enum section_kind */
	uint32_t rule_first; /* index of its first rule in acl.rules */
	uint32_t rule_count; /* rules in the section */
};

struct acl {
	char *text;                   /* arena of names and filters */
	size_t text_len, text_cap;    /* bytes used, allocated */
	struct acl_rule *rules;       /* grouped by section, in file order within one */
	size_t rule_count;            /* topic and pattern lines */
	struct acl_section *sections; /* [0] anonymous, [1] patterns, then named */
	size_t section_count;         /* used */
	size_t section_cap;           /* allocated */
	uint32_t *slots;              /* hash table: section index + 1, 0 = empty */
	size_t slot_count;            /* power of two, more than twice the named sections */
	unsigned user_line;           /* first `user` line or `%u` pattern; 0: none */
};

/* ---- errors, hashing, small helpers ------------------------------------- */

/* FNV-1a over the kind and the name: names come from the operator's file,
 * lookups never insert, so a client cannot flood the table. */
static uint64_t hash_name(uint8_t kind, const char *name, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	h = (h ^ kind) * 0x100000001b3ULL;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)name[i]) * 0x100000001b3ULL;
	return h;
}

static const struct acl_section *find_section(const struct acl *a, uint8_t kind, const char *name,
                                              size_t len)
{
	if (a->slot_count == 0 || len == 0 || len > ACL_NAME_MAX_BYTES)
		return NULL;
	size_t mask = a->slot_count - 1;
	for (size_t i = hash_name(kind, name, len) & mask;; i = (i + 1) & mask) {
		uint32_t s = a->slots[i];
		if (s == 0)
			return NULL;
		const struct acl_section *sec = &a->sections[s - 1];
		if (sec->kind == kind && sec->name_len == len &&
		    memcmp(a->text + sec->name_off, name, len) == 0)
			return sec;
	}
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static bool is_level(struct mqtt_view l, char c)
{
	return l.len == 1 && l.ptr[0] == c;
}

/* ---- the two filter relations ------------------------------------------ */

/*
 * Does rule filter r match every topic that filter f can match? Level by
 * level: r's '#' takes the rest (and the parent: "a/#" covers "a"), r's '+'
 * takes a '+' or a literal, a literal only the same literal; f's '#' only
 * r's '#'. [MQTT-4.7.2-1]: when f starts with a '$' literal its topics start
 * with '$', which r's leading wildcard cannot match; when f starts with a
 * wildcard its topics never start with '$', so nothing is lost.
 */
static bool covers(struct mqtt_view r, struct mqtt_view f)
{
	if (f.ptr[0] == '$' && (r.ptr[0] == '+' || r.ptr[0] == '#'))
		return false;
	/* The one case where '+' covers '#': "#" matches no zero-level topic,
	 * so it matches exactly what "+/#" matches. */
	if (f.len == 1 && f.ptr[0] == '#' && r.len == 3 && memcmp(r.ptr, "+/#", 3) == 0)
		return true;
	struct mqtt_level_iter ri, fi;
	struct mqtt_view rl, fl;
	mqtt_level_iter_init(&ri, r);
	mqtt_level_iter_init(&fi, f);
	for (;;) {
		bool have_r = mqtt_level_iter_next(&ri, &rl);
		bool have_f = mqtt_level_iter_next(&fi, &fl);
		if (!have_r)
			return !have_f;
		if (is_level(rl, '#'))
			return true;
		if (!have_f || is_level(fl, '#'))
			return false;
		if (is_level(rl, '+'))
			continue;
		if (is_level(fl, '+') || !mqtt_view_eq(rl, fl))
			return false;
	}
}

/*
 * Is there a topic both filters match? A false "no" would let the fast path
 * skip a deny, a false "yes" only costs receive checks; the answer is exact
 * (the filters are valid and non-empty, so a common topic is never the
 * empty one). [MQTT-4.7.2-1]: a filter starting with a wildcard matches no
 * '$' topic, one starting with '$' only '$' topics.
 */
static bool overlaps(struct mqtt_view d, struct mqtt_view f)
{
	bool d_wild = d.ptr[0] == '+' || d.ptr[0] == '#';
	bool f_wild = f.ptr[0] == '+' || f.ptr[0] == '#';
	if ((d_wild && f.ptr[0] == '$') || (f_wild && d.ptr[0] == '$'))
		return false;
	struct mqtt_level_iter di, fi;
	struct mqtt_view dl, fl;
	mqtt_level_iter_init(&di, d);
	mqtt_level_iter_init(&fi, f);
	for (;;) {
		bool have_d = mqtt_level_iter_next(&di, &dl);
		bool have_f = mqtt_level_iter_next(&fi, &fl);
		if (!have_d && !have_f)
			return true;
		if ((have_d && is_level(dl, '#')) || (have_f && is_level(fl, '#')))
			return true; /* '#' also matches its parent: "a/#" ~ "a" */
		if (!have_d || !have_f)
			return false;
		if (is_level(dl, '+') || is_level(fl, '+'))
			continue;
		if (!mqtt_view_eq(dl, fl))
			return false;
	}
}

/* ---- acl_check ------------------------------------------------------------ */

/* One request, as the rules see it. */
struct request {
	enum acl_access access;
	struct mqtt_view target; /* topic name, or the plain filter for SUBSCRIBE */
	const char *user;        /* NULL = anonymous */
	size_t user_len;
	const char *client_id;
	size_t client_id_len;
	bool user_usable;   /* %u may be substituted */
	bool client_usable; /* %c may be substituted */
};

/* What the rules seen so far say. */
struct verdict {
	bool denied;       /* a deny rule matches the topic / covers the filter */
	bool allowed;      /* a granting rule matches the topic / covers the filter */
	bool deny_overlap; /* SUBSCRIBE: a deny rule overlaps the filter */
	bool recv_covered; /* SUBSCRIBE: a read rule covers the filter */
};

static void apply_rule(const struct acl_rule *r, struct mqtt_view filter, const struct request *rq,
                       struct verdict *v)
{
	if (rq->access != ACL_SUBSCRIBE) {
		if (r->flags & RULE_DENY) {
			if (mqtt_topic_match(filter, rq->target))
				v->denied = true;
		} else if (!v->allowed && (r->grants & rq->access) &&
		           mqtt_topic_match(filter, rq->target)) {
			v->allowed = true;
		}
		return;
	}
	if (r->flags & RULE_DENY) {
		/* covers implies overlaps: F matches at least one topic. */
		if (overlaps(filter, rq->target)) {
			v->deny_overlap = true;
			v->denied = covers(filter, rq->target);
		}
		return;
	}
	bool sub = (r->grants & ACL_SUBSCRIBE) && !v->allowed;
	bool recv = (r->grants & ACL_RECEIVE) && !v->recv_covered;
	if ((sub || recv) && covers(filter, rq->target)) {
		v->allowed |= sub;
		v->recv_covered |= recv;
	}
}

static void apply_section(const struct acl *a, const struct acl_section *s,
                          const struct request *rq, struct verdict *v)
{
	const struct acl_rule *r = a->rules + s->rule_first;
	for (uint32_t i = 0; i < s->rule_count && !v->denied; i++) {
		struct mqtt_view f = {(const uint8_t *)a->text + r[i].filter_off, r[i].filter_len};
		apply_rule(&r[i], f, rq, v);
	}
}

/* A value %u or %c may become: one non-empty level, no wildcard, no NUL. */
static bool value_usable(const char *s, size_t len)
{
	if (len == 0 || len > ACL_FILTER_MAX_BYTES)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '/' || s[i] == '+' || s[i] == '#' || s[i] == '\0')
			return false;
	return true;
}

/*
 * Write pattern p with %u and %c replaced into buf. false when the pattern
 * does not apply: a value it needs is unusable, a '$' value would start the
 * filter (it would reach the '$' topics [MQTT-4.7.2-1]), or the result is
 * longer than ACL_FILTER_MAX_BYTES.
 */
static bool substitute(struct mqtt_view p, uint8_t flags, const struct request *rq, uint8_t *buf,
                       struct mqtt_view *out)
{
	if (((flags & RULE_HAS_U) && !rq->user_usable) ||
	    ((flags & RULE_HAS_C) && !rq->client_usable))
		return false;
	size_t o = 0;
	for (uint32_t i = 0; i < p.len; i++) {
		if (p.ptr[i] == '%' && i + 1 < p.len &&
		    (p.ptr[i + 1] == 'u' || p.ptr[i + 1] == 'c')) {
			bool u = p.ptr[i + 1] == 'u';
			const char *val = u ? rq->user : rq->client_id;
			size_t val_len = u ? rq->user_len : rq->client_id_len;
			if (o == 0 && val[0] == '$')
				return false;
			if (val_len > ACL_FILTER_MAX_BYTES - o)
				return false;
			memcpy(buf + o, val, val_len);
			o += val_len;
			i++;
			continue;
		}
		if (o == ACL_FILTER_MAX_BYTES)
			return false;
		buf[o++] = p.ptr[i];
	}
	*out = (struct mqtt_view){buf, (uint32_t)o};
	return true;
}

/* Out of line so that requests without patterns never set up its stack. */
__attribute__((noinline)) static void apply_patterns(const struct acl *a, const struct request *rq,
                                                     struct verdict *v)
{
	uint8_t buf[ACL_FILTER_MAX_BYTES];
	const struct acl_section *s = &a->sections[SECTION_PATTERN];
	const struct acl_rule *r = a->rules + s->rule_first;
	for (uint32_t i = 0; i < s->rule_count && !v->denied; i++) {
		struct mqtt_view f = {(const uint8_t *)a->text + r[i].filter_off, r[i].filter_len};
		if ((r[i].flags & (RULE_HAS_U | RULE_HAS_C)) &&
		    !substitute(f, r[i].flags, rq, buf, &f))
			continue;
		apply_rule(&r[i], f, rq, v);
	}
}

bool acl_check(const struct acl *a, const char *user, size_t user_len, const char *client_id,
               size_t client_id_len, enum acl_access access, const char *topic, size_t topic_len,
               bool *receive_check_out)
{
	assert(a != NULL);
	assert(access == ACL_PUBLISH || access == ACL_SUBSCRIBE || access == ACL_RECEIVE);
	assert(client_id != NULL || client_id_len == 0);
	assert(topic != NULL || topic_len == 0);
	if (access == ACL_SUBSCRIBE && receive_check_out != NULL)
		*receive_check_out = true;
	if (topic_len == 0 || topic_len > ACL_FILTER_MAX_BYTES)
		return false;

	struct mqtt_view t = {(const uint8_t *)topic, (uint32_t)topic_len};
	if (access == ACL_SUBSCRIBE) {
		if (mqtt_topic_filter_check(t) != MQTT_RC_SUCCESS)
			return false;
		struct mqtt_filter_parts parts;
		mqtt_filter_split(t, &parts);
		t = parts.filter; /* "$share/g/f" is checked as f */
	} else if (!mqtt_topic_name_valid(t)) {
		return false;
	}

	struct request rq = {
	    .access = access,
	    .target = t,
	    .user = user,
	    .user_len = user_len,
	    .client_id = client_id,
	    .client_id_len = client_id_len,
	    .user_usable = user != NULL && value_usable(user, user_len),
	    .client_usable = client_id != NULL && value_usable(client_id, client_id_len),
	};
	struct verdict v = {0};
	const struct acl_section *s;
	if (user != NULL && (s = find_section(a, KIND_USER, user, user_len)) != NULL)
		apply_section(a, s, &rq, &v);
	if (!v.denied && (s = find_section(a, KIND_CLIENT, client_id, client_id_len)) != NULL)
		apply_section(a, s, &rq, &v);
	if (!v.denied && user == NULL)
		apply_section(a, &a->sections[SECTION_ANON], &rq, &v);
	if (!v.denied && a->sections[SECTION_PATTERN].rule_count > 0)
		apply_patterns(a, &rq, &v);

	bool ok = v.allowed && !v.denied;
	if (access == ACL_SUBSCRIBE && receive_check_out != NULL)
		*receive_check_out = !(ok && v.recv_covered && !v.deny_overlap);
	return ok;
}

unsigned acl_user_line(const struct acl *a)
{
	return a->user_line;
}

size_t acl_rule_count(const struct acl *a)
{
	assert(a != NULL);
	return a->rule_count;
}

void acl_free(struct acl *a)
{
	if (a == NULL)
		return;
	free(a->text);
	free(a->rules);
	free(a->sections);
	free(a->slots);
	free(a);
}

/* ---- parsing -------------------------------------------------------------- */

/* A rule while parsing: rules of a section named twice are not adjacent yet. */
struct pending {
	uint32_t section;
	struct acl_rule rule;
};

struct parser {
	const char *name; /* of the file, for messages */
	unsigned line;    /* 1-based, of the line being parsed */
	char *err;        /* caller's buffer */
	size_t err_len;
	struct acl *a;        /* being built */
	struct pending *pend; /* every rule so far */
	size_t pend_count, pend_cap;
	uint32_t section; /* where `topic` lines go */
};

static const struct {
	const char *word;
	uint8_t grants;
	uint8_t flags;
} access_words[] = {
    {"read", ACL_SUBSCRIBE | ACL_RECEIVE, 0},
    {"write", ACL_PUBLISH, 0},
    {"readwrite", ACL_PUBLISH | ACL_SUBSCRIBE | ACL_RECEIVE, 0},
    {"subscribe", ACL_SUBSCRIBE, 0},
    {"deny", 0, RULE_DENY},
};
#define ACCESS_WORD_COUNT (sizeof(access_words) / sizeof(access_words[0]))

static bool word_is(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && memcmp(s, word, len) == 0;
}

static int access_word(const char *s, size_t len)
{
	for (size_t i = 0; i < ACCESS_WORD_COUNT; i++)
		if (word_is(s, len, access_words[i].word))
			return (int)i;
	return -1;
}

static int oom(struct parser *ps)
{
	seterr(ps->err, ps->err_len, "%s: out of memory", ps->name);
	return -1;
}

/* Copy s into the arena; *off_out is where it went. */
static int arena_put(struct parser *ps, const char *s, size_t len, uint32_t *off_out)
{
	struct acl *a = ps->a;
	if (a->text_cap - a->text_len < len) {
		size_t cap = a->text_cap ? a->text_cap : 4096;
		while (cap - a->text_len < len)
			cap *= 2;
		char *t = realloc(a->text, cap);
		if (t == NULL)
			return oom(ps);
		a->text = t;
		a->text_cap = cap;
	}
	/* The arena is never larger than the text it was copied from. */
	assert(a->text_len + len <= ACL_FILE_MAX_BYTES);
	memcpy(a->text + a->text_len, s, len);
	*off_out = (uint32_t)a->text_len;
	a->text_len += len;
	return 0;
}

static void slot_insert(uint32_t *slots, size_t slot_count, const struct acl *a, uint32_t index)
{
	const struct acl_section *s = &a->sections[index];
	size_t mask = slot_count - 1;
	size_t i = hash_name(s->kind, a->text + s->name_off, s->name_len) & mask;
	while (slots[i] != 0)
		i = (i + 1) & mask;
	slots[i] = index + 1;
}

static int add_section(struct parser *ps, uint8_t kind, const char *name, size_t len)
{
	struct acl *a = ps->a;
	const struct acl_section *old = find_section(a, kind, name, len);
	if (old != NULL) {
		ps->section = (uint32_t)(old - a->sections);
		return 0;
	}
	if (a->section_count == a->section_cap) {
		size_t cap = a->section_cap * 2;
		struct acl_section *s = realloc(a->sections, cap * sizeof(*s));
		if (s == NULL)
			return oom(ps);
		a->sections = s;
		a->section_cap = cap;
	}
	/* Keep the table under half full so probes stay short. */
	if ((a->section_count + 1) * 2 > a->slot_count) {
		size_t count = a->slot_count ? a->slot_count * 2 : 64;
		uint32_t *slots = calloc(count, sizeof(*slots));
		if (slots == NULL)
			return oom(ps);
		for (size_t i = SECTION_PATTERN + 1; i < a->section_count; i++)
			slot_insert(slots, count, a, (uint32_t)i);
		free(a->slots);
		a->slots = slots;
		a->slot_count = count;
	}
	struct acl_section *s = &a->sections[a->section_count];
	*s = (struct acl_section){.kind = kind, .name_len = (uint16_t)len};
	if (arena_put(ps, name, len, &s->name_off) < 0)
		return -1;
	slot_insert(a->slots, a->slot_count, a, (uint32_t)a->section_count);
	ps->section = (uint32_t)a->section_count++;
	return 0;
}

/* `user NAME` / `client NAME`: rest is the trimmed rest of the line. */
static int parse_section(struct parser *ps, const char *kw, uint8_t kind, const char *rest,
                         size_t rest_len)
{
	const char *what = kind == KIND_USER ? "user name" : "client id";
	if (rest_len == 0) {
		seterr(ps->err, ps->err_len, "%s:%u: %s: missing %s", ps->name, ps->line, kw, what);
		return -1;
	}
	if (rest_len > ACL_NAME_MAX_BYTES) {
		seterr(ps->err, ps->err_len, "%s:%u: %s: %s is longer than %u bytes", ps->name,
		       ps->line, kw, what, ACL_NAME_MAX_BYTES);
		return -1;
	}
	if (!mqtt_utf8_valid((const uint8_t *)rest, rest_len)) {
		seterr(ps->err, ps->err_len, "%s:%u: %s: %s is not valid UTF-8", ps->name, ps->line,
		       kw, what);
		return -1;
	}
	if (kind == KIND_USER && ps->a->user_line == 0)
		ps->a->user_line = ps->line;
	return add_section(ps, kind, rest, rest_len);
}

/* `topic [ACCESS] FILTER` / `pattern [ACCESS] FILTER`. */
static int parse_rule(struct parser *ps, const char *kw, bool pattern, const char *rest,
                      size_t rest_len)
{
	const char *filter = rest;
	size_t filter_len = rest_len;
	int w = 2; /* readwrite when ACCESS is left out, as mosquitto */
	const char *blank = NULL;
	for (size_t i = 0; i < rest_len && blank == NULL; i++)
		if (is_blank(rest[i]))
			blank = rest + i;
	if (blank != NULL) {
		/* With a blank in the text the first word must be ACCESS, so a
		 * misspelt one is an error, not a filter "reed a/b". */
		size_t word_len = (size_t)(blank - rest);
		w = access_word(rest, word_len);
		if (w < 0) {
			seterr(ps->err, ps->err_len,
			       "%s:%u: %s: \"%.*s\" is not an access (read, write, readwrite, "
			       "subscribe, deny)",
			       ps->name, ps->line, kw,
			       (int)(word_len > QUOTE_MAX_BYTES ? QUOTE_MAX_BYTES : word_len),
			       rest);
			return -1;
		}
		filter = blank;
		filter_len = rest_len - word_len;
		while (filter_len > 0 && is_blank(*filter)) {
			filter++;
			filter_len--;
		}
	} else if (access_word(rest, rest_len) >= 0) {
		filter_len = 0; /* "topic read": ACCESS without FILTER */
	}
	if (filter_len == 0) {
		seterr(ps->err, ps->err_len, "%s:%u: %s: missing topic filter", ps->name, ps->line,
		       kw);
		return -1;
	}
	if (filter_len > ACL_FILTER_MAX_BYTES) {
		seterr(ps->err, ps->err_len, "%s:%u: %s: topic filter is longer than %u bytes",
		       ps->name, ps->line, kw, ACL_FILTER_MAX_BYTES);
		return -1;
	}
	int quote_len = (int)(filter_len > QUOTE_MAX_BYTES ? QUOTE_MAX_BYTES : filter_len);
	struct mqtt_view fv = {(const uint8_t *)filter, (uint32_t)filter_len};
	if (!mqtt_utf8_valid(fv.ptr, fv.len)) {
		seterr(ps->err, ps->err_len, "%s:%u: %s: topic filter is not valid UTF-8", ps->name,
		       ps->line, kw);
		return -1;
	}
	if (mqtt_topic_filter_check(fv) != MQTT_RC_SUCCESS) {
		seterr(ps->err, ps->err_len, "%s:%u: %s: \"%.*s\" is not a valid topic filter",
		       ps->name, ps->line, kw, quote_len, filter);
		return -1;
	}
	struct mqtt_filter_parts parts;
	mqtt_filter_split(fv, &parts);
	if (parts.shared) {
		seterr(ps->err, ps->err_len,
		       "%s:%u: %s: \"%.*s\" names a shared subscription; write the topic "
		       "filter without $share/group/",
		       ps->name, ps->line, kw, quote_len, filter);
		return -1;
	}
	if (ps->pend_count == ACL_RULES_MAX) {
		seterr(ps->err, ps->err_len, "%s:%u: more than %u rules", ps->name, ps->line,
		       ACL_RULES_MAX);
		return -1;
	}
	if (ps->pend_count == ps->pend_cap) {
		size_t cap = ps->pend_cap ? ps->pend_cap * 2 : 64;
		struct pending *p = realloc(ps->pend, cap * sizeof(*p));
		if (p == NULL)
			return oom(ps);
		ps->pend = p;
		ps->pend_cap = cap;
	}

	struct pending *p = &ps->pend[ps->pend_count];
	*p = (struct pending){
	    .section = pattern ? SECTION_PATTERN : ps->section,
	    .rule = {.filter_len = (uint16_t)filter_len,
	             .grants = access_words[w].grants,
	             .flags = access_words[w].flags},
	};
	/* %u and %c mean something in patterns only (mosquitto): in a topic
	 * line they are literal text. */
	for (size_t i = 0; pattern && i + 1 < filter_len; i++) {
		if (filter[i] == '%' && filter[i + 1] == 'u') {
			p->rule.flags |= RULE_HAS_U;
			if (ps->a->user_line == 0)
				ps->a->user_line = ps->line;
		}
		if (filter[i] == '%' && filter[i + 1] == 'c')
			p->rule.flags |= RULE_HAS_C;
	}
	if (arena_put(ps, filter, filter_len, &p->rule.filter_off) < 0)
		return -1;
	ps->pend_count++;
	return 0;
}

static int parse_line(struct parser *ps, const char *s, size_t len)
{
	if (memchr(s, '\0', len) != NULL) {
		seterr(ps->err, ps->err_len, "%s:%u: line contains a NUL byte", ps->name, ps->line);
		return -1;
	}
	while (len > 0 && is_blank(s[0])) {
		s++;
		len--;
	}
	while (len > 0 && is_blank(s[len - 1]))
		len--;
	if (len == 0 || s[0] == '#')
		return 0;

	size_t kw_len = 0;
	while (kw_len < len && !is_blank(s[kw_len]))
		kw_len++;
	const char *rest = s + kw_len;
	size_t rest_len = len - kw_len;
	while (rest_len > 0 && is_blank(*rest)) {
		rest++;
		rest_len--;
	}

	if (word_is(s, kw_len, "topic"))
		return parse_rule(ps, "topic", false, rest, rest_len);
	if (word_is(s, kw_len, "pattern"))
		return parse_rule(ps, "pattern", true, rest, rest_len);
	if (word_is(s, kw_len, "user"))
		return parse_section(ps, "user", KIND_USER, rest, rest_len);
	if (word_is(s, kw_len, "client"))
		return parse_section(ps, "client", KIND_CLIENT, rest, rest_len);
	if (word_is(s, kw_len, "anonymous")) {
		if (rest_len > 0) {
			seterr(ps->err, ps->err_len,
			       "%s:%u: anonymous: unexpected \"%.*s\"; the section takes no name",
			       ps->name, ps->line,
			       (int)(rest_len > QUOTE_MAX_BYTES ? QUOTE_MAX_BYTES : rest_len),
			       rest);
			return -1;
		}
		ps->section = SECTION_ANON;
		return 0;
	}
	seterr(ps->err, ps->err_len,
	       "%s:%u: unknown keyword \"%.*s\" (expected topic, pattern, user, client or "
	       "anonymous)",
	       ps->name, ps->line, (int)(kw_len > QUOTE_MAX_BYTES ? QUOTE_MAX_BYTES : kw_len), s);
	return -1;
}

/* Put the pending rules in section order, file order kept within one. */
static int group_rules(struct parser *ps)
{
	struct acl *a = ps->a;
	a->rules = malloc((ps->pend_count ? ps->pend_count : 1) * sizeof(*a->rules));
	if (a->rules == NULL)
		return oom(ps);
	for (size_t i = 0; i < ps->pend_count; i++)
		a->sections[ps->pend[i].section].rule_count++;
	uint32_t next = 0;
	for (size_t i = 0; i < a->section_count; i++) {
		a->sections[i].rule_first = next;
		next += a->sections[i].rule_count;
		a->sections[i].rule_count = 0; /* counted again while placing */
	}
	for (size_t i = 0; i < ps->pend_count; i++) {
		struct acl_section *s = &a->sections[ps->pend[i].section];
		a->rules[s->rule_first + s->rule_count++] = ps->pend[i].rule;
	}
	a->rule_count = ps->pend_count;
	return 0;
}

int acl_parse(const char *name, const char *text, size_t len, struct acl **out, char *err,
              size_t err_len)
{
	assert(name != NULL && out != NULL);
	assert(text != NULL || len == 0);
	if (len > ACL_FILE_MAX_BYTES) {
		seterr(err, err_len, "%s: %zu bytes, more than the limit of %u (64 MiB)", name, len,
		       ACL_FILE_MAX_BYTES);
		return -1;
	}
	struct parser ps = {.name = name, .err = err, .err_len = err_len};
	ps.a = calloc(1, sizeof(*ps.a));
	if (ps.a == NULL)
		return oom(&ps);
	ps.a->section_cap = 16;
	ps.a->sections = calloc(ps.a->section_cap, sizeof(*ps.a->sections));
	if (ps.a->sections == NULL) {
		oom(&ps);
		goto fail;
	}
	ps.a->sections[SECTION_ANON].kind = KIND_ANON;
	ps.a->sections[SECTION_PATTERN].kind = KIND_PATTERN;
	ps.a->section_count = 2;
	ps.section = SECTION_ANON; /* lines before any section (mosquitto) */

	const char *p = text, *end = text + len;
	for (ps.line = 1; p < end; ps.line++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		if (parse_line(&ps, p, (size_t)(eol - p)) < 0)
			goto fail;
		p = nl ? nl + 1 : end;
	}
	if (group_rules(&ps) < 0)
		goto fail;
	free(ps.pend);
	*out = ps.a;
	return 0;
fail:
	free(ps.pend);
	acl_free(ps.a);
	return -1;
}

int acl_load(const char *path, struct acl **out, char *err, size_t err_len)
{
	assert(path != NULL && out != NULL);
	char *buf;
	size_t len;
	if (file_read_all(path, ACL_FILE_MAX_BYTES, &buf, &len, err, err_len) != 0)
		return -1;
	int rc = acl_parse(path, buf, len, out, err, err_len);
	free(buf);
	return rc;
}
