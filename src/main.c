/*
 * main: the one streamd executable. Parses the command line, builds the
 * configuration (defaults < --config FILE < topology config: < -c key=value)
 * and hands over to the role: local mode, a worker (forked by a node), ...
 * Bad input exits with status 2 and one line naming file, line and key.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "local.h"
#include "log.h"
#include "topology.h"
#include "worker.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: streamd --role=ROLE [options] [TOPOLOGY.yaml]\n"
            "\n"
            "roles:\n"
            "  local     run TOPOLOGY.yaml on this machine: master and node logic in one\n"
            "            process on the embedded store, with real worker processes\n"
            "  worker    internal: started by a node, never by hand\n"
            "  master    cluster master (nimbus)   [not in this version yet]\n"
            "  node      cluster node (supervisor) [not in this version yet]\n"
            "\n"
            "options:\n"
            "  --config FILE       configuration file (see etc/streamd.yaml)\n"
            "  -c KEY=VALUE        set one configuration key (wins over everything)\n"
            "  --until-drained     local: exit once every spout is exhausted and every tuple\n"
            "                      tree has completed (status 1 if any tuple failed for good)\n"
            "  --duration SECS     local: stop gracefully after SECS seconds\n"
            "  --control-fd N      worker: the node's control channel\n"
            "  --help, --version\n"
            "\n"
            "Configuration keys and their defaults are documented in etc/streamd.yaml.\n");
}

static conf *base, *overrides; /* freed on every exit path by fail_input/done */

static int done(int rc) {
    conf_free(base);
    conf_free(overrides);
    base = overrides = NULL;
    return rc;
}

static int fail_input(const char *msg) {
    fprintf(stderr, "streamd: %s\n", msg);
    return done(2);
}

int main(int argc, char **argv) {
    enum { OPT_ROLE = 256, OPT_CONFIG, OPT_UNTIL_DRAINED, OPT_DURATION, OPT_CONTROL_FD, OPT_HELP, OPT_VERSION };
    static const struct option opts[] = {
        {"role", required_argument, NULL, OPT_ROLE},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"until-drained", no_argument, NULL, OPT_UNTIL_DRAINED},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"control-fd", required_argument, NULL, OPT_CONTROL_FD},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    const char *role = NULL, *config_path = NULL;
    int until_drained = 0, control_fd = -1;
    long duration = 0;
    char err[1024];
    overrides = conf_new();
    base = conf_new();
    if (!overrides || !base) return done(1);
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case OPT_ROLE: role = optarg; break;
        case OPT_CONFIG: config_path = optarg; break;
        case OPT_UNTIL_DRAINED: until_drained = 1; break;
        case OPT_DURATION:
            duration = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || duration <= 0 || duration > 365L * 24 * 3600)
                return fail_input("--duration: expected a number of seconds from 1 to 31536000");
            break;
        case OPT_CONTROL_FD:
            control_fd = (int)strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || control_fd < 0) return fail_input("--control-fd: expected an fd");
            break;
        case 'c':
            if (conf_set_kv(overrides, optarg, err, sizeof err) != 0) return fail_input(err);
            break;
        case 'h':
        case OPT_HELP: usage(stdout); return done(0);
        case OPT_VERSION: printf("streamd %s\n", STREAMD_VERSION); return done(0);
        default: usage(stderr); return done(2);
        }
    }
    if (!role) {
        usage(stderr);
        return done(2);
    }
    if (strcmp(role, "worker") == 0) {
        if (control_fd < 0) return fail_input("--role=worker needs --control-fd");
        return done(worker_main(control_fd));
    }
    if (config_path && conf_load_file(base, config_path, err, sizeof err) != 0) return fail_input(err);
    {
        sd_log_level level;
        conf *eff = conf_copy(base);
        if (!eff) return done(1);
        conf_merge(eff, overrides);
        if (log_parse_level(conf_str_or(eff, "log.level", "info"), &level) == 0) log_set_level(level);
        log_set_tags(conf_str_or(eff, "cluster.name", "default"), NULL, role);
        conf_free(eff);
    }
    if (strcmp(role, "local") == 0) {
        if (optind != argc - 1) return fail_input("--role=local needs exactly one TOPOLOGY.yaml");
        const char *path = argv[optind];
        topology *t = topology_load(path, base, overrides, err, sizeof err);
        if (!t) return fail_input(err);
        topology_free(t);
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0) return fail_input("cannot find my own executable");
        exe[n] = '\0';
        local_options lo = {
            .topology_path = path,
            .base = base,
            .overrides = overrides,
            .until_drained = until_drained != 0,
            .duration_secs = (int)duration,
            .exe_path = exe,
        };
        return done(local_run(&lo));
    }
    if (strcmp(role, "master") == 0 || strcmp(role, "node") == 0) {
        fprintf(stderr, "streamd: --role=%s (cluster mode) is not in this version yet; use --role=local\n", role);
        return done(2);
    }
    fprintf(stderr, "streamd: unknown role '%s' (local, worker, master, node)\n", role);
    return done(2);
}
