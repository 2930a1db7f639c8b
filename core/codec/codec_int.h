/*
 * codec_int.h — how the codec's files talk to each other: per-packet-type
 * decoders and body encoders, and the property block reader/writer. Not for
 * use outside core/codec.
 */
#ifndef STARLING_CODEC_INT_H
#define STARLING_CODEC_INT_H

#include "cursor.h"
#include "packet.h"

/*
 * Pseudo packet type for the will properties of a CONNECT, in the
 * "which packet may carry which property" table. Type 0 is reserved on the
 * wire, so it is free for this.
 */
#define CODEC_WILL_PROPS 0

/* Read a property length and block that a packet of this type may carry. */
enum mqtt_rc props_decode(struct rd *r, unsigned type, struct mqtt_props *out);
/* Write a property length and block. */
void props_encode(struct wr *w, const struct mqtt_props *p);
/* Bytes props_encode() writes, including its length prefix. */
size_t props_size(const struct mqtt_props *p);

/* Decoders of the bytes after the fixed header; flags from the fixed header. */
enum mqtt_rc connect_decode(struct rd *r, struct mqtt_connect *out);
enum mqtt_rc connack_decode(struct rd *r, uint8_t version, struct mqtt_connack *out);
enum mqtt_rc publish_decode(struct rd *r, uint8_t flags, uint8_t version, struct mqtt_publish *out);
enum mqtt_rc ack_decode(struct rd *r, unsigned type, uint8_t version, struct mqtt_ack *out);
enum mqtt_rc subscribe_decode(struct rd *r, uint8_t version, struct mqtt_subscribe *out);
enum mqtt_rc unsubscribe_decode(struct rd *r, uint8_t version, struct mqtt_unsubscribe *out);
enum mqtt_rc suback_decode(struct rd *r, unsigned type, uint8_t version, struct mqtt_suback *out);
enum mqtt_rc reason_decode(struct rd *r, unsigned type, uint8_t version, struct mqtt_reason *out);

/* Encoders of the body; they return the fixed header's flag nibble. */
uint8_t connect_encode(struct wr *w, const struct mqtt_connect *c);
uint8_t connack_encode(struct wr *w, uint8_t version, const struct mqtt_connack *c);
uint8_t publish_encode(struct wr *w, uint8_t version, const struct mqtt_publish *p);
uint8_t ack_encode(struct wr *w, unsigned type, uint8_t version, const struct mqtt_ack *a);
uint8_t subscribe_encode(struct wr *w, uint8_t version, const struct mqtt_subscribe *s);
uint8_t unsubscribe_encode(struct wr *w, uint8_t version, const struct mqtt_unsubscribe *u);
uint8_t suback_encode(struct wr *w, unsigned type, uint8_t version, const struct mqtt_suback *s);
uint8_t reason_encode(struct wr *w, unsigned type, uint8_t version, const struct mqtt_reason *r);

/*
 * The 5.0 tail shared by the acks, DISCONNECT and AUTH: a reason code, then
 * properties, each omissible when it would be 0 / empty (reason.c).
 * Decoding also checks the code is one the packet type may carry.
 */
enum mqtt_rc rc_props_decode(struct rd *r, unsigned type, uint8_t version, uint8_t *rc,
                             struct mqtt_props *props);
void rc_props_encode(struct wr *w, uint8_t version, uint8_t rc, const struct mqtt_props *props);

/* The fixed header flag nibble a packet type requires (§2.1.3); -1: any. */
int codec_required_flags(unsigned type);

#endif
