/* codec.h — everything core/codec offers, for code that wants all of it. */
#ifndef STARLING_CODEC_CODEC_H
#define STARLING_CODEC_CODEC_H

#include "frame.h"
#include "mqtt.h"
#include "packet.h"
#include "topic.h"
#include "utf8.h"
#include "view.h"

#endif
