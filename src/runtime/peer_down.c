/*
 * peer_down: failing the tuple trees a down peer holds up (see
 * peer_down.h). Called by the worker (loop thread) from the transport's
 * on_unsent and on_peer_down, and by the spout loop (its own thread) for
 * the notices the worker queued for it (in its slice).
 *
 * The notices are packets of one acking record (tuple/ackpkt.h). The one to
 * a spout is an __ack_done on the acker's stream with root 0 (never a
 * tree's root: the acker ignores root 0) sent from the lost acker task: it
 * is made locally and never travels (wire_check refuses root 0).
 */
#include "runtime/peer_down.h"

#include <stdlib.h>

#include "runtime/emit.h"
#include "tuple/ackpkt.h"
#include "tuple/tuple_pool.h"

/* A packet of one record of kind for root from src to dest; NULL when out of memory. */
static sd_tuple *system_tuple(struct tuple_pool *pool, const topo_stream *st, int src, int dest, uint32_t kind,
                              uint64_t root) {
    ackrec r = {.root = root, .xor = 0, .task = 0, .kind = kind};
    sd_tuple *t = ackpkt_new(pool, &r, 1);
    if (!t) return NULL;
    t->src_task = src;
    t->dest_task = dest;
    t->stream_id = (uint16_t)st->id;
    t->stream = st;
    return t;
}

static void hand_over(const worker_rt *rt, sd_tuple *t, peer_down_deliver_fn deliver, void *arg) {
    int w = rt->task_worker[t->dest_task];
    if (w == rt->worker_index) {
        if (deliver(arg, t) != 0) tuple_unref(t); /* out of memory: that tree times out */
        return;
    }
    if (rt->tr) (void)transport_send(rt->tr, w, &t, 1, true); /* a drop here: the tree times out */
    tuple_unref(t);
}

void peer_down_fail_unsent(const worker_rt *rt, struct tuple_pool *pool, int peer, const sd_tuple *t,
                           peer_down_deliver_fn deliver, void *arg) {
    const topology *topo = rt->topo;
    if (!rt->acker || t->nanchors == 0 || t->stream_id >= topo->nstreams ||
        rt->stream_kind[t->stream_id] != STREAM_USER)
        return;
    int src = t->src_task;
    if (src < 1 || src > topo->ntasks || !rt->task_exec[src]) return; /* we sent it: its source runs here */
    const topo_component *sc = rt->task_comp[src];
    bool spout = sc->kind == SD_SPOUT;
    const topo_stream *st = spout ? topology_stream(topo, rt->acker->index, TOPO_STREAM_ACK_DONE)
                                  : topology_stream(topo, sc->index, TOPO_STREAM_ACK_FAIL);
    if (!st) return;
    for (uint16_t k = 0; k < t->nanchors; k++) {
        uint64_t root = tuple_anchors(t)[k].root;
        int acker = emit_acker_task(rt, root);
        if (rt->task_worker[acker] == peer) continue; /* lost with it: the spouts were told */
        sd_tuple *f;
        if (spout) /* as the acker would tell the spout */
            f = system_tuple(pool, st, acker, src, ACKREC_DONE_FAIL, root);
        else /* as sd_fail from the bolt that sent it */
            f = system_tuple(pool, st, src, acker, ACKREC_FAIL, root);
        if (f) hand_over(rt, f, deliver, arg);
    }
}

void peer_down_notify_spouts(const worker_rt *rt, struct tuple_pool *pool, int peer, peer_down_deliver_fn deliver,
                             void *arg) {
    const topo_component *ac = rt->acker;
    if (!ac) return;
    const topo_stream *st = topology_stream(rt->topo, ac->index, TOPO_STREAM_ACK_DONE);
    if (!st) return;
    for (int a = ac->first_task; a < ac->first_task + ac->parallelism; a++) {
        if (rt->task_worker[a] != peer) continue;
        for (int i = 0; i < rt->nexecs; i++) {
            const executor *ex = rt->execs[i];
            if (ex->comp->kind != SD_SPOUT || ex->comp->is_acker) continue;
            sd_tuple *f = system_tuple(pool, st, a, ex->task, ACKREC_DONE_FAIL, 0);
            if (f) hand_over(rt, f, deliver, arg);
        }
    }
}

void peer_down_fail_trees(executor *ex, int acker_task, void (*complete)(executor *ex, uint64_t root, int ok)) {
    const worker_rt *rt = ex->rt;
    if (!rt->acker || ex->pending.len == 0) return;
    /* collected first: a fail callback may emit again, which grows the FIFO */
    uint64_t *roots = malloc(ex->pending.len * sizeof *roots);
    if (!roots) return; /* those trees time out */
    size_t n = 0;
    for (size_t i = 0; i < ex->fifo_len && n < ex->pending.len; i++) {
        uint64_t root = ex->fifo[(ex->fifo_head + i) & (ex->fifo_cap - 1)];
        if (emit_acker_task(rt, root) == acker_task && spout_trees_get(&ex->pending, root)) roots[n++] = root;
    }
    for (size_t i = 0; i < n; i++) complete(ex, roots[i], 0);
    free(roots);
}
