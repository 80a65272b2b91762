/* Unit tests for transport.c: two transports on one uv loop (its own
 * thread) talking over 127.0.0.1; senders are other threads. Covers
 * ordered delivery both ways with lz4 off and on, from tuples and from
 * records encoded by their senders (transport_send_records), deliver refusals
 * (paused reading), sender backpressure, buffering while a peer is down,
 * a peer of another topology, and a raw client sending garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "transport/frame.h"
#include "topology/topology.h"
#include "transport/transport.h"
#include "tuple/codec.h"

static char *test_fields[] = {"src", "seq", "payload"};
static topo_stream test_stream = {.id = 0, .name = "default", .nfields = 3, .fields = test_fields};
static topology test_topo = {.nstreams = 1, .streams = &test_stream};

typedef struct node {
    transport *tr;
    transport_config cfg;
    transport_peer peers[2];
    int index;
    pthread_mutex_t mu;
    int64_t next_seq[2];   /* per sender: the seq expected next */
    int received;
    int order_errors;
    int refuse_every;      /* refuse every k-th deliver call (0: never) */
    int calls, refusals;
    int unsent, unsent_errors; /* on_unsent calls; ones without the expected root */
    int downs;             /* on_peer_down calls */
    atomic_bool closed;
} node;

typedef struct harness {
    uv_loop_t loop;
    uv_async_t ctl;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void (*fn)(struct harness *, void *);
    void *arg;
    bool fn_done, stop;
    node nodes[2];
} harness;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* polls cond(arg) every millisecond until true or timeout; returns cond */
static bool wait_for(bool (*cond)(void *), void *arg, int timeout_ms) {
    int64_t end = now_ms() + timeout_ms;
    while (!cond(arg)) {
        if (now_ms() > end) return false;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return true;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int deliver(void *arg, sd_tuple *t) {
    node *n = arg;
    pthread_mutex_lock(&n->mu);
    n->calls++;
    if (n->refuse_every && n->calls % n->refuse_every == 0) {
        n->refusals++;
        pthread_mutex_unlock(&n->mu);
        return -1;
    }
    int src = (int)tuple_values(t)[0].v.i;
    int64_t seq = tuple_values(t)[1].v.i;
    if (src < 0 || src > 1 || seq != n->next_seq[src] || t->stream != &test_stream || t->dest_task != 100 + n->index)
        n->order_errors++;
    else n->next_seq[src]++;
    n->received++;
    pthread_mutex_unlock(&n->mu);
    tuple_unref(t);
    return 0;
}

static void on_ctl(uv_async_t *a) {
    harness *h = a->data;
    pthread_mutex_lock(&h->mu);
    void (*fn)(harness *, void *) = h->fn;
    h->fn = NULL;
    bool stop = h->stop;
    pthread_mutex_unlock(&h->mu);
    if (fn) {
        fn(h, h->arg);
        pthread_mutex_lock(&h->mu);
        h->fn_done = true;
        pthread_cond_broadcast(&h->cv);
        pthread_mutex_unlock(&h->mu);
    }
    if (stop) uv_close((uv_handle_t *)&h->ctl, NULL);
}

static void *loop_main(void *arg) {
    harness *h = arg;
    uv_run(&h->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* runs fn on the loop thread and waits for it */
static void on_loop(harness *h, void (*fn)(harness *, void *), void *arg) {
    pthread_mutex_lock(&h->mu);
    h->fn = fn;
    h->arg = arg;
    h->fn_done = false;
    uv_async_send(&h->ctl);
    while (!h->fn_done) pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

/* the topology's secret and content hash both sides hold, and others */
static const uint8_t key_same[32] = {1, 2, 3}, key_other[32] = {1, 2, 4};
static const uint8_t hash_same[32] = {9, 8, 7}, hash_other[32] = {9, 8, 6};

static const char *harness_host = "127.0.0.1"; /* every worker's host */
static size_t harness_ring[2];                 /* each node's shm_ring_bytes */

static void harness_init(harness *h, const char *topo0, const char *topo1, size_t lz4, size_t max_buf) {
    memset(h, 0, sizeof *h);
    assert_int_equal(uv_loop_init(&h->loop), 0);
    assert_int_equal(uv_async_init(&h->loop, &h->ctl, on_ctl), 0);
    h->ctl.data = h;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    int ports[2] = {free_port(), free_port()};
    for (int i = 0; i < 2; i++) {
        node *n = &h->nodes[i];
        n->index = i;
        pthread_mutex_init(&n->mu, NULL);
        for (int j = 0; j < 2; j++) {
            snprintf(n->peers[j].host, sizeof n->peers[j].host, "%s", harness_host);
            n->peers[j].port = ports[j];
        }
        n->cfg = (transport_config){
            .topology_id = i == 0 ? topo0 : topo1, .secret = key_same, .content_hash = hash_same,
            .worker_index = i, .nworkers = 2, .peers = n->peers,
            .batch_bytes = 16384, .flush_interval_ms = 2, .lz4_threshold = lz4,
            .max_frame_bytes = 1 << 20, .max_buffered_bytes = max_buf, .shm_ring_bytes = harness_ring[i],
        };
    }
    assert_int_equal(pthread_create(&h->thread, NULL, loop_main, h), 0);
}

static void do_start(harness *h, void *arg) {
    node *n = &h->nodes[(intptr_t)arg];
    n->tr = transport_new(&h->loop, &n->cfg, &test_topo, deliver, n);
    assert_non_null(n->tr);
    assert_int_equal(transport_start(n->tr), 0);
}

static void on_closed(void *arg) { atomic_store(&((node *)arg)->closed, true); }

static void do_close(harness *h, void *arg) {
    (void)arg;
    for (int i = 0; i < 2; i++)
        if (h->nodes[i].tr) transport_close(h->nodes[i].tr, on_closed, &h->nodes[i]);
        else atomic_store(&h->nodes[i].closed, true);
}

static bool both_closed(void *arg) {
    harness *h = arg;
    return atomic_load(&h->nodes[0].closed) && atomic_load(&h->nodes[1].closed);
}

static void harness_finish(harness *h) {
    on_loop(h, do_close, NULL);
    assert_true(wait_for(both_closed, h, 5000));
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_mutex_unlock(&h->mu);
    uv_async_send(&h->ctl);
    pthread_join(h->thread, NULL);
    assert_int_equal(uv_loop_close(&h->loop), 0); /* every handle was closed */
    for (int i = 0; i < 2; i++) pthread_mutex_destroy(&h->nodes[i].mu);
}

static void get_stats(node *n, transport_stats *st) { transport_get_stats(n->tr, st); }

typedef struct sender {
    harness *h;
    int from, count;
    int failures;
    bool records;          /* through transport_send_records */
} sender;

/* appends one test tuple (src, seq, payload) for task dest to r */
static void add_record(transport_records *r, int src, int64_t seq, const char *payload, size_t plen, int dest) {
    sd_value v[3] = {sd_int(src), sd_int(seq), sd_bytes(payload, (uint32_t)plen)};
    size_t bound = (size_t)codec_bound(3, 0, plen);
    uint8_t *out = transport_records_reserve(r, bound);
    assert_non_null(out);
    codec_head hd = {dest, 1, 0, 0};
    size_t len = codec_encode_parts(out, &hd, v, 3, NULL, 0);
    assert_true(len <= bound);
    transport_records_commit(r, len);
}

/* Sends count tuples as records, in runs of 1 to 300: runs above a frame
 * (16 KiB) travel record by record, smaller ones as one piece. */
static void send_records(sender *s, node *n, const char *payload, size_t plen) {
    transport_records r = {0};
    int run = 1;
    for (int i = 0; i < s->count;) {
        for (int k = 0; k < run && i < s->count; k++, i++) add_record(&r, s->from, i, payload, plen, 100 + (1 - s->from));
        uint32_t held = r.n;
        if (transport_send_records(n->tr, 1 - s->from, &r, false) != 0) s->failures++;
        if (r.n != 0 || r.len != 0) s->failures += (int)held; /* sent: r is empty */
        run = run * 7 % 301 + 1;
    }
    transport_records_free(&r);
}

static void *sender_main(void *arg) {
    sender *s = arg;
    node *n = &s->h->nodes[s->from];
    char payload[60];
    memset(payload, 'a' + s->from, sizeof payload);
    if (s->records) {
        send_records(s, n, payload, sizeof payload);
        return NULL;
    }
    for (int i = 0; i < s->count; i += 10) {
        sd_tuple *batch[10];
        int k = 0;
        for (; k < 10 && i + k < s->count; k++) {
            sd_value v[3] = {sd_int(s->from), sd_int(i + k), sd_str(payload, sizeof payload)};
            batch[k] = tuple_new(v, 3, NULL, 0);
            assert_non_null(batch[k]);
            batch[k]->dest_task = 100 + (1 - s->from);
        }
        if (transport_send(n->tr, 1 - s->from, batch, (size_t)k, false) != 0) s->failures++;
        for (int j = 0; j < k; j++) tuple_unref(batch[j]);
    }
    return NULL;
}

typedef struct expect { node *n; int count; } expect;
static bool got_all(void *arg) {
    expect *e = arg;
    pthread_mutex_lock(&e->n->mu);
    bool ok = e->n->received >= e->count || e->n->order_errors > 0;
    pthread_mutex_unlock(&e->n->mu);
    return ok;
}
static bool both_connected(void *arg) {
    harness *h = arg;
    transport_stats a, b;
    get_stats(&h->nodes[0], &a);
    get_stats(&h->nodes[1], &b);
    return a.connected_peers == 1 && b.connected_peers == 1;
}

static void run_exchange(size_t lz4, bool records) {
    harness h;
    /* small buffers: senders must block and wait for room */
    harness_init(&h, "topo-x", "topo-x", lz4, 32768);
    h.nodes[1].refuse_every = 50; /* receiver 1 is "full" now and then */
    on_loop(&h, do_start, (void *)0);
    on_loop(&h, do_start, (void *)1);
    assert_true(wait_for(both_connected, &h, 5000));
    const int N = 20000;
    sender s[2] = {{&h, 0, N, 0, records}, {&h, 1, N, 0, false}}; /* records: from worker 0 */
    pthread_t th[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, sender_main, &s[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        expect e = {&h.nodes[1 - i], N};
        assert_true(wait_for(got_all, &e, 20000));
        assert_int_equal(s[i].failures, 0);
        assert_int_equal(h.nodes[1 - i].order_errors, 0);
        assert_int_equal(h.nodes[1 - i].received, N);
    }
    assert_true(h.nodes[1].refusals > 0);
    transport_stats st;
    for (int i = 0; i < 2; i++) {
        /* a ring each way when both have them on, none otherwise */
        get_stats(&h.nodes[i], &st);
        assert_int_equal(st.shm_peers, harness_ring[0] && harness_ring[1] ? 1 : 0);
    }
    get_stats(&h.nodes[0], &st);
    assert_int_equal(st.tuples_sent, N);
    assert_int_equal(st.tuples_received, N);
    assert_int_equal(st.tuples_dropped, 0);
    assert_int_equal(st.frames_rejected, 0);
    /* each tuple encodes to ~110 bytes; lz4 squeezes the repeated payload */
    if (lz4) assert_true(st.bytes_sent < (uint64_t)N * 60);
    else assert_true(st.bytes_sent > (uint64_t)N * 100);
    /* buffers of up to 32 KiB went out in frames of at most a batch (16 KiB
     * of records and a header): cut where the senders noted */
    if (!lz4) assert_true(st.frames_sent * (16384 + 64) >= st.bytes_sent);
    harness_finish(&h);
}

static void test_exchange_plain(void **state) { (void)state; run_exchange(0, false); }
static void test_exchange_lz4(void **state) { (void)state; run_exchange(512, false); }
static void test_exchange_records(void **state) { (void)state; run_exchange(0, true); }

/* The same exchanges through shared-memory rings: the first batches may
 * still go over TCP, the rest through the ring, in order. A 64 KiB ring
 * fills while the receiver refuses (room frames); records and lz4 frames
 * travel as they do over TCP. */
static void run_ring_exchange(size_t ring0, size_t ring1, size_t lz4, bool records) {
    harness_ring[0] = ring0;
    harness_ring[1] = ring1;
    run_exchange(lz4, records);
    harness_ring[0] = harness_ring[1] = 0;
}
static void test_ring_exchange(void **state) { (void)state; run_ring_exchange(1 << 20, 1 << 20, 0, false); }
static void test_ring_small(void **state) { (void)state; run_ring_exchange(1, 1, 0, true); }
static void test_ring_lz4(void **state) { (void)state; run_ring_exchange(1 << 20, 1 << 20, 512, false); }
/* a peer with rings off answers no: both directions stay on TCP */
static void test_ring_refused(void **state) { (void)state; run_ring_exchange(1 << 20, 0, 0, false); }

/* worker.host may be a name: resolved once, and the workers connect */
static void test_exchange_by_name(void **state) {
    (void)state;
    harness_host = "localhost";
    run_exchange(0, false);
    harness_host = "127.0.0.1";
}

static void test_resolve(void **state) {
    (void)state;
    struct sockaddr_storage ss;
    char why[128] = "";
    assert_int_equal(transport_resolve("127.0.0.1", 6700, &ss, why, sizeof why), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 6700);
    assert_int_equal(transport_resolve("::1", 6701, &ss, why, sizeof why), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(transport_resolve("localhost", 6702, &ss, why, sizeof why), 0);
    assert_true(ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
    char host[256];
    assert_int_equal(gethostname(host, sizeof host), 0);
    assert_int_equal(transport_resolve(host, 6703, &ss, why, sizeof why), 0);
    /* .invalid never resolves (RFC 2606): a clear error, not 0.0.0.0 */
    assert_int_equal(transport_resolve("no-such-host.invalid", 6704, &ss, why, sizeof why), -ENOENT);
    assert_true(why[0] != '\0');
    assert_int_equal(transport_resolve("127.0.0.1", 70000, &ss, why, sizeof why), -EINVAL);
}

/* a worker whose own or a peer's host does not resolve has no transport */
static void test_unresolvable_host(void **state) {
    (void)state;
    harness h;
    harness_init(&h, "topo-r", "topo-r", 0, 1 << 20);
    snprintf(h.nodes[0].peers[1].host, sizeof h.nodes[0].peers[1].host, "no-such-host.invalid");
    snprintf(h.nodes[1].peers[1].host, sizeof h.nodes[1].peers[1].host, "no-such-host.invalid");
    for (int i = 0; i < 2; i++) assert_null(transport_new(&h.loop, &h.nodes[i].cfg, &test_topo, deliver, &h.nodes[i]));
    harness_finish(&h);
}

static bool rejected_handshake(void *arg) {
    harness *h = arg;
    transport_stats a, b;
    get_stats(&h->nodes[0], &a);
    get_stats(&h->nodes[1], &b);
    return a.handshakes_rejected + b.handshakes_rejected >= 1; /* either side may refuse first */
}

static void test_other_topology(void **state) {
    (void)state;
    harness h;
    harness_init(&h, "topo-a", "topo-b", 0, 1 << 20);
    on_loop(&h, do_start, (void *)1);
    on_loop(&h, do_start, (void *)0);
    assert_true(wait_for(rejected_handshake, &h, 5000));
    transport_stats a, b;
    get_stats(&h.nodes[0], &a);
    get_stats(&h.nodes[1], &b);
    assert_int_equal(a.connected_peers, 0);
    assert_int_equal(b.connected_peers, 0);
    harness_finish(&h);
}

/* a peer that knows the topology id but not the secret, or runs other
 * contents, never connects */
static void run_mismatch(const uint8_t *key1, const uint8_t *hash1) {
    harness h;
    harness_init(&h, "topo-m", "topo-m", 0, 1 << 20);
    h.nodes[1].cfg.secret = key1;
    h.nodes[1].cfg.content_hash = hash1;
    on_loop(&h, do_start, (void *)1);
    on_loop(&h, do_start, (void *)0);
    assert_true(wait_for(rejected_handshake, &h, 5000));
    transport_stats a, b;
    get_stats(&h.nodes[0], &a);
    get_stats(&h.nodes[1], &b);
    assert_int_equal(a.connected_peers, 0);
    assert_int_equal(b.connected_peers, 0);
    harness_finish(&h);
}

static void test_other_secret(void **state) { (void)state; run_mismatch(key_other, hash_same); }
static void test_other_contents(void **state) { (void)state; run_mismatch(key_same, hash_other); }

/* connects a blocking raw client to port, sends bytes, and reports whether
 * the server closed the connection within a deadline */
static bool raw_client_gets_closed(int port, const uint8_t *bytes, size_t len) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(write(fd, bytes, len), (ssize_t)len);
    bool closed = false;
    int64_t end = now_ms() + 5000;
    while (!closed && now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0) {
            uint8_t b[256];
            ssize_t n = read(fd, b, sizeof b);
            if (n <= 0) closed = true; /* EOF or reset */
        }
    }
    close(fd);
    return closed;
}

static void send_some(harness *h, int from, int first, int count) {
    node *n = &h->nodes[from];
    for (int i = first; i < first + count; i++) {
        sd_value v[3] = {sd_int(from), sd_int(i), sd_str("x", 1)};
        sd_tuple *t = tuple_new(v, 3, NULL, 0);
        assert_non_null(t);
        t->dest_task = 100 + (1 - from);
        assert_int_equal(transport_send(n->tr, 1 - from, &t, 1, false), 0);
        tuple_unref(t);
    }
}

static void test_garbage_client(void **state) {
    (void)state;
    harness h;
    harness_init(&h, "topo-g", "topo-g", 0, 1 << 20);
    on_loop(&h, do_start, (void *)0);
    on_loop(&h, do_start, (void *)1);
    assert_true(wait_for(both_connected, &h, 5000));
    int port = h.nodes[1].peers[1].port;
    /* 1: an unknown frame type */
    uint8_t junk[FRAME_HEADER_BYTES + 4];
    frame_header_write(junk, 77, 0, 4, 4);
    memset(junk + FRAME_HEADER_BYTES, 0xee, 4);
    assert_true(raw_client_gets_closed(port, junk, sizeof junk));
    /* 2: a batch before any handshake */
    frame_header_write(junk, FRAME_BATCH, 0, 4, 4);
    assert_true(raw_client_gets_closed(port, junk, sizeof junk));
    /* 3: an oversized frame header */
    frame_header_write(junk, FRAME_HANDSHAKE, 0, 1u << 30, 1u << 30);
    assert_true(raw_client_gets_closed(port, junk, FRAME_HEADER_BYTES));
    transport_stats b;
    get_stats(&h.nodes[1], &b);
    assert_true(b.frames_rejected >= 3);
    assert_int_equal(b.connected_peers, 1);
    /* the good connection still works */
    send_some(&h, 0, 0, 100);
    expect e = {&h.nodes[1], 100};
    assert_true(wait_for(got_all, &e, 5000));
    assert_int_equal(h.nodes[1].order_errors, 0);
    harness_finish(&h);
}

static bool connected0(void *arg) {
    transport_stats a;
    get_stats(arg, &a);
    return a.connected_peers == 1;
}

/* on_unsent: each given-up tuple still carries its tree's root (seq + 1000) */
static void count_unsent(void *arg, int peer, const sd_tuple *t) {
    node *n = arg;
    pthread_mutex_lock(&n->mu);
    n->unsent++;
    if (peer != 1 || t->nanchors != 1 || tuple_anchors(t)[0].root != (uint64_t)(tuple_values(t)[1].v.i + 1000))
        n->unsent_errors++;
    pthread_mutex_unlock(&n->mu);
}

static void count_down(void *arg, int peer) {
    node *n = arg;
    pthread_mutex_lock(&n->mu);
    if (peer == 1) n->downs++;
    pthread_mutex_unlock(&n->mu);
}

static void do_close1(harness *h, void *arg) {
    (void)arg;
    transport_close(h->nodes[1].tr, on_closed, &h->nodes[1]);
    h->nodes[1].tr = NULL;
}

static bool disconnected0(void *arg) {
    node *n = arg;
    transport_stats a;
    get_stats(n, &a);
    pthread_mutex_lock(&n->mu);
    bool down = n->downs > 0;
    pthread_mutex_unlock(&n->mu);
    return a.connected_peers == 0 && down;
}

typedef struct want { node *n; int unsent; } want;
static bool got_unsent(void *arg) {
    want *w = arg;
    pthread_mutex_lock(&w->n->mu);
    bool ok = w->n->unsent >= w->unsent;
    pthread_mutex_unlock(&w->n->mu);
    return ok;
}

/* A peer that goes away after being up is declared down; tuples sent to it
 * wait in its overflow, and once it has been down for the peer timeout they
 * are given up through on_unsent (anchors intact, so that their trees can
 * be failed) and later sends are dropped at once. */
static void test_down_peer_overflow_given_up(void **state) {
    (void)state;
    harness h;
    harness_init(&h, "topo-u", "topo-u", 0, 1 << 20);
    node *n = &h.nodes[0];
    n->cfg.on_unsent = count_unsent;
    n->cfg.on_peer_down = count_down;
    n->cfg.heartbeat_interval_ms = 50;
    n->cfg.peer_timeout_ms = 300;
    on_loop(&h, do_start, (void *)0);
    on_loop(&h, do_start, (void *)1);
    assert_true(wait_for(both_connected, &h, 5000));
    on_loop(&h, do_close1, NULL);
    assert_true(wait_for(disconnected0, n, 5000));
    int64_t down_at = now_ms();
    for (int i = 0; i < 20; i++) {
        sd_value v[3] = {sd_int(0), sd_int(i), sd_str("x", 1)};
        tuple_anchor anc = {.root = (uint64_t)(i + 1000), .edge = 7};
        sd_tuple *t = tuple_new(v, 3, &anc, 1);
        assert_non_null(t);
        t->dest_task = 101;
        assert_int_equal(transport_send(n->tr, 1, &t, 1, false), 0); /* room in the overflow */
        tuple_unref(t);
    }
    want w = {n, 20};
    assert_true(wait_for(got_unsent, &w, 5000));
    assert_true(now_ms() - down_at >= 250); /* kept for about the peer timeout first */
    assert_int_equal(n->unsent, 20);
    assert_int_equal(n->unsent_errors, 0);
    /* isolated: a send now drops at once, marked for its sender to fail */
    sd_value v[3] = {sd_int(0), sd_int(99), sd_str("x", 1)};
    sd_tuple *t = tuple_new(v, 3, NULL, 0);
    assert_non_null(t);
    t->dest_task = 101;
    assert_int_equal(transport_send(n->tr, 1, &t, 1, false), 1);
    assert_true(t->flags & TUPLE_F_UNSENT);
    tuple_unref(t);
    transport_stats a;
    get_stats(n, &a);
    assert_int_equal(a.tuples_dropped, 21);
    assert_int_equal(a.buffered_bytes, 0); /* the overflow's memory is freed */
    harness_finish(&h);
}

/* Records to a peer that is down: kept in its overflow while they fit
 * (the run whole), dropped whole beyond it (the run left in the caller's
 * records, anchors intact for failing its trees), then delivered in order
 * when the peer comes up. */
static void test_records_all_or_none(void **state) {
    (void)state;
    harness h;
    harness_init(&h, "topo-r", "topo-r", 0, 2000);
    on_loop(&h, do_start, (void *)0);
    node *n = &h.nodes[0];
    transport_records r = {0};
    for (int i = 0; i < 10; i++) add_record(&r, 0, i, "xyz", 3, 101); /* ~40 bytes each */
    assert_int_equal(transport_send_records(n->tr, 1, &r, false), 0);
    assert_int_equal(r.n, 0);
    /* 60 more exceed the 2000-byte overflow: all dropped, none kept */
    for (int i = 0; i < 60; i++) {
        sd_value v[3] = {sd_int(0), sd_int(10 + i), sd_str("x", 1)};
        tuple_anchor anc = {.root = (uint64_t)(i + 5000), .edge = 3};
        uint8_t *out = transport_records_reserve(&r, (size_t)codec_bound(3, 1, 1));
        assert_non_null(out);
        transport_records_commit(&r, codec_encode_parts(out, &(codec_head){101, 1, 0, 0}, v, 3, &anc, 1));
    }
    assert_int_equal(transport_send_records(n->tr, 1, &r, false), 60);
    assert_int_equal(r.n, 60);
    size_t off = 0, len;
    const uint8_t *rec;
    int k = 0;
    while (frame_batch_next(r.buf, r.len, &off, &rec, &len) == 1) {
        assert_int_equal(codec_peek_nanchors(rec), 1);
        assert_int_equal(codec_peek_root(rec, 0), 5000 + k++);
    }
    assert_int_equal(k, 60);
    transport_records_clear(&r);
    transport_stats a;
    get_stats(n, &a);
    assert_int_equal(a.tuples_dropped, 60);
    /* what fits follows the kept ones */
    for (int i = 10; i < 15; i++) add_record(&r, 0, i, "xyz", 3, 101);
    assert_int_equal(transport_send_records(n->tr, 1, &r, false), 0);
    transport_records_free(&r);
    on_loop(&h, do_start, (void *)1);
    expect e = {&h.nodes[1], 15};
    assert_true(wait_for(got_all, &e, 5000));
    assert_int_equal(h.nodes[1].received, 15);
    assert_int_equal(h.nodes[1].order_errors, 0);
    harness_finish(&h);
}

static void do_block_loop(harness *h, void *arg) {
    (void)h;
    usleep((useconds_t)(intptr_t)arg * 1000);
}

/* Our own loop not running (stopped, swapped out, blocked) for longer than
 * the peer timeout is not the peers' silence: no peer is declared down. */
static void test_own_stall_is_not_peer_silence(void **state) {
    (void)state;
    harness h;
    harness_init(&h, "topo-s", "topo-s", 0, 1 << 20);
    for (int i = 0; i < 2; i++) {
        h.nodes[i].cfg.heartbeat_interval_ms = 50;
        h.nodes[i].cfg.peer_timeout_ms = 300;
    }
    on_loop(&h, do_start, (void *)0);
    on_loop(&h, do_start, (void *)1);
    assert_true(wait_for(both_connected, &h, 5000));
    on_loop(&h, do_block_loop, (void *)(intptr_t)800);
    usleep(200 * 1000); /* a few ticks after the stall */
    for (int i = 0; i < 2; i++) {
        transport_stats st;
        get_stats(&h.nodes[i], &st);
        assert_int_equal(st.peers_timed_out, 0);
        assert_int_equal(st.connected_peers, 1);
    }
    harness_finish(&h);
}

static void test_peer_down_then_up(void **state) {
    (void)state;
    harness h;
    /* room for a few tuples only while worker 1 is down */
    harness_init(&h, "topo-d", "topo-d", 0, 1000);
    on_loop(&h, do_start, (void *)0);
    send_some(&h, 0, 0, 5); /* ~40 bytes each: buffered */
    node *n = &h.nodes[0];
    int dropped_calls = 0;
    for (int i = 0; i < 100; i++) {
        sd_value v[3] = {sd_int(0), sd_int(5 + i), sd_str("x", 1)};
        sd_tuple *t = tuple_new(v, 3, NULL, 0);
        assert_non_null(t);
        t->dest_task = 101;
        int rc = transport_send(n->tr, 1, &t, 1, false);
        assert_in_range(rc, 0, 1); /* the count dropped */
        /* a dropped tuple is marked, for its sender to fail its trees */
        assert_int_equal(rc == 1, (t->flags & TUPLE_F_UNSENT) != 0);
        dropped_calls += rc;
        tuple_unref(t);
    }
    transport_stats a;
    get_stats(n, &a);
    assert_true(dropped_calls > 0);
    assert_int_equal(a.tuples_dropped, (uint64_t)dropped_calls);
    on_loop(&h, do_start, (void *)1);
    assert_true(wait_for(connected0, n, 5000));
    /* what was buffered arrives; the rest were dropped, so only count */
    int kept = 105 - dropped_calls;
    expect e = {&h.nodes[1], kept};
    assert_true(wait_for(got_all, &e, 5000));
    assert_int_equal(h.nodes[1].received, kept);
    assert_int_equal(h.nodes[1].order_errors, 0);
    harness_finish(&h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exchange_plain),  cmocka_unit_test(test_exchange_lz4),
        cmocka_unit_test(test_exchange_records), cmocka_unit_test(test_records_all_or_none),
        cmocka_unit_test(test_other_topology),  cmocka_unit_test(test_garbage_client),
        cmocka_unit_test(test_other_secret),    cmocka_unit_test(test_other_contents),
        cmocka_unit_test(test_peer_down_then_up), cmocka_unit_test(test_down_peer_overflow_given_up),
        cmocka_unit_test(test_own_stall_is_not_peer_silence),
        cmocka_unit_test(test_resolve),         cmocka_unit_test(test_exchange_by_name),
        cmocka_unit_test(test_unresolvable_host),
        cmocka_unit_test(test_ring_exchange),   cmocka_unit_test(test_ring_small),
        cmocka_unit_test(test_ring_lz4),        cmocka_unit_test(test_ring_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
