/*
 * scheduler: worker placement (see scheduler.h for the rules).
 * Nodes are put in id order (their rank: the deterministic tie-break) with
 * their ports sorted; a hash map finds a node by id, a binary search a port,
 * and a binary heap keyed by (load, rank) yields the least loaded node with
 * a free slot. Topologies are walked twice in (submit time, id) order: first
 * every current worker that may stay claims its slot, so that no new worker
 * takes it; then the missing workers are placed in rounds ("levels"): in
 * level L a node gets one more worker only if it runs at most L of the
 * topology's workers, which spreads a topology over as many nodes as it can.
 */
#include "master/scheduler.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SCHED_MAX_TASKS (1 << 20) /* per topology; larger is refused */

typedef struct snode {
    const char *id;
    int in;        /* index in the caller's array */
    int off, n;    /* ports: port_buf[off .. off+n) ascending */
    int used;      /* slots taken */
    int cursor;    /* every slot below it is taken */
    int stamp;     /* the topology tcount belongs to (+1; 0 = none) */
    int tcount;    /* workers of that topology on this node */
} snode;

typedef struct kept {
    int index; /* position in the worker list */
    int node;  /* rank */
    int slot;  /* index into port_buf */
} kept;

typedef struct sched {
    const sched_node *in_nodes;
    const sched_topology *topos;
    snode *nodes; /* by rank */
    int nnodes;
    int *port_buf;
    unsigned char *taken; /* parallel to port_buf */
    int *map;             /* open addressing: rank + 1, 0 = empty */
    size_t map_cap;
    int *heap; /* ranks */
    int heap_len;
} sched;

/* ---- nodes: order, ports, lookup ----------------------------------------------- */

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int cmp_node_in(const void *a, const void *b, void *arg) {
    const sched_node *nodes = arg;
    int x = *(const int *)a, y = *(const int *)b;
    int c = strcmp(nodes[x].id, nodes[y].id);
    return c ? c : (x > y) - (x < y);
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int map_find(const sched *s, const char *id) {
    if (!id || s->map_cap == 0) return -1;
    for (size_t i = hash_str(id) & (s->map_cap - 1);; i = (i + 1) & (s->map_cap - 1)) {
        int v = s->map[i];
        if (v == 0) return -1;
        if (strcmp(s->nodes[v - 1].id, id) == 0) return v - 1;
    }
}

static void map_add(sched *s, int rank) {
    size_t i = hash_str(s->nodes[rank].id) & (s->map_cap - 1);
    while (s->map[i]) i = (i + 1) & (s->map_cap - 1);
    s->map[i] = rank + 1;
}

/* Builds the node table: unique ids in id order, valid ports sorted. */
static int build_nodes(sched *s, const sched_node *nodes, int nnodes, int *slots_total) {
    *slots_total = 0;
    if (nnodes <= 0) return 0;
    int *order = malloc((size_t)nnodes * sizeof *order);
    s->nodes = calloc((size_t)nnodes, sizeof *s->nodes);
    size_t nports = 0;
    for (int i = 0; i < nnodes; i++) nports += nodes[i].nslots > 0 ? (size_t)nodes[i].nslots : 0;
    s->port_buf = malloc((nports ? nports : 1) * sizeof *s->port_buf);
    s->taken = calloc(nports ? nports : 1, 1);
    s->map_cap = 16;
    while (s->map_cap < (size_t)nnodes * 2) s->map_cap *= 2;
    s->map = calloc(s->map_cap, sizeof *s->map);
    s->heap = malloc((size_t)nnodes * sizeof *s->heap);
    if (!order || !s->nodes || !s->port_buf || !s->taken || !s->map || !s->heap) {
        free(order);
        return -ENOMEM;
    }
    for (int i = 0; i < nnodes; i++) order[i] = i;
    qsort_r(order, (size_t)nnodes, sizeof *order, cmp_node_in, (void *)nodes);
    int off = 0;
    for (int k = 0; k < nnodes; k++) {
        const sched_node *in = &nodes[order[k]];
        if (!in->id || (s->nnodes > 0 && strcmp(s->nodes[s->nnodes - 1].id, in->id) == 0)) continue;
        snode *n = &s->nodes[s->nnodes];
        n->id = in->id;
        n->in = order[k];
        n->off = off;
        for (int j = 0; j < in->nslots; j++)
            if (in->slots[j] > 0 && in->slots[j] <= 65535) s->port_buf[off + n->n++] = in->slots[j];
        qsort(s->port_buf + off, (size_t)n->n, sizeof *s->port_buf, cmp_int);
        int u = 0; /* drop repeats */
        for (int j = 0; j < n->n; j++)
            if (u == 0 || s->port_buf[off + j] != s->port_buf[off + u - 1]) s->port_buf[off + u++] = s->port_buf[off + j];
        n->n = u;
        off += u;
        *slots_total += u;
        map_add(s, s->nnodes);
        s->nnodes++;
    }
    free(order);
    return 0;
}

/* index into port_buf of port on node rank, or -1 */
static int find_slot(const sched *s, int rank, int port) {
    const snode *n = &s->nodes[rank];
    int lo = 0, hi = n->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, p = s->port_buf[n->off + mid];
        if (p == port) return n->off + mid;
        if (p < port) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* ---- the heap of nodes with free slots ----------------------------------------------- */

/* a before b: lower load (used/n), then lower rank */
static bool before(const sched *s, int a, int b) {
    const snode *x = &s->nodes[a], *y = &s->nodes[b];
    int64_t l = (int64_t)x->used * y->n, r = (int64_t)y->used * x->n;
    return l != r ? l < r : a < b;
}

static void heap_push(sched *s, int rank) {
    int i = s->heap_len++;
    s->heap[i] = rank;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!before(s, s->heap[i], s->heap[p])) break;
        int t = s->heap[i];
        s->heap[i] = s->heap[p];
        s->heap[p] = t;
        i = p;
    }
}

static int heap_pop(sched *s) {
    int top = s->heap[0];
    s->heap[0] = s->heap[--s->heap_len];
    for (int i = 0;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->heap_len && before(s, s->heap[l], s->heap[m])) m = l;
        if (r < s->heap_len && before(s, s->heap[r], s->heap[m])) m = r;
        if (m == i) break;
        int t = s->heap[i];
        s->heap[i] = s->heap[m];
        s->heap[m] = t;
        i = m;
    }
    return top;
}

/* ---- placement -------------------------------------------------------------------- */

static int cmp_topo(const void *a, const void *b, void *arg) {
    const sched_topology *t = arg;
    int x = *(const int *)a, y = *(const int *)b;
    if (t[x].submit_time != t[y].submit_time) return t[x].submit_time < t[y].submit_time ? -1 : 1;
    int c = strcmp(t[x].id ? t[x].id : "", t[y].id ? t[y].id : "");
    return c ? c : (x > y) - (x < y);
}

static void take(sched *s, int rank, int slot) {
    s->taken[slot] = 1;
    s->nodes[rank].used++;
}

static void count_on(sched *s, int rank, int stamp) {
    snode *n = &s->nodes[rank];
    if (n->stamp != stamp) {
        n->stamp = stamp;
        n->tcount = 0;
    }
    n->tcount++;
}

static int tcount(const sched *s, int rank, int stamp) {
    return s->nodes[rank].stamp == stamp ? s->nodes[rank].tcount : 0;
}

/* the lowest free slot of node rank (it has one) */
static int free_slot(sched *s, int rank) {
    snode *n = &s->nodes[rank];
    while (s->taken[n->off + n->cursor]) n->cursor++;
    return n->off + n->cursor;
}

/* Places the empty entries of pos (node -1) for the topology stamped stamp.
 * done and aside are scratch arrays of nnodes ranks. */
static void place(sched *s, kept *pos, int npos, int stamp, int *done, int *aside) {
    int next = 0; /* the first position that may be empty */
    int missing = 0;
    for (int i = 0; i < npos; i++) missing += pos[i].node < 0;
    for (int level = 0; missing > 0; level++) {
        int ndone = 0, naside = 0;
        while (missing > 0 && s->heap_len > 0) {
            int r = heap_pop(s);
            if (tcount(s, r, stamp) > level) {
                aside[naside++] = r;
                continue;
            }
            while (pos[next].node >= 0) next++;
            int slot = free_slot(s, r);
            take(s, r, slot);
            count_on(s, r, stamp);
            pos[next].node = r;
            pos[next].slot = slot;
            missing--;
            done[ndone++] = r;
        }
        for (int i = 0; i < ndone; i++)
            if (s->nodes[done[i]].used < s->nodes[done[i]].n) heap_push(s, done[i]);
        for (int i = 0; i < naside; i++) heap_push(s, aside[i]);
        if (ndone == 0 && naside == 0) break; /* no free slot anywhere */
    }
}

static void sched_free_work(sched *s) {
    free(s->nodes);
    free(s->port_buf);
    free(s->taken);
    free(s->map);
    free(s->heap);
}

int sched_run(const sched_node *nodes, int nnodes, const sched_topology *topos, int ntopos, sched_result *out) {
    memset(out, 0, sizeof *out);
    if (nnodes < 0 || ntopos < 0 || (nnodes > 0 && !nodes) || (ntopos > 0 && !topos)) return -EINVAL;
    size_t ntasks_all = 0;
    for (int i = 0; i < ntopos; i++) {
        if (topos[i].ntasks < 0 || topos[i].ntasks > SCHED_MAX_TASKS) return -EINVAL;
        ntasks_all += (size_t)topos[i].ntasks;
    }
    sched s = {.in_nodes = nodes, .topos = topos};
    int slots_total = 0, rc = build_nodes(&s, nodes, nnodes, &slots_total);
    int *order = malloc(((size_t)ntopos + 1) * sizeof *order);
    int *kept_off = malloc(((size_t)ntopos + 1) * sizeof *kept_off);
    kept *kbuf = malloc(((size_t)slots_total + 1) * sizeof *kbuf);
    kept *pos = malloc(((size_t)slots_total + 1) * sizeof *pos);
    int *scratch = malloc(((size_t)s.nnodes * 2 + 1) * sizeof *scratch);
    out->topologies = calloc((size_t)ntopos + 1, sizeof *out->topologies);
    out->worker_buf = malloc(((size_t)slots_total + 1) * sizeof *out->worker_buf);
    out->task_buf = malloc((ntasks_all + 1) * sizeof *out->task_buf);
    if (rc == 0 && (!order || !kept_off || !kbuf || !pos || !scratch || !out->topologies || !out->worker_buf ||
                    !out->task_buf))
        rc = -ENOMEM;
    if (rc != 0) goto done;
    out->ntopologies = ntopos;
    out->slots_total = slots_total;
    for (int i = 0; i < ntopos; i++) order[i] = i;
    qsort_r(order, (size_t)ntopos, sizeof *order, cmp_topo, (void *)topos);

    /* 1: current workers that may stay claim their slots */
    int nkept = 0;
    for (int k = 0; k < ntopos; k++) {
        const sched_topology *t = &topos[order[k]];
        kept_off[k] = nkept;
        int want = t->nworkers < slots_total ? t->nworkers : slots_total;
        int ncur = t->ncurrent < want ? t->ncurrent : want;
        for (int i = 0; i < ncur && t->current; i++) {
            int r = map_find(&s, t->current[i].node);
            int slot = r >= 0 ? find_slot(&s, r, t->current[i].port) : -1;
            if (slot < 0 || s.taken[slot]) continue;
            take(&s, r, slot);
            kbuf[nkept++] = (kept){.index = i, .node = r, .slot = slot};
        }
    }
    kept_off[ntopos] = nkept;
    for (int r = 0; r < s.nnodes; r++)
        if (s.nodes[r].used < s.nodes[r].n) heap_push(&s, r);

    /* 2: the missing workers, oldest topology first */
    int nout = 0;
    size_t ntask_out = 0;
    for (int k = 0; k < ntopos; k++) {
        const sched_topology *t = &topos[order[k]];
        int want = t->nworkers < slots_total ? t->nworkers : slots_total;
        if (want < 0) want = 0;
        for (int i = 0; i < want; i++) pos[i].node = -1;
        int stamp = k + 1;
        for (int j = kept_off[k]; j < kept_off[k + 1]; j++) {
            pos[kbuf[j].index] = kbuf[j];
            count_on(&s, kbuf[j].node, stamp);
        }
        if (!t->keep_only) place(&s, pos, want, stamp, scratch, scratch + s.nnodes);
        sched_assignment *a = &out->topologies[order[k]];
        a->workers = out->worker_buf + nout;
        for (int i = 0; i < want; i++) {
            if (pos[i].node < 0) continue;
            a->workers[a->nworkers++] =
                (sched_worker){.node = s.nodes[pos[i].node].in, .port = s.port_buf[pos[i].slot]};
        }
        nout += a->nworkers;
        for (int i = 0; i < a->nworkers; i++) {
            sched_worker *w = &a->workers[i];
            w->tasks = out->task_buf + ntask_out;
            for (int task = i + 1; task <= t->ntasks; task += a->nworkers) out->task_buf[ntask_out + w->ntasks++] = task;
            ntask_out += (size_t)w->ntasks;
        }
    }
    out->slots_used = nout;
done:
    free(order);
    free(kept_off);
    free(kbuf);
    free(pos);
    free(scratch);
    sched_free_work(&s);
    if (rc != 0) sched_result_free(out);
    return rc;
}

void sched_result_free(sched_result *r) {
    if (!r) return;
    free(r->topologies);
    free(r->worker_buf);
    free(r->task_buf);
    memset(r, 0, sizeof *r);
}
