/*
 * Unit tests for topology: a valid file gives the right task layout,
 * streams and resolved inputs; every file in test/data/topo_bad/ (first
 * line "# expect: LINE: message") fails with exactly FILE:LINE: message.
 * builtin_component() is faked here with the built-ins' class names and
 * streams so the test links without the runtime.
 */
#include <dirent.h>
#include <libgen.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "topology/topology.h"

/* ---- fake built-ins ---- */
static const sd_stream_decl lines_streams[] = {{.name = "default", .fields = {"line", NULL}}, {.name = NULL}};
static const sd_stream_decl word_streams[] = {{.name = "default", .fields = {"word", NULL}}, {.name = NULL}};
static const sd_stream_decl count_streams[] = {{.name = "default", .fields = {"word", "count", NULL}}, {.name = NULL}};
static const sd_component_def fakes[] = {
    {.api_version = SD_API_VERSION, .name = "file_lines", .kind = SD_SPOUT, .streams = lines_streams},
    {.api_version = SD_API_VERSION, .name = "split_words", .kind = SD_BOLT, .streams = word_streams},
    {.api_version = SD_API_VERSION, .name = "word_count", .kind = SD_BOLT, .streams = count_streams},
    {.api_version = SD_API_VERSION, .name = "file_sink", .kind = SD_BOLT, .streams = NULL},
    {.api_version = SD_API_VERSION, .name = "fanout", .kind = SD_SPOUT, .streams = lines_streams},
    {.api_version = 0, .name = "old_api", .kind = SD_BOLT, .streams = NULL},
};

const sd_component_def *builtin_component(const char *class_name) {
    for (size_t i = 0; i < sizeof fakes / sizeof fakes[0]; i++)
        if (strcmp(fakes[i].name, class_name) == 0) return &fakes[i];
    return NULL;
}

#include "test_data.h"

/* Loads path (with load flags) and checks err begins with "path:" + its
 * expect line; prints the difference and returns false otherwise. */
static bool fails_as_expected_opts(const char *path, unsigned flags) {
    char expect[1024], want[PATH_MAX + 1100], err[2048] = "";
    if (read_expect(path, expect, sizeof expect) != 0) {
        print_error("%s: no '# expect: ' first line\n", path);
        return false;
    }
    snprintf(want, sizeof want, "%s:%s", path, expect);
    topology *t = topology_load_opts(path, NULL, NULL, flags, err, sizeof err);
    if (t) {
        topology_free(t);
        print_error("%s: loaded, expected: %s\n", path, want);
        return false;
    }
    if (strncmp(err, want, strlen(want)) != 0 || strchr(err, '\n')) {
        print_error("\n  got:  %s\n  want: %s\n", err, want);
        return false;
    }
    return true;
}

static bool fails_as_expected(const char *path) { return fails_as_expected_opts(path, 0); }

static int stream_field_count(const topology *t, int comp, const char *name) {
    const topo_stream *s = topology_stream(t, comp, name);
    return s ? s->nfields : -1;
}

static void test_valid_layout(void **state) {
    (void)state;
    char path[PATH_MAX + 64], err[1024] = "";
    data_path(path, sizeof path, "wordcount.yaml");
    topology *t = topology_load(path, NULL, NULL, err, sizeof err);
    if (!t) fail_msg("%s", err);
    assert_string_equal(t->name, "wc-test");
    assert_string_equal(t->dir, data_dir);
    assert_null(t->library);
    assert_int_equal(t->workers, 2);
    assert_int_equal(conf_int(t->conf, "topology.message.timeout.secs"), 10);
    assert_string_equal(conf_str(t->conf, "my.user.key"), "hello");

    /* spouts, bolts in file order, then the acker; tasks from 1 */
    static const struct { const char *id; int par, first; sd_component_kind kind; } want[] = {
        {"lines", 2, 1, SD_SPOUT}, {"split", 3, 3, SD_BOLT}, {"count", 2, 6, SD_BOLT},
        {"sink", 1, 8, SD_BOLT},   {"__acker", 2, 9, SD_BOLT},
    };
    assert_int_equal(t->ncomponents, 5);
    for (int i = 0; i < 5; i++) {
        const topo_component *c = &t->components[i];
        assert_int_equal(c->index, i);
        assert_string_equal(c->id, want[i].id);
        assert_int_equal(c->parallelism, want[i].par);
        assert_int_equal(c->first_task, want[i].first);
        assert_int_equal(c->kind, want[i].kind);
        assert_ptr_equal(topology_component(t, want[i].id), c);
        for (int k = 0; k < c->parallelism; k++) assert_ptr_equal(topology_task_component(t, c->first_task + k), c);
    }
    assert_int_equal(t->ntasks, 10);
    assert_null(topology_task_component(t, 0));
    assert_null(topology_task_component(t, 11));
    assert_true(t->components[4].is_acker);
    assert_null(t->components[4].def);
    assert_string_equal(t->components[1].def->name, "split_words");
    assert_int_equal(t->components[0].nargs, 2);
    assert_string_equal(t->components[0].args[0].key, "path");
    assert_string_equal(t->components[0].args[0].value, "sentences.txt");

    /* declared and system streams */
    assert_int_equal(stream_field_count(t, 0, "default"), 1);
    /* acking streams carry packets: one bytes field of records */
    assert_int_equal(stream_field_count(t, 0, "__ack_init"), 1);
    assert_int_equal(stream_field_count(t, 0, "__ack_ack"), -1);
    assert_int_equal(stream_field_count(t, 2, "default"), 2);
    assert_int_equal(stream_field_count(t, 2, "__ack_ack"), 1);
    assert_int_equal(stream_field_count(t, 2, "__ack_fail"), 1);
    assert_int_equal(stream_field_count(t, 3, "default"), -1); /* file_sink declares nothing */
    assert_int_equal(stream_field_count(t, 3, "__ack_fail"), 1);
    assert_int_equal(stream_field_count(t, 4, "__ack_done"), 1);
    assert_int_equal(t->components[4].nstreams, 1);
    const topo_stream *tick = topology_stream(t, -1, "__tick");
    assert_non_null(tick);
    assert_true(tick->system);
    assert_int_equal(tick->nfields, 0);
    const topo_stream *init = topology_stream(t, 0, "__ack_init");
    assert_true(init->system);
    assert_string_equal(init->fields[0], "records");
    for (int s = 0; s < t->nstreams; s++) assert_int_equal(t->streams[s].id, s);
    for (int c = 0; c < t->ncomponents; c++)
        for (int i = 0; i < t->components[c].nstreams; i++)
            assert_int_equal(t->streams[t->components[c].stream_ids[i]].component, c);

    /* resolved inputs; system streams get no inputs */
    const topo_component *count = &t->components[2];
    assert_int_equal(count->ninputs, 1);
    const topo_input *in = &count->inputs[0];
    assert_int_equal(in->from_component, 1);
    assert_int_equal(in->grouping, GROUP_FIELDS);
    assert_string_equal(t->streams[in->stream_id].name, "default");
    assert_int_equal(t->streams[in->stream_id].component, 1);
    assert_int_equal(in->nfields, 1);
    assert_int_equal(in->field_index[0], 0);
    assert_int_equal(in->line, 22);
    assert_int_equal(t->components[3].inputs[0].grouping, GROUP_GLOBAL);
    assert_int_equal(t->components[4].ninputs, 0);
    assert_int_equal(t->components[0].ninputs, 0);
    topology_free(t);
}

static void test_outputs_override(void **state) {
    (void)state;
    char path[PATH_MAX + 64], err[1024] = "";
    data_path(path, sizeof path, "outputs.yaml");
    topology *t = topology_load(path, NULL, NULL, err, sizeof err);
    if (!t) fail_msg("%s", err);
    assert_int_equal(t->ncomponents, 3); /* acking off: no __acker */
    assert_null(topology_component(t, TOPO_ACKER_ID));
    const topo_stream *def = topology_stream(t, 0, "default");
    assert_int_equal(def->nfields, 2);
    assert_string_equal(def->fields[1], "text");
    const topo_stream *pick = topology_stream(t, 0, "pick");
    assert_true(pick->direct);
    assert_false(pick->system);
    assert_int_equal(stream_field_count(t, 1, "default"), 2); /* outputs: [a, b] beats split_words' [word] */
    const topo_input *in = &t->components[1].inputs[0];
    assert_int_equal(in->grouping, GROUP_PARTIAL_KEY);
    assert_int_equal(in->field_index[0], 1);
    assert_int_equal(in->field_index[1], 0);
    const topo_component *direct = topology_component(t, "direct");
    assert_int_equal(direct->ninputs, 2);
    assert_true(direct->limits.has_weight && direct->limits.has_memory && !direct->limits.has_cores);
    assert_int_equal(direct->limits.cpu_weight, 300);
    assert_int_equal(direct->limits.memory_mb, 0);
    assert_false(topology_component(t, "src")->limits.has_weight);
    assert_int_equal(direct->inputs[0].grouping, GROUP_DIRECT);
    assert_int_equal(direct->inputs[0].stream_id, pick->id);
    assert_int_equal(direct->inputs[1].grouping, GROUP_ALL);
    assert_int_equal(t->ntasks, 6);
    assert_string_equal(topo_grouping_name(GROUP_LOCAL_OR_SHUFFLE), "local-or-shuffle");
    topology_free(t);
}

/* command: components resolve to the multi-lang adapter of their kind */
static void test_multilang(void **state) {
    (void)state;
    char path[PATH_MAX + 64], err[1024] = "";
    data_path(path, sizeof path, "multilang.yaml");
    topology *t = topology_load(path, NULL, NULL, err, sizeof err);
    if (!t) fail_msg("%s", err);
    const topo_component *src = topology_component(t, "src"), *split = topology_component(t, "split");
    assert_non_null(src->def);
    assert_int_equal(src->def->kind, SD_SPOUT);
    assert_int_equal(split->def->kind, SD_BOLT);
    assert_string_equal(src->command[2], "--fast");
    assert_null(src->command[3]);
    assert_null(src->resources);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s/scripts", t->dir);
    assert_string_equal(split->resources, want);
    assert_true(topology_stream(t, 0, "other")->direct);
    assert_int_equal(stream_field_count(t, 1, "default"), 1);
    topology_free(t);
}

/* defaults < --config < config: (< workers:) < -c */
static void test_precedence(void **state) {
    (void)state;
    char path[PATH_MAX + 64], err[1024] = "";
    data_path(path, sizeof path, "precedence_conf.yaml");
    conf *base = conf_new(), *over = conf_new();
    assert_int_equal(conf_load_file(base, path, err, sizeof err), 0);
    assert_int_equal(conf_set_kv(over, "topology.tick.tuple.freq.secs=7", err, sizeof err), 0);
    data_path(path, sizeof path, "precedence.yaml");
    topology *t = topology_load(path, base, over, err, sizeof err);
    if (!t) fail_msg("%s", err);
    assert_int_equal(conf_int(t->conf, "topology.max.spout.pending"), 5);      /* --config */
    assert_int_equal(conf_int(t->conf, "topology.message.timeout.secs"), 10);  /* config: over --config */
    assert_int_equal(conf_int(t->conf, "topology.tick.tuple.freq.secs"), 7);   /* -c over config: */
    assert_int_equal(conf_int(t->conf, "worker.heartbeat.interval.ms"), 1000); /* default */
    assert_int_equal(t->workers, 3);                                           /* workers: over config: */
    assert_int_equal(t->ncomponents, 1);
    topology_free(t);
    /* -c topology.workers beats the file's workers: */
    assert_int_equal(conf_set_kv(over, "topology.workers=4", err, sizeof err), 0);
    t = topology_load(path, base, over, err, sizeof err);
    assert_non_null(t);
    assert_int_equal(t->workers, 4);
    topology_free(t);
    /* base is not consumed or changed */
    assert_int_equal(conf_int(base, "topology.message.timeout.secs"), 20);
    conf_free(base);
    conf_free(over);
}

static void test_invalid_files(void **state) {
    (void)state;
    char dir[PATH_MAX + 16];
    data_path(dir, sizeof dir, "topo_bad");
    DIR *d = opendir(dir);
    assert_non_null(d);
    int checked = 0, wrong = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 5, ".yaml") != 0) continue;
        char path[2 * PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (!fails_as_expected(path)) wrong++;
        checked++;
    }
    closedir(d);
    assert_int_equal(wrong, 0);
    assert_true(checked >= 25);
}

static void test_api_version(void **state) {
    (void)state;
    char path[PATH_MAX + 64];
    data_path(path, sizeof path, "unit/old_api.yaml");
    assert_true(fails_as_expected(path));
}

static void test_missing_file(void **state) {
    (void)state;
    char err[512];
    assert_null(topology_load("/nonexistent/t.yaml", NULL, NULL, err, sizeof err));
    assert_string_equal(err, "/nonexistent/t.yaml: cannot open: No such file or directory");
}

/* TOPO_NO_LIBRARY: a library that does not exist is not looked for; its
 * classes stay unresolved; streams come from outputs: where declared, and
 * a component with neither a built-in class nor outputs: takes any stream. */
static void test_no_library(void **state) {
    (void)state;
    char path[PATH_MAX + 64], err[1024] = "", want[2 * PATH_MAX + 200];
    data_path(path, sizeof path, "unit/nolib.yaml");
    assert_null(topology_load(path, NULL, NULL, err, sizeof err)); /* without the flag: the library is missing */
    snprintf(want, sizeof want, "%s:3: library 'lib/libmissing.so': No such file or directory (looked for %s/unit/lib/libmissing.so)",
             path, data_dir);
    assert_string_equal(err, want);

    topology *t = topology_load_opts(path, NULL, NULL, TOPO_NO_LIBRARY, err, sizeof err);
    if (!t) fail_msg("%s", err);
    snprintf(want, sizeof want, "%s/unit/lib/libmissing.so", data_dir);
    assert_string_equal(t->library, want);
    assert_null(t->dl_handle);
    const topo_component *gen = topology_component(t, "gen"), *nums = topology_component(t, "nums"),
                         *split = topology_component(t, "split"), *count = topology_component(t, "count");
    assert_non_null(gen);
    assert_non_null(nums);
    assert_non_null(split);
    assert_non_null(count);
    assert_null(gen->def);
    assert_null(nums->def);
    assert_null(count->def);
    assert_non_null(split->def);
    assert_string_equal(split->def->name, "split_words");
    /* gen declares nothing: only its system stream; any input stream name is taken unresolved */
    assert_int_equal(gen->nstreams, 1);
    assert_int_equal(stream_field_count(t, gen->index, "__ack_init"), 1);
    const topo_input *in = &split->inputs[0];
    assert_int_equal(in->from_component, gen->index);
    assert_int_equal(in->stream_id, -1);
    assert_null(in->field_index);
    /* streams of outputs: and of a built-in class resolve as usual */
    const topo_stream *pick = topology_stream(t, nums->index, "pick");
    assert_non_null(pick);
    assert_true(pick->direct);
    assert_int_equal(count->inputs[1].stream_id, pick->id);
    assert_int_equal(count->inputs[0].stream_id, topology_stream(t, split->index, "default")->id);
    assert_int_equal(count->inputs[0].field_index[0], 0);
    /* layout: gen 1, nums 2, split 3-4, count 5-7, then the acker */
    assert_int_equal(count->first_task, 5);
    assert_true(t->components[t->ncomponents - 1].is_acker);
    assert_int_equal(t->ntasks, 7 + t->components[t->ncomponents - 1].parallelism);
    topology_free(t);
}

/* Under TOPO_NO_LIBRARY every mistake other than the library's is still
 * reported, with the same FILE:LINE message; the library's are not looked for. */
static void test_no_library_errors(void **state) {
    (void)state;
    char dir[PATH_MAX + 16], err[1024];
    data_path(dir, sizeof dir, "topo_bad");
    DIR *d = opendir(dir);
    assert_non_null(d);
    int checked = 0, wrong = 0, loaded = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 5, ".yaml") != 0) continue;
        char path[2 * PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (strcmp(e->d_name, "missing_library.yaml") == 0 || strcmp(e->d_name, "bad_library.yaml") == 0) {
            topology *t = topology_load_opts(path, NULL, NULL, TOPO_NO_LIBRARY, err, sizeof err);
            if (!t) fail_msg("%s: %s", path, err);
            assert_null(t->dl_handle);
            assert_null(t->components[0].def);
            topology_free(t);
            loaded++;
            continue;
        }
        if (!fails_as_expected_opts(path, TOPO_NO_LIBRARY)) wrong++;
        checked++;
    }
    closedir(d);
    assert_int_equal(wrong, 0);
    assert_int_equal(loaded, 2);
    assert_true(checked >= 25);
    static const char *const more[] = {"unit/old_api.yaml", "unit/nolib_bad_stream.yaml", "unit/nolib_bad_field.yaml"};
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        char path[PATH_MAX + 64];
        data_path(path, sizeof path, more[i]);
        assert_true(fails_as_expected_opts(path, TOPO_NO_LIBRARY));
    }
}

int main(void) {
    if (test_data_dir(data_dir) != 0) {
        fprintf(stderr, "cannot find test/data\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_layout), cmocka_unit_test(test_outputs_override),
        cmocka_unit_test(test_precedence),   cmocka_unit_test(test_multilang),   cmocka_unit_test(test_invalid_files),
        cmocka_unit_test(test_api_version),  cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_no_library),   cmocka_unit_test(test_no_library_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
