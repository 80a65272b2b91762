/* Unit tests for tuple.c and codec.c: allocation, accessors, hashing,
 * encode/decode round trips and rejection of malformed encodings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "tuple/codec.h"
#include "topology/topology.h"
#include "tuple/tuple.h"

static char *fields_ab[] = {"word", "count"};
static topo_stream test_streams[2] = {
    {.id = 0, .component = 0, .name = "default", .nfields = 2, .fields = fields_ab},
    {.id = 1, .component = 0, .name = "__tick", .nfields = 0, .fields = NULL, .system = true},
};
static topology test_topo = {.nstreams = 2, .streams = test_streams};

static sd_tuple *sample_tuple(void) {
    static const char blob[] = {0, 1, 2, (char)0xff, 'x'};
    sd_value vals[] = {
        sd_str("hello", 5), sd_int(-1234567890123LL), sd_double(3.25), sd_bool(true),
        sd_null(), sd_bytes(blob, sizeof blob), sd_str("", 0), sd_bool(false),
    };
    tuple_anchor anchors[] = {{1, 2}, {0xffffffffffffffffULL, 0x8000000000000000ULL}, {42, 43}};
    sd_tuple *t = tuple_new(vals, 8, anchors, 3);
    assert_non_null(t);
    t->src_task = 7;
    t->dest_task = 12;
    t->stream_id = 1;
    t->flags = TUPLE_F_TICK;
    return t;
}

static void assert_tuples_equal(const sd_tuple *a, const sd_tuple *b) {
    assert_int_equal(a->src_task, b->src_task);
    assert_int_equal(a->dest_task, b->dest_task);
    assert_int_equal(a->stream_id, b->stream_id);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->nvalues, b->nvalues);
    assert_int_equal(a->nanchors, b->nanchors);
    for (int i = 0; i < a->nvalues; i++) assert_true(value_equal(&tuple_values(a)[i], &tuple_values(b)[i]));
    for (int i = 0; i < a->nanchors; i++) {
        assert_true(tuple_anchors(a)[i].root == tuple_anchors(b)[i].root);
        assert_true(tuple_anchors(a)[i].edge == tuple_anchors(b)[i].edge);
    }
}

static void test_tuple_new_copies(void **state) {
    (void)state;
    char buf[8] = "mutable";
    sd_value v = sd_str(buf, 7);
    sd_tuple *t = tuple_new(&v, 1, NULL, 0);
    assert_non_null(t);
    buf[0] = 'X';
    assert_memory_equal(tuple_values(t)[0].v.s.ptr, "mutable", 7);
    /* data lives inside the one allocation */
    assert_true(tuple_values(t)[0].v.s.ptr >= (const char *)t && tuple_values(t)[0].v.s.ptr < (const char *)(t + 1) + 64);
    sd_tuple *c = tuple_clone(t);
    assert_non_null(c);
    assert_tuples_equal(t, c);
    assert_ptr_not_equal(tuple_values(c)[0].v.s.ptr, tuple_values(t)[0].v.s.ptr);
    tuple_ref(t);
    tuple_unref(t);
    tuple_unref(t);
    tuple_unref(c);
    sd_value many[SD_MAX_FIELDS + 1];
    for (int i = 0; i < SD_MAX_FIELDS + 1; i++) many[i] = sd_int(i);
    assert_null(tuple_new(many, SD_MAX_FIELDS + 1, NULL, 0));
}

static void test_accessors(void **state) {
    (void)state;
    sd_value vals[] = {sd_str("cat", 3), sd_int(5)};
    sd_tuple *t = tuple_new(vals, 2, NULL, 0);
    assert_non_null(t);
    t->src_task = 3;
    assert_int_equal(sd_tuple_size(t), 2);
    assert_string_equal(sd_tuple_stream(t), "default");
    assert_null(sd_tuple_field(t, "word")); /* no stream resolved */
    t->stream = &test_streams[0];
    assert_ptr_equal(sd_tuple_field(t, "count"), &tuple_values(t)[1]);
    assert_ptr_equal(sd_tuple_field(t, "word"), &tuple_values(t)[0]);
    assert_null(sd_tuple_field(t, "nope"));
    assert_string_equal(sd_tuple_field_name(t, 1), "count");
    assert_null(sd_tuple_field_name(t, 2));
    assert_null(sd_tuple_get(t, 2));
    /* all values at once, in field order, where sd_tuple_get finds them */
    const sd_value *all = sd_tuple_values(t);
    assert_ptr_equal(&all[0], sd_tuple_get(t, 0));
    assert_ptr_equal(&all[1], sd_tuple_get(t, 1));
    assert_memory_equal(all[0].v.s.ptr, "cat", 3);
    assert_int_equal(all[1].v.i, 5);
    assert_int_equal(sd_tuple_source_task(t), 3);
    assert_false(sd_tuple_is_tick(t));
    t->flags = TUPLE_F_TICK;
    assert_true(sd_tuple_is_tick(t));
    sd_tuple_retain(t);
    sd_tuple_release(t);
    sd_tuple_release(t);
}

static void test_hash(void **state) {
    (void)state;
    char a[40], b[40];
    memset(a, 'q', sizeof a);
    memcpy(b, a, sizeof b);
    /* equal content in different buffers, every length 0..40 (all tail paths) */
    for (uint32_t n = 0; n <= sizeof a; n++) {
        sd_value x = sd_str(a, n), y = sd_str(b, n);
        assert_true(value_hash(&x, 0) == value_hash(&y, 0));
        if (n > 0) {
            sd_value z = sd_str(a, n - 1);
            assert_true(value_hash(&x, 0) != value_hash(&z, 0));
        }
    }
    sd_value s = sd_str("7", 1), by = sd_bytes("7", 1), i = sd_int(7), d = sd_double(7.0);
    sd_value n = sd_null(), e = sd_str("", 0), t = sd_bool(true), f = sd_bool(false);
    uint64_t h[] = {value_hash(&s, 0), value_hash(&by, 0), value_hash(&i, 0), value_hash(&d, 0),
                    value_hash(&n, 0), value_hash(&e, 0), value_hash(&t, 0), value_hash(&f, 0)};
    for (size_t x = 0; x < 8; x++)
        for (size_t y = x + 1; y < 8; y++) assert_true(h[x] != h[y]);
    assert_true(value_hash(&i, 0) != value_hash(&i, 1));
    /* spread: consecutive ints land in both halves of a 2-way split */
    int buckets[2] = {0, 0};
    for (int k = 0; k < 1000; k++) {
        sd_value v = sd_int(k);
        buckets[value_hash(&v, 0) % 2]++;
    }
    assert_true(buckets[0] > 400 && buckets[1] > 400);
    assert_true(value_equal(&s, &s) && !value_equal(&s, &by) && !value_equal(&i, &d));
}

static void test_roundtrip(void **state) {
    (void)state;
    sd_tuple *t = sample_tuple();
    size_t n = codec_encoded_size(t);
    /* the room a sender reserves covers the record, every type of value here */
    assert_true(codec_size_bound(t) >= n);
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    assert_int_equal(codec_encode(t, buf), n);
    sd_tuple *d = NULL;
    assert_int_equal(codec_decode(buf, n, NULL, &d), CODEC_OK);
    assert_tuples_equal(t, d);
    assert_null(d->stream);
    tuple_unref(d);
    assert_int_equal(codec_decode(buf, n, &test_topo, &d), CODEC_OK);
    assert_ptr_equal(d->stream, &test_streams[1]);
    assert_string_equal(sd_tuple_stream(d), "__tick");
    tuple_unref(d);
    /* stream id out of the topology's range */
    t->stream_id = 2;
    codec_encode(t, buf);
    assert_int_equal(codec_decode(buf, n, &test_topo, &d), CODEC_ESTREAM);
    assert_null(d);
    /* empty tuple */
    sd_tuple *e = tuple_new(NULL, 0, NULL, 0);
    assert_non_null(e);
    uint8_t small[CODEC_HEADER_BYTES];
    assert_int_equal(codec_encoded_size(e), CODEC_HEADER_BYTES);
    assert_int_equal(codec_size_bound(e), CODEC_HEADER_BYTES);
    codec_encode(e, small);
    assert_int_equal(codec_decode(small, sizeof small, &test_topo, &d), CODEC_OK);
    assert_int_equal(d->nvalues, 0);
    tuple_unref(d);
    tuple_unref(e);
    tuple_unref(t);
    free(buf);
}

static void test_rejects(void **state) {
    (void)state;
    sd_tuple *t = sample_tuple();
    size_t n = codec_encoded_size(t);
    uint8_t *buf = malloc(n + 1);
    assert_non_null(buf);
    codec_encode(t, buf);
    sd_tuple *d = NULL;
    /* every strict prefix is rejected; copies make ASan catch over-reads */
    for (size_t k = 0; k < n; k++) {
        uint8_t *p = malloc(k ? k : 1);
        assert_non_null(p);
        memcpy(p, buf, k);
        int rc = codec_decode(p, k, NULL, &d);
        assert_true(rc < 0);
        assert_null(d);
        free(p);
    }
    buf[n] = 0;
    assert_int_equal(codec_decode(buf, n + 1, NULL, &d), CODEC_ETRAILING);
    /* value type byte of the first value: right after header + anchors */
    size_t first = CODEC_HEADER_BYTES + 3 * 16;
    uint8_t saved = buf[first];
    buf[first] = 9;
    assert_int_equal(codec_decode(buf, n, NULL, &d), CODEC_ETYPE);
    buf[first] = saved;
    /* bool must be 0 or 1: fourth value is the bool after str(5), int, double */
    size_t boolpos = first + (1 + 4 + 5) + 9 + 9 + 1;
    assert_int_equal(buf[boolpos - 1], SD_BOOL);
    buf[boolpos] = 2;
    assert_int_equal(codec_decode(buf, n, NULL, &d), CODEC_EVALUE);
    buf[boolpos] = 1;
    /* absurd counts */
    buf[12] = SD_MAX_FIELDS + 1;
    buf[13] = 0;
    assert_int_equal(codec_decode(buf, n, NULL, &d), CODEC_ECOUNT);
    buf[12] = 8;
    buf[14] = 0xff;
    buf[15] = 0xff;
    assert_int_equal(codec_decode(buf, n, NULL, &d), CODEC_ETRUNC);
    buf[14] = 3;
    buf[15] = 0;
    /* a string length that points past the end */
    buf[first + 1] = 0xff;
    assert_int_equal(codec_decode(buf, n, NULL, &d), CODEC_ETRUNC);
    buf[first + 1] = 5;
    assert_int_equal(codec_decode(buf, n, NULL, &d), CODEC_OK);
    tuple_unref(d);

    /* bounded random mutation: must never crash; success must re-encode */
    srand((unsigned)time(NULL));
    uint8_t *m = malloc(n);
    assert_non_null(m);
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(m, buf, n);
        int flips = 1 + rand() % 4;
        for (int f = 0; f < flips; f++) m[rand() % n] = (uint8_t)rand();
        size_t len = (rand() % 4 == 0) ? (size_t)(rand() % (int)n) : n;
        int rc = codec_decode(m, len, &test_topo, &d);
        if (rc == CODEC_OK) {
            assert_int_equal(codec_encoded_size(d), len);
            tuple_unref(d);
        } else {
            assert_null(d);
        }
    }
    free(m);
    free(buf);
    tuple_unref(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tuple_new_copies), cmocka_unit_test(test_accessors),
        cmocka_unit_test(test_hash),             cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
