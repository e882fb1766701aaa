/*
 * wt_control.c - one way for tests and benchmarks to run `weft control` and talk to it (see
 * wt_control.h); the HTTP underneath is wt_util's.
 */
#include "wt_control.h"

#include "wf_alloc.h"
#include "wt_util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* The first line of data/name into out; -1 when the file cannot be read. */
static int read_token(const char *data, const char *name, char *out, size_t len)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/%s", data, name);
    char *t = wt_read_file(path, NULL);
    if (t == NULL) {
        return -1;
    }
    t[strcspn(t, "\r\n")] = '\0';
    snprintf(out, len, "%s", t);
    wf_free(t);
    return 0;
}

int wt_control_start(wt_control_t *c, const char *const *extra)
{
    char listen[64], log[700];
    const char *argv[48];
    size_t n = 0;
    if (c->port == 0) {
        c->port = wt_free_port();
    }
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", c->port);
    snprintf(log, sizeof(log), "%s/control.log", c->dir);
    argv[n++] = wt_weft_bin();
    argv[n++] = "control";
    argv[n++] = "--listen";
    argv[n++] = listen;
    argv[n++] = "--data-dir";
    argv[n++] = c->data;
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        if (n == sizeof(argv) / sizeof(argv[0]) - 1) {
            fprintf(stderr, "wt_control_start: too many arguments\n");
            return -1;
        }
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    c->pid = wt_spawn((char *const *)argv, log);
    if (!wt_wait_port(c->port, 20000) ||
        read_token(c->data, "admin-token", c->admin, sizeof(c->admin)) != 0 ||
        read_token(c->data, "bootstrap-token", c->boot, sizeof(c->boot)) != 0 ||
        read_token(c->data, "read-token", c->reader, sizeof(c->reader)) != 0) {
        fprintf(stderr, "wt_control_start: weft control did not start (log: %s)\n", log);
        return -1;
    }
    snprintf(c->admin_file, sizeof(c->admin_file), "%s/admin-token", c->data);
    snprintf(c->reader_file, sizeof(c->reader_file), "%s/read-token", c->data);
    return 0;
}

int wt_control_new(wt_control_t *c, const char *prefix, const char *const *extra)
{
    memset(c, 0, sizeof(*c));
    c->dir = wt_tmpdir(prefix);
    size_t len = strlen(c->dir) + sizeof("/data");
    c->data = wf_malloc(len);
    snprintf(c->data, len, "%s/data", c->dir);
    return wt_control_start(c, extra);
}

int wt_control_stop(wt_control_t *c)
{
    int st = wt_stop(c->pid, 10000);
    c->pid = 0;
    return st;
}

void wt_control_free(wt_control_t *c)
{
    if (c->pid > 0) {
        kill(c->pid, SIGKILL);
        wt_wait(c->pid, 10000);
        c->pid = 0;
    }
    if (c->dir != NULL) {
        wt_rm_rf(c->dir);
    }
    wf_free(c->dir);
    wf_free(c->data);
    c->dir = NULL;
    c->data = NULL;
}

int wt_control_req_full(int port, const char *method, const char *path, const char *token,
                        const char *body, size_t len, bool chunked, int timeout_ms, char **out)
{
    char headers[512] = "";
    int hl = 0;
    if (token != NULL) {
        hl = snprintf(headers, sizeof(headers), "Authorization: Bearer %s\r\n", token);
    }
    if (body != NULL && hl >= 0 && hl < (int)sizeof(headers)) {
        snprintf(headers + hl, sizeof(headers) - (size_t)hl, "%s",
                 chunked ? "Transfer-Encoding: chunked\r\n" : "Content-Type: application/json\r\n");
    }
    return wt_http_ex(port, method, path, headers, body, len, timeout_ms, out);
}

int wt_control_req(int port, const char *method, const char *path, const char *token,
                   const char *body, char **out)
{
    return wt_control_req_full(port, method, path, token, body, body ? strlen(body) : 0, false,
                               10000, out);
}

double wt_control_metric(int port, const char *name)
{
    char *body = NULL;
    double v = -1;
    if (wt_control_req(port, "GET", "/metrics", NULL, NULL, &body) == 200) {
        size_t n = strlen(name);
        for (const char *line = body; *line;
             line = strchr(line, '\n') ? strchr(line, '\n') + 1 : "") {
            if (strncmp(line, name, n) == 0 && line[n] == ' ') {
                v = strtod(line + n + 1, NULL);
                break;
            }
        }
    }
    wf_free(body);
    return v;
}
