/*
 * shm_ring: the shared-memory byte ring between two workers on one host
 * (interface and protocol in shm_ring.h).
 */
#include "transport/shm_ring.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHM_RING_MAGIC 0x52534453u /* "SDSR" */
#define SHM_RING_VERSION 1
#define SHM_DIR "/dev/shm"
#define SHM_PREFIX "streamd-"

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
    size = shm_ring_size_for(size);
    uint64_t rnd;
    int fd = -1;
    for (int attempt = 0; fd < 0 && attempt < 8; attempt++) {
        if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) return -EIO;
        snprintf(r->name, sizeof r->name, "/" SHM_PREFIX "%ld-%016llx", (long)getpid(), (unsigned long long)rnd);
        fd = shm_open(r->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST) return -errno;
    }
    if (fd < 0) return -EEXIST;
    r->linked = true;
    int rc = ftruncate(fd, (off_t)(sizeof(shm_ring_hdr) + size)) == 0 ? map_ring(r, fd, size) : -errno;
    close(fd);
    if (rc != 0) {
        shm_ring_unlink(r);
        return rc;
    }
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

bool shm_ring_name_ok(const char *name) {
    static const char prefix[] = "/" SHM_PREFIX;
    size_t n = strnlen(name, SHM_RING_NAME_MAX);
    if (n >= SHM_RING_NAME_MAX || strncmp(name, prefix, sizeof prefix - 1) != 0) return false;
    const char *p = name + sizeof prefix - 1;
    size_t digits = strspn(p, "0123456789");
    if (digits == 0 || p[digits] != '-') return false;
    p += digits + 1;
    return strlen(p) == 16 && strspn(p, "0123456789abcdef") == 16;
}

int shm_ring_open(shm_ring *r, const char *name, size_t size, const uint8_t nonce[SHM_RING_NONCE_BYTES]) {
    memset(r, 0, sizeof *r);
    if (!shm_ring_name_ok(name) || size != shm_ring_size_for(size)) return -EINVAL;
    int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) rc = -errno;
    else if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != sizeof(shm_ring_hdr) + size) rc = -EPROTO;
    else rc = map_ring(r, fd, size);
    close(fd);
    if (rc != 0) return rc;
    const shm_ring_hdr *h = r->hdr;
    if (h->magic != SHM_RING_MAGIC || h->version != SHM_RING_VERSION || h->size != size ||
        memcmp(h->nonce, nonce, SHM_RING_NONCE_BYTES) != 0) {
        shm_ring_close(r);
        return -EPROTO;
    }
    snprintf(r->name, sizeof r->name, "%s", name);
    r->linked = true;
    r->pos = atomic_load_explicit(&r->hdr->tail, memory_order_relaxed);
    shm_ring_unlink(r); /* ours now: no name left behind if either of us dies */
    return 0;
}

void shm_ring_unlink(shm_ring *r) {
    if (!r->linked) return;
    r->linked = false;
    (void)shm_unlink(r->name); /* ENOENT: the other side was first */
}

void shm_ring_close(shm_ring *r) {
    shm_ring_unlink(r);
    if (r->hdr) munmap(r->hdr, r->map_len);
    r->hdr = NULL;
    r->data = NULL;
}

int shm_ring_remove_of(pid_t pid) {
    char prefix[40];
    int plen = snprintf(prefix, sizeof prefix, SHM_PREFIX "%ld-", (long)pid);
    DIR *d = opendir(SHM_DIR);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char name[SHM_RING_NAME_MAX + 1];
        if (strncmp(e->d_name, prefix, (size_t)plen) != 0) continue;
        if (snprintf(name, sizeof name, "/%s", e->d_name) >= (int)sizeof name || !shm_ring_name_ok(name)) continue;
        if (shm_unlink(name) == 0) n++;
    }
    closedir(d);
    return n;
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
