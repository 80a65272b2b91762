/* node_role: the node role's entry (see node_role.h). */
#include "node/node_role.h"

#include <stdio.h>

int node_role_run(const conf *c, const char *exe_path) {
    (void)c;
    (void)exe_path;
    fprintf(stderr, "streamd: --role=node is not in this version yet\n");
    return 2;
}
