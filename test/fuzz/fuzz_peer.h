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
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <uv.h>

#include "transport/auth.h"
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

#endif
