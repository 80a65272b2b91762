/*
 * libFuzzer target for the data plane's handshake from the dialer's side:
 * the real transport, as worker 0 of 2, dials worker 1, whose address is a
 * socket this target listens on and answers with the input. Each input gets
 * a new transport and a listener on another 127.x.y.z address (so that
 * TIME_WAIT never runs out of ports and no reconnect backoff carries over).
 * When the first input byte has bit 1 set, an acceptor's hello for our
 * topology (worker 1, nonce and proof from the input) goes first, so the
 * fuzzer explores what follows it: the proof check, the frames after it and
 * the pre-handshake limits. The input never knows the topology's fuzz_key, so
 * the connection may never become authenticated (it traps), no tuple may be
 * delivered, and the transport must close the connection within 5 s.
 * Run: tools/fuzz dialer
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "base/log.h"
#include "transport/auth.h"
#include "transport/frame.h"
#include "transport/transport.h"
#include "fuzz_peer.h"

static uv_loop_t loop;
static bool loop_ready;
static uint32_t inputs;

static void on_closed(void *arg) { *(bool *)arg = true; }

/* A listener on the next 127.x.y.z address, port picked by the kernel. */
static int listen_next(transport_peer *at) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    if (fd < 0) abort();
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    uint32_t n = ++inputs % 0xfffffeu + 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000000u | n)};
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        abort();
    snprintf(at->host, sizeof at->host, "%s", inet_ntoa(a.sin_addr));
    at->port = ntohs(a.sin_port);
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!loop_ready) {
        log_set_level(SD_LOG_ERROR);
        if (uv_loop_init(&loop) != 0) abort();
        loop_ready = true;
    }
    if (size < 1) return 0;
    bool hello_first = data[0] & 1;
    data++;
    size--;

    transport_peer peers[2];
    snprintf(peers[0].host, sizeof peers[0].host, "127.0.0.1");
    peers[0].port = 0; /* where we listen: any free port (nobody dials worker 0 here) */
    int lfd = listen_next(&peers[1]);
    transport_config cfg = {
        .topology_id = FUZZ_TOPO_ID, .secret = fuzz_key, .content_hash = fuzz_hash, .worker_index = 0, .nworkers = 2,
        .peers = peers, .handshake_timeout_ms = 2000,
    };
    transport *tr = transport_new(&loop, &cfg, &fuzz_topo, fuzz_deliver_traps, NULL);
    if (!tr || transport_start(tr) != 0) abort();

    /* the transport dials us */
    int64_t deadline = fuzz_now_ms() + 5000;
    int fd;
    while ((fd = accept(lfd, NULL, NULL)) < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) abort();
        if (fuzz_now_ms() > deadline) __builtin_trap(); /* the dialer never came */
        uv_run(&loop, UV_RUN_NOWAIT);
        struct pollfd pfd = {.fd = lfd, .events = POLLIN};
        poll(&pfd, 1, 1);
    }
    close(lfd);
    if (hello_first) fuzz_send_hello(&loop, fd, 1, true, data, size);
    fuzz_send_all(&loop, fd, data, size);
    shutdown(fd, SHUT_WR);
    fuzz_expect_closed(&loop, tr, fd, deadline);
    bool closed = false;
    transport_close(tr, on_closed, &closed);
    while (!closed) uv_run(&loop, UV_RUN_ONCE);
    return 0;
}
