/*
 * utf8.h — well-formedness of MQTT UTF-8 strings (§1.5.4 of 5.0, §1.5.3 of
 * 3.1.1): RFC 3629 UTF-8, no surrogates, no overlong forms, nothing above
 * U+10FFFF, and no U+0000 [MQTT-1.5.4-1] [MQTT-1.5.4-2]. Pure.
 */
#ifndef STARLING_CODEC_UTF8_H
#define STARLING_CODEC_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool mqtt_utf8_valid(const uint8_t *s, size_t len);

#endif
