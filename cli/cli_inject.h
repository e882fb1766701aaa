/*
 * cli_inject.h - `weft inject`: add the weft sidecar to Kubernetes manifests (cp_inject.h),
 * reading a file or standard input and writing standard output or a file.
 */
#ifndef CLI_INJECT_H
#define CLI_INJECT_H

/* The command's entry point (argv[0] is "inject"); exit status 0, 1 (input refused), 2
 * (usage). */
int cli_inject_main(int argc, char **argv);

#endif
