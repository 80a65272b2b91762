/*
 * Unit tests for ackpkt: the byte layout of an acking record, packets
 * built and read back (also through the wire codec), and the checks a
 * packet from a peer passes, each violation alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tuple/ackpkt.h"
#include "tuple/codec.h"

static void test_record_layout(void **s) {
    (void)s;
    ackrec r = {.root = 0x0102030405060708ULL, .xor = 0x1112131415161718ULL, .task = -2, .kind = ACKREC_ACK};
    uint8_t b[ACKPKT_REC_BYTES];
    ackpkt_put(b, &r);
    /* little-endian, fixed width, whatever the host */
    const uint8_t want[ACKPKT_REC_BYTES] = {8,    7,    6,    5,    4,    3,    2, 1, 0x18, 0x17, 0x16, 0x15,
                                            0x14, 0x13, 0x12, 0x11, 0xfe, 0xff, 0xff, 0xff, 2, 0, 0, 0};
    assert_memory_equal(b, want, sizeof want);
}

static void test_build_and_read(void **s) {
    (void)s;
    ackrec in[ACKPKT_MAX_RECS];
    for (int i = 0; i < ACKPKT_MAX_RECS; i++)
        in[i] = (ackrec){.root = (uint64_t)i * 0x9E3779B97F4A7C15ULL + 1, .xor = ~(uint64_t)i, .task = i,
                         .kind = (uint32_t)(i % 5) + 1};
    for (size_t n = 1; n <= ACKPKT_MAX_RECS; n += 85) {
        sd_tuple *t = ackpkt_new(NULL, in, n);
        assert_non_null(t);
        assert_int_equal(ackpkt_count(t), (int)n);
        for (size_t i = 0; i < n; i++) {
            ackrec r;
            ackpkt_get(t, (int)i, &r);
            assert_memory_equal(&r, &in[i], sizeof r);
        }
        tuple_unref(t);
    }
    assert_null(ackpkt_new(NULL, in, 0));
    assert_null(ackpkt_new(NULL, in, ACKPKT_MAX_RECS + 1));
}

static void test_through_codec(void **s) {
    (void)s;
    ackrec in[3] = {{11, 22, 3, ACKREC_INIT}, {12, 23, 3, ACKREC_INIT}, {13, 0, 3, ACKREC_INIT}};
    sd_tuple *t = ackpkt_new(NULL, in, 3);
    assert_non_null(t);
    t->src_task = 3;
    t->dest_task = 9;
    size_t n = codec_encoded_size(t);
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    assert_int_equal(codec_encode(t, buf), n);
    sd_tuple *d = NULL;
    assert_int_equal(codec_decode(buf, n, NULL, &d), CODEC_OK);
    assert_int_equal(ackpkt_count(d), 3);
    assert_int_equal(ackpkt_check(d, 1u << ACKREC_INIT, 3), ACKPKT_OK);
    ackrec r;
    ackpkt_get(d, 2, &r);
    assert_memory_equal(&r, &in[2], sizeof r);
    tuple_unref(d);
    /* one byte short of the last record: the codec still decodes a bytes
     * value, the packet's shape is refused */
    buf[n - ACKPKT_REC_BYTES * 3 - 4] = (uint8_t)(ACKPKT_REC_BYTES * 3 - 1); /* the u32 length's low byte */
    assert_int_equal(codec_decode(buf, n - 1, NULL, &d), CODEC_OK);
    assert_int_equal(ackpkt_count(d), -1);
    assert_int_equal(ackpkt_check(d, 1u << ACKREC_INIT, 3), ACKPKT_ESHAPE);
    tuple_unref(d);
    free(buf);
    tuple_unref(t);
}

/* a tuple with values v, for the shapes a packet must not have */
static int count_of(const sd_value *v, size_t n) {
    sd_tuple *t = tuple_new(v, n, NULL, 0);
    assert_non_null(t);
    int c = ackpkt_count(t);
    tuple_unref(t);
    return c;
}

static void test_malformed(void **s) {
    (void)s;
    static char big[(ACKPKT_MAX_RECS + 1) * ACKPKT_REC_BYTES];
    sd_value v[2] = {sd_bytes(big, ACKPKT_REC_BYTES), sd_int(1)};
    assert_int_equal(count_of(v, 1), 1);
    assert_int_equal(count_of(v, 2), -1);                        /* two values */
    assert_int_equal(count_of(v, 0), -1);                        /* none */
    sd_value i[1] = {sd_int(5)};
    assert_int_equal(count_of(i, 1), -1);                        /* not bytes */
    sd_value str[1] = {sd_str(big, ACKPKT_REC_BYTES)};
    assert_int_equal(count_of(str, 1), -1);                      /* a string */
    sd_value empty[1] = {sd_bytes(big, 0)};
    assert_int_equal(count_of(empty, 1), -1);                    /* no record */
    sd_value part[1] = {sd_bytes(big, ACKPKT_REC_BYTES + 7)};
    assert_int_equal(count_of(part, 1), -1);                     /* a partial record */
    sd_value many[1] = {sd_bytes(big, sizeof big)};
    assert_int_equal(count_of(many, 1), -1);                     /* above the most records */

    /* records: each rule alone */
    ackrec ok[2] = {{5, 1, 7, ACKREC_INIT}, {6, 2, 7, ACKREC_INIT}};
    sd_tuple *t = ackpkt_new(NULL, ok, 2);
    assert_int_equal(ackpkt_check(t, 1u << ACKREC_INIT, 7), ACKPKT_OK);
    assert_int_equal(ackpkt_check(t, 1u << ACKREC_INIT, 8), ACKPKT_ETASK);
    assert_int_equal(ackpkt_check(t, 1u << ACKREC_ACK, 7), ACKPKT_EKIND);
    tuple_unref(t);
    ackrec roots[2][1] = {{{0, 1, 0, ACKREC_ACK}}, {{UINT64_MAX, 1, 0, ACKREC_ACK}}};
    for (int k = 0; k < 2; k++) {
        t = ackpkt_new(NULL, roots[k], 1);
        assert_int_equal(ackpkt_check(t, 1u << ACKREC_ACK, 0), ACKPKT_EROOT);
        tuple_unref(t);
    }
    uint32_t kinds[3] = {0, 6, 0x80000001u};
    for (int k = 0; k < 3; k++) {
        ackrec r = {5, 1, 0, kinds[k]};
        t = ackpkt_new(NULL, &r, 1);
        assert_int_equal(ackpkt_check(t, ~0u, 0), ACKPKT_EKIND); /* no such kind */
        assert_int_equal(ackpkt_check(t, 1u << ACKREC_DONE_OK | 1u << ACKREC_DONE_FAIL, 0), ACKPKT_EKIND);
        tuple_unref(t);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_layout),
        cmocka_unit_test(test_build_and_read),
        cmocka_unit_test(test_through_codec),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
