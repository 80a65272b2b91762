/*
 * transport: worker-to-worker TCP data plane (interface in transport.h).
 *
 * Connections: worker i dials every worker j > i; j accepts and learns i
 * from the handshake, so each pair shares exactly one bidirectional
 * connection. The dialer sends its handshake first; the acceptor checks it
 * (magic, version, topology id, a plausible index) and answers with its own;
 * only then do batches flow. The dialer reconnects with exponential backoff
 * (RECONNECT_MIN_MS .. RECONNECT_MAX_MS) whenever its connection is lost.
 *
 * Threads and data:
 * - the loop thread owns every uv handle, every conn (reader state, the
 *   batch being delivered, a held tuple), the write requests, each peer's
 *   `conn`, reconnect timer and backoff, and tr->conns;
 * - sender threads (transport_send) and the loop thread share each peer's
 *   out buffer, its in-flight byte count and its connected/closed flags,
 *   under peer->mu; senders wait on peer->room for backpressure;
 * - statistics are atomics, readable from any thread.
 *
 * Batching: a sender wakes the loop (uv_async) only when a peer's buffer
 * goes from empty to non-empty or crosses batch_bytes. The loop sends a
 * buffer right away when no write is in flight for that peer (low latency
 * when idle); otherwise bytes accumulate until the write completes, the
 * buffer reaches batch_bytes, or the flush timer fires (batching under load).
 */
#include "transport.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "frame.h"
#include "log.h"

#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 5000
#define HANDSHAKE_TIMEOUT_MS 5000
#define DELIVER_RETRY_MS 1
#define CLOSE_GRACE_MS 2000
#define READ_BUF_BYTES 65536

#define DEFAULT_BATCH_BYTES (64u << 10)
#define DEFAULT_FLUSH_MS 5
#define DEFAULT_MAX_FRAME (16u << 20)
#define DEFAULT_MAX_BUFFERED (8u << 20)

enum conn_state { CONN_CONNECTING, CONN_HANDSHAKE, CONN_UP, CONN_CLOSING };

typedef struct conn conn;

typedef struct peer {
    transport *tr;
    int index;
    bool dial;                 /* we connect to it (its index is above ours) */
    /* shared with senders, under mu */
    pthread_mutex_t mu;
    pthread_cond_t room;
    uint8_t *buf;              /* batch records: (u32 len, codec bytes)... */
    size_t len, cap;
    uint32_t ntuples;          /* records in buf */
    uint8_t *spare;            /* a recycled buffer, saves a malloc per flush */
    size_t spare_cap;
    size_t inflight;           /* record bytes handed to uv_write, not completed */
    bool connected;
    bool closed;               /* transport closing: no more uv_async_send */
    /* loop thread only */
    conn *conn;                /* the handshaken connection, or NULL */
    int writes;                /* uv_write requests outstanding */
    uv_timer_t reconnect;
    bool reconnect_init;
    int backoff_ms;
} peer;

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;          /* handshake deadline, then deliver retries */
    uv_connect_t connect_req;
    uv_shutdown_t shutdown_req;
    transport *tr;
    peer *peer;                /* dialer: the target; acceptor: set by the handshake */
    enum conn_state state;
    bool outgoing;
    bool paused;               /* reading stopped: deliver said the destination is full */
    int open_handles;
    frame_reader rd;
    const uint8_t *batch;      /* payload of the batch being delivered (inside rd) */
    size_t batch_len, batch_off;
    sd_tuple *held;            /* refused by deliver, offered again on the timer */
    conn *prev, *next;
};

/* one uv_write of a peer's swapped-out buffer, cut into frames */
typedef struct wreq {
    uv_write_t req;
    peer *peer;
    uint8_t *data;             /* the records; recycled as the peer's spare */
    size_t data_cap, data_len;
    uint8_t *lz4;              /* compressed payloads, or NULL */
    uint32_t ntuples, nframes;
    size_t wire_bytes;
    /* followed by uv_buf_t[2 * nframes] (header, payload) and frame_slice[nframes] */
} wreq;

struct transport {
    uv_loop_t *loop;
    transport_config cfg;      /* peers and topology_id point at our copies */
    char *topology_id;
    transport_peer *addrs;
    const topology *topo;
    transport_deliver_cb deliver;
    void *deliver_arg;
    size_t frame_limit;        /* max payload of a frame we send */
    peer *peers;
    uv_tcp_t listener;
    uv_async_t wake;
    uv_timer_t flush_timer;
    uv_timer_t close_timer;
    atomic_bool started;       /* read by senders: no uv_async_send before start */
    bool closing, close_timer_on;
    bool throttle_on;          /* what we last asked our peers */
    uv_thread_t loop_thread;
    conn *conns;
    int nconns;
    int open_handles;
    void (*done)(void *);
    void *done_arg;
    uint8_t rbuf[READ_BUF_BYTES]; /* loop thread: every read lands here, then is copied to a reader */
    _Atomic uint64_t tuples_sent, tuples_received, tuples_dropped;
    _Atomic uint64_t bytes_sent, bytes_received, frames_sent, frames_received;
    _Atomic uint64_t frames_rejected, handshakes_rejected;
    atomic_int connected_peers;
};

#define STAT_ADD(tr, field, n) atomic_fetch_add_explicit(&(tr)->field, (n), memory_order_relaxed)

static void conn_close(conn *c, const char *why);
static void conn_process(conn *c);
static void peer_flush(peer *p);
static void maybe_finish(transport *tr);

static void peer_schedule_reconnect(peer *p);

/* ---- setup ------------------------------------------------------------- */

transport *transport_new(uv_loop_t *loop, const transport_config *cfg, const topology *topo,
                         transport_deliver_cb deliver, void *arg) {
    if (!cfg->topology_id || cfg->nworkers <= 0 || cfg->worker_index < 0 ||
        cfg->worker_index >= cfg->nworkers || !cfg->peers || !deliver) {
        log_error("transport: invalid configuration (worker %d of %d)", cfg->worker_index, cfg->nworkers);
        return NULL;
    }
    if (strlen(cfg->topology_id) > FRAME_MAX_TOPOLOGY_ID || cfg->nworkers > UINT16_MAX) {
        log_error("transport: topology id or worker count too large for the handshake");
        return NULL;
    }
    transport *tr = calloc(1, sizeof *tr);
    if (!tr) goto oom;
    tr->loop = loop;
    tr->cfg = *cfg;
    tr->topo = topo;
    tr->deliver = deliver;
    tr->deliver_arg = arg;
    if (!tr->cfg.batch_bytes) tr->cfg.batch_bytes = DEFAULT_BATCH_BYTES;
    if (tr->cfg.flush_interval_ms <= 0) tr->cfg.flush_interval_ms = DEFAULT_FLUSH_MS;
    if (!tr->cfg.max_frame_bytes) tr->cfg.max_frame_bytes = DEFAULT_MAX_FRAME;
    if (!tr->cfg.max_buffered_bytes) tr->cfg.max_buffered_bytes = DEFAULT_MAX_BUFFERED;
    if (tr->cfg.max_frame_bytes < 1024) tr->cfg.max_frame_bytes = 1024;
    tr->frame_limit = tr->cfg.max_frame_bytes - FRAME_HEADER_BYTES;
    tr->topology_id = strdup(cfg->topology_id);
    tr->addrs = calloc((size_t)cfg->nworkers, sizeof *tr->addrs);
    tr->peers = calloc((size_t)cfg->nworkers, sizeof *tr->peers);
    if (!tr->topology_id || !tr->addrs || !tr->peers) goto oom;
    memcpy(tr->addrs, cfg->peers, (size_t)cfg->nworkers * sizeof *tr->addrs);
    tr->cfg.peers = tr->addrs;
    tr->cfg.topology_id = tr->topology_id;
    for (int i = 0; i < cfg->nworkers; i++) {
        peer *p = &tr->peers[i];
        p->tr = tr;
        p->index = i;
        p->dial = i > cfg->worker_index;
        p->backoff_ms = RECONNECT_MIN_MS;
        if (pthread_mutex_init(&p->mu, NULL) != 0 || pthread_cond_init(&p->room, NULL) != 0) {
            log_error("transport: cannot initialise peer locks");
            /* earlier peers' locks are leaked on this path: it only happens on exhaustion */
            goto fail;
        }
    }
    return tr;
oom:
    log_error("transport: out of memory");
fail:
    if (tr) {
        free(tr->topology_id);
        free(tr->addrs);
        free(tr->peers);
        free(tr);
    }
    return NULL;
}

static void transport_free(transport *tr) {
    for (int i = 0; i < tr->cfg.nworkers; i++) {
        peer *p = &tr->peers[i];
        if (p->ntuples) STAT_ADD(tr, tuples_dropped, p->ntuples);
        free(p->buf);
        free(p->spare);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->room);
    }
    free(tr->peers);
    free(tr->addrs);
    free(tr->topology_id);
    free(tr);
}

static int parse_addr(const char *host, int port, struct sockaddr_storage *ss) {
    if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
    return -1;
}

/* ---- handles and closing ----------------------------------------------- */

static void on_handle_closed(uv_handle_t *h) {
    transport *tr = h->data;
    tr->open_handles--;
    maybe_finish(tr);
}

static void maybe_finish(transport *tr) {
    if (!tr->closing) return;
    if (tr->nconns == 0 && tr->close_timer_on) {
        tr->close_timer_on = false;
        uv_close((uv_handle_t *)&tr->close_timer, on_handle_closed);
        return;
    }
    if (tr->open_handles == 0 && tr->nconns == 0 && !tr->close_timer_on) {
        void (*done)(void *) = tr->done;
        void *arg = tr->done_arg;
        transport_free(tr);
        if (done) done(arg);
    }
}

static void conn_free(conn *c) {
    transport *tr = c->tr;
    if (c->prev) c->prev->next = c->next;
    else tr->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    tr->nconns--;
    frame_reader_free(&c->rd);
    free(c);
    maybe_finish(tr);
}

static void on_reconnect_closed(uv_handle_t *h) {
    peer *p = h->data;
    p->tr->open_handles--;
    maybe_finish(p->tr);
}

static void on_conn_handle_closed(uv_handle_t *h) {
    conn *c = h->data;
    if (--c->open_handles == 0) conn_free(c);
}

static conn *conn_new(transport *tr, bool outgoing, peer *p) {
    conn *c = calloc(1, sizeof *c);
    if (!c) {
        log_error("transport: out of memory for a connection");
        return NULL;
    }
    c->tr = tr;
    c->outgoing = outgoing;
    c->peer = p;
    c->state = outgoing ? CONN_CONNECTING : CONN_HANDSHAKE;
    frame_reader_init(&c->rd, tr->cfg.max_frame_bytes);
    int rc = uv_tcp_init(tr->loop, &c->tcp);
    if (rc != 0) {
        log_error("transport: uv_tcp_init: %s", uv_strerror(rc));
        free(c);
        return NULL;
    }
    c->tcp.data = c;
    uv_timer_init(tr->loop, &c->timer); /* cannot fail for a valid loop */
    c->timer.data = c;
    c->open_handles = 2;
    c->next = tr->conns;
    if (tr->conns) tr->conns->prev = c;
    tr->conns = c;
    tr->nconns++;
    return c;
}

static int conn_peer_index(const conn *c) { return c->peer ? c->peer->index : -1; }

/* "ip:port" of the remote end, for log lines about connections we refuse */
static const char *conn_addr(const conn *c, char *buf, size_t len) {
    struct sockaddr_storage ss;
    int n = sizeof ss;
    char ip[64] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &n) == 0) {
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof ip);
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof ip);
            port = ntohs(a->sin6_port);
        }
    }
    snprintf(buf, len, "%s:%d", ip, port);
    return buf;
}

/* Marks a peer up or down for the senders. */
static void peer_set_connected(peer *p, bool up) {
    pthread_mutex_lock(&p->mu);
    p->connected = up;
    /* waiters re-check: a peer gone down turns "wait" into "drop when full" */
    pthread_cond_broadcast(&p->room);
    pthread_mutex_unlock(&p->mu);
    atomic_fetch_add(&p->tr->connected_peers, up ? 1 : -1);
}

static void conn_close(conn *c, const char *why) {
    if (c->state == CONN_CLOSING) return;
    transport *tr = c->tr;
    bool was_up = c->state == CONN_UP;
    c->state = CONN_CLOSING;
    if (why) log_info("transport: connection with worker %d closed: %s", conn_peer_index(c), why);
    peer *p = c->peer;
    if (p && p->conn == c) {
        p->conn = NULL;
        if (was_up) {
            peer_set_connected(p, false);
            if (tr->cfg.on_throttle) tr->cfg.on_throttle(tr->deliver_arg, p->index, false);
        }
    }
    if (c->held) {
        tuple_unref(c->held);
        c->held = NULL;
        STAT_ADD(tr, tuples_dropped, 1);
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    if (c->outgoing && p && !tr->closing) peer_schedule_reconnect(p);
}

/* a protocol violation: counted, logged, only this connection closed */
static void conn_reject(conn *c, const char *what, const char *detail) {
    char addr[96];
    STAT_ADD(c->tr, frames_rejected, 1);
    log_warn("transport: rejecting %s from %s (worker %d): %s; closing that connection", what,
             conn_addr(c, addr, sizeof addr), conn_peer_index(c), detail);
    conn_close(c, NULL);
}

/* ---- writing ----------------------------------------------------------- */

static void on_write_done(uv_write_t *req, int status) {
    wreq *w = req->data;
    peer *p = w->peer;
    transport *tr = p->tr;
    p->writes--;
    if (status == 0) {
        STAT_ADD(tr, tuples_sent, w->ntuples);
        STAT_ADD(tr, frames_sent, w->nframes);
        STAT_ADD(tr, bytes_sent, w->wire_bytes);
    } else {
        STAT_ADD(tr, tuples_dropped, w->ntuples);
    }
    pthread_mutex_lock(&p->mu);
    p->inflight -= w->data_len;
    if (!p->spare) {
        p->spare = w->data;
        p->spare_cap = w->data_cap;
        w->data = NULL;
    }
    pthread_cond_broadcast(&p->room);
    bool more = p->len > 0;
    pthread_mutex_unlock(&p->mu);
    free(w->data);
    free(w->lz4);
    free(w);
    /* what accumulated behind this write goes out now, as one batch */
    if (more && p->writes == 0 && !tr->closing) peer_flush(p);
}

/* Sends a whole frame built elsewhere (handshakes); takes buf. */
static void on_simple_write(uv_write_t *req, int status) {
    (void)status; /* a failed handshake write shows up as a read error */
    free(req->data);
    free(req);
}

static int conn_write_frame(conn *c, uint8_t *buf, size_t len) {
    uv_write_t *req = malloc(sizeof *req);
    if (!req) {
        log_error("transport: out of memory for a write");
        free(buf);
        return -1;
    }
    req->data = buf;
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    int rc = uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_simple_write);
    if (rc != 0) {
        log_warn("transport: write to worker %d: %s", conn_peer_index(c), uv_strerror(rc));
        free(buf);
        free(req);
        return -1;
    }
    return 0;
}

/* Loop thread: sends everything buffered for p as one write of one or more frames. */
static void peer_flush(peer *p) {
    transport *tr = p->tr;
    conn *c = p->conn;
    if (!c || c->state != CONN_UP) return;
    pthread_mutex_lock(&p->mu);
    if (p->len == 0) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    uint8_t *data = p->buf;
    size_t len = p->len, cap = p->cap;
    uint32_t ntuples = p->ntuples;
    p->buf = p->spare;
    p->cap = p->spare_cap;
    p->spare = NULL;
    p->spare_cap = 0;
    p->len = 0;
    p->ntuples = 0;
    p->inflight += len;
    pthread_mutex_unlock(&p->mu);

    uint32_t nframes = frame_batch_count(data, len, tr->frame_limit);
    size_t need = sizeof(wreq) + (size_t)nframes * (2 * sizeof(uv_buf_t) + sizeof(frame_slice));
    wreq *w = malloc(need);
    size_t lz4_room = 0;
    if (w && tr->cfg.lz4_threshold > 0 && len >= tr->cfg.lz4_threshold) lz4_room = frame_lz4_bound(len) + 16 * (size_t)nframes;
    uint8_t *lz4 = lz4_room ? malloc(lz4_room) : NULL;
    if (!w || (lz4_room && !lz4)) {
        log_error("transport: out of memory flushing %zu bytes to worker %d; dropping them", len, p->index);
        free(w);
        free(data);
        STAT_ADD(tr, tuples_dropped, ntuples);
        pthread_mutex_lock(&p->mu);
        p->inflight -= len;
        pthread_cond_broadcast(&p->room);
        pthread_mutex_unlock(&p->mu);
        return;
    }
    memset(w, 0, sizeof *w);
    w->peer = p;
    w->data = data;
    w->data_cap = cap;
    w->data_len = len;
    w->lz4 = lz4;
    w->ntuples = ntuples;
    w->nframes = nframes;
    w->req.data = w;
    uv_buf_t *bufs = (uv_buf_t *)(w + 1);
    frame_slice *slices = (frame_slice *)(bufs + 2 * (size_t)nframes);
    w->wire_bytes = frame_batch_cut(data, len, tr->frame_limit, tr->cfg.lz4_threshold, lz4, lz4_room, slices);
    for (uint32_t f = 0; f < nframes; f++) {
        bufs[2 * f] = uv_buf_init((char *)slices[f].header, FRAME_HEADER_BYTES);
        bufs[2 * f + 1] = uv_buf_init((char *)slices[f].payload, (unsigned)slices[f].len);
    }
    p->writes++;
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, 2 * nframes, on_write_done);
    if (rc != 0) {
        /* the callback never runs for a refused write: undo by hand */
        p->writes--;
        STAT_ADD(tr, tuples_dropped, ntuples);
        pthread_mutex_lock(&p->mu);
        p->inflight -= len;
        pthread_cond_broadcast(&p->room);
        pthread_mutex_unlock(&p->mu);
        free(w->data);
        free(w->lz4);
        free(w);
        conn_close(c, uv_strerror(rc));
    }
}

/* Loop thread, on wake-up: flush idle peers at once, busy ones only when full. */
static void on_wake(uv_async_t *a) {
    transport *tr = a->data;
    if (tr->closing) return;
    for (int i = 0; i < tr->cfg.nworkers; i++) {
        peer *p = &tr->peers[i];
        if (!p->conn || p->conn->state != CONN_UP) continue;
        pthread_mutex_lock(&p->mu);
        size_t len = p->len;
        pthread_mutex_unlock(&p->mu);
        if (len > 0 && (p->writes == 0 || len >= tr->cfg.batch_bytes)) peer_flush(p);
    }
}

static void on_flush_timer(uv_timer_t *t) {
    transport *tr = t->data;
    for (int i = 0; i < tr->cfg.nworkers; i++) peer_flush(&tr->peers[i]);
}

/* ---- reading ----------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    conn *c = h->data;
    *buf = uv_buf_init((char *)c->tr->rbuf, READ_BUF_BYTES);
}

static void conn_start_reading(conn *c);

static void on_conn_timer(uv_timer_t *t) {
    conn *c = t->data;
    if (c->state == CONN_CLOSING) return;
    if (c->state != CONN_UP) {
        conn_close(c, "handshake timed out");
        return;
    }
    if (!c->paused) return;
    c->paused = false;
    conn_process(c);
    if (!c->paused && c->state == CONN_UP) {
        uv_timer_stop(&c->timer);
        conn_start_reading(c);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void conn_start_reading(conn *c) {
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0) conn_close(c, uv_strerror(rc));
}

static void conn_send_handshake(conn *c) {
    transport *tr = c->tr;
    uint8_t payload[16 + FRAME_MAX_TOPOLOGY_ID];
    size_t n = frame_handshake_encode(payload, sizeof payload, tr->topology_id, tr->cfg.worker_index);
    uint8_t *fr;
    size_t flen;
    if (n == 0 || frame_build(FRAME_HANDSHAKE, payload, n, 0, &fr, &flen) != 0) {
        conn_close(c, "cannot build handshake");
        return;
    }
    if (conn_write_frame(c, fr, flen) != 0) conn_close(c, "cannot send handshake");
}

static void conn_send_throttle(conn *c, bool on) {
    uint8_t payload = on ? 1 : 0, *fr;
    size_t flen;
    if (frame_build(FRAME_THROTTLE, &payload, 1, 0, &fr, &flen) != 0 || conn_write_frame(c, fr, flen) != 0)
        log_warn("transport: cannot send a throttle frame to worker %d", conn_peer_index(c));
}

void transport_set_throttle(transport *tr, bool on) {
    if (tr->throttle_on == on) return;
    tr->throttle_on = on;
    for (int i = 0; i < tr->cfg.nworkers; i++) {
        conn *c = tr->peers[i].conn;
        if (c && c->state == CONN_UP) conn_send_throttle(c, on);
    }
}

static void conn_handshake(conn *c, const frame *f) {
    transport *tr = c->tr;
    int idx = -1;
    int rc = frame_handshake_check(f->payload, f->len, tr->topology_id, &idx);
    const char *why = rc ? frame_strerror(rc) : NULL;
    int self = tr->cfg.worker_index;
    if (!why && c->outgoing && idx != c->peer->index) why = "peer answered with another worker index";
    if (!why && !c->outgoing && (idx >= tr->cfg.nworkers || idx >= self))
        why = "worker index out of range (only lower-indexed workers dial us)";
    if (why) {
        char addr[96];
        STAT_ADD(tr, handshakes_rejected, 1);
        log_warn("transport: handshake from %s rejected: %s", conn_addr(c, addr, sizeof addr), why);
        conn_close(c, NULL);
        return;
    }
    peer *p = &tr->peers[idx];
    if (!c->outgoing) {
        if (p->conn && p->conn != c) conn_close(p->conn, "replaced by a new connection from the same worker");
        c->peer = p;
        conn_send_handshake(c);
        if (c->state == CONN_CLOSING) return;
    }
    c->state = CONN_UP;
    uv_timer_stop(&c->timer);
    uv_tcp_nodelay(&c->tcp, 1); /* we batch ourselves */
    p->conn = c;
    p->backoff_ms = RECONNECT_MIN_MS;
    peer_set_connected(p, true);
    log_info("transport: connected to worker %d", idx);
    if (tr->throttle_on) conn_send_throttle(c, true);
    peer_flush(p);
}

/* Delivers tuples and handles frames until the input is exhausted, the
 * destination refuses a tuple (pause), or the connection is closed. */
static void conn_process(conn *c) {
    transport *tr = c->tr;
    while (!c->paused && c->state != CONN_CLOSING) {
        if (c->held) {
            if (tr->deliver(tr->deliver_arg, c->held) != 0) goto pause;
            c->held = NULL;
            STAT_ADD(tr, tuples_received, 1);
            continue;
        }
        if (c->batch) {
            const uint8_t *rec;
            size_t rl;
            int rc = frame_batch_next(c->batch, c->batch_len, &c->batch_off, &rec, &rl);
            if (rc == 0) {
                c->batch = NULL;
                continue;
            }
            if (rc < 0) {
                conn_reject(c, "batch", "record overruns the frame");
                return;
            }
            sd_tuple *t;
            int drc = codec_decode_in(tr->cfg.pool, rec, rl, tr->topo, &t);
            if (drc != CODEC_OK) {
                conn_reject(c, "tuple", codec_strerror(drc));
                return;
            }
            c->held = t;
            continue;
        }
        frame f;
        int rc = frame_reader_next(&c->rd, &f);
        if (rc == FRAME_NEED_MORE) return;
        if (rc < 0) {
            conn_reject(c, "frame", frame_strerror(rc));
            return;
        }
        STAT_ADD(tr, frames_received, 1);
        if (f.type == FRAME_HANDSHAKE) {
            if (c->state != CONN_HANDSHAKE) {
                conn_reject(c, "frame", "unexpected handshake");
                return;
            }
            conn_handshake(c, &f);
        } else if (c->state != CONN_UP) {
            STAT_ADD(tr, handshakes_rejected, 1);
            conn_reject(c, "frame", "data before the handshake");
            return;
        } else if (f.type == FRAME_THROTTLE) {
            if (f.len != 1 || f.payload[0] > 1) {
                conn_reject(c, "frame", "malformed throttle frame");
                return;
            }
            if (tr->cfg.on_throttle) tr->cfg.on_throttle(tr->deliver_arg, c->peer->index, f.payload[0] == 1);
        } else {
            c->batch = f.payload;
            c->batch_len = f.len;
            c->batch_off = 0;
        }
    }
    return;
pause:
    c->paused = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_start(&c->timer, on_conn_timer, DELIVER_RETRY_MS, DELIVER_RETRY_MS);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    conn *c = s->data;
    if (nread < 0) {
        conn_close(c, nread == UV_EOF ? "closed by peer" : uv_strerror((int)nread));
        return;
    }
    if (nread == 0 || c->state == CONN_CLOSING) return;
    STAT_ADD(c->tr, bytes_received, (uint64_t)nread);
    if (frame_reader_push(&c->rd, c->tr->rbuf, (size_t)nread) != 0) {
        conn_close(c, "out of memory");
        return;
    }
    conn_process(c);
}

/* ---- connecting ---------------------------------------------------------- */

static void on_connect(uv_connect_t *req, int status) {
    conn *c = req->data;
    if (c->state == CONN_CLOSING) return;
    if (status != 0) {
        log_debug("transport: connect to worker %d: %s", conn_peer_index(c), uv_strerror(status));
        conn_close(c, NULL);
        return;
    }
    c->state = CONN_HANDSHAKE;
    conn_start_reading(c);
    if (c->state == CONN_HANDSHAKE) conn_send_handshake(c);
}

static void peer_dial(peer *p) {
    transport *tr = p->tr;
    if (tr->closing || p->conn) return;
    struct sockaddr_storage ss;
    const transport_peer *a = &tr->addrs[p->index];
    if (parse_addr(a->host, a->port, &ss) != 0) {
        log_error("transport: worker %d address '%s' is not an IP address", p->index, a->host);
        peer_schedule_reconnect(p);
        return;
    }
    conn *c = conn_new(tr, true, p);
    if (!c) {
        peer_schedule_reconnect(p);
        return;
    }
    c->connect_req.data = c;
    uv_timer_start(&c->timer, on_conn_timer, HANDSHAKE_TIMEOUT_MS, 0);
    int rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&ss, on_connect);
    if (rc != 0) {
        log_warn("transport: connect to worker %d: %s", p->index, uv_strerror(rc));
        conn_close(c, NULL);
    }
}

static void on_reconnect_timer(uv_timer_t *t) { peer_dial(t->data); }

static void peer_schedule_reconnect(peer *p) {
    if (p->tr->closing || !p->reconnect_init) return;
    uv_timer_start(&p->reconnect, on_reconnect_timer, (uint64_t)p->backoff_ms, 0);
    p->backoff_ms = p->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : p->backoff_ms * 2;
}

static void on_connection(uv_stream_t *server, int status) {
    transport *tr = server->data;
    if (status != 0) {
        log_warn("transport: accept: %s", uv_strerror(status));
        return;
    }
    conn *c = conn_new(tr, false, NULL);
    if (!c) return;
    int rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rc != 0) {
        log_warn("transport: accept: %s", uv_strerror(rc));
        conn_close(c, NULL);
        return;
    }
    uv_timer_start(&c->timer, on_conn_timer, HANDSHAKE_TIMEOUT_MS, 0);
    conn_start_reading(c);
}

int transport_start(transport *tr) {
    const transport_peer *me = &tr->addrs[tr->cfg.worker_index];
    struct sockaddr_storage ss;
    if (parse_addr(me->host, me->port, &ss) != 0) {
        /* a host name we cannot resolve without blocking: listen everywhere */
        uv_ip4_addr("0.0.0.0", me->port, (struct sockaddr_in *)&ss);
    }
    tr->loop_thread = uv_thread_self();
    int rc = uv_tcp_init(tr->loop, &tr->listener);
    if (rc != 0) {
        log_error("transport: uv_tcp_init: %s", uv_strerror(rc));
        return -1;
    }
    tr->listener.data = tr;
    tr->open_handles++;
    rc = uv_tcp_bind(&tr->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&tr->listener, 128, on_connection);
    if (rc != 0) {
        log_error("transport: cannot listen on %s:%d: %s", me->host, me->port, uv_strerror(rc));
        /* transport_close() still completes once this close is done */
        uv_close((uv_handle_t *)&tr->listener, on_handle_closed);
        return -1;
    }
    rc = uv_async_init(tr->loop, &tr->wake, on_wake);
    if (rc != 0) {
        log_error("transport: uv_async_init: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&tr->listener, on_handle_closed);
        return -1;
    }
    tr->wake.data = tr;
    tr->open_handles++;
    uv_timer_init(tr->loop, &tr->flush_timer);
    tr->flush_timer.data = tr;
    tr->open_handles++;
    uv_timer_start(&tr->flush_timer, on_flush_timer, (uint64_t)tr->cfg.flush_interval_ms,
                   (uint64_t)tr->cfg.flush_interval_ms);
    for (int i = 0; i < tr->cfg.nworkers; i++) {
        peer *p = &tr->peers[i];
        if (!p->dial) continue;
        uv_timer_init(tr->loop, &p->reconnect);
        p->reconnect.data = p;
        p->reconnect_init = true;
        tr->open_handles++;
        peer_dial(p);
    }
    tr->started = true;
    log_info("transport: worker %d listening on %s:%d", tr->cfg.worker_index, me->host, me->port);
    return 0;
}

/* ---- sending (any thread) -------------------------------------------------- */

int transport_send(transport *tr, int worker, sd_tuple *const *tuples, size_t n, bool never_block) {
    if (worker < 0 || worker >= tr->cfg.nworkers || worker == tr->cfg.worker_index) {
        log_error("transport: send to invalid worker %d", worker);
        STAT_ADD(tr, tuples_dropped, n);
        return -1;
    }
    /* the loop thread must never wait for itself to drain the buffer */
    if (tr->started && uv_thread_equal(&tr->loop_thread, &(uv_thread_t){uv_thread_self()})) never_block = true;
    peer *p = &tr->peers[worker];
    size_t max_buf = tr->cfg.max_buffered_bytes;
    int ret = 0;
    bool wake = false, waited_for_peer = false;
    uint64_t dropped = 0;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < n; i++) {
        size_t sz = 4 + codec_encoded_size(tuples[i]);
        if (sz > tr->frame_limit) {
            log_error("transport: a %zu-byte tuple exceeds the frame limit; dropped", sz);
            goto drop;
        }
        for (;;) {
            size_t used = p->len + p->inflight;
            if (p->closed) goto drop;
            if (used == 0 || used + sz <= max_buf) break;
            /* acks may overshoot (to twice the limit) rather than wait */
            if (never_block && p->connected && used + sz <= 2 * max_buf) break;
            if (never_block) goto drop;
            if (!p->connected) {
                /* a peer that is down (restarting): wait a little for it
                 * once per call, so that a sender does not spin through
                 * tuples dropping them as fast as it can make them */
                if (waited_for_peer) goto drop;
                waited_for_peer = true;
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 100 * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&p->room, &p->mu, &ts);
                continue;
            }
            if (wake) {
                uv_async_send(&tr->wake);
                wake = false;
            }
            pthread_cond_wait(&p->room, &p->mu);
        }
        if (p->len + sz > p->cap) {
            size_t cap = p->cap ? p->cap : 4096;
            while (cap < p->len + sz) cap *= 2;
            uint8_t *b = realloc(p->buf, cap);
            if (!b) {
                log_error("transport: out of memory buffering for worker %d", worker);
                goto drop;
            }
            p->buf = b;
            p->cap = cap;
        }
        uint8_t *out = p->buf + p->len;
        uint32_t rl = (uint32_t)(sz - 4);
        out[0] = (uint8_t)rl;
        out[1] = (uint8_t)(rl >> 8);
        out[2] = (uint8_t)(rl >> 16);
        out[3] = (uint8_t)(rl >> 24);
        codec_encode(tuples[i], out + 4);
        size_t before = p->len;
        p->len += sz;
        p->ntuples++;
        if (before == 0 || (before < tr->cfg.batch_bytes && p->len >= tr->cfg.batch_bytes)) wake = true;
        continue;
    drop:
        dropped++;
        ret = -1;
    }
    /* under mu, so that transport_close cannot close the async handle meanwhile */
    if (wake && !p->closed && tr->started) uv_async_send(&tr->wake);
    pthread_mutex_unlock(&p->mu);
    if (dropped) STAT_ADD(tr, tuples_dropped, dropped);
    return ret;
}

void transport_get_stats(transport *tr, transport_stats *out) {
    out->tuples_sent = atomic_load(&tr->tuples_sent);
    out->tuples_received = atomic_load(&tr->tuples_received);
    out->tuples_dropped = atomic_load(&tr->tuples_dropped);
    out->bytes_sent = atomic_load(&tr->bytes_sent);
    out->bytes_received = atomic_load(&tr->bytes_received);
    out->frames_sent = atomic_load(&tr->frames_sent);
    out->frames_received = atomic_load(&tr->frames_received);
    out->frames_rejected = atomic_load(&tr->frames_rejected);
    out->handshakes_rejected = atomic_load(&tr->handshakes_rejected);
    out->connected_peers = atomic_load(&tr->connected_peers);
}

/* ---- closing ------------------------------------------------------------- */

static void on_shutdown(uv_shutdown_t *req, int status) {
    (void)status;
    conn_close(req->data, NULL);
}

static void on_close_timer(uv_timer_t *t) {
    transport *tr = t->data;
    /* peers that did not drain in time: give up on them */
    conn *c = tr->conns;
    while (c) {
        conn *next = c->next;
        conn_close(c, "transport closing");
        c = next;
    }
}

void transport_close(transport *tr, void (*done)(void *arg), void *arg) {
    tr->done = done;
    tr->done_arg = arg;
    if (!tr->started) {
        tr->closing = true;
        maybe_finish(tr);
        return;
    }
    /* best-effort flush before closing anything */
    for (int i = 0; i < tr->cfg.nworkers; i++) peer_flush(&tr->peers[i]);
    tr->closing = true;
    for (int i = 0; i < tr->cfg.nworkers; i++) {
        peer *p = &tr->peers[i];
        pthread_mutex_lock(&p->mu);
        p->closed = true;
        pthread_cond_broadcast(&p->room);
        pthread_mutex_unlock(&p->mu);
        if (p->reconnect_init) uv_close((uv_handle_t *)&p->reconnect, on_reconnect_closed);
    }
    uv_close((uv_handle_t *)&tr->listener, on_handle_closed);
    uv_close((uv_handle_t *)&tr->wake, on_handle_closed);
    uv_close((uv_handle_t *)&tr->flush_timer, on_handle_closed);
    if (tr->nconns > 0) {
        uv_timer_init(tr->loop, &tr->close_timer);
        tr->close_timer.data = tr;
        tr->close_timer_on = true;
        tr->open_handles++;
        uv_timer_start(&tr->close_timer, on_close_timer, CLOSE_GRACE_MS, 0);
    }
    conn *c = tr->conns;
    while (c) {
        conn *next = c->next;
        /* shutdown waits for queued writes, then closes; others close now */
        if (c->state == CONN_UP && c->peer && c->peer->writes > 0) {
            c->shutdown_req.data = c;
            if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) conn_close(c, NULL);
        } else {
            conn_close(c, NULL);
        }
        c = next;
    }
    maybe_finish(tr);
}
