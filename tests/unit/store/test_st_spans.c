/*
 * test_st_spans.c - the span store through its public API (st_span.h): round trips of every
 * field through the head, sealed blocks, a clean reopen and a crash (replay of the log); search
 * conditions, ordering and limits; services, operations and dependencies; validation errors
 * that must leave nothing behind; retention; readers running while the writer appends and seals;
 * group commit (several appends, one transaction: nothing visible or durable before its commit,
 * each append's refusal its own); sealing on a thread of its own behind appends, and a crash
 * while it runs; the block encoder's attribute reuse across spans (bloom items
 * of values that differ from the previous span's only by type or key).
 */
#include "st_internal.h" /* st_spans_group_* */
#include "st_span.h"
#include "wt_util.h"

#include "wf_alloc.h"
#include "wf_err.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define SEC 1000000000LL
#define NOW_MS 1800000000000LL /* 2027-01-15 */
#define NOW_NS (NOW_MS * 1000000)

typedef struct {
    char *dir;
    st_store_t *s;
    int64_t now_ms;
} fx_t;

static int64_t fx_clock(void *arg)
{
    return ((fx_t *)arg)->now_ms;
}

static void fx_options(fx_t *f, st_options_t *o)
{
    st_options_default(o);
    o->dir = f->dir;
    o->now_ms = fx_clock;
    o->now_arg = f;
}

static void fx_open(fx_t *f)
{
    st_options_t o;
    fx_options(f, &o);
    assert_int_equal(st_store_open(&o, &f->s), 0);
}

static int setup(void **state)
{
    fx_t *f = wf_calloc(1, sizeof(*f));
    f->dir = wt_tmpdir("test-spans");
    f->now_ms = NOW_MS;
    fx_open(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    st_store_close(f->s);
    wt_rm_rf(f->dir);
    wf_free(f->dir);
    wf_free(f);
    return 0;
}

/* ---- span builders ------------------------------------------------------------------------- */

static void mk_tid(uint8_t tid[16], uint64_t hi, uint64_t lo)
{
    for (int i = 0; i < 8; i++) {
        tid[i] = (uint8_t)(hi >> (56 - 8 * i));
        tid[8 + i] = (uint8_t)(lo >> (56 - 8 * i));
    }
}

static void mk_sid(uint8_t sid[8], uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        sid[i] = (uint8_t)(v >> (56 - 8 * i));
    }
}

static st_span_t simple(uint64_t trace, uint64_t span, uint64_t parent, const char *service,
                        const char *name, st_span_kind_t kind, int64_t start, int64_t dur)
{
    st_span_t sp;
    memset(&sp, 0, sizeof(sp));
    mk_tid(sp.trace_id, 0x1000, trace);
    mk_sid(sp.span_id, span);
    if (parent) {
        mk_sid(sp.parent_span_id, parent);
    }
    sp.service = wf_str(service);
    sp.name = wf_str(name);
    sp.kind = kind;
    sp.start_ns = start;
    sp.end_ns = start + dur;
    return sp;
}

/* Static data of the "rich" span: every field and value type. */
static const st_value_t arr_inner[] = {
    {.type = ST_VAL_INT, .u.i = -7},
    {.type = ST_VAL_STRING, .u.s = {"x\"y", 3}},
};
static const st_value_t arr_items[] = {
    {.type = ST_VAL_STRING, .u.s = {"a", 1}},
    {.type = ST_VAL_BOOL, .u.b = true},
    {.type = ST_VAL_ARRAY, .u.arr = {arr_inner, 2}},
    {.type = ST_VAL_DOUBLE, .u.d = 0.1},
};
static const st_attr_t rich_attrs[] = {
    {{"http.method", 11}, {.type = ST_VAL_STRING, .u.s = {"GET", 3}}},
    {{"http.status_code", 16}, {.type = ST_VAL_INT, .u.i = 503}},
    {{"big", 3}, {.type = ST_VAL_INT, .u.i = INT64_MIN}},
    {{"ratio", 5}, {.type = ST_VAL_DOUBLE, .u.d = 0.25}},
    {{"third", 5}, {.type = ST_VAL_DOUBLE, .u.d = 1.0 / 3.0}},
    {{"ok", 2}, {.type = ST_VAL_BOOL, .u.b = false}},
    {{"blob", 4}, {.type = ST_VAL_BYTES, .u.s = {"\x00\xff\x10", 3}}},
    {{"list", 4}, {.type = ST_VAL_ARRAY, .u.arr = {arr_items, 4}}},
    {{"empty", 5}, {.type = ST_VAL_STRING, .u.s = {"", 0}}},
    {{"utf8", 4}, {.type = ST_VAL_STRING, .u.s = {"h\xc3\xa9llo \xe2\x82\xac", 11}}},
};
static const st_attr_t rich_res[] = {
    {{"service.name", 12}, {.type = ST_VAL_STRING, .u.s = {"frontend", 8}}},
    {{"host.name", 9}, {.type = ST_VAL_STRING, .u.s = {"node-1", 6}}},
    {{"process.pid", 11}, {.type = ST_VAL_INT, .u.i = 4242}},
};
static const st_attr_t ev_attrs[] = {
    {{"exception.type", 14}, {.type = ST_VAL_STRING, .u.s = {"IOError", 7}}},
    {{"retry", 5}, {.type = ST_VAL_INT, .u.i = 3}},
};
static const st_attr_t link_attrs[] = {
    {{"link.kind", 9}, {.type = ST_VAL_STRING, .u.s = {"follows", 7}}},
};

static st_span_event_t rich_events[2];
static st_span_link_t rich_links[1];

static st_span_t rich(uint64_t trace, uint64_t span, uint64_t parent, int64_t start)
{
    st_span_t sp =
        simple(trace, span, parent, "frontend", "GET /cart", ST_SPAN_KIND_SERVER, start, 1234567);
    sp.trace_state = WF_STR_LIT("vendor=abc");
    sp.flags = 0x301;
    sp.status_code = ST_STATUS_ERROR;
    sp.status_message = WF_STR_LIT("upstream failed");
    sp.scope_name = WF_STR_LIT("io.weft.proxy");
    sp.scope_version = WF_STR_LIT("0.1.0");
    sp.resource_attrs = rich_res;
    sp.n_resource_attrs = 3;
    sp.attrs = rich_attrs;
    sp.n_attrs = sizeof(rich_attrs) / sizeof(rich_attrs[0]);
    rich_events[0] = (st_span_event_t){start + 1000, WF_STR_LIT("exception"), ev_attrs, 2};
    rich_events[1] = (st_span_event_t){start - 5, WF_STR_LIT("before start"), NULL, 0};
    sp.events = rich_events;
    sp.n_events = 2;
    memset(&rich_links[0], 0, sizeof(rich_links[0]));
    mk_tid(rich_links[0].trace_id, 0xabc, 0xdef);
    mk_sid(rich_links[0].span_id, 0x77);
    rich_links[0].trace_state = WF_STR_LIT("k=v");
    rich_links[0].attrs = link_attrs;
    rich_links[0].n_attrs = 1;
    sp.links = rich_links;
    sp.n_links = 1;
    return sp;
}

/* ---- comparisons ---------------------------------------------------------------------------- */

static void assert_str(wf_str_t a, wf_str_t b)
{
    assert_int_equal(a.len, b.len);
    if (a.len > 0) {
        assert_memory_equal(a.p, b.p, a.len);
    }
}

static void assert_value(const st_value_t *a, const st_value_t *b)
{
    assert_int_equal(a->type, b->type);
    switch (a->type) {
    case ST_VAL_STRING:
    case ST_VAL_BYTES:
        assert_str(a->u.s, b->u.s);
        break;
    case ST_VAL_BOOL:
        assert_int_equal(a->u.b, b->u.b);
        break;
    case ST_VAL_INT:
        assert_true(a->u.i == b->u.i);
        break;
    case ST_VAL_DOUBLE:
        assert_memory_equal(&a->u.d, &b->u.d, 8);
        break;
    case ST_VAL_ARRAY:
        assert_int_equal(a->u.arr.n, b->u.arr.n);
        for (size_t i = 0; i < a->u.arr.n; i++) {
            assert_value(&a->u.arr.items[i], &b->u.arr.items[i]);
        }
        break;
    }
}

static void assert_attrs(const st_attr_t *a, size_t na, const st_attr_t *b, size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        assert_str(a[i].key, b[i].key);
        assert_value(&a[i].value, &b[i].value);
    }
}

static void assert_span(const st_span_t *got, const st_span_t *want)
{
    assert_memory_equal(got->trace_id, want->trace_id, 16);
    assert_memory_equal(got->span_id, want->span_id, 8);
    assert_memory_equal(got->parent_span_id, want->parent_span_id, 8);
    assert_str(got->trace_state, want->trace_state);
    assert_int_equal(got->flags, want->flags);
    assert_str(got->name, want->name);
    assert_int_equal(got->kind, want->kind);
    assert_true(got->start_ns == want->start_ns);
    assert_true(got->end_ns == want->end_ns);
    assert_int_equal(got->status_code, want->status_code);
    assert_str(got->status_message, want->status_message);
    assert_str(got->service, want->service.len ? want->service : WF_STR_LIT("unknown_service"));
    assert_str(got->scope_name, want->scope_name);
    assert_str(got->scope_version, want->scope_version);
    assert_attrs(got->resource_attrs, got->n_resource_attrs, want->resource_attrs,
                 want->n_resource_attrs);
    assert_attrs(got->attrs, got->n_attrs, want->attrs, want->n_attrs);
    assert_int_equal(got->n_events, want->n_events);
    for (size_t i = 0; i < want->n_events; i++) {
        assert_true(got->events[i].time_ns == want->events[i].time_ns);
        assert_str(got->events[i].name, want->events[i].name);
        assert_attrs(got->events[i].attrs, got->events[i].n_attrs, want->events[i].attrs,
                     want->events[i].n_attrs);
    }
    assert_int_equal(got->n_links, want->n_links);
    for (size_t i = 0; i < want->n_links; i++) {
        assert_memory_equal(got->links[i].trace_id, want->links[i].trace_id, 16);
        assert_memory_equal(got->links[i].span_id, want->links[i].span_id, 8);
        assert_str(got->links[i].trace_state, want->links[i].trace_state);
        assert_attrs(got->links[i].attrs, got->links[i].n_attrs, want->links[i].attrs,
                     want->links[i].n_attrs);
    }
}

static void append_ok(fx_t *f, const st_span_t *spans, size_t n)
{
    size_t bad = 99;
    assert_int_equal(st_spans_append(f->s, spans, n, &bad), 0);
}

/* Three spans of one trace (root, child, grandchild) with everything set, plus a plain one. */
static void rich_set(st_span_t out[4])
{
    out[0] = rich(1, 0x11, 0, NOW_NS - 10 * SEC);
    out[1] = rich(1, 0x12, 0x11, NOW_NS - 10 * SEC + 500);
    out[1].service = WF_STR_LIT(""); /* stored as unknown_service */
    out[1].kind = ST_SPAN_KIND_CLIENT;
    out[1].trace_state = WF_STR_LIT("");
    out[1].flags = 0;
    out[2] = rich(1, 0x13, 0x99, NOW_NS - 10 * SEC + 700); /* parent outside the store */
    out[2].status_code = ST_STATUS_OK;
    out[2].status_message = WF_STR_LIT("");
    out[3] = simple(1, 0x14, 0x12, "db", "SELECT", ST_SPAN_KIND_CLIENT, NOW_NS - 10 * SEC + 800, 0);
}

static void check_rich(fx_t *f)
{
    st_span_t want[4];
    rich_set(want);
    uint8_t tid[16];
    mk_tid(tid, 0x1000, 1);
    st_span_list_t *l = NULL;
    assert_int_equal(st_trace_get(f->s, tid, &l), 0);
    assert_int_equal(l->n, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_span(&l->spans[i], &want[i]);
    }
    st_span_list_free(l);
}

static void test_roundtrip_head(void **state)
{
    fx_t *f = *state;
    st_span_t sp[4];
    rich_set(sp);
    append_ok(f, sp, 4);
    st_stats_t st;
    st_store_stats(f->s, &st);
    assert_int_equal(st.head_spans, 4);
    assert_int_equal(st.spans_total, 4);
    check_rich(f);
}

static void test_roundtrip_block(void **state)
{
    fx_t *f = *state;
    st_span_t sp[4];
    rich_set(sp);
    append_ok(f, sp, 4);
    assert_int_equal(st_store_flush(f->s), 0);
    st_stats_t st;
    st_store_stats(f->s, &st);
    assert_int_equal(st.head_spans, 0);
    check_rich(f);
}

static void test_roundtrip_reopen(void **state)
{
    fx_t *f = *state;
    st_span_t sp[4];
    rich_set(sp);
    append_ok(f, sp, 2);
    append_ok(f, sp + 2, 2);
    st_store_close(f->s);
    fx_open(f);
    st_stats_t st;
    st_store_stats(f->s, &st);
    assert_int_equal(st.head_spans, 0); /* close sealed them */
    check_rich(f);
}

/* A child process appends and dies without closing: the log must bring everything back. */
static void test_roundtrip_crash(void **state)
{
    fx_t *f = *state;
    st_store_close(f->s);
    f->s = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fx_open(f);
        st_span_t sp[4];
        rich_set(sp);
        /* one batch sealed, then two more only in the log */
        int rc = st_spans_append(f->s, sp, 1, NULL);
        rc |= st_store_flush(f->s);
        rc |= st_spans_append(f->s, sp + 1, 2, NULL);
        rc |= st_spans_append(f->s, sp + 3, 1, NULL);
        _exit(rc == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    fx_open(f);
    st_stats_t st;
    st_store_stats(f->s, &st);
    assert_int_equal(st.head_spans, 3);
    check_rich(f);
    /* Sealing after replay must not duplicate the block written before the crash. */
    assert_int_equal(st_store_flush(f->s), 0);
    check_rich(f);
    st_store_close(f->s);
    fx_open(f);
    check_rich(f);
}

static void test_trace_id_64bit(void **state)
{
    fx_t *f = *state;
    st_span_t a = simple(0, 1, 0, "svc", "op", ST_SPAN_KIND_SERVER, NOW_NS - SEC, 10);
    memset(a.trace_id, 0, 16);
    mk_sid(a.trace_id + 8, 0xdeadbeefcafef00dULL); /* 64-bit id: high bytes zero */
    /* A 128-bit id with the same low half: same index key, different trace. */
    st_span_t b = a;
    b.trace_id[0] = 0x42;
    mk_sid(b.span_id, 2);
    for (int round = 0; round < 2; round++) {
        if (round == 0) {
            append_ok(f, &a, 1);
            append_ok(f, &b, 1);
        } else {
            assert_int_equal(st_store_flush(f->s), 0);
        }
        st_span_list_t *l = NULL;
        assert_int_equal(st_trace_get(f->s, a.trace_id, &l), 0);
        assert_int_equal(l->n, 1);
        assert_span(&l->spans[0], &a);
        assert_true(l->spans[0].trace_id[0] == 0 && l->spans[0].trace_id[7] == 0);
        st_span_list_free(l);
        assert_int_equal(st_trace_get(f->s, b.trace_id, &l), 0);
        assert_int_equal(l->n, 1);
        assert_span(&l->spans[0], &b);
        st_span_list_free(l);
    }
}

static void test_trace_across_head_and_blocks(void **state)
{
    fx_t *f = *state;
    st_span_t sp[5];
    for (int i = 0; i < 5; i++) {
        /* appended out of start order, over three places */
        sp[i] = simple(7, 100 + i, i ? 100 : 0, "svc", "op", ST_SPAN_KIND_INTERNAL,
                       NOW_NS - SEC * (10 - ((i * 3) % 5)), 5);
    }
    append_ok(f, sp, 2);
    assert_int_equal(st_store_flush(f->s), 0);
    append_ok(f, sp + 2, 2);
    assert_int_equal(st_store_flush(f->s), 0);
    append_ok(f, sp + 4, 1);
    uint8_t tid[16];
    mk_tid(tid, 0x1000, 7);
    st_span_list_t *l = NULL;
    assert_int_equal(st_trace_get(f->s, tid, &l), 0);
    assert_int_equal(l->n, 5);
    for (size_t i = 1; i < l->n; i++) {
        assert_true(l->spans[i - 1].start_ns < l->spans[i].start_ns);
    }
    /* every span exactly once */
    for (int i = 0; i < 5; i++) {
        int seen = 0;
        for (size_t k = 0; k < l->n; k++) {
            seen += memcmp(l->spans[k].span_id, sp[i].span_id, 8) == 0;
        }
        assert_int_equal(seen, 1);
    }
    st_span_list_free(l);
    mk_tid(tid, 0x1000, 8);
    assert_int_equal(st_trace_get(f->s, tid, &l), WF_E_NOTFOUND);
    assert_null(l);
}

/* One append larger than a block: sealed into several blocks, traces split across them. */
static void test_big_append(void **state)
{
    fx_t *f = *state;
    size_t n = 9000;
    st_span_t *sp = wf_calloc(n, sizeof(*sp));
    for (size_t i = 0; i < n; i++) {
        sp[i] = simple(1 + i % 3, i + 1, i >= 3 ? i - 2 : 0, "big", "op", ST_SPAN_KIND_SERVER,
                       NOW_NS - 600 * SEC + (int64_t)i * 1000, 500);
    }
    append_ok(f, sp, n);
    for (int round = 0; round < 2; round++) {
        for (uint64_t t = 1; t <= 3; t++) {
            uint8_t tid[16];
            mk_tid(tid, 0x1000, t);
            st_span_list_t *l = NULL;
            assert_int_equal(st_trace_get(f->s, tid, &l), 0);
            assert_int_equal(l->n, 3000);
            for (size_t k = 0; k < l->n; k++) {
                /* span k of trace t is input span 3k + t - 1, parent = the one 3 before */
                uint64_t want = 3 * k + t;
                assert_int_equal(l->spans[k].span_id[7], (uint8_t)want);
                assert_int_equal(l->spans[k].span_id[6], (uint8_t)(want >> 8));
                if (k > 0) {
                    assert_memory_equal(l->spans[k].parent_span_id, l->spans[k - 1].span_id, 8);
                }
            }
            st_span_list_free(l);
        }
        assert_int_equal(st_store_flush(f->s), 0);
    }
    st_trace_query_t q = {.span_kind = -1, .limit = 10};
    st_trace_ids_t *ids = NULL;
    assert_int_equal(st_trace_search(f->s, &q, &ids), 0);
    assert_int_equal(ids->n, 3);
    assert_int_equal(ids->ids[0][15], 3); /* span 9000 (the newest) is in trace 3 */
    st_trace_ids_free(ids);
    wf_free(sp);
}

/* ---- validation ------------------------------------------------------------------------------ */

static void expect_reject(fx_t *f, st_span_t *batch, size_t n, size_t bad_i, int code)
{
    size_t bad = 12345;
    assert_int_equal(st_spans_append(f->s, batch, n, &bad), code);
    assert_int_equal(bad, bad_i);
    st_stats_t st;
    st_store_stats(f->s, &st);
    assert_int_equal(st.spans_total, 0);
    assert_int_equal(st.head_spans, 0);
    st_span_list_t *l = NULL;
    assert_int_equal(st_trace_get(f->s, batch[0].trace_id, &l), WF_E_NOTFOUND);
    st_strlist_t *svcs = NULL;
    assert_int_equal(st_services(f->s, &svcs), 0);
    assert_int_equal(st_strlist_len(svcs), 0);
    st_strlist_free(svcs);
}

static void test_validation(void **state)
{
    fx_t *f = *state;
    st_span_t b[2];
    static st_attr_t many[1025];
    static st_value_t deep[6];
    static char longstr[65537];
    static st_span_event_t evs[1025];
    st_attr_t one;
#define RESET()                                                                                    \
    do {                                                                                           \
        b[0] = simple(1, 1, 0, "svc", "op", ST_SPAN_KIND_SERVER, NOW_NS - SEC, 100);               \
        b[1] = simple(2, 2, 0, "svc", "op", ST_SPAN_KIND_SERVER, NOW_NS - SEC, 100);               \
    } while (0)
    RESET();
    memset(b[1].trace_id, 0, 16);
    expect_reject(f, b, 2, 1, ST_E_SPAN_INVALID);
    RESET();
    memset(b[1].span_id, 0, 8);
    expect_reject(f, b, 2, 1, ST_E_SPAN_INVALID);
    RESET();
    b[1].end_ns = b[1].start_ns - 1;
    expect_reject(f, b, 2, 1, ST_E_SPAN_INVALID);
    RESET();
    b[1].kind = (st_span_kind_t)9;
    expect_reject(f, b, 2, 1, ST_E_SPAN_INVALID);
    RESET();
    b[1].name = (wf_str_t){"bad\xff", 4};
    expect_reject(f, b, 2, 1, ST_E_SPAN_INVALID);
    RESET();
    one = (st_attr_t){WF_STR_LIT("k"), {.type = ST_VAL_STRING, .u.s = {"\xc3\x28", 2}}};
    b[1].attrs = &one;
    b[1].n_attrs = 1;
    expect_reject(f, b, 2, 1, ST_E_SPAN_INVALID);
    RESET();
    b[1].start_ns = -5;
    b[1].end_ns = 0;
    expect_reject(f, b, 2, 1, ST_E_TIMESTAMP);
    RESET();
    for (size_t i = 0; i < 1025; i++) {
        many[i] = (st_attr_t){WF_STR_LIT("k"), {.type = ST_VAL_INT, .u.i = 1}};
    }
    b[1].attrs = many;
    b[1].n_attrs = 1025;
    expect_reject(f, b, 2, 1, ST_E_SPAN_LIMIT);
    RESET();
    memset(longstr, 'a', sizeof(longstr));
    b[1].name = (wf_str_t){longstr, sizeof(longstr)};
    expect_reject(f, b, 2, 1, ST_E_SPAN_LIMIT);
    RESET();
    for (int i = 0; i < 5; i++) {
        deep[i] = (st_value_t){.type = ST_VAL_ARRAY, .u.arr = {&deep[i + 1], 1}};
    }
    deep[5] = (st_value_t){.type = ST_VAL_INT, .u.i = 1};
    one = (st_attr_t){WF_STR_LIT("k"), deep[0]};
    b[1].attrs = &one;
    b[1].n_attrs = 1;
    expect_reject(f, b, 2, 1, ST_E_SPAN_LIMIT);
    RESET();
    memset(evs, 0, sizeof(evs));
    b[1].events = evs;
    b[1].n_events = 1025;
    expect_reject(f, b, 2, 1, ST_E_SPAN_LIMIT);
    RESET();
    b[0].start_ns = NOW_NS - 8LL * 86400 * SEC; /* default retention: 7 days */
    b[0].end_ns = b[0].start_ns + 1;
    expect_reject(f, b, 2, 0, ST_E_TOO_OLD);
    RESET();
    b[1].start_ns = NOW_NS + 11LL * 60 * SEC; /* default max future: 10 min */
    b[1].end_ns = b[1].start_ns + 1;
    expect_reject(f, b, 2, 1, ST_E_TOO_NEW);
#undef RESET
    /* A batch over max_batch_spans. */
    st_store_close(f->s);
    st_options_t o;
    fx_options(f, &o);
    o.max_batch_spans = 1;
    assert_int_equal(st_store_open(&o, &f->s), 0);
    b[0] = simple(1, 1, 0, "svc", "op", ST_SPAN_KIND_SERVER, NOW_NS - SEC, 100);
    b[1] = simple(2, 2, 0, "svc", "op", ST_SPAN_KIND_SERVER, NOW_NS - SEC, 100);
    expect_reject(f, b, 2, 1, ST_E_BATCH_LIMIT);
    append_ok(f, b, 1);
}

/* ---- search ------------------------------------------------------------------------------------
 */

static st_attr_t tag_attrs[6][3];
static st_span_event_t tag_events[6];

/*
 * Six traces, newest last:
 *   t1 frontend "GET /" SERVER 10ms  http.status_code=200 (int)
 *   t2 frontend "GET /" SERVER 50ms  http.status_code=500, error=true (bool)
 *   t3 backend  "query" CLIENT 5ms   db=pg, ratio=0.5 (double); parent of nothing
 *   t4 frontend "POST /" SERVER 200ms event attr exception.type=Timeout
 *   t5 backend  "query" SERVER 1ms   resource attr zone=eu
 *   t6 frontend "GET /" SERVER 20ms  http.status_code=200, plus a backend child span
 */
static void load_search_set(fx_t *f, bool seal_between)
{
    static const st_attr_t zone[] = {{{"zone", 4}, {.type = ST_VAL_STRING, .u.s = {"eu", 2}}}};
    st_span_t sp[7];
    int64_t t0 = NOW_NS - 100 * SEC;
    sp[0] = simple(1, 1, 0, "frontend", "GET /", ST_SPAN_KIND_SERVER, t0 + 1 * SEC, 10000000);
    tag_attrs[0][0] = (st_attr_t){WF_STR_LIT("http.status_code"), {.type = ST_VAL_INT, .u.i = 200}};
    sp[0].attrs = tag_attrs[0];
    sp[0].n_attrs = 1;
    sp[1] = simple(2, 2, 0, "frontend", "GET /", ST_SPAN_KIND_SERVER, t0 + 2 * SEC, 50000000);
    tag_attrs[1][0] = (st_attr_t){WF_STR_LIT("http.status_code"), {.type = ST_VAL_INT, .u.i = 500}};
    tag_attrs[1][1] = (st_attr_t){WF_STR_LIT("error"), {.type = ST_VAL_BOOL, .u.b = true}};
    sp[1].attrs = tag_attrs[1];
    sp[1].n_attrs = 2;
    sp[2] = simple(3, 3, 0, "backend", "query", ST_SPAN_KIND_CLIENT, t0 + 3 * SEC, 5000000);
    tag_attrs[2][0] = (st_attr_t){WF_STR_LIT("db"), {.type = ST_VAL_STRING, .u.s = {"pg", 2}}};
    tag_attrs[2][1] = (st_attr_t){WF_STR_LIT("ratio"), {.type = ST_VAL_DOUBLE, .u.d = 0.5}};
    sp[2].attrs = tag_attrs[2];
    sp[2].n_attrs = 2;
    sp[3] = simple(4, 4, 0, "frontend", "POST /", ST_SPAN_KIND_SERVER, t0 + 4 * SEC, 200000000);
    tag_attrs[3][0] =
        (st_attr_t){WF_STR_LIT("exception.type"), {.type = ST_VAL_STRING, .u.s = {"Timeout", 7}}};
    tag_events[3] = (st_span_event_t){t0 + 4 * SEC + 5, WF_STR_LIT("exception"), tag_attrs[3], 1};
    sp[3].events = &tag_events[3];
    sp[3].n_events = 1;
    sp[4] = simple(5, 5, 0, "backend", "query", ST_SPAN_KIND_SERVER, t0 + 5 * SEC, 1000000);
    sp[4].resource_attrs = zone;
    sp[4].n_resource_attrs = 1;
    sp[5] = simple(6, 6, 0, "frontend", "GET /", ST_SPAN_KIND_SERVER, t0 + 6 * SEC, 20000000);
    sp[5].attrs = tag_attrs[0];
    sp[5].n_attrs = 1;
    sp[6] = simple(6, 7, 6, "backend", "query", ST_SPAN_KIND_CLIENT, t0 + 6 * SEC + 100, 3000000);
    for (size_t i = 0; i < 7; i++) {
        append_ok(f, &sp[i], 1);
        if (seal_between && (i == 2 || i == 4)) {
            assert_int_equal(st_store_flush(f->s), 0);
        }
    }
}

/* Run q and compare the trace numbers (low byte of the id) with want, in order. */
static void expect_ids(fx_t *f, const st_trace_query_t *q, const int *want, size_t n)
{
    st_trace_ids_t *ids = NULL;
    assert_int_equal(st_trace_search(f->s, q, &ids), 0);
    if (ids->n != n) {
        fprintf(stderr, "got %zu traces:", ids->n);
        for (size_t i = 0; i < ids->n; i++) {
            fprintf(stderr, " %d", ids->ids[i][15]);
        }
        fprintf(stderr, ", want %zu\n", n);
    }
    assert_int_equal(ids->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ids->ids[i][15], want[i]);
    }
    st_trace_ids_free(ids);
}

#define EXPECT(q, ...)                                                                             \
    do {                                                                                           \
        const int w_[] = {__VA_ARGS__};                                                            \
        expect_ids(f, &(q), w_, sizeof(w_) / sizeof(w_[0]));                                       \
    } while (0)
#define EXPECT_NONE(q) expect_ids(f, &(q), NULL, 0)

static st_trace_query_t any(void)
{
    return (st_trace_query_t){.span_kind = -1};
}

static void run_search_checks(fx_t *f)
{
    st_trace_query_t q = any();
    EXPECT(q, 6, 5, 4, 3, 2, 1);
    q.service = WF_STR_LIT("frontend");
    EXPECT(q, 6, 4, 2, 1);
    q.operation = WF_STR_LIT("GET /");
    EXPECT(q, 6, 2, 1);
    q.span_kind = ST_SPAN_KIND_CLIENT;
    EXPECT_NONE(q);
    q = any();
    q.service = WF_STR_LIT("backend");
    q.span_kind = ST_SPAN_KIND_CLIENT;
    EXPECT(q, 6, 3);
    q.service = WF_STR_LIT("nosuch");
    q.span_kind = -1;
    EXPECT_NONE(q);

    /* tags: int, bool, double printed as text; event and resource attributes */
    st_tag_filter_t tags[2];
    q = any();
    q.tags = tags;
    q.n_tags = 1;
    tags[0] = (st_tag_filter_t){WF_STR_LIT("http.status_code"), WF_STR_LIT("200")};
    EXPECT(q, 6, 1);
    tags[0].value = WF_STR_LIT("500");
    EXPECT(q, 2);
    tags[0] = (st_tag_filter_t){WF_STR_LIT("error"), WF_STR_LIT("true")};
    EXPECT(q, 2);
    tags[0] = (st_tag_filter_t){WF_STR_LIT("ratio"), WF_STR_LIT("0.5")};
    EXPECT(q, 3);
    tags[0] = (st_tag_filter_t){WF_STR_LIT("exception.type"), WF_STR_LIT("Timeout")};
    EXPECT(q, 4);
    tags[0] = (st_tag_filter_t){WF_STR_LIT("zone"), WF_STR_LIT("eu")};
    EXPECT(q, 5);
    tags[0] = (st_tag_filter_t){WF_STR_LIT("zone"), WF_STR_LIT("us")};
    EXPECT_NONE(q);
    /* all tags must hold for one span */
    q.n_tags = 2;
    tags[0] = (st_tag_filter_t){WF_STR_LIT("http.status_code"), WF_STR_LIT("500")};
    tags[1] = (st_tag_filter_t){WF_STR_LIT("error"), WF_STR_LIT("true")};
    EXPECT(q, 2);
    tags[1] = (st_tag_filter_t){WF_STR_LIT("db"), WF_STR_LIT("pg")};
    EXPECT_NONE(q);

    /* durations and time range */
    q = any();
    q.min_duration_ns = 20000000;
    EXPECT(q, 6, 4, 2);
    q.max_duration_ns = 50000000;
    EXPECT(q, 6, 2);
    q = any();
    q.max_duration_ns = 5000000;
    EXPECT(q, 6, 5, 3);
    q = any();
    int64_t t0 = NOW_NS - 100 * SEC;
    q.start_min_ns = t0 + 2 * SEC;
    q.start_max_ns = t0 + 4 * SEC;
    EXPECT(q, 4, 3, 2);
    q.service = WF_STR_LIT("frontend");
    q.min_duration_ns = 100000000;
    EXPECT(q, 4);

    /* limit keeps the newest */
    q = any();
    q.limit = 2;
    EXPECT(q, 6, 5);
    q.service = WF_STR_LIT("frontend");
    q.limit = 3;
    EXPECT(q, 6, 4, 2);
}

static void test_search_head(void **state)
{
    fx_t *f = *state;
    load_search_set(f, false);
    run_search_checks(f);
}

static void test_search_blocks(void **state)
{
    fx_t *f = *state;
    load_search_set(f, true);
    run_search_checks(f);
    assert_int_equal(st_store_flush(f->s), 0);
    run_search_checks(f);
    st_store_close(f->s);
    fx_open(f);
    run_search_checks(f);
}

/* Many traces over many blocks: newest first, deduplicated, limit honoured across blocks. */
static void test_search_order_limit(void **state)
{
    fx_t *f = *state;
    st_span_t sp[2];
    for (int i = 0; i < 60; i++) {
        /* every trace has two matching spans; trace start grows with i */
        int64_t t = NOW_NS - 1000 * SEC + i * SEC;
        sp[0] = simple((uint64_t)i + 1, (uint64_t)i * 2 + 1, 0, "svc", "op", ST_SPAN_KIND_SERVER, t,
                       1000);
        sp[1] = simple((uint64_t)i + 1, (uint64_t)i * 2 + 2, (uint64_t)i * 2 + 1, "svc", "op",
                       ST_SPAN_KIND_SERVER, t + 10, 1000);
        append_ok(f, sp, 2);
        if (i % 7 == 6) {
            assert_int_equal(st_store_flush(f->s), 0);
        }
    }
    st_trace_query_t q = any();
    q.service = WF_STR_LIT("svc");
    q.limit = 25;
    st_trace_ids_t *ids = NULL;
    assert_int_equal(st_trace_search(f->s, &q, &ids), 0);
    assert_int_equal(ids->n, 25);
    for (size_t i = 0; i < 25; i++) {
        assert_int_equal(ids->ids[i][15], 60 - (int)i);
    }
    st_trace_ids_free(ids);
    q.limit = 0; /* default 20 */
    assert_int_equal(st_trace_search(f->s, &q, &ids), 0);
    assert_int_equal(ids->n, 20);
    assert_int_equal(ids->ids[19][15], 41);
    st_trace_ids_free(ids);
    q.limit = 1000;
    assert_int_equal(st_trace_search(f->s, &q, &ids), 0);
    assert_int_equal(ids->n, 60);
    st_trace_ids_free(ids);
}

/* ---- services, operations, dependencies ------------------------------------------------------ */

static void test_services_operations(void **state)
{
    fx_t *f = *state;
    load_search_set(f, false);
    st_span_t x = simple(9, 9, 0, "", "anon", ST_SPAN_KIND_INTERNAL, NOW_NS - SEC, 1);
    append_ok(f, &x, 1);
    for (int round = 0; round < 2; round++) {
        st_strlist_t *l = NULL;
        assert_int_equal(st_services(f->s, &l), 0);
        assert_int_equal(st_strlist_len(l), 3);
        assert_true(wf_str_eq_c(st_strlist_get(l, 0), "backend"));
        assert_true(wf_str_eq_c(st_strlist_get(l, 1), "frontend"));
        assert_true(wf_str_eq_c(st_strlist_get(l, 2), "unknown_service"));
        st_strlist_free(l);
        st_operation_list_t *ops = NULL;
        assert_int_equal(st_operations(f->s, WF_STR_LIT("backend"), -1, &ops), 0);
        assert_int_equal(ops->n, 2);
        assert_string_equal(ops->ops[0].name, "query");
        assert_int_equal(ops->ops[0].kind, ST_SPAN_KIND_SERVER);
        assert_string_equal(ops->ops[1].name, "query");
        assert_int_equal(ops->ops[1].kind, ST_SPAN_KIND_CLIENT);
        st_operation_list_free(ops);
        assert_int_equal(st_operations(f->s, WF_STR_LIT("frontend"), ST_SPAN_KIND_SERVER, &ops), 0);
        assert_int_equal(ops->n, 2);
        assert_string_equal(ops->ops[0].name, "GET /");
        assert_string_equal(ops->ops[1].name, "POST /");
        st_operation_list_free(ops);
        assert_int_equal(st_operations(f->s, WF_STR_LIT("frontend"), ST_SPAN_KIND_CLIENT, &ops), 0);
        assert_int_equal(ops->n, 0);
        st_operation_list_free(ops);
        st_store_close(f->s);
        fx_open(f);
    }
}

static void test_dependencies(void **state)
{
    fx_t *f = *state;
    int64_t t = NOW_NS - 50 * SEC;
    st_span_t sp[] = {
        simple(1, 1, 0, "gw", "in", ST_SPAN_KIND_SERVER, t, 100),
        simple(1, 2, 1, "gw", "out", ST_SPAN_KIND_CLIENT, t + 1, 90),       /* same service */
        simple(1, 3, 2, "web", "in", ST_SPAN_KIND_SERVER, t + 2, 80),       /* gw -> web */
        simple(1, 4, 3, "db", "q", ST_SPAN_KIND_SERVER, t + 3, 10),         /* web -> db */
        simple(1, 5, 3, "db", "q", ST_SPAN_KIND_SERVER, t + 4, 10),         /* web -> db */
        simple(2, 6, 0, "web", "in", ST_SPAN_KIND_SERVER, t + 10 * SEC, 5), /* root */
        simple(2, 7, 6, "db", "q", ST_SPAN_KIND_SERVER, t + 10 * SEC, 5),   /* web -> db, later */
        simple(3, 8, 77, "db", "q", ST_SPAN_KIND_SERVER, t, 5),             /* parent unknown */
    };
    append_ok(f, sp, 3);
    assert_int_equal(st_store_flush(f->s), 0);
    append_ok(f, sp + 3, 5);
    for (int round = 0; round < 2; round++) {
        st_dependency_list_t *d = NULL;
        assert_int_equal(st_dependencies(f->s, t, t + 20 * SEC, &d), 0);
        assert_int_equal(d->n, 2);
        assert_string_equal(d->deps[0].parent, "gw");
        assert_string_equal(d->deps[0].child, "web");
        assert_int_equal(d->deps[0].call_count, 1);
        assert_string_equal(d->deps[1].parent, "web");
        assert_string_equal(d->deps[1].child, "db");
        assert_int_equal(d->deps[1].call_count, 3);
        st_dependency_list_free(d);
        /* a window that ends before trace 2 */
        assert_int_equal(st_dependencies(f->s, t, t + 5 * SEC, &d), 0);
        assert_int_equal(d->n, 2);
        assert_int_equal(d->deps[1].call_count, 2);
        st_dependency_list_free(d);
        assert_int_equal(st_dependencies(f->s, t + 100 * SEC, t + 200 * SEC, &d), 0);
        assert_int_equal(d->n, 0);
        st_dependency_list_free(d);
        assert_int_equal(st_store_flush(f->s), 0);
    }
}

/* ---- retention ----------------------------------------------------------------------------------
 */

static void test_retention(void **state)
{
    fx_t *f = *state;
    st_store_close(f->s);
    st_options_t o;
    fx_options(f, &o);
    o.spans_retention_ms = 3600 * 1000;
    assert_int_equal(st_store_open(&o, &f->s), 0);
    int64_t t = NOW_NS - 1800 * SEC;
    st_span_t old1 = simple(1, 1, 0, "old", "op", ST_SPAN_KIND_SERVER, t, 10);
    st_span_t old2 = simple(2, 2, 0, "old", "op", ST_SPAN_KIND_SERVER, t + SEC, 10);
    st_span_t mixed_a = simple(3, 3, 0, "both", "op", ST_SPAN_KIND_SERVER, t, 10);
    st_span_t young = simple(4, 4, 0, "young", "op", ST_SPAN_KIND_SERVER, t + 1500 * SEC, 10);
    st_span_t mixed_b = simple(3, 5, 3, "both", "op", ST_SPAN_KIND_SERVER, t + 1500 * SEC, 10);
    st_span_t old_head = simple(5, 6, 0, "old", "op2", ST_SPAN_KIND_SERVER, t + 2 * SEC, 10);
    append_ok(f, &old1, 1);
    append_ok(f, &mixed_a, 1);
    assert_int_equal(st_store_flush(f->s), 0); /* block 1: old spans only */
    append_ok(f, &old2, 1);
    append_ok(f, &young, 1);
    append_ok(f, &mixed_b, 1);
    assert_int_equal(st_store_flush(f->s), 0); /* block 2: old and young */
    append_ok(f, &old_head, 1);                /* head */
    /* An hour passes: everything that started at t .. t+2s is now older than the cutoff. */
    f->now_ms += 3600 * 1000 - 900 * 1000;
    assert_int_equal(st_store_retention_run(f->s), 0);
    st_span_list_t *l = NULL;
    assert_int_equal(st_trace_get(f->s, old1.trace_id, &l), WF_E_NOTFOUND);
    assert_int_equal(st_trace_get(f->s, old_head.trace_id, &l), WF_E_NOTFOUND);
    /* block 2 is kept whole: its newest span is young */
    assert_int_equal(st_trace_get(f->s, old2.trace_id, &l), 0);
    st_span_list_free(l);
    assert_int_equal(st_trace_get(f->s, mixed_b.trace_id, &l), 0);
    assert_int_equal(l->n, 1);
    st_span_list_free(l);
    st_strlist_t *svcs = NULL;
    assert_int_equal(st_services(f->s, &svcs), 0);
    assert_int_equal(st_strlist_len(svcs), 2);
    assert_true(wf_str_eq_c(st_strlist_get(svcs, 0), "both"));
    assert_true(wf_str_eq_c(st_strlist_get(svcs, 1), "young"));
    st_strlist_free(svcs);
    st_trace_query_t q = any();
    q.service = WF_STR_LIT("old");
    EXPECT(q, 2);
    /* The dropped head span does not come back from the log. */
    st_store_close(f->s);
    assert_int_equal(st_store_open(&o, &f->s), 0);
    assert_int_equal(st_trace_get(f->s, old_head.trace_id, &l), WF_E_NOTFOUND);
    /* Later, everything goes. */
    f->now_ms += 3600 * 1000;
    assert_int_equal(st_store_retention_run(f->s), 0);
    assert_int_equal(st_trace_get(f->s, young.trace_id, &l), WF_E_NOTFOUND);
    assert_int_equal(st_services(f->s, &svcs), 0);
    assert_int_equal(st_strlist_len(svcs), 0);
    st_strlist_free(svcs);
}

/* ---- concurrency
 * ---------------------------------------------------------------------------------- */

#define CONC_TRACES 3000
#define CONC_SPANS 4

typedef struct {
    fx_t *f;
    _Atomic int done;
    _Atomic int published; /* traces 1..published are durable */
    _Atomic int failures;
    _Atomic long checks;
} conc_t;

/* Spans within every per-span limit can still make a batch too large to replay: refused whole. */
static void test_batch_bytes_limit(void **state)
{
    fx_t *f = *state;
    st_store_close(f->s);
    st_options_t o;
    fx_options(f, &o);
    o.max_batch_bytes = 64 << 10;
    assert_int_equal(st_store_open(&o, &f->s), 0);
    static char big[16000];
    memset(big, 'x', sizeof(big));
    static st_attr_t attr;
    attr.key = WF_STR_LIT("payload");
    attr.value.type = ST_VAL_STRING;
    attr.value.u.s = (wf_str_t){big, sizeof(big)};
    st_span_t b[8];
    for (int i = 0; i < 8; i++) {
        b[i] = simple(7, (uint64_t)i + 1, 0, "svc", "op", ST_SPAN_KIND_SERVER, NOW_NS - SEC, 1000);
        b[i].attrs = &attr;
        b[i].n_attrs = 1;
    }
    /* 8 x 16 KB is over 64 KiB: nothing is stored. */
    assert_int_equal(st_spans_append(f->s, b, 8, NULL), ST_E_BATCH_LIMIT);
    st_span_list_t *l = NULL;
    assert_int_equal(st_trace_get(f->s, b[0].trace_id, &l), WF_E_NOTFOUND);
    /* Half of it fits, and survives a reopen. */
    append_ok(f, b, 3);
    st_store_close(f->s);
    assert_int_equal(st_store_open(&o, &f->s), 0);
    assert_int_equal(st_trace_get(f->s, b[0].trace_id, &l), 0);
    assert_int_equal(l->n, 3);
    st_span_list_free(l);
}

static void *reader_main(void *arg)
{
    conc_t *c = arg;
    uint64_t rng = (uint64_t)(uintptr_t)&rng;
    while (!c->done) {
        int n = c->published;
        if (n == 0) {
            continue;
        }
        uint64_t k = 1 + wt_rand(&rng) % (uint64_t)n;
        uint8_t tid[16];
        mk_tid(tid, 0x1000, k);
        st_span_list_t *l = NULL;
        int rc = st_trace_get(c->f->s, tid, &l);
        if (rc != 0 || l->n != CONC_SPANS) {
            c->failures++;
        }
        st_span_list_free(l);
        st_trace_query_t q = any();
        q.service = WF_STR_LIT("conc");
        q.limit = 5;
        st_trace_ids_t *ids = NULL;
        rc = st_trace_search(c->f->s, &q, &ids);
        /* the newest published trace (or a newer one) must come first */
        if (rc != 0 || ids->n != (n < 5 ? (size_t)n : 5)) {
            c->failures++;
        }
        st_trace_ids_free(ids);
        c->checks++;
    }
    return NULL;
}

/* ---- group commit --------------------------------------------------------------------------- */

static void expect_trace_count(fx_t *f, uint64_t trace, size_t n)
{
    uint8_t tid[16];
    mk_tid(tid, 0x1000, trace);
    st_span_list_t *l = NULL;
    if (n == 0) {
        assert_int_equal(st_trace_get(f->s, tid, &l), WF_E_NOTFOUND);
        return;
    }
    assert_int_equal(st_trace_get(f->s, tid, &l), 0);
    assert_int_equal(l->n, n);
    st_span_list_free(l);
}

static void test_group_commit(void **state)
{
    fx_t *f = *state;
    st_span_t sp[4];
    rich_set(sp);
    st_span_t bad[2] = {
        simple(7, 1, 0, "svc", "op", ST_SPAN_KIND_SERVER, NOW_NS - SEC, 100),
        simple(7, 2, 0, "svc", "op", ST_SPAN_KIND_SERVER, NOW_NS - SEC, 100),
    };
    bad[1].end_ns = bad[1].start_ns - 1;
    assert_int_equal(st_spans_group_begin(f->s), 0);
    append_ok(f, sp, 2);
    size_t bi = 0;
    assert_int_equal(st_spans_append(f->s, bad, 2, &bi), ST_E_SPAN_INVALID);
    assert_int_equal(bi, 1);
    append_ok(f, sp + 2, 2);
    /* Not visible before the commit: readers see neither head copies nor log records. */
    st_stats_t st;
    st_store_stats(f->s, &st);
    assert_int_equal(st.head_spans, 0);
    assert_int_equal(st.spans_total, 0);
    expect_trace_count(f, 1, 0);
    assert_int_equal(st_spans_group_commit(f->s), 0);
    st_store_stats(f->s, &st);
    assert_int_equal(st.head_spans, 4);
    assert_int_equal(st.spans_total, 4);
    check_rich(f);
    /* The refused append wrote nothing, not even its operation. */
    expect_trace_count(f, 7, 0);
    st_operation_list_t *ops = NULL;
    assert_int_equal(st_operations(f->s, WF_STR_LIT("svc"), -1, &ops), 0);
    assert_int_equal(ops->n, 0);
    st_operation_list_free(ops);
    /* Appends after the group commit by themselves again. */
    bad[1].end_ns = bad[1].start_ns + 1;
    append_ok(f, bad, 2);
    expect_trace_count(f, 7, 2);
}

static void test_group_abort(void **state)
{
    fx_t *f = *state;
    st_span_t sp[4];
    rich_set(sp);
    assert_int_equal(st_spans_group_begin(f->s), 0);
    append_ok(f, sp, 4);
    st_spans_group_abort(f->s);
    st_stats_t st;
    st_store_stats(f->s, &st);
    assert_int_equal(st.head_spans, 0);
    assert_int_equal(st.spans_total, 0);
    expect_trace_count(f, 1, 0);
    st_strlist_t *svcs = NULL;
    assert_int_equal(st_services(f->s, &svcs), 0);
    assert_int_equal(st_strlist_len(svcs), 0);
    st_strlist_free(svcs);
    /* Nothing in the log either: a reopen replays nothing. */
    st_store_close(f->s);
    fx_open(f);
    expect_trace_count(f, 1, 0);
    append_ok(f, sp, 4);
    check_rich(f);
}

/* A child commits a group and dies without closing: the group's appends are in the log. */
static void test_group_crash(void **state)
{
    fx_t *f = *state;
    st_store_close(f->s);
    f->s = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fx_open(f);
        st_span_t sp[4];
        rich_set(sp);
        int rc = st_spans_group_begin(f->s);
        rc |= st_spans_append(f->s, sp, 1, NULL);
        rc |= st_spans_append(f->s, sp + 1, 3, NULL);
        rc |= st_spans_group_commit(f->s);
        /* a second group left open: never committed, so never durable */
        rc |= st_spans_group_begin(f->s);
        st_span_t more = simple(8, 1, 0, "svc", "op", ST_SPAN_KIND_SERVER, NOW_NS - SEC, 100);
        rc |= st_spans_append(f->s, &more, 1, NULL);
        _exit(rc == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    fx_open(f);
    st_stats_t st;
    st_store_stats(f->s, &st);
    assert_int_equal(st.head_spans, 4);
    check_rich(f);
    expect_trace_count(f, 8, 0);
}

/* Batches of 1000 spans, one trace each (trace 200 + b), the head sealed behind them. */
enum { SEAL_BATCH = 1000, SEAL_BATCHES = 10 };

static void seal_batch(st_span_t *sp, int b)
{
    for (size_t i = 0; i < SEAL_BATCH; i++) {
        sp[i] = simple(200 + (uint64_t)b, i + 1, i ? i : 0, "seal", "op", ST_SPAN_KIND_SERVER,
                       NOW_NS - 60 * SEC + (int64_t)b * SEC + (int64_t)i * 1000, 10);
    }
}

static void expect_seal_batches(fx_t *f, int n)
{
    for (int b = 0; b < n; b++) {
        expect_trace_count(f, 200 + (uint64_t)b, SEAL_BATCH);
    }
    expect_trace_count(f, 200 + (uint64_t)n, 0);
}

/*
 * The head is sealed on a thread of its own once it holds a block's worth of spans, while
 * appends go on: every span stays readable exactly once (head or block) at every step, in
 * groups as well, and after a flush and a reopen.
 */
static void test_seal_behind_appends(void **state)
{
    fx_t *f = *state;
    st_span_t *sp = wf_calloc(SEAL_BATCH, sizeof(*sp));
    for (int b = 0; b < SEAL_BATCHES; b++) {
        seal_batch(sp, b);
        if (b % 3 == 2) {
            assert_int_equal(st_spans_group_begin(f->s), 0);
            append_ok(f, sp, SEAL_BATCH);
            assert_int_equal(st_spans_group_commit(f->s), 0);
        } else {
            append_ok(f, sp, SEAL_BATCH);
        }
        expect_seal_batches(f, b + 1);
    }
    st_stats_t st;
    st_store_stats(f->s, &st);
    assert_int_equal(st.spans_total, SEAL_BATCH * SEAL_BATCHES);
    /* How much is sealed by now depends on the seal thread's progress: only the flush is exact. */
    assert_int_equal(st_store_flush(f->s), 0);
    st_store_stats(f->s, &st);
    assert_int_equal(st.head_spans, 0);
    expect_seal_batches(f, SEAL_BATCHES);
    st_store_close(f->s);
    fx_open(f);
    expect_seal_batches(f, SEAL_BATCHES);
    wf_free(sp);
}

/* A writer killed while seals run: the log and the blocks hold every span exactly once. */
static void test_seal_crash(void **state)
{
    fx_t *f = *state;
    st_store_close(f->s);
    f->s = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fx_open(f);
        st_span_t *sp = wf_calloc(SEAL_BATCH, sizeof(*sp));
        int rc = 0;
        for (int b = 0; b < SEAL_BATCHES; b++) {
            seal_batch(sp, b);
            rc |= st_spans_append(f->s, sp, SEAL_BATCH, NULL);
        }
        _exit(rc == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    fx_open(f);
    expect_seal_batches(f, SEAL_BATCHES);
    assert_int_equal(st_store_flush(f->s), 0);
    expect_seal_batches(f, SEAL_BATCHES);
    st_store_close(f->s);
    fx_open(f);
    expect_seal_batches(f, SEAL_BATCHES);
}

/*
 * The block encoder reuses the previous span's attribute at the same position when the bytes
 * match: values equal in bytes but not in type (string "5", bytes "5", int 5), or a known value
 * under another key, must each still be searchable (their bloom items listed) and decode as
 * they were.
 */
static void test_block_attr_reuse(void **state)
{
    fx_t *f = *state;
    static const st_attr_t a1[] = {{{"k", 1}, {.type = ST_VAL_STRING, .u.s = {"5", 1}}},
                                   {{"m", 1}, {.type = ST_VAL_STRING, .u.s = {"x", 1}}}};
    static const st_attr_t a2[] = {{{"k", 1}, {.type = ST_VAL_BYTES, .u.s = {"5", 1}}},
                                   {{"m", 1}, {.type = ST_VAL_STRING, .u.s = {"x", 1}}}};
    static const st_attr_t a3[] = {{{"k", 1}, {.type = ST_VAL_INT, .u.i = 5}},
                                   {{"m", 1}, {.type = ST_VAL_STRING, .u.s = {"y", 1}}}};
    static const st_attr_t a4[] = {{{"j", 1}, {.type = ST_VAL_INT, .u.i = 5}},
                                   {{"m", 1}, {.type = ST_VAL_STRING, .u.s = {"y", 1}}}};
    static const st_attr_t a5[] = {{{"k", 1}, {.type = ST_VAL_STRING, .u.s = {"5", 1}}}};
    const st_attr_t *lists[] = {a1, a2, a3, a4, a5};
    size_t lens[] = {2, 2, 2, 2, 1};
    st_span_t sp[5];
    for (size_t i = 0; i < 5; i++) {
        sp[i] = simple(i + 1, i + 1, 0, "reuse", "op", ST_SPAN_KIND_SERVER,
                       NOW_NS - 50 * SEC + (int64_t)i * SEC, 100);
        sp[i].attrs = lists[i];
        sp[i].n_attrs = lens[i];
    }
    append_ok(f, sp, 5);
    assert_int_equal(st_store_flush(f->s), 0);
    for (size_t i = 0; i < 5; i++) {
        st_span_list_t *l = NULL;
        assert_int_equal(st_trace_get(f->s, sp[i].trace_id, &l), 0);
        assert_int_equal(l->n, 1);
        assert_span(&l->spans[0], &sp[i]);
        st_span_list_free(l);
    }
    st_tag_filter_t tag;
    st_trace_query_t q = any();
    q.tags = &tag;
    q.n_tags = 1;
    tag = (st_tag_filter_t){WF_STR_LIT("k"), WF_STR_LIT("5")};
    EXPECT(q, 5, 3, 1);
    tag.value = WF_STR_LIT("NQ=="); /* bytes are matched as base64 */
    EXPECT(q, 2);
    tag = (st_tag_filter_t){WF_STR_LIT("j"), WF_STR_LIT("5")};
    EXPECT(q, 4);
    tag = (st_tag_filter_t){WF_STR_LIT("m"), WF_STR_LIT("y")};
    EXPECT(q, 4, 3);
    tag = (st_tag_filter_t){WF_STR_LIT("m"), WF_STR_LIT("x")};
    EXPECT(q, 2, 1);
}

static void test_concurrent_readers(void **state)
{
    fx_t *f = *state;
    conc_t c = {.f = f};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &c), 0);
    }
    st_span_t sp[CONC_SPANS * 10];
    for (int i = 1; i <= CONC_TRACES; i += 10) {
        size_t n = 0;
        for (int k = i; k < i + 10; k++) {
            for (int j = 0; j < CONC_SPANS; j++) {
                sp[n++] = simple((uint64_t)k, (uint64_t)k * 10 + j + 1,
                                 j ? (uint64_t)k * 10 + 1 : 0, "conc", "op", ST_SPAN_KIND_SERVER,
                                 NOW_NS - 3600 * SEC + k * 1000000LL + j, 100);
            }
        }
        append_ok(f, sp, n);
        c.published = i + 9;
        if (i % 200 == 1) {
            assert_int_equal(st_store_flush(f->s), 0);
        }
    }
    c.done = 1;
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }
    assert_int_equal(c.failures, 0);
    assert_true(c.checks > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_bytes_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_id_64bit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_across_head_and_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_order_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_services_operations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dependencies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_readers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_behind_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_block_attr_reuse, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
