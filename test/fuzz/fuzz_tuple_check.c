/*
 * libFuzzer target: a tuple record as a peer sends it, decoded by the codec
 * and judged by wire_check (src/runtime/wire_check.c) as worker 1 of the
 * word count test topology on two workers. Neither may crash; a tuple that
 * wire_check accepts must satisfy what routing relies on (its destination
 * runs here, its source task and stream exist, a user tuple's value count
 * matches the stream, an acking tuple is a packet of records of its
 * stream's kind and an init record names its own source task): a violation
 * traps.
 * The first input byte picks the sending worker (0..2: 2 does not exist).
 * Run: tools/fuzz tuple_check
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "runtime/wire_check.h"
#include "../wire_check_world.h"
#include "tuple/ackpkt.h"
#include "tuple/codec.h"

static topology *topo;
static worker_rt rt;
static int task_worker[64];
static struct executor *task_exec[64];


static void setup(void) {
    char err[512];
    log_set_level(SD_LOG_ERROR);
    topo = topology_load(FUZZ_DATA_DIR "/wordcount.yaml", NULL, NULL, err, sizeof err);
    if (!topo || topo->ntasks != WCW_TASKS) {
        fprintf(stderr, "fuzz_tuple_check: cannot load the test topology: %s\n", topo ? "task count" : err);
        abort();
    }
    if (wcw_layout(&rt, topo, task_worker, task_exec) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!topo) setup();
    if (size < 1) return 0;
    int peer = data[0] % 3;
    sd_tuple *t = NULL;
    if (codec_decode(data + 1, size - 1, topo, &t) != CODEC_OK) return 0;
    const char *why = wire_check(&rt, peer, t);
    if (!why) {
        if (t->dest_task < 1 || t->dest_task > topo->ntasks || wcw_on_worker[t->dest_task] != 1) __builtin_trap();
        if (t->src_task < 1 || t->src_task > topo->ntasks || wcw_on_worker[t->src_task] != peer) __builtin_trap();
        if (t->stream_id >= topo->nstreams) __builtin_trap();
        const topo_stream *st = &topo->streams[t->stream_id];
        if (!st->system && (int)t->nvalues != st->nfields) __builtin_trap();
        if (st->system) {
            int n = ackpkt_count(t);
            if (n < 1) __builtin_trap();
            bool init = strcmp(st->name, "__ack_init") == 0, done = strcmp(st->name, "__ack_done") == 0;
            for (int i = 0; i < n; i++) {
                ackrec r;
                ackpkt_get(t, i, &r);
                if (r.root == 0 || r.root == UINT64_MAX) __builtin_trap();
                if (init && (r.kind != ACKREC_INIT || r.task != t->src_task)) __builtin_trap();
                if (done && r.kind != ACKREC_DONE_OK && r.kind != ACKREC_DONE_FAIL) __builtin_trap();
                if (!init && !done && r.kind != ACKREC_ACK && r.kind != ACKREC_FAIL) __builtin_trap();
            }
        }
    }
    tuple_unref(t);
    return 0;
}
