/*
 * cp_main.c - `weft control`: flags, the data directory and its tokens, the store, the
 * registry, the mesh CA, the push engine and the HTTP API; then a loop that sweeps expired
 * leases and advances a root rotation until SIGINT/SIGTERM.
 *
 * The signals are blocked in every thread and taken with sigtimedwait by the main thread, so
 * no handler and no global flag are needed, and the once-a-second sweep rides on the wait.
 */
#include "cp_main.h"

#include "cp_api.h"
#include "cp_ca.h"
#include "cp_compile.h"
#include "cp_push.h"
#include "cp_registry.h"
#include "cp_store.h"
#include "cp_token.h"

#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wf_flags.h"
#include "wf_log.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

typedef struct {
    char *listen;
    char *data_dir;
    int64_t lease_ttl_ms;
    char *admin_token_file;
    char *bootstrap_token_file;
    char *read_token_file;
    bool read_open;
    int64_t max_body;
    char *log_level;
    char *collector;
    char *sampling;
    bool access_log;
    char *ca_cert, *ca_key, *ca_chain;
    int64_t cert_ttl_ms, ca_root_ttl_ms, ca_propagation_ms, ca_overlap_ms;
} cp_cfg_t;

static const wf_flag_t cp_flags[] = {
    {"listen", WF_FLAG_STR, "127.0.0.1:15010", offsetof(cp_cfg_t, listen),
     "address to serve the API on (ipv4:port)"},
    {"data-dir", WF_FLAG_STR, "./weft-control", offsetof(cp_cfg_t, data_dir),
     "directory of the database and the tokens"},
    {"lease-ttl", WF_FLAG_DURATION, "30s", offsetof(cp_cfg_t, lease_ttl_ms),
     "a workload not heard from for this long is removed"},
    {"admin-token-file", WF_FLAG_STR, NULL, offsetof(cp_cfg_t, admin_token_file),
     "file holding the admin token (default: DIR/admin-token, created on first start)"},
    {"bootstrap-token-file", WF_FLAG_STR, NULL, offsetof(cp_cfg_t, bootstrap_token_file),
     "file holding the proxies' token (default: DIR/bootstrap-token, created on first start)"},
    {"read-token-file", WF_FLAG_STR, NULL, offsetof(cp_cfg_t, read_token_file),
     "file holding the read-only token (default: DIR/read-token, created on first start)"},
    {"read-open", WF_FLAG_BOOL, "false", offsetof(cp_cfg_t, read_open),
     "serve reads (resources, workloads, targets) without a token"},
    {"max-body", WF_FLAG_SIZE, "1MiB", offsetof(cp_cfg_t, max_body),
     "largest request body accepted"},
    {"log-level", WF_FLAG_STR, "info", offsetof(cp_cfg_t, log_level), "error, warn, info or debug"},
    {"collector", WF_FLAG_STR, NULL, offsetof(cp_cfg_t, collector),
     "collector URL the proxies send telemetry to (their snapshots' telemetry.collector_url)"},
    {"sampling", WF_FLAG_STR, NULL, offsetof(cp_cfg_t, sampling),
     "trace sampling percentage for the proxies, 0..100 (default: Istio's 1)"},
    {"access-log", WF_FLAG_BOOL, "false", offsetof(cp_cfg_t, access_log),
     "proxies write access logs"},
    {"ca-cert", WF_FLAG_STR, NULL, offsetof(cp_cfg_t, ca_cert),
     "the CA's signing certificate (PEM; default: a root created in DIR/ca)"},
    {"ca-key", WF_FLAG_STR, NULL, offsetof(cp_cfg_t, ca_key), "the key of --ca-cert (PEM)"},
    {"ca-chain", WF_FLAG_STR, NULL, offsetof(cp_cfg_t, ca_chain),
     "with an intermediate --ca-cert: its chain up to the organisation's root (PEM)"},
    {"cert-ttl", WF_FLAG_DURATION, "24h", offsetof(cp_cfg_t, cert_ttl_ms),
     "lifetime of the workload certificates the CA signs (at least 1s)"},
    {"ca-root-ttl", WF_FLAG_DURATION, "3650d", offsetof(cp_cfg_t, ca_root_ttl_ms),
     "lifetime of a root the CA creates"},
    {"ca-propagation-timeout", WF_FLAG_DURATION, "60s", offsetof(cp_cfg_t, ca_propagation_ms),
     "in a root rotation, most the CA waits for every proxy to take the new bundle"},
    {"ca-root-overlap", WF_FLAG_DURATION, NULL, offsetof(cp_cfg_t, ca_overlap_ms),
     "how long a replaced root stays trusted (default: 2 x --cert-ttl)"},
    {NULL, 0, NULL, 0, NULL},
};

/* The token from the flag's file (which must exist), or DIR/<name> (created when absent). */
static int load_token(const char *flag_path, const char *dir, const char *name,
                      char out[CP_TOKEN_MAX_LEN + 1])
{
    char path[PATH_MAX];
    if (flag_path != NULL) {
        return cp_token_load(flag_path, false, out);
    }
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
        return WF_E_INVAL;
    }
    return cp_token_load(path, true, out);
}

/*
 * Each held poll is an open socket: raise the soft descriptor limit to the hard one, and size
 * the HTTP connection limit from it, keeping some for the database and the logs.
 */
static unsigned raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return 0;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            getrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 65536 + 64) {
        return 65536;
    }
    return rl.rlim_cur > 128 ? (unsigned)(rl.rlim_cur - 64) : 64;
}

/*
 * Each pushed snapshot is one buffer of up to megabytes, compiled, sent and freed, thousands of
 * times per change. glibc would mmap and unmap each and fault its pages in again every time (a
 * third of the control plane's CPU in a push to 800 proxies); buffers kept in the heap, with up
 * to 64 MiB of freed heap kept before it is given back and two arenas, reuse the same pages:
 * 3x less CPU. The push engine's send budget bounds how much of it is in use at once.
 */
static void tune_malloc(void)
{
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_ARENA_MAX, 2);
}

/* cp_ca_tick's question, answered by the push engine: has every proxy the new bundle? */
static bool bundle_propagated(void *arg, int64_t version, char *missing, size_t len)
{
    return cp_push_bundle_propagated(arg, version, missing, len);
}

/* Advance a root rotation and hand a changed bundle to the push engine. */
static void ca_tick(cp_ca_t *ca, cp_push_t *push)
{
    if (cp_ca_tick(ca, wf_wall_ms(), bundle_propagated, push) > 0) {
        char *pem = NULL;
        int64_t v = 0;
        cp_ca_bundle(ca, &pem, &v);
        cp_push_set_trust_bundle(push, pem, v, wf_mono_ns() / 1000000);
        wf_free(pem);
    }
}

static const cp_push_compiler_t compiler = {
    .compile_new = cp_compile_new,
    .compile_free = cp_compile_free,
    .compile_proxy = cp_compile_proxy,
    .compile_proxy_gz = cp_compile_proxy_gz,
    .compile_skipped = cp_compile_skipped,
};

int cp_main(int argc, char **argv)
{
    cp_cfg_t cfg = {0};
    cp_store_t *store = NULL;
    cp_registry_t *reg = NULL;
    cp_api_t *api = NULL;
    cp_push_t *push = NULL;
    cp_ca_t *ca = NULL;
    char *bundle = NULL;
    int64_t bundle_version = 0;
    char err[512];
    char admin[CP_TOKEN_MAX_LEN + 1], boot[CP_TOKEN_MAX_LEN + 1], reader[CP_TOKEN_MAX_LEN + 1];
    int argi = 0, status = 1, rc;
    wf_log_level_t level;

    rc = wf_flags_parse(cp_flags, &cfg, argc, argv, &argi, err, sizeof(err));
    if (rc == 1) {
        printf("Usage: weft control [flags]\n\nThe control plane: Istio resources, the workload "
               "registry, http_sd targets.\n\nFlags:\n");
        wf_flags_print_help(cp_flags, stdout);
        status = 0;
        goto out;
    }
    if (rc < 0 || argi < argc) {
        fprintf(stderr, "weft control: %s\n", rc < 0 ? err : "unexpected positional argument");
        status = 2;
        goto out;
    }
    if (wf_log_parse_level(cfg.log_level, &level) != 0) {
        fprintf(stderr, "weft control: invalid --log-level %s\n", cfg.log_level);
        status = 2;
        goto out;
    }
    wf_log_set_level(level);
    if (cfg.lease_ttl_ms <= 0 || cfg.max_body <= 0) {
        fprintf(stderr, "weft control: --lease-ttl and --max-body must be > 0\n");
        status = 2;
        goto out;
    }
    double sampling = -1;
    if (cfg.sampling != NULL) {
        char *end = NULL;
        sampling = strtod(cfg.sampling, &end);
        if (end == cfg.sampling || *end != '\0' || !(sampling >= 0 && sampling <= 100)) {
            fprintf(stderr, "weft control: --sampling must be a percentage 0..100\n");
            status = 2;
            goto out;
        }
    }
    if (mkdir(cfg.data_dir, 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, "weft control: cannot create %s: %s\n", cfg.data_dir, strerror(errno));
        goto out;
    }
    if ((rc = load_token(cfg.admin_token_file, cfg.data_dir, "admin-token", admin)) < 0 ||
        (rc = load_token(cfg.bootstrap_token_file, cfg.data_dir, "bootstrap-token", boot)) < 0 ||
        (rc = load_token(cfg.read_token_file, cfg.data_dir, "read-token", reader)) < 0) {
        fprintf(stderr, "weft control: cannot load the tokens: %s\n", cp_strerror(rc));
        goto out;
    }
    if ((rc = cp_store_open(cfg.data_dir, &store)) < 0) {
        fprintf(stderr, "weft control: cannot open the store in %s: %s\n", cfg.data_dir,
                cp_strerror(rc));
        goto out;
    }
    if ((rc = cp_registry_open(store, cfg.lease_ttl_ms, wf_wall_ms(), &reg)) < 0) {
        fprintf(stderr, "weft control: cannot load the registry: %s\n", cp_strerror(rc));
        goto out;
    }
    char ca_dir[PATH_MAX];
    snprintf(ca_dir, sizeof(ca_dir), "%s/ca", cfg.data_dir);
    cp_ca_opts_t cao = {
        .dir = ca_dir,
        .cert_file = cfg.ca_cert,
        .key_file = cfg.ca_key,
        .chain_file = cfg.ca_chain,
        .root_ttl_ms = cfg.ca_root_ttl_ms,
        .cert_ttl_ms = cfg.cert_ttl_ms,
        .propagation_ms = cfg.ca_propagation_ms,
        .overlap_ms = cfg.ca_overlap_ms,
    };
    if ((cfg.ca_key != NULL || cfg.ca_chain != NULL) && cfg.ca_cert == NULL) {
        fprintf(stderr, "weft control: --ca-key and --ca-chain need --ca-cert\n");
        status = 2;
        goto out;
    }
    if (cfg.cert_ttl_ms < 1000 || cfg.ca_root_ttl_ms < 1000 || cfg.ca_propagation_ms < 0 ||
        cfg.ca_overlap_ms < 0) {
        fprintf(stderr, "weft control: --cert-ttl and --ca-root-ttl must be at least 1s\n");
        status = 2;
        goto out;
    }
    if ((rc = cp_ca_open(&cao, wf_wall_ms(), &ca, err, sizeof(err))) < 0) {
        fprintf(stderr, "weft control: cannot start the CA: %s\n", err);
        goto out;
    }
    cp_ca_bundle(ca, &bundle, &bundle_version);

    /* Block the stop signals before any thread exists, so every thread inherits the mask and
     * only sigtimedwait below takes them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* Nothing is re-read on SIGHUP (a closed terminal, `systemctl reload`): it must not stop
     * the control plane, as its default action would. */
    signal(SIGHUP, SIG_IGN);
    unsigned max_conns = raise_nofile();
    tune_malloc();

    cp_push_opts_t po = {
        .store = store,
        .registry = reg,
        .compiler = &compiler,
        .compile = {.collector_url = cfg.collector,
                    .sampling = sampling,
                    .access_log = cfg.access_log,
                    .trust_bundle = bundle,
                    .trust_bundle_version = bundle_version},
    };
    if ((rc = cp_push_new(&po, &push)) < 0 || (rc = cp_push_start(push)) < 0) {
        fprintf(stderr, "weft control: cannot build the configuration: %s\n", cp_strerror(rc));
        goto out;
    }

    cp_api_options_t ao = {
        .store = store,
        .registry = reg,
        .admin_token = admin,
        .bootstrap_token = boot,
        .read_token = reader,
        .read_open = cfg.read_open,
        .max_body = (size_t)cfg.max_body,
        .push = push,
        .max_connections = max_conns,
        .ca = ca,
    };
    if ((rc = cp_api_new(&ao, &api)) < 0 || (rc = cp_api_listen(api, cfg.listen)) < 0) {
        fprintf(stderr, "weft control: cannot listen on %s: %s\n", cfg.listen, cp_strerror(rc));
        goto out;
    }
    WF_LOG(WF_INFO, "control", "serving", "listen=%s data_dir=%s lease_ttl_ms=%lld", cfg.listen,
           cfg.data_dir, (long long)cfg.lease_ttl_ms);
    cp_registry_stats_t rs0;
    cp_registry_stats(reg, &rs0);
    uint64_t expired = rs0.leases_expired;
    for (;;) {
        struct timespec tick = {.tv_sec = 1};
        int sig = sigtimedwait(&stop, NULL, &tick);
        if (sig == SIGINT || sig == SIGTERM) {
            break;
        }
        /* Leases also run out when a list sweeps them: count them all, not only this sweep. */
        cp_registry_stats_t rs;
        cp_registry_expire(reg, wf_wall_ms());
        ca_tick(ca, push);
        cp_registry_stats(reg, &rs);
        if (rs.leases_expired != expired) {
            expired = rs.leases_expired;
            cp_push_notify(push, wf_mono_ns() / 1000000);
        }
    }
    WF_LOG(WF_INFO, "control", "stopping", "");
    status = 0;
out:
    cp_api_free(api);
    cp_push_free(push);
    cp_ca_close(ca);
    wf_free(bundle);
    cp_registry_close(reg);
    cp_store_close(store);
    wf_flags_free(cp_flags, &cfg);
    return status;
}
