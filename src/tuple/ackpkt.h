/*
 * ackpkt: the compact acking record and the packet tuple that carries a run
 * of them. Acking traffic (a spout's init, a bolt's ack or fail, an acker's
 * verdict) is three numbers per tree, not a data tuple: the records bound
 * for one task from one task in one slice travel as one tuple on an acker
 * stream whose only value is a bytes value of ACKPKT_REC_BYTES-byte
 * records. The packet goes through the batches, queues and transport as
 * any tuple; on the wire the codec carries its bytes value as is.
 *
 * Record layout (little-endian, fixed width, ACKPKT_REC_BYTES bytes):
 *   u64 root, u64 xor, i32 task, u32 kind (ACKREC_*).
 * root: the tree; xor: edge ids to XOR into it (INIT, ACK); task: the
 * spout task of the tree (INIT), else 0.
 *
 * Users: emit.c and acker.c build packets (through ack_stage.h), acker.c and
 * executor_spout.c read them, peer_down.c makes single-record notices and
 * wire_check.c judges packets from peers (ackpkt_check). Pure functions on
 * the caller's thread.
 */
#ifndef SD_ACKPKT_H
#define SD_ACKPKT_H

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tuple/tuple.h"

#define ACKPKT_REC_BYTES 24
/* most records in one packet: 6 KiB of bytes, well inside a pool slab */
#define ACKPKT_MAX_RECS 256

enum {
    ACKREC_INIT = 1,      /* spout -> acker: a new tree, XOR of its first edges */
    ACKREC_ACK = 2,       /* bolt -> acker: an input's edge XOR its children's */
    ACKREC_FAIL = 3,      /* bolt -> acker: the tree failed */
    ACKREC_DONE_OK = 4,   /* acker -> spout: the tree completed */
    ACKREC_DONE_FAIL = 5, /* acker -> spout: the tree failed */
};

typedef struct ackrec {
    uint64_t root;
    uint64_t xor;
    int32_t task;
    uint32_t kind;
} ackrec;

/* A packet of n records (1..ACKPKT_MAX_RECS) carved from pool (owner
 * thread; may be NULL), refs = 1; the caller sets its tasks and stream.
 * NULL when out of memory or n is out of range. */
struct tuple_pool;
sd_tuple *ackpkt_new(struct tuple_pool *pool, const ackrec *recs, size_t n);

/* The number of records in t when it is a well-formed packet (one bytes
 * value whose length is a non-zero multiple of ACKPKT_REC_BYTES, at most
 * ACKPKT_MAX_RECS records), else -1. Checks only the shape. */
int ackpkt_count(const sd_tuple *t);

static inline uint64_t ackpkt_le64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return le64toh(v);
}

static inline uint32_t ackpkt_le32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return le32toh(v);
}

/* Record i of a packet whose ackpkt_count is above i. */
static inline void ackpkt_get(const sd_tuple *t, int i, ackrec *r) {
    const uint8_t *p = (const uint8_t *)tuple_values(t)[0].v.s.ptr + (size_t)i * ACKPKT_REC_BYTES;
    r->root = ackpkt_le64(p);
    r->xor = ackpkt_le64(p + 8);
    r->task = (int32_t)ackpkt_le32(p + 16);
    r->kind = ackpkt_le32(p + 20);
}

/* The root of record i (for loading what it will touch ahead of it). */
static inline uint64_t ackpkt_get_root(const sd_tuple *t, int i) {
    return ackpkt_le64((const uint8_t *)tuple_values(t)[0].v.s.ptr + (size_t)i * ACKPKT_REC_BYTES);
}

/* Writes r at p in the record layout (ACKPKT_REC_BYTES bytes). */
void ackpkt_put(uint8_t *p, const ackrec *r);

enum {
    ACKPKT_OK = 0,
    ACKPKT_ESHAPE = -1, /* not one bytes value of 1..ACKPKT_MAX_RECS records */
    ACKPKT_EKIND = -2,  /* a record of a kind the stream does not carry */
    ACKPKT_EROOT = -3,  /* a record for root 0 or UINT64_MAX (never a tree) */
    ACKPKT_ETASK = -4,  /* an INIT record naming another spout task */
};
/* For packets from another process: ACKPKT_OK when t is a well-formed
 * packet whose every record has a kind in kinds (a bit mask of
 * 1 << ACKREC_*), a root that can be a tree's and, for INIT records,
 * task == init_task; else the first violated rule's ACKPKT_E* code. */
int ackpkt_check(const sd_tuple *t, unsigned kinds, int init_task);

#endif
