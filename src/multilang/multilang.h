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

/* The bolt loop calls this about once a second for a multi-lang bolt task
 * (state: what its open returned), with input or without: the child gets
 * a heartbeat when none went out for topology.multilang.heartbeat.secs, so
 * a child that hangs while idle is found, and a failed child is started
 * again. Never reaches user code as a tuple. Executor thread only. */
void multilang_bolt_idle(void *state, sd_collector *col);

#endif
