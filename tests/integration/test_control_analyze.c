/*
 * test_control_analyze.c - starts the real `weft control` and reads GET /v1/analyze: a
 * VirtualService routing to a subset no DestinationRule defines shows KIA1107 (and only that,
 * since its host has a registered workload); applying the DestinationRule clears it; the
 * namespace filter and the admin token are honoured.
 */
#include "wf_alloc.h"
#include "wt_util.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* One request with an optional bearer token. Returns the status; *out the body (wf_free). */
static int req(int port, const char *method, const char *path, const char *token, const char *body,
               char **out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char auth[256] = "", clen[128] = "";
    if (token != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", token);
    }
    if (body != NULL) {
        snprintf(clen, sizeof(clen), "Content-Length: %zu\r\nContent-Type: application/json\r\n",
                 strlen(body));
    }
    char head[1024];
    int hl = snprintf(head, sizeof(head),
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s\r\n", method,
                      path, auth, clen);
    assert_int_equal(write(fd, head, (size_t)hl), hl);
    if (body != NULL) {
        assert_int_equal(write(fd, body, strlen(body)), (ssize_t)strlen(body));
    }
    size_t cap = 65536, n = 0;
    char *buf = wf_malloc(cap + 1);
    ssize_t r;
    while ((r = read(fd, buf + n, cap - n)) > 0) {
        n += (size_t)r;
        if (n == cap) {
            cap *= 2;
            buf = wf_realloc(buf, cap + 1);
        }
    }
    close(fd);
    buf[n] = '\0';
    int status = -1;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
        status = -1;
    }
    if (out != NULL) {
        char *sep = strstr(buf, "\r\n\r\n");
        *out = wf_strdup(sep ? sep + 4 : "");
    }
    wf_free(buf);
    return status;
}

static void read_token(const char *data, const char *name, char *out, size_t len)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", data, name);
    char *t = wt_read_file(path, NULL);
    assert_non_null(t);
    t[strcspn(t, "\r\n")] = '\0';
    snprintf(out, len, "%s", t);
    wf_free(t);
}

/* GET /v1/analyze[query] as admin; the "messages" array (json_decref the returned root). */
static json_t *analyze(int port, const char *admin, const char *query, json_t **messages)
{
    char path[128], *body = NULL;
    snprintf(path, sizeof(path), "/v1/analyze%s", query);
    assert_int_equal(req(port, "GET", path, admin, NULL, &body), 200);
    json_error_t err;
    json_t *o = json_loads(body, 0, &err);
    if (o == NULL) {
        fail_msg("not JSON: %s", body);
    }
    wf_free(body);
    *messages = json_object_get(o, "messages");
    assert_true(json_is_array(*messages));
    return o;
}

static const char *field(json_t *m, const char *key)
{
    const char *s = json_string_value(json_object_get(m, key));
    assert_non_null(s);
    return s;
}

static void test_analyze_subset(void **state)
{
    (void)state;
    char *dir = wt_tmpdir("cpanalyze");
    char data[600], listen[64], log[600], admin[128], boot[128], *body = NULL;
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(log, sizeof(log), "%s/control.log", dir);
    int port = wt_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    char *argv[] = {(char *)wt_weft_bin(), "control", "--listen", listen, "--data-dir", data, NULL};
    pid_t pid = wt_spawn(argv, log);
    assert_true(wt_wait_port(port, 20000));
    read_token(data, "admin-token", admin, sizeof(admin));
    read_token(data, "bootstrap-token", boot, sizeof(boot));

    /* Nothing stored yet: nothing to say. */
    json_t *msgs;
    json_t *root = analyze(port, admin, "", &msgs);
    assert_int_equal(json_array_size(msgs), 0);
    json_decref(root);

    assert_int_equal(req(port, "POST", "/v1/register", boot,
                         "{\"service\":\"reviews\",\"namespace\":\"default\",\"version\":\"v3\","
                         "\"address\":\"127.0.0.1\",\"ports\":[9080],"
                         "\"labels\":{\"app\":\"reviews\",\"version\":\"v3\"}}",
                         NULL),
                     200);
    assert_int_equal(
        req(port, "POST", "/apis/networking.istio.io/v1/namespaces/default/virtualservices", admin,
            "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
            "\"metadata\":{\"name\":\"reviews\"},\"spec\":{\"hosts\":[\"reviews\"],"
            "\"http\":[{\"route\":[{\"destination\":{\"host\":\"reviews\",\"subset\":\"v3\"}}]}]}}",
            NULL),
        201);

    root = analyze(port, admin, "", &msgs);
    assert_int_equal(json_array_size(msgs), 1);
    json_t *m = json_array_get(msgs, 0);
    assert_string_equal(field(m, "code"), "KIA1107");
    assert_string_equal(field(m, "level"), "warning");
    assert_string_equal(field(m, "kind"), "VirtualService");
    assert_string_equal(field(m, "namespace"), "default");
    assert_string_equal(field(m, "name"), "reviews");
    assert_string_equal(field(m, "path"), "spec.http[0].route[0].destination.subset");
    assert_string_equal(field(m, "message"),
                        "Subset not found: no DestinationRule defines subset v3 for "
                        "reviews.default.svc.cluster.local");
    json_decref(root);

    /* The namespace filter, and the token. */
    root = analyze(port, admin, "?namespace=default", &msgs);
    assert_int_equal(json_array_size(msgs), 1);
    json_decref(root);
    root = analyze(port, admin, "?namespace=other", &msgs);
    assert_int_equal(json_array_size(msgs), 0);
    json_decref(root);
    assert_int_equal(req(port, "GET", "/v1/analyze", NULL, NULL, NULL), 401);
    assert_int_equal(req(port, "GET", "/v1/analyze", boot, NULL, NULL), 401);
    assert_int_equal(req(port, "POST", "/v1/analyze", admin, "{}", NULL), 405);

    /* The DestinationRule defining v3 (whose labels the registered workload carries). */
    assert_int_equal(req(port, "POST",
                         "/apis/networking.istio.io/v1/namespaces/default/destinationrules", admin,
                         "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"DestinationRule\","
                         "\"metadata\":{\"name\":\"reviews\"},\"spec\":{\"host\":\"reviews\","
                         "\"subsets\":[{\"name\":\"v3\",\"labels\":{\"version\":\"v3\"}}]}}",
                         &body),
                     201);
    wf_free(body);
    root = analyze(port, admin, "", &msgs);
    if (json_array_size(msgs) != 0) {
        char *d = json_dumps(root, 0);
        fprintf(stderr, "%s\n", d);
        free(d);
    }
    assert_int_equal(json_array_size(msgs), 0);
    json_decref(root);

    int st = wt_stop(pid, 10000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    wt_rm_rf(dir);
    wf_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_analyze_subset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
