/*
 * test_proxy_reload.c - config snapshot swaps in a running `weft proxy`: SIGHUP reloads the
 * --config file; new requests route by the new snapshot at once while a request in flight
 * finishes on the one it started with; a broken file, an older or equal version, and a
 * snapshot for another identity are refused (NACK) and the last good snapshot keeps serving;
 * cluster counters carry over a swap; weft_proxy_config_version and
 * weft_proxy_config_updates_total say what happened.
 */
#include "test_proxy_common.h"

typedef struct {
    upstream_t a, b;
    proxy_t px;
    char *dir;
    char path[4200];
} lfx_t;

static const char *const rq_series =
    "weft_proxy_upstream_rq_total{cluster_name=\"outbound|9080||reviews.default.svc.cluster."
    "local\"}";

/* Write the snapshot file: version, service name of the proxy, the endpoint's port. */
static void write_snapshot(lfx_t *f, int version, const char *service, int port)
{
    char tmp[4300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
    FILE *fp = fopen(tmp, "w");
    assert_non_null(fp);
    fprintf(fp,
            "{\"schema\": 1, \"version\": %d,\n"
            " \"proxy\": {\"service\": \"%s\", \"version\": \"v1\"},\n"
            " \"virtual_hosts\": [{\"host\": \"reviews\", \"port\": 9080}],\n"
            " \"clusters\": [{\"host\": \"reviews\", \"port\": 9080,\n"
            "   \"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": %d}]}]}\n",
            version, service, port);
    fclose(fp);
    assert_int_equal(rename(tmp, f->path), 0); /* the proxy never reads a half-written file */
}

static void write_text(lfx_t *f, const char *text)
{
    wt_write_file(f->path, text);
}

static int setup(void **state)
{
    lfx_t *f = wf_calloc(1, sizeof(*f));
    upstream_start(&f->a, "A");
    upstream_start(&f->b, "B");
    f->dir = wt_tmpdir("pxreload");
    snprintf(f->path, sizeof(f->path), "%s/snapshot.json", f->dir);
    write_snapshot(f, 1, "productpage", f->a.port);
    proxy_start_with(&f->px, wt_free_port(), f->path, "2", NULL);
    assert_true(wt_wait_port(f->px.outbound, 10000));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    lfx_t *f = *state;
    proxy_stop(&f->px);
    upstream_stop(&f->a);
    upstream_stop(&f->b);
    wt_rm_rf(f->dir);
    wf_free(f->dir);
    wf_free(f);
    return 0;
}

/* SIGHUP, then wait until the reload was handled (one more accepted or rejected update). */
static void reload(lfx_t *f)
{
    double acc = stat_value(f->px.admin, "weft_proxy_config_updates_total{result=\"accepted\"}");
    double rej = stat_value(f->px.admin, "weft_proxy_config_updates_total{result=\"rejected\"}");
    assert_int_equal(kill(f->px.pid, SIGHUP), 0);
    for (int i = 0; i < 1000; i++) {
        double a2 = stat_value(f->px.admin, "weft_proxy_config_updates_total{result=\"accepted\"}");
        double r2 = stat_value(f->px.admin, "weft_proxy_config_updates_total{result=\"rejected\"}");
        if (a2 + r2 > acc + rej) {
            return;
        }
        usleep(10 * 1000);
    }
    fail_msg("the proxy did not handle SIGHUP");
}

static void who(lfx_t *f, const char *want)
{
    resp_t rs;
    /* New connections: each may land on either worker. */
    for (int i = 0; i < 6; i++) {
        assert_int_equal(request(f->px.outbound, "GET /who HTTP/1.1\r\nHost: reviews:9080\r\n\r\n",
                                 NULL, 0, &rs),
                         200);
        assert_true(body_is(&rs, want, strlen(want)));
        resp_free(&rs);
    }
}

typedef struct {
    int port;
    int status;
    char body[32];
} slow_t;

static void *slow_request(void *arg)
{
    slow_t *s = arg;
    resp_t rs;
    s->status =
        request(s->port, "GET /nap?ms=700 HTTP/1.1\r\nHost: reviews:9080\r\n\r\n", NULL, 0, &rs);
    snprintf(s->body, sizeof(s->body), "%.*s", (int)rs.body.len, (const char *)rs.body.data);
    resp_free(&rs);
    return NULL;
}

static void test_swap_keeps_requests_in_flight(void **state)
{
    lfx_t *f = *state;
    who(f, "A");
    double rq0 = stat_value(f->px.admin, rq_series);
    assert_int_equal(rq0, 6);
    /* A request in flight on snapshot 1 (it waits at A)... */
    slow_t s = {.port = f->px.outbound};
    int a0 = atomic_load(&f->a.requests);
    pthread_t t;
    pthread_create(&t, NULL, slow_request, &s);
    for (int i = 0; i < 500 && atomic_load(&f->a.requests) == a0; i++) {
        usleep(5 * 1000);
    }
    /* ...while snapshot 2 moves the service to B. */
    write_snapshot(f, 2, "productpage", f->b.port);
    reload(f);
    assert_int_equal(stat_value(f->px.admin, "weft_proxy_config_version"), 2);
    who(f, "B");
    pthread_join(t, NULL);
    assert_int_equal(s.status, 200);
    assert_string_equal(s.body, "A");
    /* The cluster kept its counters: 6 + the slow one + 6. */
    assert_int_equal(stat_value(f->px.admin, rq_series), 13);
    char *body = NULL;
    assert_int_equal(wt_http(f->px.admin, "GET", "/config_dump", NULL, 0, &body), 200);
    assert_non_null(strstr(body, "\"version\": 2"));
    wf_free(body);
}

static void test_refused_snapshots_keep_the_last_good_one(void **state)
{
    lfx_t *f = *state;
    double rej0 = stat_value(f->px.admin, "weft_proxy_config_updates_total{result=\"rejected\"}");
    write_text(f, "{\"schema\": 1, \"version\": 3, \"proxy\": ");
    reload(f);
    write_text(f, "{\"schema\": 2, \"version\": 3, \"proxy\": {\"service\": \"productpage\"}}");
    reload(f);
    write_snapshot(f, 2, "productpage", f->a.port); /* not newer */
    reload(f);
    write_snapshot(f, 4, "details", f->a.port); /* another identity */
    reload(f);
    assert_int_equal(
        stat_value(f->px.admin, "weft_proxy_config_updates_total{result=\"rejected\"}") - rej0, 4);
    assert_int_equal(stat_value(f->px.admin, "weft_proxy_config_version"), 2);
    who(f, "B");
    /* The log says why. */
    char log[4300];
    snprintf(log, sizeof(log), "%s/proxy.log", f->px.dir);
    char *text = wt_read_file(log, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "version is not newer than the one in use"));
    assert_non_null(strstr(text, "proxy identity (service, namespace, version, workload, mode) "
                                 "differs"));
    assert_non_null(strstr(text, "schema"));
    wf_free(text);
    /* A good one after the refusals is taken. */
    write_snapshot(f, 5, "productpage", f->a.port);
    reload(f);
    assert_int_equal(stat_value(f->px.admin, "weft_proxy_config_version"), 5);
    who(f, "A");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swap_keeps_requests_in_flight),
        cmocka_unit_test(test_refused_snapshots_keep_the_last_good_one),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
