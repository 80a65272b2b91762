/*
 * executor_bolt: one slice of a bolt or acker task. A slice executes up to
 * worker.executor.slice.tuples tuples of its input (an acker runs acker.c,
 * a bolt its execute callback), taking every batch waiting in its queue
 * when what it took before is used up, releases them and flushes what they
 * emitted after each batch; then it delivers a tick tuple when one is due
 * (topology.tick.tuple.freq.secs) or, for an acker, expires old trees. It
 * stops taking input while a full queue holds its output back.
 *
 * Runs on the pool thread running the task; owns nothing beyond the executor.
 */
#include <errno.h>
#include <stdlib.h>

#include "multilang/multilang.h"
#include "runtime/emit.h"
#include "runtime/executor_internal.h"
#include "tuple/tuple_pool.h"

static void bolt_tick(executor *ex, int64_t now) {
    worker_rt *rt = ex->rt;
    if (ex->comp->is_acker) {
        if (now >= ex->next_expiry_ns) {
            acker_expire(ex, now);
            ex->next_expiry_ns = now + 1000000000;
        }
        return;
    }
    if (rt->tick_ns <= 0 || now < ex->next_tick_ns || ex->sid_tick < 0) return;
    ex->next_tick_ns = now + rt->tick_ns;
    sd_tuple *t = tuple_new(NULL, 0, NULL, 0);
    if (!t) return;
    t->flags |= TUPLE_F_TICK;
    t->stream_id = (uint16_t)ex->sid_tick;
    t->stream = &rt->topo->streams[ex->sid_tick];
    t->dest_task = ex->task;
    ex->def->execute(ex->state, &ex->col, t);
    tuple_unref(t);
}

/* Multi-lang bolts only: an internal call about once a second, input or
 * not, so their child is heartbeated while idle (a hang is found without
 * waiting for input). No tuple, nothing user code sees. */
#define BOLT_IDLE_NS 1000000000LL
static void bolt_idle(executor *ex, int64_t now) {
    if (!ex->comp->command || now < ex->next_idle_ns) return;
    ex->next_idle_ns = now + BOLT_IDLE_NS;
    multilang_bolt_idle(ex->state, &ex->col);
}

void bolt_begin(executor *ex) {
    int64_t now = now_ns();
    ex->next_tick_ns = now + ex->rt->tick_ns;
    ex->next_idle_ns = now + BOLT_IDLE_NS; /* multi-lang only (bolt_idle) */
    ex->next_expiry_ns = now + 1000000000;
}

/* executes up to budget tuples of the input taken; returns what is left of it */
static uint32_t bolt_run_held(executor *ex, uint32_t budget) {
    tuple_releaser rel = {0};
    while (ex->held && budget > 0 && !ex->stalled_head) {
        tuple_batch *b = ex->held;
        while (ex->held_pos < b->n && budget > 0) {
            sd_tuple *t = b->items[ex->held_pos++];
            bolt_execute_one(ex, t);
            if (ex->th->chain_n) emit_chain_run(ex->th);
            tuple_unref_deferred(t, &rel);
            budget--;
            if (ex->stalled_head) break; /* a full queue: take no more input */
        }
        if (ex->held_pos == b->n) {
            ex->held = b->next;
            ex->held_pos = 0;
            b->n = 0;
            free(b);
        }
        emit_flush(ex);
    }
    tuple_releaser_flush(&rel);
    return budget;
}

/* when the next tick, expiry or idle call is due (SCHED_NEVER: none) */
static int64_t bolt_next_due(const executor *ex) {
    if (ex->comp->is_acker) return ex->next_expiry_ns;
    int64_t due = ex->rt->tick_ns > 0 && ex->sid_tick >= 0 ? ex->next_tick_ns : SCHED_NEVER;
    if (ex->comp->command && ex->next_idle_ns < due) due = ex->next_idle_ns;
    return due;
}

int64_t bolt_tick_due(executor *ex, int64_t now) {
    bolt_tick(ex, now);
    bolt_idle(ex, now);
    return bolt_next_due(ex);
}

int bolt_slice(executor *ex, int64_t *wake_at) {
    worker_rt *rt = ex->rt;
    if (ex->stalled_head && emit_retry_stalled(ex) == -EAGAIN) return SCHED_WAIT; /* woken by room */
    uint32_t budget = rt->slice_tuples;
    while (budget > 0 && !ex->stalled_head) {
        if (!ex->held) {
            ex->held = queue_pop_all(ex->inq, 0);
            ex->held_pos = 0;
            if (!ex->held) break;
            size_t n = 0;
            for (tuple_batch *x = ex->held; x; x = x->next) n += x->n;
            STAT_ADD(ex->received, n);
            atomic_store_explicit(&ex->held_count, n, memory_order_relaxed);
        }
        budget = bolt_run_held(ex, budget);
    }
    int64_t now = now_ns();
    bolt_tick(ex, now);
    bolt_idle(ex, now);
    emit_flush(ex);
    size_t held = 0; /* for the worker's drain check: input taken is not drained yet */
    for (tuple_batch *x = ex->held; x; x = x->next) held += x->n - (x == ex->held ? ex->held_pos : 0);
    atomic_store_explicit(&ex->held_count, held, memory_order_relaxed);
    if (ex->stalled_head) return SCHED_WAIT;
    if (ex->held || queue_depth(ex->inq) > 0) return SCHED_MORE;
    *wake_at = bolt_next_due(ex);
    return SCHED_WAIT;
}
