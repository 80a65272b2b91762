/* cgroup: the v2 and v1 code paths against fake hierarchies in a temporary
 * directory (plain files stand in for cgroupfs files): detection from
 * mountinfo and /proc/self/cgroup, the files written for the limits, the
 * subtree delegation on v2, the OOM kill count, and the refusal cases;
 * cgroup_owner's records: only the cgroups of a node process that is gone
 * are reaped (its leftover process SIGKILLed), a live owner's are not.
 * The real hierarchies are exercised by test/integration/test_cgroups.py. */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "node/cgroup.h"
#include "node/cgroup_owner.h"

static char root[PATH_MAX];

static void put(const char *rel, const char *text) {
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void mk(const char *rel) {
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

static char *get(const char *rel) {
    static char buf[4096];
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "r");
    if (!f) return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static int setup(void **state) {
    (void)state;
    snprintf(root, sizeof root, "/tmp/sd_cgroup_XXXXXX");
    assert_non_null(mkdtemp(root));
    return 0;
}

static int teardown(void **state) {
    (void)state;
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void paths(char *mi, char *pc, size_t len) {
    snprintf(mi, len, "%s/mountinfo", root);
    snprintf(pc, len, "%s/cgroup", root);
}

static void test_v2_limits_and_oom(void **state) {
    (void)state;
    char mi[PATH_MAX + 32], pc[PATH_MAX + 32], text[PATH_MAX * 2];
    paths(mi, pc, sizeof mi);
    mk("unified");
    mk("unified/svc");
    put("unified/svc/cgroup.controllers", "cpuset cpu io memory pids\n");
    snprintf(text, sizeof text, "30 20 0:26 / %s/unified rw,nosuid shared:4 - cgroup2 cgroup2 rw\n", root);
    put("mountinfo", text);
    put("cgroup", "0::/svc\n");
    cgroups cg;
    assert_int_equal(cg_setup(&cg, "auto", mi, pc), 0);
    assert_int_equal(cg.mode, CG_V2);
    assert_true(cg.cpu && cg.memory);
    assert_string_equal(get("unified/svc/cgroup.subtree_control"), "+cpu +memory");
    assert_string_equal(get("unified/svc/streamd/cgroup.subtree_control"), "+cpu +memory");
    cg_limits l = {250, 1.5, 64};
    assert_int_equal(cg_create(&cg, "topo-1", 6700, &l), 0);
    assert_string_equal(get("unified/svc/streamd/topo-1/cgroup.subtree_control"), "+cpu +memory");
    assert_string_equal(get("unified/svc/streamd/topo-1/6700/cpu.weight"), "250");
    assert_string_equal(get("unified/svc/streamd/topo-1/6700/cpu.max"), "150000 100000");
    assert_string_equal(get("unified/svc/streamd/topo-1/6700/memory.max"), "67108864");
    cg_limits none = {100, 0, 0};
    assert_int_equal(cg_create(&cg, "topo-1", 6701, &none), 0);
    assert_string_equal(get("unified/svc/streamd/topo-1/6701/cpu.max"), "max 100000");
    assert_string_equal(get("unified/svc/streamd/topo-1/6701/memory.max"), "max");
    assert_int_equal(cg_attach(&cg, "topo-1", 6700, 4242), 0);
    assert_string_equal(get("unified/svc/streamd/topo-1/6700/cgroup.procs"), "4242");
    assert_int_equal(cg_oom_kills(&cg, "topo-1", 6700), 0);
    put("unified/svc/streamd/topo-1/6700/memory.events", "low 0\nhigh 0\nmax 7\noom 3\noom_kill 2\n");
    assert_int_equal(cg_oom_kills(&cg, "topo-1", 6700), 2);
    char p[PATH_MAX];
    assert_int_equal(cg_path(&cg, "topo-1", 6700, p, sizeof p), 0);
    snprintf(text, sizeof text, "%s/unified/svc/streamd/topo-1/6700", root);
    assert_string_equal(p, text);
    /* a directory holding files stands for a cgroup with processes: it stays */
    assert_int_equal(cg_remove(&cg, "topo-1", 6700), -ENOTEMPTY);
}

static void test_v2_without_controllers(void **state) {
    (void)state;
    char mi[PATH_MAX + 32], pc[PATH_MAX + 32], text[PATH_MAX * 2];
    paths(mi, pc, sizeof mi);
    mk("unified");
    put("unified/cgroup.controllers", "\n");
    snprintf(text, sizeof text, "30 20 0:26 / %s/unified rw - cgroup2 cgroup2 rw\n", root);
    put("mountinfo", text);
    put("cgroup", "0::/\n");
    cgroups cg;
    /* auto with neither usable v2 controllers nor v1: v2 for placement only */
    assert_int_equal(cg_setup(&cg, "auto", mi, pc), 0);
    assert_int_equal(cg.mode, CG_V2);
    assert_false(cg.cpu || cg.memory);
    assert_non_null(strstr(cg.why, "not available"));
    cg_limits l = {100, 0, 64};
    assert_int_equal(cg_create(&cg, "t", 6700, &l), 0);
    assert_null(get("unified/streamd/t/6700/memory.max"));
    assert_int_equal(cg_remove(&cg, "t", 6700), 0);
    assert_null(get("unified/streamd/t/cgroup.subtree_control"));
    assert_int_equal(cg_setup(&cg, "v1", mi, pc), -ENOTSUP);
    assert_int_equal(cg_setup(&cg, "off", mi, pc), -ENOTSUP);
    assert_int_equal(cg_setup(&cg, "v3", mi, pc), -EINVAL);
}

static void test_v1_limits_below_own_cgroup(void **state) {
    (void)state;
    char mi[PATH_MAX + 32], pc[PATH_MAX + 32], text[PATH_MAX * 4];
    paths(mi, pc, sizeof mi);
    mk("cpu");
    mk("memory");
    mk("memory/a");
    snprintf(text, sizeof text,
             "40 20 0:30 / %s/cpu rw - cgroup cgroup rw,cpu,cpuacct\n"
             "41 20 0:31 /jobs %s/memory rw - cgroup cgroup rw,memory\n"
             "42 20 0:32 / %s/unified rw - cgroup2 cgroup2 rw\n",
             root, root, root);
    put("mountinfo", text);
    /* the memory mount shows /jobs of its hierarchy: /jobs/a is at <mnt>/a */
    put("cgroup", "5:memory:/jobs/a\n2:cpu,cpuacct:/\n0::/\n");
    cgroups cg;
    assert_int_equal(cg_setup(&cg, "auto", mi, pc), 0);
    assert_int_equal(cg.mode, CG_V1);
    assert_true(cg.cpu && cg.memory);
    cg_limits l = {50, 0.5, 100};
    assert_int_equal(cg_create(&cg, "t", 7000, &l), 0);
    assert_string_equal(get("cpu/streamd/t/7000/cpu.shares"), "512");
    assert_string_equal(get("cpu/streamd/t/7000/cpu.cfs_quota_us"), "50000");
    assert_string_equal(get("cpu/streamd/t/7000/cpu.cfs_period_us"), "100000");
    assert_string_equal(get("memory/a/streamd/t/7000/memory.limit_in_bytes"), "104857600");
    cg_limits none = {100, 0, 0};
    assert_int_equal(cg_create(&cg, "t", 7001, &none), 0);
    assert_string_equal(get("cpu/streamd/t/7001/cpu.cfs_quota_us"), "-1");
    assert_string_equal(get("memory/a/streamd/t/7001/memory.limit_in_bytes"), "-1");
    assert_int_equal(cg_attach(&cg, "t", 7000, 99), 0);
    assert_string_equal(get("cpu/streamd/t/7000/cgroup.procs"), "99");
    assert_string_equal(get("memory/a/streamd/t/7000/cgroup.procs"), "99");
    put("memory/a/streamd/t/7000/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n");
    assert_int_equal(cg_oom_kills(&cg, "t", 7000), 5);
    /* empty leftovers go at start; the ones holding something stay */
    mk("cpu/streamd/old");
    mk("cpu/streamd/old/6800");
    assert_int_equal(cg_remove_stale(&cg), 1);
    assert_null(get("cpu/streamd/old/6800/x"));
    struct stat st;
    snprintf(text, sizeof text, "%s/cpu/streamd/old", root);
    assert_int_equal(stat(text, &st), -1);
}

static pid_t sleeper(void) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(20); /* never outlives a failed test */
        for (;;) pause();
    }
    return pid;
}

static void test_owner_records(void **state) {
    (void)state;
    char mi[PATH_MAX + 32], pc[PATH_MAX + 32], text[PATH_MAX * 2], dir[PATH_MAX + 16];
    paths(mi, pc, sizeof mi);
    mk("unified");
    mk("unified/svc");
    mk("rec");
    snprintf(dir, sizeof dir, "%s/rec", root);
    snprintf(text, sizeof text, "30 20 0:26 / %s/unified rw - cgroup2 cgroup2 rw\n", root);
    put("mountinfo", text);
    put("cgroup", "0::/svc\n");
    cgroups cg;
    assert_int_equal(cg_setup(&cg, "v2", mi, pc), 0);
    cg_limits l = {100, 0, 0};
    /* a node process that is gone left a worker in topo-old/6900 */
    pid_t dead = fork();
    assert_true(dead >= 0);
    if (dead == 0) _exit(0);
    assert_int_equal(waitpid(dead, NULL, 0), dead);
    pid_t left = sleeper();
    assert_int_equal(cg_create(&cg, "topo-old", 6900, &l), 0);
    assert_int_equal(cg_attach(&cg, "topo-old", 6900, left), 0);
    snprintf(text, sizeof text, "rec/%d.cgroups", (int)dead);
    char body[128];
    snprintf(body, sizeof body, "%d 12345\ntopo-old 6900\n../escape 6900\ntopo-old 0\n", (int)dead);
    put(text, body);
    /* a live node process (a child here) recorded topo-live/6901 itself */
    pid_t owner = fork();
    assert_true(owner >= 0);
    if (owner == 0) {
        alarm(20);
        if (cgo_record(dir, "topo-live", 6901) != 0) _exit(1);
        for (;;) pause();
    }
    char owner_rec[64];
    snprintf(owner_rec, sizeof owner_rec, "rec/%d.cgroups", (int)owner);
    for (int i = 0; i < 500 && !get(owner_rec); i++) usleep(10000);
    assert_non_null(get(owner_rec));
    pid_t live = sleeper();
    assert_int_equal(cg_create(&cg, "topo-live", 6901, &l), 0);
    assert_int_equal(cg_attach(&cg, "topo-live", 6901, live), 0);
    /* and this process's own record is never reaped */
    assert_int_equal(cgo_record(dir, "topo-self", 6902), 0);

    cgo_reaped r;
    assert_int_equal(cgo_reap(&cg, dir, 300, &r), 0);
    assert_int_equal(r.records, 1);
    /* a plain file never empties as cgroup.procs does: "stuck", record kept */
    assert_int_equal(r.stuck, 1);
    int st = 0;
    assert_int_equal(waitpid(left, &st, 0), left);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    assert_int_equal(kill(live, 0), 0); /* the live owner's worker is untouched */
    assert_non_null(get(text));
    /* once empty, the cgroup goes (here: the record, as a fake cgroup is a
     * directory with files) */
    put("unified/svc/streamd/topo-old/6900/cgroup.procs", "");
    assert_int_equal(cgo_reap(&cg, dir, 300, &r), 0);
    assert_int_equal(r.records, 1);
    assert_int_equal(r.processes, 0);
    assert_int_equal(r.stuck, 0);
    assert_null(get(text));
    assert_non_null(get(owner_rec));
    cgo_forget(dir);
    snprintf(text, sizeof text, "rec/%d.cgroups", (int)getpid());
    assert_null(get(text));
    kill(live, SIGKILL);
    kill(owner, SIGKILL);
    waitpid(live, NULL, 0);
    waitpid(owner, NULL, 0);
    /* the owner is gone now: its record is reaped */
    put("unified/svc/streamd/topo-live/6901/cgroup.procs", "");
    assert_int_equal(cgo_reap(&cg, dir, 300, &r), 0);
    assert_int_equal(r.records, 1);
    assert_null(get(owner_rec));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v2_limits_and_oom, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_without_controllers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_limits_below_own_cgroup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_records, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
