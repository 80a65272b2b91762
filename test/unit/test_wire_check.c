/*
 * Unit tests for wire_check: every rule a tuple received from a peer must
 * pass, each tried with a valid tuple and with the violation alone, on the
 * word count test topology laid out on two workers (we are worker 1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "runtime/wire_check.h"
#include "tuple/ackpkt.h"
#include "test_data.h"
#include "../wire_check_world.h"

static topology *topo;
static worker_rt rt;
static int task_worker[WCW_TASKS + 1];
static struct executor *task_exec[WCW_TASKS + 1];

static int setup(void **state) {
    (void)state;
    char path[4200], err[512];
    data_path(path, sizeof path, "wordcount.yaml");
    topo = topology_load(path, NULL, NULL, err, sizeof err);
    if (!topo || topo->ntasks != WCW_TASKS) return -1;
    memset(&rt, 0, sizeof rt);
    return wcw_layout(&rt, topo, task_worker, task_exec);
}

static int teardown(void **state) {
    (void)state;
    routes_free(&rt);
    topology_free(topo);
    return 0;
}

static int sid(const char *comp, const char *stream) {
    const topo_stream *s = topology_stream(topo, topology_component(topo, comp)->index, stream);
    assert_non_null(s);
    return s->id;
}

static wire_memo *memo; /* when set, judge checks through it */

/* the reason for tuple t (ours, released here) as src -> dest on stream,
 * from worker `peer` */
static const char *judge(int peer, int src, int dest, int stream, sd_tuple *t) {
    assert_non_null(t);
    t->src_task = src;
    t->dest_task = dest;
    t->stream_id = (uint16_t)stream;
    t->stream = &topo->streams[stream];
    const char *why = memo ? wire_check_memo(&rt, memo, peer, t) : wire_check(&rt, peer, t);
    tuple_unref(t);
    return why;
}

/* the same for a tuple of values */
static const char *check(int peer, int src, int dest, int stream, const sd_value *v, size_t n) {
    return judge(peer, src, dest, stream, tuple_new(v, n, NULL, 0));
}

static void test_user_streams(void **s) {
    (void)s;
    int lines = sid("lines", "default"), split = sid("split", "default");
    int nf = topo->streams[lines].nfields;
    sd_value v[4] = {sd_str("a b", 3), sd_int(1), sd_int(2), sd_int(3)};
    assert_null(check(0, 1, 4, lines, v, (size_t)nf));
    assert_string_equal(check(0, 1, 3, lines, v, (size_t)nf), "destination task does not run here");
    assert_string_equal(check(0, 1, 0, lines, v, (size_t)nf), "destination task does not run here");
    assert_string_equal(check(0, 1, 11, lines, v, (size_t)nf), "destination task does not run here");
    assert_string_equal(check(0, 0, 4, lines, v, (size_t)nf), "unknown source task");
    assert_string_equal(check(0, 99, 4, lines, v, (size_t)nf), "unknown source task");
    assert_string_equal(check(0, 2, 4, lines, v, (size_t)nf), "source task does not run on the sending worker");
    assert_string_equal(check(0, 1, 4, split, v, 1), "stream does not belong to the source task's component");
    assert_string_equal(check(0, 1, 4, lines, v, (size_t)nf + 1), "value count differs from the stream's fields");
    assert_string_equal(check(0, 1, 6, lines, v, (size_t)nf), "stream not subscribed by the destination's component");
    /* split (worker 0, task 3) -> count on worker 1: subscribed */
    assert_null(check(0, 3, 6, split, v, (size_t)topo->streams[split].nfields));
}

/* the same for an acking packet of n records */
static const char *check_pkt(int peer, int src, int dest, int stream, const ackrec *r, size_t n) {
    return judge(peer, src, dest, stream, ackpkt_new(NULL, r, n));
}

static void test_acker_streams(void **s) {
    (void)s;
    int init = sid("lines", "__ack_init"), ack = sid("split", "__ack_ack"), fail = sid("split", "__ack_fail");
    ackrec in[2] = {{77, 5, 1, ACKREC_INIT}, {78, 6, 1, ACKREC_INIT}};
    assert_null(check_pkt(0, 1, 10, init, in, 2));
    ackrec bad_task[2] = {{77, 5, 1, ACKREC_INIT}, {78, 6, 2, ACKREC_INIT}};
    assert_string_equal(check_pkt(0, 1, 10, init, bad_task, 2), "__ack_init names another spout task");
    ackrec far_task[1] = {{77, 5, 100000, ACKREC_INIT}};
    assert_string_equal(check_pkt(0, 1, 10, init, far_task, 1), "__ack_init names another spout task");
    assert_string_equal(check_pkt(0, 1, 8, init, in, 2), "malformed __ack_init");
    /* a record of another stream's kind */
    ackrec mixed[2] = {{77, 5, 1, ACKREC_INIT}, {78, 6, 0, ACKREC_ACK}};
    assert_string_equal(check_pkt(0, 1, 10, init, mixed, 2), "malformed __ack_init");
    /* the old form (integer values) is not a packet */
    sd_value v[3] = {sd_int(77), sd_int(5), sd_int(1)};
    assert_string_equal(check(0, 1, 10, init, v, 3), "malformed __ack_init");
    ackrec acks[3] = {{77, 5, 0, ACKREC_ACK}, {78, 9, 0, ACKREC_ACK}, {79, 1, 0, ACKREC_ACK}};
    assert_null(check_pkt(0, 3, 10, ack, acks, 3));
    assert_string_equal(check_pkt(0, 3, 4, ack, acks, 3), "malformed acker tuple");
    ackrec zero[2] = {{77, 5, 0, ACKREC_ACK}, {0, 9, 0, ACKREC_ACK}};
    assert_string_equal(check_pkt(0, 3, 10, ack, zero, 2),
                        "acking record for root 0 (a local notice) or a reserved root");
    ackrec top[1] = {{UINT64_MAX, 9, 0, ACKREC_ACK}};
    assert_non_null(check_pkt(0, 3, 10, ack, top, 1));
    ackrec fails[1] = {{77, 0, 0, ACKREC_FAIL}};
    assert_null(check_pkt(0, 3, 10, fail, fails, 1));
    assert_string_equal(check_pkt(0, 3, 10, ack, fails, 1), "malformed acker tuple");
    assert_string_equal(check_pkt(0, 3, 10, fail, acks, 1), "malformed acker tuple");
    sd_value sfail[1] = {sd_str("x", 1)};
    assert_string_equal(check(0, 3, 10, fail, sfail, 1), "malformed acker tuple");
    /* bytes that are not whole records */
    char junk[25] = {0};
    sd_value part[1] = {sd_bytes(junk, 25)};
    assert_string_equal(check(0, 3, 10, ack, part, 1), "malformed acker tuple");
    sd_value none[1] = {sd_bytes(junk, 0)};
    assert_string_equal(check(0, 3, 10, ack, none, 1), "malformed acker tuple");
}

static void test_ack_done_and_tick(void **s) {
    (void)s;
    int done = sid("__acker", "__ack_done");
    ackrec ok[2] = {{77, 0, 0, ACKREC_DONE_OK}, {78, 0, 0, ACKREC_DONE_FAIL}};
    assert_null(check_pkt(0, 9, 2, done, ok, 2));
    ackrec bad[1] = {{77, 0, 0, ACKREC_ACK}};
    assert_string_equal(check_pkt(0, 9, 2, done, bad, 1), "malformed __ack_done");
    ackrec kind99[1] = {{77, 0, 0, 99}};
    assert_string_equal(check_pkt(0, 9, 2, done, kind99, 1), "malformed __ack_done");
    assert_string_equal(check_pkt(0, 9, 4, done, ok, 2), "malformed __ack_done");
    /* root 0: a spout's notice that an acker's worker is down, made locally only */
    ackrec notice[1] = {{0, 0, 0, ACKREC_DONE_FAIL}};
    assert_non_null(check_pkt(0, 9, 2, done, notice, 1));
    int tick = -1;
    for (int i = 0; i < topo->nstreams; i++)
        if (strcmp(topo->streams[i].name, "__tick") == 0) tick = i;
    assert_true(tick >= 0);
    assert_non_null(check(0, 3, 4, tick, NULL, 0));
}

/* A flag on a received tuple (a tick is made by its own worker) */
static void test_flags(void **s) {
    (void)s;
    int lines = sid("lines", "default");
    sd_value v[1] = {sd_str("a b", 3)};
    sd_tuple *t = tuple_new(v, 1, NULL, 0);
    assert_non_null(t);
    t->flags = TUPLE_F_TICK;
    assert_string_equal(judge(0, 1, 4, lines, t), "flags a tuple never carries between workers");
}

/* The memo passes again what passed (it does not look again: shown by a
 * layout changed under it), for that peer, stream, value count and flags
 * only, and never remembers an acking packet. */
static void test_memo(void **s) {
    (void)s;
    static wire_memo m; /* zeroed */
    memo = &m;
    int lines = sid("lines", "default"), init = sid("lines", "__ack_init");
    sd_value v[2] = {sd_str("a b", 3), sd_int(1)};
    assert_null(check(0, 1, 4, lines, v, 1));
    task_exec[4] = NULL; /* as if task 4 left: only a memo hit passes now */
    assert_null(check(0, 1, 4, lines, v, 1));
    assert_string_equal(check(1, 1, 4, lines, v, 1), "destination task does not run here");
    assert_string_equal(check(0, 1, 4, lines, v, 2), "destination task does not run here");
    sd_tuple *t = tuple_new(v, 1, NULL, 0);
    assert_non_null(t);
    t->flags = TUPLE_F_TICK;
    assert_non_null(judge(0, 1, 4, lines, t));
    task_exec[4] = (struct executor *)&rt;
    /* a packet that passed does not vouch for the next one */
    ackrec in[1] = {{77, 5, 1, ACKREC_INIT}}, other[1] = {{77, 5, 2, ACKREC_INIT}};
    assert_null(check_pkt(0, 1, 10, init, in, 1));
    assert_string_equal(check_pkt(0, 1, 10, init, other, 1), "__ack_init names another spout task");
    memo = NULL;
}

int main(void) {
    if (test_data_dir(data_dir) != 0) {
        fprintf(stderr, "cannot find test/data\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_streams),
        cmocka_unit_test(test_acker_streams),
        cmocka_unit_test(test_ack_done_and_tick),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_memo),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
