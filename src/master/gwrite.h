/*
 * gwrite: the leader's writes to topologies/, assignments/ and packages/.
 * Each is one store txn whose first compare is the leadership guard
 * (election_guard): a master that is no longer leader, even one that has
 * not noticed yet, cannot change them. Writes in flight are tracked so
 * that a stopping master can end them (their callbacks then get
 * -ECANCELED). Used by reconcile.c and lifecycle.c on the loop thread.
 */
#ifndef SD_GWRITE_H
#define SD_GWRITE_H

#include "master/master_ctx.h"
#include "store/store.h"

#define GWRITE_MAX_CMPS 4 /* the caller's compares, besides the guard */

/* err: 0 (every compare held, the ops ran; r is the store's answer),
 * -EPERM (not leader, or leadership changed while in flight: do not apply
 * the result), -ESTALE (a compare failed: the guard or the caller's),
 * -ECANCELED (the master stops), or the store's error. Runs exactly once
 * per accepted write, on the loop; r is NULL unless err is 0. */
typedef void (*gwrite_cb)(master_ctx *m, void *arg, int err, const store_result *r);

/* Submits the guarded txn: 0 (cb will run) or a negative code (it will
 * not): -EPERM when not leading, -EINVAL for too many compares. */
int gwrite_txn(master_ctx *m, const store_cmp *cmps, size_t ncmps, const store_op *ops, size_t nops, gwrite_cb cb,
               void *arg);

/* Ends every write in flight: their callbacks run now with -ECANCELED. */
void gwrite_cancel_all(master_ctx *m);

#endif
