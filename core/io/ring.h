/*
 * ring.h — a worker's io_uring ring: the only code in the broker that calls
 * liburing (CONVENTIONS.md, TigerBeetle's io/linux.zig). Everything above
 * prepares operations through these functions and reads completions as
 * plain values, so the loop and the connections could run over a fake ring.
 *
 * Ring flags: SINGLE_ISSUER because only the worker's thread submits;
 * DEFER_TASKRUN so completions are processed when the loop asks (once per
 * turn) rather than by interrupting it; SUBMIT_ALL so one bad SQE does not
 * hold back the rest; a CQ four times the SQ because multishot receives can
 * post many completions per submission. Older kernels get the same ring
 * without the deferred task run.
 *
 * Receives are multishot into a provided-buffer ring: an idle connection
 * holds no receive buffer. A buffer goes back as soon as its completion is
 * handled (ring_buf_return); when the pool runs dry a receive ends with
 * -ENOBUFS and the caller re-arms it on a later turn.
 *
 * Only the thread that called ring_init() may use a ring (SINGLE_ISSUER),
 * except ring_fd(), which other workers use to wake this one.
 */
#ifndef STARLING_CORE_RING_H
#define STARLING_CORE_RING_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

struct ring {
	struct io_uring uring;        /* the kernel's queues */
	struct io_uring_buf_ring *br; /* provided receive buffers, shared with the kernel */
	uint8_t *bufs;                /* buf_count x buf_size bytes of receive buffers */
	unsigned buf_count;           /* a power of two */
	unsigned buf_size;            /* bytes */
	uint16_t id;                  /* the worker's id, for log lines */
	bool ready;                   /* ring_init succeeded: ring_exit must undo it */
};

/* One completion, copied out of the completion queue. */
struct completion {
	uint64_t ud;    /* op_pack() of the operation (op.h) */
	int32_t res;    /* bytes, a descriptor, or -errno */
	uint32_t flags; /* IORING_CQE_F_*: see completion_more, completion_buf */
};

/* Make the ring and its receive pool (buf_count, a power of two, of
 * buf_size bytes, populated now). 0, or -1 after logging why. */
int ring_init(struct ring *r, uint16_t id, unsigned buf_count, unsigned buf_size);
void ring_exit(struct ring *r); /* a zeroed or failed ring is fine */
/* The descriptor other workers wake this ring through (ring_wake). */
int ring_fd(const struct ring *r);

/* Preparing operations. ud is op_pack(kind, slot, gen). None can fail: a
 * full submission queue is handed to the kernel and a fresh entry taken. */
void ring_accept(struct ring *r, int listen_fd, uint64_t ud); /* multishot */
void ring_recv(struct ring *r, int fd, uint64_t ud);          /* multishot, pool */
void ring_send(struct ring *r, int fd, const void *buf, uint32_t len, uint64_t ud);
void ring_read(struct ring *r, int fd, void *buf, uint32_t len, uint64_t ud);
/* Write len bytes of buf at offset off of a file (the journal); buf must
 * stay valid until the completion. */
void ring_write(struct ring *r, int fd, const void *buf, uint32_t len, uint64_t off, uint64_t ud);
/* fdatasync(fd) on the ring. */
void ring_fdatasync(struct ring *r, int fd, uint64_t ud);
/* A write and then its fdatasync in one submission, linked: the flush
 * starts once the write completed (a failed or short write cancels it:
 * its completion is -ECANCELED). */
void ring_write_fdatasync(struct ring *r, int fd, const void *buf, uint32_t len, uint64_t off,
                          uint64_t write_ud, uint64_t sync_ud);
/* Open path relative to directory dfd (openat(2)); the completion's res
 * is the new descriptor or -errno. path must stay valid until the next
 * submission. */
void ring_openat(struct ring *r, int dfd, const char *path, int flags, unsigned mode, uint64_t ud);
/* close(fd) on the ring. */
void ring_close(struct ring *r, int fd, uint64_t ud);
/* Connect fd to addr; addr must stay valid until the next submission. */
void ring_connect(struct ring *r, int fd, const void *addr, uint32_t addr_len, uint64_t ud);
/* Cancel the operation prepared with target_ud; its own completion is ud. */
void ring_cancel(struct ring *r, uint64_t target_ud, uint64_t ud);
/* Post a completion with user_data wake_ud on another worker's ring;
 * nothing comes back here unless it fails (then ud, with -errno). */
void ring_wake(struct ring *r, int to_ring_fd, uint64_t wake_ud, uint64_t ud);

/* A receive buffer the kernel filled, and giving it back. */
static inline const uint8_t *ring_buf(const struct ring *r, unsigned bid)
{
	return r->bufs + (size_t)bid * r->buf_size;
}
void ring_buf_return(struct ring *r, unsigned bid);

/* Does a multishot operation go on after this completion? */
static inline bool completion_more(const struct completion *c)
{
	return c->flags & IORING_CQE_F_MORE;
}
/* The provided buffer a receive completion filled (when res > 0). */
static inline unsigned completion_buf(const struct completion *c)
{
	return c->flags >> IORING_CQE_BUFFER_SHIFT;
}

/* Submit what was prepared and wait until a completion arrives or wait_ms
 * passed (0: do not wait). 0, or -errno other than a timeout or an
 * interruption. */
int ring_submit_wait(struct ring *r, uint64_t wait_ms);
/* Take up to max completions, oldest first; the rest stay in the queue. */
unsigned ring_reap(struct ring *r, struct completion *out, unsigned max);

#endif
