/*
 * cgroup_owner: which worker cgroups a node process made, recorded in
 * <streamd.local.dir>/cgroups/<pid>.cgroups, so that a node starting later
 * with the same local dir can tell the leftovers of an earlier run (whose
 * recorded process no longer runs) from the cgroups of other nodes that
 * share the hierarchy (several nodes may run in one cgroup: ports keep
 * their workers apart, but only a node's own record says what is its own).
 * Called by the node (node.c at start and stop, node_worker.c when it makes
 * a worker's cgroup) on its loop thread; small local file writes.
 * Low-level: returns error codes, logs nothing.
 */
#ifndef SD_CGROUP_OWNER_H
#define SD_CGROUP_OWNER_H

#include "node/cgroup.h"

/* What cgo_reap found. */
typedef struct cgo_reaped {
    int records;   /* records of node processes that no longer run */
    int cgroups;   /* their cgroups removed */
    int processes; /* processes that were still in the cgroups removed (SIGKILLed) */
    int stuck;     /* cgroups still holding processes at the deadline (left, and their record kept) */
} cgo_reaped;

/* Appends tid/port to this process's record in dir (made if missing; the
 * record's first line names this process: pid and start time). 0 or -errno. */
int cgo_record(const char *dir, const char *tid, int port);
/* Deletes this process's record (its cgroups are all gone). */
void cgo_forget(const char *dir);
/* For every record in dir whose process no longer runs: SIGKILLs what is
 * left in each recorded cgroup (cg_kill_all, timeout_ms each), removes the
 * cgroups and the record. Blocks meanwhile (called at start). 0 or -errno
 * (reading dir); *out says what was found. */
int cgo_reap(const cgroups *cg, const char *dir, int timeout_ms, cgo_reaped *out);

#endif
