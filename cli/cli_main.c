/*
 * cli_main.c - the `weft` executable: dispatches `weft <command> ...` to the component that
 * implements it. Each component exposes `<prefix>_main(argc, argv)` (argv[0] is the command
 * name); this file knows nothing else about them.
 */
#include <stdio.h>
#include <string.h>

#ifdef HAVE_WEFT_COLLECTOR
#include "cli_users.h"
#include "col_main.h"
#endif
#ifdef HAVE_WEFT_PROXY
#include "px_main.h"
#endif
#ifdef HAVE_WEFT_DEMO
#include "demo_app.h"
#include "demo_main.h"
#include "demo_run.h"
#endif
#ifdef HAVE_WEFT_CONTROLPLANE
#include "cli_inject.h"
#include "cp_cli.h"
#include "cp_main.h"
#endif

/* The kubectl-like commands share one entry point, which reads argv[0]. */
#ifdef HAVE_WEFT_CONTROLPLANE
#define CP_CLI cp_cli_main
#else
#define CP_CLI NULL
#endif

typedef int (*cli_main_fn)(int argc, char **argv);

typedef struct {
    const char *name;
    cli_main_fn fn; /* NULL: not built yet */
    const char *issue;
    const char *summary;
} cli_command_t;

static const cli_command_t commands[] = {
#ifdef HAVE_WEFT_COLLECTOR
    {"collector", col_main, "3", "telemetry backend: store, Prometheus and trace APIs, web UI"},
#else
    {"collector", NULL, "3", "telemetry backend: store, Prometheus and trace APIs, web UI"},
#endif
#ifdef HAVE_WEFT_COLLECTOR
    {"users", cli_users_main, "8", "the collector's users file: add, remove, token"},
#endif
#ifdef HAVE_WEFT_CONTROLPLANE
    {"control", cp_main, "6", "control plane: Istio config API, registry, CA, config push"},
#else
    {"control", NULL, "6", "control plane: Istio config API, registry, CA, config push"},
#endif
#ifdef HAVE_WEFT_PROXY
    {"proxy", px_main, "5", "sidecar / gateway proxy with Istio routing and telemetry"},
#else
    {"proxy", NULL, "5", "sidecar / gateway proxy with Istio routing and telemetry"},
#endif
    {"apply", CP_CLI, "6", "apply Istio resources from a YAML or JSON file (-f FILE)"},
    {"get", CP_CLI, "6", "list resources (vs, dr, gw, se, pa, ap, sidecar)"},
    {"delete", CP_CLI, "6", "delete resources"},
    {"describe", CP_CLI, "6", "show one resource and its validation messages"},
    {"workloads", CP_CLI, "6", "list the registered workloads"},
    {"analyze", CP_CLI, "6", "print configuration validation messages"},
    {"proxy-status", CP_CLI, "6", "show each proxy's config sync state"},
    {"ca", CP_CLI, "7", "the mesh CA: roots and trust bundle (status), root rotation (rotate)"},
#ifdef HAVE_WEFT_CONTROLPLANE
    {"inject", cli_inject_main, "9", "add the weft sidecar to Kubernetes manifests (-f FILE)"},
#endif
#ifdef HAVE_WEFT_DEMO
    {"demo", demo_main, "9", "a bookinfo-style mesh with traffic, on this machine"},
    {"run", demo_run_main, "9", "run a local program inside the mesh with a sidecar"},
    {"demo-app", demo_app_main, "9",
     "one service of the demo application (productpage, details, reviews, ratings)"},
#endif
    {NULL, NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out,
            "weft %s - a service mesh with its own observability backend\n\n"
            "Usage: weft <command> [flags]\n\nCommands:\n",
            WEFT_VERSION);
    for (const cli_command_t *c = commands; c->name; c++) {
        fprintf(out, "  %-14s %s%s\n", c->name, c->summary, c->fn ? "" : " (not built yet)");
    }
    fprintf(out, "  %-14s %s\n", "version", "print the version");
    fprintf(out, "\nRun 'weft <command> --help' for the flags of a command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("weft %s\n", WEFT_VERSION);
        return 0;
    }
    for (const cli_command_t *c = commands; c->name; c++) {
        if (strcmp(argv[1], c->name) == 0) {
            if (c->fn == NULL) {
                fprintf(stderr,
                        "weft %s: not built yet (%s; tracked in issue #%s). Nothing was started.\n",
                        c->name, c->summary, c->issue);
                return 3;
            }
            return c->fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "weft: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
