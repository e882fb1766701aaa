/*
 * test_col_trace_adjust.c - Jaeger's trace adjusters on hand-made span lists: shared client /
 * server ids, sorting of attributes and events, removal of identical spans, numeric IPs and
 * links without a trace id.
 */
#include "col_trace_adjust.h"
#include "wf_alloc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static const uint8_t TRACE[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static void span(st_span_t *sp, uint8_t id, uint8_t parent, st_span_kind_t kind)
{
    memset(sp, 0, sizeof(*sp));
    memcpy(sp->trace_id, TRACE, 16);
    sp->span_id[7] = id;
    sp->parent_span_id[7] = parent;
    sp->kind = kind;
    sp->name = WF_STR_LIT("op");
    sp->service = WF_STR_LIT("svc");
    sp->start_ns = 1000 + id;
    sp->end_ns = 2000;
}

static st_span_list_t list(st_span_t *spans, size_t n)
{
    st_span_list_t l;
    memset(&l, 0, sizeof(l));
    wf_arena_init(&l.arena, 4096, 0);
    l.spans = spans;
    l.n = n;
    return l;
}

static void test_shared_ids(void **state)
{
    (void)state;
    st_span_t sp[5];
    span(&sp[0], 0x01, 0, ST_SPAN_KIND_SERVER);    /* uses the first id a fresh one would take */
    span(&sp[1], 0x20, 0x01, ST_SPAN_KIND_CLIENT); /* shared with the server span below */
    span(&sp[2], 0x20, 0x01, ST_SPAN_KIND_SERVER);
    span(&sp[3], 0x21, 0x20, ST_SPAN_KIND_INTERNAL); /* child of the server side */
    span(&sp[4], 0x30, 0x01, ST_SPAN_KIND_SERVER);   /* server span, id not shared */
    st_span_list_t l = list(sp, 5);
    col_trace_adjust(&l);
    assert_int_equal(l.n, 5);
    assert_int_equal(sp[1].span_id[7], 0x20); /* the client keeps its id */
    assert_int_equal(sp[2].span_id[7], 0x02); /* next unused id after 0 */
    assert_int_equal(sp[2].parent_span_id[7], 0x20);
    assert_int_equal(sp[3].parent_span_id[7], 0x02);
    assert_int_equal(sp[4].span_id[7], 0x30);
    assert_int_equal(sp[4].parent_span_id[7], 0x01);
    wf_arena_free(&l.arena);
}

static void test_sort_dedupe_ip_links(void **state)
{
    (void)state;
    const st_attr_t attrs[] = {
        {WF_STR_LIT("z"), {.type = ST_VAL_INT, .u.i = 1}},
        {WF_STR_LIT("ip"), {.type = ST_VAL_INT, .u.i = 0x0a000102}},
        {WF_STR_LIT("a"), {.type = ST_VAL_STRING, .u.s = WF_STR_LIT("x")}},
    };
    const st_attr_t attrs_other_order[] = {attrs[2], attrs[0], attrs[1]};
    const st_span_event_t events[] = {
        {5, WF_STR_LIT("zeta"), NULL, 0},
        {6, WF_STR_LIT("alpha"), NULL, 0},
    };
    st_span_link_t links[2];
    memset(links, 0, sizeof(links));
    links[1].trace_id[0] = 7;
    links[1].span_id[7] = 9;
    st_span_t sp[3];
    span(&sp[0], 1, 0, ST_SPAN_KIND_INTERNAL);
    sp[0].attrs = attrs;
    sp[0].n_attrs = 3;
    sp[0].events = events;
    sp[0].n_events = 2;
    sp[0].links = links;
    sp[0].n_links = 2;
    sp[1] = sp[0];
    sp[1].attrs = attrs_other_order; /* identical once sorted */
    sp[2] = sp[0];
    sp[2].end_ns = 3000; /* differs */
    st_span_list_t l = list(sp, 3);
    col_trace_adjust(&l);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.spans[1].end_ns, 3000);
    const st_span_t *s = &l.spans[0];
    assert_int_equal(s->n_attrs, 3);
    assert_true(wf_str_eq_c(s->attrs[0].key, "a"));
    assert_true(wf_str_eq_c(s->attrs[1].key, "ip"));
    assert_int_equal(s->attrs[1].value.type, ST_VAL_STRING);
    assert_true(wf_str_eq_c(s->attrs[1].value.u.s, "10.0.1.2"));
    assert_true(wf_str_eq_c(s->attrs[2].key, "z"));
    assert_true(wf_str_eq_c(s->events[0].name, "alpha"));
    assert_true(wf_str_eq_c(s->events[1].name, "zeta"));
    assert_int_equal(s->n_links, 1);
    assert_int_equal(s->links[0].span_id[7], 9);
    /* the caller's arrays are not touched */
    assert_true(wf_str_eq_c(attrs[0].key, "z"));
    assert_true(attrs[1].value.type == ST_VAL_INT);
    wf_arena_free(&l.arena);
}

static void test_library_attrs(void **state)
{
    (void)state;
    const st_attr_t res[] = {
        {WF_STR_LIT("service.name"), {.type = ST_VAL_STRING, .u.s = WF_STR_LIT("svc")}},
        {WF_STR_LIT("telemetry.sdk.name"), {.type = ST_VAL_STRING, .u.s = WF_STR_LIT("otel")}},
    };
    const st_attr_t attrs[] = {
        {WF_STR_LIT("a"), {.type = ST_VAL_INT, .u.i = 1}},
        {WF_STR_LIT("telemetry.sdk.language"), {.type = ST_VAL_STRING, .u.s = WF_STR_LIT("c")}},
        {WF_STR_LIT("telemetry.sdk.name"), {.type = ST_VAL_STRING, .u.s = WF_STR_LIT("otel")}},
        {WF_STR_LIT("telemetry.sdk.version"), {.type = ST_VAL_STRING, .u.s = WF_STR_LIT("1")}},
    };
    st_attr_t conflicting[] = {attrs[0], attrs[2]};
    conflicting[1].value.u.s = WF_STR_LIT("other");
    st_span_t sp[2];
    span(&sp[0], 1, 0, ST_SPAN_KIND_INTERNAL);
    sp[0].resource_attrs = res;
    sp[0].n_resource_attrs = 2;
    sp[0].attrs = attrs;
    sp[0].n_attrs = 4;
    span(&sp[1], 2, 1, ST_SPAN_KIND_INTERNAL);
    sp[1].resource_attrs = res;
    sp[1].n_resource_attrs = 2;
    sp[1].attrs = conflicting;
    sp[1].n_attrs = 2;
    st_span_list_t l = list(sp, 2);
    col_trace_adjust(&l);
    /* moved: language and version; the same name is only dropped from the span */
    assert_int_equal(sp[0].n_attrs, 1);
    assert_true(wf_str_eq_c(sp[0].attrs[0].key, "a"));
    assert_int_equal(sp[0].n_resource_attrs, 4);
    assert_true(wf_str_eq_c(sp[0].resource_attrs[2].key, "telemetry.sdk.language"));
    assert_true(wf_str_eq_c(sp[0].resource_attrs[3].key, "telemetry.sdk.version"));
    /* a conflicting value stays on the span */
    assert_int_equal(sp[1].n_attrs, 2);
    assert_int_equal(sp[1].n_resource_attrs, 2);
    wf_arena_free(&l.arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_ids),
        cmocka_unit_test(test_sort_dedupe_ip_links),
        cmocka_unit_test(test_library_attrs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
