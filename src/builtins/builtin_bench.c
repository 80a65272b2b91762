/*
 * builtin_bench: chaos and benchmark components (not for production data).
 *   bench_spout: emits [seq int, payload bytes] as fast as it is allowed.
 *     args size (payload bytes, default 100), ack (bool, default true: emit
 *     with message ids so trees are tracked), limit (tuples per task, 0 =
 *     unlimited), rate (tuples per second per task, 0 = as fast as allowed:
 *     for latency at a given load). Failed tuples are counted, not replayed.
 *   pass_through: re-emits each input's values anchored to it, then acks;
 *     arg delay.ms (default 0) sleeps that long per tuple first, to make a
 *     slow stage in chaos tests. arg alloc.after (tuples, default 0 = never):
 *     on that tuple the task allocates and touches memory without bound (to
 *     be OOM-killed under a cgroup memory limit); with alloc.marker (a path)
 *     it does so only when that file does not exist yet, creating it first,
 *     so a restarted worker runs normally. arg cleanup.marker (a path):
 *     its cleanup appends "<task id>\n" to that file; cleanup.hang (bool):
 *     its cleanup never returns (for stop deadline tests). print (bool):
 *     writes "stdout: <first value>" per string tuple to stdout, and one
 *     "stderr: task N" line to stderr when it opens (to test where user
 *     code's output goes: worker.stdout.redirect).
 *   null_sink: acks and counts its inputs (logged at cleanup).
 *   fail_randomly: fails a fraction `rate` (0..1, default 0.1) of its inputs,
 *     chosen by a generator seeded with `seed` (default: from the task id);
 *     re-emits the others anchored and acks them.
 * pass_through and fail_randomly declare no streams (their fields follow their
 * input): the topology gives them `outputs:`.
 *
 * Thread: each task's callbacks run on its executor thread, which owns the
 * task's state. Public API only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "streamd/component.h"

extern const sd_component_def builtin_bench_spout_def;
extern const sd_component_def builtin_pass_through_def;
extern const sd_component_def builtin_null_sink_def;
extern const sd_component_def builtin_fail_randomly_def;

/* emits input's values anchored to it on the default stream */
static int reemit(sd_collector *col, sd_tuple *input) {
    return sd_emit(col, NULL, &input, 1, sd_tuple_values(input), sd_tuple_size(input));
}

/* cleanup of components whose state is one plain allocation */
static void free_state(void *state, sd_collector *col) {
    (void)col;
    free(state);
}

/* ---- bench_spout ---------------------------------------------------------- */

typedef struct bench_spout {
    sd_context *ctx;
    char *payload;
    uint32_t size;
    bool ack;
    int64_t limit;
    double rate;          /* tuples/s, 0 = unlimited */
    int64_t start_ns;     /* first next_tuple, for the rate */
    int64_t seq;          /* tuples emitted by this task */
    int64_t in_flight;
    uint64_t acked, failed;
} bench_spout;

static void *bs_open(sd_context *ctx, sd_collector *col) {
    (void)col;
    int64_t size = sd_context_arg_int(ctx, "size", 100);
    if (size < 0 || size > (64 << 20)) {
        sd_log(ctx, SD_LOG_ERROR, "bench_spout: arg size %lld is out of range (0 .. 64 MiB)", (long long)size);
        return NULL;
    }
    bench_spout *st = calloc(1, sizeof *st);
    char *payload = malloc(size ? (size_t)size : 1);
    if (!st || !payload) {
        free(st);
        free(payload);
        sd_log(ctx, SD_LOG_ERROR, "bench_spout: out of memory");
        return NULL;
    }
    for (int64_t i = 0; i < size; i++) payload[i] = (char)('a' + i % 26);
    st->ctx = ctx;
    st->payload = payload;
    st->size = (uint32_t)size;
    st->ack = sd_context_arg_bool(ctx, "ack", true);
    st->limit = sd_context_arg_int(ctx, "limit", 0);
    st->rate = sd_context_arg_double(ctx, "rate", 0);
    return st;
}

static int bs_next_tuple(void *state, sd_collector *col) {
    bench_spout *st = state;
    if (st->limit > 0 && st->seq >= st->limit) return st->in_flight > 0 ? SD_NEXT_IDLE : SD_NEXT_EXHAUSTED;
    if (st->rate > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        if (!st->start_ns) st->start_ns = now;
        /* ahead of schedule: let the runtime idle a moment */
        if ((double)st->seq >= st->rate * (double)(now - st->start_ns) / 1e9) return SD_NEXT_IDLE;
    }
    sd_value v[2] = {sd_int(st->seq), sd_bytes(st->payload, st->size)};
    if (st->ack) st->in_flight++;
    if (sd_spout_emit(col, NULL, v, 2, st->ack, (uint64_t)st->seq) != 0) {
        if (st->ack) st->in_flight--;
        return SD_NEXT_IDLE;
    }
    st->seq++;
    return SD_NEXT_EMITTED;
}

static void bs_ack(void *state, sd_collector *col, uint64_t msg_id) {
    (void)col;
    (void)msg_id;
    bench_spout *st = state;
    st->in_flight--;
    st->acked++;
}

static void bs_fail(void *state, sd_collector *col, uint64_t msg_id) {
    (void)col;
    (void)msg_id;
    bench_spout *st = state;
    st->in_flight--;
    st->failed++;
}

static void bs_close(void *state, sd_collector *col) {
    (void)col;
    bench_spout *st = state;
    if (!st) return;
    sd_log(st->ctx, SD_LOG_INFO, "bench_spout: emitted %lld, acked %llu, failed %llu", (long long)st->seq,
           (unsigned long long)st->acked, (unsigned long long)st->failed);
    free(st->payload);
    free(st);
}

static const sd_stream_decl bs_streams[] = {
    {.name = SD_DEFAULT_STREAM, .fields = {"seq", "payload", NULL}},
    {.name = NULL},
};

const sd_component_def builtin_bench_spout_def = {
    .api_version = SD_API_VERSION,
    .name = "bench_spout",
    .kind = SD_SPOUT,
    .streams = bs_streams,
    .open = bs_open,
    .next_tuple = bs_next_tuple,
    .ack = bs_ack,
    .fail = bs_fail,
    .close = bs_close,
};

/* ---- pass_through ------------------------------------------------------------ */

typedef struct pass_through {
    int64_t delay_ms;
    int64_t alloc_after, seen;
    const char *alloc_marker; /* owned by the context */
    const char *cleanup_marker;
    bool cleanup_hang, print;
    int task;
} pass_through;

/* Allocates 1 MB blocks and touches every page, forever. */
static void alloc_forever(void) {
    for (;;) {
        char *p = malloc(1 << 20);
        if (p) memset(p, 0xa5, 1 << 20);
        /* a failed malloc is retried: the kernel's OOM killer ends this */
    }
}

/* True when the marker did not exist (and now does). */
static bool claim_marker(const char *path) {
    if (!path || !*path) return true;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    close(fd);
    return true;
}

static void *pt_prepare(sd_context *ctx, sd_collector *col) {
    (void)col;
    pass_through *st = calloc(1, sizeof *st);
    if (!st) {
        sd_log(ctx, SD_LOG_ERROR, "pass_through: out of memory");
        return NULL;
    }
    st->delay_ms = sd_context_arg_int(ctx, "delay.ms", 0);
    st->alloc_after = sd_context_arg_int(ctx, "alloc.after", 0);
    st->alloc_marker = sd_context_arg_path(ctx, "alloc.marker", NULL);
    st->cleanup_marker = sd_context_arg_path(ctx, "cleanup.marker", NULL);
    st->cleanup_hang = sd_context_arg_bool(ctx, "cleanup.hang", false);
    st->task = sd_context_task_id(ctx);
    st->print = sd_context_arg_bool(ctx, "print", false);
    if (st->print) fprintf(stderr, "stderr: task %d\n", st->task);
    return st;
}

static void pt_close(void *state, sd_collector *col) {
    (void)col;
    pass_through *st = state;
    if (st->cleanup_marker) {
        int fd = open(st->cleanup_marker, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            char line[32];
            int n = snprintf(line, sizeof line, "%d\n", st->task);
            ssize_t w = write(fd, line, (size_t)n);
            (void)w; /* a test reads the file: a short write shows there */
            close(fd);
        }
    }
    while (st->cleanup_hang) pause();
    free(st);
}

static void pt_execute(void *state, sd_collector *col, sd_tuple *input) {
    pass_through *st = state;
    if (sd_tuple_is_tick(input)) return;
    if (st->print && sd_tuple_size(input) > 0 && sd_tuple_get(input, 0)->type == SD_STRING) {
        const sd_value *v = sd_tuple_get(input, 0);
        printf("stdout: %.*s\n", (int)v->v.s.len, v->v.s.ptr);
        fflush(stdout);
    }
    if (st->alloc_after > 0 && ++st->seen == st->alloc_after && claim_marker(st->alloc_marker)) alloc_forever();
    if (st->delay_ms > 0) {
        struct timespec ts = {.tv_sec = st->delay_ms / 1000, .tv_nsec = (st->delay_ms % 1000) * 1000000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    if (reemit(col, input) != 0) {
        sd_fail(col, input);
        return;
    }
    sd_ack(col, input);
}

const sd_component_def builtin_pass_through_def = {
    .api_version = SD_API_VERSION,
    .name = "pass_through",
    .kind = SD_BOLT,
    .streams = NULL,
    .open = pt_prepare,
    .execute = pt_execute,
    .close = pt_close,
};

/* ---- null_sink --------------------------------------------------------------- */

typedef struct null_sink {
    sd_context *ctx;
    uint64_t received;
} null_sink;

static void *ns_prepare(sd_context *ctx, sd_collector *col) {
    (void)col;
    null_sink *st = calloc(1, sizeof *st);
    if (!st) {
        sd_log(ctx, SD_LOG_ERROR, "null_sink: out of memory");
        return NULL;
    }
    st->ctx = ctx;
    return st;
}

static void ns_execute(void *state, sd_collector *col, sd_tuple *input) {
    null_sink *st = state;
    if (sd_tuple_is_tick(input)) return;
    st->received++;
    sd_ack(col, input);
}

static void ns_cleanup(void *state, sd_collector *col) {
    (void)col;
    null_sink *st = state;
    if (!st) return;
    sd_log(st->ctx, SD_LOG_INFO, "null_sink: received %llu tuples", (unsigned long long)st->received);
    free(st);
}

const sd_component_def builtin_null_sink_def = {
    .api_version = SD_API_VERSION,
    .name = "null_sink",
    .kind = SD_BOLT,
    .streams = NULL,
    .open = ns_prepare,
    .execute = ns_execute,
    .close = ns_cleanup,
};

/* ---- fail_randomly --------------------------------------------------------- */

typedef struct fail_randomly {
    uint64_t rng;
    uint64_t threshold; /* fail when the next random value is below this */
} fail_randomly;

static uint64_t fr_next(fail_randomly *st) {
    /* xorshift64*: plenty for picking victims, and reproducible per seed */
    st->rng ^= st->rng >> 12;
    st->rng ^= st->rng << 25;
    st->rng ^= st->rng >> 27;
    return st->rng * 0x2545f4914f6cdd1dULL;
}

static void *fr_prepare(sd_context *ctx, sd_collector *col) {
    (void)col;
    double rate = sd_context_arg_double(ctx, "rate", 0.1);
    if (!(rate >= 0.0 && rate <= 1.0)) {
        sd_log(ctx, SD_LOG_ERROR, "fail_randomly: arg rate %g is not within 0..1", rate);
        return NULL;
    }
    fail_randomly *st = calloc(1, sizeof *st);
    if (!st) {
        sd_log(ctx, SD_LOG_ERROR, "fail_randomly: out of memory");
        return NULL;
    }
    int64_t seed = sd_context_arg_int(ctx, "seed", 0x5eed);
    /* mix in the task id so parallel tasks do not fail in lockstep */
    st->rng = ((uint64_t)seed * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)sd_context_task_id(ctx) << 32);
    if (st->rng == 0) st->rng = 0x9e3779b97f4a7c15ULL; /* xorshift must not start at 0 */
    st->threshold = rate >= 1.0 ? UINT64_MAX : (uint64_t)(rate * 18446744073709551616.0);
    return st;
}

static void fr_execute(void *state, sd_collector *col, sd_tuple *input) {
    fail_randomly *st = state;
    if (sd_tuple_is_tick(input)) return;
    uint64_t r = fr_next(st);
    if (r < st->threshold || (st->threshold == UINT64_MAX)) {
        sd_fail(col, input);
        return;
    }
    if (reemit(col, input) != 0) {
        sd_fail(col, input);
        return;
    }
    sd_ack(col, input);
}

const sd_component_def builtin_fail_randomly_def = {
    .api_version = SD_API_VERSION,
    .name = "fail_randomly",
    .kind = SD_BOLT,
    .streams = NULL,
    .open = fr_prepare,
    .execute = fr_execute,
    .close = free_state,
};
