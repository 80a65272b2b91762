/*
 * uppercase: an example bolt in a user library. Reads field `sentence`,
 * emits it in ASCII upper case as `sentence`, anchored to the input, and
 * acks. Thread: the task's executor thread owns its buffer. Built against
 * streamd/component.h only.
 */
#include <ctype.h>
#include <stdlib.h>

#include "streamd/component.h"

typedef struct uppercase {
    char *buf;
    size_t cap;
} uppercase;

static void *up_prepare(sd_context *ctx, sd_collector *col) {
    (void)col;
    uppercase *st = calloc(1, sizeof *st);
    if (!st) sd_log(ctx, SD_LOG_ERROR, "uppercase: out of memory");
    return st;
}

static void up_execute(void *state, sd_collector *col, sd_tuple *input) {
    uppercase *st = state;
    if (sd_tuple_is_tick(input)) return;
    const sd_value *s = sd_tuple_field(input, "sentence");
    if (!s || s->type != SD_STRING) {
        sd_report_error(col, "uppercase: input has no string field 'sentence'");
        sd_ack(col, input); /* replaying it would not help */
        return;
    }
    size_t n = s->v.s.len;
    if (n > st->cap) {
        char *b = realloc(st->buf, n);
        if (!b) {
            sd_report_error(col, "uppercase: out of memory");
            sd_fail(col, input);
            return;
        }
        st->buf = b;
        st->cap = n;
    }
    for (size_t i = 0; i < n; i++) st->buf[i] = (char)toupper((unsigned char)s->v.s.ptr[i]);
    sd_value out = sd_str(st->buf, (uint32_t)n);
    if (sd_emit(col, NULL, &input, 1, &out, 1) != 0) {
        sd_fail(col, input);
        return;
    }
    sd_ack(col, input);
}

static void up_cleanup(void *state, sd_collector *col) {
    (void)col;
    uppercase *st = state;
    if (!st) return;
    free(st->buf);
    free(st);
}

static const sd_stream_decl up_streams[] = {
    {.name = SD_DEFAULT_STREAM, .fields = {"sentence", NULL}},
    {.name = NULL},
};

static const sd_component_def uppercase_def = {
    .api_version = SD_API_VERSION,
    .name = "uppercase",
    .kind = SD_BOLT,
    .streams = up_streams,
    .open = up_prepare,
    .execute = up_execute,
    .close = up_cleanup,
};

SD_EXPORT_COMPONENT(uppercase, uppercase_def);
