/* control: framing round trip, split reads, oversized and malformed frames. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "proto/control.h"

typedef struct got {
    int n;
    json_t *msgs[16];
} got;

static void collect(void *arg, json_t *msg) {
    got *g = arg;
    assert_true(g->n < 16);
    g->msgs[g->n++] = json_incref(msg);
}

static void got_free(got *g) {
    for (int i = 0; i < g->n; i++) json_decref(g->msgs[i]);
    g->n = 0;
}

/* writes msgs through a socketpair and returns the raw bytes */
static size_t framed(json_t **msgs, int n, uint8_t *out, size_t cap) {
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    for (int i = 0; i < n; i++) assert_int_equal(control_write(sv[0], msgs[i]), 0);
    close(sv[0]);
    size_t len = 0;
    ssize_t r;
    while ((r = read(sv[1], out + len, cap - len)) > 0) len += (size_t)r;
    assert_int_equal(r, 0);
    close(sv[1]);
    return len;
}

static void test_roundtrip_byte_by_byte(void **state) {
    (void)state;
    json_t *msgs[3] = {json_pack("{s:s}", "type", "stop"), json_pack("{s:s, s:i}", "type", "started", "pid", 42),
                       json_pack("{s:s, s:[i,i,i]}", "type", "x", "tasks", 1, 2, 3)};
    uint8_t buf[1024];
    size_t len = framed(msgs, 3, buf, sizeof buf);
    /* header: big-endian length of the compact JSON text */
    char *t0 = json_dumps(msgs[0], JSON_COMPACT);
    assert_int_equal(buf[0], 0);
    assert_int_equal(buf[3], strlen(t0));
    free(t0);
    control_reader r = {0};
    got g = {0};
    for (size_t i = 0; i < len; i++) assert_int_equal(control_reader_feed(&r, buf + i, 1, collect, &g), 0);
    assert_int_equal(g.n, 3);
    for (int i = 0; i < 3; i++) assert_true(json_equal(g.msgs[i], msgs[i]));
    assert_int_equal(r.len, 0);
    /* all at once, and split at every point */
    for (size_t cut = 0; cut <= len; cut++) {
        got_free(&g);
        assert_int_equal(control_reader_feed(&r, buf, cut, collect, &g), 0);
        assert_int_equal(control_reader_feed(&r, buf + cut, len - cut, collect, &g), 0);
        assert_int_equal(g.n, 3);
        assert_true(json_equal(g.msgs[2], msgs[2]));
    }
    got_free(&g);
    control_reader_free(&r);
    for (int i = 0; i < 3; i++) json_decref(msgs[i]);
}

static void test_oversized_rejected_before_body(void **state) {
    (void)state;
    uint32_t n = CONTROL_MAX_MSG + 1;
    uint8_t hdr[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    control_reader r = {0};
    got g = {0};
    assert_int_equal(control_reader_feed(&r, hdr, 2, collect, &g), 0);
    assert_int_equal(control_reader_feed(&r, hdr + 2, 2, collect, &g), -1);
    assert_int_equal(g.n, 0);
    control_reader_free(&r);
}

static void feed_text(const char *text, int expect) {
    size_t len = strlen(text);
    uint8_t *buf = malloc(4 + len);
    assert_non_null(buf);
    buf[0] = buf[1] = 0;
    buf[2] = (uint8_t)(len >> 8);
    buf[3] = (uint8_t)len;
    memcpy(buf + 4, text, len);
    control_reader r = {0};
    got g = {0};
    assert_int_equal(control_reader_feed(&r, buf, 4 + len, collect, &g), expect);
    assert_int_equal(g.n, expect == 0 ? 1 : 0);
    got_free(&g);
    control_reader_free(&r);
    free(buf);
}

static void test_malformed(void **state) {
    (void)state;
    feed_text("{\"type\":\"ok\"}", 0);
    feed_text("{\"type\":", -1);   /* truncated JSON */
    feed_text("[1,2,3]", -1);      /* not an object */
    feed_text("", -1);             /* empty frame */
}

static void test_write_errors(void **state) {
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    json_t *m = json_pack("{s:s}", "type", "stop");
    errno = 0;
    assert_int_equal(control_write(sv[0], m), -1);
    assert_int_equal(errno, EPIPE);
    close(sv[0]);
    json_decref(m);
}

/* a message larger than the socket buffer on a non-blocking fd still goes
 * out whole while the peer reads */
static void test_nonblocking_large(void **state) {
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    size_t big = 4u << 20;
    char *s = malloc(big + 1);
    assert_non_null(s);
    memset(s, 'a', big);
    s[big] = 0;
    json_t *m = json_pack("{s:s}", "blob", s);
    free(s);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        control_reader r = {0};
        got g = {0};
        char buf[65536];
        ssize_t n;
        while (g.n == 0 && (n = read(sv[1], buf, sizeof buf)) > 0)
            if (control_reader_feed(&r, buf, (size_t)n, collect, &g) != 0) _exit(2);
        _exit(g.n == 1 && strlen(json_string_value(json_object_get(g.msgs[0], "blob"))) == big ? 0 : 1);
    }
    close(sv[1]);
    assert_int_equal(control_write(sv[0], m), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(sv[0]);
    json_decref(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_byte_by_byte),
        cmocka_unit_test(test_oversized_rejected_before_body),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_write_errors),
        cmocka_unit_test(test_nonblocking_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
