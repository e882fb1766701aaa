/*
 * demo_run.h - `weft run --service NAME --port APP_PORT -- COMMAND ...`: a local program in
 * the mesh behind a sidecar it starts and stops (see demo_run.c).
 */
#ifndef DEMO_RUN_H
#define DEMO_RUN_H

/* Run COMMAND with its sidecar; argv[0] is "run". Returns COMMAND's exit status (128 + signal
 * when it was killed), 2 for bad flags, 1 when the sidecar could not be made ready. */
int demo_run_main(int argc, char **argv);

#endif
