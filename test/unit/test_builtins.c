/*
 * Unit tests of the built-in components against a mock of the public
 * component API (context, collector, tuples), so that each component's own
 * logic is checked without a running worker. The mock defines every
 * sd_* function the built-ins call, hence the runtime's collector.o and
 * tuple.o are not linked from libsdcore.a into this test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "topology/topology.h"

/* ---- mock API ------------------------------------------------------------ */

struct sd_tuple {
    size_t n;
    sd_value v[8];
    const char *names[8];
    bool tick;
};

struct sd_context {
    const char *keys[8], *vals[8];
    int nargs;
    int task_id, task_index, parallelism;
    char path_buf[8][512];
};

#define MAX_REC 20000
typedef struct emitted {
    char text[256]; /* values rendered as "v1|v2" */
    bool has_id;
    uint64_t id;
} emitted;

struct sd_collector {
    emitted *out;
    int nout;
    int acks, fails, errors;
    uint64_t gave_up[64];
    int ngave_up;
};

static void render(char *buf, size_t cap, const sd_value *v, size_t n) {
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && len < cap; i++) {
        const char *sep = i ? "|" : "";
        int k;
        switch (v[i].type) {
        case SD_INT: k = snprintf(buf + len, cap - len, "%s%lld", sep, (long long)v[i].v.i); break;
        case SD_STRING:
        case SD_BYTES: k = snprintf(buf + len, cap - len, "%s%.*s", sep, (int)v[i].v.s.len, v[i].v.s.ptr); break;
        default: k = snprintf(buf + len, cap - len, "%s?", sep); break;
        }
        len += (size_t)k;
    }
}

static void record(sd_collector *col, const sd_value *v, size_t n, bool has_id, uint64_t id) {
    assert_true(col->nout < MAX_REC);
    emitted *e = &col->out[col->nout++];
    render(e->text, sizeof e->text, v, n);
    e->has_id = has_id;
    e->id = id;
}

size_t sd_tuple_size(const sd_tuple *t) { return t->n; }
const sd_value *sd_tuple_get(const sd_tuple *t, size_t i) { return i < t->n ? &t->v[i] : NULL; }
const sd_value *sd_tuple_values(const sd_tuple *t) { return t->v; }
const char *sd_tuple_field_name(const sd_tuple *t, size_t i) { return i < t->n ? t->names[i] : NULL; }
const sd_value *sd_tuple_field(const sd_tuple *t, const char *name) {
    for (size_t i = 0; i < t->n; i++)
        if (t->names[i] && strcmp(t->names[i], name) == 0) return &t->v[i];
    return NULL;
}
bool sd_tuple_is_tick(const sd_tuple *t) { return t->tick; }
const char *sd_tuple_source_component(const sd_tuple *t) { (void)t; return "test"; }

static const char *arg(const sd_context *c, const char *key) {
    for (int i = 0; i < c->nargs; i++)
        if (strcmp(c->keys[i], key) == 0) return c->vals[i];
    return NULL;
}
const char *sd_context_arg_string(const sd_context *c, const char *key, const char *def) {
    const char *v = arg(c, key);
    return v ? v : def;
}
int64_t sd_context_arg_int(const sd_context *c, const char *key, int64_t def) {
    const char *v = arg(c, key);
    return v ? strtoll(v, NULL, 0) : def;
}
double sd_context_arg_double(const sd_context *c, const char *key, double def) {
    const char *v = arg(c, key);
    return v ? strtod(v, NULL) : def;
}
bool sd_context_arg_bool(const sd_context *c, const char *key, bool def) {
    const char *v = arg(c, key);
    return v ? strcmp(v, "true") == 0 : def;
}
const char *sd_context_arg_path(const sd_context *c, const char *key, const char *def) {
    return sd_context_arg_string(c, key, def); /* tests pass absolute paths */
}
int sd_context_task_id(const sd_context *c) { return c->task_id; }
int sd_context_task_index(const sd_context *c) { return c->task_index; }
int sd_context_parallelism(const sd_context *c) { return c->parallelism; }
void sd_log(const sd_context *c, sd_log_level level, const char *fmt, ...) {
    (void)c;
    (void)level;
    (void)fmt;
}
int sd_spout_emit(sd_collector *col, const char *stream, const sd_value *values, size_t n, bool has_msg_id,
                  uint64_t msg_id) {
    (void)stream;
    record(col, values, n, has_msg_id, msg_id);
    return 0;
}
void sd_spout_gave_up(sd_collector *col, uint64_t msg_id) {
    assert_true(col->ngave_up < 64);
    col->gave_up[col->ngave_up++] = msg_id;
}
int sd_emit(sd_collector *col, const char *stream, sd_tuple *const *anchors, size_t nanchors,
            const sd_value *values, size_t n) {
    (void)stream;
    assert_int_equal(nanchors, 1); /* every built-in bolt anchors to its input */
    assert_non_null(anchors[0]);
    record(col, values, n, false, 0);
    return 0;
}
void sd_ack(sd_collector *col, sd_tuple *t) { (void)t; col->acks++; }
void sd_fail(sd_collector *col, sd_tuple *t) { (void)t; col->fails++; }
void sd_report_error(sd_collector *col, const char *fmt, ...) { (void)fmt; col->errors++; }

/* ---- fixtures ------------------------------------------------------------ */

static sd_collector *new_col(void) {
    sd_collector *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->out = calloc(MAX_REC, sizeof *c->out);
    assert_non_null(c->out);
    return c;
}
static void free_col(sd_collector *c) {
    free(c->out);
    free(c);
}
static void ctx_arg(sd_context *c, const char *k, const char *v) {
    c->keys[c->nargs] = k;
    c->vals[c->nargs++] = v;
}
static sd_tuple str_tuple(const char *name, const char *s) {
    sd_tuple t = {.n = 1};
    t.v[0] = sd_str(s, (uint32_t)strlen(s));
    t.names[0] = name;
    return t;
}

/* ---- tests --------------------------------------------------------------- */

static void test_table(void **unused) {
    (void)unused;
    const char *spouts[] = {"file_lines", "bench_spout"};
    const char *bolts[] = {"split_words", "word_count", "file_sink", "fail_randomly", "pass_through", "null_sink"};
    for (size_t i = 0; i < 2; i++) assert_int_equal(builtin_component(spouts[i])->kind, SD_SPOUT);
    for (size_t i = 0; i < 6; i++) {
        const sd_component_def *d = builtin_component(bolts[i]);
        assert_non_null(d);
        assert_int_equal(d->kind, SD_BOLT);
        assert_string_equal(d->name, bolts[i]);
        assert_int_equal(d->api_version, SD_API_VERSION);
    }
    assert_null(builtin_component("no_such_thing"));
    assert_null(builtin_component(NULL));
}

/* file contents: short lines, an empty one, one longer than the 64 KiB read
 * buffer, and a last line without a newline */
static char *make_lines_file(char *path, size_t cap, char **long_line) {
    snprintf(path, cap, "/tmp/test_builtins_%d.txt", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    size_t ln = 150000;
    char *big = malloc(ln + 1);
    assert_non_null(big);
    for (size_t i = 0; i < ln; i++) big[i] = (char)('a' + i % 26);
    big[ln] = '\0';
    fprintf(f, "zero\none\n\nthree\n%s\nfive\nsix", big);
    fclose(f);
    *long_line = big;
    return path;
}

static void test_file_lines_partition_and_exhaust(void **unused) {
    (void)unused;
    char path[256], *big;
    make_lines_file(path, sizeof path, &big);
    const char *expect[] = {"zero", "one", "", "three", big, "five", "six"};
    uint64_t offsets[7], off = 0;
    for (int i = 0; i < 7; i++) {
        offsets[i] = off;
        off += strlen(expect[i]) + 1;
    }
    const sd_component_def *d = builtin_component("file_lines");
    for (int idx = 0; idx < 2; idx++) {
        sd_context ctx = {.task_id = 1 + idx, .task_index = idx, .parallelism = 2};
        ctx_arg(&ctx, "path", path);
        sd_collector *col = new_col();
        void *st = d->open(&ctx, col);
        assert_non_null(st);
        int r, guard = 0;
        while ((r = d->next_tuple(st, col)) == SD_NEXT_EMITTED) assert_true(++guard < 100);
        assert_int_equal(r, SD_NEXT_IDLE); /* all emitted, none acked yet */
        int k = 0;
        for (int i = idx; i < 7; i += 2, k++) {
            assert_true(k < col->nout);
            assert_true(col->out[k].has_id);
            assert_int_equal(col->out[k].id, offsets[i]);
            if (strlen(expect[i]) < sizeof col->out[k].text - 1) assert_string_equal(col->out[k].text, expect[i]);
            else assert_memory_equal(col->out[k].text, expect[i], sizeof col->out[k].text - 1);
        }
        assert_int_equal(col->nout, k);
        for (int j = 0; j < col->nout; j++) {
            assert_int_equal(d->next_tuple(st, col), SD_NEXT_IDLE);
            d->ack(st, col, col->out[j].id);
        }
        assert_int_equal(d->next_tuple(st, col), SD_NEXT_EXHAUSTED);
        d->close(st, col);
        free_col(col);
    }
    unlink(path);
    free(big);
}

static void test_file_lines_replay_and_give_up(void **unused) {
    (void)unused;
    char path[256], *big;
    make_lines_file(path, sizeof path, &big);
    const sd_component_def *d = builtin_component("file_lines");
    sd_context ctx = {.task_id = 1, .task_index = 0, .parallelism = 1};
    ctx_arg(&ctx, "path", path);
    ctx_arg(&ctx, "max.retries", "1");
    sd_collector *col = new_col();
    void *st = d->open(&ctx, col);
    assert_non_null(st);
    assert_int_equal(d->next_tuple(st, col), SD_NEXT_EMITTED); /* "zero" @0 */
    assert_int_equal(d->next_tuple(st, col), SD_NEXT_EMITTED); /* "one" @5 */
    (d->fail)(st, col, 5);
    /* the replay comes before the next new line, with the same id and text */
    assert_int_equal(d->next_tuple(st, col), SD_NEXT_EMITTED);
    assert_string_equal(col->out[2].text, "one");
    assert_int_equal(col->out[2].id, 5);
    assert_int_equal(d->next_tuple(st, col), SD_NEXT_EMITTED);
    assert_string_equal(col->out[3].text, ""); /* the empty line @9 */
    (d->fail)(st, col, 5); /* second failure: over max.retries = 1 */
    assert_int_equal(col->ngave_up, 1);
    assert_int_equal(col->gave_up[0], 5);
    (d->fail)(st, col, 5); /* unknown by now: ignored */
    assert_int_equal(col->ngave_up, 1);
    /* the long line is replayed whole (pread path) */
    while (d->next_tuple(st, col) == SD_NEXT_EMITTED) {
    }
    uint64_t big_off = 5 + 4 + 1 + 6;
    (d->fail)(st, col, big_off);
    int before = col->nout;
    assert_int_equal(d->next_tuple(st, col), SD_NEXT_EMITTED);
    assert_int_equal(col->nout, before + 1);
    assert_int_equal(col->out[before].id, big_off);
    assert_memory_equal(col->out[before].text, big, sizeof col->out[before].text - 1);
    /* the last line, without newline, replays too */
    uint64_t six_off = big_off + strlen(big) + 1 + 5;
    (d->fail)(st, col, six_off);
    assert_int_equal(d->next_tuple(st, col), SD_NEXT_EMITTED);
    assert_string_equal(col->out[col->nout - 1].text, "six");
    for (int j = 0; j < col->nout; j++) d->ack(st, col, col->out[j].id);
    assert_int_equal(d->next_tuple(st, col), SD_NEXT_EXHAUSTED);
    d->close(st, col);
    free_col(col);
    unlink(path);
    free(big);
}

/* position.file: the offset of the oldest unacked line survives close and
 * reopen; everything acked means a reopen emits nothing; a position that
 * does not fit the file (not a line start) starts over */
static void test_file_lines_durable_position(void **unused) {
    (void)unused;
    char path[256], pos[300], *big;
    make_lines_file(path, sizeof path, &big);
    snprintf(pos, sizeof pos, "%s.pos", path);
    unlink(pos);
    const sd_component_def *d = builtin_component("file_lines");
    sd_context ctx = {.task_id = 1, .task_index = 0, .parallelism = 1};
    ctx_arg(&ctx, "path", path);
    ctx_arg(&ctx, "position.file", pos);
    ctx_arg(&ctx, "position.interval.ms", "0");
    sd_collector *col = new_col();
    void *st = d->open(&ctx, col);
    assert_non_null(st);
    for (int i = 0; i < 3; i++) assert_int_equal(d->next_tuple(st, col), SD_NEXT_EMITTED); /* @0 @5 @9 */
    d->ack(st, col, 0);
    d->ack(st, col, 9); /* "one" @5 stays in flight */
    d->close(st, col);
    free_col(col);
    char text[64] = "";
    FILE *f = fopen(pos, "r");
    assert_non_null(f);
    assert_non_null(fgets(text, sizeof text, f));
    fclose(f);
    assert_string_equal(text, "5 1\n");
    /* reopen: "one" first, then everything after it */
    col = new_col();
    st = d->open(&ctx, col);
    assert_non_null(st);
    int r, guard = 0;
    while ((r = d->next_tuple(st, col)) == SD_NEXT_EMITTED) assert_true(++guard < 100);
    assert_int_equal(col->nout, 6);
    assert_int_equal(col->out[0].id, 5);
    assert_string_equal(col->out[0].text, "one");
    assert_string_equal(col->out[5].text, "six");
    for (int j = 0; j < col->nout; j++) d->ack(st, col, col->out[j].id);
    assert_int_equal(d->next_tuple(st, col), SD_NEXT_EXHAUSTED);
    d->close(st, col);
    free_col(col);
    /* all acked: nothing left to emit */
    col = new_col();
    st = d->open(&ctx, col);
    assert_non_null(st);
    assert_int_equal(d->next_tuple(st, col), SD_NEXT_EXHAUSTED);
    assert_int_equal(col->nout, 0);
    d->close(st, col);
    free_col(col);
    /* byte 7 is inside "one": not a line start */
    f = fopen(pos, "w");
    assert_non_null(f);
    fputs("7 1\n", f);
    fclose(f);
    col = new_col();
    st = d->open(&ctx, col);
    assert_non_null(st);
    assert_int_equal(d->next_tuple(st, col), SD_NEXT_EMITTED);
    assert_int_equal(col->out[0].id, 0);
    d->close(st, col);
    free_col(col);
    unlink(pos);
    unlink(path);
    free(big);
}

static void test_split_words(void **unused) {
    (void)unused;
    const sd_component_def *d = builtin_component("split_words");
    sd_context ctx = {.task_id = 2, .parallelism = 1};
    ctx_arg(&ctx, "lowercase", "true");
    sd_collector *col = new_col();
    void *st = d->open(&ctx, col);
    assert_non_null(st);
    sd_tuple t = {.n = 2};
    t.v[0] = sd_int(7); /* the first *string* field is split */
    t.v[1] = sd_str("  Hello\t\tWORLD \v x\n", 19);
    d->execute(st, col, &t);
    assert_int_equal(col->nout, 3);
    assert_string_equal(col->out[0].text, "hello");
    assert_string_equal(col->out[1].text, "world");
    assert_string_equal(col->out[2].text, "x");
    assert_int_equal(col->acks, 1);
    sd_tuple blank = str_tuple("line", "   ");
    d->execute(st, col, &blank);
    sd_tuple nostr = {.n = 1};
    nostr.v[0] = sd_int(1);
    d->execute(st, col, &nostr);
    sd_tuple tick = {.tick = true};
    d->execute(st, col, &tick);
    assert_int_equal(col->nout, 3);
    assert_int_equal(col->acks, 3); /* ticks are not acked */
    d->close(st, col);
    free_col(col);
}

static void test_word_count(void **unused) {
    (void)unused;
    const sd_component_def *d = builtin_component("word_count");
    sd_context ctx = {.task_id = 3, .parallelism = 1};
    sd_collector *col = new_col();
    void *st = d->open(&ctx, col);
    assert_non_null(st);
    char w[32];
    for (int round = 1; round <= 3; round++) {
        for (int i = 0; i < 3000; i++) { /* forces the table to grow */
            snprintf(w, sizeof w, "w%d", i);
            sd_tuple t = str_tuple("word", w);
            d->execute(st, col, &t);
        }
    }
    assert_int_equal(col->nout, 9000);
    assert_string_equal(col->out[0].text, "w0|1");
    assert_string_equal(col->out[3000 + 17].text, "w17|2");
    assert_string_equal(col->out[8999].text, "w2999|3");
    assert_int_equal(col->acks, 9000);
    d->close(st, col);
    free_col(col);
}

static void test_file_sink_json(void **unused) {
    (void)unused;
    char path[256];
    snprintf(path, sizeof path, "/tmp/test_builtins_sink_%d.jsonl", (int)getpid());
    unlink(path);
    const sd_component_def *d = builtin_component("file_sink");
    sd_context ctx = {.task_id = 9, .parallelism = 1};
    ctx_arg(&ctx, "path", path);
    ctx_arg(&ctx, "task_field", "true");
    sd_collector *col = new_col();
    void *st = d->open(&ctx, col);
    assert_non_null(st);
    sd_tuple t = {.n = 7};
    const char *names[] = {"s", "b", "i", "d", "n", "t", NULL};
    for (int i = 0; i < 7; i++) t.names[i] = names[i];
    t.v[0] = sd_str("q\"b\\n\n\x01 \xc3\xa9\xff", 11);
    t.v[1] = sd_bytes("\x00\x01\x02\xff", 4);
    t.v[2] = sd_int(-42);
    t.v[3] = sd_double(2.0);
    t.v[4] = sd_null();
    t.v[5] = sd_bool(true);
    t.v[6] = sd_double(NAN);
    d->execute(st, col, &t);
    assert_int_equal(col->acks, 1);
    d->close(st, col);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    unlink(path);
    assert_string_equal(line, "{\"s\": \"q\\\"b\\\\n\\n\\u0001 \xc3\xa9\\ufffd\", \"b\": \"AAEC/w==\", \"i\": -42, "
                              "\"d\": 2.0, \"n\": null, \"t\": true, \"_6\": null, \"__task\": 9}\n");
    free_col(col);
}

static void test_fail_randomly(void **unused) {
    (void)unused;
    const sd_component_def *d = builtin_component("fail_randomly");
    const char *rates[] = {"0", "0.25", "1"};
    int lo[] = {0, 850, 4000}, hi[] = {0, 1150, 4000};
    for (int k = 0; k < 3; k++) {
        sd_context ctx = {.task_id = 4, .parallelism = 1};
        ctx_arg(&ctx, "rate", rates[k]);
        sd_collector *col = new_col();
        void *st = d->open(&ctx, col);
        assert_non_null(st);
        sd_tuple t = {.n = 2};
        t.names[0] = "a";
        t.names[1] = "b";
        t.v[0] = sd_int(5);
        t.v[1] = sd_str("x", 1);
        for (int i = 0; i < 4000; i++) d->execute(st, col, &t);
        assert_in_range(col->fails, lo[k], hi[k]);
        assert_int_equal(col->acks + col->fails, 4000);
        assert_int_equal(col->nout, col->acks);
        if (col->nout) assert_string_equal(col->out[0].text, "5|x");
        d->close(st, col);
        free_col(col);
    }
    sd_context bad = {.task_id = 4, .parallelism = 1};
    ctx_arg(&bad, "rate", "1.5");
    assert_null(d->open(&bad, NULL));
}

static void test_bench_spout(void **unused) {
    (void)unused;
    const sd_component_def *d = builtin_component("bench_spout");
    sd_context ctx = {.task_id = 1, .parallelism = 1};
    ctx_arg(&ctx, "size", "10");
    ctx_arg(&ctx, "limit", "5");
    sd_collector *col = new_col();
    void *st = d->open(&ctx, col);
    assert_non_null(st);
    for (int i = 0; i < 5; i++) assert_int_equal(d->next_tuple(st, col), SD_NEXT_EMITTED);
    assert_int_equal(d->next_tuple(st, col), SD_NEXT_IDLE);
    assert_string_equal(col->out[4].text, "4|abcdefghij");
    assert_true(col->out[4].has_id);
    for (int i = 0; i < 4; i++) d->ack(st, col, (uint64_t)i);
    assert_int_equal(d->next_tuple(st, col), SD_NEXT_IDLE);
    (d->fail)(st, col, 4);
    assert_int_equal(d->next_tuple(st, col), SD_NEXT_EXHAUSTED);
    d->close(st, col);
    free_col(col);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_file_lines_partition_and_exhaust),
        cmocka_unit_test(test_file_lines_replay_and_give_up),
        cmocka_unit_test(test_file_lines_durable_position),
        cmocka_unit_test(test_split_words),
        cmocka_unit_test(test_word_count),
        cmocka_unit_test(test_file_sink_json),
        cmocka_unit_test(test_fail_randomly),
        cmocka_unit_test(test_bench_spout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
