/*
 * cgroup: one cgroup per worker process, below the cgroup the node itself
 * runs in (what systemd hands a service with Delegate=yes; never directly at
 * a hierarchy's root): <node's cgroup>/streamd/<topology-id>/<port>. Uses the
 * unified hierarchy (v2: cpu.weight, cpu.max, memory.max, memory.events) when
 * the node's cgroup there offers the cpu and memory controllers, else the v1
 * cpu and memory hierarchies (cpu.shares, cpu.cfs_quota_us,
 * memory.limit_in_bytes, memory.oom_control). Called by the node
 * (node.c, node_worker.c) on its loop thread; plain file I/O on cgroupfs,
 * which does not block. Low-level: returns error codes, logs nothing.
 */
#ifndef SD_CGROUP_H
#define SD_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum { CG_OFF, CG_V1, CG_V2 } cg_mode;

/* What a worker's cgroup is set to. */
typedef struct cg_limits {
    int64_t cpu_weight; /* 1..10000 (v2 units); v1 cpu.shares = weight * 1024 / 100 */
    double cpu_cores;   /* quota in cores per 100 ms period; 0 = none */
    int64_t memory_mb;  /* 0 = none */
} cg_limits;

typedef struct cgroups {
    cg_mode mode;
    bool cpu, memory;   /* the controller is usable (v2: enabled below the node) */
    char v2[PATH_MAX];  /* v2: <mount>/<node's cgroup>/streamd */
    char v1_cpu[PATH_MAX], v1_mem[PATH_MAX]; /* v1: <mount>/<node's cgroup>/streamd */
    char why[PATH_MAX + 1024];    /* when mode is CG_OFF or a controller is missing: the reason */
} cgroups;

/*
 * Finds the hierarchies from mountinfo and the node's own cgroup from
 * proc_cgroup (pass "/proc/self/mountinfo" and "/proc/self/cgroup"; tests
 * pass files describing a fake tree). want: "auto", "v1", "v2" or "off".
 * Fills cg; returns 0 when cgroups can be used (cg->mode != CG_OFF; a
 * controller may still be missing, see cg->cpu, cg->memory and cg->why),
 * -ENOTSUP with cg->why set when they cannot, -EINVAL for a bad want.
 * On v2 it enables cpu and memory for the streamd subtree; when the node's
 * own cgroup holds processes (which v2 forbids for a cgroup that delegates
 * controllers) it moves the node into <node's cgroup>/supervisor first.
 */
int cg_setup(cgroups *cg, const char *want, const char *mountinfo, const char *proc_cgroup);

/* Creates (or reuses) the cgroup of tid/port and writes the limits.
 * -errno of the first failing step. */
int cg_create(const cgroups *cg, const char *tid, int port, const cg_limits *l);
/* Moves pid into the cgroup of tid/port (every hierarchy in use). */
int cg_attach(const cgroups *cg, const char *tid, int port, pid_t pid);
/* The cgroup's count of OOM kills (v2 memory.events, v1 memory.oom_control
 * "oom_kill"); 0 when unknown. */
int64_t cg_oom_kills(const cgroups *cg, const char *tid, int port);
/* Removes the cgroup of tid/port, and tid's directory once empty. */
int cg_remove(const cgroups *cg, const char *tid, int port);
/* Removes every empty leftover cgroup below streamd/ (a node that died
 * leaves them). Returns how many were removed. */
int cg_remove_stale(const cgroups *cg);
/* Sends SIGKILL to every process in tid/port's cgroup (every hierarchy in
 * use), again every 20 ms, until the cgroup is empty or timeout_ms passed.
 * Blocks meanwhile (the node calls it at start, before its loop runs).
 * Returns how many processes were there at first (0 when the cgroup is
 * empty or gone), or -ETIMEDOUT when some remain. */
int cg_kill_all(const cgroups *cg, const char *tid, int port, int timeout_ms);
/* The path of tid/port's cgroup in the first hierarchy used (for logs and
 * tests); 0 or -ENAMETOOLONG. */
int cg_path(const cgroups *cg, const char *tid, int port, char *buf, size_t len);

#endif
