/*
 * codec: tuple <-> bytes; layout in codec.h.
 *
 * Threads: none; pure functions. Decoding validates the whole buffer first
 * (so the tuple can be allocated once, at its exact size) and then fills it.
 */
#include "tuple/codec.h"
#include "tuple/tuple_pool.h"

#include <string.h>

/* ---- little-endian loads/stores: plain memcpy on little-endian hosts --- */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define CODEC_LE 1
#else
#define CODEC_LE 0
#endif

static inline void put16(uint8_t *p, uint16_t v) {
    if (CODEC_LE) { memcpy(p, &v, 2); return; }
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8);
}
static inline void put32(uint8_t *p, uint32_t v) {
    if (CODEC_LE) { memcpy(p, &v, 4); return; }
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put64(uint8_t *p, uint64_t v) {
    if (CODEC_LE) { memcpy(p, &v, 8); return; }
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t get16(const uint8_t *p) {
    if (CODEC_LE) { uint16_t v; memcpy(&v, p, 2); return v; }
    return (uint16_t)(p[0] | p[1] << 8);
}
static inline uint32_t get32(const uint8_t *p) {
    if (CODEC_LE) { uint32_t v; memcpy(&v, p, 4); return v; }
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static inline uint64_t get64(const uint8_t *p) {
    if (CODEC_LE) { uint64_t v; memcpy(&v, p, 8); return v; }
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

const char *codec_strerror(int err) {
    switch (err) {
    case CODEC_OK: return "ok";
    case CODEC_ETRUNC: return "truncated tuple";
    case CODEC_ETRAILING: return "trailing bytes after tuple";
    case CODEC_ETYPE: return "unknown value type";
    case CODEC_ECOUNT: return "too many values";
    case CODEC_EVALUE: return "malformed value";
    case CODEC_ESTREAM: return "unknown stream id";
    case CODEC_ENOMEM: return "out of memory";
    }
    return "unknown codec error";
}

size_t codec_encoded_size(const sd_tuple *t) {
    size_t n = CODEC_HEADER_BYTES + (size_t)t->nanchors * 16 + t->nvalues;
    for (uint16_t i = 0; i < t->nvalues; i++) {
        const sd_value *v = &tuple_values(t)[i];
        switch (v->type) {
        case SD_NULL: break;
        case SD_BOOL: n += 1; break;
        case SD_INT:
        case SD_DOUBLE: n += 8; break;
        case SD_STRING:
        case SD_BYTES: n += 4 + (size_t)v->v.s.len; break;
        }
    }
    return n;
}

size_t codec_encode(const sd_tuple *t, uint8_t *out) {
    uint8_t *p = out;
    put32(p, (uint32_t)t->dest_task);
    put32(p + 4, (uint32_t)t->src_task);
    put16(p + 8, t->stream_id);
    put16(p + 10, t->flags);
    put16(p + 12, t->nvalues);
    put16(p + 14, t->nanchors);
    p += CODEC_HEADER_BYTES;
    if (CODEC_LE && sizeof(tuple_anchor) == 16) {
        /* the in-memory anchor array already is the wire layout */
        if (t->nanchors) memcpy(p, tuple_anchors(t), (size_t)t->nanchors * 16); /* acking off: none */
        p += (size_t)t->nanchors * 16;
    } else {
        for (uint16_t i = 0; i < t->nanchors; i++, p += 16) {
            put64(p, tuple_anchors(t)[i].root);
            put64(p + 8, tuple_anchors(t)[i].edge);
        }
    }
    for (uint16_t i = 0; i < t->nvalues; i++) {
        const sd_value *v = &tuple_values(t)[i];
        *p++ = (uint8_t)v->type;
        switch (v->type) {
        case SD_NULL: break;
        case SD_BOOL: *p++ = v->v.b ? 1 : 0; break;
        case SD_INT: put64(p, (uint64_t)v->v.i); p += 8; break;
        case SD_DOUBLE: {
            uint64_t bits;
            memcpy(&bits, &v->v.d, 8);
            put64(p, bits);
            p += 8;
            break;
        }
        case SD_STRING:
        case SD_BYTES:
            put32(p, v->v.s.len);
            if (v->v.s.len) memcpy(p + 4, v->v.s.ptr, v->v.s.len);
            p += 4 + (size_t)v->v.s.len;
            break;
        }
    }
    return (size_t)(p - out);
}

/* First pass: checks the values area buf[off..len) and sums the data bytes. */
static int scan_values(const uint8_t *buf, size_t len, size_t off, uint16_t nvalues, uint64_t *data_len) {
    uint64_t data = 0;
    for (uint16_t i = 0; i < nvalues; i++) {
        if (off >= len) return CODEC_ETRUNC;
        uint8_t type = buf[off++];
        size_t need;
        switch (type) {
        case SD_NULL: need = 0; break;
        case SD_BOOL:
            if (off >= len) return CODEC_ETRUNC;
            if (buf[off] > 1) return CODEC_EVALUE;
            need = 1;
            break;
        case SD_INT:
        case SD_DOUBLE: need = 8; break;
        case SD_STRING:
        case SD_BYTES:
            if (len - off < 4) return CODEC_ETRUNC;
            need = 4 + (size_t)get32(buf + off);
            data += need - 4;
            break;
        default: return CODEC_ETYPE;
        }
        if (len - off < need) return CODEC_ETRUNC;
        off += need;
    }
    if (off != len) return CODEC_ETRAILING;
    *data_len = data;
    return CODEC_OK;
}

int codec_decode(const uint8_t *buf, size_t len, const topology *topo, sd_tuple **out) {
    return codec_decode_in(NULL, buf, len, topo, out);
}

int codec_decode_in(tuple_pool *pool, const uint8_t *buf, size_t len, const topology *topo, sd_tuple **out) {
    *out = NULL;
    if (len < CODEC_HEADER_BYTES) return CODEC_ETRUNC;
    uint16_t stream_id = get16(buf + 8);
    uint16_t nvalues = get16(buf + 12);
    uint16_t nanchors = get16(buf + 14);
    if (nvalues > SD_MAX_FIELDS) return CODEC_ECOUNT;
    if (topo && stream_id >= topo->nstreams) return CODEC_ESTREAM;
    size_t off = CODEC_HEADER_BYTES;
    size_t anchor_bytes = (size_t)nanchors * 16;
    if (len - off < anchor_bytes) return CODEC_ETRUNC;
    uint64_t data_len = 0;
    int rc = scan_values(buf, len, off + anchor_bytes, nvalues, &data_len);
    if (rc != CODEC_OK) return rc;
    /* data_len < len <= SIZE_MAX; a frame is far below 4 GiB but check anyway */
    if (data_len > UINT32_MAX) return CODEC_ETRUNC;

    sd_tuple *t = tuple_alloc_in(pool, nvalues, nanchors, (uint32_t)data_len);
    if (!t) return CODEC_ENOMEM;
    t->dest_task = (int32_t)get32(buf);
    t->src_task = (int32_t)get32(buf + 4);
    t->stream_id = stream_id;
    t->flags = get16(buf + 10) & (uint16_t) ~(TUPLE_F_DONE | TUPLE_F_UNSENT); /* a holder's own state, never sent */
    t->stream = topo ? &topo->streams[stream_id] : NULL;
    for (uint16_t i = 0; i < nanchors; i++, off += 16) {
        tuple_anchors(t)[i].root = get64(buf + off);
        tuple_anchors(t)[i].edge = get64(buf + off + 8);
    }
    char *data = tuple_data(t);
    for (uint16_t i = 0; i < nvalues; i++) {
        sd_value *v = &tuple_values(t)[i];
        v->type = (sd_type)buf[off++];
        switch (v->type) {
        case SD_NULL: v->v.i = 0; break;
        case SD_BOOL: v->v.b = buf[off++] != 0; break;
        case SD_INT: v->v.i = (int64_t)get64(buf + off); off += 8; break;
        case SD_DOUBLE: {
            uint64_t bits = get64(buf + off);
            memcpy(&v->v.d, &bits, 8);
            off += 8;
            break;
        }
        case SD_STRING:
        case SD_BYTES: {
            uint32_t n = get32(buf + off);
            if (n) memcpy(data, buf + off + 4, n);
            v->v.s.ptr = data;
            v->v.s.len = n;
            data += n;
            off += 4 + (size_t)n;
            break;
        }
        }
    }
    *out = t;
    return CODEC_OK;
}
