/* Unit tests for shm_ring.c: naming and opening (nonce, size, unlink),
 * bytes through the ring across its wrap, the idle and waiting flags,
 * an implausible position, names left behind by a dead process, and a
 * writer in another process. */
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

static bool name_exists(const char *name) {
    int fd = shm_open(name, O_RDONLY, 0);
    if (fd < 0) return false;
    close(fd);
    return true;
}

static void test_names(void **state) {
    (void)state;
    assert_true(shm_ring_name_ok("/streamd-123-0123456789abcdef"));
    assert_false(shm_ring_name_ok("/streamd-123-0123456789abcde"));   /* 15 digits */
    assert_false(shm_ring_name_ok("/streamd-123-0123456789ABCDEF"));  /* upper case */
    assert_false(shm_ring_name_ok("/streamd--0123456789abcdef"));     /* no pid */
    assert_false(shm_ring_name_ok("/other-123-0123456789abcdef"));
    assert_false(shm_ring_name_ok("/streamd-1/../0123456789abcdef"));
    assert_false(shm_ring_name_ok("streamd-123-0123456789abcdef"));   /* no slash */
    assert_int_equal(shm_ring_size_for(1), SHM_RING_MIN_BYTES);
    assert_int_equal(shm_ring_size_for(1000000), 1u << 20);
    assert_int_equal(shm_ring_size_for((size_t)1 << 40), SHM_RING_MAX_BYTES);
}

static void test_open_checks(void **state) {
    (void)state;
    shm_ring w, r;
    assert_int_equal(shm_ring_create(&w, 100000, nonce_a), 0);
    assert_int_equal(w.size, 128u << 10);
    assert_true(shm_ring_name_ok(w.name));
    /* another nonce or size: refused, and the name is left for the right one */
    assert_int_equal(shm_ring_open(&r, w.name, w.size, nonce_b), -EPROTO);
    assert_int_equal(shm_ring_open(&r, w.name, w.size * 2, nonce_a), -EPROTO);
    assert_int_equal(shm_ring_open(&r, w.name, w.size + 1, nonce_a), -EINVAL);
    assert_int_equal(shm_ring_open(&r, "/etc/passwd", w.size, nonce_a), -EINVAL);
    assert_true(name_exists(w.name));
    assert_int_equal(shm_ring_open(&r, w.name, w.size, nonce_a), 0);
    /* opened: the name is gone, the mapping stays */
    assert_false(name_exists(w.name));
    shm_ring_unlink(&w); /* already gone: harmless */
    uint8_t out[4];
    assert_int_equal(shm_ring_write(&w, (const uint8_t *)"abc", 3), 3);
    assert_int_equal(shm_ring_read(&r, out, sizeof out), 3);
    assert_memory_equal(out, "abc", 3);
    shm_ring_close(&w);
    shm_ring_close(&r);
    shm_ring_close(&r); /* idempotent */
    assert_int_equal(shm_ring_open(&r, "/streamd-1-0123456789abcdef", SHM_RING_MIN_BYTES, nonce_a), -ENOENT);
}

/* Bytes in odd-sized pieces through a small ring, around its end many
 * times, read in other odd sizes: every byte in order. */
static void test_bytes_wrap(void **state) {
    (void)state;
    shm_ring w, r;
    assert_int_equal(shm_ring_create(&w, SHM_RING_MIN_BYTES, nonce_a), 0);
    assert_int_equal(shm_ring_open(&r, w.name, w.size, nonce_a), 0);
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
    assert_int_equal(shm_ring_open(&r, w.name, w.size, nonce_a), 0);
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
    assert_int_equal(shm_ring_open(&r, w.name, w.size, nonce_a), 0);
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

static void test_remove_of(void **state) {
    (void)state;
    shm_ring a, b;
    assert_int_equal(shm_ring_create(&a, SHM_RING_MIN_BYTES, nonce_a), 0);
    assert_int_equal(shm_ring_create(&b, SHM_RING_MIN_BYTES, nonce_a), 0);
    assert_true(name_exists(a.name));
    assert_int_equal(shm_ring_remove_of(getpid() + 1), 0);
    assert_int_equal(shm_ring_remove_of(getpid()), 2);
    assert_false(name_exists(a.name));
    assert_false(name_exists(b.name));
    shm_ring_close(&a);
    shm_ring_close(&b);
}

/* A writer in another process: 8 MiB through a 64 KiB ring, the reader
 * checking every byte; each side polls, with a deadline, where the
 * transport would wait for a bell or room. */
static void test_other_process(void **state) {
    (void)state;
    shm_ring w, r;
    assert_int_equal(shm_ring_create(&w, SHM_RING_MIN_BYTES, nonce_a), 0);
    const size_t total = 8u << 20;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
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
    assert_int_equal(shm_ring_open(&r, w.name, w.size, nonce_a), 0);
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
    shm_ring_close(&w);
    shm_ring_close(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),        cmocka_unit_test(test_open_checks),
        cmocka_unit_test(test_bytes_wrap),   cmocka_unit_test(test_flags),
        cmocka_unit_test(test_implausible_position), cmocka_unit_test(test_remove_of),
        cmocka_unit_test(test_other_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
