/*
 * transport_shm: a connection's shared-memory rings (see transport_shm.h).
 */
#include "transport/transport_shm.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "transport/auth.h"
#include "transport/transport_conn.h"
#include "tuple/codec.h"

#define OFFER_BYTES (4 + SHM_RING_NONCE_BYTES + 4 + 4)

static int peer_index(const conn *c) { return c->peer ? c->peer->index : -1; }

static uint32_t get32(const uint8_t *q) {
    return (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
}

void tshm_offer(conn *c) {
    transport *tr = c->tr;
    if (tr->cfg.shm_ring_bytes == 0 || c->shm.tx_offered) return;
    uint8_t nonce[SHM_RING_NONCE_BYTES];
    int rc = auth_random(nonce, sizeof nonce) == 0 ? shm_ring_create(&c->shm.tx, tr->cfg.shm_ring_bytes, nonce) : -EIO;
    if (rc != 0) {
        log_info("transport: no shared-memory ring toward worker %d (%s): batches go over TCP", peer_index(c),
                 sd_strerror(rc));
        return;
    }
    uint8_t payload[OFFER_BYTES];
    codec_put32(payload, (uint32_t)c->shm.tx.size);
    memcpy(payload + 4, nonce, sizeof nonce);
    codec_put32(payload + 4 + sizeof nonce, (uint32_t)getpid());
    codec_put32(payload + 8 + sizeof nonce, (uint32_t)c->shm.tx.fd);
    c->shm.tx_offered = true;
    if (tconn_send_frame(c, FRAME_SHM_OFFER, payload, sizeof payload) != 0) shm_ring_close(&c->shm.tx);
}

/* The peer offers its ring: open it if we can, and say so. */
static const char *on_offer(conn *c, const frame *f) {
    transport *tr = c->tr;
    if (c->shm.rx_active) return "a second shared-memory offer";
    if (f->len != OFFER_BYTES) return "malformed shared-memory offer";
    const uint8_t *q = f->payload;
    uint32_t size = get32(q), pid = get32(q + 4 + SHM_RING_NONCE_BYTES), fd = get32(q + 8 + SHM_RING_NONCE_BYTES);
    if (size != shm_ring_size_for(size) || pid == 0 || pid > INT32_MAX || fd > INT32_MAX)
        return "malformed shared-memory offer";
    int rc = -ENOTSUP; /* rings off here: the peer keeps to TCP */
    if (tr->cfg.shm_ring_bytes > 0) rc = shm_ring_open(&c->shm.rx, pid, fd, size, q + 4);
    uint8_t yes = rc == 0;
    if (rc == 0) {
        frame_reader_init(&c->shm.rx_rd, tr->rd_max_frame);
        c->shm.rx_active = true;
        atomic_fetch_add(&tr->shm_peers, 1);
        log_info("transport: worker %d sends us its batches through shared memory (%u KiB ring)", peer_index(c),
                 size >> 10);
    } else if (rc != -ENOTSUP) {
        /* -ENOENT: another host, the common case */
        log_debug("transport: worker %d's shared-memory ring not opened (%s): its batches come over TCP", peer_index(c),
                  sd_strerror(rc));
    }
    if (tconn_send_frame(c, FRAME_SHM_ANSWER, &yes, 1) != 0) return "cannot answer a shared-memory offer";
    return NULL;
}

static const char *on_answer(conn *c, const frame *f) {
    if (!c->shm.tx_offered || c->shm.tx_active || !c->shm.tx.hdr) return "unexpected shared-memory answer";
    if (f->len != 1 || f->payload[0] > 1) return "malformed shared-memory answer";
    if (f->payload[0] == 1) {
        c->shm.tx_active = true;
        shm_ring_forget_fd(&c->shm.tx); /* mapped on both sides: the descriptor has served */
        log_info("transport: sending worker %d our batches through shared memory", peer_index(c));
    } else {
        shm_ring_close(&c->shm.tx);
    }
    return NULL;
}

static void send_bell(conn *c) {
    if (tconn_send_frame(c, FRAME_SHM_BELL, NULL, 0) != 0) tconn_close(c, "cannot send a bell");
}

/* Copies queued writes into the ring while it has room. Completed writes
 * do not flush again from here (that would re-enter); the caller does. */
static void tshm_pump(conn *c) {
    conn_shm *s = &c->shm;
    if (s->pumping) return;
    s->pumping = true;
    bool wrote = false;
    wreq *w;
    while ((w = s->txq) != NULL && !s->tx_full) {
        uv_buf_t *b = wreq_bufs(w);
        uint32_t nbufs = 2 * w->nframes;
        while (w->at_buf < nbufs) {
            size_t left = b[w->at_buf].len - w->at_off;
            long k = shm_ring_write(&s->tx, (const uint8_t *)b[w->at_buf].base + w->at_off, left);
            if (k < 0) {
                s->pumping = false;
                tconn_close(c, "the peer's shared-memory ring position is implausible");
                return;
            }
            wrote |= k > 0;
            w->at_off += (size_t)k;
            if (w->at_off == b[w->at_buf].len) {
                w->at_buf++;
                w->at_off = 0;
                continue;
            }
            /* full: the reader must know there is something to read
             * before we wait for it to make room */
            if (wrote && shm_ring_take_idle(&s->tx)) send_bell(c);
            wrote = false;
            if (c->state != CONN_UP) break;
            if (shm_ring_writer_wait(&s->tx)) {
                s->tx_full = true;
                break;
            }
        }
        if (c->state != CONN_UP) break;
        if (w->at_buf < nbufs) break;
        s->txq = w->next;
        if (!s->txq) s->txq_tail = NULL;
        transport_write_done(w, 0, false);
    }
    if (wrote && c->state == CONN_UP && shm_ring_take_idle(&s->tx)) send_bell(c);
    s->pumping = false;
}

void tshm_send(conn *c, wreq *w) {
    w->next = NULL;
    w->at_buf = 0;
    w->at_off = 0;
    if (c->shm.txq_tail) c->shm.txq_tail->next = w;
    else c->shm.txq = w;
    c->shm.txq_tail = w;
    tshm_pump(c);
}

const char *tshm_on_frame(conn *c, const frame *f) {
    switch (f->type) {
    case FRAME_SHM_OFFER: return on_offer(c, f);
    case FRAME_SHM_ANSWER: return on_answer(c, f);
    case FRAME_SHM_BELL:
        if (!c->shm.rx_active) return "a bell without a shared-memory ring";
        if (f->len != 0) return "malformed bell";
        c->shm.rx_belled = true;
        return NULL;
    case FRAME_SHM_ROOM:
        if (!c->shm.tx_active) return "room without a shared-memory ring";
        if (f->len != 0) return "malformed room frame";
        c->shm.tx_full = false;
        tshm_pump(c);
        if (c->state == CONN_UP && !c->shm.txq) transport_peer_flush(c->peer);
        return NULL;
    default: return "not a shared-memory frame";
    }
}

long tshm_fill(conn *c) {
    conn_shm *s = &c->shm;
    uint8_t *at;
    size_t room;
    if (frame_reader_room(&s->rx_rd, READ_BUF_BYTES, &at, &room) != 0) return -ENOMEM;
    long n = shm_ring_read(&s->rx, at, room);
    if (n <= 0) return n;
    frame_reader_commit(&s->rx_rd, (size_t)n);
    STAT_ADD(c->tr, bytes_received, (uint64_t)n);
    c->last_rx_ms = uv_now(c->tr->loop);
    if (shm_ring_take_waiting(&s->rx) && tconn_send_frame(c, FRAME_SHM_ROOM, NULL, 0) != 0) return -ENOMEM;
    return n;
}

bool tshm_rx_idle(conn *c) {
    if (!shm_ring_reader_idle(&c->shm.rx)) return false;
    c->shm.rx_belled = false;
    return true;
}

void tshm_release(conn *c) {
    conn_shm *s = &c->shm;
    wreq *w;
    while ((w = s->txq) != NULL) {
        s->txq = w->next;
        transport_write_done(w, UV_ECANCELED, false);
    }
    s->txq_tail = NULL;
    s->tx_active = false;
    shm_ring_close(&s->tx);
    if (s->rx_active) {
        s->rx_active = false;
        atomic_fetch_sub(&c->tr->shm_peers, 1);
        frame_reader_free(&s->rx_rd);
        shm_ring_close(&s->rx);
    }
}
