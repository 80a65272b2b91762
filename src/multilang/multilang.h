/*
 * multilang: components written in any language, run as child processes
 * that speak Apache Storm's multi-lang protocol (JSON messages, each
 * followed by a line "end", over the child's stdin and stdout).
 *
 * The topology resolver gives every `command: [prog, args...]` component
 * the definition returned here; the runtime then runs it like any other
 * component. The adapter (ml_component.c) reads the command, `resources:`
 * directory and streams from the task's topology component.
 */
#ifndef SD_MULTILANG_H
#define SD_MULTILANG_H

#include "streamd/component.h"

/* The adapter for a spout or bolt child; never NULL for SD_SPOUT/SD_BOLT. */
const sd_component_def *multilang_component(sd_component_kind kind);

#endif
