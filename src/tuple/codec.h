/*
 * codec: the binary encoding of one tuple on the wire, and back.
 *
 * Layout, all integers little-endian, fixed width:
 *   i32 dest_task, i32 src_task, u16 stream_id, u16 flags,
 *   u16 nvalues (<= SD_MAX_FIELDS), u16 nanchors,
 *   nanchors x (u64 root, u64 edge),
 *   nvalues x (u8 type, payload): null -, bool u8 (0|1), int i64,
 *     double 8 bytes (IEEE-754 bits), string/bytes u32 len + len bytes.
 * The encoding carries no length of its own: the caller (a frame's batch)
 * delimits it, and the decoder requires the buffer to be consumed exactly.
 *
 * Threads: pure functions, callable from any thread.
 */
#ifndef SD_CODEC_H
#define SD_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include "tuple/tuple.h"
#include "topology/topology.h"

#define CODEC_HEADER_BYTES 16
#define CODEC_MAX_ANCHORS 65535

enum {
    CODEC_OK = 0,
    CODEC_ETRUNC = -1,   /* buffer ends inside the tuple */
    CODEC_ETRAILING = -2,/* bytes left after the last value */
    CODEC_ETYPE = -3,    /* unknown value type */
    CODEC_ECOUNT = -4,   /* too many values */
    CODEC_EVALUE = -5,   /* malformed value (e.g. bool not 0/1) */
    CODEC_ESTREAM = -6,  /* stream id unknown to the topology */
    CODEC_ENOMEM = -7,
};
const char *codec_strerror(int err);

/* Exact number of bytes codec_encode writes for t. */
size_t codec_encoded_size(const sd_tuple *t);
/* Writes codec_encoded_size(t) bytes to out; returns that count. */
size_t codec_encode(const sd_tuple *t, uint8_t *out);
/* At least codec_encoded_size(t), from the counts alone: a value takes at
 * most 9 bytes besides its share of t->data_len (a tuple's strings and
 * bytes live in its data area: tuple.h). Room to reserve before
 * codec_encode, whose result is the size. */
static inline size_t codec_size_bound(const sd_tuple *t) {
    return CODEC_HEADER_BYTES + (size_t)t->nanchors * 16 + (size_t)t->nvalues * 9 + t->data_len;
}

/* Decodes exactly len bytes into a new tuple (refs = 1). With topo, stream
 * ids are checked and t->stream resolved; with topo NULL (tests) stream is
 * NULL. Returns CODEC_OK and sets *out, or a negative CODEC_E* code; never
 * reads outside buf[0..len). Does not log: the caller knows the context. */
int codec_decode(const uint8_t *buf, size_t len, const topology *topo, sd_tuple **out);
/* The same, with the tuple carved from pool (owner thread only; may be NULL). */
struct tuple_pool;
int codec_decode_in(struct tuple_pool *pool, const uint8_t *buf, size_t len, const topology *topo, sd_tuple **out);

#endif
