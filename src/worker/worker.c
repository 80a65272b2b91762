/*
 * worker: one topology's tasks in one process. Control messages from the
 * node: assignment (first), stop, activate, deactivate, loglevel; to the
 * node: started, heartbeat, error (every ERROR line it logs, so the node can
 * show why it fails). SIGTERM and SIGINT stop it like "stop": drain and
 * every task's cleanup within task.cleanup.timeout.sec. It sets
 * no_new_privs before any component code runs.
 *
 * Threads:
 *  - the main thread runs the libuv loop: the transport (all sockets),
 *    delivery of received tuples to executor queues, heartbeats, the
 *    control channel (control_chan: non-blocking both ways, so a node that
 *    stops reading costs one queued heartbeat, never a stalled loop) and the
 *    stop sequence. It owns struct worker and never blocks.
 *  - a pool of worker.executor.threads threads running the tasks in
 *    slices (runner.c, sched.c).
 */
#include "worker/worker.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <uv.h>

#include "proto/control.h"
#include "proto/control_chan.h"
#include "runtime/executor.h"
#include "runtime/peer_down.h"
#include "runtime/runner.h"
#include "base/err.h"
#include "runtime/wire_check.h"
#include "worker/hb_tasks.h"
#include "transport/auth.h"
#include "base/log.h"
#include "tuple/tuple_pool.h"

void collector_set_topology(const topology *t);

/* Bytes of messages to the node that may wait while it does not read:
 * heartbeats replace each other, so this bounds the error lines. */
#define WORKER_CONTROL_QUEUE (256u << 10)

typedef struct worker {
    uv_loop_t loop;
    worker_rt rt;
    topology *topo;
    conf *conf;
    char *topology_id;
    int control_fd;
    control_chan *ctl;          /* the channel once the loop runs (before: control_fd, blocking) */
    uint64_t ctl_dropped;       /* control_chan_dropped() when last looked at */
    uint64_t ctl_stall_base;    /* ... when the node stopped reading */
    bool ctl_stalled;           /* the node is not reading (logged once until it reads again) */
    uv_timer_t heartbeat_timer, stop_timer, retry_timer, ready_timer;
    int64_t ready_deadline_ns;
    uv_check_t deliver_check;
    uv_signal_t sigterm, sigint;
    /* received tuples waiting for their executor's queue (loop thread) */
    tuple_batch **waiting_head, **waiting_tail; /* [ntasks + 1]: FIFO per task */
    int *waiting_dests, nwaiting_dests;  /* tasks with tuples waiting */
    char *listed;               /* [ntasks + 1]: task is in waiting_dests */
    size_t nwaiting;            /* tuples waiting in all of them */
    size_t high_watermark, low_watermark;
    size_t high_bytes, low_bytes; /* of tuples alive in this process (tuple_pool_busy_bytes) */
    uv_timer_t throttle_timer;  /* re-checks the budget while we throttle */
    uint64_t throttle_logged_ms; /* loop time of the last backpressure line at info */
    bool self_throttle;         /* we asked the spouts to pause */
    bool *peer_throttle;        /* [nworkers]: that peer asked */
    uint64_t last_activity;
    int stopping;               /* stop sequence started */
    bool start_inactive;        /* the topology is deactivated: spouts wait for "activate" */
    int64_t stop_deadline_ns, exit_deadline_ns;
    int exit_code;
    transport_peer *peers;
    bool has_key;               /* the assignment carried the topology secret */
    uint8_t key[AUTH_KEY_BYTES], content_hash[AUTH_HASH_BYTES];
    struct tuple_pool *loop_pool; /* received tuples (loop thread) */
    wire_memo *wire_memo;         /* received tuples that passed (loop thread; with peers only) */
} worker;

/* ---- control channel ------------------------------------------------------- */

/* Errors logged in this process (any thread: sd_report_error, a task that
 * failed to open, a topology that does not load), passed on to the node as
 * "error" messages from the loop thread, so they reach the console and
 * `streamd status`. The log hook has no argument: process-wide. */
#define WORKER_ERRORS_KEPT 8
static struct {
    pthread_mutex_t lock;
    char text[WORKER_ERRORS_KEPT][512];
    int task[WORKER_ERRORS_KEPT];
    uint64_t logged, sent;
} errs = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void keep_error(int task, const char *text) {
    pthread_mutex_lock(&errs.lock);
    int i = (int)(errs.logged++ % WORKER_ERRORS_KEPT);
    snprintf(errs.text[i], sizeof errs.text[i], "%s", text);
    errs.task[i] = task;
    pthread_mutex_unlock(&errs.lock);
}

static int control_send(worker *w, json_t *msg);

/* Sends the errors logged since the last call (the latest WORKER_ERRORS_KEPT). */
static void send_errors(worker *w) {
    json_t *msgs = json_array();
    if (!msgs) return;
    pthread_mutex_lock(&errs.lock);
    uint64_t from = errs.logged - errs.sent > WORKER_ERRORS_KEPT ? errs.logged - WORKER_ERRORS_KEPT : errs.sent;
    for (uint64_t k = from; k < errs.logged; k++) {
        int i = (int)(k % WORKER_ERRORS_KEPT);
        json_array_append_new(msgs, json_pack("{s:s, s:i, s:s}", "type", "error", "task", errs.task[i], "message",
                                              errs.text[i]));
    }
    errs.sent = errs.logged;
    pthread_mutex_unlock(&errs.lock);
    size_t k;
    json_t *m;
    json_array_foreach(msgs, k, m) {
        if (json_is_object(m)) control_send(w, json_incref(m));
    }
    json_decref(msgs);
}

/* Sends msg (the reference is ours) to the node. Never blocks the loop: a
 * node that stops reading gets only the latest heartbeat when it reads
 * again, and the error lines that fit in WORKER_CONTROL_QUEUE; the rest is
 * dropped and counted in the log. Returns 0 or a negative code. */
static int control_send(worker *w, json_t *msg) {
    int rc;
    if (w->ctl) {
        bool hb = strcmp(json_string_value(json_object_get(msg, "type")) ?: "", "heartbeat") == 0;
        rc = control_chan_send(w->ctl, msg, hb);
        uint64_t dropped = control_chan_dropped(w->ctl);
        if (dropped > w->ctl_dropped && !w->ctl_stalled) {
            w->ctl_stalled = true;
            w->ctl_stall_base = w->ctl_dropped;
            log_warn("the node is not reading the control channel: keeping only the latest heartbeat");
        }
        w->ctl_dropped = dropped;
    } else {
        /* before the loop runs (a worker that cannot start): blocking, bounded */
        rc = control_write(w->control_fd, msg) == 0 ? 0 : -errno;
    }
    json_decref(msg);
    return rc;
}

static void on_control_msg(void *arg, json_t *msg);
static void begin_stop(worker *w, const char *why);

static void on_control_end(void *arg, int err) {
    worker *w = arg;
    if (err == -EPROTO) log_error("malformed control message from the node; closing the channel");
    else if (err != 0) log_warn("control channel: %s", sd_strerror(err));
    begin_stop(w, "the node went away");
}

/* Blocking read of the first message (the assignment), before the loop runs. */
static void first_message_cb(void *arg, json_t *msg) {
    json_t **out = arg;
    if (!*out) *out = json_incref(msg);
}

static json_t *read_assignment(int fd) {
    control_reader reader = {0};
    json_t *msg = NULL;
    char c[4096];
    while (!msg) {
        /* read byte-wise chunks no larger than what the first frame needs, so
         * later messages stay in the socket for the control channel */
        size_t want = 4;
        if (reader.len >= 4) {
            uint32_t len = ((uint32_t)reader.buf[0] << 24) | ((uint32_t)reader.buf[1] << 16) |
                           ((uint32_t)reader.buf[2] << 8) | reader.buf[3];
            want = 4 + len - reader.len;
        } else {
            want = 4 - reader.len;
        }
        if (want > sizeof c) want = sizeof c;
        ssize_t n = read(fd, c, want);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            log_error("control channel closed before the assignment arrived");
            break;
        }
        if (control_reader_feed(&reader, c, (size_t)n, first_message_cb, &msg) != 0) {
            log_error("malformed assignment message");
            break;
        }
    }
    control_reader_free(&reader);
    return msg;
}

/* ---- delivery of received tuples ----------------------------------------------
 *
 * The loop never blocks and never stops reading: a worker that stopped
 * reading while its bolts waited on another worker could close a cycle
 * (A waits on B waits on A) and deadlock the topology. Tuples for a full
 * queue wait here, in order, and when more than
 * topology.backpressure.high.watermark of them wait, the worker asks every
 * spout of the topology (its own and, by a throttle frame, its peers') to
 * pause until they fall below the low watermark. Bolts keep running, so
 * what is in flight drains and memory stays bounded. */

static int push_waiting(worker *w, int dest) {
    tuple_batch *b;
    while ((b = w->waiting_head[dest]) != NULL) {
        tuple_batch *next = b->next;
        uint32_t n = b->n;
        if (queue_push(w->rt.task_exec[dest]->inq, b, true) != 0) return -1;
        w->waiting_head[dest] = next;
        w->nwaiting -= n;
    }
    w->waiting_tail[dest] = NULL;
    return 0;
}

static void on_throttle_timer(uv_timer_t *h);

static void update_throttle(worker *w) {
    bool on = w->self_throttle;
    size_t bytes = tuple_pool_busy_bytes();
    if (!on && (w->nwaiting > w->high_watermark || bytes > w->high_bytes)) on = true;
    else if (on && w->nwaiting < w->low_watermark && bytes < w->low_bytes) on = false;
    if (on == w->self_throttle) return;
    w->self_throttle = on;
    atomic_fetch_add(&w->rt.throttle_votes, on ? 1 : -1);
    if (w->rt.tr) transport_set_throttle(w->rt.tr, on);
    /* memory drains without any I/O waking the loop: poll until it has */
    if (on) uv_timer_start(&w->throttle_timer, on_throttle_timer, 1, 1);
    else uv_timer_stop(&w->throttle_timer);
    /* it may switch hundreds of times a second under a steady overload:
     * one line in ten seconds at info */
    uint64_t now = uv_now(&w->loop);
    bool info = !w->throttle_logged_ms || now - w->throttle_logged_ms >= 10000;
    if (info) w->throttle_logged_ms = now;
    log_task(info ? SD_LOG_INFO : SD_LOG_DEBUG, 0, "backpressure %s: %zu tuples waiting for full queues, %zu KiB of tuples",
             on ? "on" : "off", w->nwaiting, bytes >> 10);
}

static void on_peer_throttle(void *arg, int peer, bool on) {
    worker *w = arg;
    if (peer < 0 || peer >= w->rt.nworkers || w->peer_throttle[peer] == on) return;
    w->peer_throttle[peer] = on;
    atomic_fetch_add(&w->rt.throttle_votes, on ? 1 : -1);
}

static const char *check_tuple(void *arg, int peer, const sd_tuple *t) {
    worker *w = arg;
    return wire_check_memo(&w->rt, w->wire_memo, peer, t);
}

static int deliver_tuple(void *arg, sd_tuple *t) {
    worker *w = arg;
    int dest = t->dest_task;
    if (dest < 1 || dest > w->topo->ntasks || !w->rt.task_exec[dest]) {
        log_warn("dropping a tuple for task %d, which does not run here", dest);
        tuple_unref(t);
        return 0;
    }
    tuple_batch *b = w->waiting_tail[dest];
    if (!b || b->n == b->cap) {
        tuple_batch *nb = tuple_batch_new(w->rt.batch_size);
        if (!nb) return -1; /* out of memory: let the transport hold it */
        if (b) b->next = nb;
        else w->waiting_head[dest] = nb;
        w->waiting_tail[dest] = nb;
        b = nb;
        if (!w->listed[dest]) {
            w->listed[dest] = 1;
            w->waiting_dests[w->nwaiting_dests++] = dest;
        }
    }
    b->items[b->n++] = t;
    w->nwaiting++;
    return 0;
}

/* a peer is down: the trees it holds up fail now (peer_down.h) */
static void on_unsent(void *arg, int peer, const sd_tuple *t) {
    worker *w = arg;
    peer_down_fail_unsent(&w->rt, w->loop_pool, peer, t, deliver_tuple, w);
}

static void on_peer_down(void *arg, int peer) {
    worker *w = arg;
    peer_down_notify_spouts(&w->rt, w->loop_pool, peer, deliver_tuple, w);
}

static void on_retry_timer(uv_timer_t *h);

static void flush_waiting(worker *w) {
    int kept = 0;
    /* every destination's batches first, then the pool threads they wake:
     * a thread woken by the first push had preempted the loop (7,000 times
     * a second in a two-worker run on two cores) before it handed over the rest */
    runner_hold_wakeups(&w->rt, true);
    for (int i = 0; i < w->nwaiting_dests; i++) {
        int dest = w->waiting_dests[i];
        if (push_waiting(w, dest) != 0) w->waiting_dests[kept++] = dest;
        else w->listed[dest] = 0;
    }
    runner_hold_wakeups(&w->rt, false);
    w->nwaiting_dests = kept;
    update_throttle(w);
    /* a full queue: try again shortly rather than spin the loop */
    if (kept && !uv_is_active((uv_handle_t *)&w->retry_timer))
        uv_timer_start(&w->retry_timer, on_retry_timer, 1, 0);
}

static void on_deliver_check(uv_check_t *h) { flush_waiting(h->data); }
static void on_retry_timer(uv_timer_t *h) { flush_waiting(h->data); }
static void on_throttle_timer(uv_timer_t *h) { update_throttle(h->data); }

/* ---- heartbeats ------------------------------------------------------------------ */

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    long pages = 0, resident = 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static json_t *heartbeat_message(worker *w) {
    uint64_t activity = 0;
    json_t *tasks = hb_task_columns(&w->rt, &activity);
    if (!tasks) return NULL;
    bool idle = activity == w->last_activity;
    w->last_activity = activity;
    json_t *msg = json_pack("{s:s, s:I, s:i, s:o, s:b, s:I, s:I, s:b}", "type", "heartbeat", "time_ms",
                            (json_int_t)(uv_now(&w->loop)), "worker_index", w->rt.worker_index, "task_columns", tasks,
                            "idle", idle, "rss_kb", (json_int_t)rss_kb(), "waiting", (json_int_t)w->nwaiting,
                            "throttled", atomic_load(&w->rt.throttle_votes) > 0);
    if (msg && w->rt.tr) {
        transport_stats st;
        transport_get_stats(w->rt.tr, &st);
        json_object_set_new(msg, "transport",
                            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:i}", "buffered_bytes",
                                      (json_int_t)st.buffered_bytes, "tuples_sent", (json_int_t)st.tuples_sent,
                                      "tuples_received", (json_int_t)st.tuples_received, "tuples_dropped",
                                      (json_int_t)st.tuples_dropped, "frames_rejected",
                                      (json_int_t)st.frames_rejected, "handshakes_rejected",
                                      (json_int_t)st.handshakes_rejected, "peers_timed_out",
                                      (json_int_t)st.peers_timed_out, "bytes_sent", (json_int_t)st.bytes_sent,
                                      "connected_peers", st.connected_peers, "shm_peers", st.shm_peers));
    }
    return msg;
}

static void on_heartbeat(uv_timer_t *h) {
    worker *w = h->data;
    send_errors(w);
    log_rotate_check(); /* components may fill it through stdout */
    for (int i = 0; i < w->rt.nexecs && !w->stopping; i++) {
        if (atomic_load(&w->rt.execs[i]->done)) {
            /* a task that could not open: exit non-zero, without a heartbeat,
             * so the node counts a failed start (and backs off, or gives up) */
            w->exit_code = 1;
            begin_stop(w, "a task ended unexpectedly");
        }
    }
    if (w->exit_code != 0) return;
    if (w->ctl_stalled && control_chan_queued(w->ctl) == 0) {
        log_info("the node reads the control channel again (%llu messages were dropped or replaced)",
                 (unsigned long long)(w->ctl_dropped - w->ctl_stall_base));
        w->ctl_stalled = false;
    }
    json_t *msg = heartbeat_message(w);
    if (msg) control_send(w, msg); /* a full queue is reported by control_send */
}

/* ---- stop sequence ----------------------------------------------------------------- */

static void transport_closed(void *arg) {
    worker *w = arg;
    w->rt.tr = NULL;
    uv_stop(&w->loop);
}

static void finish(worker *w, bool all_done) {
    uv_timer_stop(&w->stop_timer);
    send_errors(w);
    json_t *msg = w->exit_code == 0 ? heartbeat_message(w) : NULL;
    /* what a heartbeat of this topology costs, with the run's counts */
    if (msg) log_info("last heartbeat: %zu bytes for %d tasks", json_dumpb(msg, NULL, 0, JSON_COMPACT), w->rt.nexecs);
    if (msg) control_send(w, msg);
    /* a task still running may still send: leave the transport alone then,
     * the process exits without freeing it */
    if (w->rt.tr && all_done) transport_close(w->rt.tr, transport_closed, w);
    else uv_stop(&w->loop);
}

/* Polled every 20 ms once stopping: first drain (spouts deactivated, wait
 * for trees in flight and queues to empty, up to task.cleanup.timeout.sec),
 * then tell executors to clean up and wait for them. */
static void on_stop_timer(uv_timer_t *h) {
    worker *w = h->data;
    int64_t now = now_ns();
    if (!atomic_load(&w->rt.stopping)) {
        bool drained = w->nwaiting == 0;
        for (int i = 0; i < w->rt.nexecs && drained; i++) {
            executor *ex = w->rt.execs[i];
            if (!ex->started || atomic_load(&ex->done)) continue;
            if (atomic_load(&ex->pending_count) > 0 || queue_depth(ex->inq) > 0 || runner_task_busy(ex))
                drained = false;
        }
        if (!drained && now < w->stop_deadline_ns) return;
        if (!drained) log_warn("cleanup timeout reached with tuples still in flight");
        atomic_store(&w->rt.stopping, true);
        for (int i = 0; i < w->rt.nexecs; i++) queue_close(w->rt.execs[i]->inq);
        runner_wake_all(&w->rt);
        /* the tasks' cleanup gets what is left of the budget */
        if (w->exit_deadline_ns < now + 200000000LL) w->exit_deadline_ns = now + 200000000LL;
        return;
    }
    bool all_done = true;
    for (int i = 0; i < w->rt.nexecs; i++)
        all_done = all_done && (!w->rt.execs[i]->started || atomic_load(&w->rt.execs[i]->done));
    if (all_done || now >= w->exit_deadline_ns) {
        if (!all_done) log_warn("some tasks did not finish their cleanup in time");
        finish(w, all_done);
    }
}

static void begin_stop(worker *w, const char *why) {
    if (w->stopping) return;
    w->stopping = 1;
    log_info("stopping (%s): deactivating spouts and draining", why);
    atomic_store(&w->rt.active, false);
    /* the whole stop (drain, then every task's cleanup) fits in
     * task.cleanup.timeout.sec (at least 1 s): draining may use it up to
     * the last min(2 s, half of it), which is kept for the cleanup */
    int64_t budget = conf_int(w->conf, "task.cleanup.timeout.sec") * 1000000000LL;
    if (budget < 1000000000LL) budget = 1000000000LL;
    int64_t keep = budget / 2 < 2000000000LL ? budget / 2 : 2000000000LL;
    int64_t now = now_ns();
    w->stop_deadline_ns = now + budget - keep;
    w->exit_deadline_ns = now + budget;
    uv_timer_start(&w->stop_timer, on_stop_timer, 20, 20);
}

static void on_signal(uv_signal_t *h, int signum) {
    begin_stop(h->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void on_control_msg(void *arg, json_t *msg) {
    worker *w = arg;
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (!type) return;
    if (!strcmp(type, "stop")) begin_stop(w, "asked by the node");
    else if (!strcmp(type, "activate") && !w->stopping) {
        w->start_inactive = false;
        atomic_store(&w->rt.active, true);
    } else if (!strcmp(type, "deactivate")) {
        w->start_inactive = true;
        atomic_store(&w->rt.active, false);
    } else if (!strcmp(type, "loglevel")) {
        sd_log_level level;
        const char *name = json_string_value(json_object_get(msg, "level"));
        if (name && log_parse_level(name, &level) == 0) {
            log_set_level(level);
            log_task(level, 0, "log level now %s", name);
        } else {
            log_warn("loglevel: bad level");
        }
    } else {
        log_warn("unknown control message '%s'", type);
    }
}

/* ---- setup ----------------------------------------------------------------------- */

/* Fills rt->task_worker and the peer list from the assignment's workers. */
static int read_layout(worker *w, json_t *workers) {
    worker_rt *rt = &w->rt;
    rt->nworkers = (int)json_array_size(workers);
    if (rt->nworkers < 1 || rt->worker_index < 0 || rt->worker_index >= rt->nworkers) {
        log_error("assignment: worker index %d of %d workers", rt->worker_index, rt->nworkers);
        return -1;
    }
    rt->task_worker = calloc((size_t)w->topo->ntasks + 1, sizeof(int));
    w->peers = calloc((size_t)rt->nworkers, sizeof *w->peers);
    if (!rt->task_worker || !w->peers) return -1;
    for (int t = 0; t <= w->topo->ntasks; t++) rt->task_worker[t] = -1;
    size_t i;
    json_t *wk;
    json_array_foreach(workers, i, wk) {
        const char *host = json_string_value(json_object_get(wk, "host"));
        snprintf(w->peers[i].host, sizeof w->peers[i].host, "%s", host ? host : "127.0.0.1");
        w->peers[i].port = (int)json_integer_value(json_object_get(wk, "port"));
        size_t k;
        json_t *task;
        json_array_foreach(json_object_get(wk, "tasks"), k, task) {
            json_int_t id = json_integer_value(task);
            if (id < 1 || id > w->topo->ntasks) {
                log_error("assignment names task %lld; the topology has %d", (long long)id, w->topo->ntasks);
                return -1;
            }
            rt->task_worker[id] = (int)i;
        }
    }
    for (int t = 1; t <= w->topo->ntasks; t++) {
        if (rt->task_worker[t] < 0) {
            log_error("assignment leaves task %d without a worker", t);
            return -1;
        }
    }
    return 0;
}

static int build_runtime(worker *w) {
    worker_rt *rt = &w->rt;
    rt->topo = w->topo;
    rt->conf = w->conf;
    rt->topology_id = w->topology_id;
    rt->batch_size = (uint32_t)conf_int(w->conf, "topology.transfer.batch.size");
    if (rt->batch_size < 1) rt->batch_size = 1;
    rt->slice_tuples = (uint32_t)conf_int(w->conf, "worker.executor.slice.tuples");
    if (rt->slice_tuples < 1) rt->slice_tuples = 1;
    rt->timeout_ns = conf_int(w->conf, "topology.message.timeout.secs") * 1000000000LL;
    rt->tick_ns = conf_int(w->conf, "topology.tick.tuple.freq.secs") * 1000000000LL;
    rt->spout_idle_ns = conf_int(w->conf, "topology.spout.idle.sleep.us") * 1000LL;
    rt->max_pending = (int)conf_int(w->conf, "topology.max.spout.pending");
    rt->acker = topology_component(w->topo, TOPO_ACKER_ID);
    if (routes_build(rt) != 0) return -1;
    rt->task_exec = calloc((size_t)w->topo->ntasks + 1, sizeof *rt->task_exec);
    rt->execs = calloc((size_t)w->topo->ntasks, sizeof *rt->execs);
    w->waiting_head = calloc((size_t)w->topo->ntasks + 1, sizeof *w->waiting_head);
    w->waiting_tail = calloc((size_t)w->topo->ntasks + 1, sizeof *w->waiting_tail);
    w->waiting_dests = calloc((size_t)w->topo->ntasks + 1, sizeof *w->waiting_dests);
    w->listed = calloc((size_t)w->topo->ntasks + 1, 1);
    w->peer_throttle = calloc((size_t)rt->nworkers, sizeof *w->peer_throttle);
    if (!rt->task_exec || !rt->execs || !w->waiting_head || !w->waiting_tail || !w->waiting_dests ||
        !w->listed || !w->peer_throttle)
        return -1;
    w->high_watermark = (size_t)conf_int(w->conf, "topology.backpressure.high.watermark");
    w->low_watermark = (size_t)conf_int(w->conf, "topology.backpressure.low.watermark");
    w->high_bytes = (size_t)conf_int(w->conf, "topology.backpressure.high.watermark.bytes");
    w->low_bytes = (size_t)conf_int(w->conf, "topology.backpressure.low.watermark.bytes");
    rt->spout_hold_bytes = w->high_bytes;
    for (int t = 1; t <= w->topo->ntasks; t++) {
        if (rt->task_worker[t] != rt->worker_index) continue;
        executor *ex = executor_new(rt, t);
        if (!ex) return -1;
        rt->task_exec[t] = ex;
        rt->execs[rt->nexecs++] = ex;
    }
    return 0;
}

static int start_transport(worker *w) {
    if (w->rt.nworkers < 2) return 0;
    if (!w->has_key) {
        log_error("the assignment carries no topology secret: peers could not be authenticated");
        return -1;
    }
    w->loop_pool = tuple_pool_new();
    w->wire_memo = calloc(1, sizeof *w->wire_memo);
    if (!w->loop_pool || !w->wire_memo) return -1;
    /* the ring stands for the socket's buffers: the same bytes in flight */
    size_t ring_bytes = (size_t)conf_int(w->conf, "worker.transfer.socket.buffer.bytes");
    if (ring_bytes == 0) ring_bytes = (size_t)1 << 20;
    if (!conf_bool(w->conf, "worker.transfer.shared.memory")) ring_bytes = 0;
    transport_config cfg = {
        .topology_id = w->topology_id,
        .secret = w->key,
        .content_hash = w->content_hash,
        .worker_index = w->rt.worker_index,
        .nworkers = w->rt.nworkers,
        .peers = w->peers,
        .batch_bytes = (size_t)conf_int(w->conf, "worker.transfer.batch.bytes"),
        .flush_interval_ms = (int)conf_int(w->conf, "worker.transfer.flush.interval.ms"),
        .lz4_threshold = (size_t)conf_int(w->conf, "worker.transfer.lz4.threshold.bytes"),
        .max_frame_bytes = (size_t)conf_int(w->conf, "worker.transfer.max.frame.bytes"),
        .max_buffered_bytes = (size_t)conf_int(w->conf, "worker.transfer.max.buffered.bytes"),
        .socket_buffer_bytes = (int)conf_int(w->conf, "worker.transfer.socket.buffer.bytes"),
        .shm_ring_bytes = ring_bytes,
        .handshake_timeout_ms = (int)conf_int(w->conf, "worker.transfer.handshake.timeout.ms"),
        .max_unauthenticated = (int)conf_int(w->conf, "worker.transfer.max.unauthenticated"),
        .heartbeat_interval_ms = (int)conf_int(w->conf, "worker.transfer.heartbeat.interval.ms"),
        .peer_timeout_ms = (int)(conf_int(w->conf, "worker.transfer.peer.timeout.secs") * 1000),
        .on_throttle = on_peer_throttle,
        .on_unsent = w->rt.acker ? on_unsent : NULL, /* acking off: only counted as dropped */
        .on_peer_down = on_peer_down,
        .pool = w->loop_pool,
        .check = check_tuple,
    };
    w->rt.tr = transport_new(&w->loop, &cfg, w->topo, deliver_tuple, w);
    if (!w->rt.tr || transport_start(w->rt.tr) != 0) {
        log_error("cannot start the transport on port %d", w->peers[w->rt.worker_index].port);
        return -1;
    }
    return 0;
}

static bool log_fd_given; /* our log is a file of our own (rotated by size) */

static int setup_from_assignment(worker *w, json_t *a) {
    char err[1024];
    const char *type = json_string_value(json_object_get(a, "type"));
    const char *path = json_string_value(json_object_get(a, "topology_path"));
    const char *id = json_string_value(json_object_get(a, "topology_id"));
    if (!type || strcmp(type, "assignment") != 0 || !path || !id) {
        log_error("the first control message is not an assignment");
        return -1;
    }
    /* the topology's secret (absent: a single worker has no peers) and the
     * package hash (absent in local mode: the topology file's own hash) */
    const char *secret = json_string_value(json_object_get(a, "secret"));
    const char *package = json_string_value(json_object_get(a, "package"));
    if (secret && auth_hex_decode(secret, w->key) != 0) {
        log_error("assignment: \"secret\" is not 64 hex digits");
        return -1;
    }
    w->has_key = secret != NULL;
    int hrc = package ? auth_hex_decode(package, w->content_hash) : auth_file_hash(path, w->content_hash);
    if (hrc != 0) {
        log_error("assignment: cannot get the topology's content hash (%s)", package ? "bad \"package\"" : sd_strerror(hrc));
        return -1;
    }
    w->topology_id = strdup(id);
    w->conf = conf_from_json(json_object_get(a, "conf"));
    if (!w->topology_id || !w->conf) {
        log_error("assignment: malformed conf");
        return -1;
    }
    /* one arena by default: tuples come from slabs, so malloc is off the
     * hot path, while an arena per thread kept each thread's own peak
     * resident (~7 MiB more per worker in bench-w2-ackoff; the single arena
     * costs ~8 % of CPU per tuple with acking on, one worker) */
    int arenas = (int)conf_int(w->conf, "worker.malloc.arenas");
    if (arenas > 0 && !mallopt(M_ARENA_MAX, arenas)) log_warn("mallopt(M_ARENA_MAX) failed");
    sd_log_level level;
    if (log_parse_level(conf_str_or(w->conf, "log.level", "info"), &level) == 0) log_set_level(level);
    log_set_json(strcmp(conf_str_or(w->conf, "log.format", "text"), "json") == 0);
    int64_t rotate = conf_int(w->conf, "log.rotate.bytes");
    if (rotate > 0 && log_fd_given &&
        log_rotate_by_size(rotate, (int)conf_int(w->conf, "log.rotate.keep"),
                           strcmp(conf_str_or(w->conf, "worker.stdout.redirect", "log"), "log") == 0) != 0)
        log_warn("cannot rotate the log: its file is not known");
    /* a level set at run time wins (streamd loglevel) */
    const char *live = json_string_value(json_object_get(a, "log_level"));
    if (live && log_parse_level(live, &level) == 0) log_set_level(level);
    w->rt.worker_index = (int)json_integer_value(json_object_get(a, "worker_index"));
    w->start_inactive = json_is_false(json_object_get(a, "active"));
    char tag[96];
    snprintf(tag, sizeof tag, "%d", w->rt.worker_index);
    log_set_tags(json_string_value(json_object_get(a, "cluster")), id, tag);
    /* w->conf is already fully merged: apply it over the file, not under it */
    w->topo = topology_load(path, NULL, w->conf, err, sizeof err);
    if (!w->topo) {
        log_error("cannot load the topology: %s", err);
        return -1;
    }
    collector_set_topology(w->topo);
    if (read_layout(w, json_object_get(a, "workers")) != 0) return -1;
    snprintf(tag, sizeof tag, "%s:%d", w->peers[w->rt.worker_index].host, w->peers[w->rt.worker_index].port);
    log_set_tags(NULL, NULL, tag);
    return build_runtime(w);
}

static void free_worker(worker *w) {
    for (int i = 0; i < w->rt.nexecs; i++) executor_free(w->rt.execs[i]);
    if (w->waiting_head) {
        for (int t = 0; t <= w->topo->ntasks; t++) {
            for (tuple_batch *b = w->waiting_head[t], *next; b; b = next) {
                next = b->next;
                tuple_batch_free(b);
            }
        }
    }
    free(w->waiting_head);
    free(w->waiting_tail);
    free(w->waiting_dests);
    free(w->listed);
    free(w->peer_throttle);
    if (w->loop_pool) tuple_pool_close(w->loop_pool); /* after the tuples above are released */
    free(w->wire_memo);
    routes_free(&w->rt);
    free(w->rt.task_exec);
    free(w->rt.execs);
    free(w->rt.task_worker);
    free(w->peers);
    if (w->topo) topology_free(w->topo);
    if (w->conf) conf_free(w->conf);
    free(w->topology_id);
    OPENSSL_cleanse(w->key, sizeof w->key);
}

/* this topology's workers on this worker's host, itself included: they
 * share its CPUs */
static int workers_on_my_host(const worker *w) {
    int n = 0;
    for (int i = 0; i < w->rt.nworkers; i++)
        if (strcmp(w->peers[i].host, w->peers[w->rt.worker_index].host) == 0) n++;
    return n;
}

static void start_executors(worker *w) {
    atomic_store(&w->rt.active, !w->start_inactive);
    int threads = runner_threads(w->conf, workers_on_my_host(w));
    if (runner_start(&w->rt, threads) != 0) {
        begin_stop(w, "the executor threads failed to start");
        return;
    }
    log_info("worker started: %d tasks on %d executor threads, %d workers in the topology", w->rt.nexecs, threads,
             w->rt.nworkers);
}

/* Tasks start once every peer is connected (or after a while without some
 * of them): spouts that started earlier would only fill buffers for, or
 * drop tuples to, workers that are not there yet. */
static void on_ready_timer(uv_timer_t *h) {
    worker *w = h->data;
    transport_stats st;
    transport_get_stats(w->rt.tr, &st);
    bool all = st.connected_peers >= w->rt.nworkers - 1;
    if (!all && now_ns() < w->ready_deadline_ns) return;
    uv_timer_stop(h);
    if (!all) log_warn("starting with %d of %d peers connected", st.connected_peers, w->rt.nworkers - 1);
    if (!w->stopping) start_executors(w);
}

static void close_handle(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Tuples are allocated on one thread and freed on another at millions per
 * second; glibc's default of trimming and regrowing the heap on every swing
 * made that a syscall storm (perf: sysmalloc, brk). Keep freed memory. The
 * number of arenas is worker.malloc.arenas, set once the assignment's
 * configuration is known (before the executor threads start). */
static void tune_malloc(void) {
    if (!mallopt(M_TRIM_THRESHOLD, 128 << 20) || !mallopt(M_TOP_PAD, 16 << 20) ||
        !mallopt(M_MMAP_THRESHOLD, 1 << 20))
        log_warn("mallopt failed; tuple allocation will be slower");
}

int worker_main(int control_fd, int log_fd) {
    if (log_fd >= 0) log_use_fd(log_fd);
    log_fd_given = log_fd >= 0;
    signal(SIGPIPE, SIG_IGN);
    tune_malloc();
    log_set_error_hook(keep_error);
    /* before any other libcrypto call: a worker only computes HMAC-SHA256
     * (transport/auth.c), so it reads no system OpenSSL configuration and
     * loads no error strings or cipher tables (0.6 MiB of resident pages) */
    if (!OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ADD_ALL_CIPHERS |
                                 OPENSSL_INIT_NO_ADD_ALL_DIGESTS | OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS,
                             NULL))
        log_warn("cannot initialise libcrypto; its defaults apply");
    /* no exec from user code gains privileges (setuid binaries, file caps) */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) log_warn("cannot set no_new_privs: %s", strerror(errno));
    worker *w = calloc(1, sizeof *w);
    if (!w) return 1;
    w->control_fd = control_fd;
    int rc = 1;
    json_t *assignment = read_assignment(control_fd);
    if (!assignment || uv_loop_init(&w->loop) != 0) goto out_noloop;
    if (setup_from_assignment(w, assignment) != 0) {
        bool said = errs.logged > 0;
        send_errors(w);
        json_t *err = said ? NULL : json_pack("{s:s, s:i, s:s}", "type", "error", "task", 0, "message",
                                              "worker failed to start (see its log)");
        if (err) control_send(w, err);
        rc = 2;
        goto out;
    }
    w->ctl = control_chan_new(&w->loop, control_fd, WORKER_CONTROL_QUEUE, on_control_msg, on_control_end, w);
    if (!w->ctl) {
        log_error("cannot watch the control channel: %s", strerror(errno));
        goto out;
    }
    uv_timer_init(&w->loop, &w->heartbeat_timer);
    uv_timer_init(&w->loop, &w->stop_timer);
    uv_timer_init(&w->loop, &w->retry_timer);
    uv_timer_init(&w->loop, &w->throttle_timer);
    uv_check_init(&w->loop, &w->deliver_check);
    uv_signal_init(&w->loop, &w->sigterm);
    uv_signal_init(&w->loop, &w->sigint);
    w->heartbeat_timer.data = w->stop_timer.data = w->retry_timer.data = w->throttle_timer.data = w;
    w->deliver_check.data = w->sigterm.data = w->sigint.data = w;
    uv_check_start(&w->deliver_check, on_deliver_check);
    uv_signal_start(&w->sigterm, on_signal, SIGTERM);
    uv_signal_start(&w->sigint, on_signal, SIGINT);
    if (start_transport(w) != 0) goto out;
    uv_timer_init(&w->loop, &w->ready_timer);
    w->ready_timer.data = w;
    if (w->rt.tr) {
        w->ready_deadline_ns = now_ns() + conf_int(w->conf, "supervisor.worker.start.timeout.secs") * 1000000000LL;
        uv_timer_start(&w->ready_timer, on_ready_timer, 5, 5);
    } else {
        start_executors(w);
    }
    json_t *started = json_pack("{s:s, s:i}", "type", "started", "pid", (int)getpid());
    if (started) control_send(w, started);
    int64_t hb = conf_int(w->conf, "worker.heartbeat.interval.ms");
    uv_timer_start(&w->heartbeat_timer, on_heartbeat, (uint64_t)(hb > 0 ? hb : 1000), (uint64_t)(hb > 0 ? hb : 1000));
    uv_run(&w->loop, UV_RUN_DEFAULT);
    rc = w->exit_code;
    /* the last heartbeat (final counters) and errors, if the node reads */
    if (control_chan_flush_sync(w->ctl, 1000) != 0) log_warn("the node did not take our last messages");
    for (int i = 0; i < w->rt.nexecs; i++) {
        executor *ex = w->rt.execs[i];
        if (ex->started && !atomic_load(&ex->done)) {
            /* a task stuck in user code: leave it (the process exits now),
             * and say so in the exit status: the stop was not clean */
            log_error("task %d did not stop; exiting without it (status %d)", ex->task, WORKER_EXIT_STUCK);
            send_errors(w); /* that line, for the node to show */
            control_chan_flush_sync(w->ctl, 1000);
            json_decref(assignment);
            _exit(WORKER_EXIT_STUCK);
        }
    }
    if (w->rt.tr) {
        /* finish left it open while a task was still in its cleanup; that
         * task has ended since (above), so nothing sends any more */
        transport_close(w->rt.tr, transport_closed, w);
        uv_run(&w->loop, UV_RUN_DEFAULT);
    }
    runner_stop(&w->rt);
    log_info("worker stopped");
out:
    if (w->ctl) control_chan_close(w->ctl); /* closes control_fd once the loop lets go of it */
    uv_walk(&w->loop, close_handle, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
out_noloop:
    json_decref(assignment);
    free_worker(w);
    free(w);
    return rc;
}
