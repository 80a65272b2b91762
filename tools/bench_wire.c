/*
 * bench_wire: micro-benchmark of the data plane's pieces: codec encode +
 * decode of ~100-byte tuples, lz4 on a batch of them, and throughput between
 * two transports (one uv loop thread, one sender thread) over 127.0.0.1,
 * then through shared-memory rings. Built by meson (build/bench_wire), run with tools/bench-wire. Single process, bounded:
 * every phase has a fixed amount of work and a deadline.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tuple/codec.h"
#include "transport/frame.h"
#include "base/log.h"
#include "transport/transport.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static sd_tuple *make_tuple(int64_t seq) {
    /* random lowercase text: compressible like words, not like a repeated constant */
    char text[62];
    for (size_t i = 0; i < sizeof text; i++) text[i] = (char)('a' + rand() % 26);
    sd_value v[3] = {sd_int(0), sd_int(seq), sd_str(text, sizeof text)};
    sd_tuple *t = tuple_new(v, 3, NULL, 0);
    if (!t) exit(1);
    t->dest_task = 2;
    return t;
}

static void bench_codec(long n) {
    sd_tuple *t = make_tuple(1);
    size_t sz = codec_encoded_size(t);
    uint8_t buf[256];
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        tuple_values(t)[1].v.i = i;
        codec_encode(t, buf);
        sd_tuple *d;
        if (codec_decode(buf, sz, NULL, &d) != CODEC_OK) exit(1);
        tuple_unref(d);
    }
    double dt = now_s() - t0;
    printf("codec: %zu-byte tuples, encode+decode: %.2f M tuples/s\n", sz, n / dt / 1e6);
    /* lz4 on a 64 KiB batch of such tuples */
    size_t rec = 4 + sz, count = 65536 / rec, len = count * rec;
    uint8_t *batch = malloc(len), *out = malloc(frame_lz4_bound(len));
    if (!batch || !out) exit(1);
    for (size_t i = 0; i < count; i++) {
        sd_tuple *u = make_tuple((int64_t)i);
        uint32_t r = (uint32_t)sz;
        memcpy(batch + i * rec, &r, 4);
        codec_encode(u, batch + i * rec + 4);
        tuple_unref(u);
    }
    int rounds = 2000;
    size_t clen = 0;
    t0 = now_s();
    for (int i = 0; i < rounds; i++) clen = frame_lz4_compress(batch, len, out, frame_lz4_bound(len));
    dt = now_s() - t0;
    printf("lz4: 64 KiB batch -> %zu bytes, compress %.0f MB/s\n", clen, rounds * (double)len / dt / 1e6);
    free(batch);
    free(out);
    tuple_unref(t);
}

/* ---- loopback ---- */
typedef struct bench {
    uv_loop_t loop;
    uv_async_t ctl;
    transport *tr[2];
    transport_config cfg[2];
    transport_peer peers[2];
    atomic_long received;
    atomic_int closed;
    atomic_int cmd;   /* 1 start, 2 close */
    atomic_int ready; /* set by the loop thread once tr[] exist: publishes them */
    size_t lz4;
} bench;

static int on_deliver(void *arg, sd_tuple *t) {
    atomic_fetch_add_explicit(&((bench *)arg)->received, 1, memory_order_relaxed);
    tuple_unref(t);
    return 0;
}
static void on_done(void *arg) { atomic_fetch_add(&((bench *)arg)->closed, 1); }

static void on_ctl(uv_async_t *a) {
    bench *b = a->data;
    int cmd = atomic_exchange(&b->cmd, 0);
    if (cmd == 1) {
        for (int i = 0; i < 2; i++) {
            b->tr[i] = transport_new(&b->loop, &b->cfg[i], NULL, on_deliver, b);
            if (!b->tr[i] || transport_start(b->tr[i]) != 0) exit(1);
        }
        atomic_store_explicit(&b->ready, 1, memory_order_release);
    } else if (cmd == 2) {
        for (int i = 0; i < 2; i++) transport_close(b->tr[i], on_done, b);
        uv_close((uv_handle_t *)&b->ctl, NULL);
    }
}

static void *loop_main(void *arg) {
    uv_run(&((bench *)arg)->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0) exit(1);
    close(fd);
    return ntohs(a.sin_port);
}

/* both transports hold the same (arbitrary) topology secret and contents */
static const uint8_t bench_key[32] = {1}, bench_hash[32] = {2};

/* ring: the two transports' batches go through shared-memory rings */
static void bench_loopback(long n, size_t lz4, bool ring) {
    const char *via = ring ? "shared-memory ring" : "loopback";
    bench *b = calloc(1, sizeof *b);
    if (!b || uv_loop_init(&b->loop) != 0 || uv_async_init(&b->loop, &b->ctl, on_ctl) != 0) exit(1);
    b->ctl.data = b;
    for (int i = 0; i < 2; i++) {
        snprintf(b->peers[i].host, sizeof b->peers[i].host, "127.0.0.1");
        b->peers[i].port = free_port();
    }
    for (int i = 0; i < 2; i++)
        b->cfg[i] = (transport_config){.topology_id = "bench", .secret = bench_key, .content_hash = bench_hash,
                                       .worker_index = i, .nworkers = 2,
                                       .peers = b->peers, .batch_bytes = 65536, .flush_interval_ms = 2,
                                       .lz4_threshold = lz4, .max_frame_bytes = 4 << 20,
                                       .max_buffered_bytes = 4 << 20, .shm_ring_bytes = ring ? 1 << 20 : 0};
    pthread_t th;
    if (pthread_create(&th, NULL, loop_main, b) != 0) exit(1);
    atomic_store(&b->cmd, 1);
    uv_async_send(&b->ctl);
    transport_stats st = {0};
    double deadline = now_s() + 10;
    while (st.connected_peers < 1 && now_s() < deadline) {
        usleep(1000); /* polling with a deadline */
        if (atomic_load_explicit(&b->ready, memory_order_acquire)) transport_get_stats(b->tr[0], &st);
    }
    while (ring && st.shm_peers < 1 && now_s() < deadline) {
        usleep(1000);
        transport_get_stats(b->tr[1], &st);
    }
    if (st.connected_peers < 1 || (ring && st.shm_peers < 1)) {
        fprintf(stderr, "bench_wire: the two transports did not connect%s within 10 s\n", ring ? " through a ring" : "");
        exit(1);
    }
    /* 1000 distinct tuples (~100 KiB, beyond lz4's 64 KiB window), sent 100 at a time */
    enum { SET = 1000 };
    sd_tuple *batch[SET];
    for (int i = 0; i < SET; i++) batch[i] = make_tuple(i);
    /* light load: one tuple at a time, wait for it to arrive */
    int pings = 2000;
    double t0 = now_s();
    for (int i = 0; i < pings; i++) {
        long want = atomic_load(&b->received) + 1;
        transport_send(b->tr[0], 1, batch, 1, false);
        double until = now_s() + 1;
        while (atomic_load(&b->received) < want && now_s() < until) continue; /* spin: measuring */
    }
    printf("%s (lz4 %s): one tuple at a time: %.1f us per tuple, send to deliver\n", via, lz4 ? "on" : "off",
           (now_s() - t0) / pings * 1e6);
    atomic_store(&b->received, 0);
    t0 = now_s();
    for (long i = 0; i < n; i += 100) transport_send(b->tr[0], 1, batch + i % SET, 100, false);
    deadline = now_s() + 60;
    while (atomic_load(&b->received) < n && now_s() < deadline) usleep(200);
    double dt = now_s() - t0;
    transport_get_stats(b->tr[0], &st);
    printf("%s (lz4 %s): %ld tuples in %.2fs: %.2f M tuples/s, %.1f MB/s on the wire, %llu frames\n", via,
           lz4 ? "on" : "off", (long)atomic_load(&b->received), dt, atomic_load(&b->received) / dt / 1e6,
           st.bytes_sent / dt / 1e6, (unsigned long long)st.frames_sent);
    for (int i = 0; i < SET; i++) tuple_unref(batch[i]);
    atomic_store(&b->cmd, 2);
    uv_async_send(&b->ctl);
    pthread_join(th, NULL);
    uv_loop_close(&b->loop);
    free(b);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    log_set_level(SD_LOG_WARN);
    printf("nproc: %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
    bench_codec(n);
    bench_loopback(n, 0, false);
    bench_loopback(n, 1024, false);
    bench_loopback(n, 0, true);
    return 0;
}
