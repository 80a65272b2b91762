/* client: the client commands (see client.h). */
#include "client/client.h"

#include <stdio.h>
#include <string.h>

static const char *const commands[] = {"submit", "list", "status", "kill", "activate", "deactivate", NULL};

bool client_is_command(const char *name) {
    for (int i = 0; commands[i]; i++)
        if (strcmp(commands[i], name) == 0) return true;
    return false;
}

int client_run(const client_options *o) {
    fprintf(stderr, "streamd: '%s' is not in this version yet\n", o->command);
    return 2;
}
