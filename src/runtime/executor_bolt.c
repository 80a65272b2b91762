/*
 * executor_bolt: the main loop of a bolt or acker task. Each round it takes
 * every batch waiting in its queue, executes the tuples (an acker runs
 * acker.c, a bolt its execute callback), releases them and flushes what
 * they emitted; between rounds it delivers tick tuples
 * (topology.tick.tuple.freq.secs) or, for an acker, expires old trees.
 *
 * Runs on the task's executor thread; owns nothing beyond the executor.
 */
#include <stdlib.h>

#include "multilang/multilang.h"
#include "runtime/emit.h"
#include "runtime/executor_internal.h"
#include "tuple/tuple_pool.h"

static void bolt_execute(executor *ex, sd_tuple *t) {
    if (ex->comp->is_acker) acker_execute(ex, t);
    else ex->def->execute(ex->state, &ex->col, t);
    STAT_ADD(ex->executed, 1);
}

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
static void bolt_idle(executor *ex, int64_t now, int64_t *next) {
    if (!ex->comp->command || now < *next) return;
    *next = now + BOLT_IDLE_NS;
    multilang_bolt_idle(ex->state, &ex->col);
}

void bolt_loop(executor *ex) {
    worker_rt *rt = ex->rt;
    int64_t now = now_ns();
    int64_t next_idle_ns = now + BOLT_IDLE_NS; /* multi-lang only (bolt_idle) */
    ex->next_tick_ns = now + rt->tick_ns;
    ex->next_expiry_ns = now + 1000000000;
    while (!atomic_load_explicit(&rt->stopping, memory_order_acquire)) {
        int64_t wait = 100000000; /* wake at least every 100 ms to check for stop */
        if (rt->tick_ns > 0 && !ex->comp->is_acker) {
            int64_t until = ex->next_tick_ns - now_ns();
            if (until < wait) wait = until > 0 ? until : 0;
        }
        tuple_batch *b = queue_pop_all(ex->inq, wait);
        for (tuple_batch *x = b; x; x = x->next) STAT_ADD(ex->received, x->n);
        tuple_releaser rel = {0};
        while (b) {
            tuple_batch *next = b->next;
            for (uint32_t i = 0; i < b->n; i++) {
                bolt_execute(ex, b->items[i]);
                tuple_unref_deferred(b->items[i], &rel);
            }
            b->n = 0;
            free(b);
            b = next;
            emit_flush(ex);
        }
        tuple_releaser_flush(&rel);
        bolt_tick(ex, now_ns());
        bolt_idle(ex, now_ns(), &next_idle_ns);
        emit_flush(ex);
    }
}
