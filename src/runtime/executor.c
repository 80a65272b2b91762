/*
 * executor: one task (see executor.h). This file sets an executor up and
 * frees it, and makes a pool thread's outgoing buffers (exec_thread). The
 * slices are run by runner.c, the outgoing side is emit.c, the latency
 * histogram latency_hist.c.
 */
#include "runtime/executor.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "runtime/emit.h"
#include "runtime/executor_internal.h"
#include "tuple/tuple_pool.h"

/* bytes of records a pool thread gathers for one peer before handing them
 * to the transport (less when the transport's frames are smaller) */
#define REMOTE_RECORDS_BATCH (32u << 10)

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
    /* a spout's is its acker's: it fails trees it could not send through its own queue (emit.c) */
    ex->sid_ack_done = sys_stream(rt, ex->comp->kind == SD_SPOUT && rt->acker ? rt->acker->index : ex->comp->index,
                                  TOPO_STREAM_ACK_DONE);
    ex->sid_tick = sys_stream(rt, -1, TOPO_STREAM_TICK);

    /* spouts and ackers take acking traffic that must never wait; bolts
     * get the configured (normally bounded) queue */
    bool bounded = ex->comp->kind == SD_BOLT && !ex->comp->is_acker &&
                   strcmp(conf_str_or(rt->conf, "topology.executor.queue.type", "ring"), "unbounded") != 0;
    size_t slots = (size_t)conf_int(rt->conf, "topology.executor.receive.buffer.size") / rt->batch_size;
    ex->inq = queue_new(bounded, slots < 16 ? 16 : slots);
    ex->last_stream_id = -1;
    ex->default_stream_id = -1;
    ex->chain_stream = -1;
    ex->unanchored = !rt->acker;
    for (int i = 0; i < ex->comp->nstreams; i++) {
        const topo_stream *st = &t->streams[ex->comp->stream_ids[i]];
        if (!st->system && strcmp(st->name, SD_DEFAULT_STREAM) == 0) ex->default_stream_id = st->id;
    }
    if (!ex->inq) goto fail;
    if (ex->comp->kind == SD_SPOUT) {
        ex->fifo_cap = 1024;
        ex->fifo = malloc(ex->fifo_cap * sizeof *ex->fifo);
        ex->lat_hist = calloc(LAT_BUCKETS, sizeof *ex->lat_hist);
        if (!ex->fifo || !ex->lat_hist ||
            spout_trees_init(&ex->pending,
                             (size_t)(rt->max_pending && rt->max_pending < 1024 ? rt->max_pending : 1024)) != 0)
            goto fail;
    }
    /* the acker forgets trees a message timeout (+1 s) old: see acker_expire */
    if (ex->comp->is_acker && agemap_init(&ex->acks, 4096, rt->timeout_ns + 1000000000, now_ns()) != 0) goto fail;
    return ex;
fail:
    log_task(SD_LOG_ERROR, task, "out of memory creating the executor");
    executor_free(ex);
    return NULL;
}

void executor_free(executor *ex) {
    if (!ex) return;
    if (ex->held) { /* the executed part of the first batch is released already */
        tuple_batch *b = ex->held;
        for (uint32_t i = ex->held_pos; i < b->n; i++) tuple_unref(b->items[i]);
        b->n = 0;
        for (tuple_batch *next; b; b = next) {
            next = b->next;
            tuple_batch_free(b);
        }
    }
    for (tuple_batch *b = ex->stalled_head, *next; b; b = next) {
        next = b->next;
        tuple_batch_free(b);
    }
    queue_waiter_cancel(&ex->room);
    for (int i = 0; i < ex->nowned; i++) free(ex->owned[i]);
    free(ex->owned);
    grouping_free_state(ex);
    free(ex->fifo);
    free(ex->lat_hist);
    free(ex->members);
    free(ex->deferred_acks);
    spout_trees_destroy(&ex->pending);
    agemap_destroy(&ex->acks);
    if (ex->inq) queue_free(ex->inq);
    free(ex);
}

/* Zeroed room for n items of size bytes in whole cache lines (freed with
 * free), or NULL: a pool thread writes its arrays on every emit, and one
 * malloc arena serves every thread (worker.malloc.arenas), so without this
 * two threads' arrays could share a line and each write would steal it
 * from the other core. */
static void *line_calloc(size_t n, size_t size) {
    if (size && n > (SIZE_MAX - 64) / size) return NULL;
    size_t bytes = (n * size + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p) memset(p, 0, bytes ? bytes : 64);
    return p;
}

exec_thread *exec_thread_new(const worker_rt *rt) {
    exec_thread *th = line_calloc(1, sizeof *th);
    if (!th) return NULL;
    size_t ntasks = (size_t)rt->topo->ntasks;
    th->local_out = line_calloc(ntasks + 1, sizeof *th->local_out);
    th->local_dirty = line_calloc(ntasks + 1, sizeof *th->local_dirty);
    th->local_listed = line_calloc(ntasks + 1, 1);
    th->dests = line_calloc((size_t)rt->max_fanout + 1, sizeof *th->dests);
    th->remote_recs = line_calloc((size_t)rt->nworkers, sizeof *th->remote_recs);
    th->remote_acks = line_calloc((size_t)rt->nworkers, sizeof *th->remote_acks);
    th->remote_nacks = line_calloc((size_t)rt->nworkers, sizeof *th->remote_nacks);
    th->remote_cap = rt->batch_size * 4;
    /* a frame's worth, or less: a thread holds this much per peer at most
     * (besides one record) */
    th->recs_batch = REMOTE_RECORDS_BATCH;
    th->record_limit = SIZE_MAX;
    if (rt->tr) {
        if (transport_records_batch(rt->tr) < th->recs_batch) th->recs_batch = transport_records_batch(rt->tr);
        th->record_limit = transport_record_limit(rt->tr);
    }
    th->pool = tuple_pool_new();
    ack_stage_init(&th->acks, emit_ack_packet, th);
    if (!th->local_out || !th->local_dirty || !th->local_listed || !th->dests || !th->remote_recs ||
        !th->remote_acks || !th->remote_nacks || !th->pool)
        goto fail;
    for (int w = 0; w < rt->nworkers; w++) {
        if (w == rt->worker_index) continue;
        th->remote_acks[w] = malloc(th->remote_cap * sizeof(sd_tuple *));
        if (!th->remote_acks[w]) goto fail;
    }
    th->nworkers = rt->nworkers;
    th->ntasks = rt->topo->ntasks;
    return th;
fail:
    th->nworkers = rt->nworkers;
    th->ntasks = rt->topo->ntasks;
    exec_thread_free(th);
    return NULL;
}

void exec_thread_free(exec_thread *th) {
    if (!th) return;
    if (th->local_out) {
        for (int i = 0; i <= th->ntasks; i++) tuple_batch_free(th->local_out[i]);
    }
    if (th->remote_acks) {
        for (int w = 0; w < th->nworkers; w++) {
            for (uint32_t i = 0; th->remote_nacks && i < th->remote_nacks[w]; i++) tuple_unref(th->remote_acks[w][i]);
            free(th->remote_acks[w]);
        }
    }
    for (int w = 0; th->remote_recs && w < th->nworkers; w++) transport_records_free(&th->remote_recs[w]);
    free(th->local_out);
    free(th->local_dirty);
    free(th->local_listed);
    free(th->dests);
    free(th->remote_recs);
    free(th->remote_acks);
    free(th->remote_nacks);
    free(th->anc);
    for (size_t i = th->chain_pos; i < th->chain_n; i++) tuple_unref(th->chainq[i].t);
    free(th->chainq);
    tuple_releaser_flush(&th->chain_rel);
    for (int i = 0; i < CHAIN_CALL_DEPTH; i++) free(th->views[i]); /* settled: held here alone, no side block */
    ack_stage_destroy(&th->acks); /* every task flushed: nothing is held */
    if (th->pool) tuple_pool_close(th->pool); /* after every tuple we hold is released */
    free(th);
}

uint64_t executor_latency_us(executor *ex, double q) {
    return ex->lat_hist ? lat_quantile(ex->lat_hist, &ex->lat_max_us, q) : 0;
}
