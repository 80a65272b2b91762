/*
 * roles_main: how the executable (src/main.c) finds and enters the roles
 * module (src/roles_main.c), which runs every role but the worker.
 */
#pragma once

/* the module's file name, next to the executable or in STREAMD_ROLES_DIR */
#define SD_ROLES_MODULE "streamd-roles.so"
/* the one symbol the module exports */
#define SD_ROLES_ENTRY "streamd_roles_main"
#define SD_ROLES_ENTRY_ATTR __attribute__((visibility("default")))

/* argc/argv as main got them; version: the executable's STREAMD_VERSION,
 * which the module refuses unless it is its own. Returns the exit status. */
typedef int sd_roles_main_fn(int argc, char **argv, const char *version);
SD_ROLES_ENTRY_ATTR sd_roles_main_fn streamd_roles_main;
