/*
 * transport_internal: the structures shared by the transport's modules.
 * PRIVATE to the transport: nothing else includes this header (the public
 * interface is transport.h).
 *
 * transport.c owns the transport object and its peers (flushing and
 * writing, reconnect backoff, stats, close); transport_send.c is the
 * senders' side of each peer's buffer; transport_conn.c owns the
 * connections (accept/dial bookkeeping, handshake, reading and frame
 * processing, delivery with pause/retry, throttle frames); transport_shm.c
 * a connection's shared-memory rings.
 *
 * Threads and data:
 * - the loop thread owns every uv handle, every conn (reader state, the
 *   batch being delivered, a held tuple), the write requests, each peer's
 *   `conn`, reconnect timer and backoff, and tr->conns;
 * - sender threads (transport_send) and the loop thread share each peer's
 *   out buffer, its in-flight byte count and its connected/closed flags,
 *   under peer->mu; senders wait on peer->room for backpressure;
 * - statistics are atomics, readable from any thread.
 * Every function declared here runs on the loop thread.
 */
#ifndef SD_TRANSPORT_INTERNAL_H
#define SD_TRANSPORT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "transport/frame.h"
#include "transport/shm_ring.h"
#include "transport/transport.h"

#define READ_BUF_BYTES 65536

/* CONN_AUTH: an acceptor that answered the hello and waits for the dialer's proof */
enum conn_state { CONN_CONNECTING, CONN_HANDSHAKE, CONN_AUTH, CONN_UP, CONN_CLOSING };

typedef struct conn conn;

/* buffers a peer keeps for reuse */
#define PEER_SPARE_BUFFERS 2

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
    /* recycled buffers, saving a malloc per flush and the regrowth of a
     * new buffer by doubling: one per write in flight at the same time
     * (the loop flushes a full batch even while a write is in flight) */
    uint8_t *spare[PEER_SPARE_BUFFERS];
    size_t spare_cap[PEER_SPARE_BUFFERS];
    int nspare;
    /* where buf's frames end (offsets of the records that start a new
     * frame), noted by senders as they append, so that the loop cuts frames
     * without a pass over every record; frame_start: the current frame's */
    size_t *cuts, ncuts, cuts_cap, frame_start;
    size_t *spare_cuts, spare_cuts_cap; /* loop thread only: recycled cuts */
    size_t inflight;           /* record bytes handed to uv_write, not completed */
    bool connected;
    bool closed;               /* transport closing: no more uv_async_send */
    bool isolated;             /* down longer than the peer timeout: sends to it drop at once */
    /* loop thread only */
    conn *conn;                /* the handshaken connection, or NULL */
    int writes;                /* uv_write requests outstanding */
    uint32_t write_tuples;     /* tuples in them */
    uv_timer_t reconnect;
    bool reconnect_init;
    int backoff_ms;
    bool down;                 /* its up connection was lost and none is up again */
    uint64_t down_since_ms;    /* loop time it went down; moved on when our own loop stalled */
} peer;

/* one write of a peer's swapped-out buffer, cut into frames: a uv_write
 * on the TCP connection, or queued for the shared-memory ring */
typedef struct wreq {
    uv_write_t req;
    struct peer *peer;
    uint8_t *data;             /* the records; recycled as the peer's spare */
    size_t data_cap, data_len;
    uint8_t *lz4;              /* compressed payloads, or NULL */
    uint32_t ntuples, nframes;
    size_t wire_bytes;
    struct wreq *next;         /* ring: the queue of writes waiting for room */
    uint32_t at_buf;           /* ring: the buffer being copied, and the bytes of it done */
    size_t at_off;
    /* followed by uv_buf_t[2 * nframes] (header, payload) and frame_slice[nframes] */
} wreq;
static inline uv_buf_t *wreq_bufs(wreq *w) { return (uv_buf_t *)(w + 1); }

/* A connection's shared-memory rings (transport_shm.c): set up after the
 * handshake when both ends are on one host; then batches go through them
 * and TCP carries the rest (pings, throttle, the rings' bells). */
typedef struct conn_shm {
    shm_ring tx;               /* ours, toward the peer: offered, then active */
    bool tx_offered, tx_active;
    wreq *txq, *txq_tail;      /* writes not yet wholly in tx */
    bool pumping;              /* tshm_pump is running (a write completing may flush again) */
    bool tx_full;              /* waiting for the peer's room frame */
    shm_ring rx;               /* the peer's, toward us, once accepted */
    bool rx_active;
    bool rx_belled;            /* a bell came: drain until idle */
    bool eof;                  /* TCP closed by the peer: drain rx, then close */
    frame_reader rx_rd;
} conn_shm;

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;          /* handshake deadline, then deliver retries */
    uv_idle_t drain;           /* a ring's drain resumed on the loop's next turn */
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
    uint8_t nonce[32];         /* ours, for this handshake */
    uint8_t peer_nonce[32];
    int claimed;               /* acceptor: the index the dialer's hello names */
    bool stranger;             /* accepted, not yet authenticated: counts in tr->nstrangers */
    size_t pre_auth_bytes;     /* read before the handshake completed */
    uint64_t last_rx_ms;       /* loop time of the last bytes received */
    bool replaced;             /* closed for a newer connection of the same peer: not a peer gone down */
    conn_shm shm;
    conn *prev, *next;
};

struct transport {
    uv_loop_t *loop;
    transport_config cfg;      /* peers and topology_id point at our copies */
    char *topology_id;
    uint8_t key[32], hash[32]; /* copies of cfg.secret and cfg.content_hash */
    transport_peer *addrs;
    struct sockaddr_storage *resolved; /* [nworkers]: addrs resolved once, in transport_new */
    const topology *topo;
    transport_deliver_cb deliver;
    void *deliver_arg;
    size_t frame_limit;        /* max payload of a frame we send */
    size_t send_frame;         /* payload at which frames are cut (a batch; a larger record goes alone) */
    size_t rd_max_frame;       /* max frame we read from an authenticated peer */
    peer *peers;
    uv_tcp_t listener;
    uv_async_t wake;
    uv_timer_t flush_timer;
    uv_timer_t close_timer;
    uv_timer_t hb_timer;       /* pings on idle links, silent peers declared down */
    uint64_t last_hb_ms;       /* loop time of its last tick (stall detector) */
    int nstrangers;            /* accepted connections in their handshake */
    uint64_t strangers_refused;
    atomic_bool started;       /* read by senders: no uv_async_send before start */
    bool closing, close_timer_on;
    bool throttle_on;          /* what we last asked our peers */
    uv_thread_t loop_thread;
    conn *conns;
    int nconns;
    int open_handles;
    void (*done)(void *);
    void *done_arg;
    uint8_t rbuf[READ_BUF_BYTES]; /* loop thread: reads before the handshake completes land here */
    _Atomic uint64_t tuples_sent, tuples_received, tuples_dropped;
    _Atomic uint64_t bytes_sent, bytes_received, frames_sent, frames_received;
    _Atomic uint64_t frames_rejected, handshakes_rejected, peers_timed_out;
    atomic_int connected_peers;
    atomic_int shm_peers;      /* connections whose peer sends us through a ring */
};

#define STAT_ADD(tr, field, n) atomic_fetch_add_explicit(&(tr)->field, (n), memory_order_relaxed)

/* ---- transport.c, for the connections ---------------------------------- */

/* The transport is closing: frees it (and calls done) once the last handle
 * and the last conn are gone. Called whenever a conn is freed. */
void transport_maybe_finish(transport *tr);
/* c has completed its handshake with p: it becomes p's connection, senders
 * see p up, our throttle state is sent and p's buffer flushed. */
void transport_peer_connected(peer *p, conn *c);
/* p's connection is going away (p->conn is that conn): forget it; if it was
 * up, senders see p down and p counts as no longer throttling us, and
 * unless it is being replaced (down false) p is declared down: what we
 * hold for it is given up (on_unsent) and on_peer_down called. */
void transport_peer_lost(peer *p, bool was_up, bool down);
/* A write of w completed (status 0) or will never be (a negative uv
 * error): its tuples are counted sent, or given up. refill: flush what
 * accumulated behind it now (not from inside a ring's pump). */
void transport_write_done(wreq *w, int status, bool refill);
/* Sends what is buffered for p, if its connection is up. */
void transport_peer_flush(peer *p);
/* Dial p again after its backoff (no-op while closing or for peers we do
 * not dial). */
void transport_schedule_reconnect(peer *p);

#endif
