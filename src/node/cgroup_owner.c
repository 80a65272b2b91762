/*
 * cgroup_owner: a node process's record of the worker cgroups it made, and
 * the reaping of the records of node processes that are gone (see
 * cgroup_owner.h). Record format, one item per line:
 *   <pid> <start time in clock ticks since boot>     (the owner)
 *   <topology-id> <port>                             (one per cgroup made)
 * The start time tells a reused pid from the recorded process.
 */
#include "node/cgroup_owner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CGO_SUFFIX ".cgroups"

/* Start time (field 22 of /proc/<pid>/stat) of a process that runs, or 0
 * when it does not (gone, zombie). */
static unsigned long long start_time(long pid) {
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t r = read(fd, text, sizeof text - 1);
    close(fd);
    if (r <= 0) return 0;
    text[r] = '\0';
    char *p = strrchr(text, ')'); /* the command name may hold spaces and ')' */
    if (!p || p[1] != ' ') return 0;
    p += 2;
    if (*p == 'Z' || *p == 'X') return 0;
    /* p is at field 3 (state); the start time is field 22 */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p) return 0;
        p++;
    }
    return strtoull(p, NULL, 10);
}

static int record_path(char *out, size_t len, const char *dir, long pid) {
    return snprintf(out, len, "%s/%ld" CGO_SUFFIX, dir, pid) >= (int)len ? -ENAMETOOLONG : 0;
}

int cgo_record(const char *dir, const char *tid, int port) {
    char path[PATH_MAX], line[512];
    int rc = record_path(path, sizeof path, dir, (long)getpid());
    if (rc != 0) return rc;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return -errno;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    struct stat st;
    int len = 0;
    if (fstat(fd, &st) == 0 && st.st_size == 0)
        len = snprintf(line, sizeof line, "%ld %llu\n", (long)getpid(), start_time((long)getpid()));
    int more = snprintf(line + len, sizeof line - (size_t)len, "%s %d\n", tid, port);
    rc = more >= (int)(sizeof line - (size_t)len) ? -ENAMETOOLONG : 0;
    if (rc == 0) {
        ssize_t w = write(fd, line, (size_t)(len + more)); /* one append: a crash leaves whole lines */
        rc = w < 0 ? -errno : w != len + more ? -EIO : 0;
    }
    if (close(fd) != 0 && rc == 0) rc = -errno;
    return rc;
}

void cgo_forget(const char *dir) {
    char path[PATH_MAX];
    if (record_path(path, sizeof path, dir, (long)getpid()) == 0) unlink(path);
}

/* A recorded topology id must be one path component. */
static bool valid_tid(const char *tid) {
    size_t n = strlen(tid);
    return n > 0 && n < 256 && tid[0] != '.' && !strchr(tid, '/');
}

/* Reaps one record of a process that is gone; true when it may be deleted. */
static bool reap_record(const cgroups *cg, FILE *f, int timeout_ms, cgo_reaped *out) {
    char line[512], tid[300];
    int port;
    bool all = true;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%299s %d", tid, &port) != 2 || !valid_tid(tid) || port <= 0 || port > 65535) continue;
        int rc = cg_kill_all(cg, tid, port, timeout_ms);
        if (rc == -ETIMEDOUT) {
            out->stuck++;
            all = false;
            continue;
        }
        if (rc > 0) out->processes += rc;
        char path[PATH_MAX];
        /* the cgroup may be gone already (its worker ended normally) */
        if (cg_path(cg, tid, port, path, sizeof path) == 0 && access(path, F_OK) == 0) out->cgroups++;
        cg_remove(cg, tid, port);
    }
    return all;
}

int cgo_reap(const cgroups *cg, const char *dir, int timeout_ms, cgo_reaped *out) {
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : -errno;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (end == e->d_name || strcmp(end, CGO_SUFFIX) != 0 || pid <= 0 || pid == (long)getpid()) continue;
        char path[PATH_MAX];
        if (record_path(path, sizeof path, dir, pid) != 0) continue;
        FILE *f = fopen(path, "re");
        if (!f) continue;
        char head[128];
        long owner = 0;
        unsigned long long started = 0;
        bool ok = fgets(head, sizeof head, f) && sscanf(head, "%ld %llu", &owner, &started) == 2 && owner == pid;
        /* the owner still runs (same pid, same start time): not stale */
        unsigned long long now = start_time(pid);
        if (ok && now != 0 && (started == 0 || now == started)) {
            fclose(f);
            continue;
        }
        out->records++;
        bool done = !ok || reap_record(cg, f, timeout_ms, out);
        fclose(f);
        if (done) unlink(path);
    }
    closedir(d);
    return 0;
}
