/*
 * recover.h — the node's state back from its journal at start (DESIGN.md
 * "Durability"), on the main thread before the workers run: every file in
 * DATA_DIR/journal is read, whatever worker count wrote it; a torn or
 * corrupt tail is cut at the last good record (logged with the byte
 * offset), never a refusal to start; the merged state is handed to the
 * caller, which places it where the current worker count wants it.
 *
 * Retained messages: the last write of each topic by the order the live
 * store keeps (route/retain.c: the node-wide stamp; in a cluster the
 * publish time and origin first), deletes included; expired ones dropped.
 * Sessions: the last record of each client id by the node-wide order of
 * session records (persist/session_journal.h); an END leaves nothing.
 * Messages (persist/msg_journal.h): each REC_MSG target names a session by
 * its place in a run; the REC_SESS_PLACED records of that place say whose
 * it was. A target gets the message when that client id's session is the
 * one restored (no END of it after its last record at that place), it had
 * not said it was done with it (REC_MSG_DONE), and it has not expired; per
 * session in stamp order, each message once.
 */
#ifndef STARLING_CORE_RECOVER_H
#define STARLING_CORE_RECOVER_H

#include <stdint.h>

#include "base/config.h"
#include "route/msg.h"
#include "session/sess_id.h"

struct recover_result {
	uint64_t files;             /* journal files read */
	uint64_t records;           /* good records in them */
	uint64_t bytes;             /* of those files */
	uint64_t cut;               /* files whose tail was cut (torn or corrupt) */
	uint64_t cut_bytes;         /* bytes cut */
	uint64_t unknown;           /* records of a type this build does not know (skipped) */
	uint64_t rejected;          /* records whose checksum holds but whose contents this build
	                             * refuses (skipped, not cut: not damage) */
	uint64_t retained;          /* retained messages recovered */
	uint64_t retained_expired;  /* topics whose last value expired meanwhile (dropped) */
	uint64_t next_segment;      /* the number the new segments take */
	uint64_t next_stamp;        /* where the node-wide retained order goes on */
	uint64_t sessions;          /* persistent sessions restored */
	uint64_t sessions_refused;  /* sessions the callback could not restore */
	uint64_t sessions_expired;  /* sessions that expired while the node was down */
	uint64_t next_sess_stamp;   /* where the order of session (and message) records goes on */
	uint64_t next_run;          /* the number this start takes (above every run recorded) */
	uint64_t messages;          /* messages given back to restored sessions (one per session) */
	uint64_t messages_expired;  /* deliveries whose message expired while the node was down */
	uint64_t releases;          /* PUBRELs owed by restored sessions */
	uint64_t inbound;           /* inbound QoS 2 ids awaiting PUBREL, given back */
	uint64_t messages_orphaned; /* deliveries to a session that ended, was not restored or
	                             * whose place no session record names (dropped) */
	uint64_t ms;                /* time taken */
};

/* Called for each recovered retained message (one reference, the callee's). */
typedef void (*recover_retained_fn)(void *ctx, struct msg *m);
/* Called for each recovered session: its client id, its encoded form
 * (session/codec.c: session_encode_state) and the wall-clock ms of its
 * record, all valid during the call. 0 restored (*where: its new id, for
 * its messages), 1 it expired while the node was down (dropped), -1 not
 * restored (logged by the callee). */
typedef int (*recover_session_fn)(void *ctx, const uint8_t *client_id, size_t client_id_len,
                                  const uint8_t *enc, size_t len, uint64_t wall_ms,
                                  struct sess_id *where);
/* Called, after every session, for each message a restored session gets
 * back, per session in the order they were published: m is the callee's
 * (one reference) and m->jstamp its stamp; qos, flags (DELIV_RETAIN,
 * DELIV_SHARED) and sub_id as the route plan gave them; pid 0, or for a
 * QoS 2 delivery that went out (REC_MSG_SENT) its packet id: in flight
 * again under it. Then, m NULL, for each PUBREL a restored session owes
 * (qos 2, pid its packet id) and each inbound QoS 2 id of its client
 * awaiting PUBREL (qos 0, pid that id). */
typedef void (*recover_message_fn)(void *ctx, struct sess_id where, struct msg *m, uint8_t qos,
                                   uint8_t flags, uint32_t sub_id, uint16_t pid);

/*
 * Read cfg->data_dir's journal and hand over what it holds. A missing
 * directory is an empty journal. 0, or -1 with err when the directory
 * cannot be read or a file cannot be opened (not for a damaged tail: that
 * is cut and logged). now_ms: the monotonic clock. sess may be NULL
 * (sessions are then only counted), and msg (messages only counted).
 */
int recover_run(const struct config *cfg, uint64_t now_ms, recover_retained_fn put,
                recover_session_fn sess, recover_message_fn msg, void *ctx,
                struct recover_result *res, char *err, size_t err_len);
/* The same without cutting anything (a running node's directory: backup,
 * export): a damaged tail is only reported. */
int recover_read(const struct config *cfg, uint64_t now_ms, recover_retained_fn put,
                 recover_session_fn sess, recover_message_fn msg, void *ctx,
                 struct recover_result *res, char *err, size_t err_len);

#endif
