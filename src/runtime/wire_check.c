/*
 * wire_check: rules for tuples received over TCP (see wire_check.h).
 *
 * Rules, in order: the destination task runs in this worker; the source
 * task exists and runs on the sending worker; the stream belongs to the
 * source task's component; the value count is the stream's field count;
 * then per kind of stream: a user stream is subscribed by the destination's
 * component; acker streams (__ack_init/__ack_ack/__ack_fail) go to an acker
 * task with integer values, and __ack_init names its own spout task;
 * __ack_done comes from an acker, goes to a spout, and carries (int, bool)
 * with a root other than 0 (root 0 is a local notice: peer_down.h);
 * tick tuples are made locally and never travel.
 */
#include "runtime/wire_check.h"

static bool all_ints(const sd_tuple *t) {
    for (uint32_t i = 0; i < t->nvalues; i++)
        if (t->values[i].type != SD_INT) return false;
    return true;
}

const char *wire_check(const worker_rt *rt, int peer, const sd_tuple *t) {
    const topology *topo = rt->topo;
    int dest = t->dest_task, src = t->src_task;
    if (dest < 1 || dest > topo->ntasks || !rt->task_exec[dest]) return "destination task does not run here";
    if (src < 1 || src > topo->ntasks) return "unknown source task";
    if (rt->task_worker[src] != peer) return "source task does not run on the sending worker";
    if (t->stream_id >= topo->nstreams) return "unknown stream";
    const topo_stream *st = &topo->streams[t->stream_id];
    const topo_component *sc = rt->task_comp[src], *dc = rt->task_comp[dest];
    if (!sc || !dc || st->component != sc->index) return "stream does not belong to the source task's component";
    if ((int)t->nvalues != st->nfields) return "value count differs from the stream's fields";
    switch (rt->stream_kind[t->stream_id]) {
    case STREAM_USER:
        if (!routes_subscribed(rt, t->stream_id, dc->index)) return "stream not subscribed by the destination's component";
        return NULL;
    case STREAM_ACK_INIT:
        if (!dc->is_acker || !all_ints(t)) return "malformed __ack_init";
        if (t->values[2].v.i != src) return "__ack_init names another spout task";
        return NULL;
    case STREAM_ACK_ACK:
    case STREAM_ACK_FAIL:
        if (!dc->is_acker || !all_ints(t)) return "malformed acker tuple";
        return NULL;
    case STREAM_ACK_DONE:
        if (!sc->is_acker || dc->kind != SD_SPOUT || dc->is_acker || t->nvalues != 2 ||
            t->values[0].type != SD_INT || t->values[1].type != SD_BOOL)
            return "malformed __ack_done";
        if (t->values[0].v.i == 0) return "__ack_done for root 0 (a local notice) never travels";
        return NULL;
    default:
        return "system stream that never travels";
    }
}
