/*
 * executor: one task on one thread (see executor.h). This file sets an
 * executor up, runs its thread (open, the loop of executor_spout.c or
 * executor_bolt.c, close, a last flush) and frees it. The outgoing side is
 * emit.c, the latency histogram latency_hist.c.
 */
#include "runtime/executor.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "runtime/emit.h"
#include "runtime/executor_internal.h"
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
        if (!ex->fifo || u64map_init(&ex->pending, (size_t)(rt->max_pending && rt->max_pending < 1024 ? rt->max_pending : 1024)) != 0)
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
    agemap_destroy(&ex->acks);
    if (ex->inq) queue_free(ex->inq);
    if (ex->pool) tuple_pool_close(ex->pool); /* after every tuple we hold is released */
    free(ex);
}

uint64_t executor_latency_us(executor *ex, double q) { return lat_quantile(ex->lat_hist, &ex->lat_max_us, q); }

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
    emit_flush(ex);
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
