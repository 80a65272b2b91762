/*
 * Unit tests for conf: defaults, type checks, error messages with file and
 * line, precedence (defaults < file < -c) and that etc/streamd.yaml
 * documents every known key. Invalid files live in test/data/conf_bad/,
 * each starting with "# expect: LINE: message".
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

#include "base/conf.h"

#include "test_data.h"

static void test_defaults(void **state) {
    (void)state;
    conf *c = conf_new();
    assert_non_null(c);
    assert_int_equal(conf_int(c, "topology.workers"), 1);
    assert_int_equal(conf_int(c, "topology.max.spout.pending"), 1000);
    assert_int_equal(conf_int(c, "worker.transfer.max.frame.bytes"), 16777216);
    assert_string_equal(conf_str(c, "log.level"), "info");
    assert_string_equal(conf_str(c, "topology.executor.queue.type"), "ring");
    assert_false(conf_bool(c, "topology.debug"));
    assert_null(conf_str(c, "no.such.key"));
    assert_int_equal(conf_int_or(c, "no.such.key", 42), 42);
    assert_string_equal(conf_str_or(c, "no.such.key", "x"), "x");
    assert_false(conf_is_set(c, "topology.workers"));
    conf_free(c);
}

static void test_types(void **state) {
    (void)state;
    conf *c = conf_new();
    char err[512];
    assert_int_equal(conf_set_text(c, "topology.workers", "+3", "-c", 0, err, sizeof err), 0);
    assert_int_equal(conf_int(c, "topology.workers"), 3);
    assert_string_equal(conf_str(c, "topology.workers"), "3"); /* normalized */
    assert_true(conf_is_set(c, "topology.workers"));
    assert_int_equal(conf_set_text(c, "topology.debug", "true", "-c", 0, err, sizeof err), 0);
    assert_true(conf_bool(c, "topology.debug"));
    assert_int_equal(conf_set_text(c, "my.ratio", "0.5", "-c", 0, err, sizeof err), 0);
    assert_string_equal(conf_str(c, "my.ratio"), "0.5"); /* unknown keys are strings */
    assert_true(conf_double(c, "my.ratio") > 0.49 && conf_double(c, "my.ratio") < 0.51);

    static const struct { const char *key, *value, *msg; } bad[] = {
        {"topology.workers", "abc", "-c: key 'topology.workers': expected an integer, got 'abc'"},
        {"topology.workers", "2.5", "-c: key 'topology.workers': expected an integer, got '2.5'"},
        {"topology.workers", "", "-c: key 'topology.workers': expected an integer, got ''"},
        {"topology.workers", "99999999999999999999", "-c: key 'topology.workers': expected an integer, got '99999999999999999999'"},
        {"topology.workers", "0", "-c: key 'topology.workers': expected an integer from 1 to 65535, got '0'"},
        {"topology.max.spout.pending", "-1", "-c: key 'topology.max.spout.pending': expected an integer from 0 to 16777216, got '-1'"},
        {"topology.debug", "1", "-c: key 'topology.debug': expected true or false, got '1'"},
        {"log.level", "trace", "-c: key 'log.level': expected one of debug, info, warn, error, got 'trace'"},
        {"cluster.name", "\xff", "-c: key 'cluster.name': value is not valid UTF-8"},
        {"bad key", "1", "-c: bad key 'bad key': keys are dotted words without spaces"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(conf_set_text(c, bad[i].key, bad[i].value, "-c", 0, err, sizeof err), -1);
        assert_string_equal(err, bad[i].msg);
    }
    /* failed sets leave the old value */
    assert_int_equal(conf_int(c, "topology.workers"), 3);
    assert_int_equal(conf_set_text(c, "topology.workers", "x", "f.yaml", 7, err, sizeof err), -1);
    assert_string_equal(err, "f.yaml:7: key 'topology.workers': expected an integer, got 'x'");
    conf_free(c);
}

/* Every integer key has a range (all minimums are >= 0, so -1 is refused
 * by each), and the keys that size memory refuse values that would make
 * the runtime allocate absurd amounts. */
static void test_ranges_bound_allocations(void **state) {
    (void)state;
    conf *c = conf_new();
    char err[512];
    size_t n;
    const conf_key_info *keys = conf_known_keys(&n);
    int ints = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(keys[i].type, "int") != 0) continue;
        ints++;
        err[0] = '\0';
        assert_int_equal(conf_set_text(c, keys[i].key, "-1", "-c", 0, err, sizeof err), -1);
        assert_non_null(strstr(err, "expected an integer"));
    }
    assert_true(ints > 30);
    static const struct { const char *key, *largest, *too_big; } sizes[] = {
        {"topology.executor.receive.buffer.size", "1048576", "2147483647"},
        {"topology.transfer.batch.size", "8192", "65536"},
        {"topology.max.spout.pending", "16777216", "2147483647"},
        {"topology.shellbolt.max.pending", "1000000", "2147483647"},
        {"worker.transfer.batch.bytes", "67108864", "2147483647"},
        {"worker.transfer.max.frame.bytes", "268435456", "2147483647"},
        {"worker.transfer.max.buffered.bytes", "1073741824", "9223372036854775807"},
        {"master.api.max.body.bytes", "1073741824", "2147483647"},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        assert_int_equal(conf_set_text(c, sizes[i].key, sizes[i].largest, "-c", 0, err, sizeof err), 0);
        err[0] = '\0';
        assert_int_equal(conf_set_text(c, sizes[i].key, sizes[i].too_big, "-c", 0, err, sizeof err), -1);
        char want[256];
        snprintf(want, sizeof want, "to %s, got '%s'", sizes[i].largest, sizes[i].too_big);
        assert_non_null(strstr(err, want));
    }
    conf_free(c);
}

static void test_set_kv(void **state) {
    (void)state;
    conf *c = conf_new();
    char err[512];
    assert_int_equal(conf_set_kv(c, "topology.acker.executors=0", err, sizeof err), 0);
    assert_int_equal(conf_int(c, "topology.acker.executors"), 0);
    assert_int_equal(conf_set_kv(c, "a.b=x=y", err, sizeof err), 0);
    assert_string_equal(conf_str(c, "a.b"), "x=y");
    assert_int_equal(conf_set_kv(c, "topology.workers", err, sizeof err), -1);
    assert_string_equal(err, "-c: expected KEY=VALUE, got 'topology.workers'");
    assert_int_equal(conf_set_kv(c, "=3", err, sizeof err), -1);
    assert_int_equal(conf_set_kv(c, "topology.workers=abc", err, sizeof err), -1);
    assert_string_equal(err, "-c: key 'topology.workers': expected an integer, got 'abc'");
    conf_free(c);
}

static void test_load_good(void **state) {
    (void)state;
    char path[PATH_MAX + 64], err[512];
    data_path(path, sizeof path, "conf_good.yaml");
    conf *c = conf_new();
    assert_int_equal(conf_load_file(c, path, err, sizeof err), 0);
    assert_string_equal(conf_str(c, "cluster.name"), "test cluster");
    assert_string_equal(conf_str(c, "log.level"), "debug");
    assert_int_equal(conf_int(c, "topology.workers"), 4);
    assert_true(conf_bool(c, "topology.debug"));
    assert_string_equal(conf_str(c, "topology.executor.queue.type"), "unbounded");
    assert_string_equal(conf_str(c, "supervisor.slots.ports"), "6800,6801");
    assert_string_equal(conf_str(c, "my.component.setting"), "12abc");
    assert_int_equal(conf_int(c, "topology.max.spout.pending"), 1000); /* untouched default */
    conf_free(c);
}

static void test_load_bad(void **state) {
    (void)state;
    char dir[PATH_MAX + 16];
    data_path(dir, sizeof dir, "conf_bad");
    DIR *d = opendir(dir);
    assert_non_null(d);
    int checked = 0, wrong = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".yaml")) continue;
        char path[2 * PATH_MAX], expect[1024], want[3 * PATH_MAX], err[1024] = "";
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        assert_int_equal(read_expect(path, expect, sizeof expect), 0);
        snprintf(want, sizeof want, "%s:%s", path, expect);
        conf *c = conf_new();
        assert_int_equal(conf_set_text(c, "topology.workers", "7", "-c", 0, err, sizeof err), 0);
        int rc = conf_load_file(c, path, err, sizeof err);
        if (rc != -1 || strncmp(err, want, strlen(want)) != 0) {
            print_error("%s: rc %d\n  got:  %s\n  want: %s...\n", e->d_name, rc, err, want);
            wrong++;
        }
        /* a failed load leaves the conf unchanged */
        if (conf_int(c, "topology.workers") != 7 || conf_is_set(c, "cluster.name")) {
            print_error("%s: the conf changed on a failed load\n", e->d_name);
            wrong++;
        }
        conf_free(c);
        checked++;
    }
    closedir(d);
    assert_int_equal(wrong, 0);
    assert_true(checked >= 9);
}

static void test_missing_file(void **state) {
    (void)state;
    char err[512];
    conf *c = conf_new();
    assert_int_equal(conf_load_file(c, "/nonexistent/streamd.yaml", err, sizeof err), -1);
    assert_string_equal(err, "/nonexistent/streamd.yaml: cannot open: No such file or directory");
    conf_free(c);
}

static void test_precedence(void **state) {
    (void)state;
    char path[PATH_MAX + 64], err[512];
    data_path(path, sizeof path, "precedence_conf.yaml");
    conf *base = conf_new(), *over = conf_new();
    assert_int_equal(conf_load_file(base, path, err, sizeof err), 0);
    assert_int_equal(conf_set_kv(over, "topology.tick.tuple.freq.secs=9", err, sizeof err), 0);
    conf *eff = conf_copy(base);
    conf_merge(eff, over);
    assert_int_equal(conf_int(eff, "topology.message.timeout.secs"), 20);  /* file over default */
    assert_int_equal(conf_int(eff, "topology.tick.tuple.freq.secs"), 9);   /* -c over file */
    assert_int_equal(conf_int(eff, "topology.acker.executors"), 1);        /* default */
    assert_int_equal(conf_int(base, "topology.tick.tuple.freq.secs"), 1);  /* copy is independent */
    conf_free(eff);
    conf_free(base);
    conf_free(over);
}

static void test_json_roundtrip(void **state) {
    (void)state;
    char err[512];
    conf *c = conf_new();
    assert_int_equal(conf_set_kv(c, "topology.workers=5", err, sizeof err), 0);
    assert_int_equal(conf_set_kv(c, "user.key=caf\xc3\xa9", err, sizeof err), 0);
    json_t *j = conf_to_json(c);
    assert_non_null(j);
    assert_int_equal(json_object_size(j), 2);
    conf *back = conf_from_json(j);
    assert_non_null(back);
    assert_int_equal(conf_int(back, "topology.workers"), 5);
    assert_string_equal(conf_str(back, "user.key"), "caf\xc3\xa9");
    json_decref(j);
    /* a bad value in JSON is rejected like any other */
    json_t *badj = json_pack("{s:s}", "topology.workers", "many");
    assert_null(conf_from_json(badj));
    json_decref(badj);
    badj = json_pack("{s:i}", "topology.workers", 2);
    assert_null(conf_from_json(badj));
    json_decref(badj);
    conf_free(back);
    conf_free(c);
}

/* etc/streamd.yaml loads cleanly, sets every known key, to its default,
 * and has a comment line right above each key. */
static void test_etc_documents_every_key(void **state) {
    (void)state;
    char path[PATH_MAX + 64], err[512];
    data_path(path, sizeof path, "../../etc/streamd.yaml");
    conf *c = conf_new();
    assert_int_equal(conf_load_file(c, path, err, sizeof err), 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char text[65536];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    size_t n;
    const conf_key_info *k = conf_known_keys(&n);
    assert_true(n >= 24);
    for (size_t i = 0; i < n; i++) {
        if (!conf_is_set(c, k[i].key)) fail_msg("etc/streamd.yaml does not set '%s'", k[i].key);
        if (strcmp(conf_str(c, k[i].key), k[i].def) != 0)
            fail_msg("etc/streamd.yaml: '%s' is '%s', default is '%s'", k[i].key, conf_str(c, k[i].key), k[i].def);
        char needle[256];
        snprintf(needle, sizeof needle, "\n%s:", k[i].key);
        const char *at = strstr(text, needle);
        assert_non_null(at);
        /* the line before must be a comment: walk back to its start */
        const char *prev = at - 1;
        while (prev > text && prev[-1] != '\n') prev--;
        if (*prev != '#') fail_msg("etc/streamd.yaml: no doc comment above '%s'", k[i].key);
        assert_non_null(k[i].doc);
        assert_true(strlen(k[i].doc) > 10);
    }
    conf_free(c);
}

int main(void) {
    if (test_data_dir(data_dir) != 0) {
        fprintf(stderr, "cannot find test/data\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),       cmocka_unit_test(test_types),
        cmocka_unit_test(test_ranges_bound_allocations),
        cmocka_unit_test(test_set_kv),         cmocka_unit_test(test_load_good),
        cmocka_unit_test(test_load_bad),       cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_precedence),     cmocka_unit_test(test_json_roundtrip),
        cmocka_unit_test(test_etc_documents_every_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
