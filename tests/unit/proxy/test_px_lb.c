/*
 * test_px_lb.c - endpoint choice and outlier detection (px_lb.h) on snapshots parsed from
 * inline JSON: the hash ring's spread in proportion to weights and its stability (removing an
 * endpoint moves only its keys, and ejecting one moves exactly the same keys), hash keys from
 * header, cookie (generated with Set-Cookie when absent and a TTL is set), source IP and query
 * parameter; weighted ROUND_ROBIN order, RANDOM and LEAST_REQUEST draws; the outlier state
 * machine driven by a fake clock (thresholds, success reset, gateway errors, local failures,
 * ejection backoff and its cap and decay, max_ejection_percent); concurrent retry admission;
 * PASSTHROUGH address parsing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px_lb.h"
#include "px_snapshot.h"
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_err.h"

/* A snapshot with one cluster: lb and extra are JSON members of the cluster, endpoints lists
 * "127.0.0.<i>:<port>" entries with the given weights (port 9000 + i). */
static px_snapshot_t *one_cluster(const char *lb, const char *extra, const uint32_t *weights,
                                  const uint32_t *ids, size_t n)
{
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_printf(&b,
                  "{\"schema\": 1, \"version\": 1, \"proxy\": {\"service\": \"t\"}, \"clusters\": "
                  "[{\"host\": \"svc\", "
                  "\"port\": 80, \"load_balancer\": %s%s%s, \"endpoints\": [",
                  lb, extra[0] ? ", " : "", extra);
    for (size_t i = 0; i < n; i++) {
        uint32_t id = ids != NULL ? ids[i] : (uint32_t)i;
        wf_buf_printf(&b, "%s{\"address\": \"127.0.0.%u\", \"port\": %u, \"weight\": %u}",
                      i ? ", " : "", id + 1, 9000 + id, weights != NULL ? weights[i] : 1);
    }
    wf_buf_puts(&b, "]}]}");
    char err[512];
    px_snapshot_t *s = NULL;
    if (px_snapshot_parse((const char *)b.data, b.len, NULL, &s, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    wf_buf_free(&b);
    return s;
}

static uint64_t key_hash(uint64_t i)
{
    char k[32];
    int l = snprintf(k, sizeof(k), "user-%llu", (unsigned long long)i);
    return wf_hash64(k, (size_t)l, 0);
}

static void test_ring_spreads_by_weight(void **state)
{
    (void)state;
    const uint32_t w[] = {1, 1, 2, 4};
    px_snapshot_t *s = one_cluster(
        "{\"consistent_hash\": {\"http_header_name\": \"x-user\", \"minimum_ring_size\": 8192}}",
        "", w, NULL, 4);
    px_lb_shared_t *sh = px_lb_shared_new(s);
    px_lb_cluster_t *lc = &sh->clusters[0];
    /* 1024 entries per unit of weight. */
    assert_int_equal(lc->ring_size, 8192);
    uint32_t entries[4] = {0};
    for (uint32_t i = 0; i < lc->ring_size; i++) {
        entries[lc->ring[i].ep]++;
    }
    assert_int_equal(entries[0], 1024);
    assert_int_equal(entries[1], 1024);
    assert_int_equal(entries[2], 2048);
    assert_int_equal(entries[3], 4096);
    uint32_t hits[4] = {0};
    const int keys = 40000;
    for (int i = 0; i < keys; i++) {
        int e = px_lb_ring_lookup(lc, key_hash((uint64_t)i), 0);
        assert_true(e >= 0 && e < 4);
        hits[e]++;
        /* Same key, same endpoint. */
        assert_int_equal(px_lb_ring_lookup(lc, key_hash((uint64_t)i), 0), e);
    }
    for (int e = 0; e < 4; e++) {
        double want = (double)keys * w[e] / 8.0;
        if (hits[e] < want * 0.85 || hits[e] > want * 1.15) {
            fail_msg("endpoint %d: %u keys, expected about %.0f", e, hits[e], want);
        }
    }
    px_lb_shared_unref(sh);
    px_snapshot_unref(s);
}

static void test_ring_large_weights_scaled(void **state)
{
    (void)state;
    const uint32_t w[] = {131072, 65536, 1};
    px_snapshot_t *s =
        one_cluster("{\"consistent_hash\": {\"use_source_ip\": true}}", "", w, NULL, 3);
    px_lb_shared_t *sh = px_lb_shared_new(s);
    px_lb_cluster_t *lc = &sh->clusters[0];
    /* Not 196,609 entries: 65,536 shared in proportion, at least one each. */
    uint32_t entries[3] = {0};
    for (uint32_t i = 0; i < lc->ring_size; i++) {
        entries[lc->ring[i].ep]++;
    }
    assert_int_equal(entries[0], 43690);
    assert_int_equal(entries[1], 21845);
    assert_int_equal(entries[2], 1);
    assert_int_equal(lc->ring_size, 43690 + 21845 + 1);
    px_lb_shared_unref(sh);
    px_snapshot_unref(s);
}

static void test_ring_removal_moves_only_its_keys(void **state)
{
    (void)state;
    const char *lb = "{\"consistent_hash\": {\"http_header_name\": \"x-user\"}}";
    const uint32_t all[] = {0, 1, 2, 3, 4};
    const uint32_t without2[] = {0, 1, 3, 4};
    px_snapshot_t *s5 = one_cluster(lb, "", NULL, all, 5);
    px_snapshot_t *s4 = one_cluster(lb, "", NULL, without2, 4);
    px_lb_shared_t *sh5 = px_lb_shared_new(s5), *sh4 = px_lb_shared_new(s4);
    px_lb_cluster_t *l5 = &sh5->clusters[0], *l4 = &sh4->clusters[0];
    /* 256 entries per endpoint in both: 5 x 256 >= 1024, 4 x 256 >= 1024. */
    assert_int_equal(l5->ring_size, 1280);
    assert_int_equal(l4->ring_size, 1024);
    int moved = 0, of2 = 0;
    int *before = wf_calloc(10000, sizeof(int));
    for (int i = 0; i < 10000; i++) {
        int e5 = px_lb_ring_lookup(l5, key_hash((uint64_t)i), 0);
        int e4 = px_lb_ring_lookup(l4, key_hash((uint64_t)i), 0);
        before[i] = e5;
        uint32_t id5 = all[e5], id4 = without2[e4];
        if (id5 == 2) {
            of2++;
            assert_true(id4 != 2);
        } else if (id5 != id4) {
            moved++;
        }
    }
    assert_int_equal(moved, 0);
    assert_true(of2 > 1500 && of2 < 2500);

    /* Ejecting endpoint 2 gives the ring without it: the same keys move, to the same places. */
    px_snapshot_t *so = one_cluster(lb,
                                    "\"outlier_detection\": {\"consecutive_5xx_errors\": 1, "
                                    "\"max_ejection_percent\": 100}",
                                    NULL, all, 5);
    px_lb_shared_t *sho = px_lb_shared_new(so);
    px_lb_cluster_t *lo = &sho->clusters[0];
    assert_true(px_lb_outcome(lo, 2, PX_LB_RESPONSE, 503, 1000));
    for (int i = 0; i < 10000; i++) {
        int eo = px_lb_ring_lookup(lo, key_hash((uint64_t)i), 1000);
        int e4 = px_lb_ring_lookup(l4, key_hash((uint64_t)i), 0);
        assert_int_equal(all[eo], without2[e4]);
        if (before[i] != 2) {
            assert_int_equal(eo, before[i]);
        }
    }
    /* All out: nothing to land on. */
    for (uint32_t e = 0; e < 5; e++) {
        assert_int_equal(px_lb_outcome(lo, e, PX_LB_RESPONSE, 500, 1000), e != 2);
    }
    assert_int_equal(px_lb_ring_lookup(lo, key_hash(1), 1000), -1);
    wf_free(before);
    px_lb_shared_unref(sh5);
    px_lb_shared_unref(sh4);
    px_lb_shared_unref(sho);
    px_snapshot_unref(s5);
    px_snapshot_unref(s4);
    px_snapshot_unref(so);
}

static px_http1_head_t head_with(px_http1_header_t *hs, size_t n)
{
    px_http1_head_t h;
    memset(&h, 0, sizeof(h));
    h.headers = hs;
    h.num_headers = n;
    return h;
}

static void test_request_keys(void **state)
{
    (void)state;
    px_rng_t rng;
    px_rng_seed(&rng, 7);
    px_http1_header_t hs[] = {
        {wf_str("Host"), wf_str("svc")},
        {wf_str("X-User"), wf_str("alice")},
        {wf_str("Cookie"), wf_str("a=1; sticky=\"abc\"; b=2")},
    };
    px_http1_head_t h = head_with(hs, 3);
    px_lb_key_t k;
    px_lb_t lb;
    memset(&lb, 0, sizeof(lb));
    lb.kind = PX_LB_ROUND_ROBIN;
    px_lb_request_key(&lb, &h, wf_str(""), "10.0.0.1", &rng, &k);
    assert_false(k.set);

    lb.kind = PX_LB_CONSISTENT_HASH;
    lb.hash_kind = PX_HASH_HEADER;
    lb.hash_name = wf_str("x-user");
    px_lb_request_key(&lb, &h, wf_str(""), "10.0.0.1", &rng, &k);
    assert_true(k.set);
    assert_true(k.hash == wf_hash64("alice", 5, 0));
    lb.hash_name = wf_str("x-other");
    px_lb_request_key(&lb, &h, wf_str(""), "10.0.0.1", &rng, &k);
    assert_false(k.set);

    lb.hash_kind = PX_HASH_COOKIE;
    lb.hash_name = wf_str("sticky");
    px_lb_request_key(&lb, &h, wf_str(""), "10.0.0.1", &rng, &k);
    assert_true(k.set);
    assert_false(k.set_cookie);
    assert_true(k.hash == wf_hash64("abc", 3, 0));
    char sc[256];
    assert_int_equal(px_lb_set_cookie(&lb, &k, sc, sizeof(sc)), 0);

    /* Absent without a TTL: no key. With one: generated, hashed on, and sent back. */
    lb.hash_name = wf_str("session");
    px_lb_request_key(&lb, &h, wf_str(""), "10.0.0.1", &rng, &k);
    assert_false(k.set);
    lb.cookie_ttl_ms = 60000;
    lb.cookie_path = wf_str("/app");
    px_lb_request_key(&lb, &h, wf_str(""), "10.0.0.1", &rng, &k);
    assert_true(k.set);
    assert_true(k.set_cookie);
    assert_int_equal(strlen(k.cookie), 16);
    assert_true(k.hash == wf_hash64(k.cookie, 16, 0));
    size_t n = px_lb_set_cookie(&lb, &k, sc, sizeof(sc));
    char want[256];
    snprintf(want, sizeof(want), "session=\"%s\"; Max-Age=60; Path=/app; HttpOnly", k.cookie);
    assert_string_equal(sc, want);
    assert_int_equal(n, strlen(want));

    lb.hash_kind = PX_HASH_SOURCE_IP;
    px_lb_request_key(&lb, &h, wf_str(""), "10.0.0.1", &rng, &k);
    assert_true(k.set);
    assert_true(k.hash == wf_hash64("10.0.0.1", 8, 0));

    lb.hash_kind = PX_HASH_QUERY_PARAM;
    lb.hash_name = wf_str("user");
    px_lb_request_key(&lb, &h, wf_str("x=1&username=no&user=bob&user=eve"), "", &rng, &k);
    assert_true(k.set);
    assert_true(k.hash == wf_hash64("bob", 3, 0));
    px_lb_request_key(&lb, &h, wf_str("x=1&users=2"), "", &rng, &k);
    assert_false(k.set);
}

static void test_round_robin_weighted_order(void **state)
{
    (void)state;
    const uint32_t w[] = {1, 2, 1};
    px_snapshot_t *s = one_cluster("{\"simple\": \"ROUND_ROBIN\"}",
                                   "\"outlier_detection\": {\"consecutive_5xx_errors\": 1, "
                                   "\"max_ejection_percent\": 100}",
                                   w, NULL, 3);
    px_lb_shared_t *sh = px_lb_shared_new(s);
    px_lb_cluster_t *lc = &sh->clusters[0];
    px_rng_t rng;
    px_rng_seed(&rng, 1);
    uint64_t rr = 0;
    uint32_t active[3] = {0};
    const int want[] = {0, 1, 1, 2, 0, 1, 1, 2};
    for (int i = 0; i < 8; i++) {
        assert_int_equal(px_lb_choose(lc, &rr, active, &rng, NULL, 0), want[i]);
    }
    /* Ejected endpoint 1 loses its turns; the others keep their order. */
    assert_true(px_lb_outcome(lc, 1, PX_LB_RESPONSE, 500, 0));
    const int want2[] = {0, 2, 0, 2};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(px_lb_choose(lc, &rr, active, &rng, NULL, 1), want2[i]);
    }
    assert_true(px_lb_outcome(lc, 0, PX_LB_RESPONSE, 500, 1));
    assert_true(px_lb_outcome(lc, 2, PX_LB_RESPONSE, 500, 1));
    assert_int_equal(px_lb_choose(lc, &rr, active, &rng, NULL, 2), -1);
    px_lb_shared_unref(sh);
    px_snapshot_unref(s);
}

static void test_random_and_least_request(void **state)
{
    (void)state;
    const uint32_t w[] = {1, 3};
    px_snapshot_t *s = one_cluster("{\"simple\": \"RANDOM\"}", "", w, NULL, 2);
    px_lb_shared_t *sh = px_lb_shared_new(s);
    px_rng_t rng;
    px_rng_seed(&rng, 42);
    uint64_t rr = 0;
    uint32_t active[2] = {0, 0};
    int hits[2] = {0};
    for (int i = 0; i < 40000; i++) {
        hits[px_lb_choose(&sh->clusters[0], &rr, active, &rng, NULL, 0)]++;
    }
    /* 1:3 by weight. */
    assert_true(hits[0] > 9000 && hits[0] < 11000);
    px_lb_shared_unref(sh);
    px_snapshot_unref(s);

    /* LEAST_REQUEST, equal weights: the busy endpoint wins only when both draws are it. */
    s = one_cluster("{\"simple\": \"LEAST_REQUEST\"}", "", NULL, NULL, 2);
    sh = px_lb_shared_new(s);
    active[0] = 50;
    hits[0] = hits[1] = 0;
    for (int i = 0; i < 40000; i++) {
        hits[px_lb_choose(&sh->clusters[0], &rr, active, &rng, NULL, 0)]++;
    }
    assert_true(hits[0] > 9000 && hits[0] < 11000);
    /* Equal load: both are used. */
    active[0] = 0;
    hits[0] = hits[1] = 0;
    for (int i = 0; i < 1000; i++) {
        hits[px_lb_choose(&sh->clusters[0], &rr, active, &rng, NULL, 0)]++;
    }
    assert_true(hits[0] > 0 && hits[1] > 0);
    px_lb_shared_unref(sh);
    px_snapshot_unref(s);

    /* Weighted 1:3, idle: draws by weight, and the heavier wins a split pair, so the light
     * one is used only when both draws are it: 1/16. */
    s = one_cluster("{\"simple\": \"LEAST_REQUEST\"}", "", w, NULL, 2);
    sh = px_lb_shared_new(s);
    hits[0] = hits[1] = 0;
    for (int i = 0; i < 40000; i++) {
        hits[px_lb_choose(&sh->clusters[0], &rr, active, &rng, NULL, 0)]++;
    }
    assert_true(hits[0] > 2000 && hits[0] < 3000);
    /* Three in flight on the heavy one: (3+1)/3 in flight per weight against (0+1)/1, so a
     * split pair now goes to the light one: 1 - (3/4)^2 = 7/16. */
    active[1] = 3;
    hits[0] = hits[1] = 0;
    for (int i = 0; i < 40000; i++) {
        hits[px_lb_choose(&sh->clusters[0], &rr, active, &rng, NULL, 0)]++;
    }
    assert_true(hits[0] > 16500 && hits[0] < 18500);
    px_lb_shared_unref(sh);
    px_snapshot_unref(s);
}

static void test_outlier_state_machine(void **state)
{
    (void)state;
    px_snapshot_t *s = one_cluster("{\"simple\": \"ROUND_ROBIN\"}",
                                   "\"outlier_detection\": {\"consecutive_5xx_errors\": 3, "
                                   "\"interval_ms\": 500, \"base_ejection_time_ms\": 1000, "
                                   "\"max_ejection_percent\": 50}",
                                   NULL, NULL, 4);
    px_lb_shared_t *sh = px_lb_shared_new(s);
    px_lb_cluster_t *lc = &sh->clusters[0];
    int64_t t = 10000;
    /* A success between failures resets the count. */
    assert_false(px_lb_outcome(lc, 0, PX_LB_RESPONSE, 503, t));
    assert_false(px_lb_outcome(lc, 0, PX_LB_RESPONSE, 500, t));
    assert_false(px_lb_outcome(lc, 0, PX_LB_RESPONSE, 404, t));
    assert_false(px_lb_outcome(lc, 0, PX_LB_RESPONSE, 500, t));
    assert_false(px_lb_outcome(lc, 0, PX_LB_RESPONSE, 500, t));
    assert_false(px_lb_ejected(lc, 0, t));
    /* The third in a row ejects, for base_ejection_time. */
    assert_true(px_lb_outcome(lc, 0, PX_LB_RESPONSE, 500, t));
    assert_true(px_lb_ejected(lc, 0, t));
    assert_int_equal(lc->ejections_active, 1);
    assert_int_equal(lc->ejections_total, 1);
    assert_true(px_lb_ejected(lc, 0, t + 999));
    assert_false(px_lb_ejected(lc, 0, t + 1000));
    assert_int_equal(lc->ejections_active, 0);

    /* Local failures count as 5xx; the second ejection lasts twice as long. */
    t += 1100;
    assert_false(px_lb_outcome(lc, 0, PX_LB_CONNECT_FAILURE, 0, t));
    assert_false(px_lb_outcome(lc, 0, PX_LB_RESET, 0, t));
    assert_true(px_lb_outcome(lc, 0, PX_LB_TIMEOUT, 0, t));
    assert_true(px_lb_ejected(lc, 0, t + 1999));
    assert_false(px_lb_ejected(lc, 0, t + 2000));
    t += 2000;

    /* max_ejection_percent 50 of 4: two may be out at once, not a third. */
    for (uint32_t e = 1; e <= 3; e++) {
        for (int i = 0; i < 2; i++) {
            assert_false(px_lb_outcome(lc, e, PX_LB_RESPONSE, 502, t));
        }
        assert_int_equal(px_lb_outcome(lc, e, PX_LB_RESPONSE, 502, t), e <= 2);
    }
    assert_int_equal(lc->ejections_active, 2);
    assert_false(px_lb_ejected(lc, 3, t));

    /* The multiplier decays by one per interval back in service: endpoint 0 has 2, and after
     * 2 s (4 intervals) back its next ejection is base x 1 again. */
    t += 1000;
    assert_false(px_lb_ejected(lc, 1, t)); /* endpoints 1 and 2 return */
    assert_false(px_lb_ejected(lc, 2, t));
    for (int i = 0; i < 2; i++) {
        assert_false(px_lb_outcome(lc, 0, PX_LB_RESPONSE, 500, t));
    }
    assert_true(px_lb_outcome(lc, 0, PX_LB_RESPONSE, 500, t));
    assert_true(px_lb_ejected(lc, 0, t + 999));
    assert_false(px_lb_ejected(lc, 0, t + 1000));
    assert_int_equal(lc->ejections_total, 5);
    px_lb_shared_unref(sh);
    px_snapshot_unref(s);
}

static void test_outlier_gateway_errors_and_cap(void **state)
{
    (void)state;
    px_snapshot_t *s = one_cluster("{\"simple\": \"RANDOM\"}",
                                   "\"outlier_detection\": {\"consecutive_5xx_errors\": 0, "
                                   "\"consecutive_gateway_errors\": 2, "
                                   "\"base_ejection_time_ms\": 200000, "
                                   "\"max_ejection_percent\": 100}",
                                   NULL, NULL, 2);
    px_lb_shared_t *sh = px_lb_shared_new(s);
    px_lb_cluster_t *lc = &sh->clusters[0];
    /* A 500 is not a gateway error and breaks the run. */
    assert_false(px_lb_outcome(lc, 0, PX_LB_RESPONSE, 502, 0));
    assert_false(px_lb_outcome(lc, 0, PX_LB_RESPONSE, 500, 0));
    assert_false(px_lb_outcome(lc, 0, PX_LB_RESPONSE, 504, 0));
    assert_true(px_lb_outcome(lc, 0, PX_LB_RESPONSE, 503, 0));
    assert_true(px_lb_ejected(lc, 0, 199999));
    assert_false(px_lb_ejected(lc, 0, 200000));
    /* Second ejection: 400 s, capped at max(base, 300 s) = 300 s. */
    assert_false(px_lb_outcome(lc, 0, PX_LB_CONNECT_FAILURE, 0, 200000));
    assert_true(px_lb_outcome(lc, 0, PX_LB_CONNECT_FAILURE, 0, 200000));
    assert_true(px_lb_ejected(lc, 0, 200000 + 299999));
    assert_false(px_lb_ejected(lc, 0, 200000 + 300000));
    /* Everything out: nothing to choose. */
    assert_false(px_lb_outcome(lc, 0, PX_LB_RESPONSE, 502, 600000));
    assert_true(px_lb_outcome(lc, 0, PX_LB_RESPONSE, 502, 600000));
    assert_false(px_lb_outcome(lc, 1, PX_LB_RESPONSE, 502, 600000));
    assert_true(px_lb_outcome(lc, 1, PX_LB_RESPONSE, 502, 600000));
    px_rng_t rng;
    px_rng_seed(&rng, 3);
    uint64_t rr = 0;
    uint32_t active[2] = {0};
    assert_int_equal(px_lb_choose(lc, &rr, active, &rng, NULL, 600001), -1);
    wf_buf_t b = WF_BUF_INIT;
    px_lb_render(sh, 600001, &b);
    wf_buf_cstr(&b);
    assert_non_null(strstr((const char *)b.data,
                           "weft_proxy_outlier_detection_ejections_active{cluster_name=\"outbound|"
                           "80||svc.default.svc.cluster.local\"} 2\n"));
    assert_non_null(strstr((const char *)b.data,
                           "weft_proxy_outlier_detection_ejections_total{cluster_name=\"outbound|"
                           "80||svc.default.svc.cluster.local\"} 4\n"));
    wf_buf_free(&b);
    /* Without outlier detection outcomes change nothing. */
    px_snapshot_t *s2 = one_cluster("{\"simple\": \"RANDOM\"}", "", NULL, NULL, 1);
    px_lb_shared_t *sh2 = px_lb_shared_new(s2);
    for (int i = 0; i < 10; i++) {
        assert_false(px_lb_outcome(&sh2->clusters[0], 0, PX_LB_RESPONSE, 503, 0));
    }
    assert_false(px_lb_ejected(&sh2->clusters[0], 0, 0));
    px_lb_shared_unref(sh2);
    px_snapshot_unref(s2);
    px_lb_shared_unref(sh);
    px_snapshot_unref(s);
}

/* A new snapshot's state remembers the ejected endpoints of the one it replaces, by cluster
 * name and endpoint address; a new endpoint starts healthy. */
static void test_outlier_state_carried_over_a_swap(void **state)
{
    (void)state;
    const char *od = "\"outlier_detection\": {\"consecutive_5xx_errors\": 1, "
                     "\"base_ejection_time_ms\": 1000, \"max_ejection_percent\": 100}";
    uint32_t ids1[2] = {0, 1}, ids2[3] = {2, 1, 0};
    px_snapshot_t *s1 = one_cluster("{\"simple\": \"RANDOM\"}", od, NULL, ids1, 2);
    px_snapshot_t *s2 = one_cluster("{\"simple\": \"RANDOM\"}", od, NULL, ids2, 3);
    px_lb_shared_t *sh1 = px_lb_shared_new(s1);
    assert_true(px_lb_outcome(&sh1->clusters[0], 1, PX_LB_RESPONSE, 503, 100));
    px_lb_shared_t *sh2 = px_lb_shared_new(s2);
    px_lb_shared_carry(sh2, sh1);
    px_lb_cluster_t *lc = &sh2->clusters[0];
    /* Endpoint id 1 is index 1 in both; ids 0 and 2 are healthy. */
    assert_true(px_lb_ejected(lc, 1, 500));
    assert_false(px_lb_ejected(lc, 0, 500));
    assert_false(px_lb_ejected(lc, 2, 500));
    assert_int_equal(lc->ejections_active, 1);
    assert_int_equal(lc->ejections_total, 1);
    /* Its ejection ends when it would have. */
    assert_false(px_lb_ejected(lc, 1, 1100));
    px_lb_shared_unref(sh1);
    px_lb_shared_unref(sh2);
    px_snapshot_unref(s1);
    px_snapshot_unref(s2);
}

static void test_retry_admission(void **state)
{
    (void)state;
    px_snapshot_t *s = one_cluster("{\"simple\": \"RANDOM\"}",
                                   "\"connection_pool\": {\"http\": {\"max_retries\": 2, "
                                   "\"http1_max_pending_requests\": 3}, \"tcp\": "
                                   "{\"max_connections\": 4}}",
                                   NULL, NULL, 1);
    px_lb_shared_t *sh = px_lb_shared_new(s);
    px_lb_cluster_t *lc = &sh->clusters[0];
    assert_int_equal(lc->limits.max_connections, 4);
    assert_int_equal(lc->limits.max_pending, 3);
    assert_true(px_lb_retry_admit(lc));
    assert_true(px_lb_retry_admit(lc));
    assert_false(px_lb_retry_admit(lc));
    assert_int_equal(lc->retry_overflow, 1);
    px_lb_retry_release(lc);
    assert_true(px_lb_retry_admit(lc));
    px_lb_shared_unref(sh);
    px_snapshot_unref(s);
}

static void test_passthrough_addr(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    assert_int_equal(px_lb_passthrough_addr(wf_str("10.1.2.3:8080"), 80, &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8080);
    assert_int_equal(px_lb_passthrough_addr(wf_str("10.1.2.3"), 9080, &ss), 0);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9080);
    assert_int_equal(px_lb_passthrough_addr(wf_str("[::1]:9000"), 80, &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 9000);
    assert_int_equal(px_lb_passthrough_addr(wf_str("reviews:9080"), 80, &ss), WF_E_INVAL);
    assert_int_equal(px_lb_passthrough_addr(wf_str("10.1.2.3:99999"), 80, &ss), WF_E_INVAL);
    assert_int_equal(px_lb_passthrough_addr(wf_str("10.1.2.3:"), 80, &ss), WF_E_INVAL);
    assert_int_equal(px_lb_passthrough_addr(wf_str("[::1"), 80, &ss), WF_E_INVAL);
    assert_int_equal(px_lb_passthrough_addr(wf_str(""), 80, &ss), WF_E_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_spreads_by_weight),
        cmocka_unit_test(test_ring_large_weights_scaled),
        cmocka_unit_test(test_ring_removal_moves_only_its_keys),
        cmocka_unit_test(test_request_keys),
        cmocka_unit_test(test_round_robin_weighted_order),
        cmocka_unit_test(test_random_and_least_request),
        cmocka_unit_test(test_outlier_state_machine),
        cmocka_unit_test(test_outlier_gateway_errors_and_cap),
        cmocka_unit_test(test_outlier_state_carried_over_a_swap),
        cmocka_unit_test(test_retry_admission),
        cmocka_unit_test(test_passthrough_addr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
