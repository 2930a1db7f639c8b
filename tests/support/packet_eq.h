/*
 * packet_eq.h — deep equality of two packets for tests and fuzzers. Views
 * compare by content; user properties, subscription identifiers,
 * SUBSCRIBE entries and UNSUBSCRIBE filters compare element by element in
 * order, whether a packet holds them as decoded bytes or as encode arrays.
 */
#ifndef STARLING_TESTS_PACKET_EQ_H
#define STARLING_TESTS_PACKET_EQ_H

#include <stdbool.h>
#include <stddef.h>

#include "packet.h"

/* When unequal, why[0..why_len) names the first difference. */
bool packet_eq(const struct mqtt_packet *a, const struct mqtt_packet *b, uint8_t version, char *why,
               size_t why_len);

#endif
