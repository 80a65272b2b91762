/*
 * shm_ring: the shared-memory byte ring between two workers on one host
 * (interface and protocol in shm_ring.h).
 */
#include "transport/shm_ring.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHM_RING_MAGIC 0x52534453u /* "SDSR" */
#define SHM_RING_VERSION 1
#define MEMFD_NAME "streamd-ring"
/* what /proc/<pid>/fd/<fd> of such a memfd reads as */
#define MEMFD_LINK "/memfd:" MEMFD_NAME " (deleted)"
#define RING_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

/* The head of the mapping. Each position and its flag share a line written
 * by one side only; the other side only reads it, or takes the flag down. */
typedef struct shm_ring_hdr {
    uint32_t magic, version;
    uint64_t size;
    uint8_t nonce[SHM_RING_NONCE_BYTES];
    alignas(64) _Atomic uint64_t head;   /* bytes written: the writer's */
    _Atomic uint32_t writer_waiting;     /* raised by the writer, taken down by the reader */
    alignas(64) _Atomic uint64_t tail;   /* bytes read: the reader's */
    _Atomic uint32_t reader_idle;        /* raised by the reader, taken down by the writer */
    alignas(64) uint8_t data[];
} shm_ring_hdr;

size_t shm_ring_size_for(size_t want) {
    size_t size = SHM_RING_MIN_BYTES;
    while (size < want && size < SHM_RING_MAX_BYTES) size <<= 1;
    return size;
}

static int map_ring(shm_ring *r, int fd, size_t size) {
    size_t len = sizeof(shm_ring_hdr) + size;
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) return -errno;
    r->hdr = m;
    r->data = r->hdr->data;
    r->size = size;
    r->map_len = len;
    return 0;
}

int shm_ring_create(shm_ring *r, size_t size, const uint8_t nonce[SHM_RING_NONCE_BYTES]) {
    memset(r, 0, sizeof *r);
    r->fd = -1;
    size = shm_ring_size_for(size);
    int fd = memfd_create(MEMFD_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -errno;
    int rc = 0;
    if (ftruncate(fd, (off_t)(sizeof(shm_ring_hdr) + size)) != 0 || fcntl(fd, F_ADD_SEALS, RING_SEALS) != 0)
        rc = -errno;
    else rc = map_ring(r, fd, size);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    r->fd = fd;
    shm_ring_hdr *h = r->hdr;
    h->magic = SHM_RING_MAGIC;
    h->version = SHM_RING_VERSION;
    h->size = size;
    memcpy(h->nonce, nonce, SHM_RING_NONCE_BYTES);
    atomic_store(&h->head, 0);
    atomic_store(&h->tail, 0);
    atomic_store(&h->writer_waiting, 0);
    /* the reader starts idle: the first write bells it, and that bell,
     * behind every frame sent over TCP before it, tells it to start */
    atomic_store(&h->reader_idle, 1);
    return 0;
}

void shm_ring_forget_fd(shm_ring *r) {
    /* a zeroed ring (never created) holds no descriptor, not descriptor 0 */
    if (r->hdr && r->fd >= 0) close(r->fd);
    r->fd = -1;
}

/* Is what fd refers to a sealed ring memfd of len bytes? */
static int check_memfd(int fd, size_t len) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -errno;
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != len) return -EPROTO;
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0) return errno == EINVAL ? -EPROTO : -errno; /* EINVAL: not a memfd */
    return (seals & RING_SEALS) == RING_SEALS ? 0 : -EPROTO;
}

int shm_ring_open(shm_ring *r, long pid, long fd, size_t size, const uint8_t nonce[SHM_RING_NONCE_BYTES]) {
    memset(r, 0, sizeof *r);
    r->fd = -1;
    if (pid <= 0 || pid > INT_MAX || fd < 0 || fd > INT_MAX || size != shm_ring_size_for(size)) return -EINVAL;
    char path[64], link[sizeof MEMFD_LINK + 1];
    snprintf(path, sizeof path, "/proc/%ld/fd/%ld", pid, fd);
    /* look before opening: opening some other file (a device, a FIFO) of
     * some other process could have effects of its own */
    ssize_t n = readlink(path, link, sizeof link);
    if (n < 0) return -errno;
    if ((size_t)n != sizeof MEMFD_LINK - 1 || memcmp(link, MEMFD_LINK, (size_t)n) != 0) return -EPROTO;
    int rfd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (rfd < 0) return -errno;
    int rc = check_memfd(rfd, sizeof(shm_ring_hdr) + size);
    if (rc == 0) rc = map_ring(r, rfd, size);
    close(rfd);
    if (rc != 0) return rc;
    const shm_ring_hdr *h = r->hdr;
    if (h->magic != SHM_RING_MAGIC || h->version != SHM_RING_VERSION || h->size != size ||
        memcmp(h->nonce, nonce, SHM_RING_NONCE_BYTES) != 0) {
        shm_ring_close(r);
        return -EPROTO;
    }
    r->pos = atomic_load_explicit(&r->hdr->tail, memory_order_relaxed);
    return 0;
}

void shm_ring_close(shm_ring *r) {
    shm_ring_forget_fd(r);
    if (r->hdr) munmap(r->hdr, r->map_len);
    r->hdr = NULL;
    r->data = NULL;
}

/* ---- the flags ------------------------------------------------------------
 * A side raises its flag before it looks again at the other's position; the
 * other moves its position before it looks at the flag. The full fences
 * order each side's store before its load, so one of the two sees the
 * other's store. */

/* raises our flag, before we look at the other's position */
static void raise_flag(_Atomic uint32_t *flag) {
    atomic_store(flag, 1);
    atomic_thread_fence(memory_order_seq_cst);
}

/* after we moved our position: true when the other side's flag was up (we
 * took it down, and must tell it) */
static bool take_flag(_Atomic uint32_t *flag) {
    atomic_thread_fence(memory_order_seq_cst);
    if (!atomic_load_explicit(flag, memory_order_relaxed)) return false;
    return atomic_exchange(flag, 0) == 1;
}

/* where n bytes at our position go in the data: from *at, the first
 * (returned) up to the ring's end, the rest from its start */
static size_t ring_split(const shm_ring *r, size_t n, size_t *at) {
    *at = (size_t)(r->pos & (r->size - 1));
    size_t first = r->size - *at;
    return first < n ? first : n;
}

/* ---- writer -------------------------------------------------------------- */

long shm_ring_write(shm_ring *r, const uint8_t *p, size_t n) {
    shm_ring_hdr *h = r->hdr;
    uint64_t tail = atomic_load_explicit(&h->tail, memory_order_acquire);
    uint64_t used = r->pos - tail;
    if (used > r->size) return -EPROTO;
    size_t room = r->size - (size_t)used;
    if (n > room) n = room;
    size_t at, first = ring_split(r, n, &at);
    memcpy(r->data + at, p, first);
    memcpy(r->data, p + first, n - first);
    r->pos += n;
    atomic_store_explicit(&h->head, r->pos, memory_order_release);
    return (long)n;
}

bool shm_ring_take_idle(shm_ring *r) { return take_flag(&r->hdr->reader_idle); }

bool shm_ring_writer_wait(shm_ring *r) {
    shm_ring_hdr *h = r->hdr;
    raise_flag(&h->writer_waiting);
    uint64_t tail = atomic_load_explicit(&h->tail, memory_order_acquire);
    if (r->pos - tail < r->size) {
        /* room already: if the reader took the flag down first, its room
         * message is on its way and finds nothing to wait for */
        atomic_exchange(&h->writer_waiting, 0);
        return false;
    }
    return true;
}

/* ---- reader -------------------------------------------------------------- */

long shm_ring_read(shm_ring *r, uint8_t *out, size_t cap) {
    shm_ring_hdr *h = r->hdr;
    uint64_t head = atomic_load_explicit(&h->head, memory_order_acquire);
    uint64_t avail = head - r->pos;
    if (avail > r->size) return -EPROTO;
    size_t n = avail < cap ? (size_t)avail : cap;
    size_t at, first = ring_split(r, n, &at);
    memcpy(out, r->data + at, first);
    memcpy(out + first, r->data, n - first);
    r->pos += n;
    atomic_store_explicit(&h->tail, r->pos, memory_order_release);
    return (long)n;
}

bool shm_ring_take_waiting(shm_ring *r) { return take_flag(&r->hdr->writer_waiting); }

bool shm_ring_reader_idle(shm_ring *r) {
    shm_ring_hdr *h = r->hdr;
    raise_flag(&h->reader_idle);
    if (atomic_load_explicit(&h->head, memory_order_acquire) == r->pos) return true;
    atomic_exchange(&h->reader_idle, 0);
    return false;
}
