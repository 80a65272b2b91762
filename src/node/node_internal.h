/*
 * node_internal: what node.c (registration, lease, assignments, status keys)
 * and node_worker.c (one supervised worker process: spawn, control channel,
 * restart, stop) share. Not for callers outside src/node/.
 * Threads: only the node's loop thread touches any of this.
 */
#ifndef SD_NODE_INTERNAL_H
#define SD_NODE_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "node/cgroup.h"
#include "node/cgroup_owner.h"
#include "node/node.h"
#include "proto/control_chan.h"
#include "store/lease_keeper.h"

#define NODE_CHECK_MS 1000
#define NODE_MAX_PORTS 256
#define NODE_ERRORS_KEPT 5  /* latest error lines a worker's status shows */
#define NODE_FAILED_AFTER 5 /* exits in a row without a heartbeat: shown as "failed" */
#define NODE_REAP_TIMEOUT_MS 5000 /* SIGKILLing what an earlier run left in a cgroup, at start */
/* Bytes of control messages that may wait for a worker that does not read;
 * more means it is stalled: it is killed and restarted (a restarted worker
 * gets the current state with its assignment). */
#define NODE_CONTROL_QUEUE (1u << 20)

/* Worker states: RUNNING (a process exists), WAIT_RESTART (died unexpectedly,
 * restart timer armed), STOPPING (asked to stop, kill timer armed), GONE
 * (freed once its timer handle is closed). */
typedef enum { W_RUNNING, W_WAIT_RESTART, W_STOPPING, W_GONE } wstate;

typedef struct nworker nworker;

/* One process incarnation of a worker. */
typedef struct wproc {
    uv_process_t proc;
    control_chan *chan; /* the control channel, NULL once closed */
    nworker *w;         /* cleared when the process has exited */
    int open_handles;
} wproc;

/* One supervised worker (topology id + port); lives across restarts. */
struct nworker {
    node *n;
    nworker *next;
    char *topology_id;
    int port, index;
    json_t *msg;      /* the assignment control message to send */
    json_t *next_msg; /* a changed assignment to respawn with after the stop */
    json_t *last_hb;  /* the latest heartbeat (counters), or NULL */
    json_t *errors;   /* the latest NODE_ERRORS_KEPT error lines, across restarts */
    char status_key[512];
    char log_path[1024];
    char out_path[1024]; /* what user code writes to stdout/stderr: the log, this file, or "" = /dev/null */
    int64_t hb_interval_ms, hb_timeout_ms, cleanup_secs;
    bool json_log;      /* the topology's log.format is json */
    char hung[96];      /* why the node killed the live process (its last exit), or "" */
    wstate state;
    const char *shown_state; /* what the status key says now */
    wproc *p;                /* the live process, or NULL */
    int pid;
    int restarts;
    int failures; /* exits in a row without a heartbeat between them */
    char last_exit[96];
    cg_limits lim;      /* its cgroup's settings */
    bool in_cg;         /* the live process was placed in its cgroup */
    bool cg_recorded;   /* its cgroup is in the node's record (cgroup_owner.h) */
    int64_t oom_base;   /* the cgroup's OOM kill count when the process started */
    uint64_t spawned_ms, last_hb_ms;
    uv_timer_t timer; /* restart delay or kill deadline */
};

struct node {
    uv_loop_t *loop;
    store *st;
    char *id, *exe, *cluster, *host, *local_dir;
    int ports[NODE_MAX_PORTS], nports;
    int64_t restart_delay_ms, start_timeout_ms;
    int lease_ttl_secs;
    cgroups cg;       /* cg.mode CG_OFF: workers run without cgroups */
    char cg_record_dir[1100]; /* <local dir>/cgroups: the record of the cgroups this process made */
    bool drop_privs;  /* worker.user set and the node is root: workers run as */
    uid_t worker_uid; /* ... this user */
    gid_t worker_gid; /* ... and this group */
    bool cg_required; /* supervisor.cgroup.required */
    json_t *labels;   /* node.labels as an object */
    lease_keeper *keeper;
    int64_t lease;    /* the lease held now, 0 while none */
    bool registered;  /* nodes/<id> written under lease */
    char node_key[512], assign_prefix[512];
    store_watch *watch;
    bool listing;     /* a list of assignments/ is in flight */
    nworker *workers;
    int restarts;
    bool stopping, done_called;
    node_done_cb done_cb;
    void *done_arg;
    node_heartbeat_cb hb_cb;
    void *hb_arg;
    node_prepare_fn prepare;
    void *prepare_arg;
    uv_timer_t check_timer, done_timer;
    int open_handles;
};

/* node_worker.c */
nworker *node_worker_new(node *n, const char *tid, int port, int index, json_t *msg, const conf *tc,
                         const cg_limits *lim);
void node_worker_spawn(nworker *w);
void node_worker_stop(nworker *w);
/* Sends a control message (activate, deactivate) to a running worker. */
void node_worker_send(nworker *w, json_t *msg);
/* Removes the worker's cgroup once its process is gone. */
void node_worker_remove_cgroup(nworker *w);
/* Kills workers that stopped heartbeating; called every NODE_CHECK_MS. */
void node_worker_check(node *n);

/* node.c, called by node_worker.c */
void node_worker_gone(nworker *w);                 /* w is done for good: unlink, free later */
void node_worker_state(nworker *w, const char *s); /* writes the status key when s changes */
void node_worker_heartbeat(nworker *w, json_t *hb);

#endif
