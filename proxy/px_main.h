/*
 * px_main.h - `weft proxy`: the sidecar proxy's entry point.
 */
#ifndef PX_MAIN_H
#define PX_MAIN_H

/* Run the proxy until SIGTERM/SIGINT or POST /quitquitquit; argv[0] is "proxy". Returns the
 * process exit status: 0 after a clean stop, 1 on a runtime failure, 2 on a usage error. */
int px_main(int argc, char **argv);

#endif
