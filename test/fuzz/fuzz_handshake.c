/*
 * libFuzzer target for the data plane's handshake as a stranger drives it,
 * through the real transport: one transport (worker 2 of 3, the acceptor of
 * both others) listens on 127.0.0.1; each input is sent on a new TCP
 * connection, then the write side is shut and the loop runs until the
 * transport has closed the connection. When the first input byte has bit 1
 * set, a valid dialer hello for our topology (worker 0, nonce from the
 * input) goes first, so the fuzzer explores what follows it: the
 * acceptor's answer, the dialer's proof and the pre-handshake limits. The
 * input never knows the topology's fuzz_key, so no connection may ever become
 * authenticated (it traps), no tuple may be delivered, and every
 * connection must be closed within 5 s. Also fuzzes auth_hex_decode (how an
 * assignment's secret is read): a decoded fuzz_key re-encodes to the same hex.
 * Each connection comes from another 127.x.y.z address, so that TIME_WAIT
 * never runs out of ports. Run: tools/fuzz handshake
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
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
static transport *tr;
static transport_peer peers[3];
static uint32_t conns;

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        abort();
    close(fd);
    return ntohs(a.sin_port);
}

static void on_closed(void *arg) { *(bool *)arg = true; }

static void setup(void) {
    log_set_level(SD_LOG_ERROR);
    if (uv_loop_init(&loop) != 0) abort();
    /* a port free when chosen is not reserved: a connection made meanwhile
     * (the dialer target runs beside this one, making thousands) may take
     * it before the transport listens there; choose again then */
    for (int attempt = 0; attempt < 50; attempt++) {
        for (int i = 0; i < 3; i++) {
            snprintf(peers[i].host, sizeof peers[i].host, "127.0.0.1");
            peers[i].port = free_port();
        }
        transport_config cfg = {
            .topology_id = FUZZ_TOPO_ID, .secret = fuzz_key, .content_hash = fuzz_hash, .worker_index = 2,
            .nworkers = 3, .peers = peers, .handshake_timeout_ms = 2000,
        };
        tr = transport_new(&loop, &cfg, &fuzz_topo, fuzz_deliver_traps, NULL);
        if (!tr) abort();
        if (transport_start(tr) == 0) return;
        bool closed = false;
        transport_close(tr, on_closed, &closed);
        while (!closed) uv_run(&loop, UV_RUN_ONCE);
        tr = NULL;
    }
    abort();
}

static void check_hex(const uint8_t *data, size_t size) {
    char hex[AUTH_KEY_HEX];
    size_t n = size < sizeof hex - 1 ? size : sizeof hex - 1;
    memcpy(hex, data, n);
    hex[n] = 0;
    uint8_t out[32];
    if (auth_hex_decode(hex, out) != 0) return;
    if (n != 64) __builtin_trap();
    char again[AUTH_KEY_HEX];
    for (int i = 0; i < 32; i++) snprintf(again + 2 * i, 3, "%02x", out[i]);
    for (int i = 0; i < 64; i++)
        if (tolower((unsigned char)hex[i]) != again[i]) __builtin_trap();
}

/* A new connection to the transport from the next 127.x.y.z address; the
 * port is picked at connect (IP_BIND_ADDRESS_NO_PORT), per address. A few
 * tries: the machine's ports are shared with whatever else runs. */
static int dial(void) {
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)peers[2].port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int attempt = 0;; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        if (fd < 0) abort();
        uint32_t n = ++conns % 0xfffffeu + 1;
        struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000000u | n)};
        (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) == 0 && connect(fd, (struct sockaddr *)&dst, sizeof dst) == 0)
            return fd;
        fprintf(stderr, "fuzz_handshake: connection %u from %s: %s\n", conns, inet_ntoa(src.sin_addr), strerror(errno));
        close(fd);
        if (attempt == 3) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tr) setup();
    if (size < 1) return 0;
    check_hex(data + 1, size - 1);
    bool hello_first = data[0] & 1;
    data++;
    size--;
    int fd = dial();
    if (hello_first) fuzz_send_hello(&loop, fd, 0, false, data, size);
    fuzz_send_all(&loop, fd, data, size);
    shutdown(fd, SHUT_WR);
    fuzz_expect_closed(&loop, tr, fd, fuzz_now_ms() + 5000);
    return 0;
}
