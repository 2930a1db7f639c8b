/*
 * fuzz_codec.c — libFuzzer target over the whole codec.
 *
 * Input: byte 0 picks the protocol level (3, 4 or 5), the rest is a byte
 * stream as a broker would receive it. Every packet the frame peek finds is
 * decoded; every packet that decodes is encoded again and must (1) encode to
 * exactly mqtt_encode_len() bytes, (2) decode back without error, and (3)
 * equal the first decoding field by field. All iterators are walked too, so
 * the sanitizers see every read the broker would make.
 */
#include <stdio.h>
#include <stdlib.h>

#include "codec.h"
#include "packet_eq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_codec: " __VA_ARGS__);                               \
			fputc('\n', stderr);                                                       \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static void walk(const struct mqtt_packet *p, uint8_t version)
{
	struct mqtt_prop_iter it;
	struct mqtt_prop prop;
	const struct mqtt_props *props = NULL;
	switch (p->type) {
	case MQTT_CONNECT:
		props = &p->connect.props;
		break;
	case MQTT_PUBLISH:
		props = &p->publish.props;
		break;
	case MQTT_SUBSCRIBE: {
		struct mqtt_entry_iter ei;
		struct mqtt_sub_entry e;
		uint32_t n = 0;
		mqtt_sub_iter_init(&ei, &p->subscribe, version);
		while (mqtt_sub_iter_next(&ei, &e)) {
			n++;
			if (e.rc == MQTT_RC_SUCCESS) {
				struct mqtt_filter_parts parts;
				mqtt_filter_split(e.filter, &parts);
				struct mqtt_level_iter li;
				struct mqtt_view level;
				mqtt_level_iter_init(&li, parts.filter);
				while (mqtt_level_iter_next(&li, &level))
					;
			}
		}
		FUZZ_CHECK(n == p->subscribe.count, "SUBSCRIBE iterator found %u of %u", n,
		           p->subscribe.count);
		props = &p->subscribe.props;
		break;
	}
	case MQTT_UNSUBSCRIBE: {
		struct mqtt_entry_iter ei;
		struct mqtt_view f;
		uint32_t n = 0;
		mqtt_unsub_iter_init(&ei, &p->unsubscribe);
		while (mqtt_unsub_iter_next(&ei, &f))
			n++;
		FUZZ_CHECK(n == p->unsubscribe.count, "UNSUBSCRIBE iterator found %u of %u", n,
		           p->unsubscribe.count);
		props = &p->unsubscribe.props;
		break;
	}
	default:
		break;
	}
	if (props) {
		mqtt_prop_iter_init(&it, props);
		while (mqtt_prop_iter_next(&it, &prop))
			;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t version = (uint8_t)(3 + data[0] % 3);
	data++;
	size--;
	static uint8_t out[1 << 20];

	while (size > 0) {
		struct mqtt_frame f;
		if (mqtt_frame_peek(data, size, version, sizeof(out), &f) != MQTT_FRAME_OK)
			break;
		size_t n = mqtt_frame_size(&f);
		struct mqtt_packet p;
		enum mqtt_rc rc = mqtt_decode(&f, data + f.header_len, version, &p);
		if (rc == MQTT_RC_SUCCESS) {
			uint8_t v = p.type == MQTT_CONNECT ? p.connect.version : version;
			walk(&p, v);
			size_t len = mqtt_encode_len(&p, v);
			size_t w = mqtt_encode(&p, v, out, sizeof(out));
			FUZZ_CHECK(w == len && w > 0, "%s: encode wrote %zu, encode_len said %zu",
			           mqtt_type_name(p.type), w, len);
			FUZZ_CHECK(w <= n, "%s: re-encoding grew from %zu to %zu bytes",
			           mqtt_type_name(p.type), n, w);
			struct mqtt_packet q;
			size_t used = 0;
			rc = mqtt_decode_buf(out, w, v, &q, &used);
			FUZZ_CHECK(rc == MQTT_RC_SUCCESS && used == w,
			           "%s: re-encoded packet does not decode: %s",
			           mqtt_type_name(p.type), mqtt_rc_name(rc));
			char why[160];
			FUZZ_CHECK(packet_eq(&p, &q, v, why, sizeof(why)), "%s: round trip: %s",
			           mqtt_type_name(p.type), why);
			if (p.type == MQTT_CONNECT)
				version = v; /* the rest of the stream speaks its level */
		}
		data += n;
		size -= n;
	}
	return 0;
}
