/*
 * reconcile: turns the leader's view (mstate) into assignments. Runs the
 * scheduler over the live nodes, the topologies and the stored assignments,
 * builds each topology's assignment value (docs/etcd-keys.md) and writes,
 * guarded, only those that differ from what is stored (ignoring "version"),
 * so that a new leader rewrites nothing that is still valid and no worker
 * restarts on failover. Deletes assignments whose topology is gone.
 * Called by master.c (debounced after any change) on the loop thread.
 */
#ifndef SD_RECONCILE_H
#define SD_RECONCILE_H

#include <jansson.h>

#include "master/master_ctx.h"

/* One pass; does nothing unless leading with every feed listed. Returns the
 * number of writes started, or a negative code (the scheduler failed). */
int recon_run(master_ctx *m);

/* The assignment value for topology record topo with the given workers
 * array (reference taken) and version (new reference; NULL on OOM). */
json_t *recon_assignment(const json_t *topo, json_t *workers, long long version);

#endif
