/*
 * shm_ring: a single-producer, single-consumer byte ring in a POSIX shared
 * memory object, for the batches one worker sends another on the same host
 * (private to the transport: transport_shm.c is its one user).
 *
 * The writer creates the object (/dev/shm/streamd-<pid>-<random>) and names
 * it to the reader over their TCP connection; the reader opens it, checks
 * the header against the nonce it was told, and unlinks the name. Positions
 * are byte counts since the start (u64, never wrapping), each written by one
 * side only, in a cache line of its own.
 *
 * Neither side ever sleeps here. A side that finds nothing to do raises a
 * flag and waits for a message over TCP; the other side, having moved its
 * position, takes the flag down and sends that message:
 * - the reader, drained, raises reader_idle (shm_ring_reader_idle); the
 *   writer, after a write, sees it (shm_ring_take_idle) and sends a bell;
 * - the writer, full, raises writer_waiting (shm_ring_writer_wait); the
 *   reader, after a read, sees it (shm_ring_take_waiting) and sends room.
 * A flag is raised, then the position re-checked, and the other side moves
 * its position, then checks the flag, both with full fences: one of the two
 * always sees the other.
 *
 * Everything read from the mapping was written by another process: a
 * position that would put more than the ring's size in it is refused
 * (-EPROTO), and the bytes read are copied out before anyone parses them.
 *
 * Threads: a ring belongs to one thread of each process (the transport's
 * loop threads). Errors are negative errno codes (base/err.h); nothing here
 * logs.
 */
#ifndef SD_SHM_RING_H
#define SD_SHM_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SHM_RING_NONCE_BYTES 32
#define SHM_RING_NAME_MAX 48            /* "/streamd-" + pid + "-" + 16 hex digits, and the NUL */
#define SHM_RING_MIN_BYTES (64u << 10)
#define SHM_RING_MAX_BYTES (256u << 20)

struct shm_ring_hdr;

typedef struct shm_ring {
    struct shm_ring_hdr *hdr;    /* the mapping: header, then the data */
    uint8_t *data;
    size_t size;                 /* data bytes, a power of two */
    size_t map_len;
    char name[SHM_RING_NAME_MAX];
    bool linked;                 /* the name still exists (the creator removes it) */
    uint64_t pos;                /* our own position (head for the writer, tail for the reader) */
} shm_ring;

/* The data bytes for a requested size: a power of two within
 * [SHM_RING_MIN_BYTES, SHM_RING_MAX_BYTES]. */
size_t shm_ring_size_for(size_t want);

/* Writer: creates and maps a new ring of size data bytes (shm_ring_size_for)
 * whose header carries nonce; r->name names it. 0 or a negative errno. */
int shm_ring_create(shm_ring *r, size_t size, const uint8_t nonce[SHM_RING_NONCE_BYTES]);

/* Is name one that shm_ring_create makes? (checked before opening a name a
 * peer sent) */
bool shm_ring_name_ok(const char *name);

/* Reader: opens and maps the ring called name, checks that it is size data
 * bytes and carries nonce, then unlinks the name. 0; -EINVAL for a name
 * shm_ring_create does not make; -ENOENT when there is no such object (the
 * writer is on another host); -EPROTO when its size or header differs (it
 * is then left alone); another negative errno. */
int shm_ring_open(shm_ring *r, const char *name, size_t size, const uint8_t nonce[SHM_RING_NONCE_BYTES]);

/* Removes the name, if still there (idempotent). */
void shm_ring_unlink(shm_ring *r);

/* Unmaps the ring (and unlinks its name if still there); idempotent. */
void shm_ring_close(shm_ring *r);

/* Removes the names of rings that the process pid created and left behind
 * (it died before its peer opened them). Returns how many. */
int shm_ring_remove_of(pid_t pid);

/* Writer: copies up to n bytes of p in; returns the bytes copied (0 when
 * full), or -EPROTO when the reader's position is implausible. The bytes
 * become visible to the reader before this returns. */
long shm_ring_write(shm_ring *r, const uint8_t *p, size_t n);

/* Writer, after writing: true when the reader had gone idle; the flag is
 * then down and the caller must send it a bell. */
bool shm_ring_take_idle(shm_ring *r);

/* Writer, on a full ring: raises writer_waiting. Returns false when room
 * appeared meanwhile (the flag is down again: write on). */
bool shm_ring_writer_wait(shm_ring *r);

/* Reader: copies up to cap of the bytes waiting into out; returns how many
 * (0 when empty), or -EPROTO when the writer's position is implausible. */
long shm_ring_read(shm_ring *r, uint8_t *out, size_t cap);

/* Reader, after reading: true when the writer was waiting for room; the
 * flag is then down and the caller must tell it. */
bool shm_ring_take_waiting(shm_ring *r);

/* Reader, drained: raises reader_idle. Returns false when bytes arrived
 * meanwhile: read on (a bell may come anyway; it is harmless). */
bool shm_ring_reader_idle(shm_ring *r);

#endif
