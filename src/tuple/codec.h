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
#include <string.h>
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
/* The same for a tuple of these values and na anchors. */
size_t codec_encoded_size_of(const sd_value *values, size_t n, size_t na);
/* Writes codec_encoded_size(t) bytes to out; returns that count. */
size_t codec_encode(const sd_tuple *t, uint8_t *out);
/* At least the encoded size of a tuple of nvalues values, whose strings and
 * bytes total data_len, and nanchors anchors, from the counts alone: a
 * value takes at most 9 bytes besides its string. Room to reserve before
 * encoding, whose result is the size. */
static inline uint64_t codec_bound(size_t nvalues, size_t nanchors, uint64_t data_len) {
    return CODEC_HEADER_BYTES + (uint64_t)nanchors * 16 + (uint64_t)nvalues * 9 + data_len;
}
/* codec_bound of t (a tuple's strings and bytes live in its data area:
 * tuple.h). */
static inline size_t codec_size_bound(const sd_tuple *t) {
    return (size_t)codec_bound(t->nvalues, t->nanchors, t->data_len);
}

/* little-endian stores: plain copies on little-endian hosts */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define CODEC_LE 1
#else
#define CODEC_LE 0
#endif
static inline void codec_put16(uint8_t *p, uint16_t v) {
    if (CODEC_LE) { memcpy(p, &v, 2); return; }
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8);
}
static inline void codec_put32(uint8_t *p, uint32_t v) {
    if (CODEC_LE) { memcpy(p, &v, 4); return; }
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void codec_put64(uint8_t *p, uint64_t v) {
    if (CODEC_LE) { memcpy(p, &v, 8); return; }
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* The header fields of an encoding besides its counts. */
typedef struct codec_head {
    int32_t dest_task, src_task;
    uint16_t stream_id, flags;
} codec_head;

/* Encodes a tuple from its parts: n values (n <= SD_MAX_FIELDS) and na
 * anchors, into out (room: codec_bound). Returns the bytes written. Inline:
 * an emit to another worker encodes its values this way, without building
 * a tuple first; codec_encode is the same for a built one. */
static inline size_t codec_encode_parts(uint8_t *out, const codec_head *h, const sd_value *values, size_t n,
                                        const tuple_anchor *anc, size_t na) {
    uint8_t *p = out;
    codec_put32(p, (uint32_t)h->dest_task);
    codec_put32(p + 4, (uint32_t)h->src_task);
    codec_put16(p + 8, h->stream_id);
    codec_put16(p + 10, h->flags);
    codec_put16(p + 12, (uint16_t)n);
    codec_put16(p + 14, (uint16_t)na);
    p += CODEC_HEADER_BYTES;
    if (CODEC_LE && sizeof(tuple_anchor) == 16) {
        /* the in-memory anchor array already is the wire layout */
        if (na) memcpy(p, anc, na * 16); /* acking off: none */
        p += na * 16;
    } else {
        for (size_t i = 0; i < na; i++, p += 16) {
            codec_put64(p, anc[i].root);
            codec_put64(p + 8, anc[i].edge);
        }
    }
    for (size_t i = 0; i < n; i++) {
        const sd_value *v = &values[i];
        *p++ = (uint8_t)v->type;
        switch (v->type) {
        case SD_NULL: break;
        case SD_BOOL: *p++ = v->v.b ? 1 : 0; break;
        case SD_INT: codec_put64(p, (uint64_t)v->v.i); p += 8; break;
        case SD_DOUBLE: {
            uint64_t bits;
            memcpy(&bits, &v->v.d, 8);
            codec_put64(p, bits);
            p += 8;
            break;
        }
        case SD_STRING:
        case SD_BYTES:
            codec_put32(p, v->v.s.len);
            if (v->v.s.len) memcpy(p + 4, v->v.s.ptr, v->v.s.len);
            p += 4 + (size_t)v->v.s.len;
            break;
        }
    }
    return (size_t)(p - out);
}

/* An encoding this process wrote (trusted, not checked): its anchor count
 * and its k-th anchor's root. For failing the trees of records that could
 * not be sent. */
uint16_t codec_peek_nanchors(const uint8_t *enc);
uint64_t codec_peek_root(const uint8_t *enc, uint16_t k);

/* Decodes exactly len bytes into a new tuple (refs = 1). With topo, stream
 * ids are checked and t->stream resolved; with topo NULL (tests) stream is
 * NULL. Returns CODEC_OK and sets *out, or a negative CODEC_E* code; never
 * reads outside buf[0..len). Does not log: the caller knows the context. */
int codec_decode(const uint8_t *buf, size_t len, const topology *topo, sd_tuple **out);
/* The same, with the tuple carved from pool (owner thread only; may be NULL). */
struct tuple_pool;
int codec_decode_in(struct tuple_pool *pool, const uint8_t *buf, size_t len, const topology *topo, sd_tuple **out);

#endif
