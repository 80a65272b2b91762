/*
 * emit: the outgoing side of an executor. Builds one tuple per destination
 * task of an emit (each copy is its own edge of the tuple tree, anchored
 * to the roots of the bolt's inputs or to a new root of a spout's tree),
 * appends it to the batch for that task (another executor of this worker)
 * or for that worker (the transport), and hands batches over when one
 * fills or at the end of a round (emit_flush).
 *
 * Called on the executor's own thread only: by the collector (user emits,
 * acks), the acker, and the spout and bolt loops (flush). Touches only that
 * executor's outgoing batches, anchors and counters. The per-tuple path
 * (route_tuple, bolt_anchors) stays in this file so it inlines.
 */
#include "runtime/emit.h"

#include <stdarg.h>
#include <stdlib.h>

#include "base/log.h"
#include "runtime/executor_internal.h"
#include "tuple/tuple_pool.h"

static void flush_local(executor *ex, int dest) {
    tuple_batch *b = ex->local_out[dest];
    if (!b || b->n == 0) return;
    executor *to = ex->rt->task_exec[dest];
    ex->local_out[dest] = NULL;
    if (queue_push(to->inq, b, false) != 0) tuple_batch_free(b); /* closed: worker is stopping */
}

/* The trees of data tuples the transport dropped (TUPLE_F_UNSENT) fail now.
 * A bolt tells each root's acker, which tells the spout, as sd_fail does; a
 * spout fails its own tree through its input queue, as if its acker had
 * (never from inside the emit that filled the batch). An acker on the down
 * worker is out of reach too: those trees still wait for the timeout. */
static void fail_unsent(executor *ex, sd_tuple *const *ts, uint32_t n) {
    worker_rt *rt = ex->rt;
    if (!rt->acker) return;
    bool spout = ex->comp->kind == SD_SPOUT;
    for (uint32_t i = 0; i < n; i++) {
        const sd_tuple *t = ts[i];
        if (!(t->flags & TUPLE_F_UNSENT)) continue;
        for (uint16_t k = 0; k < t->nanchors; k++) {
            uint64_t root = t->anchors[k].root;
            if (spout) {
                sd_value v[2] = {sd_int((int64_t)root), sd_bool(false)};
                emit_system(ex, ex->sid_ack_done, ex->task, v, 2);
            } else {
                sd_value v[1] = {sd_int((int64_t)root)};
                emit_system(ex, ex->sid_ack_fail, emit_acker_task(rt, root), v, 1);
            }
        }
    }
}

/* Returns 1 when tuples were dropped and their trees failed (which queues
 * acking tuples in other slots), else 0. */
static int flush_remote(executor *ex, int slot) {
    uint32_t n = ex->remote_n[slot];
    if (n == 0) return 0;
    ex->remote_n[slot] = 0; /* before failing: that may queue into other slots */
    sd_tuple **ts = ex->remote_out[slot];
    int failed = 0;
    if (ex->rt->tr && transport_send(ex->rt->tr, slot / 2, ts, n, slot & 1) > 0 && !(slot & 1)) {
        fail_unsent(ex, ts, n);
        failed = 1;
    }
    for (uint32_t i = 0; i < n; i++) tuple_unref(ts[i]);
    return failed;
}

static void flush_locals(executor *ex) {
    for (int i = 0; i < ex->nlocal_dirty; i++) {
        flush_local(ex, ex->local_dirty[i]);
        ex->local_listed[ex->local_dirty[i]] = 0;
    }
    ex->nlocal_dirty = 0;
}

void emit_flush(executor *ex) {
    int nslots = ex->rt->nworkers * 2, failed = 0;
    flush_locals(ex);
    for (int w = 0; w < nslots; w++) failed |= flush_remote(ex, w);
    if (failed) { /* what the failures queued goes out now, not next round */
        flush_locals(ex);
        for (int w = 1; w < nslots; w += 2) flush_remote(ex, w);
    }
}

/* takes the caller's reference to t */
static void route_tuple(executor *ex, sd_tuple *t, int dest, int sys) {
    worker_rt *rt = ex->rt;
    t->dest_task = dest;
    int w = rt->task_worker[dest];
    if (w == rt->worker_index) {
        tuple_batch *b = ex->local_out[dest];
        if (!b) {
            b = ex->local_out[dest] = tuple_batch_new(rt->batch_size);
            if (!b) {
                tuple_unref(t);
                return;
            }
            if (!ex->local_listed[dest]) {
                ex->local_listed[dest] = 1;
                ex->local_dirty[ex->nlocal_dirty++] = dest;
            }
        }
        b->items[b->n++] = t;
        if (b->n == b->cap) flush_local(ex, dest); /* dest stays listed; NULL flushes as nothing */
    } else {
        int slot = w * 2 + (sys ? 1 : 0);
        ex->remote_out[slot][ex->remote_n[slot]++] = t;
        if (ex->remote_n[slot] == ex->remote_cap) (void)flush_remote(ex, slot); /* failures: out with the round's flush */
    }
    STAT_ADD(ex->transferred, 1);
}

void emit_system(executor *ex, int stream_id, int dest, const sd_value *values, size_t n) {
    sd_tuple *t = tuple_new_in(ex->pool, values, n, NULL, 0);
    if (!t) return;
    t->src_task = ex->task;
    t->stream_id = (uint16_t)stream_id;
    t->stream = &ex->rt->topo->streams[stream_id];
    route_tuple(ex, t, dest, 1);
}

static int is_direct_subscriber(const stream_routes *sr, int task) {
    for (int i = 0; i < sr->ntargets; i++) {
        const route_target *tg = &sr->targets[i];
        if (tg->input->grouping == GROUP_DIRECT && task >= tg->comp->first_task &&
            task < tg->comp->first_task + tg->ntasks)
            return 1;
    }
    return 0;
}

/* room for n entries in a growable executor-owned array; 0 or -1 */
static int reserve(void **arr, size_t *cap, size_t n, size_t elem) {
    if (n <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < n) c *= 2;
    void *grown = realloc(*arr, c * elem);
    if (!grown) return -1;
    *arr = grown;
    *cap = c;
    return 0;
}

/* anchors of a new tuple emitted from a bolt: one fresh edge id per anchor
 * input, XORed into that input's ack value and into every root it carries.
 * out has room for the sum of the inputs' anchors. */
static size_t bolt_anchors(executor *ex, sd_tuple *const *anchors, size_t nanchors, tuple_anchor *out) {
    size_t n = 0;
    for (size_t a = 0; a < nanchors; a++) {
        sd_tuple *in = anchors[a];
        if (!in || in->nanchors == 0) continue;
        uint64_t edge = executor_random(ex);
        in->ack_xor ^= edge;
        for (uint16_t k = 0; k < in->nanchors; k++) {
            size_t j = 0;
            while (j < n && out[j].root != in->anchors[k].root) j++;
            if (j == n) {
                out[n].root = in->anchors[k].root;
                out[n++].edge = 0;
            }
            out[j].edge ^= edge;
        }
    }
    return n;
}

static int emit_error(executor *ex, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int emit_error(executor *ex, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_taskv(SD_LOG_ERROR, ex->task, fmt, ap);
    va_end(ap);
    STAT_ADD(ex->errors, 1);
    return -1;
}

int emit_tuple(executor *ex, int stream_id, int direct_task, const sd_value *values, size_t n,
               sd_tuple *const *anchors, size_t nanchors, int with_root, uint64_t msg_id) {
    worker_rt *rt = ex->rt;
    const topo_stream *st = &rt->topo->streams[stream_id];
    if ((int)n != st->nfields)
        return emit_error(ex, "emit of %zu values on stream '%s' that declares %d fields", n, st->name,
                          st->nfields);
    const stream_routes *sr = &rt->routes[stream_id];
    int ndest = 0;
    /* a direct stream's subscribers are all direct: a plain emit would reach
     * nobody and its message would be acked as if processed */
    if (st->direct && direct_task <= 0)
        return emit_error(ex, "stream '%s' is direct: emit on it with a task (*_emit_direct)", st->name);
    if (!st->direct && direct_task != 0)
        return emit_error(ex, "stream '%s' is not direct: task %d given", st->name, direct_task);
    if (direct_task > 0) {
        if (!is_direct_subscriber(sr, direct_task))
            return emit_error(ex, "direct emit on stream '%s' to task %d, which does not subscribe directly",
                              st->name, direct_task);
        ex->dests[ndest++] = direct_task;
    } else {
        /* dests has room for every task of every subscriber (routes_build) */
        for (int i = 0; i < sr->ntargets; i++)
            ndest += grouping_choose(ex, &sr->targets[i], values, n, ex->dests + ndest);
    }
    bool track = with_root && rt->acker;
    uint64_t root = 0, xor_all = 0;
    size_t anc_need = track ? 1 : 0;
    if (!track && rt->acker)
        for (size_t a = 0; a < nanchors; a++) anc_need += anchors[a] ? anchors[a]->nanchors : 0;
    if (anc_need > UINT16_MAX || reserve((void **)&ex->anc, &ex->anc_cap, anc_need, sizeof *ex->anc) != 0)
        return emit_error(ex, "cannot anchor an emit on stream '%s' (%zu anchors)", st->name, anc_need);
    if (track && ndest > 0) {
        /* track the tree before anything is sent: a tree in flight that we
         * could not track would be neither acked nor failed */
        root = executor_random(ex);
        if (spout_track(ex, root, msg_id) != 0)
            return emit_error(ex, "out of memory tracking a tuple tree on stream '%s'", st->name);
    }
    STAT_ADD(ex->emitted, 1);
    ex->last_ndest = ndest; /* for sd_emit_last_tasks; dests stays as is until the next emit */
    for (int d = 0; d < ndest; d++) {
        size_t na = 0;
        if (track) {
            ex->anc[0].root = root;
            ex->anc[0].edge = executor_random(ex);
            xor_all ^= ex->anc[0].edge;
            na = 1;
        } else if (rt->acker && nanchors) {
            na = bolt_anchors(ex, anchors, nanchors, ex->anc);
        }
        sd_tuple *t = tuple_new_in(ex->pool, values, n, ex->anc, na);
        if (!t) {
            log_task(SD_LOG_ERROR, ex->task, "out of memory building a tuple");
            continue; /* its tree times out and is replayed */
        }
        t->src_task = ex->task;
        t->stream_id = (uint16_t)stream_id;
        t->stream = st;
        route_tuple(ex, t, ex->dests[d], 0);
    }
    if (with_root) {
        if (!track || ndest == 0) {
            spout_defer_ack(ex, msg_id); /* nothing to wait for: acked at once, as Storm does */
        } else {
            sd_value v[3] = {sd_int((int64_t)root), sd_int((int64_t)xor_all), sd_int(ex->task)};
            emit_system(ex, ex->sid_ack_init, rt->acker->first_task + (int)(root % (uint64_t)rt->acker->parallelism),
                        v, 3);
        }
    }
    return 0;
}
