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

/* the reason for a tuple src -> dest on stream with values, from worker `peer` */
static const char *check(int peer, int src, int dest, int stream, const sd_value *v, size_t n) {
    sd_tuple *t = tuple_new(v, n, NULL, 0);
    assert_non_null(t);
    t->src_task = src;
    t->dest_task = dest;
    t->stream_id = (uint16_t)stream;
    t->stream = &topo->streams[stream];
    const char *why = wire_check(&rt, peer, t);
    tuple_unref(t);
    return why;
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

static void test_acker_streams(void **s) {
    (void)s;
    int init = sid("lines", "__ack_init"), ack = sid("split", "__ack_ack"), fail = sid("split", "__ack_fail");
    sd_value v[3] = {sd_int(77), sd_int(5), sd_int(1)};
    assert_null(check(0, 1, 10, init, v, 3));
    sd_value bad_task[3] = {sd_int(77), sd_int(5), sd_int(2)};
    assert_string_equal(check(0, 1, 10, init, bad_task, 3), "__ack_init names another spout task");
    sd_value far_task[3] = {sd_int(77), sd_int(5), sd_int(100000)};
    assert_string_equal(check(0, 1, 10, init, far_task, 3), "__ack_init names another spout task");
    assert_string_equal(check(0, 1, 8, init, v, 3), "malformed __ack_init");
    sd_value str[3] = {sd_int(77), sd_str("x", 1), sd_int(1)};
    assert_string_equal(check(0, 1, 10, init, str, 3), "malformed __ack_init");
    assert_null(check(0, 3, 10, ack, v, 2));
    assert_string_equal(check(0, 3, 4, ack, v, 2), "malformed acker tuple");
    assert_null(check(0, 3, 10, fail, v, 1));
    sd_value sfail[1] = {sd_str("x", 1)};
    assert_string_equal(check(0, 3, 10, fail, sfail, 1), "malformed acker tuple");
}

static void test_ack_done_and_tick(void **s) {
    (void)s;
    int done = sid("__acker", "__ack_done");
    sd_value ok[2] = {sd_int(77), sd_bool(true)}, bad[2] = {sd_int(77), sd_int(1)};
    assert_null(check(0, 9, 2, done, ok, 2));
    assert_string_equal(check(0, 9, 2, done, bad, 2), "malformed __ack_done");
    assert_string_equal(check(0, 9, 4, done, ok, 2), "malformed __ack_done");
    /* root 0: a spout's notice that an acker's worker is down, made locally only */
    sd_value notice[2] = {sd_int(0), sd_bool(false)};
    assert_non_null(check(0, 9, 2, done, notice, 2));
    int tick = -1;
    for (int i = 0; i < topo->nstreams; i++)
        if (strcmp(topo->streams[i].name, "__tick") == 0) tick = i;
    assert_true(tick >= 0);
    assert_non_null(check(0, 3, 4, tick, NULL, 0));
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
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
