/*
 * persist_cmd.h — `starling backup DIR`, `starling export FILE`, `starling
 * import FILE` (persist_cmd.c has the export format), and the lock a
 * running node holds on its data_dir.
 */
#ifndef STARLING_CORE_PERSIST_CMD_H
#define STARLING_CORE_PERSIST_CMD_H

#include "base/config.h"

/* cmd is "backup", "export" or "import"; arg its DIR or FILE ("-": the
 * standard output or input). The exit status. */
int persist_cmd(const char *cmd, const struct config *cfg, const char *arg);

/* Take data_dir/LOCK (flock, non-blocking; the pid written in it): the
 * descriptor, held for the process's life, or -1 with err saying who holds
 * it. */
int persist_lock(const char *data_dir, char *err, size_t err_len);

#endif
