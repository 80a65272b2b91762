/*
 * transport: the worker-to-worker data plane over TCP (libuv).
 * One connection per pair of workers (the lower worker index connects to the
 * higher one and reconnects with backoff; wire format in frame.h), a versioned
 * handshake that rejects a peer of another topology, length-prefixed frames
 * with a maximum size, batching per destination worker (flush on size or on
 * a short timer), lz4 for frames above a threshold. A malformed or oversized
 * frame closes that connection only, and is logged. Two workers on one host
 * exchange batches through shared-memory rings once connected (shm_ring.h),
 * TCP still carrying the handshake, pings, throttle and the rings' bells. The handshake is a
 * mutual challenge-response over the topology's secret (auth.h), so only
 * holders of the secret with the same topology contents exchange tuples.
 *
 * Threads: the loop thread (the worker's libuv loop) owns every socket and
 * timer. transport_send may be called from any executor thread; it hands
 * serialized bytes to the loop thread (wakes it with uv_async).
 */
#ifndef SD_TRANSPORT_H
#define SD_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "tuple/codec.h"
#include "tuple/tuple.h"
#include "topology/topology.h"

typedef struct transport transport;

typedef struct transport_peer {
    char host[64];
    int port;
} transport_peer;

typedef struct transport_config {
    const char *topology_id;   /* handshake: peers of another topology are rejected */
    const uint8_t *secret;     /* AUTH_KEY_BYTES: the topology's key; peers must prove they hold it */
    const uint8_t *content_hash; /* AUTH_HASH_BYTES: package/topology hash; peers must have the same */
    int worker_index;          /* this worker */
    int nworkers;
    const transport_peer *peers; /* nworkers entries, index = worker index (self included) */
    /* 0 picks the default shown */
    size_t batch_bytes;        /* flush a peer's buffer once it holds this much (64 KiB) */
    int flush_interval_ms;     /* ... or after this long (5) */
    size_t lz4_threshold;      /* compress frames at least this big; 0 = never */
    size_t max_frame_bytes;    /* larger incoming frames close the connection (16 MiB);
                                * also caps what we send: a bigger tuple is dropped */
    size_t max_buffered_bytes; /* per peer: senders wait above this while the peer is up
                                * (backpressure); a down peer's overflow: dropped above (8 MiB) */
    int socket_buffer_bytes;   /* SO_SNDBUF and SO_RCVBUF of each peer connection; 0 = the kernel's
                                * (autotuned, several MiB in flight once the receiver throttles) */
    size_t shm_ring_bytes;     /* > 0: a peer on the same host gets our batches through a
                                * shared-memory ring of this size (rounded to a power of two,
                                * 64 KiB - 256 MiB) instead of TCP; 0 = TCP only */
    int handshake_timeout_ms;  /* a connection still in its handshake then is closed (5000) */
    int max_unauthenticated;   /* accepted connections in their handshake at once (64) */
    int heartbeat_interval_ms; /* idle links carry a ping this often (1000) */
    int peer_timeout_ms;       /* a peer silent this long is declared down (10000); a
                                * peer down this long has its overflow failed */
    /* loop thread: peer asks us to pause (on) or resume our spouts; a peer
     * that disconnects counts as resumed. May be NULL. */
    void (*on_throttle)(void *arg, int peer, bool on);
    /* loop thread: a tuple the transport held for a peer that is down and
     * gives up on (decoded; borrowed for the call): those buffered or in
     * writes when its connection was lost, and those that wait in its
     * overflow while it stays down longer than peer_timeout_ms. The callback
     * fails their trees at once. Each is counted in tuples_dropped. May be
     * NULL: then they are only counted (acking off). */
    void (*on_unsent)(void *arg, int peer, const sd_tuple *t);
    /* loop thread: peer's connection, up until now, was lost (silence,
     * error or close). May be NULL. */
    void (*on_peer_down)(void *arg, int peer);
    /* received tuples are carved from this pool (owned by the loop thread;
     * may be NULL: malloc) */
    struct tuple_pool *pool;
    /* loop thread: checks each received tuple before delivery (peer = the
     * sending worker's index); a non-NULL reason closes that connection,
     * logged with the peer address and counted in frames_rejected. May be
     * NULL (no checks beyond decoding). */
    const char *(*check)(void *arg, int peer, const sd_tuple *t);
} transport_config;

/* Called on the loop thread for each tuple received, with dest_task set and
 * the stream resolved. Returns 0 if it took the tuple (ownership passes), -1
 * if the destination is full: the transport then keeps the tuple, stops
 * reading that connection, and calls again later with the same tuple. */
typedef int (*transport_deliver_cb)(void *arg, sd_tuple *t);

/* host (an IPv4 or IPv6 address, or a name: getaddrinfo, which blocks) and
 * port as a socket address; an IPv4 address of a name is preferred. 0, or
 * -ENOENT (no such name) / -EHOSTUNREACH / -EINVAL with the reason in why. */
struct sockaddr_storage;
int transport_resolve(const char *host, int port, struct sockaddr_storage *ss, char *why, size_t whylen);

/* topo is used to resolve stream ids of received tuples; it must outlive tr.
 * Peers' hosts are resolved here (blocking); NULL when one does not
 * resolve (logged) or on allocation failure. */
transport *transport_new(uv_loop_t *loop, const transport_config *cfg, const topology *topo,
                         transport_deliver_cb deliver, void *arg);
/* Loop thread: listen on our port and connect to peers (reconnecting with
 * backoff while they are down). Returns 0 or -1 (e.g. port in use). */
int transport_start(transport *tr);

/* Any thread: serialize tuples (each with dest_task set) for worker `worker`.
 * When the peer's buffer is above max_buffered_bytes and the peer is
 * connected, waits for room unless never_block (system streams: acks must
 * never wait); the wait ends when the peer is declared down. When the peer
 * is down and its buffer (the bounded overflow) is full, or it has stayed
 * down for peer_timeout_ms (isolated: its overflow was given up through
 * on_unsent), drops them at once:
 * a down peer never slows sends to the others. Returns how many tuples were
 * dropped (0: all sent), and marks each dropped one TUPLE_F_UNSENT, so that
 * its sender may fail its tuple trees at once (the spouts replay them)
 * instead of leaving them to the message timeout; the tuples must
 * therefore be the caller's alone. Used for built tuples (acking packets,
 * notices); data goes as records (below). Does not consume
 * the caller's references. Called on the loop thread it never waits (as if
 * never_block). `worker` must not be this worker (local tuples never travel
 * through the transport). */
int transport_send(transport *tr, int worker, sd_tuple *const *tuples, size_t n, bool never_block);

/* Records for one peer, gathered by one sender thread (its own: no lock)
 * in the batch payload's format (frame.h) and handed over together by
 * transport_send_records: an emit encodes a tuple for another worker here
 * straight from its values, without building the tuple. */
typedef struct transport_records {
    uint8_t *buf;
    size_t len, cap;
    uint32_t n;                /* records in buf */
} transport_records;
/* Grows r for one more record of at most bound encoded bytes; 0 or -ENOMEM. */
int transport_records_grow(transport_records *r, size_t bound);
void transport_records_free(transport_records *r);
/* Where the next record's encoding goes, with room for bound bytes; NULL
 * when out of memory. Inline: once per tuple sent. */
static inline uint8_t *transport_records_reserve(transport_records *r, size_t bound) {
    if (r->len + 4 + bound > r->cap && transport_records_grow(r, bound) != 0) return NULL;
    return r->buf + r->len + 4;
}
/* The record reserved last: its encoding took len bytes. */
static inline void transport_records_commit(transport_records *r, size_t len) {
    codec_put32(r->buf + r->len, (uint32_t)len);
    r->len += 4 + len;
    r->n++;
}
static inline void transport_records_clear(transport_records *r) {
    r->len = 0;
    r->n = 0;
}
/* The largest encoding of one record the transport sends: a bigger tuple
 * must be refused by its sender. */
size_t transport_record_limit(const transport *tr);
/* Senders hand their records over once they hold this many bytes (at most
 * a frame's payload, so that they travel in one frame). */
size_t transport_records_batch(const transport *tr);
/* Any thread: appends r's records to worker `worker`'s buffer, as
 * transport_send does with tuples (the same waiting for room, the same
 * dropping to a down peer), all of them or none: returns how many were
 * dropped, 0 or r->n. Once sent, r is empty (its buffer may have been
 * traded for the peer's empty one); dropped, r still holds them, for the
 * caller to fail their trees and clear. Records that exceed the frame
 * limit must not be in r. */
int transport_send_records(transport *tr, int worker, transport_records *r, bool never_block);

/* Loop thread: tell every peer (now, and each one that connects later)
 * whether our queues overflow and their spouts should pause. */
void transport_set_throttle(transport *tr, bool on);

typedef struct transport_stats {
    uint64_t tuples_sent, tuples_received, tuples_dropped;
    uint64_t bytes_sent, bytes_received, frames_sent, frames_received;
    uint64_t frames_rejected;   /* malformed/oversized: connection closed */
    uint64_t handshakes_rejected; /* also: strangers over the cap, bytes or time */
    uint64_t peers_timed_out;   /* connections closed because the peer went silent */
    int connected_peers;
    int shm_peers;              /* of them, sending us batches through shared memory */
    uint64_t buffered_bytes;    /* waiting to be written or in writes not yet done */
} transport_stats;
void transport_get_stats(transport *tr, transport_stats *out); /* any thread */

/* Loop thread: flush what is buffered (best effort), close everything, then
 * call done (may be NULL) once all handles are closed. tr is freed after. */
void transport_close(transport *tr, void (*done)(void *arg), void *arg);

#endif
