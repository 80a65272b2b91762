/*
 * wire_peer: a hostile peer for the integration tests of the data plane.
 * It learns what a real worker learns (the assignment written by the master,
 * the topology file), passes the handshake as worker `as`, then sends one
 * forged batch to worker `to` and reports whether the worker closed the
 * connection.
 *
 * usage: wire_peer ASSIGNMENT.json TOPOLOGY.yaml TO AS KIND [SECS] [guess]
 * With "guess", it does not use the assignment's secret but a random key of
 * its own: a peer that knows (or guessed) the topology id and nothing more.
 * KIND: ack_init (an __ack_init packet naming a spout task that does not exist),
 *       unsubscribed (a user tuple on a stream the destination does not
 *       subscribe), fields (one value more than the stream declares),
 *       none (only the handshake).
 * Prints "handshake refused", "closed" (the worker closed after the forged
 * frame) or "open" (still open after SECS, default 10); exits 0, 2 or 3
 * respectively, 1 on a usage or setup error.
 *
 * Single-threaded, blocking sockets: a test tool, not part of streamd. It
 * exits without freeing what it loaded; its answer is flushed first, so a
 * leak report of the sanitizer build cannot swallow it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/conf.h"
#include "topology/topology.h"
#include "transport/auth.h"
#include "transport/frame.h"
#include "transport/shm_ring.h"
#include "tuple/ackpkt.h"
#include "tuple/codec.h"

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, uint8_t *p, size_t n) {
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int task_worker(json_t *workers, int task) {
    size_t i, k;
    json_t *w, *t;
    json_array_foreach(workers, i, w) {
        json_array_foreach(json_object_get(w, "tasks"), k, t) if (json_integer_value(t) == task) return (int)i;
    }
    return -1;
}

/* first task of comp placed on worker wi, or -1 */
static int task_on(json_t *workers, const topo_component *c, int wi) {
    for (int k = 0; k < c->parallelism; k++)
        if (task_worker(workers, c->first_task + k) == wi) return c->first_task + k;
    return -1;
}

static bool subscribes(const topo_component *c, int stream) {
    for (int i = 0; i < c->ninputs; i++)
        if (c->inputs[i].stream_id == stream) return true;
    return false;
}

/* Fills a forged tuple for kind; 0 or -1 when the topology offers no case. */
static int forge(const topology *t, json_t *workers, int to, int as, const char *kind, sd_tuple **out) {
    sd_value v[SD_MAX_FIELDS + 1];
    for (int s = 0; s < t->nstreams; s++) {
        const topo_stream *st = &t->streams[s];
        if (st->component < 0) continue;
        const topo_component *sc = &t->components[st->component];
        int src = task_on(workers, sc, as);
        if (src < 0) continue;
        for (int c = 0; c < t->ncomponents; c++) {
            const topo_component *dc = &t->components[c];
            int dest = task_on(workers, dc, to);
            if (dest < 0) continue;
            int n = st->nfields;
            for (int i = 0; i < n + 1; i++) v[i] = sd_int(1000 + i);
            if (!strcmp(kind, "ack_init")) {
                if (strcmp(st->name, TOPO_STREAM_ACK_INIT) != 0 || !dc->is_acker) continue;
            } else if (!strcmp(kind, "unsubscribed")) {
                if (st->system || subscribes(dc, s)) continue;
            } else if (!strcmp(kind, "fields")) {
                if (st->system || !subscribes(dc, s) || n >= SD_MAX_FIELDS) continue;
                n++;
            } else {
                return -1;
            }
            sd_tuple *tu;
            if (!strcmp(kind, "ack_init")) { /* a packet of one acking init record */
                ackrec r = {.root = 77, .xor = 5, .task = t->ntasks + 1000, .kind = ACKREC_INIT};
                tu = ackpkt_new(NULL, &r, 1);
            } else {
                tu = tuple_new(v, (size_t)n, NULL, 0);
            }
            if (!tu) return -1;
            tu->dest_task = dest;
            tu->src_task = src;
            tu->stream_id = (uint16_t)s;
            *out = tu;
            return 0;
        }
    }
    return -1;
}

/* shm_garbage's ring, unmapped as we go */
static shm_ring ring;
static void remove_ring(void) { shm_ring_close(&ring); }

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: wire_peer ASSIGNMENT.json TOPOLOGY.yaml TO AS KIND [SECS] [guess]\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    int to = atoi(argv[3]), as = atoi(argv[4]), secs = argc > 6 ? atoi(argv[6]) : 10;
    const char *kind = argv[5];
    json_error_t jerr;
    json_t *a = json_load_file(argv[1], 0, &jerr);
    if (!a) {
        fprintf(stderr, "%s: %s\n", argv[1], jerr.text);
        return 1;
    }
    conf *cf = conf_from_json(json_object_get(a, "conf"));
    char err[1024];
    topology *t = cf ? topology_load(argv[2], NULL, cf, err, sizeof err) : NULL;
    if (!t) {
        fprintf(stderr, "cannot load the topology: %s\n", cf ? err : "bad conf");
        return 1;
    }
    json_t *workers = json_object_get(a, "workers");
    json_t *target = json_array_get(workers, (size_t)to);
    const char *tid = json_string_value(json_object_get(a, "topology_id"));
    if (!target || !tid) {
        fprintf(stderr, "no worker %d or no topology id in the assignment\n", to);
        return 1;
    }
    sd_tuple *tu = NULL;
    /* shm_offer: a malformed shared-memory offer; shm_bell: a bell for a
     * ring never offered; shm_garbage: a real ring, offered, with a frame
     * in it that no ring carries */
    bool shm_kind = !strcmp(kind, "shm_offer") || !strcmp(kind, "shm_bell") || !strcmp(kind, "shm_garbage");
    if (strcmp(kind, "none") != 0 && !shm_kind && forge(t, workers, to, as, kind, &tu) != 0) {
        fprintf(stderr, "the topology offers no case for '%s'\n", kind);
        return 1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)json_integer_value(json_object_get(target, "port")))};
    const char *host = json_string_value(json_object_get(target, "host"));
    if (!host || inet_pton(AF_INET, host, &sa.sin_addr) != 1) inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("connect");
        return 1;
    }
    uint8_t key[32], hash[32];
    bool guess = argc > 7 && !strcmp(argv[7], "guess");
    const char *secret = json_string_value(json_object_get(a, "secret"));
    const char *package = json_string_value(json_object_get(a, "package"));
    if ((guess ? auth_random(key, sizeof key) : auth_hex_decode(secret, key)) != 0 ||
        (package ? auth_hex_decode(package, hash) : auth_file_hash(argv[2], hash)) != 0) {
        fprintf(stderr, "no usable secret or package hash in the assignment\n");
        return 1;
    }
    frame_hello me = {.worker_index = as, .topology_id = tid}, peer;
    memcpy(me.hash, hash, 32);
    if (auth_random(me.nonce, 32) != 0) return 1;
    uint8_t payload[128 + FRAME_MAX_TOPOLOGY_ID], *fr;
    size_t n = frame_hello_encode(payload, sizeof payload, &me), flen;
    if (n == 0 || frame_build(FRAME_HANDSHAKE, payload, n, 0, &fr, &flen) != 0 || write_all(fd, fr, flen) != 0) {
        fprintf(stderr, "cannot send the handshake\n");
        return 1;
    }
    free(fr);
    uint8_t hdr[FRAME_HEADER_BYTES], body[512];
    uint32_t blen = 0;
    if (read_all(fd, hdr, sizeof hdr) == 0) blen = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
    if (blen == 0 || blen > sizeof body || hdr[4] != FRAME_HANDSHAKE || read_all(fd, body, blen) != 0 ||
        frame_hello_check(body, blen, tid, hash, &peer) != 0 || peer.worker_index != to || !peer.has_proof) {
        printf("handshake refused\n");
        fflush(stdout);
        return 2;
    }
    /* the worker's proof is not checked: a guessing peer goes on regardless */
    auth_transcript tr = {tid, as, to, me.nonce, peer.nonce, hash};
    uint8_t proof[AUTH_PROOF_BYTES];
    if (auth_proof(key, AUTH_ROLE_DIALER, &tr, proof) != 0 || frame_build(FRAME_AUTH, proof, sizeof proof, 0, &fr, &flen) != 0 ||
        write_all(fd, fr, flen) != 0) {
        printf("handshake refused\n");
        fflush(stdout);
        return 2;
    }
    free(fr);
    if (shm_kind) {
        /* offer: u32 ring bytes (64 KiB), nonce, u32 pid, u32 descriptor */
        uint8_t nonce[SHM_RING_NONCE_BYTES] = {5}, offer[4 + SHM_RING_NONCE_BYTES + 8] = {0, 0, 1, 0};
        uint8_t ping[FRAME_HEADER_BYTES];
        bool garbage = !strcmp(kind, "shm_garbage"), bell = !strcmp(kind, "shm_bell");
        memcpy(offer + 4, nonce, sizeof nonce);
        if (garbage) {
            /* a real ring: the worker opens it as it reads the offer,
             * before the bell behind it on the same connection */
            if (shm_ring_create(&ring, SHM_RING_MIN_BYTES, nonce) != 0 || atexit(remove_ring) != 0) return 1;
            uint32_t pid = (uint32_t)getpid(), rfd = (uint32_t)ring.fd;
            for (int i = 0; i < 4; i++) {
                offer[36 + i] = (uint8_t)(pid >> (8 * i));
                offer[40 + i] = (uint8_t)(rfd >> (8 * i));
            }
            frame_header_write(ping, FRAME_PING, 0, 0, 0);
        } /* else pid 0: malformed */
        bool sent = true;
        if (!bell && (sent = frame_build(FRAME_SHM_OFFER, offer, sizeof offer, 0, &fr, &flen) == 0)) {
            sent = write_all(fd, fr, flen) == 0;
            free(fr);
        }
        if (garbage) sent = sent && shm_ring_write(&ring, ping, sizeof ping) == (long)sizeof ping;
        if (sent && (bell || garbage) && (sent = frame_build(FRAME_SHM_BELL, NULL, 0, 0, &fr, &flen) == 0)) {
            sent = write_all(fd, fr, flen) == 0;
            free(fr);
        }
        if (!sent) {
            printf("closed\n");
            fflush(stdout);
            return 0;
        }
    }
    if (tu) {
        size_t sz = codec_encoded_size(tu);
        uint8_t *rec = malloc(4 + sz);
        if (!rec) return 1;
        rec[0] = (uint8_t)sz;
        rec[1] = (uint8_t)(sz >> 8);
        rec[2] = (uint8_t)(sz >> 16);
        rec[3] = (uint8_t)(sz >> 24);
        codec_encode(tu, rec + 4);
        if (frame_build(FRAME_BATCH, rec, 4 + sz, 0, &fr, &flen) != 0) return 1;
        if (write_all(fd, fr, flen) != 0) {
            printf("closed\n"); /* before the batch could even be written */
            fflush(stdout);
            return 0;
        }
        free(fr);
        free(rec);
        tuple_unref(tu);
    }
    /* the worker may send batches and throttle frames of its own: drain them until EOF */
    for (int waited = 0; waited < secs * 10;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, 100);
        if (r == 0) {
            waited++;
            continue;
        }
        uint8_t junk[4096];
        ssize_t got = read(fd, junk, sizeof junk);
        if (got <= 0) {
            printf("closed\n");
            fflush(stdout);
            return 0;
        }
    }
    printf("open\n");
    fflush(stdout);
    return 3;
}
