/*
 * msg_journal.h — the messages of persistent sessions into the journal
 * (core/persist/README.md "Messages"): a QoS 1/2 message whose route plan
 * reached journaled subscriptions is written once, by the publisher's
 * worker, before it is delivered (REC_MSG: the body and the sessions it
 * reached, named by their place in this run, whose REC_SESS_PLACED records
 * say which client id lived there); the worker that owns a session writes
 * REC_MSG_DONE when the session is done with one (PUBACK of QoS 1), and for
 * QoS 2 REC_MSG_REL at PUBREC (done with the message, PUBREL owed) and
 * REC_MSG_COMP at PUBCOMP. Recovery gives each session the messages that
 * name it and it was not done with, and the PUBRELs it still owes.
 *
 * Stamps come from the node-wide order of session records: a message's
 * stamp orders it among them, and one publisher's messages are stamped in
 * the order it sent them.
 */
#ifndef STARLING_CORE_PERSIST_MSG_JOURNAL_H
#define STARLING_CORE_PERSIST_MSG_JOURNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "persist/journal.h"
#include "persist/record.h"
#include "route/plan.h"
#include "session/session.h"

/* Write m's REC_MSG (one per REC_MSG_TARGETS_MAX targets, all with one
 * stamp) naming p's targets with PLAN_JOURNALED, and stamp m->jstamp. in:
 * the persistent publisher's QoS 2 packet id, which the last record carries
 * (REC_MSG_IN; NULL: none). false when the journal refused it (counted in
 * journal_refused) or memory ran out; m is then not stamped. */
bool persist_message(struct journal *j, struct msg *m, const struct plan *p,
                     const struct rec_inbound *in, _Atomic uint64_t *stamps, uint64_t now_ms);

/* Write m's REC_MSG naming one target (to, at qos, with the delivery's
 * retain and shared flags) and stamp m->jstamp: a message that reached a
 * journaled session by a way that did not journal it for that session
 * (a retained message at SUBSCRIBE, a shared group's handoff, a will),
 * written by the session's own worker on arrival, on a copy of its own
 * (msg_copy). false as persist_message. */
bool persist_message_to(struct journal *j, struct msg *m, struct sess_id to, uint8_t qos,
                        uint8_t flags, uint32_t sub_id, _Atomic uint64_t *stamps, uint64_t now_ms);

/* A session (client id) is done with the message of stamp `stamp`. false
 * when the journal refused it (counted): the message may come again after
 * a crash, as an unacknowledged one does. */
bool persist_message_done(struct journal *j, uint64_t stamp, const char *client_id, uint16_t len);

/* A packet id's step, `type` one of REC_MSG_REL (a QoS 2 delivery's
 * PUBREC came: done with the message of msg_stamp, PUBREL of pid owed),
 * REC_MSG_COMP (its PUBCOMP came), REC_MSG_SENT (the PUBLISH of the message
 * of msg_stamp goes out under pid), REC_IN_QOS2 (a QoS 2 PUBLISH of pid
 * came from the session's client), REC_IN_REL (its PUBREL came); msg_stamp
 * only for REL and SENT. Stamped from stamps (the later record of a packet
 * id holds). false when the journal refused it (counted). */
bool persist_packet_id(struct journal *j, _Atomic uint64_t *stamps, uint8_t type,
                       uint64_t msg_stamp, uint16_t pid, const char *client_id, uint16_t len);

/* What the journal holds for a session, as the records that say it again
 * (a snapshot, compact.c; a session that moved while one was made): each
 * journaled message in flight awaiting PUBACK/PUBREC or queued (message),
 * the packet id of each journaled QoS 2 delivery in flight (packet_id,
 * REC_MSG_SENT with the message's stamp), each PUBREL it owes
 * (REC_MSG_REL, no message) and each inbound QoS 2 id awaiting PUBREL
 * (REC_IN_QOS2), in that order per entry, in flight before queued. */
struct journaled_walk {
	void (*message)(void *ctx, const struct session *s, const struct msg *m, uint8_t qos,
	                uint8_t flags, uint32_t sub_id);
	void (*packet_id)(void *ctx, const struct session *s, uint8_t type, uint64_t msg_stamp,
	                  uint16_t pid);
};
void session_journaled_walk(const struct session *s, const struct journaled_walk *fn, void *ctx);

/* Append what the journal holds for s again, naming s's place now (each
 * message under its own stamp, the packet ids under new ones): a session
 * that moved to this worker while a compaction round was open may be in
 * neither worker's snapshot, and the older segments that hold its
 * messages are then deleted. false when the journal refused a record
 * (counted). */
bool persist_session_messages(struct journal *j, const struct session *s, _Atomic uint64_t *stamps,
                              uint64_t now_ms);

#endif
