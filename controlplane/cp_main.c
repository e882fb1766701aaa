/*
 * cp_main.c - `weft control`: flags, the data directory and its tokens, the store, the
 * registry and the HTTP API; then a loop that sweeps expired leases until SIGINT/SIGTERM.
 *
 * The signals are blocked in every thread and taken with sigtimedwait by the main thread, so
 * no handler and no global flag are needed, and the once-a-second sweep rides on the wait.
 */
#include "cp_main.h"

#include "cp_api.h"
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
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef struct {
    char *listen;
    char *data_dir;
    int64_t lease_ttl_ms;
    char *admin_token_file;
    char *bootstrap_token_file;
    bool read_open;
    int64_t max_body;
    char *log_level;
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
    {"read-open", WF_FLAG_BOOL, "false", offsetof(cp_cfg_t, read_open),
     "serve reads (resources, workloads, targets) without a token"},
    {"max-body", WF_FLAG_SIZE, "1MiB", offsetof(cp_cfg_t, max_body),
     "largest request body accepted"},
    {"log-level", WF_FLAG_STR, "info", offsetof(cp_cfg_t, log_level), "error, warn, info or debug"},
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

int cp_main(int argc, char **argv)
{
    cp_cfg_t cfg = {0};
    cp_store_t *store = NULL;
    cp_registry_t *reg = NULL;
    cp_api_t *api = NULL;
    char err[256];
    char admin[CP_TOKEN_MAX_LEN + 1], boot[CP_TOKEN_MAX_LEN + 1];
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
    if (mkdir(cfg.data_dir, 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, "weft control: cannot create %s: %s\n", cfg.data_dir, strerror(errno));
        goto out;
    }
    if ((rc = load_token(cfg.admin_token_file, cfg.data_dir, "admin-token", admin)) < 0 ||
        (rc = load_token(cfg.bootstrap_token_file, cfg.data_dir, "bootstrap-token", boot)) < 0) {
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

    /* Block the stop signals before any thread exists, so every thread inherits the mask and
     * only sigtimedwait below takes them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    cp_api_options_t ao = {
        .store = store,
        .registry = reg,
        .admin_token = admin,
        .bootstrap_token = boot,
        .read_open = cfg.read_open,
        .max_body = (size_t)cfg.max_body,
    };
    if ((rc = cp_api_new(&ao, &api)) < 0 || (rc = cp_api_listen(api, cfg.listen)) < 0) {
        fprintf(stderr, "weft control: cannot listen on %s: %s\n", cfg.listen, cp_strerror(rc));
        goto out;
    }
    WF_LOG(WF_INFO, "control", "serving", "listen=%s data_dir=%s lease_ttl_ms=%lld", cfg.listen,
           cfg.data_dir, (long long)cfg.lease_ttl_ms);
    for (;;) {
        struct timespec tick = {.tv_sec = 1};
        int sig = sigtimedwait(&stop, NULL, &tick);
        if (sig == SIGINT || sig == SIGTERM) {
            break;
        }
        cp_registry_expire(reg, wf_wall_ms());
    }
    WF_LOG(WF_INFO, "control", "stopping", "");
    status = 0;
out:
    cp_api_free(api);
    cp_registry_close(reg);
    cp_store_close(store);
    wf_flags_free(cp_flags, &cfg);
    return status;
}
