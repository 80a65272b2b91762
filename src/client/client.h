/*
 * client: the client commands of the streamd executable: submit, list,
 * status, kill, activate, deactivate. They find the leader's API through
 * etcd (master/leader), or use --master URL, and print human output or,
 * with --json, JSON. Exit status: 0 done, 1 failed, 2 usage or invalid
 * input (the same FILE:LINE messages as local mode).
 */
#ifndef SD_CLIENT_H
#define SD_CLIENT_H

#include <stdbool.h>

#include "base/conf.h"

typedef struct client_options {
    const char *command;     /* "submit", "list", ... */
    char **args;             /* the command's operands */
    int nargs;
    const conf *conf;        /* effective configuration */
    const char *master_url;  /* --master; NULL = find the leader in etcd */
    bool json;               /* --json */
    int wait_secs;           /* kill --wait; -1 = not given */
} client_options;

/* True for the names client_run handles. */
bool client_is_command(const char *name);
int client_run(const client_options *o);

#endif
