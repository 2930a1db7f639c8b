/*
 * shared.c — map and unmap the coordinator/worker shared region.
 */
#include "shared.h"

#include <sys/mman.h>

struct shared *shared_create(uint32_t workers, size_t e2e_bytes, uint32_t run_id)
{
	size_t head = sizeof(struct shared) + workers * sizeof(struct stats);
	head = (head + 63) & ~(size_t)63;
	size_t size = head + e2e_bytes;
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	struct shared *sh = m; /* mmap memory is zeroed */
	sh->run_id = run_id;
	sh->workers = workers;
	sh->e2e_offset = head;
	sh->size = size;
	for (uint32_t i = 0; i < workers; i++)
		stats_init(&sh->stats[i]);
	return sh;
}

void shared_destroy(struct shared *sh)
{
	if (sh)
		munmap(sh, sh->size);
}

void *shared_e2e(struct shared *sh)
{
	return (char *)sh + sh->e2e_offset;
}
