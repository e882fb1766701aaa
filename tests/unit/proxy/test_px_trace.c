/*
 * test_px_trace.c - trace propagation and spans (px_trace.h, px_otlp.h): traceparent and
 * tracestate by the W3C rules, B3 single and multi, extraction precedence, the sampling
 * decision, injection of both formats, x-request-id, span records, the span queue (also with
 * a producer and a consumer thread), and an OTLP batch decoded back by the collector's own
 * decoder (col_otlp_traces_decode) field by field.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "col_otlp_traces.h"
#include "px_otlp.h"
#include "px_trace.h"
#include "wf_alloc.h"
#include "wf_err.h"

static wf_str_t S(const char *s)
{
    return wf_str(s);
}

static int tp(const char *s, px_traceparent_t *out)
{
    return px_traceparent_parse(s, strlen(s), out);
}

static void hex(char *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sprintf(out + 2 * i, "%02x", p[i]);
    }
}

static void test_traceparent(void **state)
{
    px_traceparent_t t;
    char h[33];
    assert_int_equal(tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &t), 0);
    assert_int_equal(t.version, 0);
    hex(h, t.trace_id, 16);
    assert_string_equal(h, "4bf92f3577b34da6a3ce929d0e0e4736");
    hex(h, t.parent_id, 8);
    assert_string_equal(h, "00f067aa0ba902b7");
    assert_int_equal(t.flags, 1);
    assert_int_equal(tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &t), 0);
    assert_int_equal(t.flags, 0);
    /* Unknown flag bits are parsed (and not propagated: format writes only `sampled`). */
    assert_int_equal(tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", &t), 0);
    assert_int_equal(t.flags, 9);

    static const char *const bad[] = {
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  /* uppercase */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  /* zero parent id */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* version ff */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* 00 has no more fields */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",   /* short */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",  /* flags not hex */
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* version not hex */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", /* later: '-' after */
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(tp(bad[i], &t), WF_E_INVAL);
    }
    /* A later version: parsed by the 00 layout, extra fields ignored. */
    assert_int_equal(tp("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever", &t),
                     0);
    assert_int_equal(t.version, 0xcc);
    assert_int_equal(t.flags, 1);
    assert_int_equal(tp("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &t), 0);

    char out[PX_TRACEPARENT_LEN + 1];
    assert_int_equal(tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &t), 0);
    px_traceparent_format(t.trace_id, t.parent_id, false, out);
    assert_string_equal(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    px_traceparent_format(t.trace_id, t.parent_id, true, out);
    assert_string_equal(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
}

static int ts(const char *in, char out[PX_TRACESTATE_MAX + 1])
{
    size_t n;
    int rc = px_tracestate_normalize(in, strlen(in), out, &n);
    assert_int_equal(n, strlen(out));
    return rc;
}

static void test_tracestate(void **state)
{
    char out[PX_TRACESTATE_MAX + 1];
    assert_int_equal(ts("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", out), 0);
    assert_string_equal(out, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    assert_int_equal(ts(" a=1 ,, \tb=x y ,", out), 0);
    assert_string_equal(out, "a=1,b=x y");
    assert_int_equal(ts("fw529a3039@dt=abc,0tenant@sys-1_*/=v", out), 0);
    assert_string_equal(out, "fw529a3039@dt=abc,0tenant@sys-1_*/=v");
    assert_int_equal(ts("", out), 0);
    assert_string_equal(out, "");

    static const char *const bad[] = {
        "a=1,a=2",             /* duplicate key */
        "A=1",                 /* uppercase key */
        "1a=1",                /* simple key starts with a letter */
        "a=",                  /* empty value */
        "a=b=c",               /* '=' in value */
        "a=x ",                /* trailing blank is trimmed... */
        "nokey",               /* no '=' */
        "t@=v",                /* empty system id */
        "t@sysidtoolong123=v", /* system id over 14 */
        "a=\x01",              /* control character */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = ts(bad[i], out);
        if (i == 5) {
            /* ... so "a=x " is valid: OWS around a member is allowed. */
            assert_int_equal(rc, 0);
            assert_string_equal(out, "a=x");
            continue;
        }
        assert_int_equal(rc, WF_E_INVAL);
        assert_string_equal(out, "");
    }

    /* 33 members is one too many. */
    char many[1024] = "";
    for (int i = 0; i < 33; i++) {
        char m[16];
        snprintf(m, sizeof(m), "%sk%d=v", i ? "," : "", i);
        strcat(many, m);
    }
    assert_int_equal(ts(many, out), WF_E_INVAL);
    *strrchr(many, ',') = '\0';
    assert_int_equal(ts(many, out), 0);
    assert_string_equal(out, many);

    /* Over 512: the member over 128 characters goes first, then members from the end. */
    char big[2048];
    char v200[201];
    memset(v200, 'x', 200);
    v200[200] = '\0';
    snprintf(big, sizeof(big), "a=1,big=%s,", v200);
    for (int i = 0; i < 20; i++) {
        char m[32];
        snprintf(m, sizeof(m), "%sk%02d=%020d", i ? "," : "", i, i); /* 24 chars each */
        strcat(big, m);
    }
    /* 3 + 1 + 204 + 1 + 20 * 24 + 19 = 708 > 512. Without big: 3 + 1 + 499 = 503. */
    assert_int_equal(ts(big, out), 0);
    assert_null(strstr(out, "big="));
    assert_int_equal(strlen(out), 503);
    assert_true(strncmp(out, "a=1,k00=", 8) == 0);
    /* Still too long without big members: drop from the end. */
    char lots[2048] = "";
    for (int i = 0; i < 30; i++) {
        char m[32];
        snprintf(m, sizeof(m), "%sk%02d=%020d", i ? "," : "", i, i);
        strcat(lots, m);
    }
    assert_int_equal(ts(lots, out), 0);
    assert_int_equal(strlen(out), 20 * 24 + 19); /* 21 members would be 524 */
    assert_non_null(strstr(out, ",k19="));
    assert_null(strstr(out, ",k20="));
}

static void test_b3_single(void **state)
{
    px_trace_in_t in;
    char h[33];
    const char *v = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90";
    assert_int_equal(px_b3_single_parse(v, strlen(v), &in), 0);
    assert_int_equal(in.source, PX_TRACE_SRC_B3_SINGLE);
    assert_true(in.has_ids);
    assert_false(in.trace_id_64);
    hex(h, in.trace_id, 16);
    assert_string_equal(h, "80f198ee56343ba864fe8b2a57d3eff7");
    hex(h, in.parent_id, 8);
    assert_string_equal(h, "e457b5a2e4d86bd1");
    assert_int_equal(in.sampling, PX_SAMPLE_ACCEPT);

    v = "64FE8B2A57D3EFF7-E457B5A2E4D86BD1-d";
    assert_int_equal(px_b3_single_parse(v, strlen(v), &in), 0);
    assert_true(in.trace_id_64);
    hex(h, in.trace_id, 16);
    assert_string_equal(h, "000000000000000064fe8b2a57d3eff7");
    assert_int_equal(in.sampling, PX_SAMPLE_DEBUG);

    v = "64fe8b2a57d3eff7-e457b5a2e4d86bd1";
    assert_int_equal(px_b3_single_parse(v, strlen(v), &in), 0);
    assert_int_equal(in.sampling, PX_SAMPLE_DEFER);

    assert_int_equal(px_b3_single_parse("0", 1, &in), 0);
    assert_false(in.has_ids);
    assert_int_equal(in.sampling, PX_SAMPLE_DROP);
    assert_int_equal(px_b3_single_parse("1", 1, &in), 0);
    assert_int_equal(in.sampling, PX_SAMPLE_ACCEPT);
    assert_int_equal(px_b3_single_parse("d", 1, &in), 0);
    assert_int_equal(in.sampling, PX_SAMPLE_DEBUG);

    static const char *const bad[] = {
        "2",
        "",
        "x",
        "80f198ee56343ba864fe8b2a57d3eff7",
        "80f198ee56343ba864fe8b2a57d3eff7-",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-2",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b9",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b900",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-0000000000000000",
        "80f198ee56343ba864fe8b2a57d3eff7-0000000000000000-1",
        "00000000000000000000000000000000-e457b5a2e4d86bd1-1",
        "80f198ee56343ba864fe8b2a57d3ef-e457b5a2e4d86bd1-1",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1x1",
        "g0f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&in, 0x55, sizeof(in));
        in.source = PX_TRACE_SRC_NONE;
        assert_int_equal(px_b3_single_parse(bad[i], strlen(bad[i]), &in), WF_E_INVAL);
        assert_int_equal(in.source, PX_TRACE_SRC_NONE); /* untouched */
    }
}

#define H(n, v)                                                                                    \
    {                                                                                              \
        {n, sizeof(n) - 1},                                                                        \
        {                                                                                          \
            v, sizeof(v) - 1                                                                       \
        }                                                                                          \
    }

static void test_extract(void **state)
{
    px_trace_in_t in;
    char h[33];
    /* All three formats: traceparent wins, tracestate lines are joined. */
    px_http1_header_t all[] = {
        H("Host", "reviews:9080"),
        H("X-B3-TraceId", "463ac35c9f6413ad48485a3953bb6124"),
        H("X-B3-SpanId", "a2fb4a1d1a96d312"),
        H("X-B3-Sampled", "1"),
        H("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
        H("TraceParent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
        H("tracestate", "rojo=1"),
        H("TRACESTATE", "congo=2 , "),
    };
    px_trace_extract(all, 8, &in);
    assert_int_equal(in.source, PX_TRACE_SRC_TRACEPARENT);
    hex(h, in.trace_id, 16);
    assert_string_equal(h, "4bf92f3577b34da6a3ce929d0e0e4736");
    hex(h, in.parent_id, 8);
    assert_string_equal(h, "00f067aa0ba902b7");
    assert_int_equal(in.sampling, PX_SAMPLE_DROP);
    assert_string_equal(in.tracestate, "rojo=1,congo=2");
    assert_int_equal(in.tracestate_len, 14);

    /* An invalid traceparent falls through to b3; tracestate goes with traceparent only. */
    all[5] = (px_http1_header_t)H("traceparent", "00-zz");
    px_trace_extract(all, 8, &in);
    assert_int_equal(in.source, PX_TRACE_SRC_B3_SINGLE);
    hex(h, in.trace_id, 16);
    assert_string_equal(h, "80f198ee56343ba864fe8b2a57d3eff7");
    assert_int_equal(in.sampling, PX_SAMPLE_ACCEPT);
    assert_int_equal(in.tracestate_len, 0);

    /* Then the multi headers. */
    all[4] = (px_http1_header_t)H("b3", "garbage");
    px_trace_extract(all, 8, &in);
    assert_int_equal(in.source, PX_TRACE_SRC_B3_MULTI);
    hex(h, in.trace_id, 16);
    assert_string_equal(h, "463ac35c9f6413ad48485a3953bb6124");
    hex(h, in.parent_id, 8);
    assert_string_equal(h, "a2fb4a1d1a96d312");
    assert_int_equal(in.sampling, PX_SAMPLE_ACCEPT);

    px_http1_header_t multi[] = {
        H("x-b3-traceid", "48485a3953bb6124"),
        H("x-b3-spanid", "a2fb4a1d1a96d312"),
        H("x-b3-parentspanid", "0020000000000001"),
        H("x-b3-sampled", "false"),
        H("x-b3-flags", "1"),
    };
    px_trace_extract(multi, 5, &in);
    assert_int_equal(in.source, PX_TRACE_SRC_B3_MULTI);
    assert_true(in.trace_id_64);
    assert_int_equal(in.sampling, PX_SAMPLE_DEBUG); /* debug overrides */
    px_trace_extract(multi, 4, &in);
    assert_int_equal(in.sampling, PX_SAMPLE_DROP);
    multi[3] = (px_http1_header_t)H("x-b3-sampled", "true");
    px_trace_extract(multi, 4, &in);
    assert_int_equal(in.sampling, PX_SAMPLE_ACCEPT);
    /* A bad parent span id makes the ids invalid; the decision still counts. */
    multi[2] = (px_http1_header_t)H("x-b3-parentspanid", "xyz");
    px_trace_extract(multi, 4, &in);
    assert_int_equal(in.source, PX_TRACE_SRC_NONE);
    assert_false(in.has_ids);
    assert_int_equal(in.sampling, PX_SAMPLE_ACCEPT);

    /* A decision alone. */
    px_http1_header_t only[] = {H("X-B3-Sampled", "0")};
    px_trace_extract(only, 1, &in);
    assert_int_equal(in.source, PX_TRACE_SRC_NONE);
    assert_int_equal(in.sampling, PX_SAMPLE_DROP);
    px_http1_header_t only1[] = {H("b3", "1")};
    px_trace_extract(only1, 1, &in);
    assert_int_equal(in.source, PX_TRACE_SRC_B3_SINGLE);
    assert_false(in.has_ids);
    assert_int_equal(in.sampling, PX_SAMPLE_ACCEPT);

    /* Nothing. The first occurrence of a repeated header counts. */
    px_trace_extract(NULL, 0, &in);
    assert_int_equal(in.source, PX_TRACE_SRC_NONE);
    assert_int_equal(in.sampling, PX_SAMPLE_DEFER);
    px_http1_header_t twice[] = {
        H("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        H("traceparent", "00-11111111111111111111111111111111-00f067aa0ba902b7-01"),
        H("tracestate", "INVALID"),
    };
    px_trace_extract(twice, 3, &in);
    hex(h, in.trace_id, 16);
    assert_string_equal(h, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_int_equal(in.tracestate_len, 0);

    assert_true(px_trace_is_header(S("X-B3-Flags")));
    assert_true(px_trace_is_header(S("TraceState")));
    assert_true(px_trace_is_header(S("b3")));
    assert_false(px_trace_is_header(S("x-request-id")));
    assert_false(px_trace_is_header(S("b")));
}

static const char *out_get(const px_trace_out_t *o, const char *name, char *buf)
{
    for (size_t i = 0; i < o->n; i++) {
        if (wf_str_eq_c(o->h[i].name, name)) {
            memcpy(buf, o->h[i].value.p, o->h[i].value.len);
            buf[o->h[i].value.len] = '\0';
            return buf;
        }
    }
    return NULL;
}

static void test_start_inject(void **state)
{
    px_rng_t rng;
    px_rng_seed(&rng, 7);
    px_trace_in_t in;
    px_trace_ctx_t ctx;
    px_trace_out_t out;
    char buf[600], h[33], sid[17];

    px_http1_header_t w3c[] = {
        H("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        H("tracestate", "rojo=00f067aa0ba902b7"),
    };
    px_trace_extract(w3c, 2, &in);
    px_trace_start(&in, 0.0, &rng, &ctx); /* upstream said sampled: 0 % does not matter */
    assert_true(ctx.sampled);
    hex(h, ctx.trace_id, 16);
    assert_string_equal(h, "4bf92f3577b34da6a3ce929d0e0e4736");
    hex(h, ctx.parent_id, 8);
    assert_string_equal(h, "00f067aa0ba902b7");
    hex(sid, ctx.span_id, 8);
    assert_string_not_equal(sid, "00f067aa0ba902b7");
    px_trace_inject(&ctx, &out);
    assert_int_equal(out.n, 6);
    char want[64];
    snprintf(want, sizeof(want), "00-4bf92f3577b34da6a3ce929d0e0e4736-%s-01", sid);
    assert_string_equal(out_get(&out, "traceparent", buf), want);
    assert_string_equal(out_get(&out, "tracestate", buf), "rojo=00f067aa0ba902b7");
    assert_string_equal(out_get(&out, "X-B3-TraceId", buf), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(out_get(&out, "X-B3-SpanId", buf), sid);
    assert_string_equal(out_get(&out, "X-B3-ParentSpanId", buf), "00f067aa0ba902b7");
    assert_string_equal(out_get(&out, "X-B3-Sampled", buf), "1");
    assert_null(out_get(&out, "b3", buf));
    assert_null(out_get(&out, "X-B3-Flags", buf));

    /* traceparent wins, but a b3 field beside it is still answered in kind (a proxy before us
     * sends both when its caller spoke b3). */
    px_http1_header_t both[] = {
        H("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"),
        H("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")};
    px_trace_extract(both, 2, &in);
    assert_int_equal(in.source, PX_TRACE_SRC_TRACEPARENT);
    assert_true(in.b3_field);
    px_trace_start(&in, 0.0, &rng, &ctx);
    assert_true(ctx.b3_single && ctx.sampled);
    px_trace_extract(both + 1, 1, &in);
    assert_false(in.b3_field);

    /* b3 single, 64-bit, debug: answered in kind. */
    px_http1_header_t b3[] = {H("b3", "64fe8b2a57d3eff7-e457b5a2e4d86bd1-d")};
    px_trace_extract(b3, 1, &in);
    px_trace_start(&in, 0.0, &rng, &ctx);
    assert_true(ctx.sampled && ctx.debug && ctx.trace_id_64 && ctx.b3_single);
    px_trace_inject(&ctx, &out);
    hex(sid, ctx.span_id, 8);
    assert_string_equal(out_get(&out, "X-B3-TraceId", buf), "64fe8b2a57d3eff7");
    assert_string_equal(out_get(&out, "X-B3-Flags", buf), "1");
    assert_null(out_get(&out, "X-B3-Sampled", buf));
    assert_null(out_get(&out, "tracestate", buf));
    snprintf(want, sizeof(want), "64fe8b2a57d3eff7-%s-d-e457b5a2e4d86bd1", sid);
    assert_string_equal(out_get(&out, "b3", buf), want);
    snprintf(want, sizeof(want), "00-000000000000000064fe8b2a57d3eff7-%s-01", sid);
    assert_string_equal(out_get(&out, "traceparent", buf), want);

    /* A new root trace, not sampled at 0 %: no parent, Sampled 0. */
    px_trace_extract(NULL, 0, &in);
    px_trace_start(&in, 0.0, &rng, &ctx);
    assert_false(ctx.sampled);
    uint8_t zero[8] = {0};
    assert_memory_equal(ctx.parent_id, zero, 8);
    px_trace_inject(&ctx, &out);
    assert_int_equal(out.n, 4);
    assert_null(out_get(&out, "X-B3-ParentSpanId", buf));
    assert_string_equal(out_get(&out, "X-B3-Sampled", buf), "0");
    assert_int_equal(strlen(out_get(&out, "traceparent", buf)), PX_TRACEPARENT_LEN);
    assert_true(strcmp(buf + 53, "00") == 0);

    /* b3 single without a parent and a bare decision. */
    px_http1_header_t b3d[] = {H("b3", "0")};
    px_trace_extract(b3d, 1, &in);
    px_trace_start(&in, 100.0, &rng, &ctx); /* upstream said no: 100 % does not matter */
    assert_false(ctx.sampled);
    px_trace_inject(&ctx, &out);
    hex(h, ctx.trace_id, 16);
    hex(sid, ctx.span_id, 8);
    snprintf(want, sizeof(want), "%s-%s-0", h, sid);
    assert_string_equal(out_get(&out, "b3", buf), want);

    /* The configured percentage, over deterministic draws. */
    int sampled = 0;
    px_trace_extract(NULL, 0, &in);
    for (int i = 0; i < 10000; i++) {
        px_trace_start(&in, 25.0, &rng, &ctx);
        sampled += ctx.sampled;
    }
    assert_in_range(sampled, 2300, 2700);
    px_trace_start(&in, 100.0, &rng, &ctx);
    assert_true(ctx.sampled);
    px_trace_start(&in, 250.0, &rng, &ctx);
    assert_true(ctx.sampled);
    px_trace_start(&in, -3, &rng, &ctx);
    assert_false(ctx.sampled);
}

static void test_request_id(void **state)
{
    px_rng_t rng;
    assert_int_equal(px_rng_init(&rng), 0);
    char a[37], b[37];
    px_request_id(&rng, a);
    px_request_id(&rng, b);
    assert_int_equal(strlen(a), 36);
    assert_string_not_equal(a, b);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            assert_int_equal(a[i], '-');
        } else {
            assert_non_null(strchr("0123456789abcdef", a[i]));
        }
    }
    assert_int_equal(a[14], '4');
    assert_non_null(strchr("89ab", a[19]));
    /* Seeded generators repeat; distinct seeds differ. */
    px_rng_t r1, r2;
    px_rng_seed(&r1, 1);
    px_rng_seed(&r2, 1);
    assert_true(px_rng_next(&r1) == px_rng_next(&r2));
    px_rng_seed(&r2, 2);
    assert_true(px_rng_next(&r1) != px_rng_next(&r2));
}

static px_span_t *make_span(const px_trace_ctx_t *ctx, px_span_kind_t kind, uint32_t status,
                            int64_t start)
{
    char name[128];
    px_span_name(name, sizeof(name), S("reviews.bookinfo.svc.cluster.local"), 9080, S(""));
    px_span_in_t in = {.ctx = ctx,
                       .kind = kind,
                       .name = S(name),
                       .start_ns = start,
                       .end_ns = start + 1500000,
                       .method = S("GET"),
                       .url = S("http://reviews:9080/reviews/0"),
                       .protocol = S("HTTP/1.1"),
                       .status = status,
                       .upstream_cluster = S("outbound|9080|v2|reviews.bookinfo.svc.cluster.local"),
                       .response_flags = S("-"),
                       .request_id = S("6f3b6ad2-6e6a-4a0f-9d3b-0c1f0a4c9b1e"),
                       .peer_address = S("10.0.0.7"),
                       .user_agent = S("curl/7.88.1"),
                       .request_size = 0,
                       .response_size = 295};
    return px_span_new(&in);
}

static void test_span_record(void **state)
{
    char name[64];
    assert_int_equal(
        px_span_name(name, sizeof(name), S("details.bookinfo.svc.cluster.local"), 9080, S("")),
        strlen("details.bookinfo.svc.cluster.local:9080/*"));
    assert_string_equal(name, "details.bookinfo.svc.cluster.local:9080/*");
    px_span_name(name, sizeof(name), S("productpage"), 9080, S("/productpage"));
    assert_string_equal(name, "productpage:9080/productpage");
    char tiny[8];
    assert_int_equal(px_span_name(tiny, sizeof(tiny), S("abcdefgh"), 1, S("")), 12);
    assert_string_equal(tiny, "abcdefg");

    px_rng_t rng;
    px_rng_seed(&rng, 3);
    px_trace_in_t in;
    px_trace_ctx_t ctx;
    px_trace_extract(NULL, 0, &in);
    px_trace_start(&in, 100, &rng, &ctx);
    px_span_t *s = make_span(&ctx, PX_SPAN_CLIENT, 200, 1000);
    assert_false(s->error);
    assert_int_equal(s->flags, 1);
    assert_true(wf_str_eq_c(s->name, "reviews.bookinfo.svc.cluster.local:9080/*"));
    assert_true(wf_str_eq_c(s->peer_address, "10.0.0.7"));
    assert_int_equal(s->end_ns - s->start_ns, 1500000);
    px_span_free(s);
    s = make_span(&ctx, PX_SPAN_SERVER, 503, 1000);
    assert_true(s->error);
    px_span_free(s);
    s = make_span(&ctx, PX_SPAN_SERVER, 0, 1000);
    assert_true(s->error);
    px_span_free(s);

    /* The URL is cut at 256 characters, like Envoy's http.url tag. */
    char url[1000];
    memset(url, 'u', sizeof(url) - 1);
    url[sizeof(url) - 1] = '\0';
    px_span_in_t si = {
        .ctx = &ctx, .kind = PX_SPAN_CLIENT, .url = S(url), .start_ns = 5, .end_ns = 2};
    s = px_span_new(&si);
    assert_int_equal(s->url.len, PX_SPAN_URL_MAX);
    assert_int_equal(s->url.p[PX_SPAN_URL_MAX], '\0');
    assert_int_equal(s->end_ns, 5); /* never before the start */
    assert_int_equal(s->method.len, 0);
    px_span_free(s);
}

static void test_queue(void **state)
{
    px_rng_t rng;
    px_rng_seed(&rng, 4);
    px_trace_in_t in;
    px_trace_ctx_t ctx;
    px_trace_extract(NULL, 0, &in);
    px_trace_start(&in, 100, &rng, &ctx);

    px_span_queue_t *q = px_span_queue_new(3); /* rounds up to 4 */
    for (int i = 0; i < 4; i++) {
        assert_true(px_span_queue_push(q, make_span(&ctx, PX_SPAN_CLIENT, 200, i)));
    }
    assert_false(px_span_queue_push(q, make_span(&ctx, PX_SPAN_CLIENT, 200, 99)));
    assert_int_equal(px_span_queue_dropped(q), 1);
    px_span_t *got[8];
    assert_int_equal(px_span_queue_pop(q, got, 3), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(got[i]->start_ns, i);
        px_span_free(got[i]);
    }
    assert_true(px_span_queue_push(q, make_span(&ctx, PX_SPAN_CLIENT, 200, 4)));
    /* Two left in the queue: freed with it (ASan checks). */
    px_span_queue_free(q);
    px_span_queue_free(NULL);
}

#define QN 200000

typedef struct {
    px_span_queue_t *q;
    const px_trace_ctx_t *ctx;
    uint64_t pushed_ok;
} prod_t;

static void *producer(void *arg)
{
    prod_t *p = arg;
    for (int i = 0; i < QN; i++) {
        px_span_in_t in = {.ctx = p->ctx, .kind = PX_SPAN_CLIENT, .start_ns = i, .end_ns = i};
        p->pushed_ok += px_span_queue_push(p->q, px_span_new(&in));
    }
    return NULL;
}

static void test_queue_threads(void **state)
{
    px_rng_t rng;
    px_rng_seed(&rng, 5);
    px_trace_in_t in;
    px_trace_ctx_t ctx;
    px_trace_extract(NULL, 0, &in);
    px_trace_start(&in, 100, &rng, &ctx);
    prod_t p = {px_span_queue_new(64), &ctx, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, producer, &p), 0);
    uint64_t popped = 0;
    int64_t last = -1;
    bool ordered = true, done = false;
    px_span_t *got[32];
    while (!done) {
        /* Read `dropped` before draining: once the producer is done, this drain is final. */
        done = popped + px_span_queue_dropped(p.q) >= QN;
        size_t n;
        while ((n = px_span_queue_pop(p.q, got, 32)) > 0) {
            for (size_t i = 0; i < n; i++) {
                ordered &= got[i]->start_ns > last;
                last = got[i]->start_ns;
                px_span_free(got[i]);
            }
            popped += n;
        }
    }
    pthread_join(t, NULL);
    assert_true(ordered);
    assert_int_equal(popped, p.pushed_ok);
    assert_int_equal(popped + px_span_queue_dropped(p.q), QN);
    px_span_queue_free(p.q);
}

static const st_attr_t *attr(const st_attr_t *a, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (wf_str_eq_c(a[i].key, key)) {
            return &a[i];
        }
    }
    return NULL;
}

static void assert_sattr(const st_attr_t *a, size_t n, const char *key, const char *want)
{
    const st_attr_t *x = attr(a, n, key);
    if (x == NULL) {
        fail_msg("attribute %s missing", key);
    }
    assert_int_equal(x->value.type, ST_VAL_STRING);
    if (!wf_str_eq_c(x->value.u.s, want)) {
        fail_msg("attribute %s = %.*s, want %s", key, (int)x->value.u.s.len, x->value.u.s.p, want);
    }
}

static void test_otlp_roundtrip(void **state)
{
    px_rng_t rng;
    px_rng_seed(&rng, 6);
    px_http1_header_t w3c[] = {
        H("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        H("tracestate", "rojo=00f067aa0ba902b7"),
    };
    px_trace_in_t in;
    px_trace_ctx_t c1, c2;
    px_trace_extract(w3c, 2, &in);
    px_trace_start(&in, 1, &rng, &c1);
    px_trace_extract(NULL, 0, &in);
    px_trace_start(&in, 100, &rng, &c2);

    px_span_t *spans[3];
    spans[0] = make_span(&c1, PX_SPAN_SERVER, 503, 1700000000000000000LL);
    spans[1] = make_span(&c2, PX_SPAN_CLIENT, 200, 1700000000000000001LL);
    px_span_in_t bare = {.ctx = &c2, .kind = PX_SPAN_CLIENT, .start_ns = 7, .end_ns = 9};
    spans[2] = px_span_new(&bare);
    px_trace_node_t node = {
        .node_id = S("sidecar~10.0.0.5~productpage-v1.bookinfo~bookinfo.svc.cluster.local"),
        .canonical_service = S("productpage"),
        .canonical_revision = S("v1"),
        .namespace = S("bookinfo"),
        .mesh_id = S("cluster.local"),
    };
    wf_buf_t body = WF_BUF_INIT;
    px_otlp_encode(&node, spans, 3, &body);

    wf_arena_t arena;
    wf_arena_init(&arena, 4096, 0);
    st_span_t *got = NULL;
    size_t n = 0;
    char err[256] = "";
    int rc =
        col_otlp_traces_decode(body.data, body.len, false, 100, &arena, &got, &n, err, sizeof(err));
    if (rc != 0) {
        fail_msg("decode: %s", err);
    }
    assert_int_equal(n, 3);

    const st_span_t *g = &got[0];
    assert_memory_equal(g->trace_id, c1.trace_id, 16);
    assert_memory_equal(g->span_id, c1.span_id, 8);
    assert_memory_equal(g->parent_span_id, c1.parent_id, 8);
    assert_true(wf_str_eq_c(g->trace_state, "rojo=00f067aa0ba902b7"));
    assert_int_equal(g->flags, 1);
    assert_true(wf_str_eq_c(g->name, "reviews.bookinfo.svc.cluster.local:9080/*"));
    assert_int_equal(g->kind, ST_SPAN_KIND_SERVER);
    assert_int_equal(g->start_ns, 1700000000000000000LL);
    assert_int_equal(g->end_ns, 1700000000001500000LL);
    assert_int_equal(g->status_code, ST_STATUS_ERROR);
    assert_true(wf_str_eq_c(g->service, "productpage"));
    assert_true(wf_str_eq_c(g->scope_name, "weft-proxy"));
    assert_true(wf_str_eq_c(g->scope_version, WEFT_VERSION));
    const st_attr_t *ra = g->resource_attrs;
    size_t nra = g->n_resource_attrs;
    assert_int_equal(nra, 5);
    assert_sattr(ra, nra, "service.name", "productpage");
    assert_sattr(ra, nra, "service.version", "v1");
    assert_sattr(ra, nra, "service.namespace", "bookinfo");
    assert_sattr(ra, nra, "service.instance.id", node.node_id.p);
    assert_sattr(ra, nra, "telemetry.sdk.name", "weft");
    const st_attr_t *a = g->attrs;
    size_t na = g->n_attrs;
    assert_sattr(a, na, "http.method", "GET");
    assert_sattr(a, na, "http.url", "http://reviews:9080/reviews/0");
    assert_sattr(a, na, "http.protocol", "HTTP/1.1");
    assert_sattr(a, na, "http.status_code", "503");
    assert_sattr(a, na, "upstream_cluster", "outbound|9080|v2|reviews.bookinfo.svc.cluster.local");
    assert_sattr(a, na, "upstream_cluster.name",
                 "outbound|9080|v2|reviews.bookinfo.svc.cluster.local");
    assert_sattr(a, na, "response_flags", "-");
    assert_sattr(a, na, "node_id", node.node_id.p);
    assert_sattr(a, na, "guid:x-request-id", "6f3b6ad2-6e6a-4a0f-9d3b-0c1f0a4c9b1e");
    assert_sattr(a, na, "istio.canonical_service", "productpage");
    assert_sattr(a, na, "istio.canonical_revision", "v1");
    assert_sattr(a, na, "istio.namespace", "bookinfo");
    assert_sattr(a, na, "istio.mesh_id", "cluster.local");
    assert_sattr(a, na, "peer.address", "10.0.0.7");
    assert_sattr(a, na, "component", "proxy");
    assert_sattr(a, na, "user_agent", "curl/7.88.1");
    assert_sattr(a, na, "request_size", "0");
    assert_sattr(a, na, "response_size", "295");
    assert_sattr(a, na, "error", "true");
    assert_int_equal(na, 19);
    assert_null(attr(a, na, "downstream_cluster"));

    g = &got[1];
    assert_memory_equal(g->trace_id, c2.trace_id, 16);
    uint8_t zero[8] = {0};
    assert_memory_equal(g->parent_span_id, zero, 8); /* a root */
    assert_int_equal(g->kind, ST_SPAN_KIND_CLIENT);
    assert_int_equal(g->status_code, ST_STATUS_UNSET);
    assert_int_equal(g->trace_state.len, 0);
    assert_sattr(g->attrs, g->n_attrs, "http.status_code", "200");
    assert_null(attr(g->attrs, g->n_attrs, "error"));
    assert_int_equal(g->n_attrs, 18);

    g = &got[2];
    assert_int_equal(g->start_ns, 7);
    assert_int_equal(g->end_ns, 9);
    assert_int_equal(g->name.len, 0);
    assert_sattr(g->attrs, g->n_attrs, "http.status_code", "0");
    assert_sattr(g->attrs, g->n_attrs, "error", "true");

    /* An empty batch is a valid request with one empty resource. */
    wf_buf_reset(&body);
    px_otlp_encode(&node, NULL, 0, &body);
    assert_int_equal(
        col_otlp_traces_decode(body.data, body.len, false, 100, &arena, &got, &n, err, sizeof(err)),
        0);
    assert_int_equal(n, 0);

    wf_arena_free(&arena);
    wf_buf_free(&body);
    for (int i = 0; i < 3; i++) {
        px_span_free(spans[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traceparent),   cmocka_unit_test(test_tracestate),
        cmocka_unit_test(test_b3_single),     cmocka_unit_test(test_extract),
        cmocka_unit_test(test_start_inject),  cmocka_unit_test(test_request_id),
        cmocka_unit_test(test_span_record),   cmocka_unit_test(test_queue),
        cmocka_unit_test(test_queue_threads), cmocka_unit_test(test_otlp_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
