/*
 * ring.c — a worker's io_uring ring (see ring.h). Runs on the worker's own
 * thread only.
 */
#include "io/ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "base/log.h"

#define RING_ENTRIES 4096
#define BUF_GROUP    1 /* the one provided-buffer group of a ring */

int ring_init(struct ring *r, uint16_t id, unsigned buf_count, unsigned buf_size)
{
	memset(r, 0, sizeof(*r));
	r->id = id;
	struct io_uring_params p = {0};
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
	          IORING_SETUP_SUBMIT_ALL;
	p.cq_entries = RING_ENTRIES * 4;
	int ret = io_uring_queue_init_params(RING_ENTRIES, &r->uring, &p);
	if (ret < 0) {
		/* Older kernels: the same ring without the deferred task run. */
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = RING_ENTRIES * 4;
		ret = io_uring_queue_init_params(RING_ENTRIES, &r->uring, &p);
	}
	if (ret < 0) {
		LOG_ERROR("worker %u: io_uring setup failed: %s", id, strerror(-ret));
		return -1;
	}
	r->ready = true;

	r->buf_count = buf_count;
	r->buf_size = buf_size;
	size_t ring_bytes = buf_count * sizeof(struct io_uring_buf);
	r->br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	/* Populated now: the kernel cycles through every buffer, so all of it
	 * becomes resident anyway; committing it at start keeps page faults off
	 * the receive path and makes RSS growth mean per-connection cost. */
	r->bufs = mmap(NULL, (size_t)buf_count * buf_size, PROT_READ | PROT_WRITE,
	               MAP_ANONYMOUS | MAP_PRIVATE | MAP_POPULATE, -1, 0);
	if (r->br == MAP_FAILED || r->bufs == MAP_FAILED) {
		if (r->br == MAP_FAILED)
			r->br = NULL;
		if (r->bufs == MAP_FAILED)
			r->bufs = NULL;
		LOG_ERROR("worker %u: no memory for receive buffers", id);
		return -1;
	}
	struct io_uring_buf_reg reg = {
	    .ring_addr = (unsigned long)r->br, .ring_entries = buf_count, .bgid = BUF_GROUP};
	ret = io_uring_register_buf_ring(&r->uring, &reg, 0);
	if (ret < 0) {
		LOG_ERROR("worker %u: provided buffer ring: %s", id, strerror(-ret));
		return -1;
	}
	io_uring_buf_ring_init(r->br);
	int mask = io_uring_buf_ring_mask(buf_count);
	for (unsigned i = 0; i < buf_count; i++)
		io_uring_buf_ring_add(r->br, r->bufs + (size_t)i * buf_size, buf_size,
		                      (unsigned short)i, mask, (int)i);
	io_uring_buf_ring_advance(r->br, (int)buf_count);
	return 0;
}

void ring_exit(struct ring *r)
{
	if (r->ready)
		io_uring_queue_exit(&r->uring);
	if (r->br)
		munmap(r->br, r->buf_count * sizeof(struct io_uring_buf));
	if (r->bufs)
		munmap(r->bufs, (size_t)r->buf_count * r->buf_size);
	memset(r, 0, sizeof(*r));
}

int ring_fd(const struct ring *r)
{
	return r->uring.ring_fd;
}

/* A free submission entry: when the queue is full, hand it to the kernel
 * first. Stuck full after that means the kernel takes nothing: there is no
 * way on from there. */
static struct io_uring_sqe *sqe_get(struct ring *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
	if (!sqe) {
		io_uring_submit(&r->uring);
		sqe = io_uring_get_sqe(&r->uring);
	}
	if (!sqe) {
		LOG_ERROR("worker %u: submission queue stuck full", r->id);
		abort();
	}
	return sqe;
}

void ring_accept(struct ring *r, int listen_fd, uint64_t ud)
{
	struct io_uring_sqe *sqe = sqe_get(r);
	io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud);
}

void ring_recv(struct ring *r, int fd, uint64_t ud)
{
	struct io_uring_sqe *sqe = sqe_get(r);
	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BUF_GROUP;
	io_uring_sqe_set_data64(sqe, ud);
}

void ring_send(struct ring *r, int fd, const void *buf, uint32_t len, uint64_t ud)
{
	struct io_uring_sqe *sqe = sqe_get(r);
	io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud);
}

void ring_read(struct ring *r, int fd, void *buf, uint32_t len, uint64_t ud)
{
	struct io_uring_sqe *sqe = sqe_get(r);
	io_uring_prep_read(sqe, fd, buf, len, 0);
	io_uring_sqe_set_data64(sqe, ud);
}

void ring_write(struct ring *r, int fd, const void *buf, uint32_t len, uint64_t off, uint64_t ud)
{
	struct io_uring_sqe *sqe = sqe_get(r);
	io_uring_prep_write(sqe, fd, buf, len, off);
	io_uring_sqe_set_data64(sqe, ud);
}

void ring_fdatasync(struct ring *r, int fd, uint64_t ud)
{
	struct io_uring_sqe *sqe = sqe_get(r);
	io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data64(sqe, ud);
}

void ring_write_fdatasync(struct ring *r, int fd, const void *buf, uint32_t len, uint64_t off,
                          uint64_t write_ud, uint64_t sync_ud)
{
	/* Both entries in one submission: a link across a submit is lost. */
	if (io_uring_sq_space_left(&r->uring) < 2)
		io_uring_submit(&r->uring);
	struct io_uring_sqe *w = sqe_get(r);
	io_uring_prep_write(w, fd, buf, len, off);
	io_uring_sqe_set_data64(w, write_ud);
	w->flags |= IOSQE_IO_LINK;
	struct io_uring_sqe *f = sqe_get(r);
	io_uring_prep_fsync(f, fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data64(f, sync_ud);
}

void ring_openat(struct ring *r, int dfd, const char *path, int flags, unsigned mode, uint64_t ud)
{
	struct io_uring_sqe *sqe = sqe_get(r);
	io_uring_prep_openat(sqe, dfd, path, flags, mode);
	io_uring_sqe_set_data64(sqe, ud);
}

void ring_close(struct ring *r, int fd, uint64_t ud)
{
	struct io_uring_sqe *sqe = sqe_get(r);
	io_uring_prep_close(sqe, fd);
	io_uring_sqe_set_data64(sqe, ud);
}

void ring_connect(struct ring *r, int fd, const void *addr, uint32_t addr_len, uint64_t ud)
{
	struct io_uring_sqe *sqe = sqe_get(r);
	io_uring_prep_connect(sqe, fd, addr, addr_len);
	io_uring_sqe_set_data64(sqe, ud);
}

void ring_cancel(struct ring *r, uint64_t target_ud, uint64_t ud)
{
	struct io_uring_sqe *sqe = sqe_get(r);
	io_uring_prep_cancel64(sqe, target_ud, 0);
	io_uring_sqe_set_data64(sqe, ud);
}

void ring_wake(struct ring *r, int to_ring_fd, uint64_t wake_ud, uint64_t ud)
{
	struct io_uring_sqe *sqe = sqe_get(r);
	io_uring_prep_msg_ring(sqe, to_ring_fd, 0, wake_ud, 0);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	io_uring_sqe_set_data64(sqe, ud);
}

void ring_buf_return(struct ring *r, unsigned bid)
{
	io_uring_buf_ring_add(r->br, r->bufs + (size_t)bid * r->buf_size, r->buf_size,
	                      (unsigned short)bid, io_uring_buf_ring_mask(r->buf_count), 0);
	io_uring_buf_ring_advance(r->br, 1);
}

int ring_submit_wait(struct ring *r, uint64_t wait_ms)
{
	struct __kernel_timespec ts = {.tv_sec = (long long)(wait_ms / 1000),
	                               .tv_nsec = (long long)(wait_ms % 1000) * 1000000};
	struct io_uring_cqe *cqe;
	int ret = io_uring_submit_and_wait_timeout(&r->uring, &cqe, 1, &ts, NULL);
	if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY)
		return ret;
	return 0;
}

unsigned ring_reap(struct ring *r, struct completion *out, unsigned max)
{
	unsigned head, n = 0;
	struct io_uring_cqe *cqe;
	io_uring_for_each_cqe(&r->uring, head, cqe)
	{
		if (n == max)
			break; /* the rest wait in the queue for the next turn */
		out[n++] = (struct completion){cqe->user_data, cqe->res, cqe->flags};
	}
	io_uring_cq_advance(&r->uring, n);
	return n;
}
