/* scheduler: even spread, stickiness, dead nodes, too few slots, task
 * layout, determinism, and a cluster-sized run against the clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "master/scheduler.h"

/* ---- a cluster to schedule ------------------------------------------------------- */

#define MAXN 1500
#define MAXT 450
#define MAXW 64

typedef struct cluster {
    char ids[MAXN][24];
    int ports[MAXN][8];
    sched_node nodes[MAXN];
    int nnodes;
    char tids[MAXT][24];
    sched_place cur[MAXT][MAXW];
    char cur_node[MAXT][MAXW][24];
    sched_topology topos[MAXT];
    int ntopos;
} cluster;

static cluster *cluster_new(void) {
    cluster *c = calloc(1, sizeof *c);
    assert_non_null(c);
    return c;
}

/* node "n<id>" with nslots ports from 6700 */
static void add_node(cluster *c, int id, int nslots) {
    int i = c->nnodes++;
    snprintf(c->ids[i], sizeof c->ids[i], "n%04d", id);
    for (int p = 0; p < nslots; p++) c->ports[i][p] = 6700 + p;
    c->nodes[i] = (sched_node){.id = c->ids[i], .slots = c->ports[i], .nslots = nslots};
}

static void remove_node(cluster *c, const char *id) {
    for (int i = 0; i < c->nnodes; i++) {
        if (strcmp(c->ids[i], id) != 0) continue;
        c->nnodes--;
        memcpy(c->ids[i], c->ids[c->nnodes], sizeof c->ids[i]);
        memcpy(c->ports[i], c->ports[c->nnodes], sizeof c->ports[i]);
        c->nodes[i] = c->nodes[c->nnodes];
        c->nodes[i].id = c->ids[i];
        c->nodes[i].slots = c->ports[i];
        return;
    }
    fail_msg("no node %s", id);
}

static void add_topo(cluster *c, const char *id, int64_t submit, int nworkers, int ntasks) {
    int i = c->ntopos++;
    snprintf(c->tids[i], sizeof c->tids[i], "%s", id);
    c->topos[i] = (sched_topology){.id = c->tids[i], .submit_time = submit, .nworkers = nworkers, .ntasks = ntasks};
}

/* Stores r as the current assignments (what the store would hold next). */
static void adopt(cluster *c, const sched_result *r) {
    for (int t = 0; t < c->ntopos; t++) {
        const sched_assignment *a = &r->topologies[t];
        assert_true(a->nworkers <= MAXW);
        for (int w = 0; w < a->nworkers; w++) {
            snprintf(c->cur_node[t][w], sizeof c->cur_node[t][w], "%s", c->nodes[a->workers[w].node].id);
            c->cur[t][w] = (sched_place){.node = c->cur_node[t][w], .port = a->workers[w].port};
        }
        c->topos[t].current = c->cur[t];
        c->topos[t].ncurrent = a->nworkers;
    }
}

static int node_index(const cluster *c, const char *id) {
    for (int i = 0; i < c->nnodes; i++)
        if (strcmp(c->ids[i], id) == 0) return i;
    return -1;
}

/* Every placed worker sits on a real slot, no slot twice, tasks laid out
 * round-robin, counts add up. */
static void check_valid(const cluster *c, const sched_result *r) {
    assert_int_equal(r->ntopologies, c->ntopos);
    char *seen = calloc((size_t)c->nnodes * 8, 1);
    assert_non_null(seen);
    int used = 0;
    for (int t = 0; t < c->ntopos; t++) {
        const sched_assignment *a = &r->topologies[t];
        assert_true(a->nworkers <= (c->topos[t].nworkers > 0 ? c->topos[t].nworkers : 0));
        int ntasks = 0;
        for (int w = 0; w < a->nworkers; w++) {
            const sched_worker *x = &a->workers[w];
            assert_true(x->node >= 0 && x->node < c->nnodes);
            int slot = -1;
            for (int p = 0; p < c->nodes[x->node].nslots; p++)
                if (c->nodes[x->node].slots[p] == x->port) slot = p;
            assert_true(slot >= 0);
            assert_int_equal(seen[x->node * 8 + slot], 0);
            seen[x->node * 8 + slot] = 1;
            for (int k = 0; k < x->ntasks; k++) assert_int_equal((x->tasks[k] - 1) % a->nworkers, w);
            ntasks += x->ntasks;
        }
        if (a->nworkers > 0) assert_int_equal(ntasks, c->topos[t].ntasks);
        used += a->nworkers;
    }
    assert_int_equal(r->slots_used, used);
    free(seen);
}

static int workers_on(const cluster *c, const sched_result *r, int t, const char *node) {
    int n = 0;
    for (int w = 0; w < r->topologies[t].nworkers; w++) n += strcmp(c->ids[r->topologies[t].workers[w].node], node) == 0;
    return n;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_even_spread(void **state) {
    (void)state;
    cluster *c = cluster_new();
    for (int i = 0; i < 4; i++) add_node(c, i, 4);
    add_topo(c, "a", 1, 4, 10);
    add_topo(c, "b", 2, 8, 3);
    add_topo(c, "c", 3, 2, 2);
    sched_result r;
    assert_int_equal(sched_run(c->nodes, c->nnodes, c->topos, c->ntopos, &r), 0);
    check_valid(c, &r);
    assert_int_equal(r.slots_total, 16);
    assert_int_equal(r.slots_used, 14);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(workers_on(c, &r, 0, c->ids[i]), 1); /* a: one per node */
        assert_int_equal(workers_on(c, &r, 1, c->ids[i]), 2); /* b: two per node */
    }
    /* c lands on two different nodes */
    assert_string_not_equal(c->ids[r.topologies[2].workers[0].node], c->ids[r.topologies[2].workers[1].node]);
    /* tasks round-robin: task t on worker (t-1) % 4 */
    assert_int_equal(r.topologies[0].workers[1].ntasks, 3);
    assert_int_equal(r.topologies[0].workers[1].tasks[0], 2);
    assert_int_equal(r.topologies[0].workers[1].tasks[1], 6);
    assert_int_equal(r.topologies[0].workers[1].tasks[2], 10);
    assert_int_equal(r.topologies[0].workers[3].ntasks, 2);
    /* b has more workers than tasks: the last ones run none */
    assert_int_equal(r.topologies[1].workers[7].ntasks, 0);
    sched_result_free(&r);
    free(c);
}

static void test_least_loaded_first(void **state) {
    (void)state;
    cluster *c = cluster_new();
    add_node(c, 1, 4);
    add_node(c, 2, 4);
    add_node(c, 3, 8);
    add_topo(c, "old", 1, 3, 3);
    sched_result r;
    assert_int_equal(sched_run(c->nodes, c->nnodes, c->topos, c->ntopos, &r), 0);
    adopt(c, &r);
    sched_result_free(&r);
    /* n0001 and n0002 run 1 of 4, n0003 1 of 8: the next worker goes to n0003 */
    add_topo(c, "new", 2, 1, 1);
    assert_int_equal(sched_run(c->nodes, c->nnodes, c->topos, c->ntopos, &r), 0);
    check_valid(c, &r);
    assert_string_equal(c->ids[r.topologies[1].workers[0].node], "n0003");
    assert_int_equal(r.topologies[1].workers[0].port, 6701); /* its lowest free port */
    sched_result_free(&r);
    free(c);
}

static void test_sticky(void **state) {
    (void)state;
    cluster *c = cluster_new();
    for (int i = 0; i < 3; i++) add_node(c, i, 2);
    add_topo(c, "a", 1, 3, 6);
    add_topo(c, "b", 2, 2, 4);
    sched_result r1, r2;
    assert_int_equal(sched_run(c->nodes, c->nnodes, c->topos, c->ntopos, &r1), 0);
    adopt(c, &r1);
    /* new nodes appear: nothing moves */
    for (int i = 3; i < 6; i++) add_node(c, i, 2);
    assert_int_equal(sched_run(c->nodes, c->nnodes, c->topos, c->ntopos, &r2), 0);
    check_valid(c, &r2);
    for (int t = 0; t < 2; t++) {
        assert_int_equal(r2.topologies[t].nworkers, r1.topologies[t].nworkers);
        for (int w = 0; w < r1.topologies[t].nworkers; w++) {
            assert_string_equal(c->ids[r2.topologies[t].workers[w].node], c->cur[t][w].node);
            assert_int_equal(r2.topologies[t].workers[w].port, c->cur[t][w].port);
        }
    }
    sched_result_free(&r1);
    sched_result_free(&r2);
    /* a current worker on a port the node no longer offers moves; the rest stay */
    c->topos[0].ncurrent = 3;
    c->cur[0][1].port = 7000;
    assert_int_equal(sched_run(c->nodes, c->nnodes, c->topos, c->ntopos, &r1), 0);
    check_valid(c, &r1);
    assert_int_equal(r1.topologies[0].nworkers, 3);
    assert_string_equal(c->ids[r1.topologies[0].workers[0].node], c->cur[0][0].node);
    assert_string_equal(c->ids[r1.topologies[0].workers[2].node], c->cur[0][2].node);
    assert_int_not_equal(r1.topologies[0].workers[1].port, 7000);
    sched_result_free(&r1);
    free(c);
}

static void test_dead_node(void **state) {
    (void)state;
    cluster *c = cluster_new();
    for (int i = 0; i < 4; i++) add_node(c, i, 2);
    add_topo(c, "a", 1, 4, 8);
    sched_result r1, r2;
    assert_int_equal(sched_run(c->nodes, c->nnodes, c->topos, c->ntopos, &r1), 0);
    adopt(c, &r1);
    sched_result_free(&r1);
    remove_node(c, "n0002");
    assert_int_equal(sched_run(c->nodes, c->nnodes, c->topos, c->ntopos, &r2), 0);
    check_valid(c, &r2);
    assert_int_equal(r2.topologies[0].nworkers, 4);
    int moved = 0;
    for (int w = 0; w < 4; w++) {
        const char *now = c->ids[r2.topologies[0].workers[w].node];
        assert_string_not_equal(now, "n0002");
        if (strcmp(c->cur[0][w].node, "n0002") == 0) {
            moved++;
        } else { /* the others stay where they were, with the same tasks */
            assert_string_equal(now, c->cur[0][w].node);
            assert_int_equal(r2.topologies[0].workers[w].port, c->cur[0][w].port);
        }
        assert_int_equal(r2.topologies[0].workers[w].tasks[0], w + 1);
    }
    assert_int_equal(moved, 1);
    sched_result_free(&r2);
    free(c);
}

static void test_not_enough_slots(void **state) {
    (void)state;
    cluster *c = cluster_new();
    add_node(c, 0, 2);
    add_node(c, 1, 2);
    add_topo(c, "big", 1, 6, 12);
    add_topo(c, "late", 5, 2, 2);
    sched_result r;
    assert_int_equal(sched_run(c->nodes, c->nnodes, c->topos, c->ntopos, &r), 0);
    check_valid(c, &r);
    assert_int_equal(r.topologies[0].nworkers, 4); /* as many as fit */
    assert_int_equal(r.topologies[1].nworkers, 0); /* the newer one waits */
    assert_int_equal(r.topologies[0].workers[0].ntasks, 3); /* 12 tasks over 4 workers */
    adopt(c, &r);
    sched_result_free(&r);
    /* nodes appear: the rest is placed, the placed workers keep their slots */
    add_node(c, 2, 2);
    add_node(c, 3, 2);
    assert_int_equal(sched_run(c->nodes, c->nnodes, c->topos, c->ntopos, &r), 0);
    check_valid(c, &r);
    assert_int_equal(r.topologies[0].nworkers, 6);
    assert_int_equal(r.topologies[1].nworkers, 2);
    for (int w = 0; w < 4; w++) {
        assert_string_equal(c->ids[r.topologies[0].workers[w].node], c->cur[0][w].node);
        assert_int_equal(r.topologies[0].workers[w].port, c->cur[0][w].port);
    }
    assert_int_equal(r.slots_used, 8);
    sched_result_free(&r);
    /* no nodes at all */
    assert_int_equal(sched_run(NULL, 0, c->topos, c->ntopos, &r), 0);
    assert_int_equal(r.topologies[0].nworkers, 0);
    assert_int_equal(r.slots_total, 0);
    sched_result_free(&r);
    free(c);
}

static void test_keep_only_and_bad_input(void **state) {
    (void)state;
    cluster *c = cluster_new();
    add_node(c, 0, 2);
    add_node(c, 1, 2);
    c->ports[1][1] = 0; /* invalid port: ignored */
    add_topo(c, "dying", 1, 2, 2);
    sched_place cur[3] = {{"n0000", 6700}, {"gone", 6700}, {"n0000", 6700}};
    c->topos[0].current = cur;
    c->topos[0].ncurrent = 3; /* more than wanted, one dead, one repeated */
    c->topos[0].keep_only = true;
    add_topo(c, "x", 2, 5, 5);
    sched_result r;
    assert_int_equal(sched_run(c->nodes, c->nnodes, c->topos, c->ntopos, &r), 0);
    check_valid(c, &r);
    assert_int_equal(r.slots_total, 3);
    assert_int_equal(r.topologies[0].nworkers, 1); /* kept, nothing placed */
    assert_int_equal(r.topologies[1].nworkers, 2);
    sched_result_free(&r);
    c->topos[1].ntasks = -1;
    assert_int_equal(sched_run(c->nodes, c->nnodes, c->topos, c->ntopos, &r), -22);
    free(c);
}

/* placements as text "topo:node:port,..." in topology-id order */
static void describe(const cluster *c, const sched_result *r, char *out, size_t cap) {
    size_t n = 0;
    out[0] = '\0';
    for (int k = 0; k < c->ntopos; k++) {
        int t = -1; /* the k-th topology by id */
        for (int i = 0, rank; i < c->ntopos; i++) {
            rank = 0;
            for (int j = 0; j < c->ntopos; j++) rank += strcmp(c->tids[j], c->tids[i]) < 0;
            if (rank == k) t = i;
        }
        for (int w = 0; w < r->topologies[t].nworkers; w++)
            n += (size_t)snprintf(out + n, cap - n, "%s:%s:%d,", c->tids[t], c->ids[r->topologies[t].workers[w].node],
                                  r->topologies[t].workers[w].port);
        assert_true(n < cap);
    }
}

static void test_deterministic(void **state) {
    (void)state;
    cluster *c = cluster_new();
    for (int i = 0; i < 9; i++) add_node(c, i, 3);
    for (int i = 0; i < 6; i++) {
        char id[24];
        snprintf(id, sizeof id, "t%d", i);
        add_topo(c, id, i % 2, 1 + i, 7);
    }
    char *a = malloc(8192), *b = malloc(8192);
    assert_non_null(a);
    assert_non_null(b);
    sched_result r;
    assert_int_equal(sched_run(c->nodes, c->nnodes, c->topos, c->ntopos, &r), 0);
    describe(c, &r, a, 8192);
    sched_result_free(&r);
    /* reverse both inputs */
    cluster *d = cluster_new();
    for (int i = 8; i >= 0; i--) add_node(d, i, 3);
    for (int i = 5; i >= 0; i--) {
        char id[24];
        snprintf(id, sizeof id, "t%d", i);
        add_topo(d, id, i % 2, 1 + i, 7);
    }
    assert_int_equal(sched_run(d->nodes, d->nnodes, d->topos, d->ntopos, &r), 0);
    describe(d, &r, b, 8192);
    sched_result_free(&r);
    assert_string_equal(a, b);
    assert_true(strlen(a) > 0);
    free(a);
    free(b);
    free(c);
    free(d);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_scale(void **state) {
    (void)state;
    cluster *c = cluster_new();
    for (int i = 0; i < 1200; i++) add_node(c, i, 4);
    for (int i = 0; i < 400; i++) {
        char id[24];
        snprintf(id, sizeof id, "topo-%03d", i);
        add_topo(c, id, 1000 + i, 12, 60);
    }
    sched_result r;
    double t0 = now_s();
    assert_int_equal(sched_run(c->nodes, c->nnodes, c->topos, c->ntopos, &r), 0);
    double fresh = now_s() - t0;
    check_valid(c, &r);
    assert_int_equal(r.slots_used, 4800); /* every slot */
    for (int t = 0; t < 400; t++) assert_int_equal(r.topologies[t].nworkers, 12);
    adopt(c, &r);
    sched_result_free(&r);
    /* 40 nodes die: their 160 workers move to the 160 slots of 40 new nodes */
    for (int i = 0; i < 40; i++) {
        char id[24];
        snprintf(id, sizeof id, "n%04d", i * 29);
        remove_node(c, id);
        add_node(c, 2000 + i, 4);
    }
    t0 = now_s();
    assert_int_equal(sched_run(c->nodes, c->nnodes, c->topos, c->ntopos, &r), 0);
    double again = now_s() - t0;
    check_valid(c, &r);
    assert_int_equal(r.slots_used, 4800);
    int moved = 0;
    for (int t = 0; t < 400; t++) {
        assert_int_equal(r.topologies[t].nworkers, 12);
        for (int w = 0; w < 12; w++) {
            const char *now = c->ids[r.topologies[t].workers[w].node];
            if (node_index(c, c->cur[t][w].node) >= 0) assert_string_equal(now, c->cur[t][w].node);
            else moved++;
        }
    }
    assert_int_equal(moved, 160);
    sched_result_free(&r);
    print_message("scheduled 4800 workers in %.3f s, rescheduled in %.3f s\n", fresh, again);
    assert_true(fresh < 1.0);
    assert_true(again < 1.0);
    free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_even_spread),
        cmocka_unit_test(test_least_loaded_first),
        cmocka_unit_test(test_sticky),
        cmocka_unit_test(test_dead_node),
        cmocka_unit_test(test_not_enough_slots),
        cmocka_unit_test(test_keep_only_and_bad_input),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_scale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
