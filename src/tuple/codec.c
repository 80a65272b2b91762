/*
 * codec: tuple <-> bytes; layout in codec.h.
 *
 * Threads: none; pure functions. Decoding validates the whole buffer first
 * (so the tuple can be allocated once, at its exact size) and then fills it.
 */
#include "tuple/codec.h"
#include "tuple/tuple_pool.h"

#include <string.h>

/* ---- little-endian loads (stores: codec.h) ---- */

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

size_t codec_encoded_size_of(const sd_value *values, size_t n, size_t na) {
    size_t size = CODEC_HEADER_BYTES + na * 16 + n;
    for (size_t i = 0; i < n; i++) {
        const sd_value *v = &values[i];
        switch (v->type) {
        case SD_NULL: break;
        case SD_BOOL: size += 1; break;
        case SD_INT:
        case SD_DOUBLE: size += 8; break;
        case SD_STRING:
        case SD_BYTES: size += 4 + (size_t)v->v.s.len; break;
        }
    }
    return size;
}

size_t codec_encoded_size(const sd_tuple *t) {
    return codec_encoded_size_of(tuple_values(t), t->nvalues, t->nanchors);
}

size_t codec_encode(const sd_tuple *t, uint8_t *out) {
    codec_head h = {t->dest_task, t->src_task, t->stream_id, (uint16_t)(t->flags & ~TUPLE_F_LOCAL)};
    return codec_encode_parts(out, &h, tuple_values(t), t->nvalues, tuple_anchors(t), t->nanchors);
}

uint16_t codec_peek_nanchors(const uint8_t *enc) { return get16(enc + 14); }

uint64_t codec_peek_root(const uint8_t *enc, uint16_t k) { return get64(enc + CODEC_HEADER_BYTES + (size_t)k * 16); }

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
    if (len - off < anchor_bytes || len - off - anchor_bytes < nvalues) return CODEC_ETRUNC;
    /* one pass: every value takes at least its type byte, so the strings
     * and bytes take at most what is left beyond those; the tuple is carved
     * that big and its data_len set to what they take */
    size_t data_max = len - off - anchor_bytes - nvalues;
    if (data_max > UINT32_MAX) return CODEC_ETRUNC; /* a frame is far below 4 GiB */
    sd_tuple *t = tuple_alloc_in(pool, nvalues, nanchors, (uint32_t)data_max);
    if (!t) return CODEC_ENOMEM;
    t->dest_task = (int32_t)get32(buf);
    t->src_task = (int32_t)get32(buf + 4);
    t->stream_id = stream_id;
    t->flags = get16(buf + 10) & (uint16_t)~TUPLE_F_LOCAL;
    t->stream = topo ? &topo->streams[stream_id] : NULL;
    for (uint16_t i = 0; i < nanchors; i++, off += 16) {
        tuple_anchors(t)[i].root = get64(buf + off);
        tuple_anchors(t)[i].edge = get64(buf + off + 8);
    }
    char *data = tuple_data(t);
    int rc = CODEC_OK;
    /* each value ends by lim, which leaves a type byte for every value
     * after it: the strings then fit in data_max */
    for (uint16_t i = 0; i < nvalues; i++) {
        size_t lim = len - (size_t)(nvalues - 1 - i);
        sd_value *v = &tuple_values(t)[i];
        uint8_t type = buf[off++];
        v->type = (sd_type)type;
        switch (type) {
        case SD_NULL: v->v.i = 0; break;
        case SD_BOOL:
            if (lim - off < 1) goto trunc;
            if (buf[off] > 1) {
                rc = CODEC_EVALUE;
                goto fail;
            }
            v->v.b = buf[off++] != 0;
            break;
        case SD_INT:
        case SD_DOUBLE:
            if (lim - off < 8) goto trunc;
            /* the same bits either way: an int's or a double's */
            v->v.i = (int64_t)get64(buf + off);
            off += 8;
            break;
        case SD_STRING:
        case SD_BYTES: {
            if (lim - off < 4) goto trunc;
            uint32_t n = get32(buf + off);
            if (lim - off - 4 < n) goto trunc;
            if (n) memcpy(data, buf + off + 4, n);
            v->v.s.ptr = data;
            v->v.s.len = n;
            data += n;
            off += 4 + (size_t)n;
            break;
        }
        default:
            rc = CODEC_ETYPE;
            goto fail;
        }
    }
    if (off != len) {
        rc = CODEC_ETRAILING;
        goto fail;
    }
    t->data_len = (uint32_t)(data - tuple_data(t));
    *out = t;
    return CODEC_OK;
trunc:
    rc = CODEC_ETRUNC;
fail:
    tuple_unref(t);
    return rc;
}
