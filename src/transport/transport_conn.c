/*
 * transport_conn: the connections of the transport (interface in
 * transport_conn.h, structures in transport_internal.h; both private to the
 * transport).
 *
 * Job: everything about one connection except the data we send on it: its
 * creation (dialing a peer, accepting on the listener) and bookkeeping in
 * tr->conns, the handshake (we send ours, check theirs: magic, version,
 * topology id, a plausible index), reading and frame processing (batches
 * decoded and delivered; a refused tuple is held, reading paused and the
 * delivery retried on the conn's timer; throttle frames passed to
 * on_throttle), and closing. A malformed frame, a bad handshake or data
 * before the handshake closes that connection only. The peer's send buffer,
 * flushing, reconnect backoff and the transport's lifecycle are in
 * transport.c.
 *
 * Threads: the loop thread only. It owns every socket and timer here;
 * transport_send (executor threads) never touches a conn.
 */
#include "transport/transport_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tuple/codec.h"
#include "transport/auth.h"
#include "transport/frame.h"
#include "transport/transport_shm.h"
#include "base/err.h"
#include "base/log.h"

#define DELIVER_RETRY_MS 1
#define HANDSHAKE_MAX_FRAME 512 /* a hello with the longest topology id fits */
/* before the handshake completes: reads this big at most (no 64 KiB
 * buffers for strangers), and this many bytes in all */
#define HANDSHAKE_READ_BYTES 4096
#define HANDSHAKE_MAX_BYTES 8192
#define KEEPALIVE_SECS 30
/* a ring's bytes drained in one go before the loop's other work runs */
#define RING_DRAIN_BYTES (256u << 10)

static void conn_start_reading(conn *c);
static void conn_input(conn *c);
static void on_conn_drain(uv_idle_t *h);
static void on_conn_timer(uv_timer_t *t);

/* ---- lifecycle --------------------------------------------------------- */

static void conn_unstranger(conn *c) {
    if (!c->stranger) return;
    c->stranger = false;
    c->tr->nstrangers--;
}

static void conn_free(conn *c) {
    transport *tr = c->tr;
    conn_unstranger(c);
    if (c->prev) c->prev->next = c->next;
    else tr->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    tr->nconns--;
    frame_reader_free(&c->rd);
    free(c);
    transport_maybe_finish(tr);
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
    /* until the peer is authenticated, only handshake-sized frames */
    frame_reader_init(&c->rd, HANDSHAKE_MAX_FRAME);
    if (auth_random(c->nonce, sizeof c->nonce) != 0) {
        log_error("transport: no random bytes for a handshake nonce");
        free(c);
        return NULL;
    }
    int rc = uv_tcp_init(tr->loop, &c->tcp);
    if (rc != 0) {
        log_error("transport: uv_tcp_init: %s", uv_strerror(rc));
        free(c);
        return NULL;
    }
    c->tcp.data = c;
    uv_timer_init(tr->loop, &c->timer); /* cannot fail for a valid loop */
    c->timer.data = c;
    uv_idle_init(tr->loop, &c->drain);
    c->drain.data = c;
    c->open_handles = 3;
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

void tconn_close(conn *c, const char *why) {
    if (c->state == CONN_CLOSING) return;
    transport *tr = c->tr;
    bool was_up = c->state == CONN_UP;
    c->state = CONN_CLOSING;
    conn_unstranger(c);
    if (why) log_info("transport: connection with worker %d closed: %s", conn_peer_index(c), why);
    peer *p = c->peer;
    if (p && p->conn == c) transport_peer_lost(p, was_up, !c->replaced);
    tshm_release(c);
    if (c->held) {
        tuple_unref(c->held);
        c->held = NULL;
        STAT_ADD(tr, tuples_dropped, 1);
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->drain, on_conn_handle_closed);
    if (c->outgoing && p && !tr->closing) transport_schedule_reconnect(p);
}

/* a protocol violation: counted, logged, only this connection closed */
static void conn_reject(conn *c, const char *what, const char *detail) {
    char addr[96];
    STAT_ADD(c->tr, frames_rejected, 1);
    log_warn("transport: rejecting %s from %s (worker %d): %s; closing that connection", what,
             conn_addr(c, addr, sizeof addr), conn_peer_index(c), detail);
    tconn_close(c, NULL);
}

/* ---- writing frames of our own (handshake, throttle) ------------------ */

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

/* Our hello; the acceptor's carries its proof over both nonces. */
static void conn_send_hello(conn *c) {
    transport *tr = c->tr;
    frame_hello h = {.worker_index = tr->cfg.worker_index, .topology_id = tr->topology_id};
    memcpy(h.nonce, c->nonce, sizeof h.nonce);
    memcpy(h.hash, tr->hash, sizeof h.hash);
    if (!c->outgoing) {
        auth_transcript t = {tr->topology_id, c->claimed, tr->cfg.worker_index, c->peer_nonce, c->nonce, tr->hash};
        if (auth_proof(tr->key, AUTH_ROLE_ACCEPTOR, &t, h.proof) != 0) {
            tconn_close(c, "cannot compute the handshake proof");
            return;
        }
        h.has_proof = true;
    }
    uint8_t payload[128 + FRAME_MAX_TOPOLOGY_ID];
    size_t n = frame_hello_encode(payload, sizeof payload, &h);
    uint8_t *fr;
    size_t flen;
    if (n == 0 || frame_build(FRAME_HANDSHAKE, payload, n, 0, &fr, &flen) != 0) {
        tconn_close(c, "cannot build handshake");
        return;
    }
    if (conn_write_frame(c, fr, flen) != 0) tconn_close(c, "cannot send handshake");
}

int tconn_send_frame(conn *c, uint8_t type, const void *payload, size_t len) {
    uint8_t small[FRAME_HEADER_BYTES + 64];
    if (len <= sizeof small - FRAME_HEADER_BYTES) {
        /* most go out at once, without a request (none is queued before it:
         * uv_try_write refuses when one is, which keeps the order) */
        frame_header_write(small, type, 0, (uint32_t)len, (uint32_t)len);
        if (len) memcpy(small + FRAME_HEADER_BYTES, payload, len);
        uv_buf_t b = uv_buf_init((char *)small, (unsigned)(FRAME_HEADER_BYTES + len));
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n == (int)b.len) return 0;
        if (n > 0) {
            /* the rest after what went: queued, in order */
            uint8_t *rest = malloc(b.len - (size_t)n);
            if (!rest) return -1;
            memcpy(rest, small + n, b.len - (size_t)n);
            return conn_write_frame(c, rest, b.len - (size_t)n);
        }
    }
    uint8_t *fr;
    size_t flen;
    if (frame_build(type, payload, len, 0, &fr, &flen) != 0) return -1;
    return conn_write_frame(c, fr, flen);
}

void tconn_send_throttle(conn *c, bool on) {
    uint8_t payload = on ? 1 : 0;
    if (tconn_send_frame(c, FRAME_THROTTLE, &payload, 1) != 0)
        log_warn("transport: cannot send a throttle frame to worker %d", conn_peer_index(c));
}

/* ---- reading ----------------------------------------------------------- */

/* An authenticated connection reads straight into its frame reader (a copy
 * of every byte received was ~3 % of a loop thread); one still in its
 * handshake reads into the transport's buffer, at most a few KiB at a time. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    conn *c = h->data;
    if (c->state != CONN_UP) {
        *buf = uv_buf_init((char *)c->tr->rbuf, HANDSHAKE_READ_BYTES);
        return;
    }
    uint8_t *at;
    size_t room;
    /* out of memory: an empty buffer, and libuv reports UV_ENOBUFS */
    if (frame_reader_room(&c->rd, READ_BUF_BYTES, &at, &room) != 0) at = NULL, room = 0;
    *buf = uv_buf_init((char *)at, (unsigned)(room < READ_BUF_BYTES ? room : READ_BUF_BYTES));
}

static void on_conn_timer(uv_timer_t *t) {
    conn *c = t->data;
    if (c->state == CONN_CLOSING) return;
    if (c->state != CONN_UP) {
        tconn_close(c, "handshake timed out");
        return;
    }
    if (!c->paused) return;
    c->paused = false;
    conn_input(c);
    if (!c->paused && c->state == CONN_UP) {
        uv_timer_stop(&c->timer);
        if (!c->shm.eof) conn_start_reading(c);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void conn_start_reading(conn *c) {
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0) tconn_close(c, uv_strerror(rc));
}

static void handshake_reject(conn *c, const char *why) {
    char addr[96];
    STAT_ADD(c->tr, handshakes_rejected, 1);
    log_warn("transport: handshake from %s rejected: %s", conn_addr(c, addr, sizeof addr), why);
    tconn_close(c, NULL);
}

/* The peer is authenticated: c becomes p's connection. */
static void conn_up(conn *c, peer *p) {
    transport *tr = c->tr;
    if (!c->outgoing) {
        /* only now may it replace an older one: a stranger cannot evict a peer */
        if (p->conn && p->conn != c) {
            p->conn->replaced = true;
            tconn_close(p->conn, "replaced by a new connection from the same worker");
        }
        c->peer = p;
    }
    c->state = CONN_UP;
    conn_unstranger(c);
    c->rd.max_frame = tr->rd_max_frame;
    uv_timer_stop(&c->timer);
    uv_tcp_nodelay(&c->tcp, 1); /* we batch ourselves */
    uv_tcp_keepalive(&c->tcp, 1, KEEPALIVE_SECS); /* a vanished host is noticed by TCP too */
    if (tr->cfg.socket_buffer_bytes > 0) {
        /* bytes in the kernel are beyond the throttle's reach: keep them few
         * (failure only leaves the kernel's size, which still works) */
        int sz = tr->cfg.socket_buffer_bytes;
        (void)uv_send_buffer_size((uv_handle_t *)&c->tcp, &sz);
        sz = tr->cfg.socket_buffer_bytes;
        (void)uv_recv_buffer_size((uv_handle_t *)&c->tcp, &sz);
    }
    tshm_offer(c);
    transport_peer_connected(p, c);
}

/* A hello: the acceptor checks the dialer's and answers; the dialer checks
 * the acceptor's proof and sends its own. */
static void conn_hello(conn *c, const frame *f) {
    transport *tr = c->tr;
    frame_hello h;
    int rc = frame_hello_check(f->payload, f->len, tr->topology_id, tr->hash, &h);
    int self = tr->cfg.worker_index;
    const char *why = rc ? frame_strerror(rc) : NULL;
    if (!why && !c->outgoing && h.has_proof) why = "a dialer's hello carries a proof";
    if (!why && !c->outgoing && (h.worker_index >= tr->cfg.nworkers || h.worker_index >= self))
        why = "worker index out of range (only lower-indexed workers dial us)";
    if (!why && c->outgoing && h.worker_index != c->peer->index) why = "peer answered with another worker index";
    if (why) {
        handshake_reject(c, why);
        return;
    }
    memcpy(c->peer_nonce, h.nonce, sizeof c->peer_nonce);
    if (!c->outgoing) {
        c->claimed = h.worker_index;
        c->state = CONN_AUTH;
        conn_send_hello(c);
        return;
    }
    auth_transcript t = {tr->topology_id, self, c->peer->index, c->nonce, c->peer_nonce, tr->hash};
    if (!h.has_proof || !auth_proof_ok(tr->key, AUTH_ROLE_ACCEPTOR, &t, h.proof)) {
        handshake_reject(c, "peer does not hold the topology secret");
        return;
    }
    uint8_t proof[AUTH_PROOF_BYTES], *fr;
    size_t flen;
    if (auth_proof(tr->key, AUTH_ROLE_DIALER, &t, proof) != 0 ||
        frame_build(FRAME_AUTH, proof, sizeof proof, 0, &fr, &flen) != 0) {
        tconn_close(c, "cannot build the handshake proof");
        return;
    }
    if (conn_write_frame(c, fr, flen) != 0) {
        tconn_close(c, "cannot send the handshake proof");
        return;
    }
    conn_up(c, c->peer);
}

/* The dialer's proof, the handshake's last message. */
static void conn_auth(conn *c, const frame *f) {
    transport *tr = c->tr;
    auth_transcript t = {tr->topology_id, c->claimed, tr->cfg.worker_index, c->peer_nonce, c->nonce, tr->hash};
    if (f->len != AUTH_PROOF_BYTES || !auth_proof_ok(tr->key, AUTH_ROLE_DIALER, &t, f->payload)) {
        handshake_reject(c, "peer does not hold the topology secret");
        return;
    }
    conn_up(c, &tr->peers[c->claimed]);
}

/* Delivery refused a tuple: stop reading and offer it again on the timer. */
static void conn_pause(conn *c) {
    c->paused = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_start(&c->timer, on_conn_timer, DELIVER_RETRY_MS, DELIVER_RETRY_MS);
}

/* Delivers tuples and handles frames until the input is exhausted, the
 * destination refuses a tuple (pause), or the connection is closed. The
 * input is the TCP connection's frames, or (ring) those of the peer's
 * shared-memory ring, refilled from it until it is drained. */
static void conn_process(conn *c, bool ring) {
    transport *tr = c->tr;
    frame_reader *rd = ring ? &c->shm.rx_rd : &c->rd;
    uint64_t delivered = 0; /* counted once per call: a locked add per tuple cost the loop */
    size_t filled = 0;
    while (!c->paused && c->state != CONN_CLOSING) {
        if (c->held) {
            if (tr->deliver(tr->deliver_arg, c->held) != 0) goto pause;
            c->held = NULL;
            delivered++;
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
                goto done;
            }
            sd_tuple *t;
            int drc = codec_decode_in(tr->cfg.pool, rec, rl, tr->topo, &t);
            if (drc != CODEC_OK) {
                conn_reject(c, "tuple", codec_strerror(drc));
                goto done;
            }
            const char *bad = tr->cfg.check ? tr->cfg.check(tr->deliver_arg, c->peer->index, t) : NULL;
            if (bad) {
                tuple_unref(t);
                conn_reject(c, "tuple", bad);
                goto done;
            }
            if (tr->deliver(tr->deliver_arg, t) != 0) {
                c->held = t; /* offered again once the destination has room */
                goto pause;
            }
            delivered++;
            continue;
        }
        frame f;
        int rc = frame_reader_next(rd, &f);
        if (rc == FRAME_NEED_MORE) {
            if (!ring) break;
            if (filled >= RING_DRAIN_BYTES) {
                /* the loop's turn (it hands what we delivered on to the
                 * executors, and throttles); the drain goes on after */
                uv_idle_start(&c->drain, on_conn_drain);
                break;
            }
            /* nothing of the ring's is being delivered: it may be refilled */
            long n = tshm_fill(c);
            if (n < 0) {
                conn_reject(c, "shared-memory ring", sd_strerror((int)n));
                goto done;
            }
            if (n == 0 && tshm_rx_idle(c)) break;
            filled += (size_t)n;
            continue;
        }
        if (rc < 0) {
            conn_reject(c, "frame", frame_strerror(rc));
            goto done;
        }
        STAT_ADD(tr, frames_received, 1);
        if (ring && f.type != FRAME_BATCH) {
            conn_reject(c, "frame", "a frame other than a batch in the shared-memory ring");
            goto done;
        } else if (f.type == FRAME_HANDSHAKE) {
            if (c->state != CONN_HANDSHAKE) {
                conn_reject(c, "frame", "unexpected handshake");
                goto done;
            }
            conn_hello(c, &f);
        } else if (f.type == FRAME_AUTH) {
            if (c->state != CONN_AUTH) {
                conn_reject(c, "frame", "unexpected handshake proof");
                goto done;
            }
            conn_auth(c, &f);
        } else if (c->state != CONN_UP) {
            STAT_ADD(tr, handshakes_rejected, 1);
            conn_reject(c, "frame", "data before the handshake");
            goto done;
        } else if (f.type == FRAME_PING) {
            if (f.len != 0) {
                conn_reject(c, "frame", "malformed ping");
                goto done;
            }
        } else if (f.type == FRAME_THROTTLE) {
            if (f.len != 1 || f.payload[0] > 1) {
                conn_reject(c, "frame", "malformed throttle frame");
                goto done;
            }
            if (tr->cfg.on_throttle) tr->cfg.on_throttle(tr->deliver_arg, c->peer->index, f.payload[0] == 1);
        } else if (f.type >= FRAME_SHM_OFFER) {
            const char *why = tshm_on_frame(c, &f);
            if (why) {
                conn_reject(c, "frame", why);
                goto done;
            }
        } else {
            c->batch = f.payload;
            c->batch_len = f.len;
            c->batch_off = 0;
        }
    }
done:
    if (delivered) STAT_ADD(tr, tuples_received, delivered);
    return;
pause:
    if (delivered) STAT_ADD(tr, tuples_received, delivered);
    conn_pause(c);
}

static void on_conn_drain(uv_idle_t *h) {
    conn *c = h->data;
    uv_idle_stop(h);
    if (!c->paused && c->state == CONN_UP) conn_input(c);
}

/* Everything c has to deliver: its TCP frames, then, once belled, the
 * ring until drained. The peer's TCP close waits behind the ring. */
static void conn_input(conn *c) {
    conn_process(c, false);
    if (!c->paused && c->state == CONN_UP && c->shm.rx_belled) conn_process(c, true);
    if (c->shm.eof && !c->paused && c->state == CONN_UP && !c->shm.rx_belled) tconn_close(c, "closed by peer");
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    conn *c = s->data;
    if (nread == UV_EOF && c->state == CONN_UP && c->shm.rx_active) {
        /* what the peer put in its ring before going comes first */
        uv_read_stop(s);
        c->shm.eof = true;
        c->shm.rx_belled = true;
        conn_input(c);
        return;
    }
    if (nread < 0) {
        tconn_close(c, nread == UV_EOF ? "closed by peer" : uv_strerror((int)nread));
        return;
    }
    if (nread == 0 || c->state == CONN_CLOSING) return;
    STAT_ADD(c->tr, bytes_received, (uint64_t)nread);
    c->last_rx_ms = uv_now(c->tr->loop);
    if (c->state != CONN_UP && (c->pre_auth_bytes += (size_t)nread) > HANDSHAKE_MAX_BYTES) {
        STAT_ADD(c->tr, handshakes_rejected, 1);
        conn_reject(c, "connection", "too many bytes before the handshake completed");
        return;
    }
    if (buf->base != (char *)c->tr->rbuf) {
        frame_reader_commit(&c->rd, (size_t)nread); /* read in place (on_alloc) */
    } else if (frame_reader_push(&c->rd, c->tr->rbuf, (size_t)nread) != 0) {
        tconn_close(c, "out of memory");
        return;
    }
    conn_input(c);
}

/* ---- connecting ---------------------------------------------------------- */

static void on_connect(uv_connect_t *req, int status) {
    conn *c = req->data;
    if (c->state == CONN_CLOSING) return;
    if (status != 0) {
        log_debug("transport: connect to worker %d: %s", conn_peer_index(c), uv_strerror(status));
        tconn_close(c, NULL);
        return;
    }
    c->state = CONN_HANDSHAKE;
    conn_start_reading(c);
    if (c->state == CONN_HANDSHAKE) conn_send_hello(c);
}

int tconn_dial(peer *p, const struct sockaddr *addr) {
    conn *c = conn_new(p->tr, true, p);
    if (!c) return -1;
    c->connect_req.data = c;
    uv_timer_start(&c->timer, on_conn_timer, (uint64_t)p->tr->cfg.handshake_timeout_ms, 0);
    int rc = uv_tcp_connect(&c->connect_req, &c->tcp, addr, on_connect);
    if (rc != 0) {
        log_warn("transport: connect to worker %d: %s", p->index, uv_strerror(rc));
        tconn_close(c, NULL);
    }
    return 0;
}

void tconn_on_connection(uv_stream_t *server, int status) {
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
        tconn_close(c, NULL);
        return;
    }
    if (tr->nstrangers >= tr->cfg.max_unauthenticated) {
        /* accepted only to be closed: the backlog must not hold them either */
        char addr[96];
        STAT_ADD(tr, handshakes_rejected, 1);
        if (tr->strangers_refused++ % 1000 == 0)
            log_warn("transport: refusing %s: %d connections already in their handshake (%llu refused so far)",
                     conn_addr(c, addr, sizeof addr), tr->nstrangers, (unsigned long long)tr->strangers_refused);
        tconn_close(c, NULL);
        return;
    }
    c->stranger = true;
    tr->nstrangers++;
    c->last_rx_ms = uv_now(tr->loop);
    uv_timer_start(&c->timer, on_conn_timer, (uint64_t)tr->cfg.handshake_timeout_ms, 0);
    conn_start_reading(c);
}

/* ---- liveness -------------------------------------------------------------- */

void tconn_heartbeat(conn *c, uint64_t now_ms) {
    transport *tr = c->tr;
    if (c->state != CONN_UP) return;
    if (now_ms - c->last_rx_ms > (uint64_t)tr->cfg.peer_timeout_ms) {
        char why[96];
        STAT_ADD(tr, peers_timed_out, 1);
        snprintf(why, sizeof why, "silent for more than %d ms: peer declared down", tr->cfg.peer_timeout_ms);
        tconn_close(c, why);
        return;
    }
    /* a link with writes in flight is not idle: the peer hears from us */
    if (c->peer && c->peer->writes == 0) (void)tconn_send_frame(c, FRAME_PING, NULL, 0);
}

/* ---- closing ------------------------------------------------------------- */

static void on_shutdown(uv_shutdown_t *req, int status) {
    (void)status;
    tconn_close(req->data, NULL);
}

void tconn_shutdown(conn *c) {
    /* shutdown waits for queued writes, then closes; others close now */
    if (c->state == CONN_UP && c->peer && c->peer->writes > 0) {
        c->shutdown_req.data = c;
        if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) tconn_close(c, NULL);
    } else {
        tconn_close(c, NULL);
    }
}
