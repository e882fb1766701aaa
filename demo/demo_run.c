/*
 * demo_run.c - `weft run`: put a local program into the mesh, the injection of a world without
 * Kubernetes. It starts a sidecar (`weft proxy`) for the program's service, waits until the
 * sidecar has its configuration from the control plane, runs the program with `http_proxy` /
 * `HTTP_PROXY` naming the sidecar's outbound port (and `NO_PROXY` keeping loopback direct), and
 * stops the sidecar when the program exits, exiting with the program's status. Without
 * `--port` the program only calls others (a client, a batch job): its sidecar has no inbound
 * listener and registers no port, so nothing routes requests to it.
 *
 * The program stays in the terminal's process group (it may be interactive; a Ctrl-C reaches
 * it directly); `weft run` ignores that Ctrl-C itself and waits for the program, and passes on
 * a SIGTERM or SIGHUP it gets. The sidecar runs in its own process group and dies with
 * `weft run` (PR_SET_PDEATHSIG).
 */
#include "demo_run.h"

#include "demo_proc.h"
#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_flags.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char *service;
    char *version;
    char *namespace;
    int64_t port;
    char *inbound;
    char *control;
    char *bootstrap_token_file;
    char *service_account;
    char *collector;
    char *sidecar_log;
    char *log_level;
    int64_t ready_timeout_ms;
} run_cfg_t;

static const wf_flag_t run_flags[] = {
    {"service", WF_FLAG_STR, NULL, offsetof(run_cfg_t, service),
     "service the program is (required)"},
    {"version", WF_FLAG_STR, NULL, offsetof(run_cfg_t, version),
     "version of this workload (the version label)"},
    {"namespace", WF_FLAG_STR, "default", offsetof(run_cfg_t, namespace),
     "namespace of the workload"},
    {"port", WF_FLAG_INT, "0", offsetof(run_cfg_t, port),
     "port the program serves on 127.0.0.1: the sidecar forwards peers' requests there (none: "
     "the program only calls others; peers cannot reach it)"},
    {"inbound", WF_FLAG_STR, NULL, offsetof(run_cfg_t, inbound),
     "address:port peers reach the program at, through its sidecar (default: a free port of "
     "127.0.0.1)"},
    {"control", WF_FLAG_STR, NULL, offsetof(run_cfg_t, control),
     "control plane URL (default: $WEFT_CONTROL, else http://127.0.0.1:15010)"},
    {"bootstrap-token-file", WF_FLAG_STR, NULL, offsetof(run_cfg_t, bootstrap_token_file),
     "the control plane's bootstrap token (default: $WEFT_BOOTSTRAP_TOKEN_FILE, else "
     "weft-control/bootstrap-token; weft demo's is weft-demo/control/bootstrap-token)"},
    {"service-account", WF_FLAG_STR, NULL, offsetof(run_cfg_t, service_account),
     "service account of the workload's identity (default: the proxy's)"},
    {"collector", WF_FLAG_STR, NULL, offsetof(run_cfg_t, collector),
     "collector URL the sidecar sends spans to (default: the control plane's setting)"},
    {"sidecar-log", WF_FLAG_STR, NULL, offsetof(run_cfg_t, sidecar_log),
     "file the sidecar's output is appended to (default: this terminal's stderr)"},
    {"log-level", WF_FLAG_STR, "warn", offsetof(run_cfg_t, log_level), "the sidecar's log level"},
    {"ready-timeout", WF_FLAG_DURATION, "30s", offsetof(run_cfg_t, ready_timeout_ms),
     "longest wait for the sidecar to be ready (registered, configured) before the program runs"},
    {NULL, 0, NULL, 0, NULL},
};

static volatile sig_atomic_t forward_sig;

static void on_signal(int sig)
{
    forward_sig = sig;
}

/* Wait until the sidecar's admin /ready answers 200; 0, or -1 with a message. */
static int wait_ready(pid_t sidecar, int admin_port, int64_t timeout_ms)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ready", admin_port);
    CURL *c = curl_easy_init();
    int64_t until = wf_mono_ns() / 1000000 + timeout_ms;
    int rc = -1;
    long st = 0;
    while (wf_mono_ns() / 1000000 < until && forward_sig == 0) {
        if ((st = demo_http_get(c, url, NULL, 1000)) == 200) {
            rc = 0;
            break;
        }
        int ws;
        if (waitpid(sidecar, &ws, WNOHANG) == sidecar) {
            fprintf(stderr, "weft run: the sidecar exited before it was ready (see its output "
                            "above or --sidecar-log)\n");
            curl_easy_cleanup(c);
            return -2;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000000};
        nanosleep(&ts, NULL);
    }
    curl_easy_cleanup(c);
    if (rc != 0 && forward_sig == 0) {
        fprintf(stderr,
                "weft run: the sidecar was not ready within %lld ms (its /ready answered %ld): is "
                "the control plane reachable and the bootstrap token right?\n",
                (long long)timeout_ms, st);
    }
    return rc;
}

int demo_run_main(int argc, char **argv)
{
    run_cfg_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    char err[256];
    int argi = argc;
    int status = 2;
    pid_t sidecar = -1;
    int rc = wf_flags_parse(run_flags, &cfg, argc, argv, &argi, err, sizeof(err));
    if (rc == 1) {
        printf("Usage: weft run --service NAME [--port APP_PORT] [flags] -- COMMAND [ARG...]\n\n"
               "Runs COMMAND inside the mesh: its sidecar registers the workload, forwards "
               "peers'\nrequests to APP_PORT, and carries COMMAND's outgoing HTTP requests "
               "(http_proxy).\n\nFlags:\n");
        wf_flags_print_help(run_flags, stdout);
        status = 0;
        goto out;
    }
    if (rc != 0) {
        fprintf(stderr, "weft run: %s\n", err);
        goto out;
    }
    if (cfg.service == NULL || cfg.port < 0 || cfg.port > 65535 || argi >= argc) {
        fprintf(stderr, "weft run: --service and a command after -- are required, --port is "
                        "1..65535 (weft run --help)\n");
        goto out;
    }
    if (cfg.port == 0 && cfg.inbound != NULL) {
        fprintf(stderr, "weft run: --inbound needs --port (peers' requests go to the program's "
                        "port)\n");
        goto out;
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        fprintf(stderr, "weft run: cannot find its own binary: %s\n", strerror(errno));
        goto out;
    }
    exe[n] = '\0';
    int ports[3]; /* outbound, admin, inbound */
    if (demo_free_ports(ports, 3) != 0) {
        fprintf(stderr, "weft run: no free port on 127.0.0.1\n");
        goto out;
    }
    int out_port = ports[0], admin_port = ports[1];
    char inbound[64], outbound[64], admin[64], app_port[16];
    if (cfg.inbound != NULL) {
        snprintf(inbound, sizeof(inbound), "%s", cfg.inbound);
    } else if (cfg.port == 0) {
        snprintf(inbound, sizeof(inbound), "off");
    } else {
        snprintf(inbound, sizeof(inbound), "127.0.0.1:%d", ports[2]);
    }
    snprintf(outbound, sizeof(outbound), "127.0.0.1:%d", out_port);
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", admin_port);
    snprintf(app_port, sizeof(app_port), "%lld", (long long)cfg.port);
    const char *control = cfg.control != NULL              ? cfg.control
                          : getenv("WEFT_CONTROL") != NULL ? getenv("WEFT_CONTROL")
                                                           : "http://127.0.0.1:15010";
    const char *token = cfg.bootstrap_token_file != NULL ? cfg.bootstrap_token_file
                        : getenv("WEFT_BOOTSTRAP_TOKEN_FILE") != NULL
                            ? getenv("WEFT_BOOTSTRAP_TOKEN_FILE")
                            : "weft-control/bootstrap-token";
    const char *args[40] = {exe,
                            "proxy",
                            "--service",
                            cfg.service,
                            "--namespace",
                            cfg.namespace,
                            "--app-port",
                            app_port,
                            "--inbound",
                            inbound,
                            "--outbound",
                            outbound,
                            "--admin",
                            admin,
                            "--control",
                            control,
                            "--bootstrap-token-file",
                            token,
                            "--log-level",
                            cfg.log_level};
    int k = 20;
    if (cfg.version != NULL) {
        args[k++] = "--version";
        args[k++] = cfg.version;
    }
    if (cfg.service_account != NULL) {
        args[k++] = "--service-account";
        args[k++] = cfg.service_account;
    }
    if (cfg.collector != NULL) {
        args[k++] = "--collector";
        args[k++] = cfg.collector;
    }
    args[k] = NULL;

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    status = 1;
    demo_spawn_t side = {.argv = (char *const *)args, .log = cfg.sidecar_log, .own_group = true};
    if ((sidecar = demo_spawn("weft run", &side)) < 0) {
        goto out_curl;
    }
    if ((rc = wait_ready(sidecar, admin_port, cfg.ready_timeout_ms)) != 0) {
        if (rc == -2) {
            sidecar = -1;
        }
        goto out_curl;
    }
    if (cfg.port == 0) {
        fprintf(stderr,
                "weft run: %s is in the mesh (no --port: peers cannot reach it), its requests go "
                "through %s, sidecar admin (metrics) at %s\n",
                cfg.service, outbound, admin);
    } else {
        fprintf(stderr,
                "weft run: %s is in the mesh: peers reach it at %s, its requests go through %s, "
                "sidecar admin (metrics) at %s\n",
                cfg.service, inbound, outbound, admin);
    }
    char proxy_url[80];
    snprintf(proxy_url, sizeof(proxy_url), "http://%s", outbound);
    demo_spawn_t prog = {.argv = argv + argi,
                         .http_proxy = proxy_url,
                         .no_proxy = "localhost,127.0.0.1,::1",
                         .own_group = false};
    pid_t child = demo_spawn("weft run", &prog);
    if (child < 0) {
        goto out_curl;
    }
    /* The terminal's Ctrl-C reaches the program (same process group); SIGTERM/SIGHUP sent to
     * weft run are passed on. Wait for the program either way. */
    int ws = 0;
    for (;;) {
        pid_t r = waitpid(child, &ws, 0);
        if (r == child) {
            break;
        }
        if (r < 0 && errno == EINTR) {
            int sig = forward_sig;
            if (sig == SIGTERM || sig == SIGHUP) {
                kill(child, sig);
            }
            forward_sig = 0;
            continue;
        }
        ws = 0;
        break;
    }
    status = WIFEXITED(ws) ? WEXITSTATUS(ws) : WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : 1;
out_curl:
    if (sidecar > 0) {
        demo_stop(sidecar, 10000);
    }
    curl_global_cleanup();
out:
    wf_flags_free(run_flags, &cfg);
    return status;
}
