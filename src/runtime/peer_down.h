/*
 * peer_down: what a worker does about tuple trees when a peer worker is
 * declared down, so that the spouts replay them at once rather than at
 * topology.message.timeout.secs.
 *
 * - peer_down_fail_unsent: the transport gives up on a tuple it held for
 *   the down peer (its overflow, writes cancelled with the connection):
 *   each root of its tree is failed through that root's acker (an
 *   __ack_fail from the tuple's source bolt), or, for a spout's own tuple,
 *   by an __ack_done(root, false) in the spout's queue.
 * - peer_down_notify_spouts: every acker task on the down worker is out of
 *   reach with the trees it tracks: each local spout gets, per such acker,
 *   an __ack_done with root 0 from that acker task; the spout then fails
 *   every pending tree whose acker it is (peer_down_fail_trees).
 *
 * Threads: the first two run on the worker's loop thread and build tuples
 * from the loop's pool; they hand them to deliver (a local task's queue,
 * as incoming tuples are routed) or to the transport. peer_down_fail_trees
 * runs on the thread running the spout's slice and touches only that
 * spout's pending trees.
 */
#ifndef SD_PEER_DOWN_H
#define SD_PEER_DOWN_H

#include "runtime/executor.h"
#include "tuple/tuple.h"

struct tuple_pool;

/* Takes t (a tuple for a local task) when it returns 0; -1: not taken. */
typedef int (*peer_down_deliver_fn)(void *arg, sd_tuple *t);

/* t (borrowed) was held for worker peer, now down, and will not reach it:
 * fails its tree's roots. No-op with acking off, for system tuples and for
 * roots whose acker runs on peer (see peer_down_notify_spouts). */
void peer_down_fail_unsent(const worker_rt *rt, struct tuple_pool *pool, int peer, const sd_tuple *t,
                           peer_down_deliver_fn deliver, void *arg);

/* Worker peer is down: tells each local spout which acker tasks it lost. */
void peer_down_notify_spouts(const worker_rt *rt, struct tuple_pool *pool, int peer, peer_down_deliver_fn deliver,
                             void *arg);

/* The spout's slice: an __ack_done with root 0 from acker_task arrived: fails,
 * through complete (the spout's own completion), every pending tree whose
 * acker is acker_task. */
void peer_down_fail_trees(executor *ex, int acker_task, void (*complete)(executor *ex, uint64_t root, int ok));

#endif
