/*
 * api_routes: request dispatch (see routes.h). A path is split into segments,
 * matched against the table of endpoints (404 when none matches, 405 for
 * a known path with another method), then a standby redirects what only
 * the leader answers. Store reads made for an answer ("lookups") are kept
 * in a list so that a stopping master can answer them.
 */
#include "master/api/routes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "master/api/views.h"
#include "master/election.h"
#include "master/lifecycle.h"
#include "master/mstate.h"
#include "master/records.h"
#include "master/reports.h"

#define MAX_SEGS 5

typedef enum { L_CLUSTER, L_MASTERS, L_TOPOLOGY } lookup_kind;

/* Prefixes a lookup lists, in order. */
enum { P_MASTERS, P_NODES, P_TOPOLOGIES, P_ASSIGNMENTS, P_WORKERS, P_N };

typedef struct lookup {
    api_routes *r;
    api_request *req;
    lookup_kind kind;
    int step;           /* the prefix being listed */
    bool in_flight;     /* a list request is out */
    char name[REC_MAX_ID + 1];
    json_t *maps[P_N];  /* what was listed */
    struct lookup *prev, *next;
} lookup;

struct api_routes {
    master_ctx *m;
    lookup *lookups;
};

api_routes *api_routes_new(master_ctx *m) {
    api_routes *r = calloc(1, sizeof *r);
    if (r) r->m = m;
    return r;
}

/* ---- lookups: answers that need a store read ------------------------------------------ */

static void lookup_free(lookup *k) {
    api_routes *r = k->r;
    if (k->in_flight) store_cancel(r->m->st, k);
    if (k->prev) k->prev->next = k->next;
    else r->lookups = k->next;
    if (k->next) k->next->prev = k->prev;
    for (int i = 0; i < P_N; i++) json_decref(k->maps[i]);
    free(k);
}

static void answer(lookup *k, int status, json_t *body) {
    if (body) api_respond_json(k->req, status, body);
    else api_respond_error(k->req, 500, "out of memory");
    lookup_free(k);
}

/* the leader answers from its state; a standby has listed it all */
static bool from_state(const master_ctx *m) { return m->leading && mstate_synced(m->state); }

static void list_next(lookup *k);

static void finish(lookup *k) {
    master_ctx *m = k->r->m;
    const json_t *leader = election_leader(m->el);
    if (k->kind == L_MASTERS) {
        answer(k, 200, view_masters(k->maps[P_MASTERS], leader));
    } else if (k->kind == L_CLUSTER) {
        bool own = from_state(m);
        json_t *nodes = own ? mstate_map(m->state, MSTATE_NODES) : k->maps[P_NODES];
        json_t *topos = own ? mstate_map(m->state, MSTATE_TOPOLOGIES) : k->maps[P_TOPOLOGIES];
        json_t *assigns = own ? mstate_map(m->state, MSTATE_ASSIGNMENTS) : k->maps[P_ASSIGNMENTS];
        answer(k, 200, view_cluster(m->cluster, leader, k->maps[P_MASTERS], nodes, topos, assigns));
    } else {
        if (!from_state(m)) {
            api_respond_error(k->req, 503, "this master stopped leading; retry");
            lookup_free(k);
            return;
        }
        json_t *topo = json_object_get(mstate_map(m->state, MSTATE_TOPOLOGIES), k->name);
        if (!topo) {
            api_respond_error(k->req, 404, "no topology '%s'", k->name);
            lookup_free(k);
            return;
        }
        json_t *assign = json_object_get(mstate_map(m->state, MSTATE_ASSIGNMENTS), rec_str(topo, "id"));
        int stale = 3 * (int)conf_int(m->conf, "node.report.interval.secs");
        answer(k, 200, view_topology(topo, assign, k->maps[P_WORKERS], m->reports, (int64_t)time(NULL), stale));
    }
}

/* one listed key into the lookup's map for prefix p */
static void take_kv(lookup *k, int p, const char *name, const store_kv *kv) {
    char err[200];
    json_t *rec = NULL;
    switch (p) {
    case P_NODES: rec = rec_node(name, kv->value, kv->value_len, err, sizeof err); break;
    case P_TOPOLOGIES: rec = rec_topology(name, kv->value, kv->value_len, err, sizeof err); break;
    case P_ASSIGNMENTS: rec = rec_assignment(name, kv->value, kv->value_len, err, sizeof err); break;
    case P_MASTERS: {
        json_t *v = json_loadb(kv->value, kv->value_len, 0, NULL);
        if (json_is_object(v) && json_is_string(json_object_get(v, "id"))) rec = v;
        else json_decref(v);
        break;
    }
    default: { /* workers/<tid>/<node>:<port> -> its state */
        json_t *v = json_loadb(kv->value, kv->value_len, 0, NULL);
        const char *state = json_string_value(json_object_get(v, "state"));
        if (state && strlen(state) <= 32) rec = json_string(state);
        json_decref(v);
    }
    }
    if (rec) json_object_set_new(k->maps[p], name, rec);
}

static void on_listed(void *arg, const store_result *res) {
    lookup *k = arg;
    k->in_flight = false;
    if (res->err) {
        log_warn("API: reading the store failed: %s", sd_strerror(res->err));
        api_respond_error(k->req, 503, "the store did not answer: %s", sd_strerror(res->err));
        lookup_free(k);
        return;
    }
    json_t *map = json_object();
    if (!map) {
        answer(k, 500, NULL);
        return;
    }
    k->maps[k->step] = map;
    char prefix[512];
    size_t n = 0;
    if (store_key(prefix, sizeof prefix, k->r->m->cluster, "%s", "") == 0) n = strlen(prefix);
    for (size_t i = 0; i < res->nkvs; i++) {
        const char *name = strrchr(res->kvs[i].key + n, '/'); /* the last part */
        if (name && name[1]) take_kv(k, k->step, name + 1, &res->kvs[i]);
    }
    list_next(k);
}

/* Lists the lookup's next prefix, or answers when none is left. */
static void list_next(lookup *k) {
    master_ctx *m = k->r->m;
    int next = -1;
    if (!k->maps[P_MASTERS] && k->kind != L_TOPOLOGY) next = P_MASTERS;
    else if (k->kind == L_CLUSTER && !from_state(m))
        next = !k->maps[P_NODES] ? P_NODES : !k->maps[P_TOPOLOGIES] ? P_TOPOLOGIES : !k->maps[P_ASSIGNMENTS] ? P_ASSIGNMENTS : -1;
    else if (k->kind == L_TOPOLOGY && !k->maps[P_WORKERS]) next = P_WORKERS;
    if (next < 0) {
        finish(k);
        return;
    }
    static const char *const prefixes[P_N] = {"masters/", "nodes/", "topologies/", "assignments/", "workers/"};
    char key[512];
    int rc = 0;
    if (next == P_WORKERS) {
        json_t *topo = json_object_get(mstate_map(m->state, MSTATE_TOPOLOGIES), k->name);
        rc = topo ? store_key(key, sizeof key, m->cluster, "workers/%s/", rec_str(topo, "id")) : -ENOENT;
    } else {
        rc = store_key(key, sizeof key, m->cluster, "%s", prefixes[next]);
    }
    k->step = next;
    if (rc == -ENOENT) {
        api_respond_error(k->req, 404, "no topology '%s'", k->name);
        lookup_free(k);
        return;
    }
    if (rc == 0) rc = store_list(m->st, key, on_listed, k);
    k->in_flight = rc == 0;
    if (rc != 0) {
        api_respond_error(k->req, 503, "the store did not answer: %s", sd_strerror(rc));
        lookup_free(k);
    }
}

static void start_lookup(api_routes *r, api_request *req, lookup_kind kind, const char *name) {
    lookup *k = calloc(1, sizeof *k);
    if (!k) {
        api_respond_error(req, 500, "out of memory");
        return;
    }
    *k = (lookup){.r = r, .req = req, .kind = kind, .next = r->lookups};
    if (name) snprintf(k->name, sizeof k->name, "%s", name);
    if (r->lookups) r->lookups->prev = k;
    r->lookups = k;
    list_next(k);
}

/* ---- leader-only endpoints -------------------------------------------------------------- */

static void get_nodes(api_routes *r, api_request *req) {
    mstate *st = r->m->state;
    json_t *body = view_nodes(mstate_map(st, MSTATE_NODES), mstate_map(st, MSTATE_ASSIGNMENTS), r->m->reports);
    if (body) api_respond_json(req, 200, body);
    else api_respond_error(req, 500, "out of memory");
}

static void get_topologies(api_routes *r, api_request *req) {
    mstate *st = r->m->state;
    json_t *body = view_topologies(mstate_map(st, MSTATE_TOPOLOGIES), mstate_map(st, MSTATE_ASSIGNMENTS));
    if (body) api_respond_json(req, 200, body);
    else api_respond_error(req, 500, "out of memory");
}

static void post_report(api_routes *r, api_request *req, const char *node) {
    size_t len = 0;
    const void *body = api_body(req, &len);
    char err[300];
    int rc = body ? reports_put(r->m->reports, r->m->state, node, body, len, (int64_t)time(NULL), err, sizeof err)
                  : -EINVAL;
    if (!body) snprintf(err, sizeof err, "empty body");
    if (rc >= 0) api_respond_json(req, 200, json_pack("{s:s, s:i}", "node", node, "workers", rc));
    else if (rc == -ENOENT) api_respond_error(req, 404, "%s", err);
    else if (rc == -EINVAL) api_respond_error(req, 400, "%s", err);
    else api_respond_error(req, 500, "%s", sd_strerror(rc));
}

/* ?wait=SECS: 0..LIFE_KILL_WAIT_MAX, LIFE_KILL_WAIT_DEFAULT when absent; -1 when bad */
static int kill_wait(api_request *req) {
    const char *w = api_query(req, "wait");
    if (!w) return LIFE_KILL_WAIT_DEFAULT;
    if (!*w || strlen(w) > 6 || strspn(w, "0123456789") != strlen(w)) return -1;
    int v = atoi(w);
    return v <= LIFE_KILL_WAIT_MAX ? v : -1;
}

/* ---- dispatch ---------------------------------------------------------------------------- */

typedef enum {
    R_CLUSTER, R_MASTERS, R_NODES, R_REPORT, R_TOPOLOGIES, R_TOPOLOGY, R_ACTIVATE, R_DEACTIVATE, R_KILL, R_LOGLEVEL, R_NONE
} route;

/* The route of segs, and the methods it takes ("GET", "POST", or both). */
static route match(char **segs, int n, const char **methods) {
    *methods = "POST";
    if (n == 1 && strcmp(segs[0], "cluster") == 0) return *methods = "GET", R_CLUSTER;
    if (n == 1 && strcmp(segs[0], "masters") == 0) return *methods = "GET", R_MASTERS;
    if (n == 1 && strcmp(segs[0], "nodes") == 0) return *methods = "GET", R_NODES;
    if (n == 3 && strcmp(segs[0], "nodes") == 0 && strcmp(segs[2], "report") == 0 && rec_valid_name(segs[1]))
        return R_REPORT;
    if (n == 1 && strcmp(segs[0], "topologies") == 0) return *methods = "GET POST", R_TOPOLOGIES;
    if (n < 2 || n > 3 || strcmp(segs[0], "topologies") != 0 || !rec_valid_name(segs[1])) return R_NONE;
    if (n == 2) return *methods = "GET", R_TOPOLOGY;
    if (strcmp(segs[2], "activate") == 0) return R_ACTIVATE;
    if (strcmp(segs[2], "deactivate") == 0) return R_DEACTIVATE;
    if (strcmp(segs[2], "kill") == 0) return R_KILL;
    if (strcmp(segs[2], "loglevel") == 0) return R_LOGLEVEL;
    return R_NONE;
}

static bool method_ok(const char *methods, const char *method) {
    size_t n = strlen(method);
    for (const char *p = methods; (p = strstr(p, method)); p += n)
        if ((p == methods || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) return true;
    return false;
}

void api_routes_handle(void *arg, api_request *req) {
    api_routes *r = arg;
    master_ctx *m = r->m;
    char buf[1024], *segs[MAX_SEGS + 1];
    int n = api_split_path(api_path(req), buf, sizeof buf, segs, MAX_SEGS + 1);
    const char *methods = "";
    route rt = n >= 1 && n <= MAX_SEGS ? match(segs, n, &methods) : R_NONE;
    const char *method = api_method(req);
    if (rt == R_NONE) {
        api_respond_error(req, 404, "no such endpoint: %s %s", method, api_path(req));
        return;
    }
    if (!method_ok(methods, method)) {
        api_respond_error(req, 405, "%s takes %s", api_path(req), methods);
        return;
    }
    if (m->stopping) {
        api_respond_error(req, 503, "the master is stopping");
        return;
    }
    if (rt == R_CLUSTER || rt == R_MASTERS) {
        start_lookup(r, req, rt == R_CLUSTER ? L_CLUSTER : L_MASTERS, NULL);
        return;
    }
    if (!m->leading) {
        const char *api = election_leader_api(m->el);
        if (api && strcmp(api, m->api_url) != 0) api_redirect(req, api);
        else api_respond_error(req, 503, "no leader is known; retry shortly");
        return;
    }
    if (!mstate_synced(m->state)) {
        api_respond_error(req, 503, "the leader is reading the cluster's state; retry shortly");
        return;
    }
    switch (rt) {
    case R_NODES: get_nodes(r, req); break;
    case R_REPORT: post_report(r, req, segs[1]); break;
    case R_TOPOLOGIES:
        if (strcmp(method, "GET") == 0) get_topologies(r, req);
        else life_submit(m->life, req);
        break;
    case R_TOPOLOGY: start_lookup(r, req, L_TOPOLOGY, segs[1]); break;
    case R_ACTIVATE: life_set_status(m->life, req, segs[1], true); break;
    case R_DEACTIVATE: life_set_status(m->life, req, segs[1], false); break;
    case R_KILL: {
        int wait = kill_wait(req);
        if (wait < 0) api_respond_error(req, 400, "wait: expected seconds 0..%d", LIFE_KILL_WAIT_MAX);
        else life_kill(m->life, req, segs[1], wait);
        break;
    }
    case R_LOGLEVEL: {
        /* ?level=debug|info|warn|error, or default (back to the topology's log.level) */
        const char *level = api_query(req, "level");
        sd_log_level lv;
        if (!level || (strcmp(level, "default") != 0 && log_parse_level(level, &lv) != 0))
            api_respond_error(req, 400, "level: expected debug, info, warn, error or default");
        else life_set_log_level(m->life, req, segs[1], strcmp(level, "default") == 0 ? NULL : level);
        break;
    }
    default: api_respond_error(req, 404, "no such endpoint"); break;
    }
}

void api_routes_abort(api_routes *r) {
    while (r->lookups) {
        lookup *k = r->lookups;
        api_respond_error(k->req, 503, "the master is stopping");
        lookup_free(k);
    }
}

void api_routes_free(api_routes *r) {
    if (!r) return;
    while (r->lookups) lookup_free(r->lookups);
    free(r);
}
