/*
 * direct_router: an example bolt that picks the receiving task itself, with
 * direct grouping. It sends its inputs' first field to the tasks of the
 * component named by arg `to`, in turn (its own round robin), on the direct
 * stream "routed" with fields [value, target], where target is the task id
 * it chose, so a test can check the tuple arrived there. The subscriber
 * declares `grouping: direct` on stream "routed". Thread: the task's
 * executor thread owns its state. Built against streamd/component.h only.
 */
#include <stdlib.h>

#include "streamd/component.h"

#define MAX_TARGETS 256

typedef struct router {
    int targets[MAX_TARGETS];
    int ntargets;
    unsigned next;
} router;

static void *dr_prepare(sd_context *ctx, sd_collector *col) {
    (void)col;
    const char *to = sd_context_arg_string(ctx, "to", NULL);
    if (!to) {
        sd_log(ctx, SD_LOG_ERROR, "direct_router: arg 'to' (the receiving component) is required");
        return NULL;
    }
    router *st = calloc(1, sizeof *st);
    if (!st) {
        sd_log(ctx, SD_LOG_ERROR, "direct_router: out of memory");
        return NULL;
    }
    int n = sd_context_component_tasks(ctx, to, st->targets, MAX_TARGETS);
    if (n < 1 || n > MAX_TARGETS) {
        sd_log(ctx, SD_LOG_ERROR, "direct_router: component '%s' has %d tasks (1..%d expected)", to, n,
               MAX_TARGETS);
        free(st);
        return NULL;
    }
    st->ntargets = n;
    st->next = (unsigned)sd_context_task_index(ctx);
    return st;
}

static void dr_execute(void *state, sd_collector *col, sd_tuple *input) {
    router *st = state;
    if (sd_tuple_is_tick(input)) return;
    const sd_value *v = sd_tuple_get(input, 0);
    if (!v) {
        sd_ack(col, input);
        return;
    }
    int task = st->targets[st->next++ % (unsigned)st->ntargets];
    sd_value out[2] = {*v, sd_int(task)};
    sd_tuple *anchor[1] = {input};
    if (sd_emit_direct(col, task, "routed", anchor, 1, out, 2) != 0) {
        sd_fail(col, input);
        return;
    }
    sd_ack(col, input);
}

static void dr_cleanup(void *state, sd_collector *col) {
    (void)col;
    free(state);
}

static const sd_stream_decl dr_streams[] = {
    {.name = "routed", .fields = {"value", "target", NULL}, .direct = true},
    {.name = NULL},
};

static const sd_component_def direct_router_def = {
    .api_version = SD_API_VERSION,
    .name = "direct_router",
    .kind = SD_BOLT,
    .streams = dr_streams,
    .open = dr_prepare,
    .execute = dr_execute,
    .close = dr_cleanup,
};

SD_EXPORT_COMPONENT(direct_router, direct_router_def);
