/*
 * demo_main.h - `weft demo`: the whole mesh on this machine in one command. It starts and
 * supervises the control plane, the collector, an ingress gateway and the bookinfo-shaped
 * application (`weft demo-app`, each instance behind its own sidecar), applies the demo's
 * Istio configuration, drives steady traffic through the gateway and prints where to look.
 */
#ifndef DEMO_MAIN_H
#define DEMO_MAIN_H

/* Run until SIGINT/SIGTERM, then stop every process it started; argv[0] is "demo". Returns the
 * exit status (2: bad flags or a port in use; 1: the mesh did not come up). */
int demo_main(int argc, char **argv);

#endif
