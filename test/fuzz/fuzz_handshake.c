/*
 * libFuzzer target for the data plane's handshake as a stranger drives it:
 * the input is what a peer sends before it is authenticated, split into
 * frames by the frame reader (with the pre-handshake limits). Each
 * handshake frame is checked as both sides check it (frame_hello_check,
 * the worker index rules, auth_proof_ok against the topology's key over
 * the transcript with our nonce; the dialer's final FRAME_AUTH proof).
 * Nothing may crash, and since the input never knows the key, no proof may
 * be accepted: an accepted one traps. Also fuzzes auth_hex_decode (how an
 * assignment's secret is read): a decoded key re-encodes to the same hex.
 * Run: tools/fuzz handshake
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "transport/auth.h"
#include "transport/frame.h"

#define TOPO_ID "wordcount-1-0123456789abcdef"
#define SELF 1
#define NWORKERS 3

static const uint8_t key[AUTH_KEY_BYTES] = {0x5e, 0xc2, 0xe7, 0x01, 0x99};
static const uint8_t hash[AUTH_HASH_BYTES] = {0xab, 0xcd};
static const uint8_t our_nonce[AUTH_NONCE_BYTES] = {0x11, 0x22, 0x33};

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

/* One handshake frame; state 0: awaiting a hello, 1: the acceptor awaits
 * the dialer's proof. dialer: we dialled (the peer must prove first). */
static int handshake_frame(const frame *f, int state, bool dialer, frame_hello *peer) {
    if (state == 0 && f->type == FRAME_HANDSHAKE) {
        frame_hello h;
        if (frame_hello_check(f->payload, f->len, TOPO_ID, hash, &h) != 0) return -1;
        if (!dialer && (h.has_proof || h.worker_index >= NWORKERS || h.worker_index >= SELF)) return -1;
        if (dialer && h.worker_index != 2) return -1;
        if (dialer) {
            auth_transcript t = {TOPO_ID, SELF, 2, our_nonce, h.nonce, hash};
            if (h.has_proof && auth_proof_ok(key, AUTH_ROLE_ACCEPTOR, &t, h.proof)) __builtin_trap();
            return -1; /* no valid proof: rejected */
        }
        *peer = h;
        return 1;
    }
    if (state == 1 && f->type == FRAME_AUTH && !dialer) {
        auth_transcript t = {TOPO_ID, peer->worker_index, SELF, peer->nonce, our_nonce, hash};
        if (f->len == AUTH_PROOF_BYTES && auth_proof_ok(key, AUTH_ROLE_DIALER, &t, f->payload)) __builtin_trap();
        return -1;
    }
    return -1; /* anything else before the handshake closes the connection */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int quiet;
    if (!quiet) {
        log_set_level(SD_LOG_ERROR);
        quiet = 1;
    }
    if (size < 1) return 0;
    check_hex(data + 1, size - 1);
    bool dialer = data[0] & 1;
    size_t chunk = 1 + (data[0] >> 1);
    data++;
    size--;
    frame_reader r;
    frame_reader_init(&r, 4096); /* a stranger gets small frames only */
    int state = 0;
    frame_hello peer;
    memset(&peer, 0, sizeof peer);
    for (size_t off = 0; off < size && state >= 0;) {
        size_t c = size - off < chunk ? size - off : chunk;
        if (frame_reader_push(&r, data + off, c) != 0) break;
        off += c;
        frame f;
        int rc;
        while (state >= 0 && (rc = frame_reader_next(&r, &f)) == FRAME_READY) state = handshake_frame(&f, state, dialer, &peer);
        if (state >= 0 && rc < 0) break;
    }
    frame_reader_free(&r);
    return 0;
}
