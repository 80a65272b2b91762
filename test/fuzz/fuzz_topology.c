/*
 * libFuzzer target for the topology loader: the input is a topology file
 * (YAML), loaded and validated as the master checks a submitted one
 * (TOPO_NO_LIBRARY: no user code runs). It must either be rejected with a
 * "FILE:LINE: message" error or load into a topology whose task and stream
 * tables are consistent; nothing may crash or leak. The file lives in a
 * memfd, so no disk is touched. Run: tools/fuzz topology
 */
#include <string.h>
#include <unistd.h>

#include "fuzz_file.h"
#include "base/log.h"
#include "topology/topology.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64], err[1024];
    int fd = fuzz_file_open("topology.yaml", data, size, path);
    if (fd < 0) return 0;
    err[0] = 0;
    topology *t = topology_load_opts(path, NULL, NULL, TOPO_NO_LIBRARY, err, sizeof err);
    if (!t) {
        if (!err[0]) __builtin_trap(); /* a rejection always says why */
    } else {
        int tasks = 0;
        for (int i = 0; i < t->ncomponents; i++) {
            const topo_component *c = &t->components[i];
            if (c->parallelism < 1) __builtin_trap();
            tasks += c->parallelism;
        }
        if (tasks != t->ntasks) __builtin_trap();
        for (int task = 1; task <= t->ntasks; task++)
            if (!topology_task_component(t, task)) __builtin_trap();
        for (int s = 0; s < t->nstreams; s++) {
            const topo_stream *st = &t->streams[s];
            if (st->id != s || st->component < 0 || st->component >= t->ncomponents || st->nfields < 0)
                __builtin_trap();
        }
        topology_free(t);
    }
    close(fd);
    return 0;
}
