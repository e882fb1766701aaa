/*
 * col_main.h - `weft collector`: the telemetry backend's entry point.
 */
#ifndef COL_MAIN_H
#define COL_MAIN_H

/* Run the collector until SIGINT/SIGTERM; argv[0] is "collector". Returns the exit status. */
int col_main(int argc, char **argv);

#endif
