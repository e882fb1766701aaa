/*
 * test_otel_js.c - the real OpenTelemetry JS SDK against a real `weft collector`.
 *
 * tests/otel-js holds the SDK and its exporters (OTLP/HTTP JSON, OTLP/HTTP protobuf, Zipkin),
 * pinned by package-lock.json and installed by scripts/test.sh (`npm ci`). For each exporter,
 * with and without gzip, tests/otel-js/roundtrip.js creates one trace with nested spans of
 * every kind, every attribute type the JS API allows, events, a link and error statuses,
 * exports it to the collector (on its main port and on the extra OTLP and Zipkin listeners),
 * and reads it back through the Jaeger v1, Jaeger api_v3 and Zipkin v2 APIs, comparing every
 * field with what the SDK recorded. This program runs the collector and the script and
 * reports the script's failures.
 *
 * Without Node.js or the installed packages the test is skipped (exit 77, which ctest shows
 * as skipped), except under CI=true, where that is a failure: CI installs them.
 */
#include "wf_alloc.h"
#include "wt_util.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SKIP_CODE 77

static char js_dir[4096];

/* tests/otel-js next to this file's folder (CMake compiles it by absolute path). */
static void find_js_dir(void)
{
    char src[4096];
    snprintf(src, sizeof(src), "%s", __FILE__);
    snprintf(js_dir, sizeof(js_dir), "%s/../otel-js", dirname(src));
}

static bool have_node(void)
{
    char *argv[] = {"node", "--version", NULL};
    pid_t p = wt_spawn(argv, "/dev/null");
    int st = wt_wait(p, 30000);
    return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void print_file(const char *path)
{
    char *text = wt_read_file(path, NULL);
    if (text != NULL) {
        fputs(text, stdout);
        wf_free(text);
    }
}

int main(void)
{
    find_js_dir();
    char modules[4200];
    snprintf(modules, sizeof(modules), "%s/node_modules/@opentelemetry/sdk-trace-node", js_dir);
    struct stat sb;
    bool ci = getenv("CI") != NULL && strcmp(getenv("CI"), "true") == 0;
    if (!have_node() || stat(modules, &sb) != 0) {
        printf("%s: Node.js or the OpenTelemetry packages are not installed (run `npm ci` in "
               "tests/otel-js, as scripts/test.sh does)\n",
               ci ? "FAIL" : "skipped");
        return ci ? 1 : SKIP_CODE;
    }

    /* Each exporter once; the SDK-default ports (OTLP, Zipkin listeners) and the main port. */
    static const struct {
        const char *script; /* roundtrip.js: a trace; metrics.js: metrics */
        const char *mode;
        int which; /* 0 main port, 1 OTLP listener, 2 Zipkin listener, 3 OTLP/gRPC listener */
        const char *path;
    } runs[] = {
        {"roundtrip.js", "otlp-json", 1, "/v1/traces"},
        {"roundtrip.js", "otlp-proto", 0, "/v1/traces"},
        {"roundtrip.js", "zipkin", 2, "/api/v2/spans"},
        {"roundtrip.js", "otlp-json-gzip", 0, "/v1/traces"},
        {"roundtrip.js", "otlp-proto-gzip", 1, "/v1/traces"},
        {"roundtrip.js", "otlp-grpc", 3, ""},
        {"roundtrip.js", "otlp-grpc-gzip", 3, ""},
        {"metrics.js", "otlp-grpc", 3, ""},
        {"metrics.js", "otlp-grpc-gzip", 3, ""},
    };
    const size_t nruns = sizeof(runs) / sizeof(runs[0]);
    char *dir = wt_tmpdir("oteljs");
    int port = wt_free_port(), otlp_port = wt_free_port(), zipkin_port = wt_free_port();
    int grpc_port = wt_free_port();
    char listen[64], otlp[64], zipkin[64], grpc[64], data[512], log[600];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    snprintf(otlp, sizeof(otlp), "127.0.0.1:%d", otlp_port);
    snprintf(zipkin, sizeof(zipkin), "127.0.0.1:%d", zipkin_port);
    snprintf(grpc, sizeof(grpc), "127.0.0.1:%d", grpc_port);
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(log, sizeof(log), "%s/weft.log", dir);
    char *wargv[] = {(char *)wt_weft_bin(),
                     "collector",
                     "--listen",
                     listen,
                     "--data-dir",
                     data,
                     "--otlp-listen",
                     otlp,
                     "--zipkin-listen",
                     zipkin,
                     "--otlp-grpc-listen",
                     grpc,
                     NULL};
    pid_t weft = wt_spawn(wargv, log);
    int failed = 0;
    if (!wt_wait_port(port, 10000) || !wt_wait_port(otlp_port, 10000) ||
        !wt_wait_port(zipkin_port, 10000) || !wt_wait_port(grpc_port, 10000)) {
        printf("FAIL: the collector did not start\n");
        print_file(log);
        failed = 1;
        goto stop;
    }

    for (size_t i = 0; i < nruns; i++) {
        char script[4200];
        snprintf(script, sizeof(script), "%s/%s", js_dir, runs[i].script);
        const int ports[4] = {port, otlp_port, zipkin_port, grpc_port};
        int to = ports[runs[i].which];
        char base[64], ingest[128], out[700];
        snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
        snprintf(ingest, sizeof(ingest), "http://127.0.0.1:%d%s", to, runs[i].path);
        snprintf(out, sizeof(out), "%s/%zu-%s.out", dir, i, runs[i].mode);
        char *nargv[] = {"node", script, (char *)runs[i].mode, base, ingest, NULL};
        pid_t p = wt_spawn(nargv, out);
        int st = wt_wait(p, 120000);
        bool ok = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
        printf("%s %s %s -> %s\n", ok ? "ok  " : "FAIL", runs[i].script, runs[i].mode, ingest);
        print_file(out);
        if (!ok) {
            failed++;
        }
    }

stop:;
    int st = wt_stop(weft, 10000);
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        printf("FAIL: the collector did not exit cleanly (status %d)\n", st);
        print_file(log);
        failed++;
    }
    wt_rm_rf(dir);
    wf_free(dir);
    printf("%d of %zu exporter runs failed\n", failed, nruns);
    return failed ? 1 : 0;
}
