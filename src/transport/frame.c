/*
 * frame: framing, lz4 and the handshake of the wire protocol; see frame.h.
 *
 * Threads: none of its own. A frame_reader is owned by one connection.
 */
#include "transport/frame.h"

#include <lz4.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

static inline void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

const char *frame_strerror(int err) {
    switch (err) {
    case FRAME_NEED_MORE: return "need more bytes";
    case FRAME_READY: return "ready";
    case FRAME_ELENGTH: return "inconsistent frame lengths";
    case FRAME_EOVERSIZE: return "frame larger than the maximum";
    case FRAME_ELZ4: return "bad lz4 payload";
    case FRAME_ETYPE: return "unknown frame type";
    case FRAME_EFLAGS: return "unknown frame flags";
    case FRAME_ENOMEM: return "out of memory";
    case FRAME_EMAGIC: return "bad handshake magic";
    case FRAME_EVERSION: return "unsupported protocol version";
    case FRAME_ETOPOLOGY: return "peer belongs to another topology";
    case FRAME_EHANDSHAKE: return "malformed handshake";
    case FRAME_EPACKAGE: return "peer runs other topology contents (package hash differs)";
    }
    return "unknown frame error";
}

void frame_header_write(uint8_t *out, uint8_t type, uint8_t flags, uint32_t payload_len, uint32_t raw_len) {
    put32(out, payload_len);
    out[4] = type;
    out[5] = flags;
    put16(out + 6, 0);
    put32(out + 8, raw_len);
}

size_t frame_lz4_bound(size_t len) {
    if (len > (size_t)LZ4_MAX_INPUT_SIZE) return 0;
    return (size_t)LZ4_compressBound((int)len);
}

size_t frame_lz4_compress(const uint8_t *src, size_t len, uint8_t *dst, size_t cap) {
    if (len == 0 || len > (size_t)LZ4_MAX_INPUT_SIZE || cap > (size_t)INT32_MAX) return 0;
    int n = LZ4_compress_default((const char *)src, (char *)dst, (int)len, (int)cap);
    if (n <= 0 || (size_t)n >= len) return 0;
    return (size_t)n;
}

int frame_build(uint8_t type, const void *payload, size_t len, size_t lz4_threshold, uint8_t **out,
                size_t *out_len) {
    *out = NULL;
    if (len > UINT32_MAX) {
        log_error("frame: payload of %zu bytes is too large", len);
        return -1;
    }
    bool try_lz4 = lz4_threshold > 0 && len >= lz4_threshold && frame_lz4_bound(len) > 0;
    size_t room = try_lz4 ? frame_lz4_bound(len) : len;
    if (room < len) room = len;
    uint8_t *buf = malloc(FRAME_HEADER_BYTES + room);
    if (!buf) {
        log_error("frame: out of memory for a %zu-byte frame", len);
        return -1;
    }
    size_t clen = try_lz4 ? frame_lz4_compress(payload, len, buf + FRAME_HEADER_BYTES, room) : 0;
    if (clen) {
        frame_header_write(buf, type, FRAME_F_LZ4, (uint32_t)clen, (uint32_t)len);
    } else {
        if (len) memcpy(buf + FRAME_HEADER_BYTES, payload, len);
        frame_header_write(buf, type, 0, (uint32_t)len, (uint32_t)len);
        clen = len;
    }
    *out = buf;
    *out_len = FRAME_HEADER_BYTES + clen;
    return 0;
}

size_t frame_hello_encode(uint8_t *out, size_t cap, const frame_hello *h) {
    size_t idlen = strlen(h->topology_id);
    size_t need = 10 + idlen + 64 + (h->has_proof ? 32 : 0);
    if (idlen > FRAME_MAX_TOPOLOGY_ID || h->worker_index < 0 || h->worker_index > UINT16_MAX || cap < need) return 0;
    put32(out, FRAME_MAGIC);
    put16(out + 4, FRAME_VERSION);
    put16(out + 6, (uint16_t)h->worker_index);
    put16(out + 8, (uint16_t)idlen);
    memcpy(out + 10, h->topology_id, idlen);
    memcpy(out + 10 + idlen, h->nonce, 32);
    memcpy(out + 42 + idlen, h->hash, 32);
    if (h->has_proof) memcpy(out + 74 + idlen, h->proof, 32);
    return need;
}

int frame_hello_check(const uint8_t *p, size_t len, const char *topology_id, const uint8_t hash[32], frame_hello *h) {
    if (len < 4) return FRAME_EHANDSHAKE;
    if (get32(p) != FRAME_MAGIC) return FRAME_EMAGIC;
    if (len < 10) return FRAME_EHANDSHAKE;
    if (get16(p + 4) != FRAME_VERSION) return FRAME_EVERSION;
    size_t idlen = get16(p + 8);
    if (idlen > FRAME_MAX_TOPOLOGY_ID || (len != 74 + idlen && len != 106 + idlen)) return FRAME_EHANDSHAKE;
    if (idlen != strlen(topology_id) || memcmp(p + 10, topology_id, idlen) != 0) return FRAME_ETOPOLOGY;
    if (memcmp(p + 42 + idlen, hash, 32) != 0) return FRAME_EPACKAGE;
    memset(h, 0, sizeof *h);
    h->worker_index = get16(p + 6);
    memcpy(h->nonce, p + 10 + idlen, 32);
    memcpy(h->hash, p + 42 + idlen, 32);
    h->has_proof = len == 106 + idlen;
    if (h->has_proof) memcpy(h->proof, p + 74 + idlen, 32);
    return 0;
}

uint32_t frame_batch_count(const uint8_t *records, size_t len, size_t limit) {
    uint32_t n = 0;
    size_t off = 0, cur = 0, rl;
    const uint8_t *rec;
    while (frame_batch_next(records, len, &off, &rec, &rl) == 1) {
        if (cur > 0 && cur + 4 + rl > limit) {
            n++;
            cur = 0;
        }
        cur += 4 + rl;
    }
    return n + (cur > 0);
}

/* one frame of records[fstart..fend) into out, compressed when that pays;
 * returns its bytes on the wire */
static size_t slice_one(const uint8_t *records, size_t fstart, size_t fend, size_t lz4_threshold, uint8_t *lz4buf,
                        size_t lz4cap, size_t *lz4_used, frame_slice *out) {
    size_t flen = fend - fstart;
    out->payload = records + fstart;
    out->len = flen;
    uint8_t flags = 0;
    if (lz4buf && lz4_threshold > 0 && flen >= lz4_threshold) {
        size_t clen = frame_lz4_compress(records + fstart, flen, lz4buf + *lz4_used, lz4cap - *lz4_used);
        if (clen) {
            out->payload = lz4buf + *lz4_used;
            out->len = clen;
            flags = FRAME_F_LZ4;
            *lz4_used += clen;
        }
    }
    frame_header_write(out->header, FRAME_BATCH, flags, (uint32_t)out->len, (uint32_t)flen);
    return FRAME_HEADER_BYTES + out->len;
}

size_t frame_batch_cut(const uint8_t *records, size_t len, size_t limit, size_t lz4_threshold,
                       uint8_t *lz4buf, size_t lz4cap, frame_slice *out) {
    size_t off = 0, fstart = 0, lz4_used = 0, wire = 0, rl;
    const uint8_t *rec;
    for (;;) {
        size_t prev = off;
        int more = frame_batch_next(records, len, &off, &rec, &rl);
        /* close the current frame before a record that would overflow it, and at the end;
         * the same rule as frame_batch_count */
        bool cut = more != 1 ? prev > fstart : (prev > fstart && off - fstart > limit);
        if (cut) {
            wire += slice_one(records, fstart, prev, lz4_threshold, lz4buf, lz4cap, &lz4_used, out++);
            fstart = prev;
        }
        if (more != 1) return wire;
    }
}

size_t frame_batch_cut_at(const uint8_t *records, size_t len, const size_t *cuts, uint32_t ncuts,
                          size_t lz4_threshold, uint8_t *lz4buf, size_t lz4cap, frame_slice *out) {
    size_t lz4_used = 0, wire = 0, fstart = 0;
    for (uint32_t f = 0; f <= ncuts; f++) {
        size_t fend = f < ncuts ? cuts[f] : len;
        wire += slice_one(records, fstart, fend, lz4_threshold, lz4buf, lz4cap, &lz4_used, out++);
        fstart = fend;
    }
    return wire;
}

/* ---- reader ------------------------------------------------------------ */

void frame_reader_init(frame_reader *r, size_t max_frame) {
    memset(r, 0, sizeof *r);
    /* lz4 block sizes are ints: larger frames could not be decompressed anyway */
    r->max_frame = max_frame > (size_t)LZ4_MAX_INPUT_SIZE ? (size_t)LZ4_MAX_INPUT_SIZE : max_frame;
}

void frame_reader_free(frame_reader *r) {
    free(r->buf);
    free(r->raw);
    memset(r, 0, sizeof *r);
}

int frame_reader_room(frame_reader *r, size_t want, uint8_t **out, size_t *room) {
    if (r->start == r->len) {
        r->start = r->len = 0;
    } else if (r->start > 0 && r->len + want > r->cap && r->start >= r->len - r->start) {
        /* reclaim the consumed prefix before growing, when it is at least
         * as big as what is moved: a reader holding much unconsumed input
         * (its destination paused) would otherwise move all of it on every
         * read; so each byte is moved about once */
        memmove(r->buf, r->buf + r->start, r->len - r->start);
        r->len -= r->start;
        r->start = 0;
    }
    if (r->len + want > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + want) cap *= 2;
        uint8_t *b = realloc(r->buf, cap);
        if (!b) {
            log_error("frame: out of memory growing a reader to %zu bytes", cap);
            return FRAME_ENOMEM;
        }
        r->buf = b;
        r->cap = cap;
    }
    *out = r->buf + r->len;
    *room = r->cap - r->len;
    return 0;
}

void frame_reader_commit(frame_reader *r, size_t n) { r->len += n; }

int frame_reader_push(frame_reader *r, const void *data, size_t n) {
    if (n == 0) return 0;
    uint8_t *at;
    size_t room;
    int rc = frame_reader_room(r, n, &at, &room);
    if (rc != 0) return rc;
    memcpy(at, data, n);
    frame_reader_commit(r, n);
    return 0;
}

int frame_reader_next(frame_reader *r, frame *f) {
    size_t avail = r->len - r->start;
    if (avail < FRAME_HEADER_BYTES) return FRAME_NEED_MORE;
    const uint8_t *h = r->buf + r->start;
    size_t plen = get32(h), rawlen = get32(h + 8);
    uint8_t type = h[4], flags = h[5];
    /* validate the header before waiting for a payload we would reject */
    if (type < FRAME_HANDSHAKE || type > FRAME_SHM_ROOM)
        return FRAME_ETYPE;
    if ((flags & ~FRAME_F_LZ4) != 0 || get16(h + 6) != 0) return FRAME_EFLAGS;
    if (plen > r->max_frame || rawlen > r->max_frame) return FRAME_EOVERSIZE;
    if (flags & FRAME_F_LZ4) {
        if (rawlen == 0 || plen == 0 || plen > frame_lz4_bound(rawlen)) return FRAME_ELENGTH;
    } else if (plen != rawlen) {
        return FRAME_ELENGTH;
    }
    if (avail - FRAME_HEADER_BYTES < plen) return FRAME_NEED_MORE;
    const uint8_t *payload = h + FRAME_HEADER_BYTES;
    f->type = type;
    f->flags = flags;
    if (flags & FRAME_F_LZ4) {
        if (r->raw_cap < rawlen) {
            uint8_t *b = realloc(r->raw, rawlen);
            if (!b) {
                log_error("frame: out of memory for a %zu-byte decompression buffer", rawlen);
                return FRAME_ENOMEM;
            }
            r->raw = b;
            r->raw_cap = rawlen;
        }
        int n = LZ4_decompress_safe((const char *)payload, (char *)r->raw, (int)plen, (int)rawlen);
        if (n < 0 || (size_t)n != rawlen) return FRAME_ELZ4;
        f->payload = r->raw;
    } else {
        f->payload = payload;
    }
    f->len = rawlen;
    r->start += FRAME_HEADER_BYTES + plen;
    return FRAME_READY;
}
