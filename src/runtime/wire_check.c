/*
 * wire_check: rules for tuples received over TCP (see wire_check.h).
 *
 * Rules, in order: the destination task runs in this worker; the source
 * task exists and runs on the sending worker; the stream belongs to the
 * source task's component; no flags; then per kind of stream: a user stream has the
 * stream's field count and is subscribed by the destination's component;
 * acker streams (__ack_init/__ack_ack/__ack_fail) go to an acker task and
 * __ack_done comes from an acker and goes to a spout, each as a packet of
 * acking records (tuple/ackpkt.h) of that stream's kind only, for roots
 * other than 0 (root 0 is a local notice: peer_down.h) and ~0, and an
 * init record names its own spout task; tick tuples are made locally and
 * never travel.
 */
#include "runtime/wire_check.h"

#include "tuple/ackpkt.h"

/* an acking packet's records: of the stream's kind, real roots, and an
 * init naming its own spout task */
static const char *packet_check(const sd_tuple *t, unsigned kinds, int src, const char *what) {
    switch (ackpkt_check(t, kinds, src)) {
    case ACKPKT_OK: return NULL;
    case ACKPKT_ETASK: return "__ack_init names another spout task";
    case ACKPKT_EROOT: return "acking record for root 0 (a local notice) or a reserved root";
    default: return what;
    }
}

const char *wire_check(const worker_rt *rt, int peer, const sd_tuple *t) {
    const topology *topo = rt->topo;
    int dest = t->dest_task, src = t->src_task;
    if (dest < 1 || dest > topo->ntasks || !rt->task_exec[dest]) return "destination task does not run here";
    if (src < 1 || src > topo->ntasks) return "unknown source task";
    if (rt->task_worker[src] != peer) return "source task does not run on the sending worker";
    if (t->stream_id >= topo->nstreams) return "unknown stream";
    /* a tick is made by its worker; the holder's flags are cleared by decoding */
    if (t->flags) return "flags a tuple never carries between workers";
    const topo_stream *st = &topo->streams[t->stream_id];
    const topo_component *sc = rt->task_comp[src], *dc = rt->task_comp[dest];
    if (!sc || !dc || st->component != sc->index) return "stream does not belong to the source task's component";
    switch (rt->stream_kind[t->stream_id]) {
    case STREAM_USER:
        if ((int)t->nvalues != st->nfields) return "value count differs from the stream's fields";
        if (!routes_subscribed(rt, t->stream_id, dc->index)) return "stream not subscribed by the destination's component";
        return NULL;
    case STREAM_ACK_INIT:
        if (!dc->is_acker) return "malformed __ack_init";
        return packet_check(t, 1u << ACKREC_INIT, src, "malformed __ack_init");
    case STREAM_ACK_ACK:
        if (!dc->is_acker) return "malformed acker tuple";
        return packet_check(t, 1u << ACKREC_ACK, src, "malformed acker tuple");
    case STREAM_ACK_FAIL:
        if (!dc->is_acker) return "malformed acker tuple";
        return packet_check(t, 1u << ACKREC_FAIL, src, "malformed acker tuple");
    case STREAM_ACK_DONE:
        if (!sc->is_acker || dc->kind != SD_SPOUT || dc->is_acker) return "malformed __ack_done";
        return packet_check(t, 1u << ACKREC_DONE_OK | 1u << ACKREC_DONE_FAIL, src, "malformed __ack_done");
    default:
        return "system stream that never travels";
    }
}
