/*
 * test_cp_push.c - unit tests of the push engine (controlplane/cp_push.c) with a fake clock and
 * a fake compiler whose document for a proxy lists every registered workload and its address,
 * so a registration changes every proxy's content and a rebuild without a change does not:
 * debounce and coalescing, versions, ACK/NACK and the states of proxy-status, content hash
 * suppression, parked polls woken by a build or by their deadline, shutdown, the convergence
 * histogram, the send budget, gzip-encoded documents, and the real thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cp_push.h"
#include "cp_registry.h"
#include "cp_store.h"
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wf_str.h"
#include "wt_util.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TTL (3600 * 1000)
#define WALL 1000000 /* wall clock of the fake world, ms */

/* ---- the fake compiler ---- */

struct cp_compiled {
    const cp_config_t *cfg;
};

static int compiles; /* compile_proxy calls, to see suppression without compiling */
/* Run once inside the next compile_proxy (outside the engine's lock), then cleared. */
static void (*during_compile)(void);

static int fake_new(const cp_config_t *cfg, const cp_compile_opts_t *o, cp_compiled_t **out)
{
    (void)o;
    cp_compiled_t *c = wf_calloc(1, sizeof(*c));
    c->cfg = cfg;
    *out = c;
    return 0;
}

static void fake_free(cp_compiled_t *c)
{
    wf_free(c);
}

static int fake_proxy(cp_compiled_t *c, const char *id, int64_t version, char **json, size_t *len,
                      uint64_t *hash)
{
    bool found = false;
    wf_buf_t content;
    wf_buf_init(&content);
    compiles++;
    if (during_compile != NULL) {
        void (*fn)(void) = during_compile;
        during_compile = NULL;
        fn();
    }
    for (size_t i = 0; i < c->cfg->nworkloads; i++) {
        const cp_workload_t *w = &c->cfg->workloads[i];
        found = found || strcmp(w->id, id) == 0;
        wf_buf_printf(&content, "%s=%s;", w->id, w->address);
    }
    if (!found) {
        wf_buf_free(&content);
        return WF_E_NOTFOUND;
    }
    *hash = wf_hash64(content.data, content.len, 7);
    char *doc = NULL;
    int n = asprintf(&doc, "{\"version\":%lld,\"content\":\"%.*s\"}", (long long)version,
                     (int)content.len, (const char *)content.data);
    assert_true(n > 0);
    *json = doc;
    *len = (size_t)n;
    wf_buf_free(&content);
    return 0;
}

/* The "encoded" form: the plain document behind a "gz:" mark, so a test can tell which form a
 * poll got and the send budget sees a different length; the hash is the plain content's. */
static int fake_proxy_gz(cp_compiled_t *c, const char *id, int64_t version, char **gz, size_t *len,
                         uint64_t *hash)
{
    char *plain = NULL;
    size_t n = 0;
    int rc = fake_proxy(c, id, version, &plain, &n, hash);
    if (rc != 0) {
        return rc;
    }
    char *doc = wf_malloc(n + 3);
    memcpy(doc, "gz:", 3);
    memcpy(doc + 3, plain, n);
    free(plain);
    *gz = doc;
    *len = n + 3;
    return 0;
}

static const cp_push_compiler_t fake = {fake_new, fake_free, fake_proxy, fake_proxy_gz, NULL};

/* ---- fixture ---- */

typedef struct {
    char *dir;
    cp_store_t *store;
    cp_registry_t *reg;
    cp_push_t *push;
} fx_t;

static int setup(void **state)
{
    fx_t *f = wf_calloc(1, sizeof(*f));
    f->dir = wt_tmpdir("cppush");
    assert_int_equal(cp_store_open(f->dir, &f->store), 0);
    assert_int_equal(cp_registry_open(f->store, TTL, WALL, &f->reg), 0);
    cp_push_opts_t o = {.store = f->store, .registry = f->reg, .compiler = &fake};
    o.compile.sampling = -1;
    assert_int_equal(cp_push_new(&o, &f->push), 0);
    compiles = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    cp_push_free(f->push);
    cp_registry_close(f->reg);
    cp_store_close(f->store);
    wt_rm_rf(f->dir);
    wf_free(f->dir);
    wf_free(f);
    return 0;
}

static void reg(fx_t *f, const char *service, const char *address)
{
    cp_workload_t w = {
        .service = (char *)service, .ns = "default", .version = "v1", .address = (char *)address};
    char err[128];
    assert_int_equal(cp_registry_register(f->reg, &w, WALL, NULL, err, sizeof(err)), 0);
}

/* A poll that does not park: its outcome, and the document's version in *doc_version. */
static int poll_once(fx_t *f, const char *id, int64_t version, int64_t nack, const char *reason,
                     int64_t now, int64_t *doc_version)
{
    cp_push_query_t q = {.proxy_id = id, .version = version, .nack = nack, .reason = reason};
    char *doc = NULL;
    size_t len = 0;
    int rc = cp_push_poll(f->push, &q, now, NULL, &doc, &len);
    if (rc == CP_PUSH_DOC) {
        json_t *j = json_loadb(doc, len, 0, NULL);
        assert_non_null(j);
        *doc_version = json_integer_value(json_object_get(j, "version"));
        json_decref(j);
        free(doc);
        cp_push_sent(f->push, len);
    }
    return rc;
}

/* proxy-status's entry for id: its state, *sent and *reason (copied into reason[64]). */
static const char *status_of(fx_t *f, const char *id, int64_t *acked, int64_t *sent,
                             char reason[64], bool *waiting)
{
    static char state[32];
    json_t *st = cp_push_status(f->push, 0);
    json_t *list = json_object_get(st, "proxies");
    state[0] = '\0';
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *e = json_array_get(list, i);
        if (strcmp(json_string_value(json_object_get(e, "id")), id) != 0) {
            continue;
        }
        snprintf(state, sizeof(state), "%s", json_string_value(json_object_get(e, "state")));
        if (acked) {
            *acked = json_integer_value(json_object_get(e, "version"));
        }
        if (sent) {
            *sent = json_integer_value(json_object_get(e, "sent"));
        }
        if (reason) {
            snprintf(reason, 64, "%s", json_string_value(json_object_get(e, "reason")));
        }
        if (waiting) {
            *waiting = json_is_true(json_object_get(e, "waiting"));
        }
    }
    json_decref(st);
    return state;
}

/* The value of one metric line (exact name with labels) in the engine's metrics. */
static double metric(fx_t *f, const char *name)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    cp_push_metrics(f->push, 0, m);
    fclose(m);
    double v = -1;
    size_t n = strlen(name);
    for (char *line = text; line != NULL && *line; line = strchr(line, '\n')) {
        line += *line == '\n';
        if (strncmp(line, name, n) == 0 && line[n] == ' ') {
            v = strtod(line + n + 1, NULL);
            break;
        }
    }
    free(text);
    return v;
}

/* ---- tests ---- */

/* Ten changes 10 ms apart make one version, 100 ms after the last of them. */
static void test_debounce_coalesces(void **state)
{
    fx_t *f = *state;
    assert_int_equal(cp_push_tick(f->push, 0, WALL), 0); /* nothing changed */
    for (int i = 0; i < 10; i++) {
        cp_push_notify(f->push, 1000 + i * 10);
        assert_int_equal(cp_push_tick(f->push, 1000 + i * 10 + 5, WALL), 0);
    }
    assert_int_equal(cp_push_tick(f->push, 1090 + CP_PUSH_QUIET_MS - 1, WALL), 0);
    assert_int_equal(cp_push_tick(f->push, 1090 + CP_PUSH_QUIET_MS, WALL), 1);
    assert_int_equal(cp_push_version(f->push), WALL);
    assert_int_equal(cp_push_tick(f->push, 5000, WALL), 0); /* nothing since */
    assert_int_equal(metric(f, "weft_control_config_builds_total"), 1);
}

/* A change every 50 ms never leaves 100 ms of quiet: the build comes 1 s after the first. */
static void test_debounce_max_delay(void **state)
{
    fx_t *f = *state;
    int64_t built_at[3] = {-1, -1, -1};
    int builds = 0;
    for (int64_t t = 0; t <= 2100; t += 50) {
        cp_push_notify(f->push, t);
        if (cp_push_tick(f->push, t, WALL + t) == 1) {
            assert_true(builds < 3);
            built_at[builds++] = t;
        }
    }
    /* The change at 1000 is in the first build; the next batch starts at 1050. */
    assert_int_equal(builds, 2);
    assert_int_equal(built_at[0], CP_PUSH_MAX_DELAY_MS);
    assert_int_equal(built_at[1], 1050 + CP_PUSH_MAX_DELAY_MS);
}

/* version = max(previous + 1, wall clock): it never goes back, even when the clock does. */
static void test_versions(void **state)
{
    fx_t *f = *state;
    assert_int_equal(cp_push_version(f->push), 0);
    assert_int_equal(cp_push_build(f->push, 0, 5000), 0);
    assert_int_equal(cp_push_version(f->push), 5000);
    assert_int_equal(cp_push_build(f->push, 0, 4000), 0);
    assert_int_equal(cp_push_version(f->push), 5001);
    assert_int_equal(cp_push_build(f->push, 0, 9000), 0);
    assert_int_equal(cp_push_version(f->push), 9000);
}

/* Polls get a document newer than what they acknowledge, once; the same content is not resent
 * and counts as SYNCED; a change is sent. */
static void test_ack_and_content_hash(void **state)
{
    fx_t *f = *state;
    int64_t v = 0, acked = 0, sent = 0;
    /* Not registered: nothing to send, and the status says so. */
    assert_int_equal(cp_push_build(f->push, 0, WALL), 0);
    assert_int_equal(poll_once(f, "reviews-v1.default", 0, 0, NULL, 10, &v), CP_PUSH_WAIT);
    assert_string_equal(status_of(f, "reviews-v1.default", NULL, NULL, NULL, NULL),
                        "NOT_REGISTERED");
    assert_int_equal(poll_once(f, "", 0, 0, NULL, 10, &v), WF_E_INVAL);
    assert_int_equal(poll_once(f, "a b", 0, 0, NULL, 10, &v), WF_E_INVAL);

    reg(f, "reviews", "10.0.0.1");
    assert_int_equal(cp_push_build(f->push, 20, WALL + 1), 0);
    int64_t v1 = cp_push_version(f->push);
    assert_int_equal(v1, WALL + 1);
    assert_int_equal(poll_once(f, "reviews-v1.default", 0, 0, NULL, 30, &v), CP_PUSH_DOC);
    assert_int_equal(v, v1);
    assert_string_equal(status_of(f, "reviews-v1.default", &acked, &sent, NULL, NULL), "STALE");
    assert_int_equal(acked, 0);
    assert_int_equal(sent, v1);
    /* The proxy applied it and polls again: nothing newer. */
    assert_int_equal(poll_once(f, "reviews-v1.default", v1, 0, NULL, 40, &v), CP_PUSH_WAIT);
    assert_string_equal(status_of(f, "reviews-v1.default", &acked, NULL, NULL, NULL), "SYNCED");
    assert_int_equal(acked, v1);

    /* A rebuild that changes nothing for it: a newer version, no document, still SYNCED, and a
     * second poll at that version does not compile again. */
    assert_int_equal(cp_push_build(f->push, 50, WALL + 2), 0);
    int64_t v2 = cp_push_version(f->push);
    assert_true(v2 > v1);
    int before = compiles;
    assert_int_equal(poll_once(f, "reviews-v1.default", v1, 0, NULL, 60, &v), CP_PUSH_WAIT);
    assert_int_equal(compiles, before + 1);
    assert_int_equal(poll_once(f, "reviews-v1.default", v1, 0, NULL, 61, &v), CP_PUSH_WAIT);
    assert_int_equal(compiles, before + 1);
    assert_string_equal(status_of(f, "reviews-v1.default", NULL, &sent, NULL, NULL), "SYNCED");
    assert_int_equal(sent, v1);

    /* A new workload changes its content: sent at the new version. */
    reg(f, "ratings", "10.0.0.2");
    assert_int_equal(cp_push_build(f->push, 70, WALL + 3), 0);
    int64_t v3 = cp_push_version(f->push);
    assert_string_equal(status_of(f, "reviews-v1.default", NULL, NULL, NULL, NULL), "STALE");
    assert_int_equal(poll_once(f, "reviews-v1.default", v1, 0, NULL, 80, &v), CP_PUSH_DOC);
    assert_int_equal(v, v3);
    assert_int_equal(poll_once(f, "reviews-v1.default", v3, 0, NULL, 90, &v), CP_PUSH_WAIT);
    assert_string_equal(status_of(f, "reviews-v1.default", NULL, NULL, NULL, NULL), "SYNCED");
    assert_int_equal(metric(f, "weft_control_pushes_total"), 2);
    assert_int_equal(metric(f, "weft_control_proxies{state=\"synced\"}"), 1);
}

/* A refused document is not sent again, not even under a newer version with the same content;
 * a real change is; an acknowledgement clears the refusal. */
static void test_nack(void **state)
{
    fx_t *f = *state;
    int64_t v = 0;
    char reason[64];
    reg(f, "reviews", "10.0.0.1");
    assert_int_equal(cp_push_build(f->push, 0, WALL), 0);
    int64_t v1 = cp_push_version(f->push);
    assert_int_equal(poll_once(f, "reviews-v1.default", 0, 0, NULL, 10, &v), CP_PUSH_DOC);
    assert_int_equal(poll_once(f, "reviews-v1.default", v1, 0, NULL, 20, &v), CP_PUSH_WAIT);

    reg(f, "ratings", "10.0.0.2");
    assert_int_equal(cp_push_build(f->push, 30, WALL + 1), 0);
    int64_t v2 = cp_push_version(f->push);
    assert_int_equal(poll_once(f, "reviews-v1.default", v1, 0, NULL, 40, &v), CP_PUSH_DOC);
    assert_int_equal(v, v2);
    /* Refused: the proxy keeps v1 and says why. */
    assert_int_equal(poll_once(f, "reviews-v1.default", v1, v2, "cluster x: bad", 50, &v),
                     CP_PUSH_WAIT);
    assert_string_equal(status_of(f, "reviews-v1.default", NULL, NULL, reason, NULL), "NACK");
    assert_string_equal(reason, "cluster x: bad");
    /* The same refusal polled again is one NACK, not two. */
    assert_int_equal(poll_once(f, "reviews-v1.default", v1, v2, "cluster x: bad", 55, &v),
                     CP_PUSH_WAIT);
    assert_int_equal(metric(f, "weft_control_push_nacks_total"), 1);

    /* A newer version with the refused content: not resent. */
    assert_int_equal(cp_push_build(f->push, 60, WALL + 2), 0);
    assert_true(cp_push_version(f->push) > v2);
    assert_int_equal(poll_once(f, "reviews-v1.default", v1, v2, "cluster x: bad", 70, &v),
                     CP_PUSH_WAIT);
    assert_string_equal(status_of(f, "reviews-v1.default", NULL, NULL, NULL, NULL), "NACK");

    /* A refusal without a version (the document did not parse) refuses what was sent. */
    assert_int_equal(poll_once(f, "reviews-v1.default", v1, 0, "not JSON", 75, &v), CP_PUSH_WAIT);
    assert_int_equal(metric(f, "weft_control_push_nacks_total"), 2);

    /* A real change is sent; its acknowledgement clears the refusal. */
    reg(f, "details", "10.0.0.3");
    assert_int_equal(cp_push_build(f->push, 80, WALL + 3), 0);
    int64_t v4 = cp_push_version(f->push);
    assert_int_equal(poll_once(f, "reviews-v1.default", v1, v2, "cluster x: bad", 90, &v),
                     CP_PUSH_DOC);
    assert_int_equal(v, v4);
    assert_int_equal(poll_once(f, "reviews-v1.default", v4, 0, NULL, 100, &v), CP_PUSH_WAIT);
    assert_string_equal(status_of(f, "reviews-v1.default", NULL, NULL, reason, NULL), "SYNCED");
    assert_string_equal(reason, "");
    assert_int_equal(metric(f, "weft_control_proxies{state=\"nack\"}"), 0);

    /* The proxy's reason cannot forge log fields or break JSON. */
    assert_int_equal(poll_once(f, "reviews-v1.default", v1, v4, "a\"b\nc=\"d", 110, &v),
                     CP_PUSH_WAIT);
    assert_string_equal(status_of(f, "reviews-v1.default", NULL, NULL, reason, NULL), "NACK");
    assert_string_equal(reason, "a'b c='d");
}

/* A fake connection: counts suspends and resumes. */
typedef struct {
    int suspended, resumed;
} conn_t;

static void on_suspend(void *arg)
{
    conn_t *c = arg;
    assert_int_equal(c->suspended, c->resumed); /* never suspended twice */
    c->suspended++;
}

static void on_resume(void *arg)
{
    conn_t *c = arg;
    assert_int_equal(c->suspended, c->resumed + 1); /* never resumed before suspended */
    c->resumed++;
}

/* A parked poll is woken by a build that has something for it, not by one that has not, and
 * answered 304 (timed_out) at its deadline. */
static void test_parked_polls(void **state)
{
    fx_t *f = *state;
    conn_t c1 = {0}, c2 = {0};
    char *doc = NULL;
    size_t len = 0;
    reg(f, "reviews", "10.0.0.1");
    assert_int_equal(cp_push_build(f->push, 0, WALL), 0);
    int64_t v1 = cp_push_version(f->push);

    cp_push_waiter_t w1 = {
        .suspend = on_suspend, .resume = on_resume, .arg = &c1, .deadline_ms = 30000};
    cp_push_query_t q1 = {.proxy_id = "reviews-v1.default", .version = v1};
    assert_int_equal(cp_push_poll(f->push, &q1, 10, &w1, &doc, &len), CP_PUSH_WAIT);
    assert_int_equal(c1.suspended, 1);
    bool waiting = false;
    status_of(f, "reviews-v1.default", NULL, NULL, NULL, &waiting);
    assert_true(waiting);
    assert_int_equal(metric(f, "weft_control_proxies_connected"), 1);

    /* A proxy that is not registered waits too; its registration wakes it. */
    cp_push_waiter_t w2 = {
        .suspend = on_suspend, .resume = on_resume, .arg = &c2, .deadline_ms = 500};
    cp_push_query_t q2 = {.proxy_id = "ratings-v1.default", .version = 0};
    assert_int_equal(cp_push_poll(f->push, &q2, 20, &w2, &doc, &len), CP_PUSH_WAIT);
    assert_int_equal(cp_push_expire(f->push, 499), 0);
    reg(f, "ratings", "10.0.0.2");
    assert_int_equal(cp_push_build(f->push, 100, WALL + 1), 0);
    int64_t v2 = cp_push_version(f->push);
    /* Both are woken (each may have something at v2); each polls again. */
    assert_int_equal(c1.resumed, 1);
    assert_int_equal(c2.resumed, 1);
    assert_false(w1.timed_out);
    assert_int_equal(cp_push_poll(f->push, &q2, 110, &w2, &doc, &len), CP_PUSH_DOC);
    assert_non_null(strstr(doc, "ratings-v1.default=10.0.0.2"));
    free(doc);
    cp_push_sent(f->push, len);
    assert_int_equal(cp_push_poll(f->push, &q1, 110, &w1, &doc, &len), CP_PUSH_DOC);
    free(doc);
    cp_push_sent(f->push, len);
    q1.version = v2;
    assert_int_equal(cp_push_poll(f->push, &q1, 120, &w1, &doc, &len), CP_PUSH_WAIT);
    assert_int_equal(c1.suspended, 2);

    /* A build with nothing new for it leaves it parked... */
    assert_int_equal(cp_push_build(f->push, 200, WALL + 2), 0);
    assert_int_equal(c1.resumed, 2);
    assert_int_equal(cp_push_poll(f->push, &q1, 210, &w1, &doc, &len), CP_PUSH_WAIT);
    assert_int_equal(c1.suspended, 3);
    /* ...until its deadline. */
    assert_int_equal(cp_push_expire(f->push, 29999), 0);
    assert_int_equal(cp_push_expire(f->push, 30000), 1);
    assert_int_equal(c1.resumed, 3);
    assert_true(w1.timed_out);
    assert_int_equal(metric(f, "weft_control_proxies_connected"), 0);
}

/* Closing answers every parked poll and parks no new one. */
static void test_close(void **state)
{
    fx_t *f = *state;
    conn_t c = {0};
    char *doc = NULL;
    size_t len = 0;
    assert_int_equal(cp_push_build(f->push, 0, WALL), 0);
    cp_push_waiter_t w = {
        .suspend = on_suspend, .resume = on_resume, .arg = &c, .deadline_ms = 30000};
    cp_push_query_t q = {.proxy_id = "x.default", .version = 0};
    assert_int_equal(cp_push_poll(f->push, &q, 0, &w, &doc, &len), CP_PUSH_WAIT);
    cp_push_close(f->push);
    assert_int_equal(c.resumed, 1);
    assert_true(w.timed_out);
    assert_int_equal(cp_push_poll(f->push, &q, 0, &w, &doc, &len), CP_PUSH_CLOSED);
    assert_int_equal(c.suspended, 1);
}

/* From the change to the proxy's acknowledgement: 100 ms of debounce + 250 ms. */
static void test_convergence_histogram(void **state)
{
    fx_t *f = *state;
    int64_t v = 0;
    reg(f, "reviews", "10.0.0.1");
    cp_push_notify(f->push, 1000);
    assert_int_equal(cp_push_tick(f->push, 1100, WALL), 1);
    int64_t v1 = cp_push_version(f->push);
    assert_int_equal(poll_once(f, "reviews-v1.default", 0, 0, NULL, 1200, &v), CP_PUSH_DOC);
    assert_int_equal(poll_once(f, "reviews-v1.default", v1, 0, NULL, 1350, &v), CP_PUSH_WAIT);
    assert_int_equal(metric(f, "weft_control_push_convergence_seconds_count"), 1);
    assert_true(metric(f, "weft_control_push_convergence_seconds_sum") > 0.3499 &&
                metric(f, "weft_control_push_convergence_seconds_sum") < 0.3501);
    assert_int_equal(metric(f, "weft_control_push_convergence_seconds_bucket{le=\"0.25\"}"), 0);
    assert_int_equal(metric(f, "weft_control_push_convergence_seconds_bucket{le=\"0.5\"}"), 1);
    /* Polling again at the same version is not a second acknowledgement. */
    assert_int_equal(poll_once(f, "reviews-v1.default", v1, 0, NULL, 1400, &v), CP_PUSH_WAIT);
    assert_int_equal(metric(f, "weft_control_push_convergence_seconds_count"), 1);
}

/* A proxy holding a version above ours (the clock stepped back across a restart) makes the next
 * version exceed it; one from absurdly far ahead is not ours and is ignored. */
static void test_version_above_ours(void **state)
{
    fx_t *f = *state;
    int64_t v = 0;
    reg(f, "reviews", "10.0.0.1");
    assert_int_equal(cp_push_build(f->push, 0, WALL), 0);
    assert_int_equal(poll_once(f, "reviews-v1.default", WALL + 5000, 0, NULL, 10, &v),
                     CP_PUSH_WAIT);
    assert_int_equal(cp_push_tick(f->push, 10 + CP_PUSH_QUIET_MS, WALL + 1), 1);
    assert_int_equal(cp_push_version(f->push), WALL + 5001);
    assert_int_equal(poll_once(f, "reviews-v1.default", WALL + 5000, 0, NULL, 200, &v),
                     CP_PUSH_DOC);
    assert_int_equal(v, WALL + 5001);
    assert_int_equal(poll_once(f, "ratings-v1.default", INT64_MAX / 2, 0, NULL, 300, &v),
                     CP_PUSH_WAIT);
    assert_int_equal(cp_push_tick(f->push, 1000000, WALL + 2), 0);
}

/* Past the send budget a poll waits, first come first served, until documents are sent. */
static void test_send_budget(void **state)
{
    fx_t *f = *state;
    cp_push_free(f->push);
    cp_push_opts_t o = {.store = f->store, .registry = f->reg, .compiler = &fake, .send_budget = 1};
    assert_int_equal(cp_push_new(&o, &f->push), 0);
    reg(f, "a", "10.0.0.1");
    reg(f, "b", "10.0.0.2");
    reg(f, "c", "10.0.0.3");
    assert_int_equal(cp_push_build(f->push, 0, WALL), 0);
    conn_t cb = {0}, cc = {0};
    char *doc_a = NULL, *doc = NULL;
    size_t len_a = 0, len = 0;
    cp_push_waiter_t wa = {
        .suspend = on_suspend, .resume = on_resume, .arg = &cb, .deadline_ms = 30000};
    cp_push_waiter_t wb = wa, wc = wa;
    wc.arg = &cc;
    cp_push_query_t qa = {.proxy_id = "a-v1.default"};
    cp_push_query_t qb = {.proxy_id = "b-v1.default"};
    cp_push_query_t qc = {.proxy_id = "c-v1.default"};
    assert_int_equal(cp_push_poll(f->push, &qa, 1, &wa, &doc_a, &len_a), CP_PUSH_DOC);
    assert_int_equal(metric(f, "weft_control_push_inflight_bytes"), (double)len_a);
    /* The budget is full: b, then c, wait for room without compiling. */
    int before = compiles;
    assert_int_equal(cp_push_poll(f->push, &qb, 2, &wb, &doc, &len), CP_PUSH_WAIT);
    assert_int_equal(cp_push_poll(f->push, &qc, 3, &wc, &doc, &len), CP_PUSH_WAIT);
    assert_int_equal(compiles, before);
    assert_int_equal(cb.suspended, 1);
    /* A new version does not take their place away. */
    assert_int_equal(cp_push_build(f->push, 4, WALL + 1), 0);
    assert_int_equal(cb.resumed, 0);
    /* a's document is sent: room for one, the oldest (b) goes first. */
    cp_push_sent(f->push, len_a);
    free(doc_a);
    assert_int_equal(cb.resumed, 1);
    assert_int_equal(cc.resumed, 0);
    assert_int_equal(cp_push_poll(f->push, &qb, 5, &wb, &doc, &len), CP_PUSH_DOC);
    free(doc);
    cp_push_sent(f->push, len);
    assert_int_equal(cc.resumed, 1);
    assert_int_equal(cp_push_poll(f->push, &qc, 6, &wc, &doc, &len), CP_PUSH_DOC);
    free(doc);
    cp_push_sent(f->push, len);
    assert_int_equal(metric(f, "weft_control_push_inflight_bytes"), 0);
}

/* A poll that asks for gzip gets the encoded form, the budget counts its bytes, and the content
 * hash is the plain content's whichever form was sent or acknowledged. */
static void test_gzip(void **state)
{
    fx_t *f = *state;
    reg(f, "a", "10.0.0.1");
    assert_int_equal(cp_push_build(f->push, 0, WALL), 0);
    int64_t v1 = cp_push_version(f->push);
    cp_push_query_t q = {.proxy_id = "a-v1.default", .gzip = true};
    char *doc = NULL;
    size_t len = 0;
    assert_int_equal(cp_push_poll(f->push, &q, 1, NULL, &doc, &len), CP_PUSH_DOC);
    assert_true(len > 3);
    assert_memory_equal(doc, "gz:", 3);
    json_t *j = json_loadb(doc + 3, len - 3, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "version")), v1);
    json_decref(j);
    assert_int_equal(metric(f, "weft_control_push_inflight_bytes"), (double)len);
    cp_push_sent(f->push, len);
    wf_free(doc);
    assert_int_equal(metric(f, "weft_control_push_inflight_bytes"), 0);

    /* Acknowledged over gzip; a rebuild that changes nothing is not sent, in either form. */
    int64_t v = 0;
    assert_int_equal(cp_push_build(f->push, 10, WALL + 1), 0);
    q.version = v1;
    int before = compiles;
    assert_int_equal(cp_push_poll(f->push, &q, 11, NULL, &doc, &len), CP_PUSH_WAIT);
    assert_int_equal(compiles, before + 1);
    assert_int_equal(poll_once(f, "a-v1.default", v1, 0, NULL, 12, &v), CP_PUSH_WAIT);

    /* A change reaches it plain when it does not ask for gzip. */
    reg(f, "b", "10.0.0.2");
    assert_int_equal(cp_push_build(f->push, 20, WALL + 2), 0);
    assert_int_equal(poll_once(f, "a-v1.default", v1, 0, NULL, 21, &v), CP_PUSH_DOC);
    assert_int_equal(v, cp_push_version(f->push));
}

static fx_t *racing; /* the fixture a build during a compile works on */

static void build_now(void)
{
    reg(racing, "ratings", "10.0.0.2");
    assert_int_equal(cp_push_build(racing->push, 1, WALL + 1), 0);
}

/* A build that lands while a poll compiles (the poll holding the old generation's last
 * reference): the poll lets go of it safely (under ASan this reads freed memory if it does
 * not) and answers with what it compiled, which is progress; the next poll gets the new one. */
static void test_build_during_compile(void **state)
{
    fx_t *f = *state;
    int64_t v = 0;
    reg(f, "reviews", "10.0.0.1");
    assert_int_equal(cp_push_build(f->push, 0, WALL), 0);
    racing = f;
    during_compile = build_now;
    assert_int_equal(poll_once(f, "reviews-v1.default", 0, 0, NULL, 2, &v), CP_PUSH_DOC);
    assert_null(during_compile);
    assert_int_equal(v, WALL);
    assert_int_equal(compiles, 1);
    assert_int_equal(poll_once(f, "reviews-v1.default", WALL, 0, NULL, 3, &v), CP_PUSH_DOC);
    assert_int_equal(v, WALL + 1);
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int suspended, resumed;
} tconn_t;

static void t_suspend(void *arg)
{
    tconn_t *c = arg;
    pthread_mutex_lock(&c->mu);
    c->suspended++;
    pthread_mutex_unlock(&c->mu);
}

static void t_resume(void *arg)
{
    tconn_t *c = arg;
    pthread_mutex_lock(&c->mu);
    c->resumed++;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

/* The engine's own thread debounces a change into a build that wakes a parked poll, then
 * expires it at its deadline. */
static void test_thread(void **state)
{
    fx_t *f = *state;
    tconn_t c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    char *doc = NULL;
    size_t len = 0;
    assert_int_equal(cp_push_start(f->push), 0);
    int64_t v0 = cp_push_version(f->push);
    assert_true(v0 > 0);
    int64_t now = wf_mono_ns() / 1000000;
    cp_push_waiter_t w = {
        .suspend = t_suspend, .resume = t_resume, .arg = &c, .deadline_ms = now + 60000};
    cp_push_query_t q = {.proxy_id = "reviews-v1.default", .version = 0};
    assert_int_equal(cp_push_poll(f->push, &q, now, &w, &doc, &len), CP_PUSH_WAIT);
    cp_workload_t wl = {
        .service = "reviews", .ns = "default", .version = "v1", .address = "10.0.0.1"};
    char err[128];
    assert_int_equal(cp_registry_register(f->reg, &wl, wf_wall_ms(), NULL, err, sizeof(err)), 0);
    cp_push_notify(f->push, wf_mono_ns() / 1000000);
    pthread_mutex_lock(&c.mu);
    while (c.resumed == 0) {
        pthread_cond_wait(&c.cond, &c.mu);
    }
    pthread_mutex_unlock(&c.mu);
    assert_true(cp_push_version(f->push) > v0);
    assert_int_equal(cp_push_poll(f->push, &q, wf_mono_ns() / 1000000, &w, &doc, &len),
                     CP_PUSH_DOC);
    free(doc);
    cp_push_sent(f->push, len);
    /* Parked again with a deadline 50 ms away: the thread answers it. */
    q.version = cp_push_version(f->push);
    w.deadline_ms = wf_mono_ns() / 1000000 + 50;
    assert_int_equal(cp_push_poll(f->push, &q, wf_mono_ns() / 1000000, &w, &doc, &len),
                     CP_PUSH_WAIT);
    pthread_mutex_lock(&c.mu);
    while (c.resumed == 1) {
        pthread_cond_wait(&c.cond, &c.mu);
    }
    pthread_mutex_unlock(&c.mu);
    assert_true(w.timed_out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_debounce_coalesces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_debounce_max_delay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_and_content_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parked_polls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convergence_histogram, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_above_ours, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gzip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_build_during_compile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thread, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
