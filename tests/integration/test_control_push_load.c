/*
 * test_control_push_load.c - the config push under load: the real `weft control` with 100
 * services x 2 versions registered (200 workloads, DestinationRules with subsets v1/v2 and a
 * VirtualService each) and 200 simulated proxies holding the snapshot long-poll from one thread
 * (tests/testutil/wt_pollers.c). Every poller must receive its first snapshot, then converge to
 * the version an apply produces, twice: one VirtualService changed, then all of them in one
 * apply. Each document a poller receives is checked for the applied route weights; the time
 * from the apply to the last poller holding the new version is printed (no threshold: the
 * machine is shared).
 */
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_clock.h"
#include "wt_pollers.h"
#include "wt_control.h"
#include "wt_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#define NSVC 100
#define NPOLL (NSVC * 2)
#define CONVERGE_MS 60000

/* What each poller's documents said (written on the pollers' thread, read after a wait). */
typedef struct {
    int64_t version[NPOLL];
    long v2_sum[NPOLL];
    long v2_dests[NPOLL];
    int bad_docs;
} seen_t;

/* A lease longer than the test: no heartbeat is needed to keep the workloads. */
static const char *const LEASE_LONG[] = {"--lease-ttl", "1h", NULL};

/* Run n requests with token over 4 connections; every one must answer 200. */
static void batch_ok(wt_control_t *c, const char *token, wt_req_t *r, size_t n)
{
    assert_int_equal(wt_http_batch(c->port, token, r, n, 4, 30000, true), 0);
    for (size_t i = 0; i < n; i++) {
        if (r[i].status != 200) {
            fprintf(stderr, "%s %s: %d %s\n", r[i].method, r[i].path, r[i].status,
                    r[i].answer != NULL ? r[i].answer : "");
        }
        assert_int_equal(r[i].status, 200);
    }
}

static void free_answers(wt_req_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        wf_free(r[i].answer);
        r[i].answer = NULL;
    }
}

/* POST /v1/apply of the VirtualServices of services [from, to) with weights w1/w2 (and, with
 * drs, their DestinationRules). */
static void apply(wt_control_t *c, int from, int to, int w1, int w2, bool drs)
{
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_puts(&b, "{\"items\":[");
    for (int s = from; s < to; s++) {
        char *vs = wt_mesh_vs(s, w1, w2);
        wf_buf_printf(&b, "%s%s", s > from ? "," : "", vs);
        wf_free(vs);
        if (drs) {
            char *dr = wt_mesh_dr(s);
            wf_buf_printf(&b, ",%s", dr);
            wf_free(dr);
        }
    }
    wf_buf_puts(&b, "]}");
    wt_req_t r = {"POST", "/v1/apply", wf_buf_cstr(&b), 0, NULL};
    batch_ok(c, c->admin, &r, 1);
    free_answers(&r, 1);
    wf_buf_free(&b);
}

static void on_doc(void *user, size_t idx, int64_t version, const char *body, size_t len)
{
    seen_t *s = user;
    long n = 0;
    long sum = wt_mesh_v2_weights(body, len, &n);
    if (sum < 0 || version <= s->version[idx]) {
        s->bad_docs++;
    }
    s->version[idx] = version;
    s->v2_sum[idx] = sum;
    s->v2_dests[idx] = n;
}

/* Set the target to one past the highest version held, run change(), wait for every poller
 * to hold the target, and print the convergence figures. Returns the target. */
static int64_t converge(wt_pollers_t *p, wt_control_t *c, const char *what, int from, int to,
                        int w1, int w2)
{
    wt_pollers_stats_t s0, s1;
    /* No build pending (so the next version is the apply's), and every poll held. */
    int64_t before = wt_pollers_settle(p, 1500, 30000);
    assert_true(before > 0);
    assert_int_equal(wt_pollers_wait_waiting(p, NPOLL, 20000), NPOLL);
    wt_pollers_stats(p, &s0);
    assert_int_equal(s0.max_version, before);
    int64_t target = before + 1;
    wt_pollers_target(p, target);
    int64_t t0 = wf_mono_ns();
    apply(c, from, to, w1, w2, false);
    int64_t t_applied = wf_mono_ns();
    size_t reached = wt_pollers_wait(p, CONVERGE_MS);
    wt_pollers_stats(p, &s1);
    if (reached != NPOLL) {
        fprintf(stderr,
                "%s: %zu of %d pollers reached %lld (min %lld max %lld, bad status %llu "
                "last %d, connection errors %llu)\n",
                what, reached, NPOLL, (long long)target, (long long)s1.min_version,
                (long long)s1.max_version, (unsigned long long)s1.bad_status, s1.last_bad_status,
                (unsigned long long)s1.conn_errors);
    }
    assert_int_equal(reached, NPOLL);
    int64_t last = 0;
    for (size_t i = 0; i < NPOLL; i++) {
        int64_t t = wt_pollers_reached_ns(p, i);
        assert_true(t >= t0);
        last = t > last ? t : last;
        assert_true(wt_pollers_version(p, i) >= target);
    }
    printf("%s: %d pollers hold version >= %lld %.1f ms after the apply was sent (apply "
           "answered in %.1f ms); %llu documents, %.1f MB pushed\n",
           what, NPOLL, (long long)target, (double)(last - t0) / 1e6,
           (double)(t_applied - t0) / 1e6, (unsigned long long)(s1.docs - s0.docs),
           (double)(s1.body_bytes - s0.body_bytes) / 1e6);
    return target;
}

static void test_push_load(void **state)
{
    (void)state;
    wt_control_t c;
    static seen_t seen;
    char *ids[NPOLL];
    wt_req_t regs[NPOLL];
    char *bodies[NPOLL];

    wt_raise_nofile();
    assert_int_equal(wt_control_new(&c, "cppush", LEASE_LONG), 0);
    for (int s = 0; s < NSVC; s++) {
        for (int v = 1; v <= 2; v++) {
            int i = s * 2 + v - 1;
            ids[i] = wt_mesh_id(s, v);
            bodies[i] = wt_mesh_register_body(s, v);
            regs[i] = (wt_req_t){"POST", "/v1/register", bodies[i], 0, NULL};
        }
    }
    batch_ok(&c, c.boot, regs, NPOLL);
    for (size_t i = 0; i < NPOLL; i++) {
        /* The registry answers with the id the pollers use. */
        assert_non_null(strstr(regs[i].answer, ids[i]));
    }
    free_answers(regs, NPOLL);
    apply(&c, 0, NSVC, 100, 0, true);

    /* A registered proxy at version 0 is answered at once. */
    char probe[128];
    snprintf(probe, sizeof(probe), "/v1/snapshot?proxy=%s&version=0", ids[0]);
    wt_req_t pr = {"GET", probe, NULL, 0, NULL};
    assert_int_equal(wt_http_batch(c.port, c.boot, &pr, 1, 1, 30000, false), 0);
    assert_int_equal(pr.status, 200);

    wt_pollers_opts_t o = {.port = c.port,
                           .token = c.boot,
                           .keep_every = 1,
                           .on_doc = on_doc,
                           .user = &seen,
                           .gzip = true};
    wt_pollers_t *p = NULL;
    assert_int_equal(wt_pollers_start(&o, (const char *const *)ids, NPOLL, &p), 0);

    /* First snapshots: every proxy gets one, with the v2 destination of each service at 0. */
    wt_pollers_target(p, 1);
    assert_int_equal(wt_pollers_wait(p, CONVERGE_MS), NPOLL);
    /* The registrations and the apply may have made two builds: take the last. */
    assert_true(wt_pollers_settle(p, 1500, CONVERGE_MS) > 0);
    for (size_t i = 0; i < NPOLL; i++) {
        assert_true(seen.version[i] >= 1);
        assert_int_equal(seen.v2_dests[i], NSVC);
        assert_int_equal(seen.v2_sum[i], 0);
    }

    /* One VirtualService: svc-0007 sends 30 % to v2. */
    int64_t v1 = converge(p, &c, "one VirtualService", 7, 8, 70, 30);
    for (size_t i = 0; i < NPOLL; i++) {
        assert_true(seen.version[i] >= v1);
        assert_int_equal(seen.v2_dests[i], NSVC);
        assert_int_equal(seen.v2_sum[i], 30);
    }

    /* Every VirtualService in one apply: 80 % to v2 everywhere. */
    int64_t v2 = converge(p, &c, "all VirtualServices", 0, NSVC, 20, 80);
    assert_true(v2 > v1);
    for (size_t i = 0; i < NPOLL; i++) {
        assert_true(seen.version[i] >= v2);
        assert_int_equal(seen.v2_dests[i], NSVC);
        assert_int_equal(seen.v2_sum[i], 80 * NSVC);
    }
    assert_int_equal(seen.bad_docs, 0);

    /* Heartbeats over a few keep-alive connections renew every lease. */
    for (size_t i = 0; i < NPOLL; i++) {
        size_t len = strlen(ids[i]) + 16;
        wf_free(bodies[i]);
        bodies[i] = wf_malloc(len);
        snprintf(bodies[i], len, "{\"id\":\"%s\"}", ids[i]);
        regs[i] = (wt_req_t){"POST", "/v1/heartbeat", bodies[i], 0, NULL};
    }
    batch_ok(&c, c.boot, regs, NPOLL);
    free_answers(regs, NPOLL);

    wt_pollers_stats_t st;
    wt_pollers_stats(p, &st);
    printf("pollers: %llu documents (%.1f MB), %llu not modified, %llu connections opened, %llu "
           "connection errors, %llu other statuses\n",
           (unsigned long long)st.docs, (double)st.body_bytes / 1e6,
           (unsigned long long)st.not_modified, (unsigned long long)st.connects,
           (unsigned long long)st.conn_errors, (unsigned long long)st.bad_status);
    assert_int_equal(st.bad_status, 0);
    wt_pollers_stop(p);
    for (size_t i = 0; i < NPOLL; i++) {
        wf_free(ids[i]);
        wf_free(bodies[i]);
    }
    assert_int_equal(wt_control_stop(&c), 0);
    wt_control_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
