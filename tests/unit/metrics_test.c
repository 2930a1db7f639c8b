/*
 * metrics_test.c — the Prometheus text exposition rendered from a fixed
 * struct metrics_input of two workers: every line is a valid HELP, TYPE or
 * sample line; HELP and TYPE once per family, before its samples, samples
 * of a family together, no series twice; counters end in _total; node-wide
 * figures are the sums over workers (by connection close reason, by drop
 * reason); the index gauges come from worker 0 only; CONNECT outcomes show
 * success always and failures once non-zero; the loop histogram per worker
 * is cumulative with _count and _sum that agree; per-worker families have
 * one sample per worker; the optional memory and process families follow
 * their flags; UINT64_MAX renders exactly; zero workers renders.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/metrics.h"
#include "mqtt.h"

/* ---- the fixed input ---------------------------------------------------- */

static struct worker_stats ws[2];
static uint64_t depth[2];

/* Every word of worker w a distinct value (w1's differ from w0's), then the
 * CONNACK slots cleared so each test picks the failures it wants. */
static struct metrics_input fixture(void)
{
	for (unsigned w = 0; w < 2; w++) {
		uint64_t words[STATS_WORDS];
		for (size_t i = 0; i < STATS_WORDS; i++)
			words[i] = 1000 * (uint64_t)(i + 1) + 7 * (uint64_t)(w + 1);
		memcpy(&ws[w], words, sizeof(ws[w]));
		memset(ws[w].connack, 0, sizeof(ws[w].connack));
	}
	ws[0].subscriptions = 40;
	ws[1].subscriptions = 41; /* a lagging copy: must not be shown or summed */
	ws[0].shared_groups = 3;
	ws[1].shared_groups = 4;
	ws[0].loop_busy_ns = 123456789;
	ws[1].loop_busy_ns = 987654321012ULL;
	depth[0] = 5;
	depth[1] = 9;
	return (struct metrics_input){
	    .version = "1.2.3-test",
	    .workers = 2,
	    .per_worker = ws,
	    .mailbox_depth = depth,
	    .uptime_s = 3725,
	    .ready = true,
	    .have_ops = true,
	    .ops_connections = 3,
	    .ops_accepted = 1001,
	    .ops_evicted = 202,
	    .ops_request_timeouts = 33,
	    .ops_send_timeouts = 4,
	    .ops_unauthorized = 55,
	};
}

/* ---- parsing the exposition --------------------------------------------- */

enum kind { L_HELP, L_TYPE, L_SAMPLE };

struct line {
	enum kind kind;
	char name[128];
	char labels[256]; /* between the braces, raw; "" when none */
	char text[512];   /* HELP text, TYPE type, or the sample's value */
	double value;
};

struct family {
	char name[128];
	char type[16];
	unsigned helps, types, samples;
	bool done; /* another family's sample came after this one's */
};

#define LINES_MAX    4096
#define FAMILIES_MAX 256

struct expo {
	char *text;
	size_t len;
	struct line *line;
	size_t n;
	struct family fam[FAMILIES_MAX];
	size_t nfam;
};

static bool name_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static bool name_char(char c)
{
	return name_start(c) || (c >= '0' && c <= '9');
}

/* A metric name at *p into out; false if there is none. */
static bool take_name(const char **p, char *out, size_t cap, bool colon_ok)
{
	const char *s = *p;
	size_t n = 0;
	if (!name_start(*s) || (!colon_ok && *s == ':'))
		return false;
	while (name_char(*s) && (colon_ok || *s != ':')) {
		if (n + 1 >= cap)
			return false;
		out[n++] = *s++;
	}
	out[n] = '\0';
	*p = s;
	return true;
}

/* {name="value",...} at *p: label names, quoted values with \\ \" \n
 * escapes only. */
static bool take_labels(const char **p, char *out, size_t cap)
{
	const char *s = *p;
	if (*s != '{')
		return false;
	s++;
	const char *start = s;
	for (;;) {
		char lname[64];
		if (!take_name(&s, lname, sizeof(lname), false))
			return false;
		if (*s++ != '=' || *s++ != '"')
			return false;
		while (*s != '"') {
			if (*s == '\0' || *s == '\n')
				return false;
			if (*s == '\\') {
				s++;
				if (*s != '\\' && *s != '"' && *s != 'n')
					return false;
			}
			s++;
		}
		s++;
		if (*s == '}')
			break;
		if (*s++ != ',')
			return false;
	}
	size_t n = (size_t)(s - start);
	if (n + 1 > cap)
		return false;
	memcpy(out, start, n);
	out[n] = '\0';
	*p = s + 1;
	return true;
}

static struct family *fam_find(struct expo *e, const char *name)
{
	for (size_t i = 0; i < e->nfam; i++)
		if (strcmp(e->fam[i].name, name) == 0)
			return &e->fam[i];
	return NULL;
}

static struct family *fam_get(struct expo *e, const char *name)
{
	struct family *f = fam_find(e, name);
	if (f)
		return f;
	cr_assert_lt(e->nfam, FAMILIES_MAX);
	f = &e->fam[e->nfam++];
	memset(f, 0, sizeof(*f));
	snprintf(f->name, sizeof(f->name), "%s", name);
	return f;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The family a sample belongs to: its own name, or a histogram's name less
 * _bucket, _sum or _count. */
static struct family *fam_of_sample(struct expo *e, const char *name)
{
	struct family *f = fam_find(e, name);
	if (f)
		return f;
	static const char *const parts[] = {"_bucket", "_sum", "_count"};
	for (size_t i = 0; i < 3; i++) {
		if (!ends_with(name, parts[i]))
			continue;
		char base[128];
		size_t n = strlen(name) - strlen(parts[i]);
		memcpy(base, name, n);
		base[n] = '\0';
		f = fam_find(e, base);
		if (f && strcmp(f->type, "histogram") == 0)
			return f;
	}
	return NULL;
}

/* Parse one line; assert it is well formed and where its family allows. */
static void parse_line(struct expo *e, const char *s, size_t lineno, struct family **cur)
{
	cr_assert_lt(e->n, LINES_MAX);
	struct line *l = &e->line[e->n++];
	memset(l, 0, sizeof(*l));
	const char *p = s;

	if (strncmp(p, "# HELP ", 7) == 0 || strncmp(p, "# TYPE ", 7) == 0) {
		bool help = p[2] == 'H';
		l->kind = help ? L_HELP : L_TYPE;
		p += 7;
		cr_assert(take_name(&p, l->name, sizeof(l->name), true), "line %zu: bad name: %s",
		          lineno, s);
		cr_assert_eq(*p, ' ', "line %zu: no text: %s", lineno, s);
		p++;
		cr_assert_neq(*p, '\0', "line %zu: empty text: %s", lineno, s);
		snprintf(l->text, sizeof(l->text), "%s", p);
		struct family *f = fam_get(e, l->name);
		cr_assert_eq(f->samples, 0, "line %zu: %s after samples of %s", lineno,
		             help ? "HELP" : "TYPE", l->name);
		if (help) {
			f->helps++;
			for (const char *c = p; *c; c++)
				cr_assert(*c != '\\' || c[1] == '\\' || c[1] == 'n',
				          "line %zu: bad escape in HELP", lineno);
		} else {
			f->types++;
			cr_assert(strcmp(p, "counter") == 0 || strcmp(p, "gauge") == 0 ||
			              strcmp(p, "histogram") == 0,
			          "line %zu: type \"%s\"", lineno, p);
			snprintf(f->type, sizeof(f->type), "%s", p);
		}
		return;
	}

	cr_assert_neq(*p, '#', "line %zu: unknown comment: %s", lineno, s);
	l->kind = L_SAMPLE;
	cr_assert(take_name(&p, l->name, sizeof(l->name), true), "line %zu: bad name: %s", lineno,
	          s);
	if (*p == '{')
		cr_assert(take_labels(&p, l->labels, sizeof(l->labels)), "line %zu: bad labels: %s",
		          lineno, s);
	cr_assert_eq(*p, ' ', "line %zu: no value: %s", lineno, s);
	p++;
	snprintf(l->text, sizeof(l->text), "%s", p);
	char *end;
	errno = 0;
	l->value = strtod(p, &end);
	cr_assert(end != p && *end == '\0', "line %zu: value \"%s\" is not a number", lineno, p);

	struct family *f = fam_of_sample(e, l->name);
	cr_assert_not_null(f, "line %zu: sample of %s before its HELP/TYPE", lineno, l->name);
	cr_assert_eq(f->helps, 1, "line %zu: %s has no HELP", lineno, f->name);
	cr_assert_eq(f->types, 1, "line %zu: %s has no TYPE", lineno, f->name);
	cr_assert(!f->done, "line %zu: samples of %s are not together", lineno, f->name);
	if (*cur && *cur != f)
		(*cur)->done = true;
	*cur = f;
	f->samples++;
}

static struct expo *render(const struct metrics_input *in)
{
	struct expo *e = calloc(1, sizeof(*e));
	cr_assert_not_null(e);
	e->line = calloc(LINES_MAX, sizeof(*e->line));
	cr_assert_not_null(e->line);
	e->len = (size_t)-1;
	e->text = metrics_render(in, &e->len);
	cr_assert_not_null(e->text);
	cr_assert_eq(strlen(e->text), e->len, "*len %zu, strlen %zu", e->len, strlen(e->text));
	cr_assert_gt(e->len, 0);
	cr_assert_eq(e->text[e->len - 1], '\n', "output does not end with a newline");

	struct family *cur = NULL;
	size_t lineno = 0;
	for (const char *s = e->text; *s;) {
		const char *nl = strchr(s, '\n');
		cr_assert_not_null(nl);
		char buf[1024];
		size_t n = (size_t)(nl - s);
		lineno++;
		cr_assert_lt(n, sizeof(buf), "line %zu too long", lineno);
		cr_assert_gt(n, 0, "line %zu is empty", lineno);
		memcpy(buf, s, n);
		buf[n] = '\0';
		parse_line(e, buf, lineno, &cur);
		s = nl + 1;
	}
	return e;
}

static void expo_free(struct expo *e)
{
	free(e->text);
	free(e->line);
	free(e);
}

/* The sample name{labels}; NULL when absent. labels "" for none. */
static const struct line *sample(const struct expo *e, const char *name, const char *labels)
{
	for (size_t i = 0; i < e->n; i++)
		if (e->line[i].kind == L_SAMPLE && strcmp(e->line[i].name, name) == 0 &&
		    strcmp(e->line[i].labels, labels) == 0)
			return &e->line[i];
	return NULL;
}

static size_t count_samples(const struct expo *e, const char *name)
{
	size_t n = 0;
	for (size_t i = 0; i < e->n; i++)
		if (e->line[i].kind == L_SAMPLE && strcmp(e->line[i].name, name) == 0)
			n++;
	return n;
}

/* The integer value of a sample that must be present, parsed exactly. */
static uint64_t u64(const struct expo *e, const char *name, const char *labels)
{
	const struct line *l = sample(e, name, labels);
	cr_assert_not_null(l, "no sample %s{%s}", name, labels);
	char *end;
	errno = 0;
	unsigned long long v = strtoull(l->text, &end, 10);
	cr_assert(errno == 0 && end != l->text && *end == '\0', "%s{%s} = \"%s\" not an integer",
	          name, labels, l->text);
	return v;
}

static bool has_prefix_family(const struct expo *e, const char *prefix)
{
	for (size_t i = 0; i < e->n; i++)
		if (strncmp(e->line[i].name, prefix, strlen(prefix)) == 0)
			return true;
	return false;
}

#define SUM(field) (ws[0].field + ws[1].field)

/* ---- format ------------------------------------------------------------- */

Test(metrics, every_line_is_help_type_or_sample)
{
	struct metrics_input in = fixture();
	in.have_memory = in.have_process = true;
	in.cpu_seconds = 1.5;
	in.start_time_s = 1700000000.0;
	struct expo *e = render(&in);
	/* render() asserted every line; make sure it saw all three kinds. */
	size_t kinds[3] = {0};
	for (size_t i = 0; i < e->n; i++)
		kinds[e->line[i].kind]++;
	cr_assert_gt(kinds[L_HELP], 20);
	cr_assert_eq(kinds[L_HELP], kinds[L_TYPE]);
	cr_assert_gt(kinds[L_SAMPLE], kinds[L_HELP]);
	expo_free(e);
}

Test(metrics, help_and_type_once_per_family_before_samples)
{
	struct metrics_input in = fixture();
	in.have_memory = in.have_process = true;
	struct expo *e = render(&in);
	for (size_t i = 0; i < e->nfam; i++) {
		const struct family *f = &e->fam[i];
		cr_assert_eq(f->helps, 1, "%s: %u HELP lines", f->name, f->helps);
		cr_assert_eq(f->types, 1, "%s: %u TYPE lines", f->name, f->types);
	}
	/* HELP comes first, TYPE right after, for each family. */
	for (size_t i = 0; i < e->n; i++) {
		if (e->line[i].kind != L_HELP)
			continue;
		cr_assert_lt(i + 1, e->n);
		cr_assert_eq(e->line[i + 1].kind, L_TYPE, "HELP %s not followed by TYPE",
		             e->line[i].name);
		cr_assert_str_eq(e->line[i + 1].name, e->line[i].name);
	}
	expo_free(e);
}

Test(metrics, counters_end_in_total)
{
	struct metrics_input in = fixture();
	in.have_memory = in.have_process = true;
	struct expo *e = render(&in);
	size_t counters = 0;
	for (size_t i = 0; i < e->nfam; i++) {
		const struct family *f = &e->fam[i];
		if (strcmp(f->type, "counter") == 0) {
			counters++;
			cr_assert(ends_with(f->name, "_total"), "counter %s lacks _total", f->name);
		} else {
			/* A gauge or histogram named like a counter misleads rate(). */
			cr_assert(!ends_with(f->name, "_total"), "%s %s ends in _total", f->type,
			          f->name);
		}
		if (strncmp(f->name, "starling_", 9) != 0)
			cr_assert(strncmp(f->name, "process_", 8) == 0, "family %s unprefixed",
			          f->name);
	}
	cr_assert_gt(counters, 10);
	expo_free(e);
}

Test(metrics, no_series_twice)
{
	struct metrics_input in = fixture();
	in.have_memory = in.have_process = true;
	ws[0].connack[stats_connack_slot(MQTT_RC_NOT_AUTHORIZED)] = 2;
	ws[1].connack[STATS_CONNACK_SLOTS - 1] = 1;
	struct expo *e = render(&in);
	for (size_t i = 0; i < e->n; i++) {
		if (e->line[i].kind != L_SAMPLE)
			continue;
		for (size_t j = i + 1; j < e->n; j++)
			cr_assert(e->line[j].kind != L_SAMPLE ||
			              strcmp(e->line[i].name, e->line[j].name) != 0 ||
			              strcmp(e->line[i].labels, e->line[j].labels) != 0,
			          "series %s{%s} twice", e->line[i].name, e->line[i].labels);
	}
	expo_free(e);
}

/* ---- node-wide sums ----------------------------------------------------- */

Test(metrics, node_figures_sum_workers)
{
	struct metrics_input in = fixture();
	struct expo *e = render(&in);
	static const char *const q[] = {"qos=\"0\"", "qos=\"1\"", "qos=\"2\""};
	for (unsigned i = 0; i < 3; i++) {
		cr_assert_eq(u64(e, "starling_messages_received_total", q[i]), SUM(msgs_in[i]));
		cr_assert_eq(u64(e, "starling_messages_delivered_total", q[i]), SUM(msgs_out[i]));
	}
	cr_assert_eq(u64(e, "starling_messages_received_total", "qos=\"1\""),
	             ws[0].msgs_in[1] + ws[1].msgs_in[1]);
	cr_assert_eq(u64(e, "starling_connections", ""), SUM(conns_current));
	cr_assert_eq(u64(e, "starling_connections_accepted_total", ""), SUM(conns_accepted));
	cr_assert_eq(u64(e, "starling_connections_refused_total", "reason=\"max_connections\""),
	             SUM(conns_refused));
	cr_assert_eq(u64(e, "starling_network_received_bytes_total", ""), SUM(bytes_in));
	cr_assert_eq(u64(e, "starling_network_sent_bytes_total", ""), SUM(bytes_out));
	cr_assert_eq(u64(e, "starling_sessions", "state=\"online\""), SUM(sessions_online));
	cr_assert_eq(u64(e, "starling_sessions", "state=\"offline\""), SUM(sessions_offline));
	cr_assert_eq(u64(e, "starling_queued_messages", ""), SUM(queued_msgs));
	cr_assert_eq(u64(e, "starling_queued_bytes", ""), SUM(queued_bytes));
	cr_assert_eq(u64(e, "starling_inflight_messages", ""), SUM(inflight));
	cr_assert_eq(u64(e, "starling_retained_messages", ""), SUM(retained));
	cr_assert_eq(u64(e, "starling_retained_bytes", ""), SUM(retained_bytes));
	cr_assert_eq(u64(e, "starling_uptime_seconds", ""), 3725);
	cr_assert_eq(u64(e, "starling_workers", ""), 2);
	expo_free(e);
}

Test(metrics, connections_closed_by_reason)
{
	struct metrics_input in = fixture();
	struct expo *e = render(&in);
	cr_assert_eq(u64(e, "starling_connections_closed_total", "reason=\"keep_alive_timeout\""),
	             SUM(conns_closed[CLOSE_KEEPALIVE_TIMEOUT]));
	for (unsigned r = CLOSE_UNSET + 1; r < CLOSE_REASON_COUNT; r++) {
		char labels[64];
		snprintf(labels, sizeof(labels), "reason=\"%s\"",
		         stats_close_reason_name((enum close_reason)r));
		cr_assert_eq(u64(e, "starling_connections_closed_total", labels),
		             SUM(conns_closed[r]), "%s", labels);
	}
	/* CLOSE_UNSET is never a label: every close has a real reason. */
	cr_assert_eq(count_samples(e, "starling_connections_closed_total"), CLOSE_REASON_COUNT - 1);
	cr_assert_null(sample(e, "starling_connections_closed_total", "reason=\"unknown\""));
	expo_free(e);
}

Test(metrics, ops_listener_figures)
{
	struct metrics_input in = fixture();
	struct expo *e = render(&in);
	const char *n = "starling_ops_connections_dropped_total";
	cr_assert_eq(u64(e, "starling_ops_connections", ""), 3);
	cr_assert_eq(u64(e, "starling_ops_connections_accepted_total", ""), 1001);
	cr_assert_eq(u64(e, n, "reason=\"evicted\""), 202);
	cr_assert_eq(u64(e, n, "reason=\"request_timeout\""), 33);
	cr_assert_eq(u64(e, n, "reason=\"send_timeout\""), 4);
	cr_assert_eq(count_samples(e, n), 3);
	cr_assert_eq(u64(e, "starling_ops_unauthorized_total", ""), 55);
	expo_free(e);
	in.have_ops = false; /* rendered without an ops listener: none of them */
	e = render(&in);
	cr_assert(!has_prefix_family(e, "starling_ops_"));
	expo_free(e);
}

Test(metrics, messages_dropped_by_reason)
{
	struct metrics_input in = fixture();
	struct expo *e = render(&in);
	const char *n = "starling_messages_dropped_total";
	cr_assert_eq(u64(e, n, "reason=\"outbox_full\""), SUM(drops_outbox));
	cr_assert_eq(u64(e, n, "reason=\"worker_behind\""), SUM(drops_transit));
	cr_assert_eq(u64(e, n, "reason=\"oversize\""), SUM(drops_oversize));
	cr_assert_eq(u64(e, n, "reason=\"queue_full\""), SUM(drops_queue));
	cr_assert_eq(u64(e, n, "reason=\"expired\""), SUM(drops_expired));
	cr_assert_eq(u64(e, n, "reason=\"no_subscribers\""), SUM(drops_no_subscribers));
	cr_assert_eq(u64(e, n, "reason=\"not_authorized\""), SUM(drops_denied));
	cr_assert_eq(count_samples(e, n), 7);
	expo_free(e);
}

Test(metrics, tls_handshakes_and_failures_by_reason)
{
	struct metrics_input in = fixture();
	struct expo *e = render(&in);
	cr_assert_eq(u64(e, "starling_tls_handshakes_total", ""), SUM(tls_handshakes));
	const char *n = "starling_tls_handshake_failures_total";
	cr_assert_eq(u64(e, n, "reason=\"not_tls\""), SUM(tls_failures[TLS_FAIL_NOT_TLS]));
	cr_assert_eq(u64(e, n, "reason=\"client_cert_expired\""),
	             SUM(tls_failures[TLS_FAIL_CERT_EXPIRED]));
	cr_assert_eq(u64(e, n, "reason=\"timeout\""), SUM(tls_failures[TLS_FAIL_TIMEOUT]));
	for (unsigned f = 0; f < TLS_FAIL_COUNT; f++) {
		char labels[64];
		snprintf(labels, sizeof(labels), "reason=\"%s\"",
		         stats_tls_fail_name((enum tls_fail)f));
		cr_assert_eq(u64(e, n, labels), SUM(tls_failures[f]), "%s", labels);
	}
	cr_assert_eq(count_samples(e, n), TLS_FAIL_COUNT, "every reason, zero or not");
	expo_free(e);
}

Test(metrics, index_gauges_come_from_worker_zero)
{
	struct metrics_input in = fixture();
	struct expo *e = render(&in);
	cr_assert_eq(u64(e, "starling_subscriptions", ""), 40);
	cr_assert_eq(u64(e, "starling_shared_groups", ""), 3);
	expo_free(e);
}

/* ---- CONNECT outcomes --------------------------------------------------- */

Test(metrics, connects_success_always_failures_when_nonzero)
{
	struct metrics_input in = fixture();
	struct expo *e = render(&in);
	const char *n = "starling_connects_total";
	cr_assert_eq(u64(e, n, "code=\"0x00\",reason=\"success\""), 0);
	cr_assert_eq(count_samples(e, n), 1, "zero failure slots were rendered");
	expo_free(e);

	ws[0].connack[0] = 10;
	ws[1].connack[0] = 5;
	ws[1].connack[stats_connack_slot(MQTT_RC_NOT_AUTHORIZED)] = 3;
	e = render(&in);
	char labels[128];
	snprintf(labels, sizeof(labels), "code=\"0x87\",reason=\"%s\"",
	         mqtt_rc_name(MQTT_RC_NOT_AUTHORIZED));
	cr_assert_eq(u64(e, n, "code=\"0x00\",reason=\"success\""), 15);
	cr_assert_eq(u64(e, n, labels), 3);
	cr_assert_eq(count_samples(e, n), 2);
	expo_free(e);
}

Test(metrics, connects_other_slot)
{
	struct metrics_input in = fixture();
	ws[0].connack[STATS_CONNACK_SLOTS - 1] = 4;
	ws[1].connack[stats_connack_slot(MQTT_RC_CONNECTION_RATE_EXCEEDED)] = 1;
	struct expo *e = render(&in);
	const char *n = "starling_connects_total";
	cr_assert_eq(u64(e, n, "code=\"0xFF\",reason=\"other\""), 4);
	char labels[128];
	snprintf(labels, sizeof(labels), "code=\"0x9F\",reason=\"%s\"",
	         mqtt_rc_name(MQTT_RC_CONNECTION_RATE_EXCEEDED));
	cr_assert_eq(u64(e, n, labels), 1);
	cr_assert_eq(count_samples(e, n), 3);
	expo_free(e);
}

/* ---- per worker --------------------------------------------------------- */

Test(metrics, loop_histogram_per_worker)
{
	struct metrics_input in = fixture();
	for (unsigned b = 0; b < STATS_LOOP_BUCKETS; b++) {
		ws[0].loop_busy_hist[b] = b + 1;
		ws[1].loop_busy_hist[b] = (b % 3 == 0) ? 0 : 100 * b; /* some empty */
	}
	struct expo *e = render(&in);
	const char *bucket = "starling_worker_loop_busy_seconds_bucket";
	for (unsigned w = 0; w < 2; w++) {
		char prefix[32];
		snprintf(prefix, sizeof(prefix), "worker=\"%u\",le=\"", w);
		double last_le = -1;
		uint64_t last = 0, cum = 0, inf = 0;
		unsigned nb = 0;
		bool saw_inf = false;
		for (size_t i = 0; i < e->n; i++) {
			const struct line *l = &e->line[i];
			if (l->kind != L_SAMPLE || strcmp(l->name, bucket) != 0 ||
			    strncmp(l->labels, prefix, strlen(prefix)) != 0)
				continue;
			cr_assert(!saw_inf, "worker %u: bucket after +Inf", w);
			const char *le = l->labels + strlen(prefix);
			uint64_t v = strtoull(l->text, NULL, 10);
			cr_assert_lt(nb, STATS_LOOP_BUCKETS);
			cum += ws[w].loop_busy_hist[nb];
			cr_assert_eq(v, cum, "worker %u bucket %u", w, nb);
			cr_assert_geq(v, last, "worker %u bucket %u decreases", w, nb);
			last = v;
			if (strcmp(le, "+Inf\"") == 0) {
				saw_inf = true;
				inf = v;
			} else {
				char *end;
				double x = strtod(le, &end);
				cr_assert_str_eq(end, "\"", "worker %u: le %s", w, le);
				cr_assert_gt(x, last_le, "worker %u: le not increasing", w);
				double want = (double)stats_loop_bounds_ns[nb] / 1e9;
				cr_assert(fabs(x - want) <= want * 1e-9, "le %g, bound %g", x,
				          want);
				last_le = x;
			}
			nb++;
		}
		cr_assert(saw_inf, "worker %u has no +Inf bucket", w);
		cr_assert_eq(nb, STATS_LOOP_BUCKETS, "worker %u: %u buckets", w, nb);
		char wl[32];
		snprintf(wl, sizeof(wl), "worker=\"%u\"", w);
		cr_assert_eq(u64(e, "starling_worker_loop_busy_seconds_count", wl), inf);
		const struct line *s = sample(e, "starling_worker_loop_busy_seconds_sum", wl);
		cr_assert_not_null(s);
		double want = (double)ws[w].loop_busy_ns / 1e9;
		cr_assert(fabs(s->value - want) <= 1e-9 * (want > 1 ? want : 1),
		          "sum %s, want %.9f", s->text, want);
	}
	cr_assert_str_eq(sample(e, "starling_worker_loop_busy_seconds_sum", "worker=\"0\"")->text,
	                 "0.123456789");
	expo_free(e);
}

Test(metrics, per_worker_families_one_sample_each)
{
	struct metrics_input in = fixture();
	struct expo *e = render(&in);
	static const char *const fams[] = {
	    "starling_worker_loop_turns_total",        "starling_worker_mailbox_depth",
	    "starling_worker_mailbox_backlog",         "starling_worker_sends_total",
	    "starling_worker_mailbox_overflows_total",
	};
	for (size_t i = 0; i < sizeof(fams) / sizeof(fams[0]); i++) {
		cr_assert_eq(count_samples(e, fams[i]), 2, "%s", fams[i]);
		cr_assert_not_null(sample(e, fams[i], "worker=\"0\""), "%s", fams[i]);
		cr_assert_not_null(sample(e, fams[i], "worker=\"1\""), "%s", fams[i]);
	}
	for (unsigned w = 0; w < 2; w++) {
		char wl[32];
		snprintf(wl, sizeof(wl), "worker=\"%u\"", w);
		cr_assert_eq(u64(e, "starling_worker_loop_turns_total", wl), ws[w].loop_turns);
		cr_assert_eq(u64(e, "starling_worker_mailbox_depth", wl), depth[w]);
		cr_assert_eq(u64(e, "starling_worker_mailbox_backlog", wl), ws[w].mbox_backlog);
		cr_assert_eq(u64(e, "starling_worker_sends_total", wl), ws[w].sends);
		cr_assert_eq(u64(e, "starling_worker_mailbox_overflows_total", wl),
		             ws[w].mbox_overflows);
	}
	expo_free(e);
}

/* ---- optional families, build info, ready ------------------------------- */

Test(metrics, memory_and_process_follow_flags)
{
	struct metrics_input in = fixture();
	struct expo *e = render(&in);
	cr_assert(!has_prefix_family(e, "starling_memory_"));
	cr_assert(!has_prefix_family(e, "process_"));
	expo_free(e);

	in.have_memory = true;
	in.mem_allocated_bytes = 1111;
	in.mem_active_bytes = 2222;
	in.mem_resident_bytes = 3333;
	in.mem_mapped_bytes = 4444;
	e = render(&in);
	cr_assert_eq(u64(e, "starling_memory_allocated_bytes", ""), 1111);
	cr_assert_eq(u64(e, "starling_memory_active_bytes", ""), 2222);
	cr_assert_eq(u64(e, "starling_memory_resident_bytes", ""), 3333);
	cr_assert_eq(u64(e, "starling_memory_mapped_bytes", ""), 4444);
	cr_assert(!has_prefix_family(e, "process_"));
	expo_free(e);

	in.have_memory = false;
	in.have_process = true;
	in.cpu_seconds = 12.5;
	in.resident_bytes = 5555;
	in.virtual_bytes = 6666;
	in.open_fds = 17;
	in.max_fds = 1024;
	in.start_time_s = 1700000000.25;
	e = render(&in);
	cr_assert(!has_prefix_family(e, "starling_memory_"));
	cr_assert_eq(sample(e, "process_cpu_seconds_total", "")->value, 12.5);
	cr_assert_eq(u64(e, "process_resident_memory_bytes", ""), 5555);
	cr_assert_eq(u64(e, "process_virtual_memory_bytes", ""), 6666);
	cr_assert_eq(u64(e, "process_open_fds", ""), 17);
	cr_assert_eq(u64(e, "process_max_fds", ""), 1024);
	cr_assert_eq(sample(e, "process_start_time_seconds", "")->value, 1700000000.25);
	expo_free(e);

	in.have_memory = true;
	e = render(&in);
	cr_assert_eq(u64(e, "starling_memory_mapped_bytes", ""), 4444);
	cr_assert_eq(u64(e, "process_open_fds", ""), 17);
	expo_free(e);
}

Test(metrics, build_info_and_ready)
{
	struct metrics_input in = fixture();
	struct expo *e = render(&in);
	cr_assert_eq(u64(e, "starling_build_info", "version=\"1.2.3-test\""), 1);
	cr_assert_eq(count_samples(e, "starling_build_info"), 1);
	cr_assert_eq(u64(e, "starling_ready", ""), 1);
	expo_free(e);

	in.ready = false;
	in.version = "0.9";
	e = render(&in);
	cr_assert_eq(u64(e, "starling_build_info", "version=\"0.9\""), 1);
	cr_assert_eq(u64(e, "starling_ready", ""), 0);
	expo_free(e);
}

Test(metrics, uint64_max_renders_exactly)
{
	struct metrics_input in = fixture();
	ws[0].bytes_in = UINT64_MAX;
	ws[1].bytes_in = 0;
	ws[0].loop_turns = UINT64_MAX;
	ws[1].sends = UINT64_MAX - 1;
	ws[0].subscriptions = UINT64_MAX;
	depth[1] = UINT64_MAX;
	in.have_memory = true;
	in.mem_mapped_bytes = UINT64_MAX;
	in.uptime_s = UINT64_MAX;
	struct expo *e = render(&in);
	cr_assert_str_eq(sample(e, "starling_network_received_bytes_total", "")->text,
	                 "18446744073709551615");
	cr_assert_str_eq(sample(e, "starling_worker_loop_turns_total", "worker=\"0\"")->text,
	                 "18446744073709551615");
	cr_assert_str_eq(sample(e, "starling_worker_sends_total", "worker=\"1\"")->text,
	                 "18446744073709551614");
	cr_assert_str_eq(sample(e, "starling_subscriptions", "")->text, "18446744073709551615");
	cr_assert_str_eq(sample(e, "starling_worker_mailbox_depth", "worker=\"1\"")->text,
	                 "18446744073709551615");
	cr_assert_str_eq(sample(e, "starling_memory_mapped_bytes", "")->text,
	                 "18446744073709551615");
	cr_assert_str_eq(sample(e, "starling_uptime_seconds", "")->text, "18446744073709551615");
	expo_free(e);
}

Test(metrics, zero_workers)
{
	struct metrics_input in = {
	    .version = "0",
	    .workers = 0,
	    .per_worker = NULL,
	    .mailbox_depth = NULL,
	};
	struct expo *e = render(&in);
	cr_assert_eq(u64(e, "starling_workers", ""), 0);
	cr_assert_eq(u64(e, "starling_connections", ""), 0);
	cr_assert_eq(u64(e, "starling_subscriptions", ""), 0);
	cr_assert_eq(u64(e, "starling_connects_total", "code=\"0x00\",reason=\"success\""), 0);
	cr_assert_eq(count_samples(e, "starling_worker_loop_turns_total"), 0);
	cr_assert_eq(count_samples(e, "starling_worker_mailbox_depth"), 0);
	cr_assert_eq(count_samples(e, "starling_worker_loop_busy_seconds_bucket"), 0);
	cr_assert_eq(u64(e, "starling_ready", ""), 0);
	expo_free(e);
}
