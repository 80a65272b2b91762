/*
 * acker: Storm's XOR acking, run by "__acker" tasks on their executor
 * thread. Per tuple tree (root id) it keeps the XOR of every edge id it has
 * been told about: the spout's init carries the XOR of the edges it
 * emitted, and each bolt ack carries the input's edge XOR the edges of its
 * children. The tree is complete when the value returns to zero after the
 * init has arrived (init and acks may arrive in any order).
 *
 * Its input is packets of acking records (tuple/ackpkt.h): the records one
 * task sent it in one slice. Its verdicts go to the spouts the same way
 * (emit_ack_record), one packet per spout task per slice.
 */
#include "runtime/emit.h"
#include "base/log.h"

#define ACK_F_INIT 1
#define ACK_F_FAILED 2
/* records whose table slots are being loaded ahead of the one handled */
#define ACK_PREFETCH 8

static void tell_spout(executor *ex, uint64_t root, int spout_task, bool ok) {
    if (ok) STAT_ADD(ex->acked, 1); /* trees completed / failed, for the statistics */
    else STAT_ADD(ex->failed, 1);
    emit_ack_record(ex, ex->sid_ack_done, spout_task, ok ? ACKREC_DONE_OK : ACKREC_DONE_FAIL, root, 0, 0);
}

static void acker_record(executor *ex, const ackrec *r) {
    if (r->root == 0 || r->root == UINT64_MAX) return;
    if (r->kind != ACKREC_INIT && r->kind != ACKREC_ACK && r->kind != ACKREC_FAIL) return;
    int created;
    u64map_rec *rec = agemap_upsert(&ex->acks, r->root, &created);
    if (!rec) {
        log_task(SD_LOG_ERROR, ex->task, "out of memory in the acker; the tree will time out");
        return;
    }
    if (r->kind == ACKREC_INIT) {
        rec->a ^= r->xor;
        rec->i = r->task;
        rec->flags |= ACK_F_INIT;
    } else if (r->kind == ACKREC_ACK) {
        rec->a ^= r->xor;
    } else {
        rec->flags |= ACK_F_FAILED;
    }
    if (!(rec->flags & ACK_F_INIT)) return; /* wait for the spout's init */
    if (rec->flags & ACK_F_FAILED) {
        tell_spout(ex, r->root, rec->i, false);
        agemap_del_rec(&ex->acks, rec);
    } else if (rec->a == 0) {
        tell_spout(ex, r->root, rec->i, true);
        agemap_del_rec(&ex->acks, rec);
    }
}

void acker_execute(executor *ex, sd_tuple *t) {
    int n = ackpkt_count(t);
    if (n <= 0) return;
    /* the statistics count records, as they counted acking tuples */
    STAT_ADD(ex->received, (uint64_t)n - 1);
    STAT_ADD(ex->executed, (uint64_t)n - 1);
    ackrec next;
    for (int i = 0; i < n && i < ACK_PREFETCH; i++) agemap_prefetch(&ex->acks, ackpkt_get_root(t, i));
    for (int i = 0; i < n; i++) {
        /* the entries of the next records load while this one is handled */
        if (i + ACK_PREFETCH < n) agemap_prefetch(&ex->acks, ackpkt_get_root(t, i + ACK_PREFETCH));
        ackpkt_get(t, i, &next);
        acker_record(ex, &next);
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
