/*
 * worker: the process that runs the tasks of one topology on one port
 * (`streamd --role=worker --control-fd=N`, forked by a node, never by hand).
 */
#ifndef SD_WORKER_H
#define SD_WORKER_H

/* Reads the assignment from control_fd, runs until told to stop (or the
 * node goes away, or SIGTERM), and returns the process exit status. Its log
 * lines go to log_fd (the node's worker log; what user code writes to
 * stdout/stderr may go elsewhere: worker.stdout.redirect), or to stderr
 * when log_fd < 0. */
int worker_main(int control_fd, int log_fd);

/* The exit status of a worker that stopped while a task was still stuck in
 * user code (it did not return within task.cleanup.timeout.sec): the
 * process exits without that thread. */
#define WORKER_EXIT_STUCK 3

#endif
