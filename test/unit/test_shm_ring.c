/* Unit tests for shm_ring.c: opening (pid and descriptor, nonce, size,
 * what is not a ring), the seals, bytes through the ring across its wrap,
 * the idle and waiting flags, an implausible position, and a writer in
 * another process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "transport/shm_ring.h"

static const uint8_t nonce_a[SHM_RING_NONCE_BYTES] = {1, 2, 3}, nonce_b[SHM_RING_NONCE_BYTES] = {1, 2, 4};

static void test_sizes(void **state) {
    (void)state;
    assert_int_equal(shm_ring_size_for(1), SHM_RING_MIN_BYTES);
    assert_int_equal(shm_ring_size_for(1000000), 1u << 20);
    assert_int_equal(shm_ring_size_for((size_t)1 << 40), SHM_RING_MAX_BYTES);
}

static void test_open_checks(void **state) {
    (void)state;
    shm_ring w, r;
    long me = (long)getpid();
    assert_int_equal(shm_ring_create(&w, 100000, nonce_a), 0);
    assert_int_equal(w.size, 128u << 10);
    assert_true(w.fd >= 0);
    /* another nonce or size: refused and not mapped */
    assert_int_equal(shm_ring_open(&r, me, w.fd, w.size, nonce_b), -EPROTO);
    assert_null(r.hdr);
    assert_int_equal(shm_ring_open(&r, me, w.fd, w.size * 2, nonce_a), -EPROTO);
    assert_int_equal(shm_ring_open(&r, me, w.fd, w.size + 1, nonce_a), -EINVAL);
    assert_int_equal(shm_ring_open(&r, 0, w.fd, w.size, nonce_a), -EINVAL);
    assert_int_equal(shm_ring_open(&r, me, -1, w.size, nonce_a), -EINVAL);
    /* no such descriptor: what a writer on another host looks like */
    assert_int_equal(shm_ring_open(&r, me, 999999, w.size, nonce_a), -ENOENT);
    /* a descriptor that is not a ring's is not even opened */
    int devnull = open("/dev/null", O_RDWR);
    assert_true(devnull >= 0);
    assert_int_equal(shm_ring_open(&r, me, devnull, w.size, nonce_a), -EPROTO);
    close(devnull);
    assert_int_equal(shm_ring_open(&r, me, w.fd, w.size, nonce_a), 0);
    /* the reader has it: the writer's descriptor may go, the mapping stays */
    shm_ring_forget_fd(&w);
    shm_ring_forget_fd(&w); /* idempotent */
    uint8_t out[4];
    assert_int_equal(shm_ring_write(&w, (const uint8_t *)"abc", 3), 3);
    assert_int_equal(shm_ring_read(&r, out, sizeof out), 3);
    assert_memory_equal(out, "abc", 3);
    shm_ring_close(&w);
    shm_ring_close(&r);
    shm_ring_close(&r); /* idempotent */
    /* a zeroed ring is closed: closing it leaves descriptor 0 alone */
    int zero = open("/dev/null", O_RDONLY);
    assert_true(zero >= 0);
    if (zero != 0) assert_int_equal(dup2(zero, 0), 0);
    shm_ring z;
    memset(&z, 0, sizeof z);
    shm_ring_close(&z);
    assert_true(fcntl(0, F_GETFD) != -1);
    if (zero != 0) close(zero);
}

/* A ring can neither shrink (a reader's access would fault) nor grow, and
 * its seals cannot be lifted; an unsealed memfd of the same shape is no
 * ring. */
static void test_sealed(void **state) {
    (void)state;
    shm_ring w, r;
    assert_int_equal(shm_ring_create(&w, SHM_RING_MIN_BYTES, nonce_a), 0);
    assert_int_equal(ftruncate(w.fd, 4096), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(ftruncate(w.fd, (off_t)w.map_len * 2), -1);
    assert_int_equal(fcntl(w.fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
    int fake = memfd_create("streamd-ring", MFD_CLOEXEC);
    assert_true(fake >= 0);
    assert_int_equal(ftruncate(fake, (off_t)w.map_len), 0);
    assert_int_equal(shm_ring_open(&r, (long)getpid(), fake, w.size, nonce_a), -EPROTO);
    close(fake);
    shm_ring_close(&w);
}

/* Bytes in odd-sized pieces through a small ring, around its end many
 * times, read in other odd sizes: every byte in order. */
static void test_bytes_wrap(void **state) {
    (void)state;
    shm_ring w, r;
    assert_int_equal(shm_ring_create(&w, SHM_RING_MIN_BYTES, nonce_a), 0);
    assert_int_equal(shm_ring_open(&r, (long)getpid(), w.fd, w.size, nonce_a), 0);
    const size_t total = 10 * SHM_RING_MIN_BYTES + 12345;
    uint8_t *src = malloc(total), *dst = malloc(total);
    assert_non_null(src);
    assert_non_null(dst);
    for (size_t i = 0; i < total; i++) src[i] = (uint8_t)(i * 131 + i / 977);
    size_t put = 0, got = 0, step = 1;
    while (got < total) {
        size_t want = (step * 7919) % 40000 + 1;
        if (want > total - put) want = total - put;
        long k = shm_ring_write(&w, src + put, want);
        assert_true(k >= 0 && (size_t)k <= want);
        put += (size_t)k;
        long n = shm_ring_read(&r, dst + got, (step * 104729) % 30000 + 1);
        assert_true(n >= 0);
        got += (size_t)n;
        assert_true(put - got <= w.size);
        step++;
    }
    assert_memory_equal(src, dst, total);
    free(src);
    free(dst);
    shm_ring_close(&w);
    shm_ring_close(&r);
}

static void test_flags(void **state) {
    (void)state;
    shm_ring w, r;
    uint8_t buf[SHM_RING_MIN_BYTES];
    memset(buf, 7, sizeof buf);
    assert_int_equal(shm_ring_create(&w, SHM_RING_MIN_BYTES, nonce_a), 0);
    assert_int_equal(shm_ring_open(&r, (long)getpid(), w.fd, w.size, nonce_a), 0);
    /* the reader starts idle: the first write bells it, the next does not */
    assert_int_equal(shm_ring_write(&w, buf, 10), 10);
    assert_true(shm_ring_take_idle(&w));
    assert_int_equal(shm_ring_write(&w, buf, 10), 10);
    assert_false(shm_ring_take_idle(&w));
    /* bytes waiting: the reader may not go idle; drained, it does */
    assert_false(shm_ring_reader_idle(&r));
    assert_int_equal(shm_ring_read(&r, buf, sizeof buf), 20);
    assert_true(shm_ring_reader_idle(&r));
    assert_int_equal(shm_ring_write(&w, buf, 5), 5);
    assert_true(shm_ring_take_idle(&w));
    assert_int_equal(shm_ring_read(&r, buf, sizeof buf), 5);
    /* full: the writer waits, the read that makes room tells it, once */
    assert_false(shm_ring_take_waiting(&r));
    assert_int_equal(shm_ring_write(&w, buf, sizeof buf), (long)sizeof buf);
    assert_int_equal(shm_ring_write(&w, buf, 1), 0);
    assert_true(shm_ring_writer_wait(&w));
    assert_int_equal(shm_ring_read(&r, buf, 100), 100);
    assert_true(shm_ring_take_waiting(&r));
    assert_false(shm_ring_take_waiting(&r));
    /* room already there: the writer does not wait */
    assert_false(shm_ring_writer_wait(&w));
    assert_false(shm_ring_take_waiting(&r));
    shm_ring_close(&w);
    shm_ring_close(&r);
}

/* A position that claims more than the ring holds is refused, both ways
 * (the other side's position is what is read from the mapping). */
static void test_implausible_position(void **state) {
    (void)state;
    shm_ring w, r;
    uint8_t buf[64] = {0};
    assert_int_equal(shm_ring_create(&w, SHM_RING_MIN_BYTES, nonce_a), 0);
    assert_int_equal(shm_ring_open(&r, (long)getpid(), w.fd, w.size, nonce_a), 0);
    /* the reader's tail (0) more than a ring behind the head */
    w.pos = w.size + 1;
    assert_int_equal(shm_ring_write(&w, buf, 1), -EPROTO);
    w.pos = 0;
    /* the writer's head (0) more than a ring ahead of the tail */
    r.pos = (uint64_t)0 - (w.size + 1);
    assert_int_equal(shm_ring_read(&r, buf, sizeof buf), -EPROTO);
    r.pos = 0;
    assert_int_equal(shm_ring_write(&w, buf, 8), 8);
    assert_int_equal(shm_ring_read(&r, buf, sizeof buf), 8);
    shm_ring_close(&w);
    shm_ring_close(&r);
}

/* A writer in another process: 8 MiB through a 64 KiB ring it created,
 * the reader opening it by the writer's pid and descriptor and checking
 * every byte; each side polls, with a deadline, where the transport would
 * wait for a bell or room. */
static void test_other_process(void **state) {
    (void)state;
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    const size_t total = 8u << 20;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        shm_ring w;
        if (shm_ring_create(&w, SHM_RING_MIN_BYTES, nonce_a) != 0) _exit(3);
        if (write(pipefd[1], &w.fd, sizeof w.fd) != (ssize_t)sizeof w.fd) _exit(4);
        uint8_t chunk[5000];
        size_t put = 0;
        time_t end = time(NULL) + 30;
        while (put < total && time(NULL) < end) {
            size_t n = total - put < sizeof chunk ? total - put : sizeof chunk;
            for (size_t i = 0; i < n; i++) chunk[i] = (uint8_t)((put + i) % 251);
            long k = shm_ring_write(&w, chunk, n);
            if (k < 0) _exit(2);
            put += (size_t)k;
            if ((size_t)k < n) usleep(50);
        }
        _exit(put == total ? 0 : 1);
    }
    int fd;
    assert_int_equal(read(pipefd[0], &fd, sizeof fd), (ssize_t)sizeof fd);
    shm_ring r;
    assert_int_equal(shm_ring_open(&r, pid, fd, SHM_RING_MIN_BYTES, nonce_a), 0);
    uint8_t buf[7000];
    size_t got = 0, bad = 0;
    time_t end = time(NULL) + 30;
    while (got < total && time(NULL) < end) {
        long n = shm_ring_read(&r, buf, sizeof buf);
        assert_true(n >= 0);
        for (long i = 0; i < n; i++) bad += buf[i] != (uint8_t)((got + (size_t)i) % 251);
        got += (size_t)n;
        if (n == 0) usleep(50);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(got, total);
    assert_int_equal(bad, 0);
    shm_ring_close(&r);
    close(pipefd[0]);
    close(pipefd[1]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),        cmocka_unit_test(test_open_checks),
        cmocka_unit_test(test_sealed),
        cmocka_unit_test(test_bytes_wrap),   cmocka_unit_test(test_flags),
        cmocka_unit_test(test_implausible_position),
        cmocka_unit_test(test_other_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
