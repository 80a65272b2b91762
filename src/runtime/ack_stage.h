/*
 * ack_stage: the acking records a pool thread produces in one slice, held
 * per (source task, destination task, stream) until the slice flushes them
 * as packets (tuple/ackpkt.h): one tuple per destination and flush instead
 * of one per record. Acks of one root from one task in one slice (a bolt
 * that took several tuples of one tree, e.g. the words of one sentence)
 * are XORed into one record, which is what the acker would compute from
 * them one by one.
 *
 * Used by emit.c, on the pool thread that owns the stage (one per
 * exec_thread): ack_stage_add while a task runs, ack_stage_flush from
 * emit_flush. Records are sent through the caller's send function, with
 * the src pointer they were added with.
 */
#ifndef SD_ACK_STAGE_H
#define SD_ACK_STAGE_H

#include <stddef.h>
#include <stdint.h>

#include "tuple/ackpkt.h"

/* Sends n records (1..ACKPKT_MAX_RECS) from src to task dest on stream. */
typedef void (*ack_stage_send_fn)(void *arg, void *src, int dest, int stream, const ackrec *recs, size_t n);

/* destinations one stage holds at once; beyond, the oldest is sent early */
#define ACK_STAGE_SLOTS 8
/* slots of a slot's root index: a power of two, twice its records */
#define ACK_STAGE_INDEX (2 * ACKPKT_MAX_RECS)

typedef struct ack_slot {
    void *src;
    int dest, stream;
    uint32_t n;
    uint32_t gen;                       /* index entries of this generation are live */
    ackrec recs[ACKPKT_MAX_RECS];
    uint32_t index_gen[ACK_STAGE_INDEX]; /* ACK records by root: live when == gen */
    uint16_t index_rec[ACK_STAGE_INDEX];
} ack_slot;

typedef struct ack_stage {
    ack_slot *slots[ACK_STAGE_SLOTS]; /* allocated on first use */
    int nslots;                       /* in use, holding records: slots[0..nslots) */
    int last;                         /* the slot added to last */
    int victim;                       /* the next slot sent early when all are in use */
    ack_stage_send_fn send;
    void *arg;
} ack_stage;

void ack_stage_init(ack_stage *s, ack_stage_send_fn send, void *arg);
/* Frees the slots; records still held are dropped (their trees time out). */
void ack_stage_destroy(ack_stage *s);
/* Holds r for dest; sends the slot first when it is full. Without memory
 * for a slot, r is sent alone at once. */
void ack_stage_add(ack_stage *s, void *src, int dest, int stream, const ackrec *r);
/* Sends every record held, one packet per slot. */
void ack_stage_flush(ack_stage *s);
/* Records held (for tests and checks). */
size_t ack_stage_held(const ack_stage *s);

#endif
