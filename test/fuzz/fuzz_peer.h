/*
 * fuzz_peer: for the targets that play a stranger against a real transport
 * (handshake: we dial it; dialer: it dials us). The topology they share
 * (id, key, content hash, one stream), a delivery callback that traps (no
 * tuple may ever reach a worker from an unauthenticated peer), a clock, and
 * a writer that keeps the transport's loop running while it writes.
 */
#ifndef SD_FUZZ_PEER_H
#define SD_FUZZ_PEER_H

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>
#include <uv.h>

#include "transport/auth.h"
#include "transport/frame.h"
#include "transport/transport.h"

#define FUZZ_TOPO_ID "wordcount-1-0123456789abcdef"

static const uint8_t fuzz_key[AUTH_KEY_BYTES] = {0x5e, 0xc2, 0xe7, 0x01, 0x99};
static const uint8_t fuzz_hash[AUTH_HASH_BYTES] = {0xab, 0xcd};
static char *fuzz_fields[] = {"a"};
static topo_stream fuzz_streams[1] = {{.id = 0, .name = "default", .nfields = 1, .fields = fuzz_fields}};
static topology fuzz_topo = {.nstreams = 1, .streams = fuzz_streams};

static inline int fuzz_deliver_traps(void *arg, sd_tuple *t) {
    (void)arg;
    (void)t;
    __builtin_trap(); /* nothing reaches a worker from an unauthenticated peer */
}

static inline int64_t fuzz_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes all of p to fd, running loop between tries so that the transport
 * reads while we write; stops early once the transport closed fd. */
static inline void fuzz_send_all(uv_loop_t *loop, int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        uv_run(loop, UV_RUN_NOWAIT);
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            return; /* closed by the transport: the rest does not matter */
        }
    }
}

/* Sends a hello for our topology as worker `worker`, its nonce (and, with
 * proof, its proof: the input cannot know the key) from the input. */
static inline void fuzz_send_hello(uv_loop_t *loop, int fd, int worker, bool proof, const uint8_t *data,
                                   size_t size) {
    frame_hello h = {.worker_index = worker, .topology_id = FUZZ_TOPO_ID, .has_proof = proof};
    memcpy(h.nonce, data, size < 32 ? size : 32);
    if (proof && size > 32) memcpy(h.proof, data + 32, size - 32 < 32 ? size - 32 : 32);
    memcpy(h.hash, fuzz_hash, sizeof h.hash);
    uint8_t payload[256], *fr;
    size_t plen = frame_hello_encode(payload, sizeof payload, &h), flen;
    if (plen == 0 || frame_build(FRAME_HANDSHAKE, payload, plen, 0, &fr, &flen) != 0) abort();
    fuzz_send_all(loop, fd, fr, flen);
    free(fr);
}

/* After the input was sent and our write side shut: the transport must
 * close the connection by deadline (it never authenticates a stranger);
 * then closes fd and checks that nothing was authenticated or delivered. */
static inline void fuzz_expect_closed(uv_loop_t *loop, transport *tr, int fd, int64_t deadline) {
    char buf[4096];
    for (;;) {
        uv_run(loop, UV_RUN_NOWAIT);
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) break;
        if (r > 0) continue;
        if (fuzz_now_ms() > deadline) __builtin_trap(); /* a stranger held a connection open */
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        poll(&pfd, 1, 1);
    }
    close(fd);
    uv_run(loop, UV_RUN_NOWAIT);
    transport_stats st;
    transport_get_stats(tr, &st);
    if (st.connected_peers != 0 || st.tuples_received != 0) __builtin_trap();
}

#endif
