/*
 * emit: the outgoing side of an executor. Makes one tuple per destination
 * task of an emit (each copy is its own edge of the tuple tree, anchored
 * to the roots of the bolt's inputs or to a new root of a spout's tree).
 * For the task chained to the emitter it calls that task's execute on a
 * view of the values (chain_call); for another task of this worker it
 * builds the tuple and appends it to the batch for that task (or the
 * chain's queue); for a task of another worker it encodes the values
 * straight into the thread's records for that worker (no tuple is built),
 * which the transport takes as they are. Batches and records are handed
 * over when they fill or at the end of a round (emit_flush).
 *
 * Called on the pool thread running the executor's slice only: by the
 * collector (user emits, acks), the acker, and the spout and bolt slices
 * (flush). Touches that thread's outgoing batches, records and anchors
 * (ex->th) and the executor's stalled batches and counters. A bounded
 * queue that is full does not block the thread: its batch, and every later
 * one, is kept on the executor's stalled list until the consumer makes
 * room (the slices run no component code meanwhile). The per-tuple path
 * (route_local, emit_remote, bolt_anchors) stays in this file so it
 * inlines; emit_plain is the short path of an emit to one task.
 */
#include "runtime/emit.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>

#include "base/log.h"
#include "runtime/executor_internal.h"
#include "transport/frame.h"
#include "tuple/codec.h"
#include "tuple/tuple_pool.h"

static void stall(executor *ex, tuple_batch *b) {
    b->next = NULL;
    if (ex->stalled_tail) ex->stalled_tail->next = b;
    else ex->stalled_head = b;
    ex->stalled_tail = b;
}

/* hands b to its task's queue, or stalls it (behind any batch stalled before) */
static void hand_over(executor *ex, tuple_batch *b, int dest) {
    if (ex->chain_head) ex = ex->chain_head; /* a chain holds back as one */
    if (ex->stalled_head) {
        stall(ex, b);
        return;
    }
    int rc = queue_push_or_wait(ex->rt->task_exec[dest]->inq, b, &ex->room);
    if (rc == -EAGAIN) stall(ex, b);
    else if (rc != 0) tuple_batch_free(b); /* closed: the worker is stopping */
}

/* makes room for one more chained tuple; 0 or -1 */
static __attribute__((noinline)) int chain_grow(exec_thread *th) {
    size_t cap = th->chain_cap ? th->chain_cap * 2 : 256;
    struct chain_item *grown = realloc(th->chainq, cap * sizeof *grown);
    if (!grown) return -1;
    th->chainq = grown;
    th->chain_cap = cap;
    return 0;
}

/* hands t to a chained task (run after the emitting callback); 0 or -1 */
static inline int chain_push(exec_thread *th, executor *to, sd_tuple *t) {
    if (th->chain_n == th->chain_cap && chain_grow(th) != 0) return -1;
    th->chainq[th->chain_n].to = to;
    th->chainq[th->chain_n++].t = t;
    return 0;
}

void emit_chain_run(exec_thread *th) {
    while (th->chain_pos < th->chain_n) {
        struct chain_item it = th->chainq[th->chain_pos++];
        STAT_ADD(it.to->received, 1);
        /* a chained task is a bolt (an acker's inputs are never chained) */
        it.to->def->execute(it.to->state, &it.to->col, it.t);
        STAT_ADD(it.to->executed, 1);
        tuple_unref_deferred(it.t, &th->chain_rel);
    }
    th->chain_n = th->chain_pos = 0;
}

static void flush_local(executor *ex, int dest) {
    exec_thread *th = ex->th;
    tuple_batch *b = th->local_out[dest];
    if (!b || b->n == 0) return;
    th->local_out[dest] = NULL;
    hand_over(ex, b, dest);
}

int emit_retry_stalled(executor *ex) {
    while (ex->stalled_head) {
        tuple_batch *b = ex->stalled_head;
        tuple_batch *next = b->next;
        int rc = queue_push_or_wait(ex->rt->task_exec[b->items[0]->dest_task]->inq, b, &ex->room);
        if (rc == -EAGAIN) return -EAGAIN;
        if (rc != 0) {
            b->next = NULL;
            tuple_batch_free(b); /* closed: the worker is stopping */
        }
        ex->stalled_head = next;
        if (!next) ex->stalled_tail = NULL;
    }
    return 0;
}

/* Fails the tree of root at once: a tuple of it was not sent (dropped by
 * the transport, or refused before). A bolt tells the root's acker, which
 * tells the spout, as sd_fail does; a spout fails its own tree through its
 * input queue, as if its acker had (never from inside the emit that made
 * the tuple). An acker on a down worker is out of reach too: those trees
 * still wait for the timeout. */
static void fail_root(executor *ex, uint64_t root) {
    if (ex->comp->kind == SD_SPOUT) emit_ack_record(ex, ex->sid_ack_done, ex->task, ACKREC_DONE_FAIL, root, 0, 0);
    else emit_ack_record(ex, ex->sid_ack_fail, emit_acker_task(ex->rt, root), ACKREC_FAIL, root, 0, 0);
}

/* Hands the data records for worker w to the transport. Returns 1 when
 * it dropped them and their trees were failed (which queues acking tuples),
 * else 0; with acking off, drops are only counted (the transport's
 * tuples_dropped). */
static int flush_records(executor *ex, int w) {
    transport_records *r = &ex->th->remote_recs[w];
    if (r->n == 0) return 0;
    int failed = 0;
    if (ex->rt->tr && transport_send_records(ex->rt->tr, w, r, false) != 0 && ex->rt->acker) {
        size_t off = 0, len;
        const uint8_t *rec;
        while (frame_batch_next(r->buf, r->len, &off, &rec, &len) == 1)
            for (uint16_t k = 0, na = codec_peek_nanchors(rec); k < na; k++) fail_root(ex, codec_peek_root(rec, k));
        failed = 1;
    }
    transport_records_clear(r);
    /* a tuple far above a batch grew the buffer: not kept for every peer */
    if (r->cap > 4 * ex->th->recs_batch) transport_records_free(r);
    return failed;
}

/* Hands the acking tuples for worker w to the transport, without waiting:
 * one it drops leaves its trees to the timeout. */
static void flush_acks(executor *ex, int w) {
    exec_thread *th = ex->th;
    uint32_t n = th->remote_nacks[w];
    if (n == 0) return;
    th->remote_nacks[w] = 0;
    sd_tuple **ts = th->remote_acks[w];
    if (ex->rt->tr) (void)transport_send(ex->rt->tr, w, ts, n, true);
    tuple_releaser rel = {0}; /* runs of one slab's tuples: one atomic operation each */
    for (uint32_t i = 0; i < n; i++) tuple_unref_deferred(ts[i], &rel);
    tuple_releaser_flush(&rel);
}

static void flush_locals(executor *ex) {
    exec_thread *th = ex->th;
    for (int i = 0; i < th->nlocal_dirty; i++) {
        flush_local(ex, th->local_dirty[i]);
        th->local_listed[th->local_dirty[i]] = 0;
    }
    th->nlocal_dirty = 0;
}

void emit_flush(executor *ex) {
    int nworkers = ex->rt->nworkers, failed = 0;
    ex->th->acks_by = ex;
    ack_stage_flush(&ex->th->acks);
    flush_locals(ex);
    for (int w = 0; w < nworkers; w++) {
        failed |= flush_records(ex, w);
        flush_acks(ex, w);
    }
    if (failed) { /* what the failures queued goes out now, not next round */
        ack_stage_flush(&ex->th->acks);
        flush_locals(ex);
        for (int w = 0; w < nworkers; w++) flush_acks(ex, w);
    }
}

/* Routes t to dest, a task of this worker; takes the caller's reference
 * to t. Inline: once per tuple emitted. */
static inline __attribute__((always_inline)) void route_local(executor *ex, sd_tuple *t, int dest) {
    worker_rt *rt = ex->rt;
    t->dest_task = dest;
    exec_thread *th = ex->th;
    if (rt->nchained && rt->task_exec[dest]->chain_prev == ex && chain_push(th, rt->task_exec[dest], t) == 0) {
        STAT_ADD(ex->transferred, 1);
        return;
    }
    tuple_batch *b = th->local_out[dest];
    if (!b) {
        b = th->local_out[dest] = tuple_batch_new(rt->batch_size);
        if (!b) {
            tuple_unref(t);
            return;
        }
        if (!th->local_listed[dest]) {
            th->local_listed[dest] = 1;
            th->local_dirty[th->nlocal_dirty++] = dest;
        }
    }
    b->items[b->n++] = t;
    if (b->n == b->cap) flush_local(ex, dest); /* dest stays listed; NULL flushes as nothing */
    STAT_ADD(ex->transferred, 1);
}

/* A tuple whose bound exceeds the transport's record limit: false when
 * its exact size fits after all, else true once it is refused (logged,
 * counted, its trees failed). */
static __attribute__((noinline, cold)) bool emit_oversized(executor *ex, int stream_id, const sd_value *values,
                                                          size_t n, const tuple_anchor *anc, size_t na) {
    size_t size = codec_encoded_size_of(values, n, na);
    if (size <= ex->th->record_limit) return false;
    log_task(SD_LOG_ERROR, ex->task,
             "a %zu-byte tuple on stream '%s' exceeds the frame limit (worker.transfer.max.frame.bytes); dropped",
             size, ex->rt->topo->streams[stream_id].name);
    STAT_ADD(ex->errors, 1);
    if (ex->rt->acker)
        for (size_t k = 0; k < na; k++) fail_root(ex, anc[k].root);
    return true;
}

/* Encodes one tuple of an emit for dest, a task of worker w, into this
 * thread's records for w: a tuple that crosses to another worker is never
 * built. Inline: once per tuple sent. */
static inline __attribute__((always_inline)) void emit_remote(executor *ex, int w, int dest, int stream_id,
                                                              const sd_value *values, size_t n, uint64_t data_len,
                                                              const tuple_anchor *anc, size_t na) {
    exec_thread *th = ex->th;
    transport_records *r = &th->remote_recs[w];
    size_t bound = (size_t)codec_bound(n, na, data_len);
    if (__builtin_expect(bound > th->record_limit, 0) && emit_oversized(ex, stream_id, values, n, anc, na)) return;
    /* failures: out with the round's flush */
    if (r->len && r->len + 4 + bound > th->recs_batch) (void)flush_records(ex, w);
    uint8_t *out = transport_records_reserve(r, bound);
    if (__builtin_expect(!out, 0)) {
        log_task(SD_LOG_ERROR, ex->task, "out of memory sending a tuple");
        return; /* its tree times out and is replayed */
    }
    codec_head h = {dest, ex->task, (uint16_t)stream_id, 0};
    transport_records_commit(r, codec_encode_parts(out, &h, values, n, anc, na));
    STAT_ADD(ex->transferred, 1);
}

void emit_ack_packet(void *arg, void *src, int dest, int stream_id, const ackrec *recs, size_t n) {
    exec_thread *th = arg;
    const executor *from = src; /* its task and runtime only: it may run on another thread by now */
    executor *ex = th->acks_by;
    sd_tuple *t = ackpkt_new(th->pool, recs, n);
    if (!t) return; /* out of memory (logged): those trees time out */
    t->src_task = from->task;
    t->stream_id = (uint16_t)stream_id;
    t->stream = &from->rt->topo->streams[stream_id];
    const worker_rt *rt = ex->rt;
    int w = rt->task_worker[dest];
    if (w == rt->worker_index) {
        STAT_ADD(ex->transferred, n - 1); /* route_local counts one: a record counts as a tuple did */
        route_local(ex, t, dest);
        return;
    }
    t->dest_task = dest;
    th->remote_acks[w][th->remote_nacks[w]++] = t;
    if (th->remote_nacks[w] == th->remote_cap) flush_acks(ex, w);
    STAT_ADD(ex->transferred, n);
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
            while (j < n && out[j].root != tuple_anchors(in)[k].root) j++;
            if (j == n) {
                out[n].root = tuple_anchors(in)[k].root;
                out[n++].edge = 0;
            }
            out[j].edge ^= edge;
        }
    }
    return n;
}

/* emit_remote, out of line for emit_general: its emits are the uncommon
 * ones, and its loop stays small for the tuples that stay in the worker */
static __attribute__((noinline)) void emit_remote_general(executor *ex, int w, int dest, int stream_id,
                                                          const sd_value *values, size_t n, uint64_t data_len,
                                                          const tuple_anchor *anc, size_t na) {
    emit_remote(ex, w, dest, stream_id, values, n, data_len, anc, na);
}

/* builds one tuple of an emit and routes it to dest; inline: once per tuple */
static inline __attribute__((always_inline)) void emit_to(executor *ex, int stream_id, const sd_value *values,
                                                          size_t n, uint32_t data_len, uint32_t strings,
                                                          const tuple_anchor *anc, size_t na, int dest) {
    int w = ex->rt->task_worker[dest];
    if (w != ex->rt->worker_index) {
        emit_remote_general(ex, w, dest, stream_id, values, n, data_len, anc, na);
        return;
    }
    sd_tuple *t = tuple_build_in(ex->th->pool, values, n, data_len, strings, anc, na);
    if (!t) {
        log_task(SD_LOG_ERROR, ex->task, "out of memory building a tuple");
        return; /* its tree times out and is replayed */
    }
    t->src_task = ex->task;
    t->stream_id = (uint16_t)stream_id;
    t->stream = &ex->rt->topo->streams[stream_id];
    route_local(ex, t, dest);
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

/* Remembers a stream whose emits all go to one chained task: one target
 * component whose grouping always picks the task chained to ex (forward
 * from its task index, local-or-shuffle to the local task chained to it).
 * Chains are fixed once the chain's tasks have opened, before any emit. */
static __attribute__((noinline)) void chain_learn(executor *ex, const stream_routes *sr, int stream_id, int ndest) {
    if (sr->ntargets != 1 || ndest != 1) return;
    int g = sr->targets[0].input->grouping;
    if (g != GROUP_FORWARD && g != GROUP_LOCAL_OR_SHUFFLE) return;
    int task = ex->th->dests[0];
    if (ex->rt->task_worker[task] != ex->rt->worker_index || ex->rt->task_exec[task]->chain_prev != ex) return;
    ex->chain_task = task;
    ex->chain_to = ex->rt->task_exec[task];
    ex->chain_stream = stream_id;
}

/* An emit whose values do not fit its stream: n values against the
 * stream's field count, or data_len bytes of them. -1, logged. */
static __attribute__((noinline, cold)) int emit_size_error(executor *ex, const topo_stream *st, size_t n,
                                                           uint64_t data_len) {
    if ((int)n != st->nfields)
        return emit_error(ex, "emit of %zu values on stream '%s' that declares %d fields", n, st->name,
                          st->nfields);
    return emit_error(ex, "emit of %llu bytes of values on stream '%s': at most 4 GiB",
                      (unsigned long long)data_len, st->name);
}

/* The uncommon emits, off the common path: values that do not match the
 * stream, and direct emits. Fills th->dests for a valid direct emit and
 * returns the number of destinations, or -1 (logged). */
static __attribute__((noinline)) int emit_dests_checked(executor *ex, const topo_stream *st, const stream_routes *sr,
                                                        int direct_task, size_t n) {
    if ((int)n != st->nfields) return emit_size_error(ex, st, n, 0);
    /* a direct stream's subscribers are all direct: a plain emit would reach
     * nobody and its message would be acked as if processed */
    if (st->direct && direct_task <= 0)
        return emit_error(ex, "stream '%s' is direct: emit on it with a task (*_emit_direct)", st->name);
    if (!st->direct && direct_task != 0)
        return emit_error(ex, "stream '%s' is not direct: task %d given", st->name, direct_task);
    if (!is_direct_subscriber(sr, direct_task))
        return emit_error(ex, "direct emit on stream '%s' to task %d, which does not subscribe directly", st->name,
                          direct_task);
    ex->th->dests[0] = direct_task;
    return 1;
}

static __attribute__((noinline, cold)) int emit_anchor_error(executor *ex, const topo_stream *st, size_t need) {
    return emit_error(ex, "cannot anchor an emit on stream '%s' (%zu anchors)", st->name, need);
}

static __attribute__((noinline, cold)) int emit_track_error(executor *ex, const topo_stream *st) {
    return emit_error(ex, "cannot track a tuple tree on stream '%s' (out of memory, or %zu trees in flight)", st->name,
                      (size_t)SPOUT_TREES_MAX);
}

/* Room in th->anc for the anchors of an emit: one for a spout's new tree,
 * else the roots a bolt's anchors carry (at most; *need). 0, or -1 past
 * UINT16_MAX or out of memory. */
static int anchors_reserve(exec_thread *th, int with_root, sd_tuple *const *anchors, size_t nanchors, size_t *need) {
    size_t n = with_root ? 1 : 0;
    if (!with_root)
        for (size_t a = 0; a < nanchors; a++) n += anchors[a] ? anchors[a]->nanchors : 0;
    *need = n;
    if (n > UINT16_MAX || reserve((void **)&th->anc, &th->anc_cap, n, sizeof *th->anc) != 0) return -1;
    return 0;
}

/* emit_plain's cases: the chained task or a shuffle's pick, in a worker
 * with ackers or without; inline in four copies so that each knows its
 * case. emit_general's steps for one destination. */
static inline __attribute__((always_inline)) int plain_to_one(executor *ex, int stream_id, const sd_value *values,
                                                              size_t n, sd_tuple *const *anchors, size_t nanchors,
                                                              int with_root, uint64_t msg_id, bool chained,
                                                              bool acked) {
    const topo_stream *st = &ex->rt->topo->streams[stream_id];
    if (__builtin_expect((int)n != st->nfields, 0)) return emit_size_error(ex, st, n, 0);
    uint32_t strings; /* n == nfields <= SD_MAX_FIELDS, so the sizes fit */
    uint64_t data_len = tuple_data_len(values, n, &strings);
    if (__builtin_expect(data_len > UINT32_MAX, 0)) return emit_size_error(ex, st, n, data_len);
    exec_thread *th = ex->th;
    size_t na = 0;
    uint64_t root = 0, edge = 0;
    if (acked) {
        size_t need;
        if (__builtin_expect(anchors_reserve(th, with_root, anchors, nanchors, &need) != 0, 0))
            return emit_anchor_error(ex, st, need);
        if (with_root) {
            /* tracked before anything is sent: a tree in flight that we
             * could not track would be neither acked nor failed */
            root = spout_track(ex, msg_id);
            if (!root) return emit_track_error(ex, st);
        }
    }
    STAT_ADD(ex->emitted, 1);
    int dest;
    if (chained) {
        dest = ex->chain_task;
    } else {
        const route_target *tg = &ex->rt->routes[stream_id].targets[0];
        dest = tg->comp->first_task + (int)grouping_pick(ex->rr++, (uint32_t)tg->ntasks);
    }
    th->dests[0] = dest;
    ex->last_ndest = 1;
    if (acked && with_root) {
        edge = executor_random(ex);
        th->anc[0].root = root;
        th->anc[0].edge = edge;
        na = 1;
    } else if (acked && nanchors) {
        na = bolt_anchors(ex, anchors, nanchors, th->anc);
    }
    int w = ex->rt->task_worker[dest];
    if (!chained && w != ex->rt->worker_index) {
        emit_remote(ex, w, dest, stream_id, values, n, data_len, th->anc, na);
    } else {
        sd_tuple *t = tuple_build_in(th->pool, values, n, (uint32_t)data_len, strings, th->anc, na);
        if (!t) {
            log_task(SD_LOG_ERROR, ex->task, "out of memory building a tuple");
            return 0; /* as emit_to: its tree times out and is replayed */
        }
        t->src_task = ex->task;
        t->stream_id = (uint16_t)stream_id;
        t->stream = st;
        if (chained && chain_push(th, ex->chain_to, t) == 0) {
            t->dest_task = dest;
            STAT_ADD(ex->transferred, 1);
        } else {
            route_local(ex, t, dest);
        }
    }
    if (acked && with_root)
        emit_ack_record(ex, ex->sid_ack_init, emit_acker_task(ex->rt, root), ACKREC_INIT, root, edge, ex->task);
    else if (with_root)
        spout_defer_ack(ex, msg_id); /* nothing to wait for: acked at once, as Storm does */
    return 0;
}

#define PLAIN_CASE(name, chained, acked)                                                                          \
    static __attribute__((noinline)) int name(executor *ex, int stream_id, const sd_value *values, size_t n,       \
                                              sd_tuple *const *anchors, size_t nanchors, int with_root,           \
                                              uint64_t msg_id) {                                                  \
        return plain_to_one(ex, stream_id, values, n, anchors, nanchors, with_root, msg_id, chained, acked);     \
    }
PLAIN_CASE(emit_shuffled_acked, false, true)

/* a view for calls at this depth; NULL when out of memory */
static __attribute__((noinline, cold)) sd_tuple *view_alloc(exec_thread *th, int depth) {
    return th->views[depth] = tuple_view_new();
}

/* After a call: the task kept its view (sd_tuple_retain gave it data of
 * its own) and holds it until it releases it; or it let go of it again,
 * and the view is used for the next call. */
static __attribute__((noinline)) void view_settle(exec_thread *th, int depth, sd_tuple *t) {
    if (atomic_load_explicit(&t->refs, memory_order_acquire) == 1) {
        if (t->flags & TUPLE_F_SIDE) free(*tuple_view_side(t));
        return;
    }
    th->views[depth] = NULL;
    tuple_unref(t);
}

/* An emit on a stream whose every tuple goes to the task chained to ex:
 * that task's execute is called here, on a view of the values (their
 * strings and bytes stay where the emitter has them), so the chain runs
 * as nested calls with no tuple built, no copy and no queue. Tuples
 * queued for the chain before (emit_general's, or this function's
 * fallbacks) run first, which keeps each task's input in emit order. A
 * spout's init record is staged before the call, so that the acker has
 * it before the chained task's ack. Deeper than CHAIN_CALL_DEPTH, with
 * more anchors than a view holds, or with no memory for a view: the
 * chain's queue (plain_to_one). Inline in two copies, with ackers or
 * without. */
static inline __attribute__((always_inline)) int chain_call(executor *ex, int stream_id, const sd_value *values,
                                                            size_t n, sd_tuple *const *anchors, size_t nanchors,
                                                            int with_root, uint64_t msg_id, bool acked) {
    const topo_stream *st = &ex->rt->topo->streams[stream_id];
    if (__builtin_expect((int)n != st->nfields, 0)) return emit_size_error(ex, st, n, 0);
    exec_thread *th = ex->th;
    /* first: what it runs may use this depth's view and th->anc */
    if (th->chain_pos < th->chain_n) emit_chain_run(th);
    int depth = th->view_depth;
    sd_tuple *t = depth < CHAIN_CALL_DEPTH ? th->views[depth] : NULL;
    if (__builtin_expect(!t, 0) && (depth >= CHAIN_CALL_DEPTH || !(t = view_alloc(th, depth))))
        return plain_to_one(ex, stream_id, values, n, anchors, nanchors, with_root, msg_id, true, acked);
    size_t na = 0;
    uint64_t root = 0;
    if (acked) {
        size_t need;
        if (__builtin_expect(anchors_reserve(th, with_root, anchors, nanchors, &need) != 0, 0))
            return emit_anchor_error(ex, st, need);
        if (__builtin_expect(need > TUPLE_VIEW_ANCHORS, 0))
            return plain_to_one(ex, stream_id, values, n, anchors, nanchors, with_root, msg_id, true, acked);
        if (with_root) {
            /* tracked before anything is sent (plain_to_one) */
            root = spout_track(ex, msg_id);
            if (!root) return emit_track_error(ex, st);
            th->anc[0].root = root;
            th->anc[0].edge = executor_random(ex);
            na = 1;
        } else if (nanchors) {
            na = bolt_anchors(ex, anchors, nanchors, th->anc);
        }
    }
    STAT_ADD(ex->emitted, 1);
    ex->last_ndest = 1;
    executor *to = ex->chain_to;
    int dest = ex->chain_task;
    tuple_view_set(t, values, n, th->anc, na);
    t->src_task = ex->task;
    t->dest_task = dest;
    t->stream_id = (uint16_t)stream_id;
    t->stream = st;
    if (acked && with_root)
        emit_ack_record(ex, ex->sid_ack_init, emit_acker_task(ex->rt, root), ACKREC_INIT, root, th->anc[0].edge,
                        ex->task);
    th->view_depth = depth + 1;
    STAT_ADD(to->received, 1);
    to->def->execute(to->state, &to->col, t);
    STAT_ADD(to->executed, 1);
    th->view_depth = depth;
    th->dests[0] = dest; /* for sd_emit_last_tasks: the call's emits used dests */
    if (__builtin_expect((t->flags & TUPLE_F_SIDE) || atomic_load_explicit(&t->refs, memory_order_relaxed) != 1, 0))
        view_settle(th, depth, t);
    STAT_ADD(ex->transferred, 1);
    if (!acked && with_root) spout_defer_ack(ex, msg_id); /* nothing to wait for: acked at once, as Storm does */
    return 0;
}

static __attribute__((noinline)) int emit_chained(executor *ex, int stream_id, const sd_value *values, size_t n,
                                                  int with_root, uint64_t msg_id) {
    return chain_call(ex, stream_id, values, n, NULL, 0, with_root, msg_id, false);
}

static __attribute__((noinline)) int emit_chained_acked(executor *ex, int stream_id, const sd_value *values,
                                                        size_t n, sd_tuple *const *anchors, size_t nanchors,
                                                        int with_root, uint64_t msg_id) {
    return chain_call(ex, stream_id, values, n, anchors, nanchors, with_root, msg_id, true);
}

static __attribute__((noinline)) int emit_shuffled(executor *ex, int stream_id, const sd_value *values, size_t n,
                                                   int with_root, uint64_t msg_id) {
    return plain_to_one(ex, stream_id, values, n, NULL, 0, with_root, msg_id, false, false);
}

/* a shuffle's single subscriber: emit_plain's other case */
static inline bool single_shuffled(const executor *ex, int stream_id) {
    const stream_routes *sr = &ex->rt->routes[stream_id];
    return sr->ntargets == 1 && sr->targets[0].input->grouping == GROUP_SHUFFLE;
}

int emit_plain(executor *ex, int stream_id, const sd_value *values, size_t n, int with_root, uint64_t msg_id) {
    if (stream_id == ex->chain_stream) return emit_chained(ex, stream_id, values, n, with_root, msg_id);
    if (single_shuffled(ex, stream_id)) return emit_shuffled(ex, stream_id, values, n, with_root, msg_id);
    /* several subscribers, or a grouping that looks at the values */
    return emit_general(ex, stream_id, 0, values, n, NULL, 0, with_root, msg_id);
}

int emit_plain_acked(executor *ex, int stream_id, const sd_value *values, size_t n, sd_tuple *const *anchors,
                     size_t nanchors, int with_root, uint64_t msg_id) {
    if (stream_id == ex->chain_stream)
        return emit_chained_acked(ex, stream_id, values, n, anchors, nanchors, with_root, msg_id);
    if (single_shuffled(ex, stream_id))
        return emit_shuffled_acked(ex, stream_id, values, n, anchors, nanchors, with_root, msg_id);
    return emit_general(ex, stream_id, 0, values, n, anchors, nanchors, with_root, msg_id);
}

int emit_general(executor *ex, int stream_id, int direct_task, const sd_value *values, size_t n,
                 sd_tuple *const *anchors, size_t nanchors, int with_root, uint64_t msg_id) {
    worker_rt *rt = ex->rt;
    exec_thread *th = ex->th;
    const topo_stream *st = &rt->topo->streams[stream_id];
    const stream_routes *sr = &rt->routes[stream_id];
    int ndest = 0;
    if (__builtin_expect((int)n == st->nfields && !st->direct && direct_task == 0, 1)) {
        /* dests has room for every task of every subscriber (routes_build);
         * a chained stream, once learnt, takes emit_plain instead */
        for (int i = 0; i < sr->ntargets; i++)
            ndest += grouping_choose(ex, &sr->targets[i], values, n, th->dests + ndest);
        if (rt->nchained && ex->chain_stream < 0) chain_learn(ex, sr, stream_id, ndest);
    } else if ((ndest = emit_dests_checked(ex, st, sr, direct_task, n)) < 0) {
        return -1;
    }
    /* n == nfields <= SD_MAX_FIELDS (topology load), so the sizes fit */
    uint32_t strings;
    uint64_t data_len = tuple_data_len(values, n, &strings);
    if (data_len > UINT32_MAX) return emit_size_error(ex, st, n, data_len);
    if (!rt->acker) { /* acking off: nothing anchored, nothing tracked */
        STAT_ADD(ex->emitted, 1);
        ex->last_ndest = ndest; /* for sd_emit_last_tasks; dests stays as is until the next emit */
        for (int d = 0; d < ndest; d++) emit_to(ex, stream_id, values, n, (uint32_t)data_len, strings, NULL, 0, th->dests[d]);
        if (with_root) spout_defer_ack(ex, msg_id); /* nothing to wait for: acked at once, as Storm does */
        return 0;
    }
    size_t anc_need;
    if (anchors_reserve(th, with_root, anchors, nanchors, &anc_need) != 0) return emit_anchor_error(ex, st, anc_need);
    uint64_t root = 0, xor_all = 0;
    if (with_root && ndest > 0) {
        /* track the tree before anything is sent: a tree in flight that we
         * could not track would be neither acked nor failed */
        root = spout_track(ex, msg_id);
        if (!root) return emit_track_error(ex, st);
    }
    STAT_ADD(ex->emitted, 1);
    ex->last_ndest = ndest;
    for (int d = 0; d < ndest; d++) {
        size_t na = 0;
        if (with_root) {
            th->anc[0].root = root;
            th->anc[0].edge = executor_random(ex);
            xor_all ^= th->anc[0].edge;
            na = 1;
        } else if (nanchors) {
            na = bolt_anchors(ex, anchors, nanchors, th->anc);
        }
        emit_to(ex, stream_id, values, n, (uint32_t)data_len, strings, th->anc, na, th->dests[d]);
    }
    if (with_root) {
        if (ndest == 0) spout_defer_ack(ex, msg_id); /* nothing to wait for: acked at once, as Storm does */
        else emit_ack_record(ex, ex->sid_ack_init, emit_acker_task(rt, root), ACKREC_INIT, root, xor_all, ex->task);
    }
    return 0;
}
