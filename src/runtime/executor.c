/*
 * executor: one task on one thread (see executor.h).
 *
 * The emit path builds one tuple per destination task (each copy is its own
 * edge of the tuple tree), appends it to a per-destination batch, and hands
 * batches over at the end of a round (or when one fills). A spout tracks
 * its trees in flight (pending) and fails those older than
 * topology.message.timeout.secs, oldest first.
 */
#include "runtime/executor.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "tuple/tuple_pool.h"


static int sys_stream(const worker_rt *rt, int comp, const char *name) {
    const topo_stream *s = topology_stream(rt->topo, comp, name);
    return s ? s->id : -1;
}

executor *executor_new(worker_rt *rt, int task) {
    executor *ex = calloc(1, sizeof *ex);
    if (!ex) return NULL;
    const topology *t = rt->topo;
    ex->rt = rt;
    ex->task = task;
    ex->comp = topology_task_component(t, task);
    ex->task_index = task - ex->comp->first_task;
    ex->def = ex->comp->def;
    ex->ctx.ex = ex;
    ex->col.ex = ex;
    ex->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)task << 32) ^ (uint64_t)now_ns() ^ (uint64_t)getpid();
    ex->rr = (uint32_t)task;
    ex->sid_ack_init = sys_stream(rt, ex->comp->index, TOPO_STREAM_ACK_INIT);
    ex->sid_ack_ack = sys_stream(rt, ex->comp->index, TOPO_STREAM_ACK_ACK);
    ex->sid_ack_fail = sys_stream(rt, ex->comp->index, TOPO_STREAM_ACK_FAIL);
    ex->sid_ack_done = sys_stream(rt, ex->comp->index, TOPO_STREAM_ACK_DONE);
    ex->sid_tick = sys_stream(rt, -1, TOPO_STREAM_TICK);

    /* spouts and ackers take acking traffic that must never wait; bolts
     * get the configured (normally bounded) queue */
    bool bounded = ex->comp->kind == SD_BOLT && !ex->comp->is_acker &&
                   strcmp(conf_str_or(rt->conf, "topology.executor.queue.type", "ring"), "unbounded") != 0;
    size_t slots = (size_t)conf_int(rt->conf, "topology.executor.receive.buffer.size") / rt->batch_size;
    ex->inq = queue_new(bounded, slots < 16 ? 16 : slots);
    ex->pool = tuple_pool_new();
    ex->dests = calloc((size_t)rt->max_fanout + 1, sizeof *ex->dests);
    ex->last_stream_id = -1;
    ex->local_out = calloc((size_t)t->ntasks + 1, sizeof *ex->local_out);
    ex->local_dirty = calloc((size_t)t->ntasks + 1, sizeof *ex->local_dirty);
    ex->local_listed = calloc((size_t)t->ntasks + 1, 1);
    ex->sent_to = calloc((size_t)t->ntasks + 1, sizeof *ex->sent_to);
    ex->remote_out = calloc((size_t)rt->nworkers * 2, sizeof *ex->remote_out);
    ex->remote_n = calloc((size_t)rt->nworkers * 2, sizeof *ex->remote_n);
    ex->remote_cap = rt->batch_size * 4;
    if (!ex->inq || !ex->pool || !ex->dests || !ex->local_out || !ex->local_dirty || !ex->local_listed || !ex->sent_to || !ex->remote_out || !ex->remote_n)
        goto fail;
    for (int w = 0; w < rt->nworkers * 2; w++) {
        if (w / 2 == rt->worker_index) continue;
        ex->remote_out[w] = malloc(ex->remote_cap * sizeof(sd_tuple *));
        if (!ex->remote_out[w]) goto fail;
    }
    if (ex->comp->kind == SD_SPOUT) {
        ex->fifo_cap = 1024;
        ex->fifo = malloc(ex->fifo_cap * sizeof *ex->fifo);
        if (!ex->fifo || u64map_init(&ex->pending, (size_t)(rt->max_pending ? rt->max_pending : 1024)) != 0)
            goto fail;
    }
    if (ex->comp->is_acker && u64map_init(&ex->acks, 4096) != 0) goto fail;
    return ex;
fail:
    log_task(SD_LOG_ERROR, task, "out of memory creating the executor");
    executor_free(ex);
    return NULL;
}

void executor_free(executor *ex) {
    if (!ex) return;
    if (ex->local_out) {
        for (int i = 0; i <= ex->rt->topo->ntasks; i++) tuple_batch_free(ex->local_out[i]);
    }
    if (ex->remote_out) {
        for (int w = 0; w < ex->rt->nworkers * 2; w++) {
            for (uint32_t i = 0; i < ex->remote_n[w]; i++) tuple_unref(ex->remote_out[w][i]);
            free(ex->remote_out[w]);
        }
    }
    for (int i = 0; i < ex->nowned; i++) free(ex->owned[i]);
    free(ex->owned);
    free(ex->local_out);
    free(ex->local_dirty);
    free(ex->local_listed);
    free(ex->sent_to);
    free(ex->remote_out);
    free(ex->remote_n);
    free(ex->fifo);
    free(ex->deferred_acks);
    free(ex->dests);
    free(ex->anc);
    if (ex->pending.keys) u64map_destroy(&ex->pending);
    if (ex->acks.keys) u64map_destroy(&ex->acks);
    if (ex->inq) queue_free(ex->inq);
    if (ex->pool) tuple_pool_close(ex->pool); /* after every tuple we hold is released */
    free(ex);
}

/* ---- outgoing ------------------------------------------------------------ */

static void flush_local(executor *ex, int dest) {
    tuple_batch *b = ex->local_out[dest];
    if (!b || b->n == 0) return;
    executor *to = ex->rt->task_exec[dest];
    ex->local_out[dest] = NULL;
    if (queue_push(to->inq, b, false) != 0) tuple_batch_free(b); /* closed: worker is stopping */
}

static void flush_remote(executor *ex, int slot) {
    uint32_t n = ex->remote_n[slot];
    if (n == 0) return;
    if (ex->rt->tr) transport_send(ex->rt->tr, slot / 2, ex->remote_out[slot], n, slot & 1);
    for (uint32_t i = 0; i < n; i++) tuple_unref(ex->remote_out[slot][i]);
    ex->remote_n[slot] = 0;
}

void executor_flush(executor *ex) {
    for (int i = 0; i < ex->nlocal_dirty; i++) {
        flush_local(ex, ex->local_dirty[i]);
        ex->local_listed[ex->local_dirty[i]] = 0;
    }
    ex->nlocal_dirty = 0;
    for (int w = 0; w < ex->rt->nworkers * 2; w++) flush_remote(ex, w);
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
        if (ex->remote_n[slot] == ex->remote_cap) flush_remote(ex, slot);
    }
    STAT_ADD(ex->transferred, 1);
}

void executor_send_system(executor *ex, int stream_id, int dest, const sd_value *values, size_t n) {
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

static void defer_ack(executor *ex, uint64_t msg_id) {
    if (ex->ndeferred == ex->deferred_cap) {
        size_t cap = ex->deferred_cap ? ex->deferred_cap * 2 : 64;
        uint64_t *grown = realloc(ex->deferred_acks, cap * sizeof *grown);
        if (!grown) {
            /* nothing tracks this message: ack it now rather than lose it */
            log_task(SD_LOG_WARN, ex->task, "out of memory deferring an ack; acking inline");
            STAT_ADD(ex->acked, 1);
            if (ex->def->ack) ex->def->ack(ex->state, &ex->col, msg_id);
            return;
        }
        ex->deferred_acks = grown;
        ex->deferred_cap = cap;
    }
    ex->deferred_acks[ex->ndeferred++] = msg_id;
}

/* Drops FIFO entries of trees already completed, once they outnumber the
 * trees in flight: one slow tree at the head must not let completed ones
 * pile up behind it (amortised O(1) per emit). */
static void fifo_compact(executor *ex) {
    size_t kept = 0;
    for (size_t i = 0; i < ex->fifo_len; i++) {
        uint64_t root = ex->fifo[(ex->fifo_head + i) % ex->fifo_cap];
        if (u64map_get(&ex->pending, root)) ex->fifo[kept++] = root; /* kept <= i: in place */
    }
    /* the kept entries now start at index 0 (fifo_head was rotated away) */
    ex->fifo_head = 0;
    ex->fifo_len = kept;
}

static int fifo_push(executor *ex, uint64_t root) {
    if (ex->fifo_len == ex->fifo_cap) {
        if (ex->fifo_len > 2 * ex->pending.len + 1024) {
            /* rotate to a linear layout first, then compact */
            uint64_t *lin = malloc(ex->fifo_cap * sizeof *lin);
            if (!lin) return -1;
            for (size_t i = 0; i < ex->fifo_len; i++) lin[i] = ex->fifo[(ex->fifo_head + i) % ex->fifo_cap];
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
        for (size_t i = 0; i < ex->fifo_len; i++) grown[i] = ex->fifo[(ex->fifo_head + i) % ex->fifo_cap];
        free(ex->fifo);
        ex->fifo = grown;
        ex->fifo_cap = cap;
        ex->fifo_head = 0;
    }
    ex->fifo[(ex->fifo_head + ex->fifo_len++) % ex->fifo_cap] = root;
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

int executor_emit(executor *ex, int stream_id, int direct_task, const sd_value *values, size_t n,
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
        int created;
        u64map_rec *rec = u64map_upsert(&ex->pending, root, &created);
        if (!rec || fifo_push(ex, root) != 0) {
            if (rec) u64map_del(&ex->pending, root);
            return emit_error(ex, "out of memory tracking a tuple tree on stream '%s'", st->name);
        }
        rec->a = msg_id;
        rec->t = ex->round_ns; /* the round's clock: one clock read per round, not per tuple */
        atomic_store_explicit(&ex->pending_count, (int)ex->pending.len, memory_order_relaxed);
    }
    STAT_ADD(ex->emitted, 1);
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
            defer_ack(ex, msg_id); /* nothing to wait for: acked at once, as Storm does */
        } else {
            sd_value v[3] = {sd_int((int64_t)root), sd_int((int64_t)xor_all), sd_int(ex->task)};
            executor_send_system(ex, ex->sid_ack_init,
                                 rt->acker->first_task + (int)(root % (uint64_t)rt->acker->parallelism), v, 3);
        }
    }
    return 0;
}

/* ---- latency --------------------------------------------------------------- */

static int lat_bucket(uint64_t us) {
    if (us < 8) return (int)us;
    int msb = 63 - __builtin_clzll(us);
    int b = (msb - 2) * 8 + (int)((us >> (msb - 3)) & 7);
    return b < LAT_BUCKETS ? b : LAT_BUCKETS - 1;
}

static uint64_t lat_bucket_upper(int b) {
    if (b < 8) return (uint64_t)b;
    int msb = b / 8 + 2, sub = b % 8;
    return ((uint64_t)(8 + sub + 1) << (msb - 3)) - 1;
}

static void record_latency(executor *ex, int64_t ns) {
    uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
    STAT_ADD(ex->lat_hist[lat_bucket(us)], 1);
    if (us > atomic_load_explicit(&ex->lat_max_us, memory_order_relaxed))
        atomic_store_explicit(&ex->lat_max_us, us, memory_order_relaxed);
}

uint64_t executor_latency_us(executor *ex, double q) {
    uint64_t total = 0, counts[LAT_BUCKETS];
    for (int i = 0; i < LAT_BUCKETS; i++) total += counts[i] = atomic_load(&ex->lat_hist[i]);
    if (total == 0) return 0;
    uint64_t want = (uint64_t)(q * (double)total), seen = 0;
    for (int i = 0; i < LAT_BUCKETS; i++) {
        seen += counts[i];
        if (seen > want) {
            uint64_t up = lat_bucket_upper(i), max = atomic_load(&ex->lat_max_us);
            return up < max ? up : max;
        }
    }
    return atomic_load(&ex->lat_max_us);
}

/* ---- spout ----------------------------------------------------------------- */

static void spout_complete(executor *ex, uint64_t root, int ok) {
    u64map_rec *rec = u64map_get(&ex->pending, root);
    if (!rec) return; /* already timed out */
    uint64_t msg_id = rec->a;
    int64_t started = rec->t;
    u64map_del(&ex->pending, root);
    atomic_store_explicit(&ex->pending_count, (int)ex->pending.len, memory_order_relaxed);
    if (ok) {
        record_latency(ex, ex->round_ns - started);
        STAT_ADD(ex->acked, 1);
        if (ex->def->ack) ex->def->ack(ex->state, &ex->col, msg_id);
    } else {
        STAT_ADD(ex->failed, 1);
        if (ex->def->fail) ex->def->fail(ex->state, &ex->col, msg_id);
    }
}

static void spout_take_inbound(executor *ex, tuple_batch *b) {
    if (b) ex->round_ns = now_ns();
    while (b) {
        tuple_batch *next = b->next;
        for (uint32_t i = 0; i < b->n; i++) {
            sd_tuple *t = b->items[i];
            if (ex->rt->stream_kind[t->stream_id] == STREAM_ACK_DONE && t->nvalues == 2)
                spout_complete(ex, (uint64_t)t->values[0].v.i, t->values[1].v.b);
        }
        tuple_batch_free(b);
        b = next;
    }
}

static void spout_expire(executor *ex, int64_t now) {
    while (ex->fifo_len) {
        uint64_t root = ex->fifo[ex->fifo_head];
        u64map_rec *rec = u64map_get(&ex->pending, root);
        if (rec && now - rec->t < ex->rt->timeout_ns) break;
        ex->fifo_head = (ex->fifo_head + 1) % ex->fifo_cap;
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

#define SPOUT_DONE_WAIT_NS 100000000LL

static void spout_loop(executor *ex) {
    worker_rt *rt = ex->rt;
    ex->deactivated = 1;
    ex->last_next = SD_NEXT_IDLE;
    while (!atomic_load_explicit(&rt->stopping, memory_order_acquire)) {
        spout_take_inbound(ex, queue_pop_all(ex->inq, 0));
        int64_t now = ex->round_ns = now_ns();
        spout_expire(ex, now);
        spout_run_deferred(ex);
        bool active = atomic_load_explicit(&rt->active, memory_order_acquire);
        if (active && ex->deactivated) {
            ex->deactivated = 0;
            if (ex->def->activate) ex->def->activate(ex->state, &ex->col);
        } else if (!active && !ex->deactivated) {
            ex->deactivated = 1;
            if (ex->def->deactivate) ex->def->deactivate(ex->state, &ex->col);
        }
        int r = SD_NEXT_IDLE;
        if (active && atomic_load_explicit(&rt->throttle_votes, memory_order_relaxed) == 0) {
            for (uint32_t i = 0; i < rt->batch_size; i++) {
                if (rt->max_pending > 0 && ex->pending.len >= (size_t)rt->max_pending) break;
                r = ex->def->next_tuple(ex->state, &ex->col);
                if (r != SD_NEXT_EMITTED) break;
            }
            ex->last_next = r;
        }
        executor_flush(ex);
        spout_run_deferred(ex);
        atomic_store_explicit(&ex->exhausted, ex->last_next == SD_NEXT_EXHAUSTED && ex->pending.len == 0,
                              memory_order_relaxed);
        /* an exhausted source has nothing to offer soon: wake ten times a
         * second (acks and fails still wake us at once through the queue) */
        if (r != SD_NEXT_EMITTED)
            spout_take_inbound(ex, queue_pop_all(ex->inq, r == SD_NEXT_EXHAUSTED || !active
                                                              ? SPOUT_DONE_WAIT_NS
                                                              : rt->spout_idle_ns));
    }
}

/* ---- bolts and ackers ------------------------------------------------------ */

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

static void bolt_loop(executor *ex) {
    worker_rt *rt = ex->rt;
    int64_t now = now_ns();
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
            executor_flush(ex);
        }
        tuple_releaser_flush(&rel);
        bolt_tick(ex, now_ns());
        executor_flush(ex);
    }
}

/* ---- thread ---------------------------------------------------------------- */

static void *executor_thread(void *arg) {
    executor *ex = arg;
    char name[16];
    snprintf(name, sizeof name, "task-%d", ex->task);
    pthread_setname_np(pthread_self(), name);
    if (ex->def) {
        ex->state = ex->def->open ? ex->def->open(&ex->ctx, &ex->col) : NULL;
        if (ex->def->open && !ex->state) {
            log_task(SD_LOG_ERROR, ex->task, "%s '%s' (class %s) failed to open; the task does not run",
                     ex->comp->kind == SD_SPOUT ? "spout" : "bolt", ex->comp->id, ex->comp->class_name);
            STAT_ADD(ex->errors, 1);
            atomic_store(&ex->done, true);
            return NULL;
        }
    }
    if (ex->comp->kind == SD_SPOUT) spout_loop(ex);
    else bolt_loop(ex);
    if (ex->def && ex->def->close) ex->def->close(ex->state, &ex->col);
    executor_flush(ex);
    atomic_store(&ex->done, true);
    return NULL;
}

int executor_start(executor *ex) {
    int rc = pthread_create(&ex->thread, NULL, executor_thread, ex);
    if (rc != 0) {
        log_task(SD_LOG_ERROR, ex->task, "cannot start the executor thread: %s", strerror(rc));
        return -1;
    }
    ex->thread_started = 1;
    return 0;
}
