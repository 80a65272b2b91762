/* collector: the context API a component calls. sd_context_arg_path keeps
 * one copy per distinct path however often it is asked; sd_log refuses to
 * index with a bad level and logs the message as an error instead. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/log.h"
#include "runtime/executor.h"

static executor ex;
static worker_rt rt;
static topology topo;
static topo_component comp;
static topo_arg args[2] = {{"path", "data/in.txt"}, {"abs", "/etc/hosts"}};

static void setup(void) {
    memset(&ex, 0, sizeof ex);
    topo.dir = "/srv/topo";
    comp.nargs = 2;
    comp.args = args;
    rt.topo = &topo;
    ex.rt = &rt;
    ex.comp = &comp;
    ex.task = 7;
    ex.ctx.ex = &ex;
}

static void test_arg_path_does_not_grow_per_call(void **s) {
    (void)s;
    setup();
    const char *first = sd_context_arg_path(&ex.ctx, "path", NULL);
    assert_string_equal(first, "/srv/topo/data/in.txt");
    for (int i = 0; i < 10000; i++) {
        const char *again = sd_context_arg_path(&ex.ctx, "path", NULL);
        assert_ptr_equal(again, first);
    }
    assert_int_equal(ex.nowned, 1);
    const char *def = sd_context_arg_path(&ex.ctx, "missing", "rel/def");
    assert_string_equal(def, "/srv/topo/rel/def");
    assert_int_equal(ex.nowned, 2);
    /* absolute paths and NULL defaults are returned as they are */
    assert_string_equal(sd_context_arg_path(&ex.ctx, "abs", NULL), "/etc/hosts");
    assert_null(sd_context_arg_path(&ex.ctx, "missing", NULL));
    assert_int_equal(ex.nowned, 2);
    for (int i = 0; i < ex.nowned; i++) free(ex.owned[i]);
    free(ex.owned);
}

/* the lines logged while fn runs, read back from a temporary file */
static char *capture(void (*fn)(void)) {
    char path[] = "/tmp/sd-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    int keep = dup(2);
    assert_true(keep >= 0);
    log_use_fd(dup(fd));
    fn();
    log_use_fd(keep); /* back to (a copy of) stderr */
    static char buf[8192];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    assert_true(n >= 0);
    buf[n] = '\0';
    close(fd);
    return buf;
}

static void log_bad_levels(void) {
    sd_log(&ex.ctx, (sd_log_level)1000, "from level %d", 1000);
    sd_log(&ex.ctx, (sd_log_level)-5, "from level %d", -5);
    sd_log(&ex.ctx, SD_LOG_WARN, "a %s line", "good");
    sd_log(NULL, SD_LOG_ERROR, "without a context");
}

static void test_sd_log_checks_level(void **s) {
    (void)s;
    setup();
    log_init();
    char host[64];
    assert_int_equal(gethostname(host, sizeof host), 0);
    host[sizeof host - 1] = '\0';
    const char *out = capture(log_bad_levels);
    print_message("%s", out);
    assert_non_null(strstr(out, "ERROR"));
    assert_non_null(strstr(out, "sd_log called with level 1000"));
    assert_non_null(strstr(out, "sd_log called with level -5"));
    /* the messages themselves are kept, as errors */
    assert_non_null(strstr(out, "from level 1000"));
    assert_non_null(strstr(out, "from level -5"));
    assert_non_null(strstr(out, "WARN"));
    assert_non_null(strstr(out, "a good line"));
    assert_non_null(strstr(out, "without a context"));
    char tag[80];
    snprintf(tag, sizeof tag, "host=%s ", host);
    assert_non_null(strstr(out, tag)); /* set by log_init, once */
    assert_int_equal(log_level_valid(SD_LOG_DEBUG), 1);
    assert_int_equal(log_level_valid(SD_LOG_ERROR), 1);
    assert_int_equal(log_level_valid(4), 0);
    assert_int_equal(log_level_valid(-1), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arg_path_does_not_grow_per_call),
        cmocka_unit_test(test_sd_log_checks_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
