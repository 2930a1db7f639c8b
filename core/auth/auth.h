/*
 * auth.h — who may connect, publish, subscribe and receive. The broker asks
 * here at each of those points and nowhere else; the policy lives in this
 * module and the ones it owns: the password database checked off the
 * workers (verify.h), the failure limiter, and the ACLs (acl.h).
 *
 * Threads: auth_new, auth_reload and auth_free run on the main thread. The
 * connect and ACL checks run on workers, concurrently; they read the
 * configuration-derived flags (immutable between reloads) and the ACL a
 * worker picked up at the top of its loop turn (auth_acl_acquire), which a
 * reload frees only after every worker has moved past it.
 */
#ifndef STARLING_CORE_AUTH_H
#define STARLING_CORE_AUTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/config.h"
#include "packet.h"
#include "view.h"

struct acl;
struct auth;
struct verify_pool;

/* Load the password file and ACL the configuration names, start the
 * password-checking threads when there is a password file. NULL with err
 * ("password_file /etc/x:3: ...") when a file is bad. */
struct auth *auth_new(const struct config *cfg, unsigned workers, char *err, size_t err_len);
void auth_free(struct auth *a);
/* --check-config: load the password file and ACL as auth_new does and drop
 * them. 0, or -1 with auth_new's message. No threads, nothing kept. */
int auth_check(const struct config *cfg, char *err, size_t err_len);

/* SIGHUP: read the password file and ACL again. All or nothing: on error
 * nothing changes and err says why. The new ACL reaches each worker at its
 * next loop turn; this returns once all of them use it (or after a bound,
 * leaving the old one allocated rather than freeing it under a worker). */
int auth_reload(struct auth *a, const struct config *cfg, char *err, size_t err_len);

/* The pool that checks passwords (NULL without a password file). */
struct verify_pool *auth_verifier(const struct auth *a);

enum auth_step {
	AUTH_ACCEPT,       /* go on with the CONNECT */
	AUTH_REFUSE,       /* refuse it with *rc */
	AUTH_VERIFY,       /* check the password off the worker, then decide */
	AUTH_VERIFY_LATER, /* the same, after the others: the address failed recently */
};

/* Where a CONNECT's user name comes from (tls_identity_as_username). */
enum auth_identity {
	AUTH_ID_NONE = 0, /* the CONNECT's own user name and password */
	AUTH_ID_CERT,     /* a verified client certificate's identity (k->username) */
	AUTH_ID_MISSING,  /* the listener wants one, and the client showed none */
	AUTH_ID_VERIFIED, /* a verified client certificate, not used as a user name:
	                   * the client is authenticated, not anonymous */
};

/* CONNECT, before any session work. peer is the client's address bytes
 * (4 or 16), for the failure limiter. */
/* Listener kinds, as enum listener_kind of worker.h: mqtt, mqtts, ws, wss. */
#define AUTH_LISTENER_KINDS 4

enum auth_step auth_connect(struct auth *a, const struct mqtt_connect *k, unsigned listener_kind,
                            enum auth_identity id, const uint8_t *peer, size_t peer_len,
                            uint64_t now_ms, enum mqtt_rc *rc);
/* A new connection from peer: within connect_rate_per_address? (Counts
 * it.) Worker, at accept. */
bool auth_accept_allowed(struct auth *a, const uint8_t *peer, size_t peer_len, uint64_t now_ms);
/* A password check passed: remember the credential (auth_cache_size). */
void auth_passed(struct auth *a, const struct mqtt_connect *k);
/* A password check failed: count it against the address, and remember the
 * credential (k, NULL: none) as wrong for a minute, so that the same one
 * again is refused without a hash and without counting again. */
void auth_failed(struct auth *a, const struct mqtt_connect *k, const uint8_t *peer, size_t peer_len,
                 uint64_t now_ms);

/* The ACL for this loop turn (NULL: no ACL file, everything is allowed).
 * held and *gen_inout are what the worker used last turn (NULL and 0 at
 * first); a changed *gen_inout tells it to check its sessions'
 * subscriptions again. Also the promise that the worker got it (see
 * auth_reload). Worker, at the top of every turn. */
const struct acl *auth_acl_acquire(struct auth *a, uint16_t worker, const struct acl *held,
                                   uint64_t *gen_inout);

/* user NULL = anonymous. */
bool auth_publish(const struct acl *acl, const char *user, size_t user_len,
                  struct mqtt_view client_id, struct mqtt_view topic);
bool auth_subscribe(const struct acl *acl, const char *user, size_t user_len,
                    struct mqtt_view client_id, struct mqtt_view filter);
bool auth_receive(const struct acl *acl, const char *user, size_t user_len,
                  struct mqtt_view client_id, struct mqtt_view topic);

#endif
