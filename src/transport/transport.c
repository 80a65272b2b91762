/*
 * transport: worker-to-worker TCP data plane (interface in transport.h).
 *
 * Job: the transport object and its peers: setup, flushing and writing
 * each peer's send buffer as batches, the reconnect timer and backoff,
 * stats, the throttle state we ask of peers, and closing. The senders'
 * side (transport_send, transport_send_records: appending to a peer's
 * buffer) is in transport_send.c; the connections themselves (accept/dial,
 * handshake, reading and delivering, throttle frames received) in
 * transport_conn.c, their shared-memory rings in transport_shm.c; the
 * structures they share are in transport_internal.h (private to the
 * transport).
 *
 * Connections: worker i dials every worker j > i; j accepts and learns i
 * from the handshake, so each pair shares exactly one bidirectional
 * connection. The handshake (transport_conn.c) is three messages: the
 * dialer's hello (index, topology id, nonce, content hash), the acceptor's
 * hello with its proof over both nonces, the dialer's proof; only then do
 * batches flow. The dialer reconnects with exponential backoff
 * (RECONNECT_MIN_MS .. RECONNECT_MAX_MS) whenever its connection is lost.
 *
 * Threads: the loop thread owns every socket, timer and conn (the full
 * ownership rules are in transport_internal.h); transport_send runs on
 * executor (sender) threads and shares only each peer's buffer, in-flight
 * count and connected/closed flags with the loop, under peer->mu;
 * statistics are atomics, readable from any thread.
 *
 * Batching: a sender wakes the loop (uv_async) only when a peer's buffer
 * goes from empty to non-empty or crosses batch_bytes. The loop sends a
 * buffer right away when no write is in flight for that peer (low latency
 * when idle); otherwise bytes accumulate until the write completes, the
 * buffer reaches batch_bytes, or the flush timer fires (batching under load).
 */
#include "transport/transport.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tuple/codec.h"
#include "transport/frame.h"
#include "base/log.h"
#include "transport/transport_conn.h"
#include "transport/transport_internal.h"
#include "transport/transport_shm.h"

#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 5000
#define CLOSE_GRACE_MS 2000

#define DEFAULT_BATCH_BYTES (64u << 10)
#define DEFAULT_FLUSH_MS 5
#define DEFAULT_MAX_FRAME (16u << 20)
#define DEFAULT_MAX_BUFFERED (8u << 20)
#define DEFAULT_HANDSHAKE_MS 5000
#define DEFAULT_MAX_STRANGERS 64
#define DEFAULT_HEARTBEAT_MS 1000
#define DEFAULT_PEER_TIMEOUT_MS 10000

static void peer_flush(peer *p);
static void peer_give_up(peer *p, const uint8_t *data, size_t len, uint32_t ntuples);

/* ---- setup ------------------------------------------------------------- */

transport *transport_new(uv_loop_t *loop, const transport_config *cfg, const topology *topo,
                         transport_deliver_cb deliver, void *arg) {
    if (!cfg->topology_id || !cfg->secret || !cfg->content_hash || cfg->nworkers <= 0 || cfg->worker_index < 0 ||
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
    if (tr->cfg.handshake_timeout_ms <= 0) tr->cfg.handshake_timeout_ms = DEFAULT_HANDSHAKE_MS;
    if (tr->cfg.max_unauthenticated <= 0) tr->cfg.max_unauthenticated = DEFAULT_MAX_STRANGERS;
    if (tr->cfg.heartbeat_interval_ms <= 0) tr->cfg.heartbeat_interval_ms = DEFAULT_HEARTBEAT_MS;
    if (tr->cfg.peer_timeout_ms <= 0) tr->cfg.peer_timeout_ms = DEFAULT_PEER_TIMEOUT_MS;
    tr->frame_limit = tr->cfg.max_frame_bytes - FRAME_HEADER_BYTES;
    /* frames of about a batch, however much a buffer holds when it is sent:
     * the receiver's reader grows to the largest frame it gets */
    tr->send_frame = tr->cfg.batch_bytes < tr->frame_limit ? tr->cfg.batch_bytes : tr->frame_limit;
    frame_reader probe;
    frame_reader_init(&probe, tr->cfg.max_frame_bytes); /* its clamp to what lz4 can decompress */
    tr->rd_max_frame = probe.max_frame;
    memcpy(tr->key, cfg->secret, sizeof tr->key);
    memcpy(tr->hash, cfg->content_hash, sizeof tr->hash);
    tr->cfg.secret = tr->key;
    tr->cfg.content_hash = tr->hash;
    tr->topology_id = strdup(cfg->topology_id);
    tr->addrs = calloc((size_t)cfg->nworkers, sizeof *tr->addrs);
    tr->peers = calloc((size_t)cfg->nworkers, sizeof *tr->peers);
    if (!tr->topology_id || !tr->addrs || !tr->peers) goto oom;
    memcpy(tr->addrs, cfg->peers, (size_t)cfg->nworkers * sizeof *tr->addrs);
    /* names are resolved here, once, before the loop runs (getaddrinfo
     * blocks): a name that does not resolve is an error now, rather than a
     * worker listening everywhere or peers dialling it forever */
    tr->resolved = calloc((size_t)cfg->nworkers, sizeof *tr->resolved);
    if (!tr->resolved) goto oom;
    for (int i = 0; i < cfg->nworkers; i++) {
        char why[128];
        int rc = transport_resolve(tr->addrs[i].host, tr->addrs[i].port, &tr->resolved[i], why, sizeof why);
        if (rc != 0) {
            log_error("transport: worker %d's host '%s' (worker.host) does not resolve: %s", i, tr->addrs[i].host,
                      why);
            goto fail;
        }
    }
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
        free(tr->resolved);
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
        for (int k = 0; k < p->nspare; k++) free(p->spare[k]);
        free(p->cuts);
        free(p->spare_cuts);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->room);
    }
    free(tr->peers);
    free(tr->addrs);
    free(tr->resolved);
    free(tr->topology_id);
    free(tr);
}

int transport_resolve(const char *host, int port, struct sockaddr_storage *ss, char *why, size_t whylen) {
    if (port < 0 || port > 65535) {
        snprintf(why, whylen, "port %d is out of range", port);
        return -EINVAL;
    }
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
    /* a name: the first address it has, IPv4 first (as the peers dial) */
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC, .ai_flags = AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    char ports[8];
    snprintf(ports, sizeof ports, "%d", port);
    int rc = getaddrinfo(host, ports, &hints, &res);
    if (rc != 0) {
        snprintf(why, whylen, "%s", rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return rc == EAI_NONAME || rc == EAI_NODATA ? -ENOENT : -EHOSTUNREACH;
    }
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *a = res; a; a = a->ai_next)
        if (a->ai_family == AF_INET || (a->ai_family == AF_INET6 && !pick)) {
            if (!pick || a->ai_family == AF_INET) pick = a;
            if (a->ai_family == AF_INET) break;
        }
    if (!pick || pick->ai_addrlen > sizeof *ss) {
        freeaddrinfo(res);
        snprintf(why, whylen, "no IPv4 or IPv6 address");
        return -ENOENT;
    }
    memset(ss, 0, sizeof *ss);
    memcpy(ss, pick->ai_addr, pick->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

/* ---- handles, peers going up and down ------------------------------------ */

static void on_handle_closed(uv_handle_t *h) {
    transport *tr = h->data;
    tr->open_handles--;
    transport_maybe_finish(tr);
}

void transport_maybe_finish(transport *tr) {
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

static void on_reconnect_closed(uv_handle_t *h) {
    peer *p = h->data;
    p->tr->open_handles--;
    transport_maybe_finish(p->tr);
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

/* Loop thread: empties p's buffer (a down peer's overflow), frees it and
 * gives up on its tuples. Returns how many. */
static uint32_t peer_drop_buffer(peer *p, bool isolate) {
    pthread_mutex_lock(&p->mu);
    if (isolate) p->isolated = true;
    uint8_t *data = p->buf;
    size_t len = p->len;
    uint32_t n = p->ntuples;
    p->buf = NULL;
    p->len = p->cap = 0;
    p->ntuples = 0;
    p->ncuts = p->frame_start = 0;
    pthread_cond_broadcast(&p->room);
    pthread_mutex_unlock(&p->mu);
    if (len) peer_give_up(p, data, len, n);
    free(data);
    return n;
}

void transport_peer_lost(peer *p, bool was_up, bool down) {
    transport *tr = p->tr;
    p->conn = NULL;
    if (was_up) {
        peer_set_connected(p, false);
        if (tr->cfg.on_throttle) tr->cfg.on_throttle(tr->deliver_arg, p->index, false);
        if (tr->closing || !down) return;
        /* what we hold for it fails now rather than at the message timeout;
         * writes in flight give theirs up as libuv cancels them */
        p->down = true;
        p->down_since_ms = uv_now(tr->loop);
        uint32_t writing = p->write_tuples, n = peer_drop_buffer(p, false);
        log_info("transport: worker %d is down: %u tuples held for it given up%s (%u buffered, %u in unfinished "
                 "writes)", p->index, n + writing, tr->cfg.on_unsent ? " and their trees failed" : "", n, writing);
        if (tr->cfg.on_peer_down) tr->cfg.on_peer_down(tr->deliver_arg, p->index);
    }
}

void transport_peer_connected(peer *p, conn *c) {
    transport *tr = p->tr;
    p->conn = c;
    p->backoff_ms = RECONNECT_MIN_MS;
    p->down = false;
    pthread_mutex_lock(&p->mu);
    p->isolated = false;
    pthread_mutex_unlock(&p->mu);
    peer_set_connected(p, true);
    log_info("transport: connected to worker %d", p->index);
    if (tr->throttle_on) tconn_send_throttle(c, true);
    peer_flush(p);
}

/* ---- writing ----------------------------------------------------------- */

/* Loop thread: records held for p (its buffer, or a write that failed) will
 * not reach it: each is counted as dropped and, with on_unsent, decoded and
 * reported so that its tree fails now. */
static void peer_give_up(peer *p, const uint8_t *data, size_t len, uint32_t ntuples) {
    transport *tr = p->tr;
    STAT_ADD(tr, tuples_dropped, ntuples);
    if (!tr->cfg.on_unsent || tr->closing) return;
    size_t off = 0, rl;
    const uint8_t *rec;
    while (frame_batch_next(data, len, &off, &rec, &rl) == 1) {
        sd_tuple *t;
        /* our own encoding: a record that does not decode is skipped */
        if (codec_decode_in(tr->cfg.pool, rec, rl, tr->topo, &t) != CODEC_OK) continue;
        tr->cfg.on_unsent(tr->deliver_arg, p->index, t);
        tuple_unref(t);
    }
}

static void on_write_done(uv_write_t *req, int status) { transport_write_done(req->data, status, true); }

void transport_write_done(wreq *w, int status, bool refill) {
    peer *p = w->peer;
    transport *tr = p->tr;
    p->writes--;
    p->write_tuples -= w->ntuples;
    if (status == 0) {
        STAT_ADD(tr, tuples_sent, w->ntuples);
        STAT_ADD(tr, frames_sent, w->nframes);
        STAT_ADD(tr, bytes_sent, w->wire_bytes);
    } else {
        /* cancelled by the connection's close, or failed: those not yet
         * in the kernel are ours to fail (what was is lost with it) */
        peer_give_up(p, w->data, w->data_len, w->ntuples);
    }
    pthread_mutex_lock(&p->mu);
    p->inflight -= w->data_len;
    if (p->nspare < PEER_SPARE_BUFFERS) {
        p->spare[p->nspare] = w->data;
        p->spare_cap[p->nspare++] = w->data_cap;
        w->data = NULL;
    }
    pthread_cond_broadcast(&p->room);
    bool more = p->len > 0;
    pthread_mutex_unlock(&p->mu);
    free(w->data);
    free(w->lz4);
    free(w);
    /* what accumulated behind this write goes out now, as one batch */
    if (refill && more && p->writes == 0 && !tr->closing) peer_flush(p);
}

void transport_peer_flush(peer *p) { peer_flush(p); }

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
    size_t *cuts = p->cuts, ncuts = p->ncuts, cuts_cap = p->cuts_cap;
    if (p->nspare > 0) {
        p->nspare--;
        p->buf = p->spare[p->nspare];
        p->cap = p->spare_cap[p->nspare];
    } else {
        p->buf = NULL;
        p->cap = 0;
    }
    p->cuts = p->spare_cuts;
    p->cuts_cap = p->spare_cuts_cap;
    p->spare_cuts = NULL;
    p->spare_cuts_cap = 0;
    p->ncuts = p->frame_start = 0;
    p->len = 0;
    p->ntuples = 0;
    p->inflight += len;
    pthread_mutex_unlock(&p->mu);

    uint32_t nframes = (uint32_t)ncuts + 1;
    size_t need = sizeof(wreq) + (size_t)nframes * (2 * sizeof(uv_buf_t) + sizeof(frame_slice));
    wreq *w = malloc(need);
    size_t lz4_room = 0;
    if (w && tr->cfg.lz4_threshold > 0 && len >= tr->cfg.lz4_threshold) lz4_room = frame_lz4_bound(len) + 16 * (size_t)nframes;
    uint8_t *lz4 = lz4_room ? malloc(lz4_room) : NULL;
    if (!w || (lz4_room && !lz4)) {
        log_error("transport: out of memory flushing %zu bytes to worker %d; dropping them", len, p->index);
        free(w);
        free(data);
        p->spare_cuts = cuts;
        p->spare_cuts_cap = cuts_cap;
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
    uv_buf_t *bufs = wreq_bufs(w);
    frame_slice *slices = (frame_slice *)(bufs + 2 * (size_t)nframes);
    w->wire_bytes = frame_batch_cut_at(data, len, cuts, (uint32_t)ncuts, tr->cfg.lz4_threshold, lz4, lz4_room, slices);
    p->spare_cuts = cuts; /* only the loop thread touches the spare */
    p->spare_cuts_cap = cuts_cap;
    for (uint32_t f = 0; f < nframes; f++) {
        bufs[2 * f] = uv_buf_init((char *)slices[f].header, FRAME_HEADER_BYTES);
        bufs[2 * f + 1] = uv_buf_init((char *)slices[f].payload, (unsigned)slices[f].len);
    }
    p->writes++;
    p->write_tuples += ntuples;
    if (c->shm.tx_active) {
        tshm_send(c, w); /* completes through transport_write_done */
        return;
    }
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, 2 * nframes, on_write_done);
    if (rc != 0) {
        /* the callback never runs for a refused write: undo by hand */
        p->writes--;
        p->write_tuples -= ntuples;
        pthread_mutex_lock(&p->mu);
        p->inflight -= len;
        pthread_cond_broadcast(&p->room);
        pthread_mutex_unlock(&p->mu);
        peer_give_up(p, w->data, len, ntuples);
        free(w->data);
        free(w->lz4);
        free(w);
        tconn_close(c, uv_strerror(rc));
    }
}

/* Loop thread, on wake-up: flush idle peers at once, busy ones only when full. */
static void on_flush_timer(uv_timer_t *t);

/* loop thread: does any peer hold bytes not yet handed to a write? */
static bool any_buffered(transport *tr) {
    for (int i = 0; i < tr->cfg.nworkers; i++) {
        peer *p = &tr->peers[i];
        pthread_mutex_lock(&p->mu);
        size_t len = p->len;
        pthread_mutex_unlock(&p->mu);
        if (len > 0) return true;
    }
    return false;
}

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
    /* what could not go out now goes with the flush timer */
    if (any_buffered(tr) && !uv_is_active((uv_handle_t *)&tr->flush_timer))
        uv_timer_start(&tr->flush_timer, on_flush_timer, (uint64_t)tr->cfg.flush_interval_ms,
                       (uint64_t)tr->cfg.flush_interval_ms);
}

static void on_flush_timer(uv_timer_t *t) {
    transport *tr = t->data;
    for (int i = 0; i < tr->cfg.nworkers; i++) peer_flush(&tr->peers[i]);
    /* idle: stop ticking (a sender's first bytes wake the loop, which
     * restarts it); an idle worker then costs no wake-ups here */
    if (!any_buffered(tr)) uv_timer_stop(t);
}

/* ---- liveness -------------------------------------------------------------- */

/* How late a tick may be before we count our own loop as stalled: half an
 * interval, and well inside the peer timeout, so that a stall long enough
 * to make a peer look silent is always seen as ours. */
static uint64_t stall_slack_ms(const transport *tr) {
    uint64_t slack = (uint64_t)tr->cfg.heartbeat_interval_ms / 2, cap = (uint64_t)tr->cfg.peer_timeout_ms / 4;
    return slack < cap ? slack : cap;
}

static void on_hb_timer(uv_timer_t *t) {
    transport *tr = t->data;
    uint64_t now = uv_now(tr->loop);
    /* a tick behind schedule means our own loop did not run (SIGSTOP,
     * swapping, a callback that blocked): peers were not silent, we were
     * not listening. Every peer gets a fresh grace period, and a down
     * peer's overflow its full time again. */
    bool stalled = tr->last_hb_ms &&
                   now - tr->last_hb_ms > (uint64_t)tr->cfg.heartbeat_interval_ms + stall_slack_ms(tr);
    if (stalled)
        log_info("transport: our loop stalled (%llu ms since its last heartbeat tick); peers get a fresh grace period",
                 (unsigned long long)(now - tr->last_hb_ms));
    tr->last_hb_ms = now;
    for (int i = 0; i < tr->cfg.nworkers; i++) {
        peer *p = &tr->peers[i];
        conn *c = p->conn;
        if (c && stalled) c->last_rx_ms = now;
        else if (c) tconn_heartbeat(c, now);
        if (!p->down || p->isolated) continue; /* isolated: only the loop writes it */
        if (stalled) {
            p->down_since_ms = now;
        } else if (now - p->down_since_ms >= (uint64_t)tr->cfg.peer_timeout_ms) {
            /* it stays down: what waits in its overflow fails now, and so
             * does every send to it until it is back */
            uint32_t n = peer_drop_buffer(p, true);
            log_info("transport: worker %d still down after %d ms: isolated, %u tuples waiting for it given up", i,
                     tr->cfg.peer_timeout_ms, n);
        }
    }
}

/* ---- throttling our peers ------------------------------------------------ */

void transport_set_throttle(transport *tr, bool on) {
    if (tr->throttle_on == on) return;
    tr->throttle_on = on;
    for (int i = 0; i < tr->cfg.nworkers; i++) {
        conn *c = tr->peers[i].conn;
        if (c && c->state == CONN_UP) tconn_send_throttle(c, on);
    }
}

/* ---- connecting ---------------------------------------------------------- */

static void peer_dial(peer *p) {
    transport *tr = p->tr;
    if (tr->closing || p->conn) return;
    if (tconn_dial(p, (const struct sockaddr *)&tr->resolved[p->index]) != 0) transport_schedule_reconnect(p);
}

static void on_reconnect_timer(uv_timer_t *t) { peer_dial(t->data); }

void transport_schedule_reconnect(peer *p) {
    if (p->tr->closing || !p->reconnect_init) return;
    uv_timer_start(&p->reconnect, on_reconnect_timer, (uint64_t)p->backoff_ms, 0);
    p->backoff_ms = p->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : p->backoff_ms * 2;
}

int transport_start(transport *tr) {
    const transport_peer *me = &tr->addrs[tr->cfg.worker_index];
    struct sockaddr_storage ss = tr->resolved[tr->cfg.worker_index];
    tr->loop_thread = uv_thread_self();
    int rc = uv_tcp_init(tr->loop, &tr->listener);
    if (rc != 0) {
        log_error("transport: uv_tcp_init: %s", uv_strerror(rc));
        return -1;
    }
    tr->listener.data = tr;
    tr->open_handles++;
    rc = uv_tcp_bind(&tr->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&tr->listener, 128, tconn_on_connection);
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
    uv_timer_init(tr->loop, &tr->hb_timer);
    tr->hb_timer.data = tr;
    tr->open_handles++;
    uv_timer_start(&tr->hb_timer, on_hb_timer, (uint64_t)tr->cfg.heartbeat_interval_ms,
                   (uint64_t)tr->cfg.heartbeat_interval_ms);
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
    out->peers_timed_out = atomic_load(&tr->peers_timed_out);
    out->connected_peers = atomic_load(&tr->connected_peers);
    out->shm_peers = atomic_load(&tr->shm_peers);
    out->buffered_bytes = 0;
    for (int i = 0; i < tr->cfg.nworkers; i++) {
        peer *p = &tr->peers[i];
        pthread_mutex_lock(&p->mu);
        out->buffered_bytes += p->len + p->inflight;
        pthread_mutex_unlock(&p->mu);
    }
}

/* ---- closing ------------------------------------------------------------- */

static void on_close_timer(uv_timer_t *t) {
    transport *tr = t->data;
    /* peers that did not drain in time: give up on them */
    conn *c = tr->conns;
    while (c) {
        conn *next = c->next;
        tconn_close(c, "transport closing");
        c = next;
    }
}

void transport_close(transport *tr, void (*done)(void *arg), void *arg) {
    tr->done = done;
    tr->done_arg = arg;
    if (!tr->started) {
        tr->closing = true;
        transport_maybe_finish(tr);
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
    uv_close((uv_handle_t *)&tr->hb_timer, on_handle_closed);
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
        tconn_shutdown(c); /* closes once its queued writes are done */
        c = next;
    }
    transport_maybe_finish(tr);
}
