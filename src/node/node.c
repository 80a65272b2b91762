/*
 * node: the supervisor; see node.h.
 * Threads: only the caller's loop thread. It owns the node, the list of
 * supervised workers (one `nworker` per assigned topology-id + port, which
 * lives across restarts) and, per process incarnation, a `wproc` holding the
 * uv_process_t and the uv_pipe_t of the node's end of the control socketpair.
 *
 * Worker states: RUNNING (a process exists), WAIT_RESTART (died unexpectedly,
 * restart timer armed), STOPPING (asked to stop, kill timer armed), GONE
 * (freed once its timer handle is closed).
 */
#include "node/node.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proto/control.h"
#include "base/log.h"

#define NODE_LEASE_TTL_SECS 10
#define NODE_KEEPALIVE_MS 3000
#define NODE_CHECK_MS 1000
#define NODE_MAX_PORTS 256

typedef enum { W_RUNNING, W_WAIT_RESTART, W_STOPPING, W_GONE } wstate;

typedef struct nworker nworker;

typedef struct wproc {
    uv_process_t proc;
    uv_pipe_t pipe;
    nworker *w; /* cleared when the process has exited */
    control_reader reader;
    int open_handles;
    bool pipe_open;
} wproc;

struct nworker {
    node *n;
    nworker *next;
    char *topology_id;
    int port, index;
    json_t *msg;         /* the assignment control message to send */
    json_t *next_msg;    /* a changed assignment to respawn with after the stop */
    char status_key[512];
    char log_path[1024];
    int64_t hb_interval_ms, cleanup_secs;
    wstate state;
    wproc *p;            /* the live process, or NULL */
    int pid;
    int restarts;
    int failures;        /* exits in a row without a heartbeat between them */
    uint64_t spawned_ms, last_hb_ms;
    uv_timer_t timer;    /* restart delay or kill deadline */
};

struct node {
    uv_loop_t *loop;
    store *st;
    char *id, *exe, *cluster, *host, *local_dir;
    int ports[NODE_MAX_PORTS], nports;
    int64_t restart_delay_ms, start_timeout_ms;
    int64_t lease;
    char node_key[512], assign_prefix[512];
    store_watch *watch;
    nworker *workers;
    int restarts;
    bool stopping, done_called;
    node_done_cb done_cb;
    void *done_arg;
    uv_timer_t keepalive_timer, check_timer, done_timer;
    int open_handles;
};

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

static int mkdir_p(const char *path) {
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *s = buf + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
            if (!c) break;
            *s = c;
        }
    }
    return 0;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- worker lifecycle ---------------------------------------------------------- */

static void spawn_worker(nworker *w);
static void check_done(node *n);

static void wproc_closed(uv_handle_t *h) {
    wproc *p = h->data;
    if (--p->open_handles == 0) {
        control_reader_free(&p->reader);
        free(p);
    }
}

static void worker_freed(uv_handle_t *h) {
    nworker *w = h->data;
    node *n = w->n;
    json_decref(w->msg);
    json_decref(w->next_msg);
    free(w->topology_id);
    free(w);
    if (--n->open_handles == 0) free(n);
}

/* Removes a worker that is done for good. */
static void worker_gone(nworker *w) {
    node *n = w->n;
    w->state = W_GONE;
    uv_timer_stop(&w->timer);
    if (store_del(n->st, w->status_key) < 0) log_warn("cannot delete %s", w->status_key);
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

static void put_status(nworker *w, json_t *hb) {
    node *n = w->n;
    json_t *st = json_deep_copy(hb);
    if (!st) return;
    json_object_del(st, "type");
    json_object_set_new(st, "topology_id", json_string(w->topology_id));
    json_object_set_new(st, "node", json_string(n->id));
    json_object_set_new(st, "host", json_string(n->host));
    json_object_set_new(st, "port", json_integer(w->port));
    json_object_set_new(st, "worker_index", json_integer(w->index));
    json_object_set_new(st, "pid", json_integer(w->pid));
    json_object_set_new(st, "restarts", json_integer(w->restarts));
    json_object_set_new(st, "state", json_string(w->state == W_STOPPING ? "stopping" : "running"));
    json_object_set_new(st, "updated_ms", json_integer(wall_ms()));
    char *text = json_dumps(st, JSON_COMPACT);
    json_decref(st);
    if (!text) return;
    if (store_put(n->st, w->status_key, text, n->lease, NULL) != 0) log_warn("cannot write %s", w->status_key);
    free(text);
}

static void on_control_msg(void *arg, json_t *msg) {
    wproc *p = arg;
    nworker *w = p->w;
    if (!w) return;
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (!type) {
        log_warn("worker %s:%d: control message without a type", w->topology_id, w->port);
    } else if (strcmp(type, "heartbeat") == 0) {
        w->last_hb_ms = uv_now(w->n->loop);
        w->failures = 0;
        put_status(w, msg);
    } else if (strcmp(type, "started") == 0) {
        log_info("worker %s port %d started (pid %lld)", w->topology_id, w->port,
                 (long long)json_integer_value(json_object_get(msg, "pid")));
    } else if (strcmp(type, "error") == 0) {
        log_warn("worker %s port %d task %lld: %s", w->topology_id, w->port,
                 (long long)json_integer_value(json_object_get(msg, "task")),
                 json_string_value(json_object_get(msg, "message")) ?: "?");
    } else {
        log_debug("worker %s port %d: ignoring control message '%s'", w->topology_id, w->port, type);
    }
}

static void close_pipe(wproc *p) {
    if (!p->pipe_open) return;
    p->pipe_open = false;
    uv_close((uv_handle_t *)&p->pipe, wproc_closed);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void on_pipe_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    wproc *p = s->data;
    if (nread > 0 && control_reader_feed(&p->reader, buf->base, (size_t)nread, on_control_msg, p) != 0) {
        /* a broken channel: the heartbeat check will restart the worker */
        if (p->w) log_error("worker %s port %d: bad control message; closing its channel", p->w->topology_id,
                            p->w->port);
        close_pipe(p);
        /* a worker we cannot hear is restarted now rather than at the
         * heartbeat deadline */
        if (p->w) uv_process_kill(&p->proc, SIGTERM);
    } else if (nread < 0) {
        close_pipe(p);
        if (p->w && nread != UV_EOF) uv_process_kill(&p->proc, SIGTERM);
    }
    free(buf->base);
}

/* Reads what the dead process left in the socket, so its last heartbeat
 * (final counters) is not lost when the exit is noticed first. */
static void drain_pipe(wproc *p) {
    if (!p->pipe_open) return;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&p->pipe, &fd) != 0) return;
    char buf[65536];
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        if (control_reader_feed(&p->reader, buf, (size_t)r, on_control_msg, p) != 0) break;
    }
}

static void on_restart_timer(uv_timer_t *t) {
    nworker *w = t->data;
    if (w->state == W_WAIT_RESTART) spawn_worker(w);
}

/* An unexpected end of a process (or a failed spawn): restart after the delay. */
static void schedule_restart(nworker *w) {
    node *n = w->n;
    w->restarts++;
    n->restarts++;
    w->failures++;
    w->state = W_WAIT_RESTART;
    /* a worker that keeps dying before its first heartbeat backs off,
     * doubling the delay up to 32 times (the caller may give up: node_max_failures) */
    int shift = w->failures - 1 < 5 ? w->failures - 1 : 5;
    uint64_t delay = (uint64_t)n->restart_delay_ms << shift;
    log_info("restarting worker %s port %d in %llu ms (restart %d)", w->topology_id, w->port,
             (unsigned long long)delay, w->restarts);
    uv_timer_start(&w->timer, on_restart_timer, delay, 0);
}

static void on_proc_exit(uv_process_t *proc, int64_t status, int term_signal) {
    wproc *p = proc->data;
    nworker *w = p->w;
    drain_pipe(p);
    close_pipe(p);
    p->w = NULL;
    uv_close((uv_handle_t *)&p->proc, wproc_closed);
    if (!w) return;
    w->p = NULL;
    if (term_signal)
        log_warn("worker %s port %d (pid %d) killed by signal %d (%s)", w->topology_id, w->port, w->pid,
                 term_signal, strsignal(term_signal));
    else if (status != 0 || w->state != W_STOPPING)
        log_warn("worker %s port %d (pid %d) exited with status %lld", w->topology_id, w->port, w->pid,
                 (long long)status);
    else
        log_info("worker %s port %d (pid %d) exited", w->topology_id, w->port, w->pid);
    uv_timer_stop(&w->timer);
    if (w->state == W_STOPPING) {
        if (w->next_msg && !w->n->stopping) { /* a changed assignment: start over with it */
            json_decref(w->msg);
            w->msg = w->next_msg;
            w->next_msg = NULL;
            spawn_worker(w);
        } else {
            worker_gone(w);
        }
    } else if (w->n->stopping) {
        worker_gone(w);
    } else {
        schedule_restart(w);
    }
}

static void spawn_worker(nworker *w) {
    node *n = w->n;
    int sv[2] = {-1, -1}, devnull = -1, logfd = -1;
    wproc *p = calloc(1, sizeof *p);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/logs/%s", n->local_dir, w->topology_id);
    if (!p) {
        log_error("out of memory spawning a worker");
        goto fail;
    }
    if (mkdir_p(dir) != 0) {
        log_error("cannot create %s: %s", dir, strerror(errno));
        goto fail;
    }
    logfd = open(w->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (logfd < 0 || devnull < 0) {
        log_error("cannot open %s or /dev/null: %s", w->log_path, strerror(errno));
        goto fail;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        log_error("socketpair: %s", strerror(errno));
        goto fail;
    }
    char *args[] = {n->exe, "--role=worker", "--control-fd=3", NULL};
    uv_stdio_container_t stdio[4] = {
        {.flags = UV_INHERIT_FD, .data.fd = devnull},
        {.flags = UV_INHERIT_FD, .data.fd = logfd},
        {.flags = UV_INHERIT_FD, .data.fd = logfd},
        {.flags = UV_INHERIT_FD, .data.fd = sv[1]},
    };
    /* own session: a terminal's Ctrl-C reaches only us, and we stop the
     * workers gracefully */
    uv_process_options_t opts = {.exit_cb = on_proc_exit, .file = n->exe, .args = args, .stdio_count = 4,
                                 .stdio = stdio, .flags = UV_PROCESS_DETACHED};
    p->proc.data = p;
    int rc = uv_spawn(n->loop, &p->proc, &opts);
    if (rc != 0) {
        log_error("cannot start %s for %s port %d: %s", n->exe, w->topology_id, w->port, uv_strerror(rc));
        /* uv_spawn initialised the handle even on failure */
        p->open_handles = 1;
        uv_close((uv_handle_t *)&p->proc, wproc_closed);
        p = NULL;
        goto fail;
    }
    p->open_handles = 1;
    close(sv[1]);
    sv[1] = -1;
    close(devnull);
    close(logfd);
    devnull = logfd = -1;
    p->w = w;
    w->p = p;
    w->pid = p->proc.pid;
    w->state = W_RUNNING;
    w->spawned_ms = uv_now(n->loop);
    w->last_hb_ms = 0;
    uv_pipe_init(n->loop, &p->pipe, 0);
    p->pipe.data = p;
    p->open_handles++;
    p->pipe_open = true;
    bool opened = false;
    if ((rc = uv_pipe_open(&p->pipe, sv[0])) != 0 || !(opened = true) ||
        (rc = uv_read_start((uv_stream_t *)&p->pipe, alloc_cb, on_pipe_read)) != 0) {
        log_error("worker %s port %d: control channel: %s", w->topology_id, w->port, uv_strerror(rc));
        if (!opened) close(sv[0]); /* else the pipe handle owns it */
        close_pipe(p);
        uv_process_kill(&p->proc, SIGKILL);
        return;
    }
    log_info("started worker %s port %d (pid %d, log %s)", w->topology_id, w->port, w->pid, w->log_path);
    if (control_write(sv[0], w->msg) != 0) {
        log_error("worker %s port %d: cannot send the assignment: %s", w->topology_id, w->port, strerror(errno));
        uv_process_kill(&p->proc, SIGKILL); /* its exit restarts it */
    }
    return;
fail:
    free(p);
    if (sv[0] >= 0) close(sv[0]);
    if (sv[1] >= 0) close(sv[1]);
    if (devnull >= 0) close(devnull);
    if (logfd >= 0) close(logfd);
    schedule_restart(w);
}

static void on_kill_timer(uv_timer_t *t) {
    nworker *w = t->data;
    if (w->p) {
        log_warn("worker %s port %d (pid %d) did not stop within %lld s; killing it", w->topology_id, w->port,
                 w->pid, (long long)w->cleanup_secs + NODE_STOP_SLACK_SECS);
        uv_process_kill(&w->p->proc, SIGKILL);
    }
}

static void stop_worker(nworker *w) {
    if (w->state == W_STOPPING || w->state == W_GONE) return;
    if (w->state == W_WAIT_RESTART || !w->p) {
        worker_gone(w);
        return;
    }
    w->state = W_STOPPING;
    json_t *stop = json_pack("{s:s}", "type", "stop");
    uv_os_fd_t fd;
    if (!stop || !w->p->pipe_open || uv_fileno((uv_handle_t *)&w->p->pipe, &fd) != 0 || control_write(fd, stop) != 0) {
        log_warn("worker %s port %d: cannot send stop; sending SIGTERM", w->topology_id, w->port);
        uv_process_kill(&w->p->proc, SIGTERM);
    }
    json_decref(stop);
    uv_timer_start(&w->timer, on_kill_timer, (uint64_t)(w->cleanup_secs + NODE_STOP_SLACK_SECS) * 1000, 0);
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
    return msg;
}

static nworker *new_worker(node *n, const char *tid, int port, int index, json_t *msg, const conf *tc) {
    nworker *w = calloc(1, sizeof *w);
    if (!w || !(w->topology_id = strdup(tid))) {
        free(w);
        log_error("out of memory adding a worker");
        return NULL;
    }
    w->n = n;
    w->port = port;
    w->index = index;
    w->msg = json_incref(msg);
    w->hb_interval_ms = conf_int(tc, "worker.heartbeat.interval.ms");
    if (w->hb_interval_ms <= 0) w->hb_interval_ms = 1000;
    w->cleanup_secs = conf_int(tc, "task.cleanup.timeout.sec");
    if (w->cleanup_secs < 0) w->cleanup_secs = 0;
    store_key(w->status_key, sizeof w->status_key, n->cluster, "workers/%s/%s:%d", tid, n->id, port);
    snprintf(w->log_path, sizeof w->log_path, "%s/logs/%s/worker-%d.log", n->local_dir, tid, port);
    uv_timer_init(n->loop, &w->timer);
    w->timer.data = w;
    w->next = n->workers;
    n->workers = w;
    return w;
}

static void apply_assignment(node *n, const char *value) {
    json_error_t jerr;
    json_t *a = json_loads(value, 0, &jerr);
    const char *tid = json_string_value(json_object_get(a, "topology_id"));
    json_t *workers = json_object_get(a, "workers");
    conf *tc = a ? conf_from_json(json_object_get(a, "conf")) : NULL;
    if (!tid || !json_is_array(workers) || !tc) {
        log_error("ignoring a malformed assignment: %s", a ? "missing topology_id, workers or conf" : jerr.text);
        json_decref(a);
        if (tc) conf_free(tc);
        return;
    }
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
        if (!listed) stop_worker(w);
    }
    size_t i;
    json_t *e;
    json_array_foreach(workers, i, e) {
        const char *nd = json_string_value(json_object_get(e, "node"));
        int port = (int)json_integer_value(json_object_get(e, "port"));
        if (!nd || strcmp(nd, n->id) != 0) continue;
        json_t *msg = assignment_message(n, a, (int)i);
        if (!msg || port <= 0) {
            log_error("assignment %s: bad worker entry %zu", tid, i);
            json_decref(msg);
            continue;
        }
        nworker *w = find_worker(n, tid, port);
        if (!w) {
            if ((w = new_worker(n, tid, port, (int)i, msg, tc))) spawn_worker(w);
        } else if (w->state == W_STOPPING || !json_equal(w->next_msg ? w->next_msg : w->msg, msg)) {
            /* compared with what the worker will run next; a worker being
             * stopped (its assignment was removed) is respawned with this one */
            /* no in-place rebalance yet: restart the worker with its new tasks */
            log_info("assignment of %s port %d changed; restarting the worker", tid, port);
            json_decref(w->next_msg);
            w->next_msg = json_incref(msg);
            w->index = (int)i;
            if (w->state == W_WAIT_RESTART) {
                json_decref(w->msg);
                w->msg = w->next_msg;
                w->next_msg = NULL;
            } else {
                stop_worker(w);
            }
        }
        json_decref(msg);
    }
    conf_free(tc);
    json_decref(a);
}

static void forget_assignment(node *n, const char *key) {
    const char *tid = key + strlen(n->assign_prefix);
    for (nworker *w = n->workers, *next; w; w = next) {
        next = w->next;
        if (strcmp(w->topology_id, tid) == 0) {
            log_info("assignment %s removed; stopping worker port %d", tid, w->port);
            stop_worker(w);
        }
    }
}

static void on_assignment_event(void *arg, const store_event *ev) {
    node *n = arg;
    if (n->stopping) return;
    if (ev->type == STORE_EVENT_PUT) apply_assignment(n, ev->value);
    else forget_assignment(n, ev->key);
}

/* ---- timers ------------------------------------------------------------------------- */

static void on_keepalive(uv_timer_t *t) {
    node *n = t->data;
    if (store_lease_keepalive(n->st, n->lease) != 0) log_error("node %s: lease keepalive failed", n->id);
}

/* Kills workers whose heartbeat is older than 3 intervals + the start timeout. */
static void on_check(uv_timer_t *t) {
    node *n = t->data;
    uint64_t now = uv_now(n->loop);
    for (nworker *w = n->workers; w; w = w->next) {
        if (w->state != W_RUNNING || !w->p) continue;
        /* timers run before I/O: after a stall of our own loop, heartbeats
         * may be waiting in the socket; read them before judging */
        drain_pipe(w->p);
        uint64_t last = w->last_hb_ms > w->spawned_ms ? w->last_hb_ms : w->spawned_ms;
        uint64_t limit = (uint64_t)(3 * w->hb_interval_ms + n->start_timeout_ms);
        if (now - last > limit) {
            log_warn("worker %s port %d (pid %d): no heartbeat for %llu ms; killing it", w->topology_id, w->port,
                     w->pid, (unsigned long long)(now - last));
            uv_process_kill(&w->p->proc, SIGKILL); /* its exit restarts it */
            w->last_hb_ms = now;                   /* one kill per period */
        }
    }
}

static void on_done_timer(uv_timer_t *t) {
    node *n = t->data;
    if (n->done_cb) n->done_cb(n->done_arg);
}

static void check_done(node *n) {
    if (!n->stopping || n->workers || n->done_called) return;
    n->done_called = true;
    uv_timer_stop(&n->keepalive_timer);
    uv_timer_stop(&n->check_timer);
    if (n->lease && store_lease_revoke(n->st, n->lease) < 0) log_warn("node %s: cannot revoke its lease", n->id);
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
    if (n->restart_delay_ms < 0) n->restart_delay_ms = 0;
    if (n->start_timeout_ms < 0) n->start_timeout_ms = 0;
    if (!n->id || !n->exe || !n->cluster || !n->host || !n->local_dir) {
        log_error("out of memory creating the node");
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
    if (store_lease_grant(st, NODE_LEASE_TTL_SECS, &n->lease) != 0) goto fail;
    json_t *slots = json_array();
    for (int i = 0; i < n->nports; i++) json_array_append_new(slots, json_integer(n->ports[i]));
    json_t *reg = json_pack("{s:s, s:s, s:o, s:s, s:i, s:I}", "id", n->id, "host", n->host, "slots", slots, "version",
                            STREAMD_VERSION, "pid", (int)getpid(), "since_ms", (json_int_t)wall_ms());
    char *text = reg ? json_dumps(reg, JSON_COMPACT) : NULL;
    json_decref(reg);
    int rc = text ? store_put(st, n->node_key, text, n->lease, NULL) : -1;
    free(text);
    if (rc != 0) {
        log_error("node %s: cannot register", n->id);
        store_lease_revoke(st, n->lease);
        goto fail;
    }
    n->watch = store_watch_prefix(st, n->assign_prefix, on_assignment_event, n);
    if (!n->watch) {
        store_lease_revoke(st, n->lease);
        goto fail;
    }
    uv_timer_init(loop, &n->keepalive_timer);
    uv_timer_init(loop, &n->check_timer);
    uv_timer_init(loop, &n->done_timer);
    n->keepalive_timer.data = n->check_timer.data = n->done_timer.data = n;
    n->open_handles = 3;
    uv_timer_start(&n->keepalive_timer, on_keepalive, NODE_KEEPALIVE_MS, NODE_KEEPALIVE_MS);
    uv_timer_start(&n->check_timer, on_check, NODE_CHECK_MS, NODE_CHECK_MS);
    log_info("node %s registered (%d slots)", n->id, n->nports);
    /* assignments made before we started */
    store_kv *kvs;
    size_t nkv;
    if (store_list_prefix(st, n->assign_prefix, &kvs, &nkv) == 0) {
        for (size_t i = 0; i < nkv; i++) apply_assignment(n, kvs[i].value);
        store_kvs_free(kvs, nkv);
    }
    return n;
fail:
    free_fields(n);
    free(n);
    return NULL;
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
        stop_worker(w);
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
    if (n->watch) store_watch_cancel(n->st, n->watch);
    if (n->lease) store_lease_revoke(n->st, n->lease);
    free_fields(n);
    n->id = n->exe = n->cluster = n->host = n->local_dir = NULL;
    uv_close((uv_handle_t *)&n->keepalive_timer, node_closed);
    uv_close((uv_handle_t *)&n->check_timer, node_closed);
    uv_close((uv_handle_t *)&n->done_timer, node_closed);
}
