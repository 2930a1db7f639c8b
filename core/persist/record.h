/*
 * record.h — the bytes of the journal on disk (core/persist/README.md
 * "Record format"): a file's 40-byte header, the framing of each record
 * (length, CRC-32C, type, log sequence number, wall-clock time, payload),
 * the payloads of the retained-store records, and a scanner that reads a
 * file's records in order and says where its good part ends.
 *
 * Everything but journal_scan is pure (no I/O, no globals, no clocks: time
 * comes in as arguments) and may run on any thread; journal_scan reads a
 * file with pread and nothing else. All integers are big-endian.
 */
#ifndef STARLING_CORE_RECORD_H
#define STARLING_CORE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "session/sess_id.h"

/* ---- a file's header ----------------------------------------------------- */

/*
 *   0  8 bytes  magic "STRLJNL1"
 *   8  u32      format version (JOURNAL_VERSION)
 *  12  u16      writer (the worker id that owns the file)
 *  14  u16      kind (JOURNAL_KIND_*)
 *  16  u64      segment number
 *  24  u64      wall-clock ms when the file was created
 *  32  u32      reserved: written 0, ignored on read
 *  36  u32      CRC-32C of bytes 0..35
 */
#define JOURNAL_HEADER_BYTES 40
#define JOURNAL_VERSION      1

enum journal_kind {
	JOURNAL_KIND_SEGMENT = 0,  /* a journal segment: records appended as they happen */
	JOURNAL_KIND_SNAPSHOT = 1, /* a snapshot: the state as records, written at once */
};

struct journal_header {
	uint32_t version;         /* JOURNAL_VERSION */
	uint16_t writer;          /* worker id */
	uint16_t kind;            /* enum journal_kind; the caller checks it */
	uint64_t segment;         /* segment number, in the writer's sequence */
	uint64_t created_wall_ms; /* wall-clock ms since the epoch at creation */
};

void journal_header_put(uint8_t out[JOURNAL_HEADER_BYTES], const struct journal_header *h);

/* Read a header from the n bytes at p: 0, or -1 when n is short of a
 * header, the magic or the checksum is wrong, or the version is not one
 * this build reads. */
int journal_header_get(const uint8_t *p, size_t n, struct journal_header *h);

/* ---- a record's framing -------------------------------------------------- */

/*
 *   0  u32  len: bytes after the crc field (RECORD_FIXED + payload length)
 *   4  u32  crc: CRC-32C of the 4 len bytes, then of the len bytes after crc
 *   8  u8   type (enum record_type)
 *   9  u64  lsn: log sequence number, strictly increasing within a file
 *  17  u64  wall_ms: wall-clock ms when it was written
 *  25       payload (len - RECORD_FIXED bytes, by type)
 *
 * The length is inside the checksum, so a torn or damaged length is caught.
 * Zero-filled bytes (a preallocated tail, or what a filesystem leaves past
 * the last write after a crash) have len 0 < RECORD_FIXED: CORRUPT, never a
 * record.
 */
#define RECORD_HEAD  8  /* len + crc */
#define RECORD_FIXED 17 /* type + lsn + wall_ms */
/* A larger len is corrupt (MQTT's largest packet is 256 MiB). */
#define RECORD_LEN_MAX (300u << 20)

enum record_type {
	REC_NONE = 0, /* never written */
	REC_RETAIN_SET = 1,
	REC_RETAIN_DEL = 2,
	REC_SESS_PUT = 3,    /* a persistent session's state, without its messages */
	REC_SESS_END = 4,    /* it ended */
	REC_MSG = 5,         /* a QoS 1/2 message that reached persistent sessions */
	REC_MSG_DONE = 6,    /* one session is done with one of those messages */
	REC_SESS_PLACED = 7, /* REC_SESS_PUT with where the session lives: what
	                      * REC_MSG names it by (3 is still read) */
	REC_MSG_REL = 8,     /* a QoS 2 delivery's PUBREC came: PUBREL owed */
	REC_MSG_COMP = 9,    /* and its PUBCOMP came */
	REC_MSG_SENT = 10,   /* a QoS 2 delivery went out under a packet id */
	REC_IN_QOS2 = 11,    /* a persistent session's QoS 2 PUBLISH came: PUBREL awaited */
	REC_IN_REL = 12,     /* and its PUBREL came */
	REC_MSG_IN = 13,     /* REC_MSG with the inbound QoS 2 packet id it came under */
	/* A record of a type >= REC_TYPES is valid framing
	 * (record_read says RECORD_OK), so that an older build's reader can
	 * skip what a newer one wrote: what to do with it is the caller's
	 * decision. */
	REC_TYPES
};

/* Bytes of a whole record with a payload of payload_len bytes. */
static inline size_t record_size(size_t payload_len)
{
	return RECORD_HEAD + RECORD_FIXED + payload_len;
}

/* Where the payload of the record at rec goes (rec + 25). */
uint8_t *record_payload(uint8_t *rec);

/*
 * Finish the record of total bytes (record_size(payload length)) at rec
 * whose payload is already in place at record_payload(rec): write its len,
 * type, lsn, wall_ms and, last, its crc. So the journal encodes straight
 * into its write buffer. total must be within the bounds above (CHECK).
 */
void record_seal(uint8_t *rec, size_t total, uint8_t type, uint64_t lsn, uint64_t wall_ms);

enum record_result {
	RECORD_OK,      /* a whole record whose checksum holds */
	RECORD_TORN,    /* the bytes are a proper prefix of a record: fewer than
	                 * 4, or fewer than RECORD_HEAD + len (a tail cut by a crash) */
	RECORD_CORRUPT, /* len out of bounds, or the checksum does not hold */
};

struct record {
	uint8_t type;           /* enum record_type, or a later one */
	uint64_t lsn;           /* log sequence number */
	uint64_t wall_ms;       /* wall-clock ms when written */
	const uint8_t *payload; /* into the bytes read */
	size_t payload_len;     /* bytes */
	size_t total;           /* bytes of the whole record: the next one starts there */
};

/*
 * Read the record at the start of the n bytes at p. Never reads past n.
 * With 4 bytes or more the length is judged at once: a length out of
 * bounds is CORRUPT even when the rest is missing (no writer makes one, so
 * it is not a torn tail but damage, or zeros).
 */
enum record_result record_read(const uint8_t *p, size_t n, struct record *out);

/* ---- retained-store payloads --------------------------------------------- */

/*
 * REC_RETAIN_SET:
 *   u64 stamp (the node-wide order of retained writes)
 *   u64 origin_rank                  u64 publish wall-clock ms (msg wall_ms)
 *   u8  protocol level (3, 4, 5)     u8  flags: QoS in bits 0-1, 0x04 retain
 *   u64 expires at (wall-clock ms, absolute; 0 = never)
 *   u16 topic length, topic          u32 body length, body (the PUBLISH body
 *                                    as received: from the topic's length
 *                                    prefix to the end of the payload)
 * REC_RETAIN_DEL:
 *   u64 stamp  u64 origin_rank  u64 wall-clock ms  u16 topic length, topic
 *
 * A retained message with an empty payload deletes the topic's
 * (route/retain.h); the journal writes REC_RETAIN_DEL for that, and
 * rec_retain_set_get takes an empty payload as it is.
 */
struct msg;

/* Bytes of a REC_RETAIN_SET payload for m. */
size_t rec_retain_set_size(const struct msg *m);

/*
 * Write it at payload (rec_retain_set_size(m) bytes). m->expires_at_ms is
 * monotonic (route/msg.h) and is written as wall-clock ms: now_wall_ms +
 * (m->expires_at_ms - now_ms); 0 stays 0, already expired gives now_wall_ms.
 */
void rec_retain_set_put(uint8_t *payload, const struct msg *m, uint64_t stamp, uint64_t now_ms,
                        uint64_t now_wall_ms);

/* Bytes of a REC_RETAIN_DEL payload for a topic of topic_len bytes. */
size_t rec_retain_del_size(size_t topic_len);

/* Write it (topic_len <= 65535, CHECK). */
void rec_retain_del_put(uint8_t *payload, const uint8_t *topic, size_t topic_len, uint64_t stamp,
                        uint64_t origin_rank, uint64_t wall_ms);

struct rec_retain {
	uint64_t stamp;       /* the node-wide order of retained writes */
	uint64_t origin_rank; /* with wall_ms, the last-writer-wins order (route/msg.h) */
	uint64_t wall_ms;     /* publish (or delete) wall-clock ms */
	const uint8_t *topic; /* into the payload */
	uint16_t topic_len;   /* bytes */
	bool expired;         /* a set whose message expired: no message made */
};

/*
 * Decode a REC_RETAIN_SET payload of len bytes: *m gets a new message (one
 * reference, made by msg_from_body, with wall_ms and origin_rank set and
 * expires_at_ms converted back to monotonic: now_ms + (at - now_wall_ms),
 * the remaining time capped at the longest Message Expiry Interval, 2^32-1
 * s, should the wall clock have gone back). When at <= now_wall_ms the
 * message has expired: *m = NULL, out->expired = true, return 0. Returns
 * 0, or -1 with *m = NULL and errno EINVAL when the payload is malformed
 * (a length, the level, QoS 3 or unknown flags, a topic that is not a
 * topic name, a body msg_from_body refuses or whose topic disagrees,
 * trailing bytes) or ENOMEM.
 */
int rec_retain_set_get(const uint8_t *payload, size_t len, uint64_t now_ms, uint64_t now_wall_ms,
                       struct rec_retain *out, struct msg **m);

/* Decode a REC_RETAIN_DEL payload: 0, or -1 when malformed (a length, a
 * topic that is not a topic name, trailing bytes). */
int rec_retain_del_get(const uint8_t *payload, size_t len, struct rec_retain *out);

/* ---- session payloads ---------------------------------------------------- */

/*
 * REC_SESS_PLACED (written since messages are journaled):
 *   u64 stamp (the node-wide order of session and message records: the
 *       last session record of a client id is its state)
 *   u64 run (this start of the node: ids are unique within a run)
 *   u16 worker  u32 slot  u32 generation (the session's sess_id in that run)
 *   u16 client id length, client id
 *   the encoded session (session/codec.c: session_encode_state, no messages
 *   in flight or queued and no inbound QoS 2 ids), to the end of the payload
 * REC_SESS_PUT (an older writer's, still read): the same without run and
 *   place: u64 stamp, u16 client id length, client id, encoded session
 * REC_SESS_END:
 *   u64 stamp  u16 client id length, client id
 */
struct rec_place {
	uint64_t run;      /* 0: none (REC_SESS_PUT, REC_SESS_END) */
	struct sess_id id; /* the session's id in that run */
};

size_t rec_sess_size(size_t client_id_len, size_t enc_len, bool placed);
/* Write one: place NULL and enc NULL, enc_len 0: an END; place NULL with enc:
 * a REC_SESS_PUT (tests of the older format); else REC_SESS_PLACED.
 * client_id_len <= 65535 (CHECK). */
void rec_sess_put(uint8_t *payload, uint64_t stamp, const struct rec_place *place,
                  const uint8_t *client_id, size_t client_id_len, const uint8_t *enc,
                  size_t enc_len);

struct rec_sess {
	uint64_t stamp;
	struct rec_place place;   /* run 0 unless REC_SESS_PLACED */
	const uint8_t *client_id; /* into the payload */
	uint16_t client_id_len;   /* bytes, > 0 */
	const uint8_t *enc;       /* the encoded session (PUT), NULL (END) */
	size_t enc_len;
};

/* Decode a REC_SESS_PUT, REC_SESS_PLACED or REC_SESS_END payload (type):
 * 0, or -1 when malformed (an empty client id, lengths that do not add up,
 * a PUT without a session or an END with bytes after the id). The encoded
 * session is judged by session_decode, not here. */
int rec_sess_get(const uint8_t *payload, size_t len, uint8_t type, struct rec_sess *out);

/* ---- message payloads ---------------------------------------------------- */

/*
 * REC_MSG, written by the publisher's worker before the message is routed
 * (its PUBACK/PUBREC waits for the record), naming the persistent sessions
 * the route plan reached by their place in this run:
 *   u64 stamp (the node-wide order shared with session records)
 *   u64 run
 *   u8  protocol level   u8 flags: QoS in bits 0-1, 0x04 retain
 *   u64 expires at (wall-clock ms, absolute; 0 = never)
 *   u16 topic length, topic    u32 body length, body (as REC_RETAIN_SET)
 *   u16 targets; each (16 bytes): u16 worker, u32 slot, u32 generation,
 *       u8 QoS to deliver with, u8 flags (1 retain, 2 shared), u32
 *       subscription id
 * REC_MSG_DONE, written by the subscriber's worker when a session is done
 * with a message (PUBACK of QoS 1, a refusing PUBREC of QoS 2, or dropped):
 *   u64 the message's stamp   u16 client id length, client id
 * REC_MSG_REL, when a QoS 2 delivery's PUBREC came (done with the message;
 * the PUBREL of its packet id is owed until PUBCOMP), and REC_MSG_COMP when
 * the PUBCOMP came; per (client id, packet id) the later by stamp holds:
 *   REL:  u64 stamp (node-wide)  u64 the message's stamp (0: none, a
 *         snapshot's)  u16 packet id  u16 client id length, client id
 *   COMP: u64 stamp  u16 packet id  u16 client id length, client id
 * REC_MSG_SENT (REL's layout), before a journaled QoS 2 delivery's PUBLISH
 * leaves (the gate holds it): recovery sends it again under that packet id.
 * REC_IN_QOS2 and REC_IN_REL (COMP's layout): a persistent session's
 * inbound QoS 2 packet id, received (before its PUBREC leaves) and
 * released (before its PUBCOMP leaves); the later by stamp holds.
 */
#define REC_MSG_TARGET_BYTES 16
#define REC_MSG_TARGETS_MAX  4096 /* per record; more targets: several records */

struct rec_msg_target {
	struct sess_id id;
	uint32_t sub_id;
	uint8_t qos;
	uint8_t flags;
};

/* Bytes of a REC_MSG payload for m with n targets. */
size_t rec_msg_size(const struct msg *m, size_t n);
/* Write it; expiry as rec_retain_set_put. n <= REC_MSG_TARGETS_MAX (CHECK). */
void rec_msg_put(uint8_t *payload, const struct msg *m, uint64_t stamp, uint64_t run,
                 const struct rec_msg_target *t, size_t n, uint64_t now_ms, uint64_t now_wall_ms);

struct rec_msg {
	uint64_t stamp, run;
	const uint8_t *targets; /* n x REC_MSG_TARGET_BYTES, into the payload */
	uint16_t n;
	bool expired; /* no message made */
};

/* Decode a REC_MSG payload: *m as rec_retain_set_get makes it (NULL when
 * it expired: out->expired). 0, or -1 with *m NULL and errno EINVAL
 * (malformed: as REC_RETAIN_SET, a target count that disagrees with the
 * bytes, a target's QoS over 2 or unknown flags) or ENOMEM. */
int rec_msg_get(const uint8_t *payload, size_t len, uint64_t now_ms, uint64_t now_wall_ms,
                struct rec_msg *out, struct msg **m);
/* Target i of a decoded REC_MSG (i < out->n). */
void rec_msg_target(const struct rec_msg *r, uint16_t i, struct rec_msg_target *t);

/*
 * REC_MSG_IN: a REC_MSG whose message is a persistent session's QoS 2
 * PUBLISH, with the packet id it came under (what REC_IN_QOS2 says, in the
 * same record). Two records could be cut apart by a torn tail, and an id
 * kept without its message takes the publisher's resend for a duplicate:
 * acknowledged and lost. The last REC_MSG of a stamp is this one.
 *   u16 packet id   u16 client id length, client id   then REC_MSG's payload
 */
struct rec_inbound {
	uint16_t pid; /* > 0 */
	const uint8_t *client_id;
	uint16_t client_id_len; /* > 0 */
};
size_t rec_msg_in_size(const struct msg *m, size_t n, size_t client_id_len);
void rec_msg_in_put(uint8_t *payload, const struct rec_inbound *in, const struct msg *m,
                    uint64_t stamp, uint64_t run, const struct rec_msg_target *t, size_t n,
                    uint64_t now_ms, uint64_t now_wall_ms);
/* As rec_msg_get, with *in (pointing into the payload); -1 also for a
 * packet id or client id length of 0. */
int rec_msg_in_get(const uint8_t *payload, size_t len, uint64_t now_ms, uint64_t now_wall_ms,
                   struct rec_inbound *in, struct rec_msg *out, struct msg **m);

size_t rec_msg_done_size(size_t client_id_len);
void rec_msg_done_put(uint8_t *payload, uint64_t stamp, const uint8_t *client_id,
                      size_t client_id_len);
struct rec_msg_done {
	uint64_t stamp;
	const uint8_t *client_id;
	uint16_t client_id_len;
};
int rec_msg_done_get(const uint8_t *payload, size_t len, struct rec_msg_done *out);

struct rec_release {
	uint64_t stamp;
	uint64_t msg_stamp; /* REL and SENT only; 0: none */
	uint16_t pid;       /* > 0 */
	const uint8_t *client_id;
	uint16_t client_id_len;
};
/* with_msg: the layout with the message's stamp (REC_MSG_REL,
 * REC_MSG_SENT), else without (REC_MSG_COMP, REC_IN_QOS2, REC_IN_REL). */
static inline bool rec_release_with_msg(uint8_t type)
{
	return type == REC_MSG_REL || type == REC_MSG_SENT;
}
size_t rec_release_size(size_t client_id_len, bool with_msg);
void rec_release_put(uint8_t *payload, const struct rec_release *r, bool with_msg);
int rec_release_get(const uint8_t *payload, size_t len, bool with_msg, struct rec_release *out);

/* ---- reading a file ------------------------------------------------------ */

struct scan_result {
	struct journal_header header; /* the file's header */
	uint64_t records;             /* good records read (and given to fn) */
	uint64_t good_end;            /* byte offset after the last good record (after the
	                               * header when there is none): where to truncate */
	uint64_t file_size;           /* bytes, as fstat said when the scan began */
	enum record_result stop;      /* why it stopped: OK = clean end of file, TORN = a
	                               * record cut short by the end of the file, CORRUPT =
	                               * a damaged record, an lsn not above the one before,
	                               * or fn refused one */
	uint64_t last_lsn;            /* lsn of the last good record (0 when none) */
	char err[160];                /* when stop is not OK or -1 is returned: why, with the
	                               * path and offset */
};

/* Called for each good record, in order, at offset bytes into the file;
 * r->payload lives until fn returns. Returns 0 to go on, or -1 to stop
 * there (stop = RECORD_CORRUPT, the record not counted): fn may write its
 * reason into the scan_result's err (its own, reached through ctx), else
 * journal_scan writes a generic one. */
typedef int (*scan_fn)(void *ctx, const struct record *r, uint64_t offset);

/*
 * Read path's header and every record in order, calling fn (may be NULL)
 * for each good one, until the end of the file or the first torn or
 * corrupt record. Reads with pread in chunks into one buffer grown to the
 * largest record met (at most RECORD_HEAD + RECORD_LEN_MAX), never the
 * whole file at once. Returns 0 when the header was good, whatever the
 * tail (res says); -1 when the file cannot be opened or read, or its header
 * is bad (res->err says which, with the path).
 */
int journal_scan(const char *path, scan_fn fn, void *ctx, struct scan_result *res);

#endif
