/*
 * cgroup: per-worker cgroups below the node's own cgroup (see cgroup.h).
 * Paths: every hierarchy in use gets <node's cgroup>/streamd/<tid>/<port>.
 * Port numbers are unique per host (workers listen on them), so nodes that
 * share a cgroup do not collide.
 */
#include "node/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CG_DIR "streamd"

static int write_text(const char *dir, const char *file, const char *text) {
    char path[PATH_MAX + 64];
    if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path) return -ENAMETOOLONG;
    /* O_CREAT only matters for trees that are not cgroupfs (tests) */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    int rc = w < 0 ? -errno : (size_t)w != len ? -EIO : 0;
    if (close(fd) != 0 && rc == 0) rc = -errno;
    return rc;
}

/* Reads up to len-1 bytes of dir/file; -errno on error. */
static int read_text(const char *dir, const char *file, char *buf, size_t len) {
    char path[PATH_MAX + 64];
    if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path) return -ENAMETOOLONG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    ssize_t r = read(fd, buf, len - 1);
    int rc = r < 0 ? -errno : 0;
    close(fd);
    buf[r > 0 ? r : 0] = '\0';
    return rc;
}

static bool has_word(const char *list, const char *word, const char *seps) {
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)); p += n) {
        bool start = p == list || strchr(seps, p[-1]);
        bool end = p[n] == '\0' || strchr(seps, p[n]);
        if (start && end) return true;
    }
    return false;
}

/* dir = mountpoint + the part of own below the mount's root. */
static int join_mount(char *out, size_t len, const char *mnt, const char *root, const char *own) {
    size_t rl = strlen(root);
    const char *rel = own;
    if (strcmp(root, "/") != 0 && strncmp(own, root, rl) == 0 && (own[rl] == '/' || own[rl] == '\0')) rel = own + rl;
    else if (strcmp(root, "/") != 0) rel = ""; /* own cgroup outside the mount: use the mount's top */
    if (strcmp(rel, "/") == 0) rel = "";
    if (snprintf(out, len, "%s%s/%s", mnt, rel, CG_DIR) >= (int)len) return -ENAMETOOLONG;
    return 0;
}

/* The node's cgroup path for a v1 controller ("cpu") or v2 (ctl NULL). */
static bool own_cgroup(const char *proc_cgroup, const char *ctl, char *out, size_t len) {
    FILE *f = fopen(proc_cgroup, "re");
    if (!f) return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c2 = '\0';
        const char *ctls = c1 + 1;
        bool match = ctl ? has_word(ctls, ctl, ",") : (strncmp(line, "0:", 2) == 0 && *ctls == '\0');
        if (match && snprintf(out, len, "%s", c2 + 1) < (int)len) found = true;
    }
    fclose(f);
    return found;
}

typedef struct mounts {
    char v2[PATH_MAX], v2_root[PATH_MAX];
    char cpu[PATH_MAX], cpu_root[PATH_MAX];
    char mem[PATH_MAX], mem_root[PATH_MAX];
} mounts;

static void read_mounts(const char *mountinfo, mounts *m) {
    memset(m, 0, sizeof *m);
    FILE *f = fopen(mountinfo, "re");
    if (!f) return;
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *sep = strstr(line, " - ");
        if (!sep) continue;
        *sep = '\0';
        char fstype[64], source[256], opts[1024] = "";
        if (sscanf(sep + 3, "%63s %255s %1023s", fstype, source, opts) < 2) continue;
        char root[PATH_MAX], mnt[PATH_MAX];
        if (sscanf(line, "%*s %*s %*s %4095s %4095s", root, mnt) != 2) continue;
        if (strcmp(fstype, "cgroup2") == 0 && !m->v2[0]) {
            snprintf(m->v2, sizeof m->v2, "%s", mnt);
            snprintf(m->v2_root, sizeof m->v2_root, "%s", root);
        } else if (strcmp(fstype, "cgroup") == 0) {
            if (has_word(opts, "cpu", ",") && !m->cpu[0]) {
                snprintf(m->cpu, sizeof m->cpu, "%s", mnt);
                snprintf(m->cpu_root, sizeof m->cpu_root, "%s", root);
            }
            if (has_word(opts, "memory", ",") && !m->mem[0]) {
                snprintf(m->mem, sizeof m->mem, "%s", mnt);
                snprintf(m->mem_root, sizeof m->mem_root, "%s", root);
            }
        }
    }
    fclose(f);
}

static int mkdir_ok(const char *path) { return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -errno; }

/* Enables the controllers cg has for the children of dir. */
static int delegate(const cgroups *cg, const char *dir) {
    char text[32] = "";
    if (cg->cpu) strcat(text, "+cpu ");
    if (cg->memory) strcat(text, "+memory");
    return *text ? write_text(dir, "cgroup.subtree_control", text) : 0;
}

static int setup_v2(cgroups *cg, const mounts *m, const char *proc_cgroup) {
    char own[PATH_MAX], own_dir[PATH_MAX], ctls[512] = "";
    if (!own_cgroup(proc_cgroup, NULL, own, sizeof own) || join_mount(cg->v2, sizeof cg->v2, m->v2, m->v2_root, own))
        return -ENOTSUP;
    snprintf(own_dir, sizeof own_dir, "%.*s", (int)(strlen(cg->v2) - strlen("/" CG_DIR)), cg->v2);
    read_text(own_dir, "cgroup.controllers", ctls, sizeof ctls);
    cg->cpu = has_word(ctls, "cpu", " \n");
    cg->memory = has_word(ctls, "memory", " \n");
    if (!cg->cpu || !cg->memory)
        snprintf(cg->why, sizeof cg->why, "the cpu or memory controller is not available in %s (it offers '%.*s')",
                 own_dir, (int)strcspn(ctls, "\n"), ctls);
    int rc = delegate(cg, own_dir);
    if (rc == -EBUSY) {
        /* v2 lets only a cgroup without processes delegate controllers:
         * move the node into a leaf of its own first */
        char sup[PATH_MAX + 16], pid[32];
        snprintf(sup, sizeof sup, "%s/supervisor", own_dir);
        snprintf(pid, sizeof pid, "%d", (int)getpid());
        if ((rc = mkdir_ok(sup)) == 0 && (rc = write_text(sup, "cgroup.procs", pid)) == 0) rc = delegate(cg, own_dir);
    }
    if (rc != 0) {
        snprintf(cg->why, sizeof cg->why, "cannot enable controllers below %s: %s", own_dir, strerror(-rc));
        cg->cpu = cg->memory = false;
    }
    if ((rc = mkdir_ok(cg->v2)) != 0) {
        snprintf(cg->why, sizeof cg->why, "cannot create %s: %s", cg->v2, strerror(-rc));
        return -ENOTSUP;
    }
    if (delegate(cg, cg->v2) != 0) {
        snprintf(cg->why, sizeof cg->why, "cannot enable controllers in %s", cg->v2);
        cg->cpu = cg->memory = false;
    }
    cg->mode = CG_V2;
    return 0;
}

static int setup_v1(cgroups *cg, const mounts *m, const char *proc_cgroup) {
    char own[PATH_MAX];
    int rc;
    if (m->cpu[0] && own_cgroup(proc_cgroup, "cpu", own, sizeof own) &&
        join_mount(cg->v1_cpu, sizeof cg->v1_cpu, m->cpu, m->cpu_root, own) == 0) {
        if ((rc = mkdir_ok(cg->v1_cpu)) == 0) cg->cpu = true;
        else snprintf(cg->why, sizeof cg->why, "cannot create %s: %s", cg->v1_cpu, strerror(-rc));
    } else {
        snprintf(cg->why, sizeof cg->why, "no v1 cpu hierarchy");
    }
    if (m->mem[0] && own_cgroup(proc_cgroup, "memory", own, sizeof own) &&
        join_mount(cg->v1_mem, sizeof cg->v1_mem, m->mem, m->mem_root, own) == 0) {
        if ((rc = mkdir_ok(cg->v1_mem)) == 0) cg->memory = true;
        else snprintf(cg->why, sizeof cg->why, "cannot create %s: %s", cg->v1_mem, strerror(-rc));
    } else {
        snprintf(cg->why, sizeof cg->why, "no v1 memory hierarchy");
    }
    if (!cg->cpu) cg->v1_cpu[0] = '\0';
    if (!cg->memory) cg->v1_mem[0] = '\0';
    if (!cg->cpu && !cg->memory) return -ENOTSUP;
    cg->mode = CG_V1;
    return 0;
}

int cg_setup(cgroups *cg, const char *want, const char *mountinfo, const char *proc_cgroup) {
    memset(cg, 0, sizeof *cg);
    if (strcmp(want, "off") == 0) {
        snprintf(cg->why, sizeof cg->why, "supervisor.cgroup.mode is off");
        return -ENOTSUP;
    }
    if (strcmp(want, "auto") != 0 && strcmp(want, "v1") != 0 && strcmp(want, "v2") != 0) return -EINVAL;
    mounts m;
    read_mounts(mountinfo, &m);
    int rc = -ENOTSUP;
    if (strcmp(want, "v2") == 0) {
        if (!m.v2[0]) snprintf(cg->why, sizeof cg->why, "no cgroup2 mount");
        else rc = setup_v2(cg, &m, proc_cgroup);
    } else if (strcmp(want, "v1") == 0) {
        rc = setup_v1(cg, &m, proc_cgroup);
    } else {
        /* auto: v2 when it has the controllers, else v1, else v2 for
         * placement only */
        char own[PATH_MAX], dir[PATH_MAX], ctls[512] = "";
        bool v2_full = false;
        if (m.v2[0] && own_cgroup(proc_cgroup, NULL, own, sizeof own) &&
            join_mount(dir, sizeof dir, m.v2, m.v2_root, own) == 0) {
            dir[strlen(dir) - strlen("/" CG_DIR)] = '\0';
            read_text(dir, "cgroup.controllers", ctls, sizeof ctls);
            v2_full = has_word(ctls, "cpu", " \n") && has_word(ctls, "memory", " \n");
        }
        if (v2_full) rc = setup_v2(cg, &m, proc_cgroup);
        else if (m.cpu[0] || m.mem[0]) rc = setup_v1(cg, &m, proc_cgroup);
        else if (m.v2[0]) rc = setup_v2(cg, &m, proc_cgroup);
        else snprintf(cg->why, sizeof cg->why, "no cgroup hierarchy is mounted");
    }
    if (rc != 0) cg->mode = CG_OFF;
    return rc;
}

static int leaf(char *out, size_t len, const char *base, const char *tid, int port) {
    return snprintf(out, len, "%s/%s/%d", base, tid, port) >= (int)len ? -ENAMETOOLONG : 0;
}

int cg_path(const cgroups *cg, const char *tid, int port, char *buf, size_t len) {
    const char *base = cg->mode == CG_V2 ? cg->v2 : cg->v1_cpu[0] ? cg->v1_cpu : cg->v1_mem;
    return leaf(buf, len, base, tid, port);
}

/* Creates base/tid (delegating on v2) and base/tid/port into out. */
static int make_leaf(const cgroups *cg, const char *base, const char *tid, int port, char *out, size_t len) {
    char mid[PATH_MAX];
    int rc;
    if (snprintf(mid, sizeof mid, "%s/%s", base, tid) >= (int)sizeof mid) return -ENAMETOOLONG;
    if ((rc = mkdir_ok(mid)) != 0) return rc;
    if (cg->mode == CG_V2 && (rc = delegate(cg, mid)) != 0) return rc;
    if ((rc = leaf(out, len, base, tid, port)) != 0) return rc;
    return mkdir_ok(out);
}

int cg_create(const cgroups *cg, const char *tid, int port, const cg_limits *l) {
    char dir[PATH_MAX], text[64];
    int rc;
    int64_t weight = l->cpu_weight < 1 ? 1 : l->cpu_weight > 10000 ? 10000 : l->cpu_weight;
    int64_t quota = l->cpu_cores > 0 ? (int64_t)(l->cpu_cores * 100000 + 0.5) : 0;
    if (l->cpu_cores > 0 && quota < 1000) quota = 1000; /* the kernel's smallest quota */
    if (cg->mode == CG_V2) {
        if ((rc = make_leaf(cg, cg->v2, tid, port, dir, sizeof dir)) != 0) return rc;
        if (cg->cpu) {
            snprintf(text, sizeof text, "%" PRId64, weight);
            if ((rc = write_text(dir, "cpu.weight", text)) != 0) return rc;
            if (quota) snprintf(text, sizeof text, "%" PRId64 " 100000", quota);
            else snprintf(text, sizeof text, "max 100000");
            if ((rc = write_text(dir, "cpu.max", text)) != 0) return rc;
        }
        if (cg->memory) {
            if (l->memory_mb > 0) snprintf(text, sizeof text, "%" PRId64, l->memory_mb * 1024 * 1024);
            else snprintf(text, sizeof text, "max");
            if ((rc = write_text(dir, "memory.max", text)) != 0) return rc;
            /* no swap beyond the limit, so the limit is what triggers an OOM kill */
            if (l->memory_mb > 0) write_text(dir, "memory.swap.max", "0");
        }
        return 0;
    }
    if (cg->mode != CG_V1) return -ENOTSUP;
    if (cg->cpu) {
        if ((rc = make_leaf(cg, cg->v1_cpu, tid, port, dir, sizeof dir)) != 0) return rc;
        snprintf(text, sizeof text, "%" PRId64, weight * 1024 / 100 < 2 ? 2 : weight * 1024 / 100);
        if ((rc = write_text(dir, "cpu.shares", text)) != 0) return rc;
        if ((rc = write_text(dir, "cpu.cfs_period_us", "100000")) != 0) return rc;
        snprintf(text, sizeof text, "%" PRId64, quota ? quota : -1);
        if ((rc = write_text(dir, "cpu.cfs_quota_us", text)) != 0) return rc;
    }
    if (cg->memory) {
        if ((rc = make_leaf(cg, cg->v1_mem, tid, port, dir, sizeof dir)) != 0) return rc;
        snprintf(text, sizeof text, "%" PRId64, l->memory_mb > 0 ? l->memory_mb * 1024 * 1024 : (int64_t)-1);
        if ((rc = write_text(dir, "memory.limit_in_bytes", text)) != 0) return rc;
        /* memsw may be absent (swap accounting off); the limit alone then applies */
        if (l->memory_mb > 0) write_text(dir, "memory.memsw.limit_in_bytes", text);
    }
    return 0;
}

int cg_attach(const cgroups *cg, const char *tid, int port, pid_t pid) {
    char dir[PATH_MAX], text[32];
    const char *bases[3] = {cg->mode == CG_V2 ? cg->v2 : cg->v1_cpu, cg->mode == CG_V1 ? cg->v1_mem : "", NULL};
    snprintf(text, sizeof text, "%d", (int)pid);
    for (int i = 0; bases[i]; i++) {
        if (!bases[i][0]) continue;
        int rc = leaf(dir, sizeof dir, bases[i], tid, port);
        if (rc == 0) rc = write_text(dir, "cgroup.procs", text);
        if (rc != 0) return rc;
    }
    return 0;
}

/* The number after "key " in a "key value" per line file. */
static int64_t keyed_value(const char *text, const char *key) {
    size_t n = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, key, n) == 0 && p[n] == ' ') return strtoll(p + n + 1, NULL, 10);
    return 0;
}

int64_t cg_oom_kills(const cgroups *cg, const char *tid, int port) {
    char dir[PATH_MAX], text[1024];
    if (!cg->memory) return 0;
    if (cg->mode == CG_V2) {
        if (leaf(dir, sizeof dir, cg->v2, tid, port) != 0 || read_text(dir, "memory.events", text, sizeof text) != 0)
            return 0;
        return keyed_value(text, "oom_kill");
    }
    if (leaf(dir, sizeof dir, cg->v1_mem, tid, port) != 0 || read_text(dir, "memory.oom_control", text, sizeof text) != 0)
        return 0;
    return keyed_value(text, "oom_kill");
}

static int remove_in(const char *base, const char *tid, int port) {
    char dir[PATH_MAX];
    int rc = 0;
    if (!base[0]) return 0;
    if (leaf(dir, sizeof dir, base, tid, port) == 0 && rmdir(dir) != 0 && errno != ENOENT) rc = -errno;
    if (snprintf(dir, sizeof dir, "%s/%s", base, tid) < (int)sizeof dir) rmdir(dir); /* fails while others remain */
    return rc;
}

int cg_remove(const cgroups *cg, const char *tid, int port) {
    if (cg->mode == CG_V2) return remove_in(cg->v2, tid, port);
    if (cg->mode != CG_V1) return 0;
    int a = remove_in(cg->v1_cpu, tid, port), b = remove_in(cg->v1_mem, tid, port);
    return a ? a : b;
}

static int remove_stale_in(const char *base) {
    int removed = 0;
    if (!base[0]) return 0;
    DIR *d = opendir(base);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_type != DT_DIR || e->d_name[0] == '.') continue;
        char mid[PATH_MAX];
        if (snprintf(mid, sizeof mid, "%s/%s", base, e->d_name) >= (int)sizeof mid) continue;
        DIR *m = opendir(mid);
        if (!m) continue;
        struct dirent *p;
        while ((p = readdir(m))) {
            char dir[PATH_MAX + 300];
            char *end;
            strtol(p->d_name, &end, 10);
            if (p->d_type != DT_DIR || p->d_name[0] == '.' || *end) continue;
            snprintf(dir, sizeof dir, "%s/%s", mid, p->d_name);
            if (rmdir(dir) == 0) removed++; /* a cgroup with processes stays */
        }
        closedir(m);
        rmdir(mid);
    }
    closedir(d);
    return removed;
}

int cg_remove_stale(const cgroups *cg) {
    if (cg->mode == CG_V2) return remove_stale_in(cg->v2);
    if (cg->mode != CG_V1) return 0;
    return remove_stale_in(cg->v1_cpu) + remove_stale_in(cg->v1_mem);
}

/* SIGKILLs every pid listed in dir/cgroup.procs; the count listed, or -errno
 * (-ENOENT: the cgroup is gone, nothing to kill). */
static int kill_listed(const char *dir) {
    char path[PATH_MAX + 32];
    if (snprintf(path, sizeof path, "%s/cgroup.procs", dir) >= (int)sizeof path) return -ENAMETOOLONG;
    FILE *f = fopen(path, "re");
    if (!f) return -errno;
    int listed = 0;
    char line[64];
    while (fgets(line, sizeof line, f)) {
        char *end;
        long pid = strtol(line, &end, 10);
        if (end == line || pid <= 1) continue; /* never pid 1 or a bad line */
        listed++;
        kill((pid_t)pid, SIGKILL);             /* ESRCH: it exited meanwhile */
    }
    fclose(f);
    return listed;
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int cg_kill_all(const cgroups *cg, const char *tid, int port, int timeout_ms) {
    const char *bases[2] = {cg->mode == CG_V2 ? cg->v2 : cg->v1_cpu, cg->mode == CG_V1 ? cg->v1_mem : ""};
    if (cg->mode == CG_OFF) return 0;
    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    int first = -1;
    for (;;) {
        int listed = 0;
        for (int i = 0; i < 2; i++) {
            char dir[PATH_MAX];
            if (!bases[i][0] || leaf(dir, sizeof dir, bases[i], tid, port) != 0) continue;
            int rc = kill_listed(dir);
            if (rc > listed) listed = rc; /* v1: the same processes are in both hierarchies */
        }
        if (first < 0) first = listed;
        if (listed == 0) return first;
        if (now_ms() >= deadline) return -ETIMEDOUT;
        /* SIGKILL takes effect when the process next runs; wait a little */
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}
