/*
 * etcd_env: what test_etcd runs against: real etcd processes on free ports
 * of 24100-24199 (started, health-checked, stopped, restarted on the same
 * data), a throw-away CA with server and client certificates, and a fake
 * etcd (a thread with a blocking socket) that answers whatever the test
 * sets. Test code only: blocking calls are fine here, never in the store.
 */
#ifndef SD_TEST_ETCD_ENV_H
#define SD_TEST_ETCD_ENV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

uint64_t env_now_ms(void);
/* A port of 24100-24199 that binds now and no other test process (nor this
 * one) was given. */
int env_pick_port(void);
/* A listening socket on a new port that never accepts: connections
 * complete and then hear nothing. Returns the fd; *port is set. */
int env_silent_listener(int *port);
/* Makes a temporary directory under /tmp into root (cap bytes). */
int env_tmp_root(char *root, size_t cap);
/* rm -rf root */
void env_rm_tree(const char *root);
/* Makes ca.crt, server.crt|key (for 127.0.0.1) and client.crt|key in
 * root/certs with the openssl tool; writes that directory into dir.
 * -1 (dir "") when openssl is missing or fails. */
int env_make_certs(const char *root, char *dir, size_t cap);

typedef struct etcd_proc {
    pid_t pid;
    int port, peer;
    char dir[128], url[64];
    char tls_dir[128]; /* "" = plain http */
} etcd_proc;

/* Names e's directory root/name and picks its ports; tls_dir NULL = http. */
void etcd_proc_init(etcd_proc *e, const char *root, const char *name, const char *tls_dir);
/* Starts etcd on e's data (kept across restarts) and waits until healthy. */
void etcd_proc_start(etcd_proc *e);
void etcd_proc_stop(etcd_proc *e);
/* Stops every etcd still running (for a teardown after a failed test). */
void etcd_proc_stop_all(void);
/* POSTs body to path (e.g. /v3/kv/compaction) and expects 200. */
void etcd_proc_post(const etcd_proc *e, const char *path, const char *body);
/* Runs etcdctl with args against e and expects success. */
void etcd_proc_ctl(const etcd_proc *e, const char *args);

typedef struct fake_etcd {
    int fd, port;
    pthread_t th;
    atomic_bool stop;
    atomic_int conns;  /* connections accepted */
    atomic_int active; /* connections being served */
    pthread_mutex_t mu;
    char status[64];
    char body[1024];
    int hold_ms; /* > 0: keep each answer's connection open this long */
} fake_etcd;

void fake_start(fake_etcd *f);
/* What every request gets from now on: "200 OK" and a body. With hold_ms
 * the body is sent without a length and the connection kept open (a
 * stream that stays quiet). */
void fake_answer(fake_etcd *f, const char *status, const char *body, int hold_ms);
void fake_stop(fake_etcd *f);

#endif
