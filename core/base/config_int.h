/*
 * config_int.h — what config.c shares with config_bridge.c: the directive
 * (one row of a key table), the generic setters and printers that work on
 * any struct a table describes, and the edit distance behind "did you mean".
 * The node's keys live in config.c's table over struct config; a bridge's
 * keys in config_bridge.c's table over struct config_bridge. Main thread only.
 */
#ifndef STARLING_CORE_CONFIG_INT_H
#define STARLING_CORE_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/config.h"

#define WHY_MAX 256 /* a setter's reason, before source and key are added */

enum dir_type {
	DIR_U8,
	DIR_U16,
	DIR_U32,
	DIR_U64,
	DIR_BOOL,
	DIR_ENUM,          /* stored as an int-sized enum; names[i] is value i */
	DIR_ADDR,          /* struct config_addr */
	DIR_ADDR_LIST,     /* struct config_addr[CONFIG_LISTEN_MAX] + unsigned count, 1 or more */
	DIR_ADDR_LIST_OPT, /* the same, and "" is the empty list (a listener kind that is off) */
	DIR_PATH,          /* char[CONFIG_PATH_MAX]: a file name, "" = none */
	DIR_TEXT,          /* char[CONFIG_PATH_MAX]: free text such as a cipher list, "" = none */
	DIR_ADDR_OPT,      /* struct config_addr + bool f##_set: "" = not set */
	DIR_NAME,          /* char[CONFIG_NAME_MAX]: letters, digits, '.', '_', '-'; "" = none */
	DIR_PEERS,         /* char[CONFIG_PEERS_MAX]: host:port list, hosts may be names */
};

struct directive {
	const char *name;         /* key in files = field name; STARLING_<NAME> in env */
	size_t offset;            /* of the field in the struct the table describes */
	size_t size;              /* of the field, checked against the type */
	enum dir_type type;       /* picks the generic setter and printer */
	size_t count_offset;      /* lists and optional addresses: of the count or flag */
	const char *def;          /* default, parsed by the setter like any value */
	uint64_t min, max;        /* integers only, inclusive */
	const char *unit;         /* integers: "bytes", "ms", "s" or NULL */
	const char *const *names; /* DIR_ENUM only: NULL-terminated */
	const char *help;         /* one line for the reference and the printer */
};

/* Parse v into d's field of the struct at base. 0, or -1 with the reason
 * in why (without source or key: the caller adds them). */
int config_apply(const struct directive *d, void *base, const char *v, char *why, size_t why_len);
/* The bytes the setter of type t writes (config_defaults checks tables). */
size_t config_type_size(enum dir_type t);
/* d's value in the struct at base, in file format. */
void config_format_value(const struct directive *d, const void *base, char *buf, size_t len);
/* The "values" column of the reference: what the setter accepts. */
void config_format_range(const struct directive *d, char *buf, size_t len);
/* Levenshtein distance of two short keys; SIZE_MAX past 63 bytes. */
size_t config_edit_distance(const char *a, const char *b);

/* Bridges (config_bridge.c). Is key a bridge's ("bridge.NAME.KEY")? */
bool config_bridge_key(const char *key);
/* Apply "bridge.NAME.KEY = v", making the bridge NAME when it is new. 0,
 * or -1 with err naming source and key. */
int config_bridge_set(struct config *c, const char *source, const char *key, const char *v,
                      char *err, size_t err_len);
/* The environment's STARLING_BRIDGE_NAME_KEY, lower-cased without the
 * prefix ("bridge_name_key"), as a file key "bridge.name.key" in out. false
 * when it names no bridge key. */
bool config_bridge_env_key(const char *lower, char *out, size_t out_len);
/* Cross-key checks of every bridge. 0, or -1 with err. */
int config_bridges_validate(const struct config *c, char *err, size_t err_len);
/* Every bridge's keys in file format, and their reference table. */
void config_bridges_print(const struct config *c, FILE *out);
void config_bridges_reference(FILE *out);

#endif
