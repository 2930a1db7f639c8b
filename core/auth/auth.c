/*
 * auth.c — the node's access policy (see auth.h): anonymous access, the
 * password database (checked by verify.c's threads), the limiter of failed
 * authentications per address, and the ACL with its safe replacement.
 *
 * Policy, as operators of mosquitto expect it:
 * - no password file: anyone may connect, a user name is just a name;
 * - a password file: a CONNECT with a user name needs the right password
 *   (5.0 0x86 / 3.1.1 0x04 otherwise); one without a user name is
 *   anonymous, refused (0x87 / 0x05) unless allow_anonymous is true
 *   (allow_anonymous = auto means "true without a password file");
 * - on a TLS listener with tls_identity_as_username, the verified client
 *   certificate's identity (CN, or first DNS/email SAN) is the user name,
 *   whatever the CONNECT says, and it is authenticated: the certificate
 *   is the credential, so no password is needed even with a password file
 *   (mosquitto's use_identity_as_username). A client there without a
 *   usable identity is refused (0x86 / 0x04) rather than falling back to
 *   passwords: the operator asked for certificates on that listener. The
 *   ACL sees the identity as the user name. Plain TCP listeners keep the
 *   rules below;
 * - 5.0 enhanced authentication is not offered: a CONNECT naming an
 *   authentication method is refused with 0x8C [MQTT-4.12.0-1];
 * - no client may publish into $SYS/ (the broker's own tree, sys.c);
 * - with an ACL file, what it does not allow is denied (acl.h).
 */
#include "auth/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/acl.h"
#include "auth/passwd.h"
#include "auth/verify.h"
#include "base/log.h"

#define LIMIT_SLOTS   4096  /* addresses remembered by the failure limiter */
#define FAILED_SLOTS  4096  /* wrong credentials remembered */
#define FAILED_TTL_MS 60000 /* how long a wrong credential is remembered */
/* An address over its failure limit still gets in with a remembered
 * (cached) credential until it has failed this many times the limit in the
 * minute: past that, the cache would be an oracle answering its guesses at
 * HMAC speed, so everything is refused. */
#define LIMIT_CEILING_TIMES 2
#define LIMIT_PROBE         8    /* slots tried per address */
#define VERIFY_THREADS      2    /* password hashes checked at once */
#define RELOAD_WAIT_MS      2000 /* how long a reload waits for workers to leave the old ACL */

struct limit_slot {
	uint8_t addr[16];
	uint8_t len;       /* 0: free */
	uint32_t minute;   /* now_ms / 60000 of the count */
	uint32_t failures; /* in that minute */
};

/* A credential that passed a check, as HMAC-SHA256(secret, user NUL
 * password): a reconnecting client (a fleet after a broker restart, a
 * flaky link) skips the slow hash. It stores no password: only MACs under a
 * per-process random key, forgotten by every reload. */
struct cache_slot {
	uint8_t mac[32];
	uint64_t gen; /* cache_gen when stored; 0: empty */
};

/* A credential that failed a check, the same MAC: the same wrong password
 * again (a misconfigured device retrying in a loop) is refused without a
 * hash and is not counted again against its address, so one such device
 * behind a NAT neither burns the checkers nor locks its neighbours out.
 * Repeating a wrong guess teaches a guesser nothing. */
struct failed_slot {
	uint8_t mac[32];
	uint64_t gen;      /* cache_gen when stored; 0: empty */
	uint64_t until_ms; /* forgotten after */
};

struct auth {
	bool have_passwords;        /* fixed at start: it decides whether there are threads */
	pthread_mutex_t cache_lock; /* CONNECTs with credentials only */
	struct cache_slot *cache;   /* [cache_mask + 1], NULL = no cache */
	uint32_t cache_mask;
	struct failed_slot *failed; /* [FAILED_SLOTS], with passwords only */
	uint64_t cache_gen;         /* under cache_lock; bumped by reloads */
	uint8_t cache_key[32];
	/* Changed by a reload while workers read them: atomics. */
	_Atomic bool anonymous_ok[AUTH_LISTENER_KINDS]; /* by listener kind */
	_Atomic uint32_t connect_rate_max; /* new connections per second per address; 0 = off */
	pthread_mutex_t rate_lock;         /* accepts, only while a rate is set */
	struct limit_slot rate[LIMIT_SLOTS];
	_Atomic uint32_t failures_max; /* per address per minute; 0 = unlimited */
	/* No password file, and the ACL has rules for user names (so
	 * tls_identity_as_username is on: load_files): a user name claimed
	 * in a CONNECT, which nothing can check, is refused. */
	_Atomic bool unchecked_names_refused;
	struct verify_pool *verify;

	pthread_mutex_t limit_lock; /* CONNECTs with credentials only: not the publish path */
	struct limit_slot limit[LIMIT_SLOTS];

	_Atomic(struct acl *) acl;
	_Atomic uint64_t acl_gen; /* bumped by every reload */
	unsigned workers;
	_Atomic uint64_t seen[CONFIG_WORKERS_MAX]; /* the acl_gen each worker's turn uses */
};

static int load_files(const struct config *cfg, struct passwd_db **db, struct acl **acl, char *err,
                      size_t err_len)
{
	char why[512];
	*db = NULL;
	*acl = NULL;
	if (cfg->password_file[0] && passwd_load(cfg->password_file, db, why, sizeof(why)) != 0) {
		snprintf(err, err_len, "password_file %s", why);
		return -1;
	}
	if (cfg->acl_file[0] && acl_load(cfg->acl_file, acl, why, sizeof(why)) != 0) {
		passwd_free(*db);
		*db = NULL;
		snprintf(err, err_len, "acl_file %s", why);
		return -1;
	}
	/* Rules for user names are only as good as what authenticates the
	 * names: without a password file or client certificates, anyone who
	 * claims "alice" gets alice's rights. That is a configuration mistake
	 * (mosquitto accepts it silently), so it is refused. */
	unsigned line = *acl ? acl_user_line(*acl) : 0;
	if (line && !cfg->password_file[0] && cfg->tls_identity_as_username == TLS_IDENTITY_NONE) {
		acl_free(*acl);
		*acl = NULL;
		snprintf(err, err_len,
		         "acl_file %s:%u: a rule for user names, but nothing authenticates them "
		         "(no password_file, no tls_identity_as_username): any client could claim "
		         "a user name and get its rights",
		         cfg->acl_file, line);
		return -1;
	}
	return 0;
}

/* Anonymous access per listener kind: config_anonymous_ok states the rule
 * (the first log line reports the same), this keeps it where workers read. */
static void set_anonymous(struct auth *a, const struct config *cfg)
{
	for (unsigned k = 0; k < AUTH_LISTENER_KINDS; k++)
		atomic_store(&a->anonymous_ok[k],
		             config_anonymous_ok(cfg, (enum config_listener_kind)k));
	a->failures_max = cfg->auth_failures_per_minute;
	a->connect_rate_max = cfg->connect_rate_per_address;
}

static void set_flags(struct auth *a, const struct config *cfg)
{
	a->have_passwords = cfg->password_file[0] != '\0';
	set_anonymous(a, cfg);
}

struct auth *auth_new(const struct config *cfg, unsigned workers, char *err, size_t err_len)
{
	struct auth *a = calloc(1, sizeof(*a));
	if (!a) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	struct passwd_db *db;
	struct acl *acl;
	if (load_files(cfg, &db, &acl, err, err_len) != 0) {
		free(a);
		return NULL;
	}
	pthread_mutex_init(&a->limit_lock, NULL);
	pthread_mutex_init(&a->rate_lock, NULL);
	pthread_mutex_init(&a->cache_lock, NULL);
	a->cache_gen = 1;
	if (cfg->password_file[0]) {
		uint32_t n = 1;
		while (n < cfg->auth_cache_size)
			n <<= 1;
		if (cfg->auth_cache_size > 0)
			a->cache = calloc(n, sizeof(*a->cache));
		a->failed = calloc(FAILED_SLOTS, sizeof(*a->failed));
		if ((cfg->auth_cache_size > 0 && !a->cache) || !a->failed ||
		    RAND_bytes(a->cache_key, sizeof(a->cache_key)) != 1) {
			free(a->cache);
			free(a->failed);
			free(a);
			passwd_free(db);
			acl_free(acl);
			snprintf(err, err_len, "password cache: out of memory or no randomness");
			return NULL;
		}
		a->cache_mask = n - 1;
	}
	a->workers = workers;
	set_flags(a, cfg);
	atomic_init(&a->unchecked_names_refused, acl && acl_user_line(acl) && !a->have_passwords);
	atomic_init(&a->acl, acl);
	atomic_init(&a->acl_gen, 1);
	if (a->have_passwords) {
		a->verify = verify_start(VERIFY_THREADS, workers, err, err_len);
		if (!a->verify) {
			passwd_free(db);
			acl_free(acl);
			free(a);
			return NULL;
		}
		verify_set_db(a->verify, db);
		LOG_INFO("%zu users from %s; anonymous clients %s", passwd_count(db),
		         cfg->password_file, a->anonymous_ok[0] ? "allowed" : "refused");
	}
	if (acl)
		LOG_INFO("%zu ACL rules from %s; what they do not allow is denied",
		         acl_rule_count(acl), cfg->acl_file);
	if (atomic_load(&a->unchecked_names_refused))
		LOG_INFO(
		    "user names come from client certificates only (tls_identity_as_username, no "
		    "password_file): a CONNECT claiming a user name without one is refused");
	return a;
}

int auth_check(const struct config *cfg, char *err, size_t err_len)
{
	struct passwd_db *db;
	struct acl *acl;
	if (load_files(cfg, &db, &acl, err, err_len) != 0)
		return -1;
	passwd_free(db);
	acl_free(acl);
	return 0;
}

void auth_free(struct auth *a)
{
	if (!a)
		return;
	verify_stop(a->verify);
	acl_free(atomic_load(&a->acl));
	pthread_mutex_destroy(&a->limit_lock);
	pthread_mutex_destroy(&a->rate_lock);
	pthread_mutex_destroy(&a->cache_lock);
	if (a->cache)
		OPENSSL_cleanse(a->cache, ((size_t)a->cache_mask + 1) * sizeof(*a->cache));
	free(a->cache);
	if (a->failed)
		OPENSSL_cleanse(a->failed, FAILED_SLOTS * sizeof(*a->failed));
	free(a->failed);
	OPENSSL_cleanse(a->cache_key, sizeof(a->cache_key));
	free(a);
}

int auth_reload(struct auth *a, const struct config *cfg, char *err, size_t err_len)
{
	struct passwd_db *db;
	struct acl *acl;
	if (load_files(cfg, &db, &acl, err, err_len) != 0)
		return -1;
	/* Turning passwords on or off needs the checking threads: a restart. */
	if ((cfg->password_file[0] != '\0') != a->have_passwords) {
		passwd_free(db);
		acl_free(acl);
		snprintf(err, err_len, "password_file %s takes effect at restart",
		         a->have_passwords ? "removed" : "added");
		return -1;
	}
	if (a->verify)
		verify_set_db(a->verify, db);
	pthread_mutex_lock(&a->cache_lock);
	a->cache_gen++; /* a changed password must be checked again */
	pthread_mutex_unlock(&a->cache_lock);
	/* The flags are read by workers without a lock: each seen either
	 * old or new, and both are valid policies. */
	set_anonymous(a, cfg);
	atomic_store(&a->unchecked_names_refused, acl && acl_user_line(acl) && !a->have_passwords);

	struct acl *old = atomic_exchange(&a->acl, acl);
	uint64_t gen = atomic_fetch_add(&a->acl_gen, 1) + 1;
	/* Free the old ACL only once every worker's turn uses the new one
	 * (they turn at least every 250 ms). */
	struct timespec step = {0, 10 * 1000 * 1000};
	for (unsigned waited = 0; waited < RELOAD_WAIT_MS; waited += 10) {
		unsigned behind = 0;
		for (unsigned i = 0; i < a->workers; i++)
			behind += atomic_load(&a->seen[i]) < gen;
		if (!behind) {
			acl_free(old);
			return 0;
		}
		nanosleep(&step, NULL);
	}
	LOG_WARN("SIGHUP: a worker did not pick up the new ACL within %u ms; the old one stays "
	         "allocated",
	         RELOAD_WAIT_MS);
	return 0;
}

struct verify_pool *auth_verifier(const struct auth *a)
{
	return a->verify;
}

const struct acl *auth_acl_acquire(struct auth *a, uint16_t worker, const struct acl *held,
                                   uint64_t *gen_inout)
{
	/* One shared load per turn in the common case; the store into
	 * seen[], a cache line all workers write, only when a reload
	 * happened. The generation first: a worker that reports generation g
	 * loaded the pointer after g was published, so it holds g's ACL or a
	 * newer one; one that has not reported g may still hold the old one,
	 * which auth_reload therefore keeps. */
	uint64_t gen = atomic_load_explicit(&a->acl_gen, memory_order_acquire);
	if (gen == *gen_inout)
		return held;
	const struct acl *acl = atomic_load_explicit(&a->acl, memory_order_acquire);
	atomic_store_explicit(&a->seen[worker], gen, memory_order_release);
	*gen_inout = gen;
	return acl;
}

static uint32_t addr_hash(const uint8_t *addr, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ addr[i]) * 16777619u;
	return h;
}

/* The slot of an address, or (insert) a free or stale one; NULL if none. */
static struct limit_slot *limit_find(struct limit_slot *table, const uint8_t *addr, size_t len,
                                     uint32_t minute, bool insert)
{
	uint32_t h = addr_hash(addr, len);
	struct limit_slot *spare = NULL;
	for (unsigned i = 0; i < LIMIT_PROBE; i++) {
		struct limit_slot *s = &table[(h + i) % LIMIT_SLOTS];
		if (s->len == len && memcmp(s->addr, addr, len) == 0)
			return s;
		if (!spare && (s->len == 0 || s->minute != minute))
			spare = s;
	}
	if (!insert)
		return NULL;
	/* All probed slots busy this minute: take the first, forgetting one
	 * address rather than growing (a bound, under a spread attack). */
	if (!spare)
		spare = &table[h % LIMIT_SLOTS];
	memcpy(spare->addr, addr, len);
	spare->len = (uint8_t)len;
	spare->minute = minute;
	spare->failures = 0;
	return spare;
}

enum limit_state {
	LIMIT_UNDER,   /* checks as usual */
	LIMIT_OVER,    /* only remembered credentials; the rest refused unchecked */
	LIMIT_CEILING, /* everything refused until the minute ends */
};

static enum limit_state limited(struct auth *a, const uint8_t *addr, size_t len, uint64_t now_ms,
                                uint32_t *failures_out)
{
	uint32_t max = a->failures_max;
	*failures_out = 0;
	if (max == 0 || len == 0)
		return LIMIT_UNDER;
	uint32_t minute = (uint32_t)(now_ms / 60000);
	pthread_mutex_lock(&a->limit_lock);
	struct limit_slot *s = limit_find(a->limit, addr, len, minute, false);
	uint32_t failures = s && s->minute == minute ? s->failures : 0;
	pthread_mutex_unlock(&a->limit_lock);
	*failures_out = failures;
	return failures < max                                             ? LIMIT_UNDER
	       : (uint64_t)failures < (uint64_t)max * LIMIT_CEILING_TIMES ? LIMIT_OVER
	                                                                  : LIMIT_CEILING;
}

bool auth_accept_allowed(struct auth *a, const uint8_t *peer, size_t peer_len, uint64_t now_ms)
{
	uint32_t max = atomic_load_explicit(&a->connect_rate_max, memory_order_relaxed);
	if (max == 0 || peer_len == 0)
		return true;
	/* The same table shape as the failure limiter, in seconds: a node-wide
	 * count, so the limit does not multiply with the workers. */
	uint32_t second = (uint32_t)(now_ms / 1000);
	pthread_mutex_lock(&a->rate_lock);
	struct limit_slot *s = limit_find(a->rate, peer, peer_len, second, true);
	if (s->minute != second) {
		s->minute = second;
		s->failures = 0;
	}
	bool ok = s->failures < max;
	if (ok)
		s->failures++;
	pthread_mutex_unlock(&a->rate_lock);
	return ok;
}

static void count_failure(struct auth *a, const uint8_t *peer, size_t peer_len, uint64_t now_ms)
{
	if (a->failures_max == 0 || peer_len == 0)
		return;
	uint32_t minute = (uint32_t)(now_ms / 60000);
	pthread_mutex_lock(&a->limit_lock);
	struct limit_slot *s = limit_find(a->limit, peer, peer_len, minute, true);
	if (s->minute != minute) {
		s->minute = minute;
		s->failures = 0;
	}
	s->failures++;
	pthread_mutex_unlock(&a->limit_lock);
}

static bool cred_mac(const struct auth *a, const struct mqtt_connect *k, uint8_t mac[32])
{
	if (!a->failed)
		return false; /* no password file: no key */
	uint8_t buf[1024];
	size_t n = k->username.len + 1 + k->password.len;
	if (n > sizeof(buf))
		return false; /* longer than anything we cache: check it */
	memcpy(buf, k->username.ptr, k->username.len);
	buf[k->username.len] = 0;
	memcpy(buf + k->username.len + 1, k->password.ptr, k->password.len);
	unsigned len = 32;
	bool ok = HMAC(EVP_sha256(), a->cache_key, sizeof(a->cache_key), buf, n, mac, &len) != NULL;
	OPENSSL_cleanse(buf, n);
	return ok;
}

static bool cache_hit(struct auth *a, const uint8_t mac[32])
{
	if (!a->cache)
		return false;
	uint32_t i;
	memcpy(&i, mac, sizeof(i));
	pthread_mutex_lock(&a->cache_lock);
	const struct cache_slot *s = &a->cache[i & a->cache_mask];
	bool hit = s->gen == a->cache_gen && CRYPTO_memcmp(s->mac, mac, 32) == 0;
	pthread_mutex_unlock(&a->cache_lock);
	return hit;
}

/* The slot of a MAC in the table of wrong credentials: the MAC's second
 * word, so it is independent of the positive cache's slot. */
static struct failed_slot *failed_slot(struct auth *a, const uint8_t mac[32])
{
	uint32_t i;
	memcpy(&i, mac + 4, sizeof(i));
	return &a->failed[i % FAILED_SLOTS];
}

static bool failed_hit(struct auth *a, const uint8_t mac[32], uint64_t now_ms)
{
	pthread_mutex_lock(&a->cache_lock);
	const struct failed_slot *s = failed_slot(a, mac);
	bool hit =
	    s->gen == a->cache_gen && now_ms < s->until_ms && CRYPTO_memcmp(s->mac, mac, 32) == 0;
	pthread_mutex_unlock(&a->cache_lock);
	return hit;
}

void auth_failed(struct auth *a, const struct mqtt_connect *k, const uint8_t *peer, size_t peer_len,
                 uint64_t now_ms)
{
	uint8_t mac[32];
	if (a->failed && k && k->has_password && cred_mac(a, k, mac)) {
		pthread_mutex_lock(&a->cache_lock);
		struct failed_slot *s = failed_slot(a, mac);
		memcpy(s->mac, mac, sizeof(mac));
		s->gen = a->cache_gen;
		s->until_ms = now_ms + FAILED_TTL_MS;
		pthread_mutex_unlock(&a->cache_lock);
	}
	count_failure(a, peer, peer_len, now_ms);
}

void auth_passed(struct auth *a, const struct mqtt_connect *k)
{
	uint8_t mac[32];
	if (!a->cache || !cred_mac(a, k, mac))
		return;
	uint32_t i;
	memcpy(&i, mac, sizeof(i));
	pthread_mutex_lock(&a->cache_lock);
	struct cache_slot *s = &a->cache[i & a->cache_mask];
	memcpy(s->mac, mac, sizeof(mac));
	s->gen = a->cache_gen;
	pthread_mutex_unlock(&a->cache_lock);
}

enum auth_step auth_connect(struct auth *a, const struct mqtt_connect *k, unsigned listener_kind,
                            enum auth_identity id, const uint8_t *peer, size_t peer_len,
                            uint64_t now_ms, enum mqtt_rc *rc)
{
	if (k->version == MQTT_V5 && (k->props.has & MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD))) {
		*rc = MQTT_RC_BAD_AUTHENTICATION_METHOD;
		return AUTH_REFUSE;
	}
	if (id == AUTH_ID_CERT)
		return AUTH_ACCEPT; /* the handshake verified it; nothing to guess */
	if (id == AUTH_ID_MISSING) {
		*rc = MQTT_RC_BAD_USERNAME_OR_PASSWORD;
		return AUTH_REFUSE;
	}
	if (!k->has_username) {
		if (id == AUTH_ID_VERIFIED ||
		    atomic_load_explicit(&a->anonymous_ok[listener_kind % AUTH_LISTENER_KINDS],
		                         memory_order_relaxed))
			return AUTH_ACCEPT;
		*rc = MQTT_RC_NOT_AUTHORIZED;
		return AUTH_REFUSE;
	}
	if (!a->have_passwords) {
		if (atomic_load_explicit(&a->unchecked_names_refused, memory_order_relaxed)) {
			/* Only certificates authenticate here, and this client's
			 * user name does not come from one. */
			*rc = MQTT_RC_BAD_USERNAME_OR_PASSWORD;
			return AUTH_REFUSE;
		}
		return AUTH_ACCEPT; /* a user name without a password file: a name */
	}
	uint32_t failures;
	enum limit_state limit = limited(a, peer, peer_len, now_ms, &failures);
	if (!k->has_password) {
		if (limit == LIMIT_UNDER)
			auth_failed(a, NULL, peer, peer_len, now_ms);
		*rc = limit == LIMIT_UNDER ? MQTT_RC_BAD_USERNAME_OR_PASSWORD
		                           : MQTT_RC_CONNECTION_RATE_EXCEEDED;
		return AUTH_REFUSE;
	}
	uint8_t mac[32];
	bool have_mac = cred_mac(a, k, mac);
	/* A credential that passed recently is right: the failure limiter,
	 * which is there to slow guessing, does not stand in its way (a bad
	 * client behind the same NAT must not lock out the good ones), up to
	 * the ceiling (LIMIT_CEILING_TIMES). */
	if (have_mac && limit != LIMIT_CEILING && cache_hit(a, mac))
		return AUTH_ACCEPT;
	if (have_mac && failed_hit(a, mac, now_ms)) {
		*rc = MQTT_RC_BAD_USERNAME_OR_PASSWORD; /* known wrong: not counted again */
		return AUTH_REFUSE;
	}
	if (limit != LIMIT_UNDER) {
		/* A guess over the limit, refused unchecked; it counts toward
		 * the ceiling. */
		count_failure(a, peer, peer_len, now_ms);
		*rc = MQTT_RC_CONNECTION_RATE_EXCEEDED;
		return AUTH_REFUSE;
	}
	/* A guesser's second guess waits behind every client that has not
	 * failed this minute (verify.h). */
	return failures > 0 ? AUTH_VERIFY_LATER : AUTH_VERIFY;
}

static bool has_prefix(struct mqtt_view v, const char *prefix, size_t len)
{
	return v.len >= len && memcmp(v.ptr, prefix, len) == 0;
}

/* $SYS/broker/connection/ID/state: where a bridge announces itself (1 at
 * connect, 0 as its will). mosquitto's bridges publish it by default
 * (notifications true), and mosquitto, as the remote, lets them; refusing
 * it would refuse their CONNECT for the will. ID is one level. */
static bool is_bridge_state(struct mqtt_view topic)
{
	static const char head[] = "$SYS/broker/connection/", tail[] = "/state";
	const size_t hl = sizeof(head) - 1, tl = sizeof(tail) - 1;
	if (topic.len <= hl + tl || !has_prefix(topic, head, hl) ||
	    memcmp(topic.ptr + topic.len - tl, tail, tl) != 0)
		return false;
	const uint8_t *id = topic.ptr + hl;
	size_t id_len = topic.len - hl - tl;
	return memchr(id, '/', id_len) == NULL;
}

static bool is_sys(struct mqtt_view topic)
{
	static const char sys[] = "$SYS/";
	return has_prefix(topic, sys, sizeof(sys) - 1);
}

bool auth_publish(const struct acl *acl, const char *user, size_t user_len,
                  struct mqtt_view client_id, struct mqtt_view topic)
{
	/* $SYS/ is the broker's own tree: a client publishing there would
	 * forge its statistics (mosquitto refuses it too), whatever the ACL;
	 * bridges' state topics excepted (the ACL still applies to them). */
	if (is_sys(topic) && !is_bridge_state(topic))
		return false;
	return !acl || acl_check(acl, user, user_len, (const char *)client_id.ptr, client_id.len,
	                         ACL_PUBLISH, (const char *)topic.ptr, topic.len, NULL);
}

bool auth_subscribe(const struct acl *acl, const char *user, size_t user_len,
                    struct mqtt_view client_id, struct mqtt_view filter)
{
	return !acl || acl_check(acl, user, user_len, (const char *)client_id.ptr, client_id.len,
	                         ACL_SUBSCRIBE, (const char *)filter.ptr, filter.len, NULL);
}

bool auth_receive(const struct acl *acl, const char *user, size_t user_len,
                  struct mqtt_view client_id, struct mqtt_view topic)
{
	return !acl || acl_check(acl, user, user_len, (const char *)client_id.ptr, client_id.len,
	                         ACL_RECEIVE, (const char *)topic.ptr, topic.len, NULL);
}
