/*
 * transport_send: the senders' side of the transport (interface in
 * transport.h; structures in transport_internal.h).
 *
 * Job: transport_send (built tuples: acking packets, notices) and
 * transport_send_records (data records encoded by their emits) append to a
 * peer's buffer, waiting for room while the peer is up (backpressure) and
 * dropping at once while it is down with its overflow full, or isolated;
 * they note where frames are to be cut as they append, and wake the loop
 * when the buffer goes from empty to non-empty or crosses a batch.
 *
 * Threads: any (executor threads, and the loop thread, which never
 * waits); each peer's buffer, in-flight count and flags are shared with
 * the loop under peer->mu.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "transport/transport.h"
#include "transport/transport_internal.h"
#include "tuple/codec.h"

/* ---- sending (any thread) -------------------------------------------------- */

/* Under p->mu: waits until sz more bytes may be buffered for p. 0, or -1
 * when they are to be dropped: the transport is closing, the peer is
 * isolated, or down with its overflow full, or full and never_block. A
 * wake-up of the loop still owed (*wake) is sent before waiting. */
static int peer_wait_room(transport *tr, peer *p, size_t sz, bool never_block, bool *wake) {
    size_t max_buf = tr->cfg.max_buffered_bytes;
    for (;;) {
        size_t used = p->len + p->inflight;
        if (p->closed || p->isolated) return -1;
        if (used == 0 || used + sz <= max_buf) return 0;
        /* acks may overshoot (to twice the limit) rather than wait */
        if (never_block && p->connected && used + sz <= 2 * max_buf) return 0;
        if (never_block) return -1;
        /* a down peer: its buffer is a bounded overflow, kept for its
         * return; beyond it tuples are dropped at once (acking replays
         * them), so that a dead peer never slows sends to the others */
        if (!p->connected) return -1;
        if (*wake) {
            uv_async_send(&tr->wake);
            *wake = false;
        }
        pthread_cond_wait(&p->room, &p->mu);
    }
}

/* Under p->mu: room in p->buf for len more bytes and in p->cuts for ncuts
 * more frames. 0, or -1 when out of memory (logged: the caller drops). */
static int peer_reserve(peer *p, size_t len, size_t ncuts) {
    if (p->ncuts + ncuts > p->cuts_cap) {
        size_t cc = p->cuts_cap ? p->cuts_cap : 16;
        while (cc < p->ncuts + ncuts) cc *= 2;
        size_t *g = realloc(p->cuts, cc * sizeof *g);
        if (!g) goto oom;
        p->cuts = g;
        p->cuts_cap = cc;
    }
    if (p->len + len > p->cap) {
        size_t cap = p->cap ? p->cap : 4096;
        while (cap < p->len + len) cap *= 2;
        uint8_t *b = realloc(p->buf, cap);
        if (!b) goto oom;
        p->buf = b;
        p->cap = cap;
    }
    return 0;
oom:
    log_error("transport: out of memory buffering for worker %d", p->index);
    return -1;
}

/* Under p->mu: len bytes of n records were written at p->buf + p->len
 * (room reserved, one cut). They start a new frame when they would overflow
 * the current one (frame_batch_count's rule). Owes the loop a wake-up when
 * the buffer was empty or now holds a batch. */
static void peer_appended(transport *tr, peer *p, size_t len, uint32_t n, bool *wake) {
    if (p->len > p->frame_start && p->len + len - p->frame_start > tr->send_frame) {
        p->cuts[p->ncuts++] = p->len;
        p->frame_start = p->len;
    }
    size_t before = p->len;
    p->len += len;
    p->ntuples += n;
    if (before == 0 || (before < tr->cfg.batch_bytes && p->len >= tr->cfg.batch_bytes)) *wake = true;
}

/* A send to `worker` is refused (-1, logged) when it names no peer. */
static int peer_check(transport *tr, int worker) {
    if (worker >= 0 && worker < tr->cfg.nworkers && worker != tr->cfg.worker_index) return 0;
    log_error("transport: send to invalid worker %d", worker);
    return -1;
}

/* the loop thread must never wait for itself to drain a buffer */
static bool on_loop_thread(transport *tr) {
    return tr->started && uv_thread_equal(&tr->loop_thread, &(uv_thread_t){uv_thread_self()});
}

int transport_send(transport *tr, int worker, sd_tuple *const *tuples, size_t n, bool never_block) {
    if (peer_check(tr, worker) != 0) {
        STAT_ADD(tr, tuples_dropped, n);
        for (size_t i = 0; i < n; i++) tuples[i]->flags |= TUPLE_F_UNSENT;
        return (int)n;
    }
    if (on_loop_thread(tr)) never_block = true;
    peer *p = &tr->peers[worker];
    bool wake = false;
    uint64_t dropped = 0;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < n; i++) {
        /* room for the record at most; its length is what codec_encode writes */
        size_t sz = 4 + codec_size_bound(tuples[i]);
        if (sz > tr->frame_limit) sz = 4 + codec_encoded_size(tuples[i]);
        if (sz > tr->frame_limit) {
            log_error("transport: a %zu-byte tuple exceeds the frame limit; dropped", sz);
            goto drop;
        }
        if (peer_wait_room(tr, p, sz, never_block, &wake) != 0 || peer_reserve(p, sz, 1) != 0) goto drop;
        uint8_t *out = p->buf + p->len;
        uint32_t rl = (uint32_t)codec_encode(tuples[i], out + 4);
        codec_put32(out, rl);
        peer_appended(tr, p, 4 + (size_t)rl, 1, &wake);
        continue;
    drop:
        tuples[i]->flags |= TUPLE_F_UNSENT; /* the caller's, unshared: see transport.h */
        dropped++;
    }
    /* under mu, so that transport_close cannot close the async handle meanwhile */
    if (wake && !p->closed && tr->started) uv_async_send(&tr->wake);
    pthread_mutex_unlock(&p->mu);
    if (dropped) STAT_ADD(tr, tuples_dropped, dropped);
    return (int)dropped;
}

int transport_records_grow(transport_records *r, size_t bound) {
    size_t cap = r->cap ? r->cap : 4096;
    while (cap < r->len + 4 + bound) cap *= 2;
    uint8_t *b = realloc(r->buf, cap);
    if (!b) return -ENOMEM;
    r->buf = b;
    r->cap = cap;
    return 0;
}

void transport_records_free(transport_records *r) {
    free(r->buf);
    *r = (transport_records){0};
}

size_t transport_record_limit(const transport *tr) { return tr->frame_limit - 4; }

size_t transport_records_batch(const transport *tr) { return tr->send_frame; }

/* Under p->mu, room allowed: hands r's records to p. An empty buffer is
 * traded for r's (no copy) unless it grew beyond two frames (a sender
 * would then keep its memory); else they are copied, as one piece when
 * they fit in a frame, else record by record, each by the frame rule. */
static int peer_take_records(transport *tr, peer *p, transport_records *r, bool *wake) {
    if (p->len == 0 && r->len <= tr->send_frame && p->cap <= 2 * tr->send_frame) {
        uint8_t *b = p->buf;
        size_t cap = p->cap;
        p->buf = r->buf;
        p->cap = r->cap;
        r->buf = b;
        r->cap = cap;
        p->len = r->len;
        p->ntuples = r->n;
        *wake = true;
        return 0;
    }
    bool whole = r->len <= tr->send_frame;
    if (peer_reserve(p, r->len, whole ? 1 : r->n) != 0) return -1;
    if (whole) {
        memcpy(p->buf + p->len, r->buf, r->len);
        peer_appended(tr, p, r->len, r->n, wake);
        return 0;
    }
    size_t off = 0, len;
    const uint8_t *rec;
    while (frame_batch_next(r->buf, r->len, &off, &rec, &len) == 1) {
        memcpy(p->buf + p->len, rec - 4, 4 + len);
        peer_appended(tr, p, 4 + len, 1, wake);
    }
    return 0;
}

int transport_send_records(transport *tr, int worker, transport_records *r, bool never_block) {
    uint32_t n = r->n;
    if (n == 0) return 0;
    int dropped = 0;
    if (peer_check(tr, worker) != 0) {
        dropped = (int)n;
    } else {
        if (on_loop_thread(tr)) never_block = true;
        peer *p = &tr->peers[worker];
        bool wake = false;
        pthread_mutex_lock(&p->mu);
        if (peer_wait_room(tr, p, r->len, never_block, &wake) != 0 || peer_take_records(tr, p, r, &wake) != 0)
            dropped = (int)n;
        if (wake && !p->closed && tr->started) uv_async_send(&tr->wake);
        pthread_mutex_unlock(&p->mu);
    }
    if (dropped) STAT_ADD(tr, tuples_dropped, dropped);
    else transport_records_clear(r);
    return dropped;
}

