/*
 * frame: length-prefixed frames of the worker-to-worker protocol.
 *
 * Header (FRAME_HEADER_BYTES, little-endian):
 *   u32 payload_len   bytes that follow the header
 *   u8  type          FRAME_HANDSHAKE, FRAME_BATCH, FRAME_THROTTLE, FRAME_AUTH, FRAME_PING,
 *                     FRAME_SHM_OFFER, FRAME_SHM_ANSWER, FRAME_SHM_BELL, FRAME_SHM_ROOM
 *   u8  flags         FRAME_F_LZ4: payload is one LZ4 block
 *   u16 reserved      0
 *   u32 raw_len       payload length once decompressed (= payload_len if not)
 * Both lengths are limited by the reader's max_frame.
 *
 * Handshake payload ("hello"): u32 FRAME_MAGIC, u16 FRAME_VERSION, u16 worker
 *   index, u16 topology id length, topology id bytes (<= FRAME_MAX_TOPOLOGY_ID),
 *   32-byte nonce, 32-byte topology content hash, and, in the acceptor's
 *   answer only, its 32-byte proof (auth.h).
 * Auth payload: the dialer's 32-byte proof (the handshake's last message).
 * Ping payload: empty; keeps an idle link's peer from declaring us down.
 * Batch payload: records of (u32 len, len bytes of one codec-encoded tuple).
 * Throttle payload: u8 1 = "my queues overflow: pause your spouts", 0 = resume.
 * Shared memory (transport_shm.c), after the handshake, each side for the
 * ring of its own batches toward the other:
 *   offer: u32 ring data bytes, 32-byte nonce, u32 process id, u32 the
 *          ring's descriptor in that process;
 *   answer: u8 1 = "opened: send through it", 0 = "cannot: keep to TCP";
 *   bell (empty): "the ring has bytes" (to its reader, which had gone idle);
 *   room (empty): "the ring has room" (to its writer, which found it full).
 * Once the writer sends through the ring, batches never travel on TCP
 * again; the first bell follows, on TCP, every batch sent there before.
 *
 * Threads: none; a frame_reader belongs to one connection (its loop thread).
 */
#ifndef SD_FRAME_H
#define SD_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER_BYTES 12
#define FRAME_MAGIC 0x4B574453u /* "SDWK" on the wire */
/* the data plane's protocol: raised whenever what travels changes meaning
 * (3: acking streams carry packets of records; 4: shared-memory rings), so that workers of two
 * streamd versions refuse each other at the handshake, by name, instead of
 * rejecting each other's tuples */
#define FRAME_VERSION 4
#define FRAME_MAX_TOPOLOGY_ID 255

enum {
    FRAME_HANDSHAKE = 1, FRAME_BATCH = 2, FRAME_THROTTLE = 3, FRAME_AUTH = 4, FRAME_PING = 5,
    FRAME_SHM_OFFER = 6, FRAME_SHM_ANSWER = 7, FRAME_SHM_BELL = 8, FRAME_SHM_ROOM = 9,
};
#define FRAME_HELLO_SECRET_BYTES 32 /* nonce, hash and proof are 32 bytes each */
#define FRAME_F_LZ4 0x01

enum {
    FRAME_NEED_MORE = 0,
    FRAME_READY = 1,
    FRAME_ELENGTH = -1,    /* inconsistent lengths */
    FRAME_EOVERSIZE = -2,  /* above max_frame */
    FRAME_ELZ4 = -3,       /* payload does not decompress to raw_len */
    FRAME_ETYPE = -4,      /* unknown frame type */
    FRAME_EFLAGS = -5,     /* unknown flags or reserved bits set */
    FRAME_ENOMEM = -6,
    FRAME_EMAGIC = -7,     /* handshake: not our protocol */
    FRAME_EVERSION = -8,   /* handshake: other protocol version */
    FRAME_ETOPOLOGY = -9,  /* handshake: peer of another topology */
    FRAME_EHANDSHAKE = -10,/* handshake: malformed */
    FRAME_EPACKAGE = -11,  /* handshake: peer runs other topology contents */
};
const char *frame_strerror(int err);

void frame_header_write(uint8_t *out, uint8_t type, uint8_t flags, uint32_t payload_len, uint32_t raw_len);

/* Room needed to compress len bytes (LZ4_compressBound). */
size_t frame_lz4_bound(size_t len);
/* Compresses src into dst (cap >= frame_lz4_bound(len)); returns the
 * compressed size, or 0 when compression would not make it smaller. */
size_t frame_lz4_compress(const uint8_t *src, size_t len, uint8_t *dst, size_t cap);

/* Builds a whole frame (header + payload, lz4-compressed when len >=
 * lz4_threshold > 0 and that helps) into a new malloc'ed buffer. 0 or -1. */
int frame_build(uint8_t type, const void *payload, size_t len, size_t lz4_threshold, uint8_t **out,
                size_t *out_len);

/* The handshake message of one side. */
typedef struct frame_hello {
    int worker_index;
    const char *topology_id;       /* encode only: ours (check compares with the caller's) */
    uint8_t nonce[32];
    uint8_t hash[32];
    bool has_proof;
    uint8_t proof[32];
} frame_hello;
/* Hello payload into out (cap bytes); returns its length, 0 if it does not
 * fit or the topology id is too long. */
size_t frame_hello_encode(uint8_t *out, size_t cap, const frame_hello *h);
/* Parses p and checks magic, version, topology id and content hash against
 * ours; fills *h (topology_id left NULL). 0 or FRAME_E*. */
int frame_hello_check(const uint8_t *p, size_t len, const char *topology_id, const uint8_t hash[32], frame_hello *h);

/* Iterates batch records: at *off, sets rec/rec_len and advances. Returns 1
 * for a record, 0 at the end, FRAME_ELENGTH when a record overruns.
 * Inline: once per tuple received. */
static inline int frame_batch_next(const uint8_t *p, size_t len, size_t *off, const uint8_t **rec, size_t *rec_len) {
    size_t o = *off;
    if (o >= len) return 0;
    if (len - o < 4) return FRAME_ELENGTH;
    const uint8_t *q = p + o; /* u32 little-endian: one load on such hosts */
    size_t n = (size_t)q[0] | (size_t)q[1] << 8 | (size_t)q[2] << 16 | (size_t)q[3] << 24;
    if (len - o - 4 < n) return FRAME_ELENGTH;
    *rec = q + 4;
    *rec_len = n;
    *off = o + 4 + n;
    return 1;
}

/* One frame of a batch cut from a buffer of records: its header and payload. */
typedef struct frame_slice {
    uint8_t header[FRAME_HEADER_BYTES];
    const uint8_t *payload;  /* into the records, or into the lz4 buffer */
    size_t len;
} frame_slice;
/* Number of batch frames needed for records[0..len) when a frame's
 * uncompressed payload may hold at most limit bytes (a single larger record
 * still gets a frame of its own: senders must refuse such records). */
uint32_t frame_batch_count(const uint8_t *records, size_t len, size_t limit);
/* Cuts records into the frame_batch_count() frames, in order, into out[].
 * Payloads of at least lz4_threshold (> 0) bytes are compressed into lz4buf
 * when that makes them smaller; lz4cap >= frame_lz4_bound(len) + 16 * frames
 * always suffices. Returns the bytes the frames take on the wire. */
size_t frame_batch_cut(const uint8_t *records, size_t len, size_t limit, size_t lz4_threshold,
                       uint8_t *lz4buf, size_t lz4cap, frame_slice *out);
/* The same, with the frames' boundaries known (the sender noted them as it
 * appended records, by the same rule): ncuts + 1 frames, the k-th ending at
 * cuts[k] (ascending, inside (0, len)) and the last at len > 0. No pass
 * over the records. */
size_t frame_batch_cut_at(const uint8_t *records, size_t len, const size_t *cuts, uint32_t ncuts,
                          size_t lz4_threshold, uint8_t *lz4buf, size_t lz4cap, frame_slice *out);

/* Incremental reader: push bytes in any chunking, pull whole frames. */
typedef struct frame_reader {
    uint8_t *buf;        /* received bytes; buf[start..len) not yet consumed */
    size_t start, len, cap;
    uint8_t *raw;        /* decompression target */
    size_t raw_cap;
    size_t max_frame;
} frame_reader;

typedef struct frame {
    uint8_t type, flags;
    const uint8_t *payload; /* decompressed; valid until the next push/next */
    size_t len;
} frame;

void frame_reader_init(frame_reader *r, size_t max_frame);
void frame_reader_free(frame_reader *r);
/* Copies n bytes in; 0 or FRAME_ENOMEM. */
int frame_reader_push(frame_reader *r, const void *data, size_t n);
/* Room for at least want more bytes after the data held (compacted or
 * grown as needed), for reading straight into the reader: *out and *room.
 * 0 or FRAME_ENOMEM. Valid until the next call on r. */
int frame_reader_room(frame_reader *r, size_t want, uint8_t **out, size_t *room);
/* n bytes (at most the room) were written there */
void frame_reader_commit(frame_reader *r, size_t n);
/* FRAME_READY with *f set, FRAME_NEED_MORE, or a FRAME_E* error (the stream
 * is then unusable: close the connection). */
int frame_reader_next(frame_reader *r, frame *f);
/* bytes buffered and not yet returned as frames */
static inline size_t frame_reader_pending(const frame_reader *r) { return r->len - r->start; }

#endif
