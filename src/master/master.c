/* master: the master role's entry (see master.h). */
#include "master/master.h"

#include <stdio.h>

int master_run(const conf *c) {
    (void)c;
    fprintf(stderr, "streamd: --role=master is not in this version yet\n");
    return 2;
}
