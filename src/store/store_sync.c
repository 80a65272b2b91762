/*
 * store_sync: runs the caller's loop one turn at a time until a flag is
 * set or a timer ends the wait (see store_sync.h). A prepare handle, which
 * runs just before the loop would block for I/O, stops the turn when a
 * timer or close callback earlier in it already set the flag; otherwise
 * the turn would sleep until the next unrelated event. The handles live on
 * the stack, so they are closed, and their closes seen, before returning.
 */
#include "store/store_sync.h"

#include <errno.h>

typedef struct sync_wait {
    uv_timer_t timer;
    uv_prepare_t prepare;
    const bool *done;
    bool expired;
    int open;
} sync_wait;

static void on_expire(uv_timer_t *t) { ((sync_wait *)t->data)->expired = true; }

static void on_prepare(uv_prepare_t *p) {
    sync_wait *sw = p->data;
    if (*sw->done) uv_stop(p->loop); /* the coming poll does not block */
}

static void on_close(uv_handle_t *h) { ((sync_wait *)h->data)->open--; }

int store_sync_wait(uv_loop_t *loop, const bool *done, int timeout_ms) {
    if (*done) return 0;
    sync_wait sw = {.done = done, .expired = false, .open = 0};
    if (uv_timer_init(loop, &sw.timer) != 0) return -ENOMEM;
    sw.open++;
    sw.timer.data = &sw;
    if (uv_prepare_init(loop, &sw.prepare) == 0) {
        sw.open++;
        sw.prepare.data = &sw;
        uv_prepare_start(&sw.prepare, on_prepare);
    }
    uv_update_time(loop); /* the loop's clock may be stale: the wait starts now */
    /* a negative timeout waits without end */
    if (timeout_ms >= 0) uv_timer_start(&sw.timer, on_expire, (uint64_t)timeout_ms, 0);
    while (!*done && !sw.expired) {
        /* 0: nothing left that could ever set *done */
        if (uv_run(loop, UV_RUN_ONCE) == 0 && !*done && timeout_ms < 0) break;
    }
    uv_close((uv_handle_t *)&sw.timer, on_close);
    if (sw.open == 2) uv_close((uv_handle_t *)&sw.prepare, on_close);
    while (sw.open > 0) uv_run(loop, UV_RUN_NOWAIT);
    return *done ? 0 : -ETIMEDOUT;
}
