/*
 * node: the supervisor; see node.h. This file: registration under a lease,
 * the assignments/ watch and what it starts and stops, status keys, and the
 * public API. One worker process's lifecycle is node_worker.c.
 * Threads: only the caller's loop thread. It owns the node and the list of
 * supervised workers (node_internal.h).
 *
 * Store traffic: the node keeps one lease alive (lease_keeper), writes
 * nodes/<id> when it (re)registers and a worker's status key only when that
 * worker's state changes; heartbeats stay in memory (node_on_heartbeat).
 */
#include "node/node.h"

#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include "base/log.h"
#include "node/node_internal.h"
#include "topology/topology.h"
#include "transport/transport.h"

/* The node stops its workers this long before its lease could expire. */
#define NODE_LEASE_MARGIN_MS 2000

/* ---- helpers ------------------------------------------------------------------ */

int node_parse_ports(const char *text, int *ports, int max) {
    int n = 0;
    const char *p = text ? text : "";
    while (*p) {
        if (strchr(" ,[]\t", *p)) {
            p++;
            continue;
        }
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v <= 0 || v > 65535 || !strchr(" ,[]\t", *end)) return -1;
        if (n < max) ports[n++] = (int)v;
        p = end;
    }
    return n;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int put_json(node *n, const char *key, json_t *v, int64_t lease) {
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!text) return -ENOMEM;
    int rc = store_put(n->st, key, text, lease, NULL, NULL);
    free(text);
    return rc;
}

static void check_done(node *n);

/* ---- worker status ------------------------------------------------------------ */

static void write_status(nworker *w) {
    node *n = w->n;
    if (!n->lease || !w->shown_state) return; /* written again once registered */
    json_t *st = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:s, s:i, s:s, s:I}", "topology_id", w->topology_id, "node",
                           n->id, "host", n->host, "port", w->port, "worker_index", w->index, "pid", w->pid, "state",
                           w->shown_state, "restarts", w->restarts, "last_exit", w->last_exit, "since",
                           (json_int_t)(wall_ms() / 1000));
    if (st && w->errors) json_object_set(st, "errors", w->errors);
    int rc = put_json(n, w->status_key, st, n->lease);
    if (rc != 0) log_warn("cannot write %s: %s", w->status_key, sd_strerror(rc));
}

void node_worker_state(nworker *w, const char *s) {
    if (w->shown_state && strcmp(w->shown_state, s) == 0) return;
    w->shown_state = s;
    write_status(w);
}

void node_worker_heartbeat(nworker *w, json_t *hb) {
    /* which process said it: counters restart from zero with a new one */
    json_object_set_new(hb, "pid", json_integer(w->pid));
    json_object_set_new(hb, "worker_index", json_integer(w->index));
    json_decref(w->last_hb);
    w->last_hb = json_incref(hb);
    if (w->n->hb_cb) w->n->hb_cb(w->n->hb_arg, w->topology_id, w->port, w->index, hb);
}

static void worker_freed(uv_handle_t *h) {
    nworker *w = h->data;
    node *n = w->n;
    json_decref(w->msg);
    json_decref(w->next_msg);
    json_decref(w->last_hb);
    json_decref(w->errors);
    free(w->topology_id);
    free(w);
    if (--n->open_handles == 0) free(n);
}

void node_worker_gone(nworker *w) {
    node *n = w->n;
    w->state = W_GONE;
    uv_timer_stop(&w->timer);
    if (n->lease) store_del(n->st, w->status_key, false, NULL, NULL);
    for (nworker **pp = &n->workers; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    n->open_handles++; /* the worker's timer keeps the node's memory alive */
    uv_close((uv_handle_t *)&w->timer, worker_freed);
    check_done(n);
}

/* ---- assignments ------------------------------------------------------------------ */

static nworker *find_worker(node *n, const char *tid, int port) {
    for (nworker *w = n->workers; w; w = w->next)
        if (w->port == port && strcmp(w->topology_id, tid) == 0) return w;
    return NULL;
}

static json_t *assignment_message(node *n, json_t *a, int index) {
    json_t *workers = json_array();
    json_t *in = json_object_get(a, "workers");
    size_t i;
    json_t *e;
    json_array_foreach(in, i, e) {
        json_array_append_new(workers, json_pack("{s:O?, s:O?, s:O?}", "host", json_object_get(e, "host"), "port",
                                                 json_object_get(e, "port"), "tasks", json_object_get(e, "tasks")));
    }
    json_t *msg = json_pack("{s:s, s:s, s:O?, s:O?, s:O?, s:O?, s:i, s:o}", "type", "assignment", "cluster",
                            n->cluster, "topology_id", json_object_get(a, "topology_id"), "topology_name",
                            json_object_get(a, "topology_name"), "topology_path", json_object_get(a, "topology_path"),
                            "conf", json_object_get(a, "conf"), "worker_index", index, "workers", workers);
    /* -c keys, for a worker that reloads the topology file (they win over its config:) */
    json_t *ov = json_object_get(a, "overrides");
    if (msg && ov) json_object_set(msg, "overrides", ov);
    /* spouts start inactive when the topology is deactivated */
    json_t *active = json_object_get(a, "active");
    if (msg && json_is_boolean(active)) json_object_set(msg, "active", active);
    /* a log level set at run time (streamd loglevel), over the conf's */
    sd_log_level lv;
    json_t *level = json_object_get(a, "log_level");
    if (msg && json_is_string(level) && log_parse_level(json_string_value(level), &lv) == 0)
        json_object_set(msg, "log_level", level);
    /* the topology's secret (workers authenticate each other with it) and
     * package hash (peers must run the same contents) */
    json_t *secret = json_object_get(a, "secret"), *package = json_object_get(a, "package");
    if (msg && json_is_string(secret)) json_object_set(msg, "secret", secret);
    if (msg && json_is_string(package)) json_object_set(msg, "package", package);
    return msg;
}

/* A running worker whose assignment differs only in the active flag or the
 * log level is told, not restarted. */
static bool only_active_differs(json_t *have, json_t *want) {
    json_t *a = json_copy(have), *b = json_copy(want);
    bool same = false;
    if (a && b) {
        json_object_del(a, "active");
        json_object_del(b, "active");
        json_object_del(a, "log_level");
        json_object_del(b, "log_level");
        same = json_equal(a, b);
    }
    json_decref(a);
    json_decref(b);
    return same;
}

static void set_active(nworker *w, json_t *msg) {
    bool on = !json_is_false(json_object_get(msg, "active"));
    if (on != !json_is_false(json_object_get(w->msg, "active"))) {
        json_t *ctl = json_pack("{s:s}", "type", on ? "activate" : "deactivate");
        if (ctl) node_worker_send(w, ctl);
        json_decref(ctl);
        log_info("topology %s %s on port %d", w->topology_id, on ? "activated" : "deactivated", w->port);
    }
    json_t *level = json_object_get(msg, "log_level");
    if (!json_equal(level, json_object_get(w->msg, "log_level"))) {
        /* no log_level: back to the topology's log.level */
        const char *lv = json_string_value(level);
        if (!lv) lv = json_string_value(json_object_get(json_object_get(msg, "conf"), "log.level"));
        json_t *ctl = json_pack("{s:s, s:s}", "type", "loglevel", "level", lv ? lv : "info");
        if (ctl) node_worker_send(w, ctl);
        json_decref(ctl);
        log_info("topology %s port %d: log level %s", w->topology_id, w->port, lv ? lv : "info");
    }
    json_decref(w->msg);
    w->msg = json_incref(msg);
}

/* Starts, changes or stops this node's workers of one assignment (the key's
 * value, untrusted: it is checked before use). */
/* A worker's cgroup settings: the topology's topology.worker.* keys, raised
 * by the limits: of the components it holds tasks of (the largest wins;
 * a limit of 0 means none, which is the largest). topo may be NULL. */
static void worker_limits(const topology *topo, const conf *tc, json_t *tasks, cg_limits *l) {
    cg_limits base = {conf_int(tc, "topology.worker.cpu.weight"), conf_double(tc, "topology.worker.cpu.cores"),
                      conf_int(tc, "topology.worker.memory.mb")};
    if (base.cpu_cores < 0) base.cpu_cores = 0;
    if (base.memory_mb < 0) base.memory_mb = 0;
    *l = base;
    if (!topo || !json_is_array(tasks)) return;
    bool first = true, unlimited_cpu = false, unlimited_mem = false;
    size_t i;
    json_t *t;
    json_array_foreach(tasks, i, t) {
        const topo_component *c = json_is_integer(t) ? topology_task_component(topo, (int)json_integer_value(t)) : NULL;
        if (!c) continue;
        cg_limits x = base;
        if (c->limits.has_weight) x.cpu_weight = c->limits.cpu_weight;
        if (c->limits.has_cores) x.cpu_cores = c->limits.cpu_cores;
        if (c->limits.has_memory) x.memory_mb = c->limits.memory_mb;
        if (first || x.cpu_weight > l->cpu_weight) l->cpu_weight = x.cpu_weight;
        if (first || x.cpu_cores > l->cpu_cores) l->cpu_cores = x.cpu_cores;
        if (first || x.memory_mb > l->memory_mb) l->memory_mb = x.memory_mb;
        unlimited_cpu |= x.cpu_cores == 0;
        unlimited_mem |= x.memory_mb == 0;
        first = false;
    }
    if (unlimited_cpu) l->cpu_cores = 0;
    if (unlimited_mem) l->memory_mb = 0;
}

static void apply_assignment(node *n, const char *value) {
    json_error_t jerr;
    json_t *a = json_loads(value, 0, &jerr);
    const char *tid = json_string_value(json_object_get(a, "topology_id"));
    json_t *workers = json_object_get(a, "workers");
    conf *tc = a ? conf_from_json(json_object_get(a, "conf")) : NULL;
    if (!tid || !*tid || strchr(tid, '/') || strstr(tid, "..") || !json_is_array(workers) || !tc) {
        log_error("ignoring a malformed assignment: %s", a ? "bad topology_id, workers or conf" : jerr.text);
        json_decref(a);
        if (tc) conf_free(tc);
        return;
    }
    if (n->prepare) {
        int rc = n->prepare(n->prepare_arg, a);
        if (rc != 0) { /* -EAGAIN: the package is on its way; node_refresh follows */
            if (rc != -EAGAIN) log_error("assignment %s: cannot prepare it: %s", tid, sd_strerror(rc));
            conf_free(tc);
            json_decref(a);
            return;
        }
    }
    /* the components' limits: (no user code is loaded for this) */
    const char *path = json_string_value(json_object_get(a, "topology_path"));
    char terr[512];
    topology *topo = path ? topology_load_opts(path, NULL, NULL, TOPO_NO_LIBRARY, terr, sizeof terr) : NULL;
    if (path && !topo) log_warn("assignment %s: %s; its components' limits are not applied", tid, terr);
    /* workers of this topology here that the assignment no longer lists */
    for (nworker *w = n->workers, *next; w; w = next) {
        next = w->next;
        if (strcmp(w->topology_id, tid) != 0) continue;
        bool listed = false;
        size_t i;
        json_t *e;
        json_array_foreach(workers, i, e) {
            const char *nd = json_string_value(json_object_get(e, "node"));
            if (nd && strcmp(nd, n->id) == 0 && json_integer_value(json_object_get(e, "port")) == w->port) listed = true;
        }
        if (!listed) node_worker_stop(w);
    }
    size_t i;
    json_t *e;
    json_array_foreach(workers, i, e) {
        const char *nd = json_string_value(json_object_get(e, "node"));
        json_int_t port = json_integer_value(json_object_get(e, "port"));
        if (!nd || strcmp(nd, n->id) != 0) continue;
        json_t *msg = assignment_message(n, a, (int)i);
        if (!msg || port <= 0 || port > 65535) {
            log_error("assignment %s: bad worker entry %zu", tid, i);
            json_decref(msg);
            continue;
        }
        nworker *w = find_worker(n, tid, (int)port);
        if (!w) {
            cg_limits lim;
            worker_limits(topo, tc, json_object_get(e, "tasks"), &lim);
            if ((w = node_worker_new(n, tid, (int)port, (int)i, msg, tc, &lim))) node_worker_spawn(w);
        } else if (w->state == W_RUNNING && !w->next_msg && !json_equal(w->msg, msg) &&
                   only_active_differs(w->msg, msg)) {
            set_active(w, msg);
        } else if (w->state == W_STOPPING || !json_equal(w->next_msg ? w->next_msg : w->msg, msg)) {
            /* compared with what the worker will run next; a worker being
             * stopped (its assignment was removed) is respawned with this one.
             * No in-place rebalance yet: restart the worker with its new tasks */
            log_info("assignment of %s port %d changed; restarting the worker", tid, (int)port);
            json_decref(w->next_msg);
            w->next_msg = json_incref(msg);
            w->index = (int)i;
            if (w->state == W_WAIT_RESTART) {
                json_decref(w->msg);
                w->msg = w->next_msg;
                w->next_msg = NULL;
            } else {
                node_worker_stop(w);
            }
        }
        json_decref(msg);
    }
    conf_free(tc);
    topology_free(topo);
    json_decref(a);
}

static void forget_assignment(node *n, const char *tid) {
    for (nworker *w = n->workers, *next; w; w = next) {
        next = w->next;
        if (strcmp(w->topology_id, tid) == 0 && w->state != W_STOPPING) {
            log_info("assignment %s removed; stopping worker port %d", tid, w->port);
            node_worker_stop(w);
        }
    }
}

static void on_assignment_event(void *arg, const store_event *ev);
static void list_assignments(node *n);

/* The node acts on assignments only while it holds its lease: a node that
 * may have lost it must not start what the master may have moved away. */
static bool acting(const node *n) { return !n->stopping && n->lease != 0; }

static void on_assignments_listed(void *arg, const store_result *r) {
    node *n = arg;
    n->listing = false;
    if (!acting(n)) return;
    if (r->err != 0) {
        log_warn("node %s: cannot list assignments: %s (retrying)", n->id, sd_strerror(r->err));
        list_assignments(n); /* the store paces retries with its own timeouts */
        return;
    }
    /* stop the workers of topologies that are no longer assigned at all */
    size_t plen = strlen(n->assign_prefix);
    for (nworker *w = n->workers, *next; w; w = next) {
        next = w->next;
        bool found = false;
        for (size_t i = 0; i < r->nkvs && !found; i++)
            found = strcmp(r->kvs[i].key + plen, w->topology_id) == 0;
        if (!found) forget_assignment(n, w->topology_id);
    }
    for (size_t i = 0; i < r->nkvs; i++) apply_assignment(n, r->kvs[i].value);
    store_watch_cancel(n->st, n->watch);
    n->watch = NULL;
    int rc = store_watch_prefix(n->st, n->assign_prefix, r->revision + 1, on_assignment_event, n, &n->watch);
    if (rc != 0) log_error("node %s: cannot watch assignments: %s", n->id, sd_strerror(rc));
}

static void list_assignments(node *n) {
    if (n->listing || !acting(n)) return;
    int rc = store_list(n->st, n->assign_prefix, on_assignments_listed, n);
    if (rc == 0) n->listing = true;
    else log_error("node %s: cannot list assignments: %s", n->id, sd_strerror(rc));
}

static void on_assignment_event(void *arg, const store_event *ev) {
    node *n = arg;
    if (!acting(n)) return;
    if (ev->type == STORE_EVENT_RESYNC) {
        list_assignments(n);
        return;
    }
    const char *key = ev->kv->key;
    if (strncmp(key, n->assign_prefix, strlen(n->assign_prefix)) != 0) return;
    if (ev->type == STORE_EVENT_PUT) apply_assignment(n, ev->kv->value);
    else forget_assignment(n, key + strlen(n->assign_prefix));
}

void node_refresh(node *n) { list_assignments(n); }

/* ---- registration and the lease ------------------------------------------------ */

static void on_registered(void *arg, const store_result *r) {
    node *n = arg;
    if (r->err != 0) {
        log_error("node %s: cannot register: %s", n->id, sd_strerror(r->err));
        return; /* the lease keeper notices a lost lease; a store error retries at the next grant */
    }
    if (!n->registered) log_info("node %s registered (%d slots)", n->id, n->nports);
    n->registered = true;
}

static void register_node(node *n) {
    json_t *slots = json_array();
    for (int i = 0; slots && i < n->nports; i++) json_array_append_new(slots, json_integer(n->ports[i]));
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    json_t *reg = json_pack("{s:s, s:s, s:o, s:i, s:I, s:o, s:s, s:i, s:I}", "id", n->id, "host", n->host, "slots",
                            slots, "cpus", (int)(cpus > 0 ? cpus : 1), "memory_mb",
                            (json_int_t)(pages > 0 && page > 0 ? (int64_t)pages * page / (1024 * 1024) : 0), "labels",
                            n->labels ? json_incref(n->labels) : json_object(), "version", STREAMD_VERSION, "pid",
                            (int)getpid(), "started", (json_int_t)(wall_ms() / 1000));
    char *text = reg ? json_dumps(reg, JSON_COMPACT) : NULL;
    json_decref(reg);
    int rc = text ? store_put(n->st, n->node_key, text, n->lease, on_registered, n) : -ENOMEM;
    free(text);
    if (rc != 0) log_error("node %s: cannot register: %s", n->id, sd_strerror(rc));
}

static void on_lease(void *arg, int64_t lease, int err) {
    node *n = arg;
    if (n->stopping) return;
    if (err == 0) {
        n->lease = lease;
        register_node(n);
        for (nworker *w = n->workers; w; w = w->next) write_status(w);
        list_assignments(n); /* what was assigned while we were away */
        return;
    }
    /* the lease may be gone: the master may move our work elsewhere, so
     * nothing may keep running here on the strength of it */
    n->lease = 0;
    n->registered = false;
    store_watch_cancel(n->st, n->watch);
    n->watch = NULL;
    int running = 0;
    for (nworker *w = n->workers, *next; w; w = next) {
        next = w->next;
        if (w->state != W_STOPPING) running++;
        node_worker_stop(w);
    }
    log_error("node %s: lost its lease (%s); stopped %d worker(s); registering again", n->id, sd_strerror(err),
              running);
}

/* ---- timers ------------------------------------------------------------------------- */

static void on_check(uv_timer_t *t) { node_worker_check(t->data); }

static void on_done_timer(uv_timer_t *t) {
    node *n = t->data;
    if (n->done_cb) n->done_cb(n->done_arg);
}

static void check_done(node *n) {
    if (!n->stopping || n->workers || n->done_called) return;
    n->done_called = true;
    uv_timer_stop(&n->check_timer);
    if (n->lease) store_del(n->st, n->node_key, false, NULL, NULL);
    lease_keeper_stop(n->keeper); /* revokes the lease */
    n->keeper = NULL;
    n->lease = 0;
    log_info("node %s: all workers stopped", n->id);
    uv_timer_start(&n->done_timer, on_done_timer, 0, 0);
}

/* ---- public ------------------------------------------------------------------------ */

static void node_closed(uv_handle_t *h) {
    node *n = h->data;
    if (--n->open_handles == 0) free(n);
}

static void free_fields(node *n) {
    free(n->id);
    free(n->exe);
    free(n->cluster);
    free(n->host);
    free(n->local_dir);
    json_decref(n->labels);
    n->id = n->exe = n->cluster = n->host = n->local_dir = NULL;
    n->labels = NULL;
}

/* "zone=a,rack=3" -> {"zone": "a", "rack": "3"}; NULL on a bad entry. */
static json_t *parse_labels(const char *text) {
    json_t *o = json_object();
    char *copy = strdup(text ? text : "");
    if (!o || !copy) goto fail;
    for (char *save = NULL, *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq || eq == tok) goto fail;
        *eq = '\0';
        json_object_set_new(o, tok, json_string(eq + 1));
    }
    free(copy);
    return o;
fail:
    free(copy);
    json_decref(o);
    return NULL;
}

/* worker.user: when set and the node is root, workers run as that user and
 * its primary group. Nonzero: no such user. */
static int setup_worker_user(node *n, const conf *c) {
    const char *name = conf_str(c, "worker.user");
    if (!name || !*name) return 0;
    if (geteuid() != 0) {
        log_warn("worker.user '%s' ignored: the node does not run as root", name);
        return 0;
    }
    errno = 0;
    struct passwd *pw = getpwnam(name);
    if (!pw) {
        log_error("worker.user: no user '%s'%s%s", name, errno ? ": " : "", errno ? strerror(errno) : "");
        return -1;
    }
    if (pw->pw_uid == 0) {
        log_error("worker.user: '%s' is root; name an unprivileged user", name);
        return -1;
    }
    n->drop_privs = true;
    n->worker_uid = pw->pw_uid;
    n->worker_gid = pw->pw_gid;
    log_info("workers run as %s (uid %d, gid %d)", name, (int)pw->pw_uid, (int)pw->pw_gid);
    return 0;
}

/* Finds the cgroup hierarchies; says once when workers run without them.
 * Nonzero: supervisor.cgroup.required and they cannot be used. */
static int setup_cgroups(node *n, const conf *c) {
    const char *want = conf_str_or(c, "supervisor.cgroup.mode", "auto");
    n->cg_required = conf_bool(c, "supervisor.cgroup.required");
    int rc = cg_setup(&n->cg, want, "/proc/self/mountinfo", "/proc/self/cgroup");
    bool full = rc == 0 && n->cg.cpu && n->cg.memory;
    if (n->cg_required && !full) {
        log_error("supervisor.cgroup.required is set but worker cgroups cannot be used: %s",
                  rc == -EINVAL ? "bad supervisor.cgroup.mode" : n->cg.why);
        return -1;
    }
    if (rc != 0) {
        if (strcmp(want, "off") != 0) log_warn("workers run without cgroups: %s", n->cg.why);
        return 0;
    }
    /* leftovers of an earlier run of a node with this local dir: processes
     * still in its worker cgroups (a worker that outlived its node) die, the
     * cgroups go; other nodes' cgroups in a shared hierarchy are untouched */
    cgo_reaped reaped;
    rc = cgo_reap(&n->cg, n->cg_record_dir, NODE_REAP_TIMEOUT_MS, &reaped);
    if (rc != 0) log_warn("cannot read %s: %s", n->cg_record_dir, sd_strerror(rc));
    if (reaped.processes > 0 || reaped.cgroups > 0)
        log_warn("an earlier run left %d worker cgroups with %d processes; killed them and removed the cgroups",
                 reaped.cgroups + reaped.stuck, reaped.processes);
    if (reaped.stuck > 0)
        log_error("%d cgroups of an earlier run still hold processes after %d ms of SIGKILL; left in place",
                  reaped.stuck, NODE_REAP_TIMEOUT_MS);
    int stale = cg_remove_stale(&n->cg);
    char path[PATH_MAX];
    cg_path(&n->cg, "<topology>", 0, path, sizeof path);
    log_info("worker cgroups: %s at %s%s%s%s", n->cg.mode == CG_V2 ? "v2" : "v1", path,
             full ? "" : " (without cpu or memory limits: ", full ? "" : n->cg.why, full ? "" : ")");
    if (stale > 0) log_info("removed %d stale worker cgroups", stale);
    return 0;
}

node *node_new(uv_loop_t *loop, store *st, const conf *c, const char *node_id, const char *exe_path) {
    node *n = calloc(1, sizeof *n);
    if (!n) {
        log_error("out of memory creating the node");
        return NULL;
    }
    n->loop = loop;
    n->st = st;
    n->id = strdup(node_id);
    n->exe = strdup(exe_path);
    n->cluster = strdup(conf_str_or(c, "cluster.name", "default"));
    n->host = strdup(conf_str_or(c, "worker.host", "127.0.0.1"));
    n->local_dir = strdup(conf_str_or(c, "streamd.local.dir", "/tmp/streamd"));
    n->restart_delay_ms = conf_int(c, "supervisor.worker.restart.delay.ms");
    n->start_timeout_ms = conf_int(c, "supervisor.worker.start.timeout.secs") * 1000;
    n->lease_ttl_secs = (int)conf_int(c, "node.lease.ttl.secs");
    if (n->restart_delay_ms < 0) n->restart_delay_ms = 0;
    if (n->local_dir && snprintf(n->cg_record_dir, sizeof n->cg_record_dir, "%s/cgroups", n->local_dir) >=
                            (int)sizeof n->cg_record_dir) {
        log_error("streamd.local.dir is too long");
        goto fail;
    }
    if (setup_cgroups(n, c) != 0 || setup_worker_user(n, c) != 0) goto fail;
    if (n->start_timeout_ms < 0) n->start_timeout_ms = 0;
    if (n->lease_ttl_secs < 2) n->lease_ttl_secs = 2;
    if (!n->id || !n->exe || !n->cluster || !n->host || !n->local_dir) {
        log_error("out of memory creating the node");
        goto fail;
    }
    {
        /* at start, before the loop serves anything (getaddrinfo blocks): a
         * host name is fine, one that does not resolve is refused now
         * rather than by every worker the node would start */
        struct sockaddr_storage ss;
        char why[128];
        if (transport_resolve(n->host, 0, &ss, why, sizeof why) != 0) {
            log_error("worker.host '%s' does not resolve: %s", n->host, why);
            goto fail;
        }
    }
    if (!(n->labels = parse_labels(conf_str(c, "node.labels")))) {
        log_error("node.labels: expected key=value pairs separated by commas, got '%s'", conf_str(c, "node.labels"));
        goto fail;
    }
    n->nports = node_parse_ports(conf_str(c, "supervisor.slots.ports"), n->ports, NODE_MAX_PORTS);
    if (n->nports < 0) {
        log_error("supervisor.slots.ports: expected a list of ports, got '%s'", conf_str(c, "supervisor.slots.ports"));
        goto fail;
    }
    if (store_key(n->node_key, sizeof n->node_key, n->cluster, "nodes/%s", n->id) != 0 ||
        store_key(n->assign_prefix, sizeof n->assign_prefix, n->cluster, "assignments/") != 0) {
        log_error("node id or cluster name too long");
        goto fail;
    }
    int margin = NODE_LEASE_MARGIN_MS < n->lease_ttl_secs * 250 ? NODE_LEASE_MARGIN_MS : n->lease_ttl_secs * 250;
    n->keeper = lease_keeper_start(loop, st, n->lease_ttl_secs, margin, on_lease, n);
    if (!n->keeper) {
        log_error("out of memory creating the node");
        goto fail;
    }
    uv_timer_init(loop, &n->check_timer);
    uv_timer_init(loop, &n->done_timer);
    n->check_timer.data = n->done_timer.data = n;
    n->open_handles = 2;
    uv_timer_start(&n->check_timer, on_check, NODE_CHECK_MS, NODE_CHECK_MS);
    return n;
fail:
    free_fields(n);
    free(n);
    return NULL;
}

void node_on_heartbeat(node *n, node_heartbeat_cb cb, void *arg) {
    n->hb_cb = cb;
    n->hb_arg = arg;
}

void node_set_prepare(node *n, node_prepare_fn fn, void *arg) {
    n->prepare = fn;
    n->prepare_arg = arg;
}

bool node_registered(const node *n) { return n->registered; }

json_t *node_workers_json(const node *n) {
    json_t *arr = json_array();
    for (const nworker *w = n->workers; arr && w; w = w->next) {
        json_t *e = json_pack("{s:s, s:i, s:i, s:s, s:i, s:s}", "topology_id", w->topology_id, "port", w->port, "pid",
                              w->pid, "state", w->shown_state ? w->shown_state : "starting", "restarts", w->restarts,
                              "last_exit", w->last_exit);
        if (e && w->last_hb) json_object_set(e, "heartbeat", w->last_hb);
        if (e && w->errors) json_object_set_new(e, "errors", json_deep_copy(w->errors));
        if (e) json_array_append_new(arr, e);
    }
    return arr;
}

void node_stop(node *n, node_done_cb cb, void *arg) {
    if (n->stopping) return;
    n->stopping = true;
    n->done_cb = cb;
    n->done_arg = arg;
    store_watch_cancel(n->st, n->watch);
    n->watch = NULL;
    for (nworker *w = n->workers, *next; w; w = next) {
        next = w->next;
        node_worker_stop(w);
    }
    check_done(n);
}

void node_kill_all(node *n) {
    for (nworker *w = n->workers; w; w = w->next)
        if (w->p) uv_process_kill(&w->p->proc, SIGKILL);
}

int node_restarts(const node *n) { return n->restarts; }

int node_max_failures(const node *n) {
    int most = 0;
    for (const nworker *w = n->workers; w; w = w->next)
        if (w->failures > most) most = w->failures;
    return most;
}

void node_free(node *n) {
    if (!n) return;
    store_watch_cancel(n->st, n->watch);
    n->watch = NULL;
    store_cancel(n->st, n);
    lease_keeper_stop(n->keeper);
    n->keeper = NULL;
    if (!n->workers && n->cg.mode != CG_OFF) cgo_forget(n->cg_record_dir); /* every worker cgroup is gone */
    free_fields(n);
    uv_close((uv_handle_t *)&n->check_timer, node_closed);
    uv_close((uv_handle_t *)&n->done_timer, node_closed);
}
