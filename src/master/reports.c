/*
 * reports: node reports in memory (see reports.h). One JSON object:
 * node id -> {"time", "workers": {"<topology-id>:<port>": kept report}}.
 * A kept report holds sums per component, not per task, so what the leader
 * keeps and what a topology's view reads grow with components, not tasks.
 */
#include "master/reports.h"
#include "base/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "master/records.h"
#include "proto/task_columns.h"

#define COUNTER_MAX (INT64_MAX / 4) /* sums of many stay representable */

struct reports {
    json_t *nodes;
};

static const char *const worker_states[] = {"starting", "running", "restarting", "failed", "stopping", NULL};

reports *reports_new(void) {
    reports *r = calloc(1, sizeof *r);
    if (r && !(r->nodes = json_object())) {
        free(r);
        r = NULL;
    }
    return r;
}

void reports_free(reports *r) {
    if (!r) return;
    json_decref(r->nodes);
    free(r);
}

void reports_clear(reports *r) { json_object_clear(r->nodes); }

static bool one_of(const char *s, const char *const *set) {
    for (; s && *set; set++)
        if (strcmp(s, *set) == 0) return true;
    return false;
}

/* The assignment's entry for worker node:port, or NULL. */
static json_t *assigned_here(const json_t *a, const char *node, long long port) {
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(a, "workers"), i, w) {
        if (rec_int(w, "port") == port && strcmp(rec_str(w, "node"), node) == 0) return w;
    }
    return NULL;
}

/* Is task in the worker's tasks (ascending, as the leader writes them)? */
static bool runs_task(const json_t *w, long long task) {
    json_t *tasks = json_object_get(w, "tasks");
    size_t lo = 0, hi = json_array_size(tasks);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        long long t = json_integer_value(json_array_get(tasks, mid));
        if (t == task) return true;
        if (t < task) lo = mid + 1;
        else hi = mid;
    }
    return false;
}

static int64_t sat_add(int64_t a, int64_t b) { return a > INT64_MAX - b ? INT64_MAX : a + b; }

/* The entry of comps (the topology record's components, ascending task
 * ranges) that runs task, or NULL. */
static const json_t *task_component(const json_t *comps, long long task) {
    size_t lo = 0, hi = json_array_size(comps);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const json_t *c = json_array_get(comps, mid);
        long long first = rec_int(c, "first_task");
        if (task < first) hi = mid;
        else if (task >= first + rec_int(c, "parallelism")) lo = mid + 1;
        else return c;
    }
    return NULL;
}

typedef struct sum_arg {
    const json_t *mine;  /* the worker's assignment entry */
    const json_t *comps; /* the topology's components */
    json_t *out;         /* component id -> {"emitted", "acked", "failed", "chained_into"?, "chained_tasks"?} */
} sum_arg;

static int set_int(json_t *o, const char *key, int64_t v) { return json_object_set_new(o, key, json_integer(v)); }

/* Adds one task's counters into its component's sums. */
static int sum_task(void *arg, int task, const int64_t *v) {
    sum_arg *a = arg;
    /* counters of a task this worker does not run (an older assignment) would count twice */
    const json_t *c = runs_task(a->mine, task) ? task_component(a->comps, task) : NULL;
    const char *id = c ? rec_str(c, "id") : NULL;
    if (!id) return 0;
    if (v[TCOL_EMITTED] > COUNTER_MAX || v[TCOL_ACKED] > COUNTER_MAX || v[TCOL_FAILED] > COUNTER_MAX) return -ERANGE;
    json_t *sums = json_object_get(a->out, id);
    if (!sums) {
        sums = json_pack("{s:I, s:I, s:I}", "emitted", (json_int_t)0, "acked", (json_int_t)0, "failed", (json_int_t)0);
        if (!sums || json_object_set_new(a->out, id, sums) != 0) return -ENOMEM;
    }
    static const tcol_col cols[3] = {TCOL_EMITTED, TCOL_ACKED, TCOL_FAILED};
    for (int k = 0; k < 3; k++) {
        const char *key = tcol_names[cols[k]];
        if (set_int(sums, key, sat_add(rec_int(sums, key), v[cols[k]])) != 0) return -ENOMEM;
    }
    /* the task that runs this one inline (topology.chaining) */
    const json_t *up = v[TCOL_CHAINED_TO] ? task_component(a->comps, v[TCOL_CHAINED_TO]) : NULL;
    if (up && (json_object_set(sums, "chained_into", json_object_get(up, "id")) != 0 ||
               set_int(sums, "chained_tasks", rec_int(sums, "chained_tasks") + 1) != 0))
        return -ENOMEM;
    return 0;
}

#define REPORT_MAX_ERRORS 10
#define REPORT_MAX_TEXT 600

/* Copies a worker's restarts, last_exit and errors (its latest error lines)
 * into rec once they are of the right shape and size; -EINVAL if not. */
static int keep_crash_info(const json_t *w, json_t *rec) {
    json_t *restarts = json_object_get(w, "restarts"), *last = json_object_get(w, "last_exit"),
           *errors = json_object_get(w, "errors");
    if (restarts && (!json_is_integer(restarts) || json_integer_value(restarts) < 0)) return -EINVAL;
    if (last && !json_is_string(last)) last = NULL; /* older nodes: not shown */
    if (last && json_string_length(last) > REPORT_MAX_TEXT) return -EINVAL;
    if (errors && (!json_is_array(errors) || json_array_size(errors) > REPORT_MAX_ERRORS)) return -EINVAL;
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e) {
        if (!json_is_string(e) || json_string_length(e) > REPORT_MAX_TEXT) return -EINVAL;
    }
    if (restarts) json_object_set(rec, "restarts", restarts);
    if (last && json_string_length(last) > 0) json_object_set(rec, "last_exit", last);
    if (errors) json_object_set_new(rec, "errors", json_deep_copy(errors));
    return 0;
}

/* Checks worker entry w; the kept copy goes into kept["tid:port"] when the
 * assignments place it on node. */
static int check_worker(mstate *st, const char *node, const json_t *w, size_t idx, json_t *kept, int64_t now,
                        char *err, size_t errlen) {
    const char *tid = rec_str(w, "topology_id"), *state = rec_str(w, "state");
    json_t *port = json_object_get(w, "port"), *hb = json_object_get(w, "heartbeat");
    if (!tid || strlen(tid) > REC_MAX_ID || !json_is_integer(port) || json_integer_value(port) < 1 ||
        json_integer_value(port) > 65535)
        return sd_err_msg(err, errlen, -EINVAL, "workers[%zu]: bad \"topology_id\" or \"port\"", idx);
    if (state && !one_of(state, worker_states))
        return sd_err_msg(err, errlen, -EINVAL, "workers[%zu]: bad \"state\"", idx);
    /* a worker not heard from yet comes without a heartbeat */
    json_t *cols = json_object_get(hb, "task_columns");
    if (hb && !json_is_null(hb) && (!json_is_object(hb) || !json_is_object(cols)))
        return sd_err_msg(err, errlen, -EINVAL, "workers[%zu]: \"heartbeat\" has no \"task_columns\" object", idx);
    json_t *topo = mstate_topology_by_id(st, tid);
    json_t *a = json_object_get(mstate_map(st, MSTATE_ASSIGNMENTS), tid);
    json_t *mine = topo && a ? assigned_here(a, node, json_integer_value(port)) : NULL;
    if (!mine) return 0; /* not ours to keep */
    long long ntasks = rec_int(topo, "ntasks");
    if ((long long)tcol_size(cols) > ntasks)
        return sd_err_msg(err, errlen, -EINVAL, "workers[%zu]: too many tasks", idx);
    json_t *out = json_object();
    if (!out) return -ENOMEM;
    sum_arg sa = {mine, json_object_get(topo, "components"), out};
    char terr[200];
    int rc = cols ? tcol_each(cols, ntasks > INT32_MAX ? INT32_MAX : (int)ntasks, sum_task, &sa, terr, sizeof terr) : 0;
    if (rc != 0) {
        json_decref(out);
        if (rc == -ENOMEM) return rc;
        return sd_err_msg(err, errlen, -EINVAL, "workers[%zu]: %s", idx,
                          rc == -ERANGE ? "a counter is out of range" : terr);
    }
    json_t *rec = json_pack("{s:I, s:o}", "time", (json_int_t)now, "components", out);
    if (rec && state) json_object_set_new(rec, "state", json_string(state));
    if (rec && keep_crash_info(w, rec) != 0) {
        json_decref(rec);
        return sd_err_msg(err, errlen, -EINVAL, "workers[%zu]: bad \"restarts\", \"last_exit\" or \"errors\"", idx);
    }
    char key[REC_MAX_ID + 16];
    snprintf(key, sizeof key, "%s:%lld", tid, (long long)json_integer_value(port));
    if (!rec || json_object_set_new(kept, key, rec) != 0) return -ENOMEM;
    return 1;
}

/* Forgets nodes that are gone (their lease ended), once there are more
 * reporting nodes than live ones. */
static void prune(reports *r, mstate *st) {
    json_t *live = mstate_map(st, MSTATE_NODES);
    if (json_object_size(r->nodes) <= json_object_size(live)) return;
    const char *node;
    json_t *v, *tmp;
    json_object_foreach_safe(r->nodes, tmp, node, v) {
        if (!json_object_get(live, node)) json_object_del(r->nodes, node);
    }
}

int reports_put(reports *r, mstate *st, const char *node, const void *body, size_t len, int64_t now, char *err,
                size_t errlen) {
    if (!json_object_get(mstate_map(st, MSTATE_NODES), node)) {
        snprintf(err, errlen, "unknown node '%s'", node);
        return -ENOENT;
    }
    json_error_t je;
    json_t *v = json_loadb(body, len, 0, &je);
    if (!v) return sd_err_msg(err, errlen, -EINVAL, "bad JSON: %s", je.text);
    const char *vnode = rec_str(v, "node");
    json_t *workers = json_object_get(v, "workers");
    int rc = 0;
    if (!vnode || strcmp(vnode, node) != 0) rc = sd_err_msg(err, errlen, -EINVAL, "\"node\" is not the path's node");
    else if (!json_is_array(workers) || json_array_size(workers) > REC_MAX_SLOTS)
        rc = sd_err_msg(err, errlen, -EINVAL, "\"workers\" is not an array of at most %d entries", REC_MAX_SLOTS);
    json_t *kept = rc == 0 ? json_object() : NULL;
    if (rc == 0 && !kept) rc = -ENOMEM;
    size_t i;
    json_t *w;
    int nkept = 0;
    if (rc == 0) {
        json_array_foreach(workers, i, w) {
            rc = check_worker(st, node, w, i, kept, now, err, errlen);
            if (rc < 0) break;
            nkept += rc;
            rc = 0;
        }
    }
    json_decref(v);
    if (rc == 0) {
        prune(r, st);
        json_t *rec = json_pack("{s:I, s:o}", "time", (json_int_t)now, "workers", kept);
        if (!rec || json_object_set_new(r->nodes, node, rec) != 0) return -ENOMEM;
        return nkept;
    }
    json_decref(kept);
    return rc;
}

const json_t *reports_worker(const reports *r, const char *node, const char *tid, int port) {
    char key[REC_MAX_ID + 16];
    snprintf(key, sizeof key, "%s:%d", tid, port);
    return json_object_get(json_object_get(json_object_get(r->nodes, node), "workers"), key);
}

int64_t reports_node_time(const reports *r, const char *node) {
    return rec_int(json_object_get(r->nodes, node), "time");
}
