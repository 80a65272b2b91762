/* Unit tests for frame.c: building frames, the incremental reader with
 * arbitrary chunking, lz4, handshakes, and rejection of malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "transport/frame.h"

#define MAXF (1u << 20)

/* a compressible payload of n bytes */
static uint8_t *make_payload(size_t n) {
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)("streamd wire "[i % 13] + (i / 997) % 3);
    return p;
}

/* Feeds data in chunks of 1..maxchunk bytes (copied in, or written into the
 * reader's room, at random); collects frames' payloads
 * concatenated into out; returns the number of frames or an error. */
static int read_all(const uint8_t *data, size_t len, size_t maxchunk, uint8_t *out, size_t *out_len) {
    frame_reader r;
    frame_reader_init(&r, MAXF);
    int frames = 0;
    size_t off = 0, o = 0;
    int rc = 0;
    while (off < len && rc >= 0) {
        size_t c = 1 + (size_t)rand() % maxchunk;
        if (c > len - off) c = len - off;
        if (rand() & 1) {
            assert_int_equal(frame_reader_push(&r, data + off, c), 0);
        } else {
            /* as a read straight into the reader does it */
            uint8_t *at;
            size_t room;
            assert_int_equal(frame_reader_room(&r, c, &at, &room), 0);
            assert_true(room >= c);
            memcpy(at, data + off, c);
            frame_reader_commit(&r, c);
        }
        off += c;
        frame f;
        while ((rc = frame_reader_next(&r, &f)) == FRAME_READY) {
            memcpy(out + o, f.payload, f.len);
            o += f.len;
            frames++;
        }
    }
    if (rc >= 0 && frame_reader_pending(&r) != 0) rc = FRAME_ELENGTH; /* leftover partial frame */
    frame_reader_free(&r);
    *out_len = o;
    return rc < 0 ? rc : frames;
}

static void test_build_and_read(void **state) {
    (void)state;
    srand((unsigned)time(NULL));
    size_t sizes[] = {0, 1, 100, 5000, 70000};
    for (int lz = 0; lz < 2; lz++) {
        /* three frames back to back, read in random chunks */
        size_t total = 0, cap = 0;
        for (int i = 0; i < 5; i++) cap += sizes[i] + FRAME_HEADER_BYTES;
        uint8_t *wire = malloc(cap);
        uint8_t *expect = malloc(cap);
        assert_non_null(wire);
        assert_non_null(expect);
        size_t elen = 0;
        int compressed = 0;
        for (int i = 0; i < 5; i++) {
            uint8_t *p = make_payload(sizes[i]), *fr;
            size_t flen;
            assert_int_equal(frame_build(FRAME_BATCH, p, sizes[i], lz ? 64 : 0, &fr, &flen), 0);
            if (fr[5] & FRAME_F_LZ4) {
                compressed++;
                assert_true(flen < sizes[i]);
            }
            memcpy(wire + total, fr, flen);
            total += flen;
            memcpy(expect + elen, p, sizes[i]);
            elen += sizes[i];
            free(fr);
            free(p);
        }
        assert_int_equal(compressed, lz ? 3 : 0);
        uint8_t *got = malloc(elen);
        assert_non_null(got);
        size_t chunks[] = {1, 7, 4096, 1 << 20};
        for (int c = 0; c < 4; c++) {
            size_t glen = 0;
            assert_int_equal(read_all(wire, total, chunks[c], got, &glen), 5);
            assert_int_equal(glen, elen);
            assert_memory_equal(got, expect, elen);
        }
        free(got);
        free(wire);
        free(expect);
    }
}

static void test_header_rejects(void **state) {
    (void)state;
    uint8_t h[FRAME_HEADER_BYTES + 8] = {0};
    frame_reader r;
    frame f;
    struct { uint8_t type, flags; uint32_t plen, raw; uint16_t reserved; int expect; } cases[] = {
        {FRAME_SHM_ROOM + 1, 0, 4, 4, 0, FRAME_ETYPE},
        {0, 0, 4, 4, 0, FRAME_ETYPE},
        {FRAME_BATCH, 0x80, 4, 4, 0, FRAME_EFLAGS},
        {FRAME_BATCH, 0, 4, 4, 1, FRAME_EFLAGS},
        {FRAME_BATCH, 0, MAXF + 1, MAXF + 1, 0, FRAME_EOVERSIZE},
        {FRAME_BATCH, FRAME_F_LZ4, 4, MAXF + 1, 0, FRAME_EOVERSIZE},
        {FRAME_BATCH, 0, 4, 5, 0, FRAME_ELENGTH},
        {FRAME_BATCH, FRAME_F_LZ4, 4, 0, 0, FRAME_ELENGTH},
        {FRAME_BATCH, FRAME_F_LZ4, 8, 8, 0, FRAME_ELZ4}, /* zeros are not a valid lz4 block of 8 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        frame_reader_init(&r, MAXF);
        frame_header_write(h, cases[i].type, cases[i].flags, cases[i].plen, cases[i].raw);
        h[6] = (uint8_t)cases[i].reserved;
        assert_int_equal(frame_reader_push(&r, h, sizeof h), 0);
        assert_int_equal(frame_reader_next(&r, &f), cases[i].expect);
        frame_reader_free(&r);
    }
    /* oversized is detected from the header alone, before any payload */
    frame_reader_init(&r, 16);
    frame_header_write(h, FRAME_BATCH, 0, 17, 17);
    assert_int_equal(frame_reader_push(&r, h, FRAME_HEADER_BYTES), 0);
    assert_int_equal(frame_reader_next(&r, &f), FRAME_EOVERSIZE);
    frame_reader_free(&r);
}

static void test_mutations(void **state) {
    (void)state;
    size_t n = 3000;
    uint8_t *p = make_payload(n), *fr;
    size_t flen;
    assert_int_equal(frame_build(FRAME_BATCH, p, n, 1, &fr, &flen), 0);
    assert_true(fr[5] & FRAME_F_LZ4);
    uint8_t *m = malloc(flen);
    uint8_t *out = malloc(MAXF);
    assert_non_null(m);
    assert_non_null(out);
    int rejected = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(m, fr, flen);
        int flips = 1 + rand() % 3;
        for (int f = 0; f < flips; f++) m[rand() % flen] = (uint8_t)rand();
        size_t len = (rand() % 3 == 0) ? (size_t)(rand() % (int)flen) : flen;
        size_t olen = 0;
        int rc = read_all(m, len, 512, out, &olen);
        if (rc < 0) rejected++;
        else assert_true(olen <= MAXF);
    }
    assert_true(rejected > 0);
    free(out);
    free(m);
    free(fr);
    free(p);
}

static void test_handshake(void **state) {
    (void)state;
    uint8_t buf[400], hash[32] = {5}, other[32] = {6};
    frame_hello h = {.worker_index = 3, .topology_id = "topo-1"}, got;
    memset(h.nonce, 0xab, sizeof h.nonce);
    memcpy(h.hash, hash, 32);
    size_t n = frame_hello_encode(buf, sizeof buf, &h);
    assert_true(n > 0);
    assert_int_equal(frame_hello_check(buf, n, "topo-1", hash, &got), 0);
    assert_int_equal(got.worker_index, 3);
    assert_false(got.has_proof);
    assert_memory_equal(got.nonce, h.nonce, 32);
    assert_int_equal(frame_hello_check(buf, n, "topo-1", other, &got), FRAME_EPACKAGE);
    assert_int_equal(frame_hello_check(buf, n, "topo-2", hash, &got), FRAME_ETOPOLOGY);
    assert_int_equal(frame_hello_check(buf, n, "topo-10", hash, &got), FRAME_ETOPOLOGY);
    assert_int_equal(frame_hello_check(buf, n - 1, "topo-1", hash, &got), FRAME_EHANDSHAKE);
    h.has_proof = true;
    memset(h.proof, 0xcd, sizeof h.proof);
    size_t np = frame_hello_encode(buf, sizeof buf, &h);
    assert_int_equal(np, n + 32);
    assert_int_equal(frame_hello_check(buf, np, "topo-1", hash, &got), 0);
    assert_true(got.has_proof);
    assert_memory_equal(got.proof, h.proof, 32);
    buf[4] = 1; /* version */
    assert_int_equal(frame_hello_check(buf, np, "topo-1", hash, &got), FRAME_EVERSION);
    buf[4] = FRAME_VERSION;
    buf[0] ^= 1;
    assert_int_equal(frame_hello_check(buf, np, "topo-1", hash, &got), FRAME_EMAGIC);
    char longid[300];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    h.topology_id = longid;
    assert_int_equal(frame_hello_encode(buf, sizeof buf, &h), 0);
    h.topology_id = "t";
    assert_int_equal(frame_hello_encode(buf, 5, &h), 0);
}

static void test_batch_records(void **state) {
    (void)state;
    uint8_t b[] = {3, 0, 0, 0, 'a', 'b', 'c', 0, 0, 0, 0, 2, 0, 0, 0, 'x'};
    size_t off = 0, rl;
    const uint8_t *rec;
    assert_int_equal(frame_batch_next(b, sizeof b, &off, &rec, &rl), 1);
    assert_int_equal(rl, 3);
    assert_memory_equal(rec, "abc", 3);
    assert_int_equal(frame_batch_next(b, sizeof b, &off, &rec, &rl), 1);
    assert_int_equal(rl, 0);
    assert_int_equal(frame_batch_next(b, sizeof b, &off, &rec, &rl), FRAME_ELENGTH);
    off = 0;
    assert_int_equal(frame_batch_next(b, 7, &off, &rec, &rl), 1);
    assert_int_equal(frame_batch_next(b, 7, &off, &rec, &rl), 0);
    off = 0;
    assert_int_equal(frame_batch_next(b, 2, &off, &rec, &rl), FRAME_ELENGTH);
}

/* records cut into frames of at most limit bytes read back in order */
static void test_batch_cut(void **state) {
    (void)state;
    uint8_t recs[4096];
    size_t len = 0;
    int nrec = 0;
    for (int i = 0; len + 4 + 100 <= sizeof recs; i++, nrec++) {
        uint32_t n = (uint32_t)(i * 7 % 100);
        recs[len] = (uint8_t)n;
        recs[len + 1] = recs[len + 2] = recs[len + 3] = 0;
        memset(recs + len + 4, 'a' + i % 3, n);
        len += 4 + n;
    }
    size_t limits[] = {1, 50, 300, 100000};
    for (int lz = 0; lz < 2; lz++) {
        for (int l = 0; l < 4; l++) {
            uint32_t nf = frame_batch_count(recs, len, limits[l]);
            assert_true(nf >= 1);
            frame_slice *sl = calloc(nf, sizeof *sl);
            size_t cap = frame_lz4_bound(len) + 16 * nf;
            uint8_t *lzb = malloc(cap), *wire = malloc(len + nf * FRAME_HEADER_BYTES), *back = malloc(len);
            assert_non_null(sl);
            assert_non_null(lzb);
            assert_non_null(wire);
            assert_non_null(back);
            size_t wlen = frame_batch_cut(recs, len, limits[l], lz ? 16 : 0, lz ? lzb : NULL, cap, sl);
            size_t o = 0;
            for (uint32_t f = 0; f < nf; f++) {
                memcpy(wire + o, sl[f].header, FRAME_HEADER_BYTES);
                memcpy(wire + o + FRAME_HEADER_BYTES, sl[f].payload, sl[f].len);
                o += FRAME_HEADER_BYTES + sl[f].len;
            }
            assert_int_equal(o, wlen);
            size_t blen = 0;
            assert_int_equal(read_all(wire, wlen, 997, back, &blen), (int)nf);
            assert_int_equal(blen, len);
            assert_memory_equal(back, recs, len);
            /* every frame respects the limit unless it holds a single record */
            if (limits[l] == 1) assert_int_equal(nf, (uint32_t)nrec);
            if (limits[l] == 100000) assert_int_equal(nf, 1);
            free(sl);
            free(lzb);
            free(wire);
            free(back);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_and_read), cmocka_unit_test(test_header_rejects),
        cmocka_unit_test(test_mutations),      cmocka_unit_test(test_handshake),
        cmocka_unit_test(test_batch_records),  cmocka_unit_test(test_batch_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
