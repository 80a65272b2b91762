/*
 * acker: Storm's XOR acking, run by "__acker" tasks on their executor
 * thread. Per tuple tree (root id) it keeps the XOR of every edge id it has
 * been told about: the spout's init carries the XOR of the edges it
 * emitted, and each bolt ack carries the input's edge XOR the edges of its
 * children. The tree is complete when the value returns to zero after the
 * init has arrived (init and acks may arrive in any order).
 */
#include "runtime/emit.h"
#include "base/log.h"

#define ACK_F_INIT 1
#define ACK_F_FAILED 2

static void tell_spout(executor *ex, uint64_t root, int spout_task, bool ok) {
    if (ok) STAT_ADD(ex->acked, 1); /* trees completed / failed, for the statistics */
    else STAT_ADD(ex->failed, 1);
    sd_value v[2] = {sd_int((int64_t)root), sd_bool(ok)};
    emit_system(ex, ex->sid_ack_done, spout_task, v, 2);
}

void acker_execute(executor *ex, sd_tuple *t) {
    if (t->nvalues < 1 || t->values[0].type != SD_INT) return;
    uint64_t root = (uint64_t)t->values[0].v.i;
    if (root == 0 || root == UINT64_MAX) return;
    int kind = ex->rt->stream_kind[t->stream_id];
    int created;
    u64map_rec *rec = agemap_upsert(&ex->acks, root, &created);
    if (!rec) {
        log_task(SD_LOG_ERROR, ex->task, "out of memory in the acker; the tree will time out");
        return;
    }
    switch (kind) {
    case STREAM_ACK_INIT:
        if (t->nvalues < 3) return;
        rec->a ^= (uint64_t)t->values[1].v.i;
        rec->i = (int32_t)t->values[2].v.i;
        rec->flags |= ACK_F_INIT;
        break;
    case STREAM_ACK_ACK:
        if (t->nvalues < 2) return;
        rec->a ^= (uint64_t)t->values[1].v.i;
        break;
    case STREAM_ACK_FAIL:
        rec->flags |= ACK_F_FAILED;
        break;
    default:
        return;
    }
    if (!(rec->flags & ACK_F_INIT)) return; /* wait for the spout's init */
    if (rec->flags & ACK_F_FAILED) {
        tell_spout(ex, root, rec->i, false);
        agemap_del(&ex->acks, root);
    } else if (rec->a == 0) {
        tell_spout(ex, root, rec->i, true);
        agemap_del(&ex->acks, root);
    }
}

/* Trees older than the message timeout have been failed by their spout
 * already; forgetting them bounds the table. The table's generations are
 * one timeout (+1 s) long, so a tree is forgotten between one and two
 * timeouts after it began, without a scan. */
void acker_expire(executor *ex, int64_t now) {
    size_t n = agemap_expire(&ex->acks, now);
    if (n) log_task(SD_LOG_DEBUG, ex->task, "forgot %zu tuple trees older than the message timeout", n);
}
