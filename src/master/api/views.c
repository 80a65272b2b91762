/* views: JSON bodies of the API's GET answers (see views.h). */
#include "master/api/views.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "master/records.h"

/* ---- common ------------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* The keys of map in order (malloc'ed array; caller frees), NULL on OOM. */
static const char **sorted_keys(json_t *map, size_t *n) {
    *n = json_object_size(map);
    const char **keys = malloc((*n + 1) * sizeof *keys);
    if (!keys) return NULL;
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(map, k, v) keys[i++] = k;
    qsort(keys, *n, sizeof *keys, cmp_str);
    return keys;
}

static int64_t sat_add(int64_t a, int64_t b) { return a > INT64_MAX - b ? INT64_MAX : a + b; }

/* Appends to array, freeing item on failure; false on failure. */
static bool push(json_t *array, json_t *item) { return item && json_array_append_new(array, item) == 0; }

static const char *leader_id(const json_t *leader) { return leader ? rec_str(leader, "id") : NULL; }

/* ---- cluster, masters --------------------------------------------------------------- */

json_t *view_cluster(const char *cluster, const json_t *leader, json_t *masters, json_t *nodes, json_t *topos,
                     json_t *assigns) {
    long long slots_total = 0, slots_used = 0;
    const char *k;
    json_t *v;
    json_object_foreach(nodes, k, v) slots_total += (long long)json_array_size(json_object_get(v, "slots"));
    json_object_foreach(assigns, k, v) slots_used += (long long)json_array_size(json_object_get(v, "workers"));
    return json_pack("{s:s, s:O?, s:I, s:I, s:I, s:I, s:I}", "cluster", cluster, "leader", leader, "masters",
                     (json_int_t)json_object_size(masters), "nodes", (json_int_t)json_object_size(nodes),
                     "topologies", (json_int_t)json_object_size(topos), "slots_total", (json_int_t)slots_total,
                     "slots_used", (json_int_t)slots_used);
}

json_t *view_masters(json_t *masters, const json_t *leader) {
    size_t n;
    const char **ids = sorted_keys(masters, &n);
    json_t *list = json_array();
    bool ok = ids && list;
    const char *lid = leader_id(leader);
    for (size_t i = 0; ok && i < n; i++) {
        json_t *m = json_object_get(masters, ids[i]);
        ok = push(list, json_pack("{s:s, s:O?, s:O?, s:O?, s:O?, s:b}", "id", ids[i], "host",
                                  json_object_get(m, "host"), "api", json_object_get(m, "api"), "started",
                                  json_object_get(m, "started"), "version", json_object_get(m, "version"), "leader",
                                  lid && strcmp(lid, ids[i]) == 0));
    }
    free(ids);
    if (!ok) {
        json_decref(list);
        return NULL;
    }
    return json_pack("{s:o}", "masters", list);
}

/* ---- nodes ----------------------------------------------------------------------- */

json_t *view_nodes(json_t *nodes, json_t *assigns, const reports *r) {
    json_t *by_node = json_object(); /* node id -> [worker...] */
    const char *tid;
    json_t *a;
    bool ok = by_node != NULL;
    json_object_foreach(assigns, tid, a) {
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(a, "workers"), i, w) {
            const char *node = rec_str(w, "node");
            json_t *list = json_object_get(by_node, node);
            if (ok && !list && json_object_set_new(by_node, node, list = json_array()) != 0) ok = false;
            if (ok)
                ok = push(list, json_pack("{s:s, s:O?, s:O, s:O}", "topology_id", tid, "topology_name",
                                          json_object_get(a, "topology_name"), "port", json_object_get(w, "port"),
                                          "tasks", json_object_get(w, "tasks")));
        }
    }
    size_t n;
    const char **ids = sorted_keys(nodes, &n);
    json_t *list = json_array();
    ok = ok && ids && list;
    for (size_t i = 0; ok && i < n; i++) {
        json_t *e = json_copy(json_object_get(nodes, ids[i]));
        json_t *ws = json_object_get(by_node, ids[i]);
        ok = e && json_object_set_new(e, "workers", ws ? json_incref(ws) : json_array()) == 0 &&
             json_object_set_new(e, "last_report", json_integer(r ? reports_node_time(r, ids[i]) : 0)) == 0;
        ok = ok ? push(list, e) : (json_decref(e), false);
    }
    free(ids);
    json_decref(by_node);
    if (!ok) {
        json_decref(list);
        return NULL;
    }
    return json_pack("{s:o}", "nodes", list);
}

/* ---- topologies ---------------------------------------------------------------------- */

json_t *view_topologies(json_t *topos, json_t *assigns) {
    size_t n;
    const char **names = sorted_keys(topos, &n);
    json_t *list = json_array();
    bool ok = names && list;
    for (size_t i = 0; ok && i < n; i++) {
        json_t *t = json_object_get(topos, names[i]);
        json_t *a = json_object_get(assigns, rec_str(t, "id"));
        ok = push(list, json_pack("{s:s, s:O, s:O, s:O, s:I, s:O}", "name", names[i], "id", json_object_get(t, "id"),
                                  "status", json_object_get(t, "status"), "workers", json_object_get(t, "workers"),
                                  "workers_assigned", (json_int_t)json_array_size(json_object_get(a, "workers")),
                                  "submit_time", json_object_get(t, "submit_time")));
    }
    free(names);
    if (!ok) {
        json_decref(list);
        return NULL;
    }
    return json_pack("{s:o}", "topologies", list);
}

static const char *worker_state(const json_t *w, json_t *states, const json_t *rep, int64_t now, int stale_secs) {
    char key[REC_MAX_ID + 16];
    snprintf(key, sizeof key, "%s:%lld", rec_str(w, "node"), rec_int(w, "port"));
    const char *s = json_string_value(json_object_get(states, key));
    if (s) return s;
    if (rep && now - rec_int(rep, "time") <= stale_secs) return rec_str(rep, "state") ? rec_str(rep, "state") : "running";
    return "unknown";
}

/* Adds the counters of one worker's report (sums per component) into
 * sums[3 * component]; index: component id -> its position. Tasks run
 * chained into another's (topology.chaining) count in chains: component
 * id -> {"into", "tasks"}. */
static void add_report(const json_t *rep, json_t *index, json_t *chains, int64_t *sums) {
    const char *id;
    json_t *cs;
    json_object_foreach(json_object_get(rep, "components"), id, cs) {
        json_t *pos = json_object_get(index, id);
        if (!pos) continue; /* a component the topology does not have */
        const char *into = rec_str(cs, "chained_into");
        if (into) {
            json_t *ch = json_object_get(chains, id);
            if (!ch) {
                ch = json_pack("{s:s, s:I}", "into", into, "tasks", (json_int_t)0);
                if (!ch || json_object_set_new(chains, id, ch) != 0) ch = NULL;
            }
            if (ch) json_object_set_new(ch, "tasks", json_integer(rec_int(ch, "tasks") + rec_int(cs, "chained_tasks")));
        }
        size_t c = (size_t)json_integer_value(pos);
        sums[3 * c] = sat_add(sums[3 * c], rec_int(cs, "emitted"));
        sums[3 * c + 1] = sat_add(sums[3 * c + 1], rec_int(cs, "acked"));
        sums[3 * c + 2] = sat_add(sums[3 * c + 2], rec_int(cs, "failed"));
    }
}

json_t *view_topology(const json_t *topo, const json_t *assign, json_t *states, const reports *r, int64_t now,
                      int stale_secs) {
    json_t *comps = json_object_get(topo, "components");
    size_t ncomps = json_array_size(comps);
    int64_t *sums = calloc(3 * ncomps + 1, sizeof *sums);
    json_t *workers = json_array(), *out_comps = json_array(), *index = json_object(), *chains = json_object();
    bool ok = sums && workers && out_comps && index && chains;
    size_t i;
    json_t *w, *c;
    json_array_foreach(comps, i, c) {
        if (ok) ok = json_object_set_new(index, rec_str(c, "id"), json_integer((json_int_t)i)) == 0;
    }
    json_array_foreach(json_object_get(assign, "workers"), i, w) {
        if (!ok) break;
        const json_t *rep = r ? reports_worker(r, rec_str(w, "node"), rec_str(topo, "id"), (int)rec_int(w, "port")) : NULL;
        if (rep) add_report(rep, index, chains, sums);
        json_t *wv = json_pack("{s:O, s:O, s:O, s:O, s:s}", "node", json_object_get(w, "node"), "host",
                               json_object_get(w, "host"), "port", json_object_get(w, "port"), "tasks",
                               json_object_get(w, "tasks"), "state", worker_state(w, states, rep, now, stale_secs));
        /* why a worker crashes: from its node's latest report */
        static const char *const crash_keys[] = {"restarts", "last_exit", "errors"};
        for (size_t k = 0; wv && rep && k < 3; k++)
            if (json_object_get(rep, crash_keys[k])) json_object_set(wv, crash_keys[k], json_object_get(rep, crash_keys[k]));
        ok = push(workers, wv);
    }
    json_array_foreach(comps, i, c) {
        if (!ok) break;
        json_t *tasks = json_array();
        long long first = rec_int(c, "first_task"), par = rec_int(c, "parallelism");
        for (long long t = first; tasks && t < first + par; t++) json_array_append_new(tasks, json_integer(t));
        json_t *cv = tasks ? json_pack("{s:O, s:O, s:O, s:o, s:I, s:I, s:I}", "id", json_object_get(c, "id"), "kind",
                                       json_object_get(c, "kind"), "parallelism", json_object_get(c, "parallelism"),
                                       "tasks", tasks, "emitted", (json_int_t)sums[3 * i], "acked",
                                       (json_int_t)sums[3 * i + 1], "failed", (json_int_t)sums[3 * i + 2])
                           : NULL;
        json_t *ch = json_object_get(chains, rec_str(c, "id"));
        if (cv && ch) {
            json_object_set(cv, "chained_into", json_object_get(ch, "into"));
            json_object_set(cv, "chained_tasks", json_object_get(ch, "tasks"));
        }
        ok = push(out_comps, cv);
    }
    free(sums);
    json_decref(index);
    json_decref(chains);
    json_t *out = ok ? json_pack("{s:O, s:O, s:O, s:O, s:O, s:b, s:o, s:o}", "name", json_object_get(topo, "name"),
                                 "id", json_object_get(topo, "id"), "status", json_object_get(topo, "status"),
                                 "package", json_object_get(topo, "package"), "submit_time",
                                 json_object_get(topo, "submit_time"), "active",
                                 json_is_true(json_object_get(assign, "active")), "workers", workers, "components",
                                 out_comps)
                     : NULL;
    if (!out) {
        if (!ok) {
            json_decref(workers);
            json_decref(out_comps);
        }
        return NULL;
    }
    json_t *kd = json_object_get(topo, "kill_deadline");
    if (kd) json_object_set(out, "kill_deadline", kd);
    return out;
}
