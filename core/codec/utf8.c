/*
 * utf8.c — MQTT UTF-8 string well-formedness (§1.5.4). A fast path skips
 * ASCII a word at a time since nearly every topic and client id is ASCII.
 */
#include "utf8.h"

#include <string.h>

bool mqtt_utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		/* ASCII fast path: eight bytes without a high bit or a zero. */
		if (i + 8 <= len) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			uint64_t zero =
			    (w - UINT64_C(0x0101010101010101)) & ~w & UINT64_C(0x8080808080808080);
			if (!(w & UINT64_C(0x8080808080808080)) && !zero) {
				i += 8;
				continue;
			}
		}
		uint8_t c = s[i];
		if (c == 0) /* [MQTT-1.5.4-2] */
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		uint32_t cp, min;
		if ((c & 0xE0) == 0xC0) {
			n = 2;
			cp = c & 0x1F;
			min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			n = 3;
			cp = c & 0x0F;
			min = 0x800;
		} else if ((c & 0xF8) == 0xF0) {
			n = 4;
			cp = c & 0x07;
			min = 0x10000;
		} else {
			return false; /* continuation byte or 0xF8.. lead */
		}
		if (i + n > len)
			return false;
		for (size_t k = 1; k < n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false; /* overlong, beyond Unicode, or a surrogate */
		i += n;
	}
	return true;
}
