/*
 * test_st_span_codec.c - the span byte formats alone (st_span_codec.h): log record and block
 * round trips, the block's dictionary, time scaling and parent back-references, the value text
 * tag filters compare against, validation limits, and decoders refusing damaged input.
 */
#include "st_internal.h"
#include "st_span_codec.h"

#include "wf_alloc.h"
#include "wf_err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static st_span_t mk(uint8_t trace, uint8_t span, uint8_t parent, int64_t start, int64_t dur)
{
    st_span_t sp;
    memset(&sp, 0, sizeof(sp));
    sp.trace_id[15] = trace;
    sp.trace_id[0] = trace == 9 ? 0 : 0x80; /* trace 9 is a 64-bit id */
    sp.span_id[7] = span;
    sp.parent_span_id[7] = parent;
    sp.service = WF_STR_LIT("svc");
    sp.name = WF_STR_LIT("op");
    sp.kind = ST_SPAN_KIND_CLIENT;
    sp.start_ns = start;
    sp.end_ns = start + dur;
    return sp;
}

static const st_attr_t attrs[] = {
    {{"s", 1}, {.type = ST_VAL_STRING, .u.s = {"value", 5}}},
    {{"i", 1}, {.type = ST_VAL_INT, .u.i = -42}},
    {{"d", 1}, {.type = ST_VAL_DOUBLE, .u.d = 2.5}},
    {{"b", 1}, {.type = ST_VAL_BOOL, .u.b = true}},
    {{"x", 1}, {.type = ST_VAL_BYTES, .u.s = {"\x01\x02", 2}}},
};

static void assert_same(const st_span_t *a, const st_span_t *b)
{
    assert_memory_equal(a->trace_id, b->trace_id, 16);
    assert_memory_equal(a->span_id, b->span_id, 8);
    assert_memory_equal(a->parent_span_id, b->parent_span_id, 8);
    assert_true(a->start_ns == b->start_ns && a->end_ns == b->end_ns);
    assert_int_equal(a->kind, b->kind);
    assert_true(wf_str_eq(a->name, b->name) && wf_str_eq(a->service, b->service));
    assert_int_equal(a->n_attrs, b->n_attrs);
    for (size_t i = 0; i < a->n_attrs; i++) {
        assert_true(wf_str_eq(a->attrs[i].key, b->attrs[i].key));
        assert_int_equal(a->attrs[i].value.type, b->attrs[i].value.type);
    }
}

static void test_log_roundtrip(void **state)
{
    st_span_t sp[3] = {mk(1, 1, 0, 1000, 5), mk(1, 2, 1, 2000, 7), mk(9, 3, 0, 123456789, 1)};
    sp[1].attrs = attrs;
    sp[1].n_attrs = 5;
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    wf_buf_t buf = WF_BUF_INIT;
    assert_int_equal(st__span_log_encode(&buf, sp, 3, ST_MAX_BATCH_BYTES, cctx), 0);
    wf_arena_t a;
    wf_arena_init(&a, 4096, 0);
    st_span_t *out = NULL;
    size_t n = 0;
    assert_int_equal(st__span_log_decode(buf.data, buf.len, &a, &out, &n), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_same(&out[i], &sp[i]);
    }
    assert_true(out[1].attrs[1].value.u.i == -42);
    /* Every truncation and a flipped version byte are refused, never crash. */
    for (size_t len = 0; len < buf.len; len++) {
        assert_int_equal(st__span_log_decode(buf.data, len, &a, &out, &n), WF_E_CORRUPT);
    }
    buf.data[0] ^= 0x40;
    assert_int_equal(st__span_log_decode(buf.data, buf.len, &a, &out, &n), WF_E_CORRUPT);
    wf_arena_free(&a);
    wf_buf_free(&buf);
    ZSTD_freeCCtx(cctx);
}

static void test_block_roundtrip(void **state)
{
    /* Microsecond times (scaled by 1000 in the block), two traces, an unknown parent. */
    st_span_t sp[4] = {mk(2, 5, 4, 5000000, 2000), mk(1, 1, 0, 1000000, 9000000),
                       mk(1, 2, 1, 1000000, 3000), mk(9, 3, 77, 7000000, 1000)};
    sp[0].attrs = attrs;
    sp[0].n_attrs = 5;
    const st_span_t *ptrs[4] = {&sp[0], &sp[1], &sp[2], &sp[3]};
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    wf_buf_t buf = WF_BUF_INIT;
    st__block_info_t info;
    st__span_block_encode(ptrs, 4, cctx, 3, &buf, &info);
    assert_int_equal(info.n_spans, 4);
    assert_int_equal(info.n_traces, 3);
    assert_true(info.min_start == 1000000 && info.max_start == 7000000);
    assert_true(info.min_dur == 1000 && info.max_dur == 9000000);
    /* bloom items: service, service+operation, and the five attributes of span 0 */
    assert_int_equal(info.n_items, 7);
    wf_buf_t tmp = WF_BUF_INIT;
    uint64_t want[] = {st__span_item_service(WF_STR_LIT("svc"), &tmp),
                       st__span_item_tag(WF_STR_LIT("i"), WF_STR_LIT("-42"), &tmp),
                       st__span_item_tag(WF_STR_LIT("x"), WF_STR_LIT("AQI="), &tmp)};
    for (size_t w = 0; w < 3; w++) {
        bool found = false;
        for (size_t i = 0; i < info.n_items; i++) {
            found |= info.items[i] == want[w];
        }
        assert_true(found);
    }
    wf_buf_free(&tmp);
    wf_free(info.items);
    wf_arena_t a;
    wf_arena_init(&a, 4096, 0);
    st__span_block_t b;
    assert_int_equal(st__span_block_open(&b, buf.data, buf.len, &a), 0);
    assert_int_equal(b.scale, 1000); /* every start and end is a whole microsecond */
    assert_int_equal(b.n_traces, 3);
    for (int i = 0; i < 4; i++) {
        long ti = st__span_block_find(&b, sp[i].trace_id);
        assert_true(ti >= 0);
        st_span_t out[2];
        assert_int_equal(st__span_block_decode_trace(&b, (size_t)ti, &a, out), 0);
        bool found = false;
        for (size_t k = 0; k < b.traces[ti].n_spans; k++) {
            if (memcmp(out[k].span_id, sp[i].span_id, 8) == 0) {
                assert_same(&out[k], &sp[i]);
                found = true;
            }
        }
        assert_true(found);
    }
    uint8_t missing[16] = {1};
    assert_int_equal(st__span_block_find(&b, missing), -1);
    for (size_t len = 0; len < buf.len; len++) {
        assert_int_equal(st__span_block_open(&b, buf.data, len, &a), WF_E_CORRUPT);
    }
    wf_free(info.trace_ids);
    wf_arena_free(&a);
    wf_buf_free(&buf);
    ZSTD_freeCCtx(cctx);
}

static void expect_text(const st_value_t *v, const char *want)
{
    wf_buf_t b = WF_BUF_INIT;
    st__span_value_text(&b, v);
    assert_string_equal(wf_buf_cstr(&b), want);
    wf_buf_free(&b);
}

static void test_value_text(void **state)
{
    expect_text(&(st_value_t){.type = ST_VAL_STRING, .u.s = {"a b", 3}}, "a b");
    expect_text(&(st_value_t){.type = ST_VAL_BOOL, .u.b = false}, "false");
    expect_text(&(st_value_t){.type = ST_VAL_INT, .u.i = -9000000000LL}, "-9000000000");
    expect_text(&(st_value_t){.type = ST_VAL_DOUBLE, .u.d = 0.1}, "0.1");
    expect_text(&(st_value_t){.type = ST_VAL_DOUBLE, .u.d = 1.0 / 3.0}, "0.3333333333333333");
    expect_text(&(st_value_t){.type = ST_VAL_DOUBLE, .u.d = 1e21}, "1e+21");
    expect_text(&(st_value_t){.type = ST_VAL_DOUBLE, .u.d = 3}, "3");
    expect_text(&(st_value_t){.type = ST_VAL_BYTES, .u.s = {"\x00\xff\x10", 3}}, "AP8Q");
    expect_text(&(st_value_t){.type = ST_VAL_BYTES, .u.s = {"ab", 2}}, "YWI=");
    const st_value_t items[] = {{.type = ST_VAL_STRING, .u.s = {"q\"", 2}},
                                {.type = ST_VAL_INT, .u.i = 1},
                                {.type = ST_VAL_BOOL, .u.b = true}};
    expect_text(&(st_value_t){.type = ST_VAL_ARRAY, .u.arr = {items, 3}}, "[\"q\\\"\",1,true]");
}

static void test_check(void **state)
{
    st_span_t sp = mk(1, 1, 0, 10, 0);
    assert_int_equal(st__span_check(&sp), 0);
    sp.status_code = (st_status_code_t)3;
    assert_int_equal(st__span_check(&sp), ST_E_SPAN_INVALID);
    sp = mk(1, 1, 0, 10, 0);
    st_span_link_t link;
    memset(&link, 0, sizeof(link));
    sp.links = &link;
    sp.n_links = 1;
    assert_int_equal(st__span_check(&sp), ST_E_SPAN_INVALID); /* zero ids in a link */
    link.trace_id[0] = 1;
    link.span_id[0] = 1;
    assert_int_equal(st__span_check(&sp), 0);
    link.trace_state = (wf_str_t){"\xed\xa0\x80", 3}; /* a surrogate */
    assert_int_equal(st__span_check(&sp), ST_E_SPAN_INVALID);
    assert_true(wf_str_eq_c(st__span_service(&sp), "svc"));
    sp.service = WF_STR_LIT("");
    assert_true(wf_str_eq_c(st__span_service(&sp), "unknown_service"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_roundtrip),
        cmocka_unit_test(test_block_roundtrip),
        cmocka_unit_test(test_value_text),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
