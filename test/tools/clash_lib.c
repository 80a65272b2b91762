/*
 * clash_lib: a user component library that defines functions with the same
 * names as streamd internals (queue_new, conf_int, now_ns, log_task). Built
 * like a careless user's library: default visibility, so its own calls go
 * through the dynamic linker. Only streamd's public API may be visible to
 * it; if streamd exported its internals, these calls would bind to them.
 *
 * Bolt "clash_check": for each input emits `result` = "own" when every
 * call reached this library's definition, else "streamd". Thread: the
 * task's executor thread.
 */
#include <stdint.h>
#include <string.h>

#include "streamd/component.h"

int queue_new(int a);
int queue_new(int a) { return a + 41; }
long conf_int(const char *key);
long conf_int(const char *key) { return key && key[0] == 'x' ? 7 : -1; }
int64_t now_ns(void);
int64_t now_ns(void) { return 123; }

static void clash_execute(void *state, sd_collector *col, sd_tuple *input) {
    (void)state;
    if (sd_tuple_is_tick(input)) return;
    bool own = queue_new(1) == 42 && conf_int("x") == 7 && now_ns() == 123;
    const char *r = own ? "own" : "streamd";
    const sd_value *line = sd_tuple_get(input, 0);
    sd_value out[2] = {line ? *line : sd_null(), sd_str(r, (uint32_t)strlen(r))};
    sd_emit(col, NULL, &input, 1, out, 2);
    sd_ack(col, input);
}

static const sd_stream_decl clash_streams[] = {{.name = "default", .fields = {"line", "result", NULL}}, {0}};
static const sd_component_def clash_def = {
    .api_version = SD_API_VERSION,
    .name = "clash_check",
    .kind = SD_BOLT,
    .execute = clash_execute,
    .streams = clash_streams,
};
SD_EXPORT_COMPONENT(clash_check, clash_def);
