/*
 * local: local mode; see local.h.
 * Threads: only the caller's, running one libuv loop that also runs the
 * memstore and the node. Owned here: the loaded topology, the store, the
 * node, and `lworker` records built from the heartbeats the node passes on
 * (latest heartbeat per worker, plus counters of earlier incarnations so
 * totals survive restarts).
 */
#include "local/local.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "base/log.h"
#include "store/memstore.h"
#include "node/node.h"
#include "proto/task_columns.h"
#include "store/store.h"
#include "topology/topology.h"
#include "transport/auth.h"

#define LOCAL_NODE_ID "local"
#define LOCAL_PROGRESS_MS 5000
#define LOCAL_MAX_FAILURES 5 /* a worker that fails this often in a row never starts */
#define LOCAL_MAX_PORTS 256
#define LOCAL_STOP_GRACE_SECS 5 /* beyond the node's own kill deadline */

enum { C_EMITTED, C_ACKED, C_FAILED, C_FAILED_FINAL, C_COUNT };
/* the heartbeat column of each counter */
static const tcol_col counter_cols[C_COUNT] = {TCOL_EMITTED, TCOL_ACKED, TCOL_FAILED, TCOL_FAILED_FINAL};

typedef struct lworker {
    json_t *status;  /* latest status (heartbeat) of the current process */
    int64_t pid;
    int idle_after;  /* idle heartbeats in a row since the spouts were done */
    int64_t *dead;   /* [ncomponents][C_COUNT] from earlier processes */
    int64_t peak_rss_kb;
} lworker;

typedef struct local {
    uv_loop_t loop;
    const local_options *opts;
    topology *topo;
    store *st;
    node *nd;
    char tid[256], cluster[128];
    char secret[AUTH_KEY_HEX]; /* the topology's, made at start; empty until then */
    char assign_key[512], topo_key[512];
    int nworkers;
    int ports[LOCAL_MAX_PORTS];
    lworker *w;
    uv_timer_t progress_timer, duration_timer, deadline_timer;
    uv_signal_t sigint, sigterm, sigusr1, sigusr2;
    char abs_path[PATH_MAX]; /* the topology file */
    const char *log_level;   /* set at run time (SIGUSR1), or NULL */
    int signals;
    bool stopping, drained, done;
    int rc;
    uint64_t start_ms;
    /* --duration runs: counters after a warm-up and when the stop begins,
     * so that rates exclude start-up and draining (tools/bench) */
    uv_timer_t warmup_timer;
    int64_t *window_start, *window_end;
    uint64_t window_start_ms, window_end_ms;
} local;

/* ---- ports and the assignment ---------------------------------------------------- */

/* Binds 127.0.0.1:port (0 = any) to see if it is free; returns the port or -1. */
static int probe_port(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* as the worker's listener does */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int got = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        got = ntohs(a.sin_port);
    close(fd);
    return got;
}

static int pick_ports(local *l) {
    int configured[LOCAL_MAX_PORTS];
    const char *text = conf_str(l->topo->conf, "supervisor.slots.ports");
    int n = node_parse_ports(text, configured, LOCAL_MAX_PORTS);
    if (n < 0) {
        log_error("supervisor.slots.ports: expected a list of ports, got '%s'", text);
        return -1;
    }
    int got = 0;
    for (int i = 0; i < n && got < l->nworkers; i++) {
        if (probe_port(configured[i]) == configured[i]) l->ports[got++] = configured[i];
        else log_info("port %d is busy; skipping it", configured[i]);
    }
    while (got < l->nworkers) {
        int p = probe_port(0);
        if (p <= 0) {
            log_error("cannot find a free port: %s", strerror(errno));
            return -1;
        }
        bool dup = false;
        for (int i = 0; i < got; i++) dup |= l->ports[i] == p;
        if (!dup) l->ports[got++] = p;
    }
    return 0;
}

static int put_json(local *l, const char *key, json_t *v) {
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    int rc = text ? store_put(l->st, key, text, 0, NULL, NULL) : -ENOMEM;
    if (rc != 0) log_error("cannot write %s: %s", key, sd_strerror(rc));
    free(text);
    return rc;
}

static int write_assignment(local *l, const char *abs_path) {
    const char *host = conf_str_or(l->topo->conf, "worker.host", "127.0.0.1");
    json_t *workers = json_array();
    for (int i = 0; i < l->nworkers; i++) {
        json_t *tasks = json_array();
        for (int t = 1 + i; t <= l->topo->ntasks; t += l->nworkers) json_array_append_new(tasks, json_integer(t));
        json_array_append_new(workers, json_pack("{s:s, s:s, s:i, s:o}", "node", LOCAL_NODE_ID, "host", host,
                                                 "port", l->ports[i], "tasks", tasks));
    }
    json_t *topo_rec = json_pack("{s:s, s:s, s:s, s:s, s:i, s:o, s:I}", "id", l->tid, "name", l->topo->name,
                                 "status", "active", "path", abs_path, "workers", l->nworkers, "conf",
                                 conf_to_json(l->topo->conf), "submit_time", (json_int_t)time(NULL));
    if (put_json(l, l->topo_key, topo_rec) != 0) {
        json_decref(workers);
        return -1;
    }
    /* conf: everything merged (defaults < --config < topology config: < -c);
     * overrides: the -c keys alone, for whoever reloads the topology file */
    json_t *a = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:i}", "topology_id", l->tid, "topology_name",
                          l->topo->name, "topology_path", abs_path, "conf", conf_to_json(l->topo->conf), "overrides",
                          l->opts->overrides ? conf_to_json(l->opts->overrides) : json_object(), "workers", workers,
                          "version", 1);
    if (a && l->log_level) json_object_set_new(a, "log_level", json_string(l->log_level));
    /* the topology's secret, made once at start (a rewrite, such as a new log
     * level, must not change it): the workers authenticate each other with it */
    if (!l->secret[0] && auth_key_new(l->secret) != 0) {
        l->secret[0] = '\0';
        log_error("no random bytes for the topology's secret; the workers will not connect");
    }
    if (a && l->secret[0]) json_object_set_new(a, "secret", json_string(l->secret));
    return put_json(l, l->assign_key, a);
}

/* ---- counters from the worker status --------------------------------------------- */

/* Calls fn for every task of a worker status (a heartbeat, checked whole
 * when it came: see on_heartbeat). */
static void each_task(local *l, json_t *status, tcol_fn fn, void *arg) {
    char err[160];
    if (status) (void)tcol_each(json_object_get(status, "task_columns"), l->topo->ntasks, fn, arg, err, sizeof err);
}

typedef struct sum_arg {
    local *l;
    int64_t *sums;
} sum_arg;

static int add_task(void *arg, int task, const int64_t *v) {
    sum_arg *a = arg;
    const topo_component *c = topology_task_component(a->l->topo, task);
    for (int k = 0; c && k < C_COUNT; k++) {
        /* saturating: a worker's numbers are input */
        int64_t *sum = &a->sums[c->index * C_COUNT + k];
        int64_t x = v[counter_cols[k]];
        *sum = x > INT64_MAX - *sum ? INT64_MAX : *sum + x;
    }
    return 0;
}

/* Adds status's per-component counters into sums[ncomponents][C_COUNT]. */
static void add_counters(local *l, json_t *status, int64_t *sums) {
    sum_arg a = {l, sums};
    each_task(l, status, add_task, &a);
}

static int64_t *totals(local *l) {
    int64_t *sums = calloc((size_t)l->topo->ncomponents * C_COUNT, sizeof *sums);
    if (!sums) {
        log_error("out of memory summing counters");
        return NULL;
    }
    for (int w = 0; w < l->nworkers; w++) {
        for (int k = 0; k < l->topo->ncomponents * C_COUNT; k++) sums[k] += l->w[w].dead[k];
        if (l->w[w].status) add_counters(l, l->w[w].status, sums);
    }
    return sums;
}

static json_int_t field(json_t *obj, const char *key) { return json_integer_value(json_object_get(obj, key)); }

/* -1 (stops the walk) for a task that still has work: a spout not
 * exhausted or with trees pending, tuples queued or taken but not executed */
static int task_busy(void *arg, int task, const int64_t *v) {
    local *l = arg;
    const topo_component *c = topology_task_component(l->topo, task);
    if (c && c->kind == SD_SPOUT && !c->is_acker && (!v[TCOL_EXHAUSTED] || v[TCOL_PENDING] != 0)) return -1;
    return v[TCOL_QUEUE] != 0 || v[TCOL_RECEIVED] != v[TCOL_EXECUTED] ? -1 : 0;
}

/* Every worker heard from; every spout task exhausted with no tree pending;
 * and nothing in between: no tuple queued, taken but not yet executed,
 * waiting in a worker for a full queue, or buffered for another worker
 * (trees without acking have no "pending" to tell us). */
static bool spouts_done(local *l) {
    for (int w = 0; w < l->nworkers; w++) {
        json_t *st = l->w[w].status;
        if (!st) return false;
        if (field(st, "waiting") != 0 || field(json_object_get(st, "transport"), "buffered_bytes") != 0) return false;
        char err[160];
        if (tcol_each(json_object_get(st, "task_columns"), l->topo->ntasks, task_busy, l, err, sizeof err) != 0)
            return false;
    }
    return true;
}

static void begin_stop(local *l, const char *why);

static void on_heartbeat(void *arg, const char *topology_id, int port, int idx, json_t *hb) {
    local *l = arg;
    (void)topology_id;
    (void)port;
    if (idx < 0 || idx >= l->nworkers) return;
    char err[160];
    if (tcol_each(json_object_get(hb, "task_columns"), l->topo->ntasks, NULL, NULL, err, sizeof err) != 0) {
        log_warn("worker %d: heartbeat ignored: %s", idx, err);
        return;
    }
    json_t *st = json_incref(hb);
    lworker *w = &l->w[idx];
    json_int_t pid = json_integer_value(json_object_get(st, "pid"));
    if (w->status && pid != w->pid) {
        /* a restarted process counts from zero: keep what the old one did */
        add_counters(l, w->status, w->dead);
        w->idle_after = 0;
    }
    json_decref(w->status);
    w->status = st;
    w->pid = pid;
    json_int_t rss = json_integer_value(json_object_get(st, "rss_kb"));
    if (rss > w->peak_rss_kb) w->peak_rss_kb = rss;
    if (!l->opts->until_drained || l->stopping) return;
    if (!spouts_done(l)) {
        for (int i = 0; i < l->nworkers; i++) l->w[i].idle_after = 0;
        return;
    }
    w->idle_after = json_is_true(json_object_get(st, "idle")) ? w->idle_after + 1 : 0;
    for (int i = 0; i < l->nworkers; i++)
        if (l->w[i].idle_after < 2) return;
    l->drained = true;
    begin_stop(l, "drained: every spout is exhausted and every worker is idle");
}

/* ---- progress and summary --------------------------------------------------------------- */

static const char *kind_name(const topo_component *c) {
    return c->is_acker ? "acker" : c->kind == SD_SPOUT ? "spout" : "bolt";
}

/* Says on the console why the workers that keep failing fail: their last
 * exit and the last errors they reported. */
static void report_failing(local *l) {
    json_t *ws = node_workers_json(l->nd);
    size_t i, k;
    json_t *w, *e;
    json_array_foreach(ws, i, w) {
        const char *state = json_string_value(json_object_get(w, "state"));
        if ((state && strcmp(state, "running") == 0) || json_integer_value(json_object_get(w, "restarts")) == 0) continue;
        log_error("worker port %lld keeps failing: %lld restarts, last exit %s%s",
                  (long long)json_integer_value(json_object_get(w, "port")),
                  (long long)json_integer_value(json_object_get(w, "restarts")),
                  json_string_value(json_object_get(w, "last_exit")) ?: "?",
                  json_array_size(json_object_get(w, "errors")) ? "; its last errors:" : " (no error reported)");
        json_array_foreach(json_object_get(w, "errors"), k, e) log_error("  %s", json_string_value(e) ?: "?");
    }
    json_decref(ws);
}

static void on_progress(uv_timer_t *t) {
    local *l = t->data;
    int64_t *sums = totals(l);
    if (!sums) return;
    char line[2048];
    size_t off = 0;
    for (int c = 0; c < l->topo->ncomponents && off < sizeof line; c++) {
        int64_t *s = &sums[c * C_COUNT];
        off += (size_t)snprintf(line + off, sizeof line - off, "%s%s emitted=%lld acked=%lld failed=%lld",
                                c ? "; " : "", l->topo->components[c].id, (long long)s[C_EMITTED],
                                (long long)s[C_ACKED], (long long)s[C_FAILED]);
    }
    log_info("progress: %s (restarts %d)", line, node_restarts(l->nd));
    free(sums);
    if (node_max_failures(l->nd) >= LOCAL_MAX_FAILURES && !l->stopping) {
        l->rc = 1;
        report_failing(l);
        begin_stop(l, "a worker keeps exiting before its first heartbeat");
    }
}

static void on_warmup(uv_timer_t *t) {
    local *l = t->data;
    uv_update_time(&l->loop);
    l->window_start_ms = uv_now(&l->loop);
    l->window_start = totals(l);
}

/* {"secs": s, "acked_per_sec": {component: rate}} over the steady window */
static json_t *steady_rates(local *l) {
    if (!l->window_start || !l->window_end || l->window_end_ms <= l->window_start_ms) return NULL;
    double secs = (double)(l->window_end_ms - l->window_start_ms) / 1000.0;
    json_t *rates = json_object();
    for (int c = 0; c < l->topo->ncomponents && rates; c++) {
        int64_t d = l->window_end[c * C_COUNT + C_ACKED] - l->window_start[c * C_COUNT + C_ACKED];
        json_object_set_new(rates, l->topo->components[c].id, json_real((double)d / secs));
    }
    return rates ? json_pack("{s:f, s:o}", "secs", secs, "acked_per_sec", rates) : NULL;
}

/* What the summary shows per component beyond its counters, from the
 * workers' latest status. */
typedef struct comp_detail {
    bool has_latency;
    int64_t lat[3];   /* worst spout task: p50, p99, max (microseconds) */
    int chained_into; /* the component its tasks run chained into (topology.chaining), -1 if none */
    int nchained;     /* how many of its tasks do */
} comp_detail;

typedef struct detail_arg {
    local *l;
    comp_detail *d;
} detail_arg;

static int detail_task(void *arg, int task, const int64_t *v) {
    detail_arg *a = arg;
    const topo_component *c = topology_task_component(a->l->topo, task);
    if (!c) return 0;
    comp_detail *d = &a->d[c->index];
    if (c->kind == SD_SPOUT && !c->is_acker) {
        static const tcol_col cols[3] = {TCOL_LAT_P50, TCOL_LAT_P99, TCOL_LAT_MAX};
        d->has_latency = true;
        for (int k = 0; k < 3; k++)
            if (v[cols[k]] > d->lat[k]) d->lat[k] = v[cols[k]];
    }
    const topo_component *up = v[TCOL_CHAINED_TO] ? topology_task_component(a->l->topo, (int)v[TCOL_CHAINED_TO]) : NULL;
    if (up) {
        d->chained_into = up->index;
        d->nchained++;
    }
    return 0;
}

/* comp_detail of every component, in a new array (NULL if out of memory). */
static comp_detail *details(local *l) {
    comp_detail *d = calloc((size_t)l->topo->ncomponents, sizeof *d);
    if (!d) return NULL;
    for (int c = 0; c < l->topo->ncomponents; c++) d[c].chained_into = -1;
    detail_arg a = {l, d};
    for (int w = 0; w < l->nworkers; w++) each_task(l, l->w[w].status, detail_task, &a);
    return d;
}

static void print_summary(local *l) {
    int64_t *sums = totals(l);
    comp_detail *det = details(l);
    if (!sums || !det) {
        log_error("out of memory for the summary");
        free(sums);
        free(det);
        return;
    }
    uv_update_time(&l->loop);
    double secs = (double)(uv_now(&l->loop) - l->start_ms) / 1000.0;
    int restarts = node_restarts(l->nd);
    json_t *js = json_pack("{s:s, s:f, s:i, s:i, s:b, s:{}, s:[]}", "topology_id", l->tid, "elapsed_secs", secs,
                           "workers", l->nworkers, "restarts", restarts, "drained", l->drained, "components",
                           "worker_status");
    printf("streamd local summary: topology %s, %.1f s, %d worker(s), %d restart(s)%s\n", l->tid, secs, l->nworkers,
           restarts, l->drained ? ", drained" : "");
    printf("%-24s %-6s %6s %14s %14s %10s %13s\n", "component", "kind", "tasks", "emitted", "acked", "failed",
           "failed_final");
    for (int c = 0; c < l->topo->ncomponents; c++) {
        const topo_component *tc = &l->topo->components[c];
        int64_t *s = &sums[c * C_COUNT];
        printf("%-24s %-6s %6d %14lld %14lld %10lld %13lld\n", tc->id, kind_name(tc), tc->parallelism,
               (long long)s[C_EMITTED], (long long)s[C_ACKED], (long long)s[C_FAILED], (long long)s[C_FAILED_FINAL]);
        const comp_detail *d = &det[c];
        json_t *lat = d->has_latency ? json_pack("{s:I, s:I, s:I}", "p50", (json_int_t)d->lat[0], "p99",
                                                 (json_int_t)d->lat[1], "max", (json_int_t)d->lat[2])
                                     : NULL;
        if (lat)
            printf("  complete latency (us, worst task): p50=%lld p99=%lld max=%lld\n",
                   (long long)json_integer_value(json_object_get(lat, "p50")),
                   (long long)json_integer_value(json_object_get(lat, "p99")),
                   (long long)json_integer_value(json_object_get(lat, "max")));
        json_t *jc = json_pack("{s:s, s:i, s:I, s:I, s:I, s:I}", "kind", kind_name(tc), "tasks", tc->parallelism,
                               "emitted", (json_int_t)s[C_EMITTED], "acked", (json_int_t)s[C_ACKED], "failed",
                               (json_int_t)s[C_FAILED], "failed_final", (json_int_t)s[C_FAILED_FINAL]);
        if (jc && lat) json_object_set(jc, "complete_latency_us", lat);
        int nchained = d->nchained, into = d->chained_into;
        if (into >= 0) {
            printf("  chained into %s: %d of %d task(s) run in its tasks' threads\n", l->topo->components[into].id,
                   nchained, tc->parallelism);
            if (jc) {
                json_object_set_new(jc, "chained_into", json_string(l->topo->components[into].id));
                json_object_set_new(jc, "chained_tasks", json_integer(nchained));
            }
        }
        json_decref(lat);
        if (js && jc) json_object_set_new(json_object_get(js, "components"), tc->id, jc);
        else json_decref(jc);
        if (s[C_FAILED_FINAL] > 0 && l->rc == 0) l->rc = 1;
    }
    for (int w = 0; w < l->nworkers; w++) {
        printf("worker %d port %d: peak rss %lld kB\n", w, l->ports[w], (long long)l->w[w].peak_rss_kb);
        if (js)
            json_array_append_new(json_object_get(js, "worker_status"),
                                  json_pack("{s:i, s:i, s:I}", "index", w, "port", l->ports[w], "peak_rss_kb",
                                            (json_int_t)l->w[w].peak_rss_kb));
    }
    json_t *steady = steady_rates(l);
    if (steady) {
        printf("steady window %.1f s (after warm-up, before the stop):", json_real_value(json_object_get(steady, "secs")));
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(steady, "acked_per_sec"), k, v) printf(" %s %.0f acked/s;", k, json_real_value(v));
        printf("\n");
        if (js) json_object_set(js, "steady", steady);
        json_decref(steady);
    }
    /* one machine-readable line for tools (tools/bench) */
    char *text = js ? json_dumps(js, JSON_COMPACT) : NULL;
    if (text) printf("summary-json: %s\n", text);
    free(text);
    json_decref(js);
    fflush(stdout);
    free(sums);
    free(det);
}

/* ---- stopping --------------------------------------------------------------------------- */

static void on_closed(uv_handle_t *h) { (void)h; }

static void close_all(local *l) {
    uv_handle_t *hs[] = {(uv_handle_t *)&l->progress_timer, (uv_handle_t *)&l->duration_timer,
                         (uv_handle_t *)&l->warmup_timer,
                         (uv_handle_t *)&l->deadline_timer, (uv_handle_t *)&l->sigint, (uv_handle_t *)&l->sigterm,
                         (uv_handle_t *)&l->sigusr1, (uv_handle_t *)&l->sigusr2};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        if (!uv_is_closing(hs[i])) uv_close(hs[i], on_closed);
    if (l->nd) node_free(l->nd);
    l->nd = NULL;
    store_free(l->st);
    l->st = NULL;
}

static void on_node_stopped(void *arg) {
    local *l = arg;
    l->done = true;
    print_summary(l);
    close_all(l);
}

static void uv_stop_cb(uv_timer_t *t) { uv_stop(t->loop); }

static void on_deadline(uv_timer_t *t) {
    local *l = t->data;
    if (l->rc != 130) {
        log_error("workers still running %d s after the stop deadline; killing them", LOCAL_STOP_GRACE_SECS);
        l->rc = 1;
    }
    node_kill_all(l->nd);
    /* SIGKILLed processes are reaped at once; if even that hangs, give up */
    uv_timer_start(&l->deadline_timer, uv_stop_cb, 5000, 0);
}

static void begin_stop(local *l, const char *why) {
    if (l->stopping) return;
    l->stopping = true;
    log_info("stopping topology %s: %s", l->tid, why);
    uv_timer_stop(&l->duration_timer);
    if (l->window_start && !l->window_end) {
        uv_update_time(&l->loop);
        l->window_end_ms = uv_now(&l->loop);
        l->window_end = totals(l);
    }
    int rc = store_del(l->st, l->assign_key, false, NULL, NULL);
    if (rc != 0) log_warn("cannot delete %s: %s", l->assign_key, sd_strerror(rc));
    node_stop(l->nd, on_node_stopped, l);
    int64_t secs = conf_int(l->topo->conf, "task.cleanup.timeout.sec") + NODE_STOP_SLACK_SECS + LOCAL_STOP_GRACE_SECS;
    l->deadline_timer.data = l;
    uv_timer_start(&l->deadline_timer, on_deadline, (uint64_t)secs * 1000, 0);
}

static void on_duration(uv_timer_t *t) { begin_stop(t->data, "duration reached"); }

/* SIGUSR1: every process of the run logs at debug; SIGUSR2: back to
 * log.level. The workers hear it through their assignment, in place. */
static void on_level_signal(uv_signal_t *s, int signum) {
    local *l = s->data;
    if (l->done || l->stopping) return;
    l->log_level = signum == SIGUSR1 ? "debug" : NULL;
    const char *name = l->log_level ? l->log_level : conf_str_or(l->topo->conf, "log.level", "info");
    sd_log_level level;
    if (log_parse_level(name, &level) == 0) log_set_level(level);
    log_warn("log level now %s", name);
    if (write_assignment(l, l->abs_path) != 0) log_error("cannot change the workers' log level");
}

static void on_signal(uv_signal_t *s, int signum) {
    local *l = s->data;
    if (l->done) return;
    if (++l->signals == 1) {
        begin_stop(l, signum == SIGINT ? "interrupted" : "terminated");
    } else {
        log_warn("second signal: killing the workers now");
        l->rc = 130;
        node_kill_all(l->nd);
    }
}

/* ---- entry point -------------------------------------------------------------------------- */

int local_run(const local_options *opts) {
    char err[1024];
    local *l = calloc(1, sizeof *l);
    if (!l) {
        log_error("out of memory");
        return 1;
    }
    l->opts = opts;
    int rc = 1;
    l->topo = topology_load(opts->topology_path, opts->base, opts->overrides, err, sizeof err);
    if (!l->topo) {
        log_error("%s", err);
        free(l);
        return 1;
    }
    char abs_path[PATH_MAX];
    if (!realpath(opts->topology_path, abs_path)) {
        log_error("%s: %s", opts->topology_path, strerror(errno));
        goto out_topo;
    }
    l->nworkers = l->topo->workers > 0 ? l->topo->workers : 1;
    if (l->nworkers > LOCAL_MAX_PORTS) {
        log_error("topology.workers: at most %d in local mode, got %d", LOCAL_MAX_PORTS, l->nworkers);
        goto out_topo;
    }
    l->w = calloc((size_t)l->nworkers, sizeof *l->w);
    if (!l->w) {
        log_error("out of memory");
        goto out_topo;
    }
    for (int i = 0; i < l->nworkers; i++) {
        l->w[i].dead = calloc((size_t)l->topo->ncomponents * C_COUNT, sizeof(int64_t));
        if (!l->w[i].dead) {
            log_error("out of memory");
            goto out_workers;
        }
    }
    snprintf(l->cluster, sizeof l->cluster, "%s", conf_str_or(l->topo->conf, "cluster.name", "default"));
    snprintf(l->tid, sizeof l->tid, "%s-%lld", l->topo->name, (long long)time(NULL));
    if (store_key(l->assign_key, sizeof l->assign_key, l->cluster, "assignments/%s", l->tid) != 0 ||
        store_key(l->topo_key, sizeof l->topo_key, l->cluster, "topologies/%s", l->topo->name) != 0) {
        log_error("topology name or cluster name too long");
        goto out_workers;
    }
    log_set_tags(NULL, l->tid, NULL);
    if (pick_ports(l) != 0) goto out_workers;
    int uvrc = uv_loop_init(&l->loop);
    if (uvrc != 0) {
        log_error("uv_loop_init: %s", uv_strerror(uvrc));
        goto out_workers;
    }
    l->st = memstore_new(&l->loop);
    uv_timer_init(&l->loop, &l->progress_timer);
    uv_timer_init(&l->loop, &l->duration_timer);
    uv_timer_init(&l->loop, &l->deadline_timer);
    uv_timer_init(&l->loop, &l->warmup_timer);
    l->warmup_timer.data = l;
    uv_signal_init(&l->loop, &l->sigusr1);
    uv_signal_init(&l->loop, &l->sigusr2);
    l->sigusr1.data = l->sigusr2.data = l;
    uv_signal_init(&l->loop, &l->sigint);
    uv_signal_init(&l->loop, &l->sigterm);
    l->progress_timer.data = l->duration_timer.data = l->deadline_timer.data = l;
    l->sigint.data = l->sigterm.data = l;
    if (!l->st) goto out_loop;
    l->nd = node_new(&l->loop, l->st, l->topo->conf, LOCAL_NODE_ID, opts->exe_path);
    if (!l->nd) goto out_loop;
    node_on_heartbeat(l->nd, on_heartbeat, l);
    snprintf(l->abs_path, sizeof l->abs_path, "%s", abs_path);
    if (write_assignment(l, abs_path) != 0) {
        log_error("cannot write the assignment");
        goto out_loop;
    }
    log_info("running %s: %d worker(s) on port(s) %d%s, %d task(s)", l->tid, l->nworkers, l->ports[0],
             l->nworkers > 1 ? ",..." : "", l->topo->ntasks);
    uv_update_time(&l->loop);
    l->start_ms = uv_now(&l->loop);
    uv_timer_start(&l->progress_timer, on_progress, LOCAL_PROGRESS_MS, LOCAL_PROGRESS_MS);
    if (opts->duration_secs > 0) {
        uint64_t warm = (uint64_t)opts->duration_secs * 250; /* a quarter of the run, 1 to 5 s */
        uv_timer_start(&l->warmup_timer, on_warmup, warm < 1000 ? 1000 : warm > 5000 ? 5000 : warm, 0);
        uv_timer_start(&l->duration_timer, on_duration, (uint64_t)opts->duration_secs * 1000, 0);
    }
    uv_signal_start(&l->sigusr1, on_level_signal, SIGUSR1);
    uv_signal_start(&l->sigusr2, on_level_signal, SIGUSR2);
    uv_signal_start(&l->sigint, on_signal, SIGINT);
    uv_signal_start(&l->sigterm, on_signal, SIGTERM);
    l->rc = 0;
    uv_run(&l->loop, UV_RUN_DEFAULT);
    rc = l->done ? l->rc : 1;
    if (!l->done) {
        /* the last-resort uv_stop: processes may still be running and their
         * callbacks pending, so nothing can be freed safely; we exit anyway */
        log_error("gave up waiting for the workers to stop");
        return 1;
    }
out_loop:
    if (!l->done) { /* an early failure: no worker was started */
        if (l->nd) node_stop(l->nd, NULL, NULL);
        close_all(l);
    }
    uv_run(&l->loop, UV_RUN_DEFAULT); /* close callbacks */
    if (uv_loop_close(&l->loop) != 0) log_warn("some handles were still open at exit");
out_workers:
    for (int i = 0; i < l->nworkers; i++) {
        free(l->w[i].dead);
        json_decref(l->w[i].status);
    }
    free(l->w);
    free(l->window_start);
    free(l->window_end);
out_topo:
    topology_free(l->topo);
    free(l);
    return rc;
}
