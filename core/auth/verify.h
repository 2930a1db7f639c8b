/*
 * verify.h — password checks off the workers. A CONNECT with credentials is
 * checked by a small pool of threads, so that a deliberately slow hash
 * (PBKDF2, ~60 ms) never stalls the other connections of the worker that
 * received it (issue 5: "hashing never runs on the publish path of other
 * clients").
 *
 * A worker submits (its id, the connection's slot and generation, user,
 * password) and goes on; a pool thread checks the password against the
 * current password database and appends the verdict to that worker's result
 * list, then writes the worker's eventfd, on which the worker keeps a read
 * armed. A verdict for a connection that went away meanwhile no longer
 * matches its slot's generation and is ignored.
 *
 * Order: the waiting checks are kept in VERIFY_LANES lanes, one user name
 * per lane while lanes are free (a keyed hash of the name says where to
 * look first; names share a lane only when every lane is busy), and the
 * threads take one check from each waiting lane in turn. A brute force on
 * one user name, from however many addresses, fills its own lane and takes
 * one turn in N, so a client with another user name is checked after at
 * most one check per busy lane, not after the whole attack (first come
 * first served made it wait behind every guess). Checks submitted as
 * `later` (their address failed recently: auth.c) have lanes of their own,
 * served only while no other check waits, so a guesser's second guess
 * waits behind every client that has not failed.
 *
 * Limits: VERIFY_LANE_MAX checks waiting per lane, VERIFY_QUEUE_MAX in all
 * (a full lane refuses the CONNECT with "server busy" rather than queueing
 * without bound); a check still waiting VERIFY_WAIT_MS after it was queued
 * is dropped unhashed (its connection ends as a connect timeout, see
 * VERIFY_ANSWER_MS); credentials over VERIFY_CRED_MAX bytes fail without
 * hashing.
 */
#ifndef STARLING_CORE_VERIFY_H
#define STARLING_CORE_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VERIFY_LANES     64
#define VERIFY_LANE_MAX  64
#define VERIFY_QUEUE_MAX 4096  /* in all lanes */
#define VERIFY_CRED_MAX  1024  /* bytes of user name plus password */
#define VERIFY_WAIT_MS   20000 /* longest wait in the queue before a check is dropped */
/* A connection waiting for its check is kept this long past its connect
 * deadline (the queue wait plus a generous hash time): the connect timeout
 * does not kill a check that is merely queued behind others. */
#define VERIFY_ANSWER_MS (VERIFY_WAIT_MS + 10000)

struct passwd_db;
struct verify_pool;

struct verify_result {
	uint32_t slot; /* the connection, as submitted */
	uint32_t gen;
	bool ok;
};

/* Start threads checking for workers [0, workers). Main thread. */
struct verify_pool *verify_start(unsigned threads, unsigned workers, char *err, size_t err_len);
/* Stop the threads and free everything, the database included. */
void verify_stop(struct verify_pool *p);

/* Install a password database (takes ownership; NULL = none: every check
 * fails). The previous one is freed once no check is using it. Main
 * thread, at start and on SIGHUP. */
void verify_set_db(struct verify_pool *p, struct passwd_db *db);

/* Worker: queue a check (later: after every other kind, see above). false
 * when its lane or the queue is full. */
bool verify_submit(struct verify_pool *p, uint16_t worker, uint32_t slot, uint32_t gen,
                   const uint8_t *user, size_t user_len, const uint8_t *password,
                   size_t password_len, bool later);

/* Worker: the eventfd that becomes readable when verdicts wait for it. */
int verify_event_fd(const struct verify_pool *p, uint16_t worker);

/* Worker: take up to max verdicts for this worker; returns how many. */
unsigned verify_take(struct verify_pool *p, uint16_t worker, struct verify_result *out,
                     unsigned max);

#endif
