/*
 * main: the one streamd executable. A worker (`--role=worker`, started by a
 * node) runs here, linked with only what a worker needs. Every other role
 * and every client command is in the roles module (src/roles_main.c, built
 * as streamd-roles.so with libcurl, libmicrohttpd and libarchive), which is
 * loaded from next to the executable, or else from the install directory.
 * A worker therefore never maps those libraries and what they pull in.
 */
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "roles_main.h"
#include "worker/worker.h"

#ifndef STREAMD_ROLES_DIR
#error "STREAMD_ROLES_DIR: where the roles module is installed (meson.build)"
#endif

static bool is_worker_role(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--role=worker") == 0) return true;
        if (strcmp(argv[i], "--role") == 0 && i + 1 < argc && strcmp(argv[i + 1], "worker") == 0) return true;
    }
    return false;
}

static int parse_fd(const char *opt, const char *text, int *out) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || errno != 0 || v < 0 || v > INT_MAX) {
        fprintf(stderr, "streamd: %s: expected an fd\n", opt);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* `streamd --role=worker --control-fd=N [--log-fd=N] [--log-format=F]` */
static int worker_command(int argc, char **argv) {
    enum { OPT_ROLE = 256, OPT_CONTROL_FD, OPT_LOG_FD, OPT_LOG_FORMAT };
    static const struct option opts[] = {
        {"role", required_argument, NULL, OPT_ROLE},
        {"control-fd", required_argument, NULL, OPT_CONTROL_FD},
        {"log-fd", required_argument, NULL, OPT_LOG_FD},
        {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
        {NULL, 0, NULL, 0},
    };
    int control_fd = -1, log_fd = -1, c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_ROLE: break;
        case OPT_CONTROL_FD:
            if (parse_fd("--control-fd", optarg, &control_fd) != 0) return 2;
            break;
        case OPT_LOG_FD:
            if (parse_fd("--log-fd", optarg, &log_fd) != 0) return 2;
            break;
        case OPT_LOG_FORMAT:
            if (strcmp(optarg, "text") != 0 && strcmp(optarg, "json") != 0) {
                fprintf(stderr, "streamd: --log-format: expected text or json\n");
                return 2;
            }
            log_set_json(strcmp(optarg, "json") == 0);
            break;
        default:
            fprintf(stderr, "streamd: --role=worker takes only --control-fd, --log-fd and --log-format\n");
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "streamd: --role=worker takes no operands\n");
        return 2;
    }
    if (control_fd < 0) {
        fprintf(stderr, "streamd: --role=worker needs --control-fd\n");
        return 2;
    }
    return worker_main(control_fd, log_fd);
}

/* The module next to this executable (a build tree, or a relocated
 * install) wins over the one in the install directory. */
static int roles_module_path(char *buf, size_t cap) {
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n > 0) {
        buf[n] = '\0';
        char *slash = strrchr(buf, '/');
        if (slash && (size_t)(slash + 1 - buf) + sizeof SD_ROLES_MODULE <= cap) {
            memcpy(slash + 1, SD_ROLES_MODULE, sizeof SD_ROLES_MODULE);
            if (access(buf, F_OK) == 0) return 0;
        }
    }
    int len = snprintf(buf, cap, "%s/%s", STREAMD_ROLES_DIR, SD_ROLES_MODULE);
    return len > 0 && (size_t)len < cap ? 0 : -ENAMETOOLONG;
}

static int run_roles_module(int argc, char **argv) {
    char path[PATH_MAX];
    if (roles_module_path(path, sizeof path) != 0) {
        fprintf(stderr, "streamd: the roles module's path is too long\n");
        return 1;
    }
    /* RTLD_LOCAL: nothing of the module joins the global scope that
     * component libraries bind against */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        fprintf(stderr, "streamd: cannot load the roles module %s: %s\n", path, why ? why : "unknown error");
        return 1;
    }
    sd_roles_main_fn *entry = (sd_roles_main_fn *)dlsym(h, SD_ROLES_ENTRY);
    if (!entry) {
        fprintf(stderr, "streamd: %s has no %s: reinstall streamd\n", path, SD_ROLES_ENTRY);
        return 1;
    }
    /* not closed: the roles' threads and atexit handlers live in it */
    return entry(argc, argv, STREAMD_VERSION);
}

int main(int argc, char **argv) {
    log_init(); /* before any thread: the host tag is only read after this */
    if (is_worker_role(argc, argv)) return worker_command(argc, argv);
    return run_roles_module(argc, argv);
}
