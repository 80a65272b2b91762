/* reconcile: from the leader's view to assignment writes (see reconcile.h). */
#include "master/reconcile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "master/gwrite.h"
#include "master/mstate.h"
#include "master/records.h"
#include "master/scheduler.h"
#include "package/package.h"

typedef struct rwrite {
    char tid[REC_MAX_ID + 1];
    json_t *rec; /* the value written; NULL for a delete */
} rwrite;

json_t *recon_assignment(const json_t *topo, json_t *workers, long long version) {
    json_t *a = json_pack("{s:s, s:s, s:s, s:s, s:O, s:{}, s:b, s:o, s:I}", "topology_id", rec_str(topo, "id"),
                     "topology_name", rec_str(topo, "name"), "package", rec_str(topo, "package"), "topology_path",
                     PACKAGE_TOPOLOGY_NAME, "conf", json_object_get(topo, "conf"), "overrides", "active",
                     strcmp(rec_str(topo, "status"), "active") == 0, "workers", workers, "version",
                     (json_int_t)version);
    /* streamd loglevel: nodes pass it to the running workers */
    json_t *level = json_object_get(topo, "log_level");
    if (a && json_is_string(level)) json_object_set(a, "log_level", level);
    /* the topology's secret goes to the nodes, which hand it to their workers */
    json_t *secret = json_object_get(topo, "secret");
    if (a && json_is_string(secret)) json_object_set(a, "secret", secret);
    return a;
}

/* equal but for "version" */
static bool same_assignment(json_t *a, json_t *b) {
    const char *k;
    json_t *v;
    size_t na = 0, nb = 0;
    json_object_foreach(a, k, v) {
        if (strcmp(k, "version") == 0) continue;
        na++;
        if (!json_equal(v, json_object_get(b, k))) return false;
    }
    json_object_foreach(b, k, v) nb += strcmp(k, "version") != 0;
    return na == nb;
}

static void on_written(master_ctx *m, void *arg, int err, const store_result *r) {
    rwrite *w = arg;
    json_object_del(m->pending_assign, w->tid);
    if (err == 0) {
        mstate_apply(m->state, MSTATE_ASSIGNMENTS, w->tid, w->rec, r->revision);
        w->rec = NULL;
    } else if (err != -EPERM && err != -ECANCELED) {
        /* refused (the guard no longer holds) or unknown outcome: read back */
        log_warn("assignment %s: write %s: %s", w->tid, err == -ESTALE ? "refused" : "failed",
                 err == -ESTALE ? "leadership changed" : sd_strerror(err));
        mstate_resync(m->state);
    }
    json_decref(w->rec);
    free(w);
}

/* put (rec) or delete (NULL) assignments/<tid>, guarded; takes rec */
static int write_assignment(master_ctx *m, const char *tid, json_t *rec) {
    char key[512];
    rwrite *w = calloc(1, sizeof *w);
    char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    int rc = (!w || (rec && !text)) ? -ENOMEM : store_key(key, sizeof key, m->cluster, "assignments/%s", tid);
    if (rc == 0) {
        snprintf(w->tid, sizeof w->tid, "%s", tid);
        w->rec = rec;
        store_op op = {.type = rec ? STORE_OP_PUT : STORE_OP_DEL, .key = key, .value = text};
        rc = gwrite_txn(m, NULL, 0, &op, 1, on_written, w);
    }
    free(text);
    if (rc != 0) {
        json_decref(rec);
        free(w);
        return rc;
    }
    json_object_set_new(m->pending_assign, tid, json_true());
    return 0;
}

/* the workers array for assignment a of the scheduler's result */
static json_t *workers_json(const sched_assignment *a, json_t *const *node_recs) {
    json_t *ws = json_array();
    for (int i = 0; ws && i < a->nworkers; i++) {
        const sched_worker *w = &a->workers[i];
        json_t *tasks = json_array();
        for (int k = 0; tasks && k < w->ntasks; k++) json_array_append_new(tasks, json_integer(w->tasks[k]));
        json_t *e = tasks ? json_pack("{s:s, s:s, s:i, s:o}", "node", rec_str(node_recs[w->node], "id"), "host",
                                      rec_str(node_recs[w->node], "host"), "port", w->port, "tasks", tasks)
                          : NULL;
        if (!e || json_array_append_new(ws, e) != 0) {
            json_decref(ws);
            return NULL;
        }
    }
    return ws;
}

typedef struct input {
    sched_node *nodes;
    json_t **node_recs;
    int *slots;
    int nnodes;
    sched_topology *topos;
    json_t **topo_recs;
    sched_place *places;
    int ntopos;
} input;

static void input_free(input *in) {
    free(in->nodes);
    free(in->node_recs);
    free(in->slots);
    free(in->topos);
    free(in->topo_recs);
    free(in->places);
}

static int build_input(master_ctx *m, input *in) {
    json_t *nodes = mstate_map(m->state, MSTATE_NODES), *topos = mstate_map(m->state, MSTATE_TOPOLOGIES),
           *assigns = mstate_map(m->state, MSTATE_ASSIGNMENTS);
    size_t nn = json_object_size(nodes), nt = json_object_size(topos), nslots = 0, nplaces = 0;
    const char *k;
    json_t *v;
    json_object_foreach(nodes, k, v) nslots += json_array_size(json_object_get(v, "slots"));
    json_object_foreach(assigns, k, v) nplaces += json_array_size(json_object_get(v, "workers"));
    in->nodes = calloc(nn + 1, sizeof *in->nodes);
    in->node_recs = calloc(nn + 1, sizeof *in->node_recs);
    in->slots = calloc(nslots + 1, sizeof *in->slots);
    in->topos = calloc(nt + 1, sizeof *in->topos);
    in->topo_recs = calloc(nt + 1, sizeof *in->topo_recs);
    in->places = calloc(nplaces + 1, sizeof *in->places);
    if (!in->nodes || !in->node_recs || !in->slots || !in->topos || !in->topo_recs || !in->places) return -ENOMEM;
    size_t off = 0;
    json_object_foreach(nodes, k, v) {
        sched_node *n = &in->nodes[in->nnodes];
        json_t *slots = json_object_get(v, "slots"), *p;
        size_t i;
        n->id = rec_str(v, "id");
        n->slots = in->slots + off;
        json_array_foreach(slots, i, p) in->slots[off + (size_t)n->nslots++] = (int)json_integer_value(p);
        off += (size_t)n->nslots;
        in->node_recs[in->nnodes++] = v;
    }
    off = 0;
    json_object_foreach(topos, k, v) {
        const char *tid = rec_str(v, "id");
        json_t *a = json_object_get(assigns, tid);
        bool killing = strcmp(rec_str(v, "status"), "killing") == 0;
        if (killing && !a) continue; /* nothing runs and nothing is to start */
        sched_topology *t = &in->topos[in->ntopos];
        *t = (sched_topology){.id = tid, .submit_time = rec_int(v, "submit_time"),
                              .nworkers = (int)rec_int(v, "workers"), .ntasks = (int)rec_int(v, "ntasks"),
                              .keep_only = killing, .current = in->places + off};
        json_t *w;
        size_t i;
        json_array_foreach(json_object_get(a, "workers"), i, w) {
            in->places[off + (size_t)t->ncurrent++] =
                (sched_place){.node = rec_str(w, "node"), .port = (int)rec_int(w, "port")};
        }
        off += (size_t)t->ncurrent;
        in->topo_recs[in->ntopos++] = v;
    }
    return 0;
}

int recon_run(master_ctx *m) {
    if (!m->leading || m->stopping || !m->state || !mstate_synced(m->state)) return 0;
    input in = {0};
    sched_result res;
    int rc = build_input(m, &in);
    if (rc == 0) rc = sched_run(in.nodes, in.nnodes, in.topos, in.ntopos, &res);
    if (rc != 0) {
        log_error("scheduling failed: %s", sd_strerror(rc));
        input_free(&in);
        return rc;
    }
    json_t *assigns = mstate_map(m->state, MSTATE_ASSIGNMENTS);
    /* assignments first collected, then written: a write changes the maps */
    json_t *due = json_object();
    for (int i = 0; due && i < in.ntopos; i++) {
        const char *tid = in.topos[i].id;
        json_t *stored = json_object_get(assigns, tid);
        if (json_object_get(m->pending_assign, tid)) continue; /* looked at again when it lands */
        json_t *ws = workers_json(&res.topologies[i], in.node_recs);
        json_t *want = ws ? recon_assignment(in.topo_recs[i], ws, rec_int(stored, "version") + 1) : NULL;
        if (!want) {
            rc = -ENOMEM;
            break;
        }
        if (stored && same_assignment(want, stored)) json_decref(want);
        else json_object_set_new(due, tid, want);
    }
    const char *tid;
    json_t *a;
    json_object_foreach(assigns, tid, a) {
        if (due && !mstate_topology_by_id(m->state, tid) && !json_object_get(m->pending_assign, tid))
            json_object_set_new(due, tid, json_null());
    }
    int writes = 0;
    json_object_foreach(due, tid, a) {
        if (json_is_null(a)) {
            log_info("assignment %s: its topology is gone; deleting it", tid);
        } else {
            json_t *ws = json_object_get(a, "workers");
            json_t *want_workers = json_object_get(mstate_topology_by_id(m->state, tid), "workers");
            log_info("assignment %s: %zu of %lld worker(s), %s (version %lld)", tid, json_array_size(ws),
                     (long long)json_integer_value(want_workers),
                     json_is_true(json_object_get(a, "active")) ? "active" : "inactive", rec_int(a, "version"));
        }
        int wr = write_assignment(m, tid, json_is_null(a) ? NULL : json_incref(a));
        if (wr == 0) writes++;
        else if (wr != -EPERM) log_warn("assignment %s: cannot write: %s", tid, sd_strerror(wr));
    }
    if (!due) rc = -ENOMEM;
    json_decref(due);
    sched_result_free(&res);
    input_free(&in);
    if (rc != 0) log_error("scheduling failed: %s", sd_strerror(rc));
    return rc != 0 ? rc : writes;
}
