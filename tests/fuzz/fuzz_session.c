/*
 * fuzz_session.c — libFuzzer target over session_decode() (core/session/
 * codec.c), the parser of encoded sessions: bytes another worker wrote
 * today, and the journal on disk and other nodes next.
 *
 * Input: an encoded session (seeds: tests/fuzz/make_session_corpus.py,
 * written from the format's description, not from our encoder). Promises:
 * decoding never reads past the input and never crashes; an accepted
 * session encodes again, that encoding decodes, and encodes to the same
 * bytes (what was accepted is a session the broker could have made and can
 * carry on); every message reference is given back (ASan's leak check).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_session: " __VA_ARGS__);                             \
			fputc('\n', stderr);                                                       \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define NOW 5000000u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sess_id id = {3, 7, 1};
	struct session *s = session_decode(data, size, id, NOW);
	if (!s)
		return 0;
	FUZZ_CHECK(sess_id_eq(s->id, id), "the id given is not the id it has");
	FUZZ_CHECK(!s->online, "a decoded session is attached");
	size_t len;
	uint8_t *enc = session_encode(s, NOW, &len);
	FUZZ_CHECK(enc, "an accepted session does not encode");
	struct session *again = session_decode(enc, len, id, NOW);
	FUZZ_CHECK(again, "its own encoding is refused");
	size_t len2;
	uint8_t *enc2 = session_encode(again, NOW, &len2);
	FUZZ_CHECK(enc2 && len2 == len && memcmp(enc, enc2, len) == 0,
	           "encode(decode(encode(s))) differs from encode(s)");
	free(enc2);
	free(enc);
	session_free(again);
	session_free(s);
	return 0;
}
