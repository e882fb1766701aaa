/*
 * test_deploy_systemd_run.c - the command lines of deploy/systemd/'s units run. Each shipped
 * unit is read as systemd reads it (test_deploy_systemd_common.h): its Environment= defaults,
 * the shipped example env file installed as /etc/weft/... (only the ports moved to free ones),
 * LoadCredential= files copied into a credentials directory (%d), StateDirectory= created under
 * %S, ExecStart= expanded; then the real processes start: the control plane, a `weft demo-app`
 * ratings service with its sidecar weft-proxy@ratings-v1, the ingress gateway, the collector.
 * Asserted: each becomes ready; the sidecar registered with the shipped identity; a Gateway
 * and VirtualService applied with the admin token route through the gateway to ratings; the
 * requests sent directly and through the gateway are counted, exactly, in the collector's
 * istio_requests_total (scraped through the control plane's http_sd); state is in the
 * StateDirectory; SIGTERM (systemd's stop) ends every process with status 0. A wrong flag or
 * variable in a unit or an env file fails here.
 *
 * The parts of a unit's sandbox a process can put on itself are applied to each unit's
 * process before exec: NoNewPrivileges=, UMask=, LimitNOFILE=, and MemoryDenyWriteExecute= as
 * the kernel's PR_SET_MDWE (Linux 6.3+; systemd uses a seccomp filter to the same effect, and
 * so PCRE2's JIT fails under both: the route regex and the PromQL =~ below take the
 * interpreter). Not exercised: the rest of the sandbox (no systemd is PID 1 here;
 * test_deploy_systemd rates it with systemd-analyze), the dynamic users, Restart=.
 */
#include "test_deploy_systemd_common.h"
#include "wf_buf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#endif
#ifndef PR_MDWE_REFUSE_EXEC_GAIN
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

#include <cmocka.h>

/* The ports the shipped units and env files use, each moved to a free one. */
static const char *const default_ports[] = {
    "15010", /* control */
    "20001", /* collector: UI and APIs */
    "4318",  /* collector: OTLP */
    "4317",  /* collector: OTLP/gRPC */
    "9411",  /* collector: Zipkin */
    "9080",  /* the application behind the sidecar */
    "15006", /* sidecar inbound */
    "15001", /* sidecar outbound */
    "15000", /* sidecar admin */
    "15106", /* gateway inbound */
    "15100", /* gateway admin */
};
#define NPORTS (sizeof(default_ports) / sizeof(default_ports[0]))
enum {
    P_CONTROL,
    P_COLLECTOR,
    P_OTLP,
    P_OTLP_GRPC,
    P_ZIPKIN,
    P_APP,
    P_IN,
    P_OUT,
    P_ADMIN,
    P_GW_IN,
    P_GW_ADMIN
};

/* Whether the kernel can deny write+execute memory (PR_SET_MDWE); main sets it. */
static bool g_mdwe;

typedef struct {
    char *dir;
    int port[NPORTS];
    int gw_port; /* the port the applied Gateway opens */
    char admin_token[65];
} fx_t;

/* text with the default ports replaced by the fixture's. New string. */
static char *move_ports(const fx_t *fx, const char *text)
{
    /* One pass, whole numbers only: a free port already put in must not be moved again (a
     * free 43181 holds "4318"). */
    wf_buf_t out = WF_BUF_INIT;
    for (const char *p = text; *p != '\0';) {
        bool moved = false;
        for (size_t i = 0; i < NPORTS && (*p == ':' || *p == '=') && !moved; i++) {
            size_t n = strlen(default_ports[i]);
            if (strncmp(p + 1, default_ports[i], n) == 0 && !isdigit((unsigned char)p[1 + n])) {
                wf_buf_printf(&out, "%c%d", *p, fx->port[i]);
                p += 1 + n;
                moved = true;
            }
        }
        if (!moved) {
            wf_buf_putc(&out, (uint8_t)*p++);
        }
    }
    wf_buf_putc(&out, 0);
    return (char *)wf_buf_detach(&out, NULL);
}

static void mkdir_p(const char *path)
{
    char buf[700];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0700);
            *p = '/';
        }
    }
    mkdir(buf, 0700);
}

/* Install a shipped example env file as fx->dir + etc_path, ports moved, extra lines after. */
static void install_env(const fx_t *fx, const char *shipped, const char *etc_path,
                        const char *extra)
{
    char *src = su_path(shipped);
    char *text = wt_read_file(src, NULL);
    assert_non_null(text);
    char *moved = move_ports(fx, text);
    size_t n = strlen(moved) + strlen(extra) + 2;
    char *all = wf_malloc(n);
    snprintf(all, n, "%s\n%s", moved, extra);
    char path[700];
    snprintf(path, sizeof(path), "%s%s", fx->dir, etc_path);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    mkdir_p(path);
    *slash = '/';
    wt_write_file(path, all);
    wf_free(all);
    wf_free(moved);
    wf_free(text);
    wf_free(src);
}

/* The value of name in a shipped env file (as read by the reader under test). New string. */
static char *shipped_value(const char *shipped, const char *name)
{
    char *src = su_path(shipped);
    char *text = wt_read_file(src, NULL);
    assert_non_null(text);
    su_env_t e = {0};
    assert_int_equal(su_env_file(&e, text), 0);
    char *v = su_strdup(su_env_get(&e, name, strlen(name)));
    su_env_free(&e);
    wf_free(text);
    wf_free(src);
    return v;
}

static void copy_file(const char *from, const char *to)
{
    size_t len = 0;
    char *data = wt_read_file(from, &len);
    if (data == NULL) {
        fail_msg("LoadCredential: %s cannot be read (systemd would fail the unit)", from);
    }
    int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0400);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    wf_free(data);
}

/* What of a unit's sandbox start_unit puts on its process. */
typedef struct {
    bool no_new_privs; /* NoNewPrivileges=yes */
    bool mdwe;         /* MemoryDenyWriteExecute=yes */
    long umask_bits;   /* UMask=, -1 when not set */
    long long nofile;  /* LimitNOFILE=, 0 when not set */
} su_limits_t;

/* Whether this kernel has PR_SET_MDWE: tried in a child, since it cannot be undone. */
static bool mdwe_supported(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        _exit(prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0L, 0L, 0L) == 0 ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* wt_spawn with the limits applied in the child before exec. */
static pid_t spawn_limited(char *const argv[], const char *log_path, const su_limits_t *lim)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid != 0) {
        return pid;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* no server outlives a crashed test */
    if (getppid() != parent) {
        _exit(127);
    }
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    if (lim->umask_bits >= 0) {
        umask((mode_t)lim->umask_bits);
    }
    if (lim->nofile > 0) {
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        rlim_t want = (rlim_t)lim->nofile;
        if (want > rl.rlim_max) { /* raising the hard limit takes privileges the test may lack */
            want = rl.rlim_max;
        }
        rl.rlim_cur = rl.rlim_max = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            _exit(126);
        }
    }
    if (lim->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L) != 0) {
        _exit(126);
    }
    if (lim->mdwe && prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0L, 0L, 0L) != 0) {
        _exit(126);
    }
    execv(argv[0], argv);
    _exit(127);
}

/*
 * Start a shipped unit the way systemd would start it (instance: %i, "" for a plain unit).
 * Returns the pid; its output goes to fx->dir/<name>.log.
 */
static pid_t start_unit(const fx_t *fx, const char *file, const char *instance, const char *name)
{
    char state[700], cred[700], log[700];
    snprintf(state, sizeof(state), "%s/var/lib", fx->dir);
    snprintf(cred, sizeof(cred), "%s/run/credentials/%s", fx->dir, name);
    snprintf(log, sizeof(log), "%s/%s.log", fx->dir, name);
    mkdir_p(state);
    mkdir_p(cred);
    su_ctx_t ctx = {
        .instance = instance, .state_root = state, .cred_dir = cred, .etc_root = fx->dir};

    char *src = su_path(file);
    char *text = wt_read_file(src, NULL);
    assert_non_null(text);
    char *moved = move_ports(fx, text);
    su_service_t svc;
    assert_int_equal(su_parse_unit(moved, &ctx, &svc), 0);

    /* Environment= first, then every EnvironmentFile= over it (systemd.exec(5)). */
    su_env_t env = {0};
    const char *exec = NULL;
    su_limits_t lim = {.umask_bits = -1};
    for (int i = 0; i < svc.n; i++) {
        if (strcmp(svc.key[i], "NoNewPrivileges") == 0) {
            lim.no_new_privs = strcmp(svc.val[i], "yes") == 0;
        } else if (strcmp(svc.key[i], "MemoryDenyWriteExecute") == 0) {
            lim.mdwe = strcmp(svc.val[i], "yes") == 0 && g_mdwe;
        } else if (strcmp(svc.key[i], "UMask") == 0) {
            lim.umask_bits = strtol(svc.val[i], NULL, 8);
        } else if (strcmp(svc.key[i], "LimitNOFILE") == 0) {
            lim.nofile = atoll(svc.val[i]);
        } else if (strcmp(svc.key[i], "Environment") == 0) {
            assert_int_equal(su_env_assign(&env, svc.val[i]), 0);
        } else if (strcmp(svc.key[i], "ExecStart") == 0) {
            assert_null(exec); /* one command: Type=exec */
            exec = svc.val[i];
        } else if (strncmp(svc.key[i], "Exec", 4) == 0) {
            fail_msg("%s uses %s, which this test does not run", file, svc.key[i]);
        }
    }
    for (int i = 0; i < svc.n; i++) {
        if (strcmp(svc.key[i], "EnvironmentFile") == 0) {
            bool optional = svc.val[i][0] == '-';
            char *path = su_etc(svc.val[i] + (optional ? 1 : 0), &ctx);
            char *etext = wt_read_file(path, NULL);
            if (etext == NULL && !optional) {
                fail_msg("EnvironmentFile %s is missing (systemd would fail the unit)", path);
            }
            if (etext != NULL) {
                assert_int_equal(su_env_file(&env, etext), 0);
            }
            wf_free(etext);
            wf_free(path);
        } else if (strcmp(svc.key[i], "LoadCredential") == 0) {
            char *colon = strchr(svc.val[i], ':');
            assert_non_null(colon);
            *colon = '\0';
            char *from = su_etc(colon + 1, &ctx), to[800];
            snprintf(to, sizeof(to), "%s/%s", cred, svc.val[i]);
            copy_file(from, to);
            wf_free(from);
        } else if (strcmp(svc.key[i], "StateDirectory") == 0) {
            char dir[800];
            snprintf(dir, sizeof(dir), "%s/%s", state, svc.val[i]);
            mkdir_p(dir);
        }
    }
    assert_non_null(exec);

    char *argv[SU_MAX_ARGS];
    int argc = 0;
    assert_int_equal(su_exec_argv(exec, &env, argv, &argc), 0);
    assert_true(argc > 1);
    assert_string_equal(argv[0], SU_UNIT_BIN);
    wf_free(argv[0]);
    argv[0] = su_strdup(wt_weft_bin());
    printf("%s:", name);
    for (int i = 1; i < argc; i++) {
        printf(" %s", argv[i]);
    }
    printf("\n");
    pid_t pid = spawn_limited(argv, log, &lim);
    for (int i = 0; i < argc; i++) {
        wf_free(argv[i]);
    }
    su_env_free(&env);
    su_service_free(&svc);
    wf_free(moved);
    wf_free(text);
    wf_free(src);
    return pid;
}

static void print_log(const fx_t *fx, const char *name)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/%s.log", fx->dir, name);
    char *text = wt_read_file(path, NULL);
    fprintf(stderr, "--- %s\n%s\n", path, text != NULL ? text : "(none)");
    wf_free(text);
}

/* Poll GET path on port until it answers want (up to timeout_ms); the last status. */
static int wait_status(int port, const char *path, int want, int timeout_ms)
{
    int st = -1;
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        st = wt_http(port, "GET", path, NULL, 0, NULL);
        if (st == want) {
            break;
        }
        usleep(100 * 1000);
    }
    return st;
}

/* A request with the admin token; the status, the body in *out. */
static int admin_req(const fx_t *fx, const char *method, const char *path, const char *body,
                     char **out)
{
    char hdr[200];
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\nContent-Type: application/json\r\n",
             fx->admin_token);
    return wt_http_ex(fx->port[P_CONTROL], method, path, hdr, body, body ? strlen(body) : 0, 10000,
                      out);
}

/* The value of a one-element instant-vector result, as the API prints it; "" when none. */
static void query_value(const fx_t *fx, const char *encoded, char *out, size_t cap)
{
    char path[1024], *body = NULL;
    snprintf(path, sizeof(path), "/api/v1/query?query=%s", encoded);
    out[0] = '\0';
    if (wt_http(fx->port[P_COLLECTOR], "GET", path, NULL, 0, &body) == 200) {
        const char *v = strstr(body, "\"value\":[");
        const char *q = v != NULL ? strchr(v + strlen("\"value\":["), '"') : NULL;
        const char *e = q != NULL ? strchr(q + 1, '"') : NULL;
        if (e != NULL) {
            snprintf(out, cap, "%.*s", (int)(e - q - 1), q + 1);
        }
    }
    wf_free(body);
}

/* Poll the query until its value is want (up to timeout_ms); the last value in got. When it
 * never is, every istio_requests_total series is printed. */
static void wait_value(const fx_t *fx, const char *encoded, const char *want, char *got, size_t cap,
                       int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 250) {
        query_value(fx, encoded, got, cap);
        if (strcmp(got, want) == 0) {
            return;
        }
        usleep(250 * 1000);
    }
    char *body = NULL;
    wt_http(fx->port[P_COLLECTOR], "GET", "/api/v1/query?query=istio_requests_total", NULL, 0,
            &body);
    fprintf(stderr, "wanted %s, got \"%s\"; istio_requests_total:\n%s\n", want, got,
            body != NULL ? body : "(no answer)");
    wf_free(body);
}

static void write_token(const fx_t *fx, const char *name, char *hex)
{
    uint64_t seed = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)name;
    for (int i = 0; i < 64; i++) {
        hex[i] = "0123456789abcdef"[wt_rand(&seed) % 16];
    }
    hex[64] = '\0';
    char path[700], line[80];
    snprintf(path, sizeof(path), "%s/etc/weft/%s", fx->dir, name);
    snprintf(line, sizeof(line), "%s\n", hex); /* as `openssl rand -hex 32 >FILE` writes it */
    wt_write_file(path, line);
    chmod(path, 0600);
}

/* A temporary root with distinct free ports and the three tokens in etc/weft. */
static void fx_init(fx_t *fx)
{
    memset(fx, 0, sizeof(*fx));
    fx->dir = wt_tmpdir("weft-systemd-run");
    /* distinct free ports (two probes in a row can be given the same one) */
    for (size_t i = 0; i <= NPORTS; i++) {
        int p;
        bool again;
        do {
            p = wt_free_port();
            again = false;
            for (size_t j = 0; j < i; j++) {
                again = again || fx->port[j] == p;
            }
        } while (again);
        if (i < NPORTS) {
            fx->port[i] = p;
        } else {
            fx->gw_port = p;
        }
    }
    char etc[700], boot[65], reader[65];
    snprintf(etc, sizeof(etc), "%s/etc/weft", fx->dir);
    mkdir_p(etc);
    write_token(fx, "admin-token", fx->admin_token);
    write_token(fx, "bootstrap-token", boot);
    write_token(fx, "read-token", reader);
}

static void test_units_run(void **state)
{
    (void)state;
    fx_t fx;
    fx_init(&fx);

    /* The shipped env files, as README.md installs them; the collector scrapes every second so
     * that the test need not wait 15 s, and the gateway stays on loopback. */
    char *col_args = shipped_value("collector.env", "WEFT_ARGS");
    char col_extra[600];
    snprintf(col_extra, sizeof(col_extra),
             "WEFT_ARGS=%s --scrape-interval 1s --scrape-timeout 1s\n", col_args);
    install_env(&fx, "control.env", "/etc/weft/control.env", "");
    install_env(&fx, "collector.env", "/etc/weft/collector.env", col_extra);
    install_env(&fx, "proxy-example.env", "/etc/weft/proxy/ratings-v1.env", "");
    install_env(&fx, "gateway.env", "/etc/weft/gateway.env", "WEFT_GATEWAY_BIND=127.0.0.1\n");
    wf_free(col_args);

    /* 1. The control plane, with both tokens from its credentials. */
    pid_t control = start_unit(&fx, "weft-control.service", "", "weft-control.service");
    if (wait_status(fx.port[P_CONTROL], "/healthz", 200, 20000) != 200) {
        print_log(&fx, "weft-control.service");
        fail_msg("the control plane did not become healthy");
    }

    /* 2. ratings v1 on the example's application port, and its sidecar. */
    char app_listen[32], app_log[700];
    snprintf(app_listen, sizeof(app_listen), "127.0.0.1:%d", fx.port[P_APP]);
    snprintf(app_log, sizeof(app_log), "%s/ratings.log", fx.dir);
    pid_t app = wt_spawn((char *[]){(char *)wt_weft_bin(), "demo-app", "--role", "ratings",
                                    "--version", "v1", "--listen", app_listen, NULL},
                         app_log);
    pid_t proxy =
        start_unit(&fx, "weft-proxy@.service", "ratings-v1", "weft-proxy@ratings-v1.service");
    if (wait_status(fx.port[P_ADMIN], "/ready", 200, 20000) != 200) {
        print_log(&fx, "weft-proxy@ratings-v1.service");
        fail_msg("the sidecar did not become ready");
    }
    char *body = NULL;
    assert_int_equal(admin_req(&fx, "GET", "/v1/workloads", NULL, &body), 200);
    assert_non_null(strstr(body, "\"ratings-v1.default\""));
    assert_non_null(strstr(body, "spiffe://cluster.local/ns/default/sa/bookinfo-ratings"));
    wf_free(body);

    /* 3. The gateway, and a route through it to ratings applied with the admin token. */
    pid_t gateway = start_unit(&fx, "weft-gateway.service", "", "weft-gateway.service");
    char apply[2048];
    snprintf(apply, sizeof(apply),
             "{\"items\":[{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"Gateway\","
             "\"metadata\":{\"name\":\"gw\",\"namespace\":\"default\"},\"spec\":{\"selector\":"
             "{\"istio\":\"ingressgateway\"},\"servers\":[{\"port\":{\"number\":%d,\"name\":"
             "\"http\",\"protocol\":\"HTTP\"},\"hosts\":[\"*\"]}]}},"
             "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
             "\"metadata\":{\"name\":\"ratings\",\"namespace\":\"default\"},\"spec\":{\"hosts\":"
             "[\"*\"],\"gateways\":[\"gw\"],\"http\":[{\"match\":[{\"uri\":{\"regex\":"
             "\"/ratings/[0-9]+\"}}],\"route\":[{\"destination\":{\"host\":"
             "\"ratings\",\"port\":{\"number\":%d}}}]}]}}]}",
             fx.gw_port, fx.port[P_IN]);
    int st = admin_req(&fx, "POST", "/v1/apply", apply, &body);
    if (st != 200) {
        fprintf(stderr, "%s\n", body);
    }
    assert_int_equal(st, 200);
    wf_free(body);
    if (wait_status(fx.port[P_GW_ADMIN], "/ready", 200, 20000) != 200) {
        print_log(&fx, "weft-gateway.service");
        fail_msg("the gateway did not become ready");
    }

    /* 4. Three requests straight to the sidecar's inbound port, two through the gateway (over
     * mTLS from the gateway to the sidecar). */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(wt_http(fx.port[P_IN], "GET", "/ratings/0", NULL, 0, &body), 200);
        assert_non_null(strstr(body, "\"Reviewer1\":5"));
        wf_free(body);
    }
    for (int i = 0; i < 2; i++) {
        st = wait_status(fx.gw_port, "/ratings/0", 200, 10000);
        if (st != 200) {
            print_log(&fx, "weft-gateway.service");
        }
        assert_int_equal(st, 200);
    }

    /* 5. The collector, started once both proxies are registered: it reads the control plane's
     * http_sd at start and then only every 30 s. */
    pid_t collector = start_unit(&fx, "weft-collector.service", "", "weft-collector.service");
    if (wait_status(fx.port[P_COLLECTOR], "/-/ready", 200, 30000) != 200) {
        print_log(&fx, "weft-collector.service");
        fail_msg("the collector did not become ready");
    }
    char got[64];
    /* sum(istio_requests_total{reporter="destination",destination_workload=~"ratings-v[0-9]+",
     * response_code="200"}) */
    wait_value(&fx,
               "sum(istio_requests_total%7Breporter%3D%22destination%22%2Cdestination_workload%3D~"
               "%22ratings-v%5B0-9%5D%2B%22%2Cresponse_code%3D%22200%22%7D)",
               "5", got, sizeof(got), 20000);
    printf("sidecar's requests in the collector: %s\n", got);
    assert_string_equal(got, "5");
    /* sum(istio_requests_total{reporter="destination",source_workload="istio-ingressgateway",
     * connection_security_policy="mutual_tls"}) */
    wait_value(&fx,
               "sum(istio_requests_total%7Breporter%3D%22destination%22%2Csource_workload%3D%22"
               "istio-ingressgateway%22%2Cconnection_security_policy%3D%22mutual_tls%22%7D)",
               "2", got, sizeof(got), 10000);
    assert_string_equal(got, "2");
    /* sum(istio_requests_total{reporter="source",source_workload="istio-ingressgateway",
     * destination_workload="ratings-v1"}) */
    wait_value(&fx,
               "sum(istio_requests_total%7Breporter%3D%22source%22%2Csource_workload%3D%22"
               "istio-ingressgateway%22%2Cdestination_workload%3D%22ratings-v1%22%7D)",
               "2", got, sizeof(got), 10000);
    assert_string_equal(got, "2");

    /* 6. State where the units say: the StateDirectory of each, private to its user. */
    char path[800];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/var/lib/weft-control/control.db", fx.dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 077, 0); /* UMask=0077: nothing for other users */
    snprintf(path, sizeof(path), "%s/var/lib/weft-collector/weft.db", fx.dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 077, 0);

    /* The restrictions reached the running processes. */
    const pid_t units[] = {control, proxy, gateway, collector};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        snprintf(path, sizeof(path), "/proc/%d/status", (int)units[i]);
        char *status = wt_read_file(path, NULL);
        assert_non_null(status);
        assert_non_null(strstr(status, "NoNewPrivs:\t1\n"));
        wf_free(status);
    }

    /* 7. systemd stops a unit with SIGTERM (KillSignal's default): each exits 0 well within
     * its TimeoutStopSec. */
    const struct {
        pid_t pid;
        const char *name;
    } order[] = {{gateway, "weft-gateway.service"},
                 {proxy, "weft-proxy@ratings-v1.service"},
                 {collector, "weft-collector.service"},
                 {control, "weft-control.service"}};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        st = wt_stop(order[i].pid, 25000);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            print_log(&fx, order[i].name);
        }
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    wt_stop(app, 10000);
    wt_rm_rf(fx.dir);
    wf_free(fx.dir);
}

/*
 * A setting weft refuses (here a misspelt flag in WEFT_ARGS) makes it exit 2, which every unit
 * lists in RestartPreventExitStatus=: systemd then marks the unit failed at once instead of
 * restarting it into the same error.
 */
static void test_refused_setting_exits_2(void **state)
{
    (void)state;
    fx_t fx;
    fx_init(&fx);
    install_env(&fx, "control.env", "/etc/weft/control.env", "WEFT_ARGS=--lease-tt 30s\n");
    pid_t control = start_unit(&fx, "weft-control.service", "", "weft-control.service");
    int st = wt_wait(control, 20000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
    char path[700];
    snprintf(path, sizeof(path), "%s/weft-control.service.log", fx.dir);
    char *log = wt_read_file(path, NULL);
    assert_non_null(strstr(log, "--lease-tt"));
    wf_free(log);
    for (size_t i = 0; i < SU_NUNITS; i++) {
        char *src = su_path(su_units[i].file);
        char *text = wt_read_file(src, NULL);
        assert_non_null(strstr(text, "\nRestartPreventExitStatus=2\n"));
        wf_free(text);
        wf_free(src);
    }
    wt_rm_rf(fx.dir);
    wf_free(fx.dir);
}

/* The reader refuses what it does not implement instead of guessing. */
static void test_reader_refuses_unknown_syntax(void **state)
{
    (void)state;
    su_ctx_t ctx = {.instance = "x", .state_root = "/s", .cred_dir = "/c", .etc_root = "/e"};
    su_service_t svc;
    assert_int_equal(su_parse_unit("[Service]\nExecStart=/bin/x %n\n", &ctx, &svc), -1);
    assert_int_equal(
        su_parse_unit("[Service]\nExecStart=/bin/x %i \\\n  %S/a %d/b %%\n", &ctx, &svc), 0);
    assert_int_equal(svc.n, 1);
    assert_string_equal(svc.val[0], "/bin/x x    /s/a /c/b %");
    su_service_free(&svc);

    su_env_t env = {0};
    assert_int_equal(su_env_file(&env, "A=\"quoted\"\n"), -1);
    assert_int_equal(su_env_file(&env, "# c\n; c\n\n  A = 1\n"), -1); /* space before = */
    assert_int_equal(su_env_assign(&env, "A=1 B=x=y ARGS="), 0);
    assert_int_equal(su_env_file(&env, "A=2\nARGS=--a 1  --b\n"), 0);
    char *argv[SU_MAX_ARGS];
    int argc = 0;
    assert_int_equal(su_exec_argv("/bin/x --a ${A} --b ${B}/c $ARGS $UNSET", &env, argv, &argc), 0);
    const char *want[] = {"/bin/x", "--a", "2", "--b", "x=y/c", "--a", "1", "--b"};
    assert_int_equal(argc, 8);
    for (int i = 0; i < argc; i++) {
        assert_string_equal(argv[i], want[i]);
        wf_free(argv[i]);
    }
    assert_int_equal(su_exec_argv("-/bin/x", &env, argv, &argc), -1);
    assert_int_equal(su_exec_argv("/bin/x a$A", &env, argv, &argc), -1);
    su_env_free(&env);
}

int main(void)
{
    g_mdwe = mdwe_supported();
    if (!g_mdwe) {
        printf("note: this kernel lacks PR_SET_MDWE; MemoryDenyWriteExecute= is not applied\n");
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_refuses_unknown_syntax),
        cmocka_unit_test(test_units_run),
        cmocka_unit_test(test_refused_setting_exits_2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
