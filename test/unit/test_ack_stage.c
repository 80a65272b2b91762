/*
 * Unit tests for ack_stage: records held per (source, destination, stream)
 * and sent as one packet each by a flush; an ack of a root right after an
 * ack or init of that root XORed into it, from any source (and nothing
 * else merged); a full slot, and more destinations than slots, sent early
 * without losing a record.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "runtime/ack_stage.h"

/* what the stage sent: one entry per packet */
#define MAX_SENT 8192
static struct sent {
    void *src;
    int dest, stream;
    size_t n;
    ackrec recs[ACK_STAGE_RECS];
} sent[MAX_SENT];
static int nsent;

static void record_send(void *arg, void *src, int dest, int stream, const ackrec *recs, size_t n) {
    (void)arg;
    assert_true(nsent < MAX_SENT);
    assert_true(n >= 1 && n <= ACK_STAGE_RECS);
    sent[nsent].src = src;
    sent[nsent].dest = dest;
    sent[nsent].stream = stream;
    sent[nsent].n = n;
    memcpy(sent[nsent].recs, recs, n * sizeof *recs);
    nsent++;
}

static int setup(void **state) {
    (void)state;
    nsent = 0;
    return 0;
}

static void add(ack_stage *s, void *src, int dest, int stream, uint32_t kind, uint64_t root, uint64_t xor) {
    ack_stage_add(s, src, dest, stream, kind, root, xor, kind == ACKREC_INIT ? 3 : 0);
}

static void test_one_packet_per_destination(void **st) {
    (void)st;
    ack_stage s;
    ack_stage_init(&s, record_send, NULL);
    int a, b; /* two source tasks */
    add(&s, &a, 10, 1, ACKREC_ACK, 100, 1);
    add(&s, &a, 11, 1, ACKREC_ACK, 101, 2);
    add(&s, &a, 10, 1, ACKREC_ACK, 102, 4);
    add(&s, &b, 10, 1, ACKREC_ACK, 103, 8);
    add(&s, &a, 10, 2, ACKREC_FAIL, 104, 0);
    assert_int_equal(nsent, 0); /* nothing before the flush */
    assert_int_equal(ack_stage_held(&s), 5);
    ack_stage_flush(&s);
    assert_int_equal(ack_stage_held(&s), 0);
    assert_int_equal(nsent, 4);
    /* in the order the slots were first used */
    assert_ptr_equal(sent[0].src, &a);
    assert_int_equal(sent[0].dest, 10);
    assert_int_equal(sent[0].n, 2);
    assert_int_equal(sent[0].recs[0].root, 100);
    assert_int_equal(sent[0].recs[1].root, 102);
    assert_int_equal(sent[1].dest, 11);
    assert_ptr_equal(sent[2].src, &b);
    assert_int_equal(sent[3].stream, 2);
    assert_int_equal(sent[3].recs[0].kind, ACKREC_FAIL);
    ack_stage_flush(&s); /* nothing held: nothing sent */
    assert_int_equal(nsent, 4);
    ack_stage_destroy(&s);
}

static void test_acks_of_a_root_merge(void **st) {
    (void)st;
    ack_stage s;
    ack_stage_init(&s, record_send, NULL);
    int a;
    int b;
    add(&s, &a, 10, 1, ACKREC_ACK, 100, 0x1);
    add(&s, &a, 10, 1, ACKREC_ACK, 100, 0x2);
    add(&s, &b, 10, 1, ACKREC_ACK, 100, 0x100); /* another source, the same root: merged too */
    add(&s, &a, 10, 1, ACKREC_ACK, 100, 0x4);
    add(&s, &a, 10, 1, ACKREC_ACK, 200, 0x10);
    add(&s, &a, 10, 1, ACKREC_ACK, 100, 0x8);   /* not consecutive: a record of its own */
    add(&s, &a, 10, 1, ACKREC_FAIL, 100, 0);    /* a fail is its own record */
    add(&s, &a, 10, 1, ACKREC_ACK, 100, 0x20);  /* and an ack after it too */
    add(&s, &a, 10, 1, ACKREC_ACK, 400, 0x200);
    add(&s, &a, 10, 1, ACKREC_INIT, 400, 0x40); /* an init is its own record */
    add(&s, &a, 10, 1, ACKREC_ACK, 400, 0x80);  /* an ack after an init joins it */
    add(&s, &b, 10, 1, ACKREC_ACK, 400, 0xc0);  /* a chain completing its tree: XOR 0 */
    add(&s, &b, 10, 1, ACKREC_ACK, 500, 0x1000);
    add(&s, &b, 11, 1, ACKREC_ACK, 500, 0x2000); /* another acker: never merged */
    ack_stage_flush(&s);
    assert_int_equal(nsent, 3);
    assert_ptr_equal(sent[0].src, &a);
    assert_int_equal(sent[0].n, 7);
    assert_int_equal(sent[0].recs[0].root, 100);
    assert_int_equal(sent[0].recs[0].xor, 0x107);
    assert_int_equal(sent[0].recs[1].root, 200);
    assert_int_equal(sent[0].recs[1].xor, 0x10);
    assert_int_equal(sent[0].recs[2].xor, 0x8);
    assert_int_equal(sent[0].recs[3].kind, ACKREC_FAIL);
    assert_int_equal(sent[0].recs[4].kind, ACKREC_ACK);
    assert_int_equal(sent[0].recs[4].xor, 0x20);
    assert_int_equal(sent[0].recs[5].kind, ACKREC_ACK);
    assert_int_equal(sent[0].recs[5].xor, 0x200);
    assert_int_equal(sent[0].recs[6].kind, ACKREC_INIT);
    assert_int_equal(sent[0].recs[6].root, 400);
    assert_int_equal(sent[0].recs[6].xor, 0);
    assert_ptr_equal(sent[1].src, &b);
    assert_int_equal(sent[1].dest, 10);
    assert_int_equal(sent[1].n, 1);
    assert_int_equal(sent[1].recs[0].xor, 0x1000);
    assert_int_equal(sent[2].dest, 11);
    assert_int_equal(sent[2].recs[0].xor, 0x2000);
    /* after a flush, the same root starts a new record */
    add(&s, &a, 10, 1, ACKREC_ACK, 300, 0x8);
    ack_stage_flush(&s);
    assert_int_equal(nsent, 4);
    assert_int_equal(sent[3].n, 1);
    assert_int_equal(sent[3].recs[0].xor, 0x8);
    ack_stage_destroy(&s);
}

/* the XOR of every ACK record sent, per root, equals that of every ACK
 * added, whatever the packets' boundaries */
static void test_full_slots_and_many_destinations(void **st) {
    (void)st;
    ack_stage s;
    ack_stage_init(&s, record_send, NULL);
    int src;
    enum { ROOTS = 13, DESTS = ACK_STAGE_SLOTS + 3, ADDS = 40000 };
    static uint64_t want[DESTS][ROOTS], got[DESTS][ROOTS];
    memset(want, 0, sizeof want);
    memset(got, 0, sizeof got);
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < ADDS; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        /* runs of one destination, as a slice sends, with the others between */
        int dest = (i / 600) % DESTS + (x % 7 == 0 ? 1 : 0);
        dest %= DESTS;
        int root = (int)((x >> 8) % ROOTS); /* few roots: consecutive ones merge */
        want[dest][root] ^= x;
        add(&s, &src, dest, 1, ACKREC_ACK, (uint64_t)root + 1, x);
    }
    ack_stage_flush(&s);
    int full = 0;
    for (int p = 0; p < nsent; p++) {
        if (sent[p].n == ACK_STAGE_RECS) full++;
        for (size_t i = 0; i < sent[p].n; i++) {
            const ackrec *r = &sent[p].recs[i];
            assert_int_equal(r->kind, ACKREC_ACK);
            got[sent[p].dest][r->root - 1] ^= r->xor;
        }
    }
    assert_true(full > 0); /* some slots filled before the flush */
    assert_memory_equal(got, want, sizeof got);
    ack_stage_destroy(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_one_packet_per_destination, setup),
        cmocka_unit_test_setup(test_acks_of_a_root_merge, setup),
        cmocka_unit_test_setup(test_full_slots_and_many_destinations, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
