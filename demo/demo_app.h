/*
 * demo_app.h - `weft demo-app`: one service of the bookinfo-shaped demo application
 * (productpage, details, reviews v1/v2/v3, ratings), the workload `weft demo` runs behind
 * sidecars. The behaviour follows Istio's bookinfo: productpage calls details and reviews with
 * a 3 s timeout and one retry of its own; reviews v1 does not call ratings, v2 and v3 do with
 * 10 s / 2.5 s timeouts; tracing headers and `end-user` are forwarded on every call.
 */
#ifndef DEMO_APP_H
#define DEMO_APP_H

/* Serve until SIGINT/SIGTERM; argv[0] is "demo-app". Returns the exit status (2: bad flags). */
int demo_app_main(int argc, char **argv);

#endif
