/*
 * libFuzzer target for the wire decoders: frame reader (with lz4), handshake
 * check, batch records and the tuple codec. Everything a remote peer can send
 * us goes through these; none may crash, leak or read out of bounds.
 *
 * Run: tools/fuzz wire (builds it in build-fuzz/ with clang).
 * The first input byte picks the chunk size used to feed the reader, so the
 * fuzzer also explores how frames are split across reads.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tuple/codec.h"
#include "transport/frame.h"
#include "base/log.h"
#include "topology/topology.h"
#include "tuple/tuple.h"

static char *fuzz_fields[] = {"a", "b"};
static topo_stream fuzz_streams[2] = {
    {.id = 0, .name = "default", .nfields = 2, .fields = fuzz_fields},
    {.id = 1, .name = "__tick", .nfields = 0, .system = true},
};
static topology fuzz_topo = {.nstreams = 2, .streams = fuzz_streams};

static void check_batch(const uint8_t *p, size_t len) {
    size_t off = 0, rl;
    const uint8_t *rec;
    uint8_t again[1 << 16];
    while (frame_batch_next(p, len, &off, &rec, &rl) == 1) {
        sd_tuple *t = NULL;
        if (codec_decode(rec, rl, &fuzz_topo, &t) != CODEC_OK) continue;
        /* a decoded tuple re-encodes to the very same bytes, but for the
         * flags that are a holder's own state, which decoding clears
         * (flags: little-endian at offset 10) */
        size_t n = codec_encoded_size(t);
        if (n != rl) __builtin_trap();
        if (n <= sizeof again) {
            codec_encode(t, again);
            if (again[10] != (rec[10] & (uint8_t)~TUPLE_F_LOCAL) || again[11] != (rec[11] & (uint8_t)(~TUPLE_F_LOCAL >> 8)))
                __builtin_trap();
            if (memcmp(again, rec, 10) != 0 || memcmp(again + 12, rec + 12, n - 12) != 0) __builtin_trap();
        }
        (void)sd_tuple_field(t, "b");
        (void)sd_tuple_stream(t);
        tuple_unref(t);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int quiet;
    if (!quiet) {
        log_set_level(SD_LOG_ERROR);
        quiet = 1;
    }
    if (size < 1) return 0;
    size_t chunk = 1 + data[0];
    data++;
    size--;
    frame_reader r;
    frame_reader_init(&r, 1 << 20);
    for (size_t off = 0; off < size;) {
        size_t c = size - off < chunk ? size - off : chunk;
        if (frame_reader_push(&r, data + off, c) != 0) break;
        off += c;
        frame f;
        int rc;
        while ((rc = frame_reader_next(&r, &f)) == FRAME_READY) {
            if (f.type == FRAME_HANDSHAKE) {
                static const uint8_t hash[32];
                frame_hello h;
                (void)frame_hello_check(f.payload, f.len, "topo", hash, &h);
            } else {
                check_batch(f.payload, f.len);
            }
        }
        if (rc < 0) break;
    }
    frame_reader_free(&r);
    return 0;
}
