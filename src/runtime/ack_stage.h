/*
 * ack_stage: the acking records a pool thread produces in one slice, held
 * per (source task, destination task, stream) until the slice flushes them
 * as packets (tuple/ackpkt.h): one tuple per destination and flush instead
 * of one per record. An ack of a root right after a record of the same
 * root (an ack or the spout's init) is XORed into that record, which is
 * what the acker would compute from them one by one: a bolt taking the
 * tuples of one tree one after the other (the words of one sentence), or
 * a chain whose tasks run one inside the other's emit (emit.c), whose
 * spout's init and every chained task's ack become one record, its XOR
 * zero when the chain has completed the tree. The acker reads a packet's
 * source only to check it (an init from a spout task, an ack from a
 * bolt), and a merged record stays in the packet of the record it joined.
 *
 * Used by emit.c, on the pool thread that owns the stage (one per
 * exec_thread): ack_stage_add while a task runs, ack_stage_flush from
 * emit_flush. Records are sent through the caller's send function, with
 * the src pointer they were added with. A slot holds few records, so that
 * the ones being written stay in the core's first-level cache.
 */
#ifndef SD_ACK_STAGE_H
#define SD_ACK_STAGE_H

#include <stddef.h>
#include <stdint.h>

#include "tuple/ackpkt.h"

/* Sends n records (1..ACK_STAGE_RECS) from src to task dest on stream. */
typedef void (*ack_stage_send_fn)(void *arg, void *src, int dest, int stream, const ackrec *recs, size_t n);

/* destinations one stage holds at once; beyond, the oldest is sent early */
#define ACK_STAGE_SLOTS 8
/* records a slot holds before it is sent (a packet's most, or fewer) */
#define ACK_STAGE_RECS 64
_Static_assert(ACK_STAGE_RECS <= ACKPKT_MAX_RECS, "a full slot fits one packet");

typedef struct ack_slot {
    void *src;
    int dest, stream;
    uint32_t n;
    ackrec recs[ACK_STAGE_RECS];
} ack_slot;

typedef struct ack_stage {
    ack_slot *cur;                    /* the slot added to last (NULL: none) */
    int nslots;                       /* in use, holding records: slots[0..nslots) */
    int victim;                       /* the next slot sent early when all are in use */
    ack_stage_send_fn send;
    void *arg;
    ack_slot slots[ACK_STAGE_SLOTS];
} ack_stage;

void ack_stage_init(ack_stage *s, ack_stage_send_fn send, void *arg);
/* Drops the records still held (their trees time out). */
void ack_stage_destroy(ack_stage *s);
/* ack_stage_add's path when r does not go into the current slot. */
void ack_stage_add_slow(ack_stage *s, void *src, int dest, int stream, const ackrec *r);
/* Sends every record held, one packet per slot. */
void ack_stage_flush(ack_stage *s);
/* Records held (for tests and checks). */
size_t ack_stage_held(const ack_stage *s);

/* Holds the record (kind, root, xor, task) for dest (sends the slot first
 * when it is full). Inline, field by field: one call per acking record. */
static inline void ack_stage_add(ack_stage *s, void *src, int dest, int stream, uint32_t kind, uint64_t root,
                                 uint64_t xor, int32_t task) {
    ack_slot *sl = s->cur;
    if (sl && sl->dest == dest) {
        ackrec *last = &sl->recs[sl->n - 1]; /* a current slot holds a record */
        if (kind == ACKREC_ACK && last->root == root && (last->kind == ACKREC_ACK || last->kind == ACKREC_INIT)) {
            last->xor ^= xor; /* from this source or another */
            return;
        }
        if (sl->src == src && sl->stream == stream && sl->n < ACK_STAGE_RECS) {
            ackrec *r = &sl->recs[sl->n++];
            r->root = root;
            r->xor = xor;
            r->task = task;
            r->kind = kind;
            return;
        }
    }
    ackrec r = {.root = root, .xor = xor, .task = task, .kind = kind};
    ack_stage_add_slow(s, src, dest, stream, &r);
}

#endif
