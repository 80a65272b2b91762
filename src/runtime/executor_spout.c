/*
 * executor_spout: one slice of a spout task, and its tuple trees in
 * flight. A slice takes the acker's verdicts from its queue, fails trees
 * older than topology.message.timeout.secs (oldest first: a FIFO of roots
 * in emit order), calls next_tuple up to worker.executor.slice.tuples
 * times (unless inactive, throttled, at topology.max.spout.pending or held
 * back by a full queue) and flushes. It runs again at once while it has
 * room to emit; otherwise when acks arrive, or after a short sleep.
 *
 * Runs on the pool thread running the spout, which owns pending, the FIFO
 * and the deferred acks; emit.c adds to them from the same thread through
 * spout_track and spout_defer_ack (inline in executor_internal.h, their
 * slow paths here).
 */
#include <errno.h>
#include <stdlib.h>

#include "base/log.h"
#include "runtime/emit.h"
#include "runtime/executor_internal.h"
#include "tuple/tuple_pool.h"
#include "runtime/latency_hist.h"
#include "runtime/peer_down.h"

/* ---- trees in flight -------------------------------------------------------- */

/* Drops FIFO entries of trees already completed, once they outnumber the
 * trees in flight: one slow tree at the head must not let completed ones
 * pile up behind it (amortised O(1) per emit). */
static void fifo_compact(executor *ex) {
    size_t kept = 0;
    for (size_t i = 0; i < ex->fifo_len; i++) {
        uint64_t root = ex->fifo[(ex->fifo_head + i) & (ex->fifo_cap - 1)];
        if (spout_trees_get(&ex->pending, root)) ex->fifo[kept++] = root; /* kept <= i: in place */
    }
    /* the kept entries now start at index 0 (fifo_head was rotated away) */
    ex->fifo_head = 0;
    ex->fifo_len = kept;
}

int spout_fifo_make_room(executor *ex) {
    if (ex->fifo_len == ex->fifo_cap) {
        if (ex->fifo_len > 2 * ex->pending.len + 1024) {
            /* rotate to a linear layout first, then compact */
            uint64_t *lin = malloc(ex->fifo_cap * sizeof *lin);
            if (!lin) return -1;
            for (size_t i = 0; i < ex->fifo_len; i++) lin[i] = ex->fifo[(ex->fifo_head + i) & (ex->fifo_cap - 1)];
            free(ex->fifo);
            ex->fifo = lin;
            ex->fifo_head = 0;
            fifo_compact(ex);
        }
    }
    if (ex->fifo_len == ex->fifo_cap) {
        size_t cap = ex->fifo_cap * 2;
        uint64_t *grown = malloc(cap * sizeof *grown);
        if (!grown) return -1;
        for (size_t i = 0; i < ex->fifo_len; i++) grown[i] = ex->fifo[(ex->fifo_head + i) & (ex->fifo_cap - 1)];
        free(ex->fifo);
        ex->fifo = grown;
        ex->fifo_cap = cap;
        ex->fifo_head = 0;
    }
    return 0;
}

int spout_deferred_make_room(executor *ex, uint64_t msg_id) {
    size_t cap = ex->deferred_cap ? ex->deferred_cap * 2 : 64;
    uint64_t *grown = realloc(ex->deferred_acks, cap * sizeof *grown);
    if (!grown) {
        /* nothing tracks this message: ack it now rather than lose it */
        log_task(SD_LOG_WARN, ex->task, "out of memory deferring an ack; acking inline");
        STAT_ADD(ex->acked, 1);
        if (ex->def->ack) ex->def->ack(ex->state, &ex->col, msg_id);
        return -1;
    }
    ex->deferred_acks = grown;
    ex->deferred_cap = cap;
    return 0;
}

static void spout_complete(executor *ex, uint64_t root, int ok) {
    spout_tree rec;
    if (!spout_trees_take(&ex->pending, root, &rec)) return; /* already timed out */
    uint64_t msg_id = rec.msg_id;
    int64_t started = rec.started;
    atomic_store_explicit(&ex->pending_count, (int)ex->pending.len, memory_order_relaxed);
    if (ok) {
        lat_record(ex->lat_hist, &ex->lat_max_us, ex->round_ns - started);
        STAT_ADD(ex->acked, 1);
        if (ex->def->ack) ex->def->ack(ex->state, &ex->col, msg_id);
    } else {
        STAT_ADD(ex->failed, 1);
        if (ex->def->fail) ex->def->fail(ex->state, &ex->col, msg_id);
    }
}

/* ---- the loop ----------------------------------------------------------------- */

/* verdicts whose trees' slots are being loaded ahead of the one handled */
#define DONE_PREFETCH 8

static void spout_take_inbound(executor *ex, tuple_batch *b) {
    if (b) ex->round_ns = now_ns();
    while (b) {
        tuple_batch *next = b->next;
        for (uint32_t i = 0; i < b->n; i++) {
            sd_tuple *t = b->items[i];
            if (ex->rt->stream_kind[t->stream_id] != STREAM_ACK_DONE) continue;
            int n = ackpkt_count(t);
            for (int k = 0; k < n && k < DONE_PREFETCH; k++) spout_trees_prefetch(&ex->pending, ackpkt_get_root(t, k));
            for (int k = 0; k < n; k++) { /* verdicts of the acker (or peer_down's notices) */
                if (k + DONE_PREFETCH < n) spout_trees_prefetch(&ex->pending, ackpkt_get_root(t, k + DONE_PREFETCH));
                ackrec r;
                ackpkt_get(t, k, &r);
                if (r.kind != ACKREC_DONE_OK && r.kind != ACKREC_DONE_FAIL) continue;
                if (r.root == 0) /* that acker's worker is down */
                    peer_down_fail_trees(ex, t->src_task, spout_complete);
                else
                    spout_complete(ex, r.root, r.kind == ACKREC_DONE_OK);
            }
        }
        tuple_batch_free(b);
        b = next;
    }
}

static void spout_expire(executor *ex, int64_t now) {
    while (ex->fifo_len) {
        uint64_t root = ex->fifo[ex->fifo_head];
        spout_tree *rec = spout_trees_get(&ex->pending, root);
        if (rec && now - rec->started < ex->rt->timeout_ns) break;
        ex->fifo_head = (ex->fifo_head + 1) & (ex->fifo_cap - 1);
        ex->fifo_len--;
        if (rec) {
            log_task(SD_LOG_DEBUG, ex->task, "tuple tree %llx timed out", (unsigned long long)root);
            spout_complete(ex, root, 0);
        }
    }
}

static void spout_run_deferred(executor *ex) {
    for (size_t i = 0; i < ex->ndeferred; i++) {
        STAT_ADD(ex->acked, 1);
        if (ex->def->ack) ex->def->ack(ex->state, &ex->col, ex->deferred_acks[i]);
    }
    ex->ndeferred = 0;
}

/* an exhausted or inactive source has nothing to offer soon: look ten
 * times a second (acks and fails still wake the spout at once) */
#define SPOUT_DONE_WAIT_NS 100000000LL

void spout_begin(executor *ex) {
    ex->deactivated = 1;
    ex->last_next = SD_NEXT_IDLE;
}

int spout_slice(executor *ex, int64_t *wake_at) {
    worker_rt *rt = ex->rt;
    bool stalled = ex->stalled_head && emit_retry_stalled(ex) == -EAGAIN;
    spout_take_inbound(ex, queue_pop_all(ex->inq, 0));
    int64_t now = ex->round_ns = now_ns();
    spout_expire(ex, now);
    spout_run_deferred(ex);
    bool active = atomic_load_explicit(&rt->active, memory_order_acquire);
    if (!stalled && active && ex->deactivated) {
        ex->deactivated = 0;
        if (ex->def->activate) ex->def->activate(ex->state, &ex->col);
    } else if (!stalled && !active && !ex->deactivated) {
        ex->deactivated = 1;
        if (ex->def->deactivate) ex->def->deactivate(ex->state, &ex->col);
    }
    /* the loop's throttle has hysteresis but reacts only when the loop
     * runs; the spouts' own look at the bytes of tuples alive bounds a
     * worker's memory while the loop waits for a core */
    bool throttled = atomic_load_explicit(&rt->throttle_votes, memory_order_relaxed) != 0 ||
                     (rt->spout_hold_bytes && tuple_pool_busy_bytes() > rt->spout_hold_bytes);
    int r = SD_NEXT_IDLE;
    bool at_max = false;
    if (!stalled && active && !throttled) {
        for (uint32_t i = 0; i < rt->slice_tuples && !ex->stalled_head; i++) {
            if (rt->max_pending > 0 && ex->pending.len >= (size_t)rt->max_pending) {
                at_max = true;
                break;
            }
            r = ex->def->next_tuple(ex->state, &ex->col);
            if (ex->th->chain_n) emit_chain_run(ex->th);
            if (r != SD_NEXT_EMITTED) break;
        }
        ex->last_next = r;
    }
    emit_flush(ex);
    spout_run_deferred(ex);
    atomic_store_explicit(&ex->exhausted, ex->last_next == SD_NEXT_EXHAUSTED && ex->pending.len == 0,
                          memory_order_relaxed);
    if (ex->stalled_head) return SCHED_WAIT; /* woken by room */
    if (queue_depth(ex->inq) > 0) return SCHED_MORE; /* verdicts came meanwhile */
    if (!stalled && active && !throttled && !at_max && r == SD_NEXT_EMITTED) return SCHED_MORE;
    /* waiting: for acks (they wake it), and for the clock (timeouts,
     * activation, the source's idle sleep) */
    int64_t wait = SPOUT_DONE_WAIT_NS;
    if (active && !at_max && r != SD_NEXT_EXHAUSTED) wait = rt->spout_idle_ns;
    *wake_at = now + wait;
    return SCHED_WAIT;
}
