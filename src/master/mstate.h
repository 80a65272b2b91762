/*
 * mstate: the leader's view of the cluster, kept in memory from the store
 * alone: nodes/, topologies/ and assignments/, each listed and then watched
 * from the listed revision + 1 (listed again after a RESYNC). Values are
 * checked (records.h); a bad value counts as an absent key. The leader's
 * own writes are applied at once (mstate_apply) so that its next decision
 * sees them; a watch event older than what is known of a key is ignored.
 * Used by the master role while it leads (started on winning, stopped on
 * losing); runs on the loop thread.
 */
#ifndef SD_MSTATE_H
#define SD_MSTATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "store/store.h"

typedef enum { MSTATE_NODES, MSTATE_TOPOLOGIES, MSTATE_ASSIGNMENTS, MSTATE_NFEEDS } mstate_feed;

typedef struct mstate mstate;

/* Something changed (or a feed finished listing). Runs on the loop. */
typedef void (*mstate_cb)(void *arg);

/* NULL on allocation failure or a cluster name too long. */
mstate *mstate_new(uv_loop_t *loop, store *st, const char *cluster, mstate_cb on_change, void *arg);
/* Lists and watches the three prefixes (forgetting what was known). */
void mstate_start(mstate *m);
/* Cancels every request and watch and forgets the state. */
void mstate_stop(mstate *m);
/* Every feed listed since the last start. */
bool mstate_synced(const mstate *m);

/* name -> checked record (borrowed; valid until the next change). Nodes by
 * id, topologies by name, assignments by topology id. */
json_t *mstate_map(const mstate *m, mstate_feed f);
/* The topology record whose "id" is tid, or NULL. */
json_t *mstate_topology_by_id(mstate *m, const char *tid);

/* Applies the leader's own successful write of feed f's key name at store
 * revision rev: rec (reference taken) or NULL for a delete. */
void mstate_apply(mstate *m, mstate_feed f, const char *name, json_t *rec, int64_t rev);
/* Lists everything again (after a write whose outcome is unknown). */
void mstate_resync(mstate *m);

/* Releases m once its timer has closed (run the loop once more). */
void mstate_free(mstate *m);

#endif
