/*
 * shm_ring: a single-producer, single-consumer byte ring in shared memory,
 * for the batches one worker sends another on the same host
 * (private to the transport: transport_shm.c is its one user).
 *
 * The writer creates the ring as a sealed memfd (it can neither shrink nor
 * grow: a reader's access can never fault) and names it to the reader over
 * their TCP connection as its process id and descriptor; the reader opens
 * it through /proc/<pid>/fd/<fd>, which only works on the same host (and
 * for the same user), checks what it opened (a memfd of ours, sealed, of
 * the size announced, carrying the nonce it was told) and maps it. No name
 * is ever left behind: the memory goes with the last mapping. Positions
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

#define SHM_RING_NONCE_BYTES 32
#define SHM_RING_MIN_BYTES (64u << 10)
#define SHM_RING_MAX_BYTES (256u << 20)

struct shm_ring_hdr;

/* A zeroed shm_ring is a closed one (shm_ring_close does nothing). */
typedef struct shm_ring {
    struct shm_ring_hdr *hdr;    /* the mapping: header, then the data */
    uint8_t *data;
    size_t size;                 /* data bytes, a power of two */
    size_t map_len;
    int fd;                      /* the writer's memfd until the reader has it (shm_ring_forget_fd); else -1 */
    uint64_t pos;                /* our own position (head for the writer, tail for the reader) */
} shm_ring;

/* The data bytes for a requested size: a power of two within
 * [SHM_RING_MIN_BYTES, SHM_RING_MAX_BYTES]. */
size_t shm_ring_size_for(size_t want);

/* Writer: creates and maps a new ring of size data bytes (shm_ring_size_for)
 * whose header carries nonce; the reader finds it as (getpid(), r->fd).
 * 0 or a negative errno. */
int shm_ring_create(shm_ring *r, size_t size, const uint8_t nonce[SHM_RING_NONCE_BYTES]);

/* Writer: the reader has opened the ring (or never will): our descriptor
 * is no longer needed, the mapping is. Idempotent. */
void shm_ring_forget_fd(shm_ring *r);

/* Reader: opens the ring that process pid holds as descriptor fd, checks
 * that it is a sealed ring memfd of size data bytes carrying nonce, and
 * maps it. 0; -EINVAL for an impossible pid, fd or size; -ENOENT (or
 * -EACCES, -EPERM) when there is no such descriptor for us (the writer is
 * on another host, or another user's); -EPROTO when it is not such a ring
 * (it is then not mapped); another negative errno. */
int shm_ring_open(shm_ring *r, long pid, long fd, size_t size, const uint8_t nonce[SHM_RING_NONCE_BYTES]);

/* Unmaps the ring (and closes the writer's descriptor); idempotent. */
void shm_ring_close(shm_ring *r);

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
