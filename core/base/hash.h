/*
 * hash.h — the byte-string hash of the broker's own tables (the client-id
 * registry, recovery's tables, where recovery places a session): FNV-1a
 * over the bytes. Not keyed: for tables whose keys a client cannot flood
 * into one chain (or where it only costs that client), not for secrets.
 */
#ifndef STARLING_CORE_HASH_H
#define STARLING_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t hash_bytes(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 1469598103934665603ull; /* the constant every copy used */
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

#endif
