/*
 * batch_relay: an example bolt in a user library that keeps its input past
 * the callback. It holds up to `batch` tuples (arg, default 100) with
 * sd_tuple_retain, and once that many are held (or at a tick, or at close)
 * emits each one's values as they are, anchored to it, acks it and
 * releases it. Its output field is `line`. Thread: the task's executor
 * thread owns the held tuples. Built against streamd/component.h only.
 */
#include <stdlib.h>

#include "streamd/component.h"

typedef struct batch_relay {
    sd_tuple **held;
    int n, batch;
} batch_relay;

static void *br_open(sd_context *ctx, sd_collector *col) {
    (void)col;
    int64_t batch = sd_context_arg_int(ctx, "batch", 100);
    if (batch < 1 || batch > 1000000) {
        sd_log(ctx, SD_LOG_ERROR, "batch_relay: arg batch %lld is out of range (1 .. 1000000)", (long long)batch);
        return NULL;
    }
    batch_relay *st = calloc(1, sizeof *st);
    sd_tuple **held = calloc((size_t)batch, sizeof *held);
    if (!st || !held) {
        free(st);
        free(held);
        sd_log(ctx, SD_LOG_ERROR, "batch_relay: out of memory");
        return NULL;
    }
    st->held = held;
    st->batch = (int)batch;
    return st;
}

/* hands on every held tuple, in the order it arrived */
static void br_flush(batch_relay *st, sd_collector *col) {
    for (int i = 0; i < st->n; i++) {
        sd_tuple *t = st->held[i];
        if (sd_emit(col, NULL, &t, 1, sd_tuple_values(t), sd_tuple_size(t)) == 0) sd_ack(col, t);
        else sd_fail(col, t);
        sd_tuple_release(t);
    }
    st->n = 0;
}

static void br_execute(void *state, sd_collector *col, sd_tuple *input) {
    batch_relay *st = state;
    if (sd_tuple_is_tick(input)) {
        br_flush(st, col);
        return;
    }
    /* the tuple and its values stay valid until released */
    sd_tuple_retain(input);
    st->held[st->n++] = input;
    if (st->n == st->batch) br_flush(st, col);
}

static void br_close(void *state, sd_collector *col) {
    batch_relay *st = state;
    if (!st) return;
    br_flush(st, col);
    free(st->held);
    free(st);
}

static const sd_stream_decl br_streams[] = {
    {.name = SD_DEFAULT_STREAM, .fields = {"line", NULL}},
    {.name = NULL},
};

static const sd_component_def batch_relay_def = {
    .api_version = SD_API_VERSION,
    .name = "batch_relay",
    .kind = SD_BOLT,
    .streams = br_streams,
    .open = br_open,
    .execute = br_execute,
    .close = br_close,
};

SD_EXPORT_COMPONENT(batch_relay, batch_relay_def);
