/*
 * grouping: who receives a tuple. routes_build turns the topology's inputs
 * into, per stream, the list of subscribing components (and the lookup
 * tables wire_check uses: each task's component, who subscribes to what); grouping_choose
 * picks destination tasks for one tuple (executor thread only: it uses the
 * executor's round-robin counter, random state and load estimates).
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/executor.h"
#include "base/log.h"

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

bool routes_subscribed(const worker_rt *rt, int stream, int comp) {
    const stream_routes *sr = &rt->routes[stream];
    int lo = 0, hi = sr->ntargets;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (sr->sub_comps[mid] == comp) return true;
        if (sr->sub_comps[mid] < comp) lo = mid + 1;
        else hi = mid;
    }
    return false;
}

int routes_build(worker_rt *rt) {
    const topology *t = rt->topo;
    rt->routes = calloc((size_t)t->nstreams, sizeof *rt->routes);
    rt->stream_kind = calloc((size_t)t->nstreams, 1);
    rt->task_comp = calloc((size_t)t->ntasks + 1, sizeof *rt->task_comp);
    if (!rt->routes || !rt->stream_kind || !rt->task_comp) return -1;
    for (int task = 1; task <= t->ntasks; task++) rt->task_comp[task] = topology_task_component(t, task);
    static const struct { const char *name; uint8_t kind; } kinds[] = {
        {TOPO_STREAM_ACK_INIT, STREAM_ACK_INIT}, {TOPO_STREAM_ACK_ACK, STREAM_ACK_ACK},
        {TOPO_STREAM_ACK_FAIL, STREAM_ACK_FAIL}, {TOPO_STREAM_ACK_DONE, STREAM_ACK_DONE},
        {TOPO_STREAM_TICK, STREAM_TICK},
    };
    for (int s = 0; s < t->nstreams; s++)
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
            if (strcmp(t->streams[s].name, kinds[k].name) == 0) rt->stream_kind[s] = kinds[k].kind;
    for (int c = 0; c < t->ncomponents; c++) {
        const topo_component *comp = &t->components[c];
        for (int i = 0; i < comp->ninputs; i++) {
            const topo_input *in = &comp->inputs[i];
            stream_routes *sr = &rt->routes[in->stream_id];
            route_target *grown = realloc(sr->targets, (size_t)(sr->ntargets + 1) * sizeof *grown);
            if (!grown) return -1;
            sr->targets = grown;
            route_target *tg = &sr->targets[sr->ntargets++];
            tg->comp = comp;
            tg->input = in;
            tg->ntasks = comp->parallelism;
            tg->nlocal = 0;
            tg->local_tasks = calloc((size_t)comp->parallelism, sizeof(int));
            if (!tg->local_tasks) return -1;
            for (int k = 0; k < comp->parallelism; k++) {
                int task = comp->first_task + k;
                if (rt->task_worker[task] == rt->worker_index) tg->local_tasks[tg->nlocal++] = task;
            }
        }
    }
    /* who subscribes to what, for wire_check: sorted lists, sized by the
     * inputs (a [streams x components] table grows with components^2) */
    for (int s = 0; s < t->nstreams; s++) {
        stream_routes *sr = &rt->routes[s];
        if (sr->ntargets == 0) continue;
        if (!(sr->sub_comps = malloc((size_t)sr->ntargets * sizeof *sr->sub_comps))) return -1;
        for (int i = 0; i < sr->ntargets; i++) sr->sub_comps[i] = sr->targets[i].comp->index;
        qsort(sr->sub_comps, (size_t)sr->ntargets, sizeof *sr->sub_comps, cmp_int);
    }
    /* an emit reaches at most every task of every subscriber of its stream */
    for (int s = 0; s < t->nstreams; s++) {
        int fan = 1;
        for (int i = 0; i < rt->routes[s].ntargets; i++) fan += rt->routes[s].targets[i].ntasks;
        if (fan > rt->max_fanout) rt->max_fanout = fan;
    }
    return 0;
}

void routes_free(worker_rt *rt) {
    free(rt->stream_kind);
    rt->stream_kind = NULL;
    free(rt->task_comp);
    rt->task_comp = NULL;
    if (!rt->routes) return;
    for (int s = 0; s < rt->topo->nstreams; s++) {
        for (int i = 0; i < rt->routes[s].ntargets; i++) free(rt->routes[s].targets[i].local_tasks);
        free(rt->routes[s].targets);
        free(rt->routes[s].sub_comps);
    }
    free(rt->routes);
    rt->routes = NULL;
}

static uint64_t next_random(executor *ex) {
    /* xorshift64*: per-executor, no locking */
    uint64_t x = ex->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    ex->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t fields_hash(const route_target *tg, const sd_value *values, size_t n, uint64_t seed) {
    uint64_t h = seed;
    for (int f = 0; f < tg->input->nfields; f++) {
        int idx = tg->input->field_index[f];
        if (idx >= 0 && (size_t)idx < n) h = value_hash(&values[idx], h);
    }
    return h;
}

/* ---- partial-key load estimates ----------------------------------------------------- */

/* What one producer has sent to one partial-key target: a counter per task
 * of the target, or per task index modulo PK_LOAD_SLOTS for a wider one, so
 * a producer's memory stays bounded whatever the topology's size (tasks
 * that share a counter share their estimate: the two choices still spread
 * the load). Made on first use: most executors never need one. */
typedef struct pk_load {
    const route_target *tg;
    int nslots;
    uint32_t sent[];
} pk_load;

static pk_load *pk_load_of(executor *ex, const route_target *tg) {
    for (int i = 0; i < ex->npk_loads; i++)
        if (ex->pk_loads[i]->tg == tg) return ex->pk_loads[i];
    int nslots = tg->ntasks < PK_LOAD_SLOTS ? tg->ntasks : PK_LOAD_SLOTS;
    pk_load **grown = realloc(ex->pk_loads, (size_t)(ex->npk_loads + 1) * sizeof *grown);
    if (!grown) return NULL;
    ex->pk_loads = grown;
    pk_load *l = calloc(1, sizeof *l + (size_t)nslots * sizeof l->sent[0]);
    if (!l) return NULL; /* then the first choice, as a plain fields grouping */
    l->tg = tg;
    l->nslots = nslots;
    ex->pk_loads[ex->npk_loads++] = l;
    return l;
}

size_t grouping_state_bytes(const executor *ex) {
    size_t n = (size_t)ex->npk_loads * sizeof *ex->pk_loads;
    for (int i = 0; i < ex->npk_loads; i++)
        n += sizeof *ex->pk_loads[i] + (size_t)ex->pk_loads[i]->nslots * sizeof ex->pk_loads[i]->sent[0];
    return n;
}

void grouping_free_state(executor *ex) {
    for (int i = 0; i < ex->npk_loads; i++) free(ex->pk_loads[i]);
    free(ex->pk_loads);
    ex->pk_loads = NULL;
    ex->npk_loads = 0;
}

int grouping_choose(executor *ex, const route_target *tg, const sd_value *values, size_t n, int *out) {
    int first = tg->comp->first_task;
    switch (tg->input->grouping) {
    case GROUP_ALL:
        for (int k = 0; k < tg->ntasks; k++) out[k] = first + k;
        return tg->ntasks;
    case GROUP_GLOBAL:
        out[0] = first;
        return 1;
    case GROUP_FIELDS:
        out[0] = first + (int)(fields_hash(tg, values, n, 0x5eed) % (uint64_t)tg->ntasks);
        return 1;
    case GROUP_PARTIAL_KEY: {
        /* two candidates per key; send to the one this producer has loaded less */
        int a = (int)(fields_hash(tg, values, n, 0x5eed) % (uint64_t)tg->ntasks);
        int b = (int)(fields_hash(tg, values, n, 0xfeed) % (uint64_t)tg->ntasks);
        pk_load *load = pk_load_of(ex, tg);
        if (load) {
            uint32_t *ca = &load->sent[a % load->nslots], *cb = &load->sent[b % load->nslots];
            /* two tasks sharing one counter take turns */
            if (*cb < *ca || (ca == cb && (*ca & 1))) {
                a = b;
                ca = cb;
            }
            (*ca)++;
        }
        out[0] = first + a;
        return 1;
    }
    case GROUP_LOCAL_OR_SHUFFLE:
        if (tg->nlocal > 0) {
            /* a local task chained to this producer (runner.c, local_pair)
             * takes all of its tuples: still a task of this worker */
            if (ex->rt && ex->rt->nchained) { /* a bare executor (unit tests) has no runtime */
                for (int k = 0; k < tg->nlocal; k++) {
                    const executor *to = ex->rt->task_exec[tg->local_tasks[k]];
                    if (to && to->chain_prev == ex) {
                        out[0] = tg->local_tasks[k];
                        return 1;
                    }
                }
            }
            out[0] = tg->local_tasks[grouping_pick(ex->rr++, (uint32_t)tg->nlocal)];
            return 1;
        }
        /* nothing local: plain shuffle */
        __attribute__((fallthrough));
    case GROUP_SHUFFLE:
        out[0] = first + (int)grouping_pick(ex->rr++, (uint32_t)tg->ntasks);
        return 1;
    case GROUP_NONE:
        out[0] = first + (int)(next_random(ex) % (uint64_t)tg->ntasks);
        return 1;
    case GROUP_FORWARD:
        /* equal parallelism (checked at load): the task of the same index */
        out[0] = first + (ex->task_index < tg->ntasks ? ex->task_index : ex->task_index % tg->ntasks);
        return 1;
    case GROUP_DIRECT:
        return 0; /* only emit_direct reaches a direct subscriber */
    }
    return 0;
}

uint64_t executor_random(executor *ex) {
    uint64_t r;
    do r = next_random(ex);
    while (r == 0 || r == UINT64_MAX); /* 0 and ~0 are reserved map keys */
    return r;
}
