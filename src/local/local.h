/*
 * local: `streamd --role=local TOPOLOGY.yaml`: the
 * master's part (topology record, assignment) and a node, in one process on
 * the embedded in-memory store, with real worker processes.
 */
#ifndef SD_LOCAL_H
#define SD_LOCAL_H

#include <stdbool.h>
#include "base/conf.h"

typedef struct local_options {
    const char *topology_path;
    const conf *base;      /* defaults < --config (not consumed) */
    const conf *overrides; /* -c key=value (not consumed; may be NULL) */
    bool until_drained;    /* stop once every spout is exhausted and all is idle */
    int duration_secs;     /* > 0: stop gracefully after that long */
    const char *exe_path;  /* the streamd executable, run as the workers */
} local_options;

/* Runs until drained, the duration passes, or SIGINT/SIGTERM; prints a
 * summary to stdout. Returns 0, 1 (a tuple failed for good, or an error),
 * or 130 (a second Ctrl-C). */
int local_run(const local_options *opts);

#endif
