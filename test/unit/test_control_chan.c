/* control_chan: a peer that stops reading never blocks the sender; heartbeats
 * (replaceable) replace each other, other messages fill a bounded queue and
 * then fail with -ENOBUFS; when the peer reads again everything accepted
 * arrives in order, ending with the latest heartbeat; the peer's close ends
 * the channel. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "proto/control_chan.h"

#define QUEUE (64u << 10)

typedef struct ends {
    int ended, err;
    int msgs;
} ends;

static void on_msg(void *arg, json_t *msg) {
    (void)msg;
    ((ends *)arg)->msgs++;
}

static void on_end(void *arg, int err) {
    ends *e = arg;
    e->ended++;
    e->err = err;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_t *message(const char *type, int seq, size_t pad) {
    char *s = malloc(pad + 1);
    assert_non_null(s);
    memset(s, 'x', pad);
    s[pad] = 0;
    json_t *m = json_pack("{s:s, s:i, s:s}", "type", type, "seq", seq, "pad", s);
    free(s);
    assert_non_null(m);
    return m;
}

typedef struct seen {
    int hb_last, hb_count, err_last, err_count;
    bool in_order;
} seen;

static void on_peer_msg(void *arg, json_t *msg) {
    seen *s = arg;
    const char *type = json_string_value(json_object_get(msg, "type"));
    int seq = (int)json_integer_value(json_object_get(msg, "seq"));
    if (strcmp(type, "heartbeat") == 0) {
        if (seq <= s->hb_last) s->in_order = false;
        s->hb_last = seq;
        s->hb_count++;
    } else {
        if (seq != s->err_last + 1) s->in_order = false;
        s->err_last = seq;
        s->err_count++;
    }
}

static void test_stalled_peer_never_blocks(void **state) {
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int small = 4096;
    assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    ends e = {0};
    control_chan *c = control_chan_new(&loop, sv[0], QUEUE, on_msg, on_end, &e);
    assert_non_null(c);

    /* 4,000 heartbeats of 2 KiB (8 MiB) to a peer that does not read */
    int64_t t0 = now_ms();
    int hb = 0;
    for (; hb < 4000; hb++) {
        json_t *m = message("heartbeat", hb + 1, 2048);
        assert_int_equal(control_chan_send(c, m, true), 0);
        json_decref(m);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    assert_true(control_chan_queued(c) <= 2 * (2048 + 64)); /* one partly written, one waiting */
    assert_true(control_chan_dropped(c) > 3000);
    /* messages that must not be replaced fill the queue, then are refused */
    int errs = 0, rc;
    for (;;) {
        json_t *m = message("error", errs + 1, 1000);
        rc = control_chan_send(c, m, false);
        json_decref(m);
        if (rc != 0) break;
        errs++;
    }
    assert_int_equal(rc, -ENOBUFS);
    assert_true(errs > 10 && errs < (int)(QUEUE / 1000) + 2);
    assert_true(control_chan_queued(c) <= QUEUE + 2048 + 64);
    /* a last heartbeat still replaces the one waiting, even with the queue full */
    json_t *last = message("heartbeat", hb + 1, 2048);
    assert_int_equal(control_chan_send(c, last, true), 0);
    json_decref(last);
    assert_true(now_ms() - t0 < 5000); /* nothing waited for the peer */

    /* the peer reads again: everything accepted arrives, in order */
    control_reader r = {0};
    seen s = {.in_order = true};
    char buf[65536];
    int64_t deadline = now_ms() + 5000;
    while (s.hb_last != hb + 1 && now_ms() < deadline) {
        uv_run(&loop, UV_RUN_NOWAIT);
        ssize_t n = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) assert_int_equal(control_reader_feed(&r, buf, (size_t)n, on_peer_msg, &s), 0);
    }
    assert_int_equal(s.hb_last, hb + 1);
    assert_true(s.in_order);
    assert_int_equal(s.err_count, errs);
    assert_true(s.hb_count < 10); /* the replaced ones never went out */
    assert_int_equal(control_chan_queued(c), 0);
    control_reader_free(&r);

    /* messages from the peer arrive; its close ends the channel once */
    json_t *m = message("stop", 1, 0);
    assert_int_equal(control_write(sv[1], m), 0);
    json_decref(m);
    close(sv[1]);
    deadline = now_ms() + 5000;
    while (!e.ended && now_ms() < deadline) uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(e.msgs, 1);
    assert_int_equal(e.ended, 1);
    assert_int_equal(e.err, 0);
    m = message("heartbeat", 0, 0);
    assert_int_equal(control_chan_send(c, m, true), -EPIPE);
    json_decref(m);
    control_chan_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* a malformed frame ends the channel with -EPROTO; flush_sync writes the
 * queue out when the peer reads, and times out when it does not */
static void test_malformed_and_flush(void **state) {
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ends e = {0};
    control_chan *c = control_chan_new(&loop, sv[0], QUEUE, on_msg, on_end, &e);
    assert_non_null(c);
    for (int i = 0; i < 400; i++) {
        json_t *m = message("error", i, 1000);
        if (control_chan_send(c, m, false) != 0) {
            json_decref(m);
            break;
        }
        json_decref(m);
    }
    assert_true(control_chan_queued(c) > 0);
    int64_t t0 = now_ms();
    assert_int_equal(control_chan_flush_sync(c, 200), -ETIMEDOUT);
    assert_true(now_ms() - t0 < 2000);
    /* drain the peer side in a thread-free way: read until flush succeeds */
    char buf[65536];
    int rc = -ETIMEDOUT;
    for (int i = 0; i < 1000 && rc != 0; i++) {
        while (recv(sv[1], buf, sizeof buf, MSG_DONTWAIT) > 0) {}
        rc = control_chan_flush_sync(c, 10);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(control_chan_queued(c), 0);
    const char bad[] = "\0\0\0\3abc";
    assert_int_equal(write(sv[1], bad, 7), 7);
    int64_t deadline = now_ms() + 5000;
    while (!e.ended && now_ms() < deadline) uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(e.err, -EPROTO);
    control_chan_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    close(sv[1]);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stalled_peer_never_blocks),
        cmocka_unit_test(test_malformed_and_flush),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
