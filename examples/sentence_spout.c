/*
 * sentence_spout: an example spout in a user library. Emits [sentence]
 * `count` times (arg, default 100), cycling through a fixed list, with the
 * emit number as message id; a failed sentence is emitted again before new
 * ones. Exhausted once `count` sentences were emitted and all were acked.
 *
 * Thread: every callback runs on the task's executor thread, which owns the
 * state. Built against streamd/component.h only.
 */
#include <stdlib.h>
#include <string.h>

#include "streamd/component.h"

static const char *const sentences[] = {
    "the quick brown fox jumps over the lazy dog",
    "a stream never stops but every tuple ends somewhere",
    "spouts emit and bolts process",
    "at least once means sometimes twice",
    "small libraries are loaded once per worker",
    "every acked tuple reached the sink",
};
#define NSENTENCES (sizeof sentences / sizeof sentences[0])

typedef struct sentence_spout {
    int64_t count;      /* how many to emit in total */
    int64_t next;       /* next new message id */
    int64_t in_flight;
    uint64_t *replay;   /* failed ids to emit again (a stack: order is irrelevant) */
    size_t nreplay, cap;
} sentence_spout;

static void *ss_open(sd_context *ctx, sd_collector *col) {
    (void)col;
    sentence_spout *st = calloc(1, sizeof *st);
    if (!st) {
        sd_log(ctx, SD_LOG_ERROR, "sentence_spout: out of memory");
        return NULL;
    }
    st->count = sd_context_arg_int(ctx, "count", 100);
    return st;
}

static int ss_emit(sentence_spout *st, sd_collector *col, uint64_t id) {
    const char *s = sentences[id % NSENTENCES];
    sd_value v = sd_str(s, (uint32_t)strlen(s));
    st->in_flight++;
    if (sd_spout_emit(col, NULL, &v, 1, true, id) != 0) {
        st->in_flight--;
        return -1;
    }
    return 0;
}

static int ss_next_tuple(void *state, sd_collector *col) {
    sentence_spout *st = state;
    if (st->nreplay) {
        uint64_t id = st->replay[--st->nreplay];
        if (ss_emit(st, col, id) != 0) sd_spout_gave_up(col, id);
        return SD_NEXT_EMITTED;
    }
    if (st->next < st->count) {
        uint64_t id = (uint64_t)st->next++;
        if (ss_emit(st, col, id) != 0) sd_spout_gave_up(col, id);
        return SD_NEXT_EMITTED;
    }
    return st->in_flight ? SD_NEXT_IDLE : SD_NEXT_EXHAUSTED;
}

static void ss_ack(void *state, sd_collector *col, uint64_t id) {
    (void)col;
    (void)id;
    sentence_spout *st = state;
    st->in_flight--;
}

static void ss_fail(void *state, sd_collector *col, uint64_t id) {
    sentence_spout *st = state;
    st->in_flight--;
    if (st->nreplay == st->cap) {
        size_t ncap = st->cap ? st->cap * 2 : 16;
        uint64_t *n = realloc(st->replay, ncap * sizeof *n);
        if (!n) {
            sd_report_error(col, "sentence_spout: out of memory, dropping %llu", (unsigned long long)id);
            sd_spout_gave_up(col, id);
            return;
        }
        st->replay = n;
        st->cap = ncap;
    }
    st->replay[st->nreplay++] = id;
}

static void ss_close(void *state, sd_collector *col) {
    (void)col;
    sentence_spout *st = state;
    if (!st) return;
    free(st->replay);
    free(st);
}

static const sd_stream_decl ss_streams[] = {
    {.name = SD_DEFAULT_STREAM, .fields = {"sentence", NULL}},
    {.name = NULL},
};

static const sd_component_def sentence_spout_def = {
    .api_version = SD_API_VERSION,
    .name = "sentence_spout",
    .kind = SD_SPOUT,
    .streams = ss_streams,
    .open = ss_open,
    .next_tuple = ss_next_tuple,
    .ack = ss_ack,
    .fail = ss_fail,
    .close = ss_close,
};

SD_EXPORT_COMPONENT(sentence_spout, sentence_spout_def);
