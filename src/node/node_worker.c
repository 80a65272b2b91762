/*
 * node_worker: one supervised worker process of a node (node_internal.h):
 * spawns `streamd --role=worker --control-fd=3` with a control socketpair,
 * puts it in its cgroup, hands it its assignment (control_chan: the node
 * never waits on a worker's socket; one that stops reading is killed once
 * NODE_CONTROL_QUEUE bytes wait for it), reads its heartbeats and
 * the error lines it reports, records why it ended (exit status, signal, OOM
 * kill, hang), restarts it with backoff when it dies or stops heartbeating, and stops it gracefully (stop message,
 * then SIGKILL, repeated every second until it is gone, once the worker's
 * own budget and a slack have passed).
 * Threads: only the node's loop thread.
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "node/node_internal.h"

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

static void wproc_closed(uv_handle_t *h) {
    wproc *p = h->data;
    if (--p->open_handles == 0) free(p);
}

/* An error line the worker reported: logged, and kept for its status. */
static void keep_error(nworker *w, json_int_t task, const char *text) {
    char line[512];
    if (!text) text = "?";
    if (task > 0 && task < INT32_MAX) snprintf(line, sizeof line, "task %lld: %s", (long long)task, text);
    else snprintf(line, sizeof line, "%s", text);
    for (char *c = line; *c; c++)
        if ((unsigned char)*c < 0x20) *c = ' '; /* one line each, whatever the worker sent */
    log_warn("worker %s port %d: %s", w->topology_id, w->port, line);
    if (!w->errors && !(w->errors = json_array())) return;
    for (size_t i = 0; i < json_array_size(w->errors); i++) /* a restarted worker says the same again */
        if (strcmp(json_string_value(json_array_get(w->errors, i)) ?: "", line) == 0) json_array_remove(w->errors, i--);
    json_array_append_new(w->errors, json_string(line));
    while (json_array_size(w->errors) > NODE_ERRORS_KEPT) json_array_remove(w->errors, 0);
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
        if (w->state == W_RUNNING) node_worker_state(w, "running");
        node_worker_heartbeat(w, msg);
    } else if (strcmp(type, "started") == 0) {
        log_info("worker %s port %d started (pid %lld)", w->topology_id, w->port,
                 (long long)json_integer_value(json_object_get(msg, "pid")));
    } else if (strcmp(type, "error") == 0) {
        keep_error(w, json_integer_value(json_object_get(msg, "task")),
                   json_string_value(json_object_get(msg, "message")));
    } else {
        log_debug("worker %s port %d: ignoring control message '%s'", w->topology_id, w->port, type);
    }
}

static void close_pipe(wproc *p) {
    control_chan_close(p->chan);
    p->chan = NULL;
}

static void on_chan_end(void *arg, int err) {
    wproc *p = arg;
    if (err == -EPROTO && p->w)
        log_error("worker %s port %d: bad control message; closing its channel", p->w->topology_id, p->w->port);
    close_pipe(p);
    /* a worker we cannot hear is restarted now rather than at the
     * heartbeat deadline */
    if (p->w && err != 0) uv_process_kill(&p->proc, SIGTERM);
}

/* Reads what the dead process left in the socket, so its last heartbeat
 * (final counters) is not lost when the exit is noticed first. */
static void drain_pipe(wproc *p) {
    if (p->chan) control_chan_read_now(p->chan);
}

/* Queues msg for the worker; a worker that leaves NODE_CONTROL_QUEUE bytes
 * unread is stalled: killed (its exit restarts it). 0 or a negative code. */
static int send_to(nworker *w, const json_t *msg) {
    wproc *p = w->p;
    if (!p || !p->chan) return -EPIPE;
    int rc = control_chan_send(p->chan, msg, false);
    if (rc == -ENOBUFS) {
        log_warn("worker %s port %d (pid %d) does not read its control channel (%zu bytes waiting); killing it",
                 w->topology_id, w->port, w->pid, control_chan_queued(p->chan));
        snprintf(w->hung, sizeof w->hung, "killed: stalled: control channel full");
        close_pipe(p);
        uv_process_kill(&p->proc, SIGKILL);
    }
    return rc;
}

/* Puts the new process in its cgroup before it gets its assignment (and so
 * before it runs any component code). Nonzero: the worker must not run
 * (supervisor.cgroup.required). */
static int place_in_cgroup(nworker *w) {
    node *n = w->n;
    w->in_cg = false;
    if (n->cg.mode == CG_OFF) return 0;
    int rc = cg_create(&n->cg, w->topology_id, w->port, &w->lim);
    if (rc == 0) w->oom_base = cg_oom_kills(&n->cg, w->topology_id, w->port);
    if (rc == 0 && !w->cg_recorded) {
        /* before any process is in it: what the record names is all a later
         * node start may kill */
        int r = cgo_record(n->cg_record_dir, w->topology_id, w->port);
        if (r != 0)
            log_warn("worker %s port %d: cannot record its cgroup in %s: %s; a later start will not clean it up",
                     w->topology_id, w->port, n->cg_record_dir, sd_strerror(r));
        w->cg_recorded = true; /* warn once */
    }
    if (rc == 0) rc = cg_attach(&n->cg, w->topology_id, w->port, w->pid);
    if (rc == 0) {
        w->in_cg = true;
        return 0;
    }
    char path[PATH_MAX];
    cg_path(&n->cg, w->topology_id, w->port, path, sizeof path);
    if (n->cg_required) {
        log_error("worker %s port %d: cannot set up its cgroup %s: %s (supervisor.cgroup.required is set)",
                  w->topology_id, w->port, path, sd_strerror(rc));
        /* the reason, not the SIGKILL that follows, is its last exit */
        snprintf(w->hung, sizeof w->hung, "refused: no cgroup (supervisor.cgroup.required): %s", sd_strerror(rc));
        return rc;
    }
    log_warn("worker %s port %d: cannot set up its cgroup %s: %s; it runs without", w->topology_id, w->port, path,
             sd_strerror(rc));
    return 0;
}

/* The process is gone: its cgroup goes too (a restart makes a new one). */
void node_worker_remove_cgroup(nworker *w) {
    if (w->n->cg.mode == CG_OFF) return;
    int rc = cg_remove(&w->n->cg, w->topology_id, w->port);
    if (rc != 0) log_warn("worker %s port %d: cannot remove its cgroup: %s", w->topology_id, w->port, sd_strerror(rc));
}

static void on_restart_timer(uv_timer_t *t) {
    nworker *w = t->data;
    if (w->state == W_WAIT_RESTART) node_worker_spawn(w);
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
    node_worker_state(w, w->failures >= NODE_FAILED_AFTER ? "failed" : "restarting");
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
    json_decref(w->last_hb); /* a heartbeat speaks for a live process only */
    w->last_hb = NULL;
    bool oom = w->in_cg && term_signal == SIGKILL &&
               cg_oom_kills(&w->n->cg, w->topology_id, w->port) > w->oom_base;
    w->in_cg = false;
    node_worker_remove_cgroup(w);
    if (oom)
        log_warn("worker %s port %d (pid %d) OOM killed: it went over its cgroup's memory limit of %lld MB",
                 w->topology_id, w->port, w->pid, (long long)w->lim.memory_mb);
    else if (term_signal)
        log_warn("worker %s port %d (pid %d) killed by signal %d (%s)", w->topology_id, w->port, w->pid,
                 term_signal, strsignal(term_signal));
    else if (status != 0 || w->state != W_STOPPING)
        log_warn("worker %s port %d (pid %d) exited with status %lld", w->topology_id, w->port, w->pid,
                 (long long)status);
    else
        log_info("worker %s port %d (pid %d) exited", w->topology_id, w->port, w->pid);
    if (w->hung[0] && term_signal == SIGKILL) snprintf(w->last_exit, sizeof w->last_exit, "%s", w->hung);
    else if (oom) snprintf(w->last_exit, sizeof w->last_exit, "OOM killed (memory limit %lld MB)", (long long)w->lim.memory_mb);
    else if (term_signal) snprintf(w->last_exit, sizeof w->last_exit, "signal %d (%s)", term_signal, strsignal(term_signal));
    else snprintf(w->last_exit, sizeof w->last_exit, "status %lld", (long long)status);
    w->hung[0] = '\0';
    uv_timer_stop(&w->timer);
    if (w->state == W_STOPPING) {
        if (w->next_msg && !w->n->stopping) { /* a changed assignment: start over with it */
            json_decref(w->msg);
            w->msg = w->next_msg;
            w->next_msg = NULL;
            node_worker_spawn(w);
        } else {
            node_worker_gone(w);
        }
    } else if (w->n->stopping) {
        node_worker_gone(w);
    } else {
        schedule_restart(w);
    }
}

void node_worker_spawn(nworker *w) {
    node *n = w->n;
    int sv[2] = {-1, -1}, devnull = -1, logfd = -1, outfd = -1;
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
    /* worker.stdout.redirect: the log, a file of its own, or /dev/null */
    if (w->out_path[0] && strcmp(w->out_path, w->log_path) != 0 &&
        (outfd = open(w->out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0) {
        log_error("cannot open %s: %s", w->out_path, strerror(errno));
        goto fail;
    }
    int out = outfd >= 0 ? outfd : w->out_path[0] ? logfd : open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (out < 0) {
        log_error("cannot open /dev/null: %s", strerror(errno));
        goto fail;
    }
    if (out != logfd) outfd = out;
    /* a worker running as worker.user rotates its own log in this directory */
    if (n->drop_privs && (chown(dir, n->worker_uid, n->worker_gid) != 0 ||
                          fchown(logfd, n->worker_uid, n->worker_gid) != 0 ||
                          (outfd >= 0 && w->out_path[0] && fchown(outfd, n->worker_uid, n->worker_gid) != 0)))
        log_warn("cannot hand %s to the worker user: %s", dir, strerror(errno));
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        log_error("socketpair: %s", strerror(errno));
        goto fail;
    }
    char *args[] = {n->exe, "--role=worker", "--control-fd=3", "--log-fd=4",
                    w->json_log ? "--log-format=json" : "--log-format=text", NULL};
    uv_stdio_container_t stdio[5] = {
        {.flags = UV_INHERIT_FD, .data.fd = devnull},
        {.flags = UV_INHERIT_FD, .data.fd = out},
        {.flags = UV_INHERIT_FD, .data.fd = out},
        {.flags = UV_INHERIT_FD, .data.fd = sv[1]},
        {.flags = UV_INHERIT_FD, .data.fd = logfd},
    };
    /* own session: a terminal's Ctrl-C reaches only us, and we stop the
     * workers gracefully */
    uv_process_options_t opts = {.exit_cb = on_proc_exit, .file = n->exe, .args = args, .stdio_count = 5,
                                 .stdio = stdio, .flags = UV_PROCESS_DETACHED};
    if (n->drop_privs) {
        /* libuv drops the supplementary groups, then setgid and setuid
         * before exec: the worker has no capabilities left */
        opts.flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
        opts.uid = n->worker_uid;
        opts.gid = n->worker_gid;
    }
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
    if (outfd >= 0) close(outfd);
    devnull = logfd = outfd = -1;
    p->w = w;
    w->p = p;
    w->pid = p->proc.pid;
    w->state = W_RUNNING;
    w->spawned_ms = uv_now(n->loop);
    w->last_hb_ms = 0;
    p->chan = control_chan_new(n->loop, sv[0], NODE_CONTROL_QUEUE, on_control_msg, on_chan_end, p);
    if (!p->chan) {
        log_error("worker %s port %d: control channel: %s", w->topology_id, w->port, strerror(errno));
        close(sv[0]);
        uv_process_kill(&p->proc, SIGKILL);
        return;
    }
    if (place_in_cgroup(w) != 0) {
        uv_process_kill(&p->proc, SIGKILL); /* its exit restarts it */
        return;
    }
    log_info("started worker %s port %d (pid %d, log %s)", w->topology_id, w->port, w->pid, w->log_path);
    node_worker_state(w, "starting");
    if ((rc = send_to(w, w->msg)) != 0 && rc != -ENOBUFS) {
        log_error("worker %s port %d: cannot send the assignment: %s", w->topology_id, w->port, sd_strerror(rc));
        uv_process_kill(&p->proc, SIGKILL); /* its exit restarts it */
    }
    return;
fail:
    free(p);
    if (sv[0] >= 0) close(sv[0]);
    if (sv[1] >= 0) close(sv[1]);
    if (devnull >= 0) close(devnull);
    if (logfd >= 0) close(logfd);
    if (outfd >= 0) close(outfd);
    schedule_restart(w);
}

static void on_kill_timer(uv_timer_t *t) {
    nworker *w = t->data;
    if (w->p) {
        log_warn("worker %s port %d (pid %d) did not stop within %lld s; killing it", w->topology_id, w->port,
                 w->pid, (long long)(w->cleanup_secs > 1 ? w->cleanup_secs : 1) + NODE_STOP_SLACK_SECS);
        /* repeated (the timer repeats) until its exit is seen */
        uv_process_kill(&w->p->proc, SIGKILL);
    }
}

void node_worker_stop(nworker *w) {
    if (w->state == W_STOPPING || w->state == W_GONE) return;
    if (w->state == W_WAIT_RESTART || !w->p) {
        node_worker_gone(w);
        return;
    }
    w->state = W_STOPPING;
    node_worker_state(w, "stopping");
    json_t *stop = json_pack("{s:s}", "type", "stop");
    int rc = stop ? send_to(w, stop) : -ENOMEM;
    if (rc != 0 && rc != -ENOBUFS) { /* -ENOBUFS: send_to killed it */
        log_warn("worker %s port %d: cannot send stop; sending SIGTERM", w->topology_id, w->port);
        uv_process_kill(&w->p->proc, SIGTERM);
    }
    json_decref(stop);
    /* the worker's budget is task.cleanup.timeout.sec, at least 1 s */
    uint64_t budget = (uint64_t)(w->cleanup_secs > 1 ? w->cleanup_secs : 1);
    uv_timer_start(&w->timer, on_kill_timer, (budget + NODE_STOP_SLACK_SECS) * 1000, 1000);
}

nworker *node_worker_new(node *n, const char *tid, int port, int index, json_t *msg, const conf *tc,
                         const cg_limits *lim) {
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
    w->lim = *lim;
    w->hb_interval_ms = conf_int(tc, "worker.heartbeat.interval.ms");
    if (w->hb_interval_ms <= 0) w->hb_interval_ms = 1000;
    w->hb_timeout_ms = conf_int(tc, "worker.heartbeat.timeout.secs") * 1000;
    /* at least two heartbeats may be late */
    if (w->hb_timeout_ms < 3 * w->hb_interval_ms) w->hb_timeout_ms = 3 * w->hb_interval_ms;
    w->cleanup_secs = conf_int(tc, "task.cleanup.timeout.sec");
    if (w->cleanup_secs < 0) w->cleanup_secs = 0;
    store_key(w->status_key, sizeof w->status_key, n->cluster, "workers/%s/%s:%d", tid, n->id, port);
    snprintf(w->log_path, sizeof w->log_path, "%s/logs/%s/worker-%d.log", n->local_dir, tid, port);
    w->json_log = strcmp(conf_str_or(tc, "log.format", "text"), "json") == 0;
    const char *redirect = conf_str_or(tc, "worker.stdout.redirect", "log");
    if (strcmp(redirect, "file") == 0)
        snprintf(w->out_path, sizeof w->out_path, "%s/logs/%s/worker-%d.out", n->local_dir, tid, port);
    else if (strcmp(redirect, "null") == 0) w->out_path[0] = '\0';
    else snprintf(w->out_path, sizeof w->out_path, "%s", w->log_path);
    uv_timer_init(n->loop, &w->timer);
    w->timer.data = w;
    w->next = n->workers;
    n->workers = w;
    return w;
}

/* Kills workers not heard from within supervisor.worker.start.timeout.secs
 * of their start, or within worker.heartbeat.timeout.secs of their last
 * heartbeat. */
void node_worker_check(node *n) {
    uint64_t now = uv_now(n->loop);
    for (nworker *w = n->workers; w; w = w->next) {
        if (w->state != W_RUNNING || !w->p) continue;
        /* timers run before I/O: after a stall of our own loop, heartbeats
         * may be waiting in the socket; read them before judging */
        drain_pipe(w->p);
        bool heard = w->last_hb_ms > w->spawned_ms;
        uint64_t last = heard ? w->last_hb_ms : w->spawned_ms;
        uint64_t limit = heard ? (uint64_t)w->hb_timeout_ms : (uint64_t)n->start_timeout_ms;
        if (now - last > limit) {
            log_warn("worker %s port %d (pid %d): %s for %llu ms; killing it", w->topology_id, w->port, w->pid,
                     heard ? "no heartbeat" : "not heard from since its start", (unsigned long long)(now - last));
            snprintf(w->hung, sizeof w->hung, "%s",
                     heard ? "killed: hung: no heartbeat" : "killed: no heartbeat after its start");
            uv_process_kill(&w->p->proc, SIGKILL); /* its exit restarts it */
            w->last_hb_ms = now;                   /* one kill per period */
        }
    }
}

void node_worker_send(nworker *w, json_t *msg) {
    /* a worker not running now gets the current state with its assignment when it (re)starts */
    if (w->state != W_RUNNING || !w->p || !w->p->chan) return;
    int rc = send_to(w, msg);
    if (rc != 0 && rc != -ENOBUFS)
        log_warn("worker %s port %d: cannot send a control message: %s", w->topology_id, w->port, sd_strerror(rc));
}
