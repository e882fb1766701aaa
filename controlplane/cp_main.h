/*
 * cp_main.h - `weft control`: the control plane's entry point.
 */
#ifndef CP_MAIN_H
#define CP_MAIN_H

/* Run the control plane until SIGINT/SIGTERM; argv[0] is "control". Returns the exit status. */
int cp_main(int argc, char **argv);

#endif
