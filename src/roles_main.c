/*
 * roles_main: the entry of the roles module (streamd-roles.so), which the
 * executable (src/main.c) loads for every role but the worker. Parses the
 * command line, builds the configuration (defaults < --config FILE <
 * topology config: < -c key=value) and hands over to the role (local mode,
 * master, node) or the client command. Bad input exits with status 2 and
 * one line naming file, line and key.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/conf.h"
#include "local/local.h"
#include "base/log.h"
#include "client/client.h"
#include "master/master.h"
#include "node/node_role.h"
#include "roles_main.h"
#include "topology/topology.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: streamd --role=ROLE [options] [TOPOLOGY.yaml]\n"
            "       streamd COMMAND [options] [ARGS]\n"
            "\n"
            "roles:\n"
            "  local     run TOPOLOGY.yaml on this machine: master and node logic in one\n"
            "            process on the embedded store, with real worker processes\n"
            "  worker    internal: started by a node, never by hand\n"
            "  master    cluster master (nimbus): election, scheduling, HTTP API\n"
            "  node      cluster node (supervisor): runs the workers assigned to it\n"
            "\n"
            "commands (cluster mode; they find the leader through etcd or --master):\n"
            "  submit TOPOLOGY.yaml   pack the topology and what it needs, and run it\n"
            "  list                   the cluster's topologies\n"
            "  status NAME            a topology's components, workers and counters\n"
            "  kill NAME [--wait S]   deactivate, wait S seconds, then stop its workers\n"
            "  activate NAME, deactivate NAME\n"
            "  loglevel NAME LEVEL    set a running topology's log level (debug, info, warn,\n"
            "                         error; default: back to its log.level)\n"
            "\n"
            "options:\n"
            "  --config FILE       configuration file (see etc/streamd.yaml)\n"
            "  -c KEY=VALUE        set one configuration key (wins over everything)\n"
            "  --etcd URL[,URL]    etcd endpoints (store.etcd.endpoints)\n"
            "  --cluster NAME      cluster name (cluster.name)\n"
            "  --node-id ID        node: this node's id (node.id)\n"
            "  --master URL        commands: the master's API instead of finding it in etcd\n"
            "  --json              commands: JSON output for scripts\n"
            "  --wait SECS         kill: seconds between deactivating and stopping\n"
            "  --until-drained     local: exit once every spout is exhausted and every tuple\n"
            "                      tree has completed (status 1 if any tuple failed for good)\n"
            "  --duration SECS     local: stop gracefully after SECS seconds\n"
            "  --control-fd N      worker: the node's control channel\n"
            "  --log-fd N          worker: where its own log lines go (default: stderr)\n"
            "  --log-format F      worker: text or json, until its topology's log.format is known\n"
            "  --help, --version\n"
            "\n"
            "Configuration keys and their defaults are documented in etc/streamd.yaml.\n");
}

static conf *base, *overrides, *eff; /* freed on every exit path by fail_input/done */
static char exe[4096];           /* this executable, run as the workers */

static int self_exe(char *buf, size_t cap) {
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n <= 0) return -1;
    buf[n] = '\0';
    return 0;
}

static int done(int rc) {
    conf_free(base);
    conf_free(overrides);
    conf_free(eff);
    base = overrides = eff = NULL;
    return rc;
}

static int fail_input(const char *msg) {
    fprintf(stderr, "streamd: %s\n", msg);
    return done(2);
}

SD_ROLES_ENTRY_ATTR int streamd_roles_main(int argc, char **argv, const char *version) {
    if (strcmp(version, STREAMD_VERSION) != 0) {
        fprintf(stderr, "streamd: the roles module is version %s, the executable %s: reinstall streamd\n",
                STREAMD_VERSION, version);
        return 1;
    }
    enum {
        OPT_ROLE = 256,
        OPT_CONFIG,
        OPT_UNTIL_DRAINED,
        OPT_DURATION,
        OPT_HELP,
        OPT_VERSION,
        OPT_ETCD,
        OPT_CLUSTER,
        OPT_NODE_ID,
        OPT_MASTER,
        OPT_JSON,
        OPT_WAIT,
    };
    static const struct option opts[] = {
        {"role", required_argument, NULL, OPT_ROLE},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"until-drained", no_argument, NULL, OPT_UNTIL_DRAINED},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {"etcd", required_argument, NULL, OPT_ETCD},
        {"cluster", required_argument, NULL, OPT_CLUSTER},
        {"node-id", required_argument, NULL, OPT_NODE_ID},
        {"master", required_argument, NULL, OPT_MASTER},
        {"json", no_argument, NULL, OPT_JSON},
        {"wait", required_argument, NULL, OPT_WAIT},
        {NULL, 0, NULL, 0},
    };
    const char *role = NULL, *config_path = NULL, *master_url = NULL;
    int until_drained = 0, json = 0;
    long wait_secs = -1;
    long duration = 0;
    char err[1024];
    log_init(); /* before any thread: the host tag is only read after this */
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
        case 'c':
            if (conf_set_kv(overrides, optarg, err, sizeof err) != 0) return fail_input(err);
            break;
        case OPT_ETCD:
        case OPT_CLUSTER:
        case OPT_NODE_ID: {
            const char *key = c == OPT_ETCD ? "store.etcd.endpoints" : c == OPT_CLUSTER ? "cluster.name" : "node.id";
            if (conf_set_text(overrides, key, optarg, "-c", 0, err, sizeof err) != 0) return fail_input(err);
            break;
        }
        case OPT_MASTER: master_url = optarg; break;
        case OPT_JSON: json = 1; break;
        case OPT_WAIT:
            wait_secs = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || wait_secs < 0 || wait_secs > 24L * 3600)
                return fail_input("--wait: expected a number of seconds from 0 to 86400");
            break;
        case 'h':
        case OPT_HELP: usage(stdout); return done(0);
        case OPT_VERSION: printf("streamd %s\n", STREAMD_VERSION); return done(0);
        default: usage(stderr); return done(2);
        }
    }
    /* libcurl's global state, once, before any thread (node reports, etcd) uses it */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "streamd: cannot initialise libcurl\n");
        return done(1);
    }
    const char *command = NULL;
    if (!role && optind < argc && client_is_command(argv[optind])) command = argv[optind++];
    if (!role && !command) {
        usage(stderr);
        return done(2);
    }
    if (config_path && conf_load_file(base, config_path, err, sizeof err) != 0) return fail_input(err);
    eff = conf_copy(base); /* defaults < --config < -c, for the roles that take no topology */
    if (!eff) return done(1);
    conf_merge(eff, overrides);
    {
        sd_log_level level;
        if (log_parse_level(conf_str_or(eff, "log.level", "info"), &level) == 0) log_set_level(level);
        log_set_json(strcmp(conf_str_or(eff, "log.format", "text"), "json") == 0);
        log_set_tags(conf_str_or(eff, "cluster.name", "default"), NULL, role ? role : command);
        /* a node's or master's own log file, rotated like the workers' */
        const char *file = conf_str(eff, "log.file");
        if (role && (strcmp(role, "node") == 0 || strcmp(role, "master") == 0) && file && *file) {
            if (log_open_file(file) != 0) return done(1);
            int64_t bytes = conf_int(eff, "log.rotate.bytes");
            if (bytes > 0) log_rotate_by_size(bytes, (int)conf_int(eff, "log.rotate.keep"), false);
        }
    }
    if (command) {
        client_options co = {
            .command = command,
            .args = argv + optind,
            .nargs = argc - optind,
            .conf = eff,
            .master_url = master_url,
            .json = json != 0,
            .wait_secs = (int)wait_secs,
        };
        return done(client_run(&co));
    }
    if (strcmp(role, "local") == 0) {
        if (optind != argc - 1) return fail_input("--role=local needs exactly one TOPOLOGY.yaml");
        const char *path = argv[optind];
        topology *t = topology_load(path, base, overrides, err, sizeof err);
        if (!t) return fail_input(err);
        topology_free(t);
        if (self_exe(exe, sizeof exe) != 0) return fail_input("cannot find my own executable");
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
        if (optind != argc) return fail_input("--role=master and --role=node take no operands");
        if (strcmp(role, "master") == 0) return done(master_run(eff));
        if (self_exe(exe, sizeof exe) != 0) return fail_input("cannot find my own executable");
        return done(node_role_run(eff, exe));
    }
    fprintf(stderr, "streamd: unknown role '%s' (local, worker, master, node)\n", role);
    return done(2);
}
