/*
 * test_col_expfmt.c - the exposition parser and writer: the text format 0.0.4 and OpenMetrics
 * grammars as Prometheus 2.42 reads them (metadata, escapes, timestamps, special values,
 * exemplars), hostile input refused with the right line number (bad escapes, unterminated
 * quotes, duplicate labels, huge lines, invalid UTF-8, limits), and the writer's value
 * formatting and escaping, read back by the parser.
 */
#include "col_expfmt.h"
#include "wf_alloc.h"
#include "wf_err.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

typedef struct {
    wf_arena_t arena;
    col_expfmt_parser_t p;
    col_expfmt_entry_t e[64];
    size_t n;
    int rc; /* the final return: 0 or the error */
} parsed_t;

/* Parse all of s; entries go to out->e (comments skipped unless keep_comments). */
static void parse_all(parsed_t *out, const char *s, size_t len, col_expfmt_format_t fmt,
                      const col_expfmt_limits_t *lim)
{
    memset(out, 0, sizeof(*out));
    wf_arena_init(&out->arena, 4096, 0);
    col_expfmt_parser_init(&out->p, s, len, fmt, lim, &out->arena);
    for (;;) {
        col_expfmt_entry_t e;
        int rc = col_expfmt_next(&out->p, &e);
        if (rc <= 0) {
            out->rc = rc;
            return;
        }
        assert_true(out->n < 64);
        out->e[out->n++] = e;
    }
}

static void done(parsed_t *p)
{
    wf_arena_free(&p->arena);
}

static void parse_str(parsed_t *out, const char *s, col_expfmt_format_t fmt)
{
    parse_all(out, s, strlen(s), fmt, NULL);
}

static void assert_str(wf_str_t s, const char *want)
{
    if (!wf_str_eq_c(s, want)) {
        fail_msg("got \"%.*s\" want \"%s\"", (int)s.len, s.p, want);
    }
}

static void assert_label(const col_expfmt_entry_t *e, size_t i, const char *name, const char *value)
{
    assert_true(i < e->nlabels);
    assert_str(e->labels[i].name, name);
    assert_str(e->labels[i].value, value);
}

static void assert_error(const char *input, col_expfmt_format_t fmt, int code, const char *msg)
{
    parsed_t p;
    parse_str(&p, input, fmt);
    if (p.rc != code || strstr(col_expfmt_error(&p.p), msg) == NULL) {
        fail_msg("input %s: rc %d error \"%s\", want %d \"%s\"", input, p.rc,
                 col_expfmt_error(&p.p), code, msg);
    }
    /* A failed parser stays failed. */
    col_expfmt_entry_t e;
    assert_int_equal(col_expfmt_next(&p.p, &e), WF_E_INVAL);
    done(&p);
}

static void test_text_examples(void **state)
{
    (void)state;
    const char *in = "# HELP http_requests_total The total number of HTTP requests.\n"
                     "# TYPE http_requests_total counter\n"
                     "http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n"
                     "metric_without_timestamp_and_labels 12.47\n"
                     "something_weird{problem=\"division by zero\"} +Inf 3982045\n"
                     "msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\","
                     "error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n"
                     "trailing_comma { a = \"b\" , } -Inf\n"
                     "nan NaN\n"
                     "odd_escape{a=\"x\\ty\"} 1\n"
                     "# HELP esc a\\\\b\\nc\\td\n"
                     "#TYPE not_meta counter\n"
                     "# TYPE t_untyped untyped\n"
                     "last{a=\"1\"} 2e-7"; /* no final newline */
    parsed_t p;
    parse_str(&p, in, COL_EXPFMT_TEXT);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.n, 13);
    assert_true(isinf(p.e[4].value) && p.e[4].value > 0);
    assert_int_equal(p.e[4].ts_ms, 3982045);
    const col_expfmt_entry_t *e = &p.e[5];
    assert_label(e, 0, "path", "C:\\DIR\\FILE.TXT");
    assert_label(e, 1, "error", "Cannot find file:\n\"FILE.TXT\"");
    assert_true(e->value == 1.458255915e9);
    e = &p.e[6];
    assert_str(e->name, "trailing_comma");
    assert_int_equal(e->nlabels, 1);
    assert_label(e, 0, "a", "b");
    assert_true(isinf(e->value) && e->value < 0);
    /* "NaN" is an ordinary NaN, never the staleness marker. */
    uint64_t bits;
    memcpy(&bits, &p.e[7].value, 8);
    assert_true(bits == 0x7ff8000000000001ULL);
    /* Unknown escapes are kept as written, like Prometheus's replacer. */
    assert_label(&p.e[8], 0, "a", "x\\ty");
    assert_int_equal(p.e[9].kind, COL_EXPFMT_HELP);
    assert_str(p.e[9].text, "a\\b\nc\\td");
    assert_int_equal(p.e[10].kind, COL_EXPFMT_COMMENT);
    assert_int_equal(p.e[11].kind, COL_EXPFMT_TYPE);
    assert_int_equal(p.e[11].type, ST_METRIC_UNKNOWN);
    assert_str(p.e[12].name, "last");
    assert_true(p.e[12].value == 2e-7);
    assert_int_equal(p.e[12].line, 13);
    /* Zero-copy: a value without escapes points into the input. */
    assert_true(p.e[2].labels[0].value.p > in && p.e[2].labels[0].value.p < in + strlen(in));
    done(&p);
}

static void test_values(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        double want;
    } ok[] = {
        {"1", 1},          {"-1.5", -1.5},      {"+2", 2},
        {".5", 0.5},       {"1e3", 1000},       {"1E-3", 0.001},
        {"Inf", INFINITY}, {"-inf", -INFINITY}, {"+Infinity", INFINITY},
        {"0", 0},          {"1e-400", 0},       {"123456789012", 123456789012.0},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "m %s\n", ok[i].in);
        parsed_t p;
        parse_str(&p, line, COL_EXPFMT_TEXT);
        assert_int_equal(p.rc, 0);
        assert_int_equal(p.n, 1);
        if (p.e[0].value != ok[i].want) {
            fail_msg("%s parsed as %g", ok[i].in, p.e[0].value);
        }
        done(&p);
    }
    static const char *const bad[] = {"0x10",  "1_000", "0x1p3",  "1e",  ".",   "abc",
                                      "1e999", "+NaN",  "nan(1)", "--1", "1,5", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "m %s\n", bad[i]);
        parsed_t p;
        parse_str(&p, line, COL_EXPFMT_TEXT);
        if (p.rc != WF_E_INVAL) {
            fail_msg("value \"%s\" accepted", bad[i]);
        }
        done(&p);
    }
}

static void test_text_errors(void **state)
{
    (void)state;
    assert_error("ok 1\nm{a=\"x} 1\nn 2\n", COL_EXPFMT_TEXT, WF_E_INVAL,
                 "line 2: unterminated label value for a");
    assert_error("m{a=\"x\\\"} 1\n", COL_EXPFMT_TEXT, WF_E_INVAL, "unterminated label value");
    assert_error("m{a=\"x\\", COL_EXPFMT_TEXT, WF_E_INVAL, "line 1: unterminated label value");
    assert_error("m{a=\"1\",a=\"2\"} 1\n", COL_EXPFMT_TEXT, WF_E_INVAL, "duplicate label name a");
    assert_error("m{__name__=\"x\"} 1\n", COL_EXPFMT_TEXT, WF_E_INVAL, "__name__");
    assert_error("m{a=\"1\"b=\"2\"} 1\n", COL_EXPFMT_TEXT, WF_E_INVAL, "expected \",\" or \"}\"");
    assert_error("m{a=\"\xff\"} 1\n", COL_EXPFMT_TEXT, WF_E_INVAL, "invalid UTF-8");
    assert_error("m{a=\"\xc0\xaf\"} 1\n", COL_EXPFMT_TEXT, WF_E_INVAL, "invalid UTF-8");
    assert_error("# HELP m bad \xed\xa0\x80\n", COL_EXPFMT_TEXT, WF_E_INVAL, "not valid UTF-8");
    assert_error("m{1a=\"x\"} 1\n", COL_EXPFMT_TEXT, WF_E_INVAL, "expected label name");
    assert_error("m{a:b=\"x\"} 1\n", COL_EXPFMT_TEXT, WF_E_INVAL, "expected \"=\"");
    assert_error("m{a=x} 1\n", COL_EXPFMT_TEXT, WF_E_INVAL, "expected quoted label value");
    assert_error("m\n", COL_EXPFMT_TEXT, WF_E_INVAL, "expected value after metric");
    assert_error("m{a=\"b\"}\n", COL_EXPFMT_TEXT, WF_E_INVAL, "expected value after metric");
    assert_error("1m 1\n", COL_EXPFMT_TEXT, WF_E_INVAL, "not a valid start");
    assert_error("m 1 -5\n", COL_EXPFMT_TEXT, WF_E_INVAL, "invalid timestamp");
    assert_error("m 1 1.5\n", COL_EXPFMT_TEXT, WF_E_INVAL, "invalid timestamp");
    assert_error("m 1 99999999999999999999\n", COL_EXPFMT_TEXT, WF_E_INVAL, "invalid timestamp");
    assert_error("m 1 2 3\n", COL_EXPFMT_TEXT, WF_E_INVAL, "expected end of line");
    assert_error("# TYPE m countr\n", COL_EXPFMT_TEXT, WF_E_INVAL, "invalid metric type");
    assert_error("# TYPE m info\n", COL_EXPFMT_TEXT, WF_E_INVAL, "invalid metric type");
    assert_error("# TYPE 1m counter\n", COL_EXPFMT_TEXT, WF_E_INVAL, "expected metric name");
    assert_error("a 1\nb 2\n\n\nm{a=\"x\"} 1\r\n", COL_EXPFMT_TEXT, WF_E_INVAL,
                 "line 5: invalid value");
    assert_error("a 1\n  b 2\n", COL_EXPFMT_TEXT, WF_E_INVAL, "line 2: invalid metric name");
}

static void test_limits(void **state)
{
    (void)state;
    col_expfmt_limits_t lim;
    col_expfmt_limits_default(&lim);
    lim.max_line_len = 64;
    lim.max_labels = 3;
    lim.max_label_value_len = 8;
    lim.max_label_name_len = 5;

    const char *in = "m{a=\"1\",b=\"2\",c=\"3\"} 1\n"
                     "m{a=\"1\",b=\"2\",c=\"3\",d=\"4\"} 1\n";
    parsed_t p;
    parse_all(&p, in, strlen(in), COL_EXPFMT_TEXT, &lim);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.rc, WF_E_LIMIT);
    assert_string_equal(col_expfmt_error(&p.p), "line 2: more than 3 labels");
    done(&p);

    in = "m{a=\"12345678\"} 1\nm{a=\"12\\\\3456789\"} 1\n";
    parse_all(&p, in, strlen(in), COL_EXPFMT_TEXT, &lim);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.rc, 0 + WF_E_LIMIT);
    assert_string_equal(col_expfmt_error(&p.p), "line 2: value of label a longer than 8 bytes");
    done(&p);

    in = "m{abcdef=\"1\"} 1\n";
    parse_all(&p, in, strlen(in), COL_EXPFMT_TEXT, &lim);
    assert_int_equal(p.rc, WF_E_LIMIT);
    done(&p);

    /* A huge line is refused before it is scanned, with or without a newline in reach. */
    size_t big = 10 << 20;
    char *huge = wf_malloc(big);
    memset(huge, 'a', big);
    memcpy(huge, "ok 1\n", 5);
    parse_all(&p, huge, big, COL_EXPFMT_TEXT, &lim);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.rc, WF_E_LIMIT);
    assert_string_equal(col_expfmt_error(&p.p), "line 2: line longer than 64 bytes");
    done(&p);
    huge[big - 1] = '\n';
    col_expfmt_limits_default(&lim);
    parse_all(&p, huge, big, COL_EXPFMT_TEXT, &lim);
    assert_int_equal(p.rc, WF_E_LIMIT);
    assert_string_equal(col_expfmt_error(&p.p), "line 2: line longer than 1048576 bytes");
    done(&p);
    wf_free(huge);

    /* The arena's limit bounds the memory one parse may take. */
    wf_arena_t a;
    wf_arena_init(&a, 1024, 4096);
    col_expfmt_parser_t ps;
    wf_buf_t body = WF_BUF_INIT;
    for (int i = 0; i < 1000; i++) {
        wf_buf_printf(&body, "m{a=\"%d\",b=\"x\"} 1\n", i);
    }
    col_expfmt_parser_init(&ps, body.data, body.len, COL_EXPFMT_TEXT, NULL, &a);
    col_expfmt_entry_t e;
    int rc;
    while ((rc = col_expfmt_next(&ps, &e)) == 1) {
    }
    assert_int_equal(rc, WF_E_LIMIT);
    assert_non_null(strstr(col_expfmt_error(&ps), "memory limit"));
    wf_arena_free(&a);
    wf_buf_free(&body);
}

static void test_openmetrics(void **state)
{
    (void)state;
    const char *in = "# TYPE foo counter\n"
                     "# HELP foo Some \\\"help\\\" \\\\ text\n"
                     "# UNIT foo_seconds seconds\n"
                     "foo_total{a=\"1\"} 17.0 1520879607.789 # {id=\"c0ffee\"} 1.0 1520879607.0\n"
                     "foo_total{a=\"2\"} 3 # {} 2\n"
                     "foo_created{a=\"1\"} 1520430000.123\n"
                     "bar{} 1 -1.5\n"
                     "baz 1e3\n"
                     "# TYPE s stateset\n"
                     "# TYPE i info\n"
                     "# TYPE g gaugehistogram\n"
                     "# TYPE u unknown\n"
                     "# HELP empty \n"
                     "# EOF\n";
    parsed_t p;
    parse_str(&p, in, COL_EXPFMT_OPENMETRICS);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.n, 13);
    assert_int_equal(p.e[0].type, ST_METRIC_COUNTER);
    assert_str(p.e[1].text, "Some \"help\" \\ text"); /* OpenMetrics: \" unescaped too */
    assert_int_equal(p.e[2].kind, COL_EXPFMT_UNIT);
    assert_str(p.e[2].text, "seconds");
    const col_expfmt_entry_t *e = &p.e[3];
    assert_str(e->name, "foo_total");
    assert_label(e, 0, "a", "1");
    assert_true(e->value == 17);
    assert_true(e->has_ts);
    assert_int_equal(e->ts_ms, 1520879607789LL);
    assert_false(p.e[4].has_ts);
    assert_true(p.e[4].value == 3);
    /* _created is an ordinary series in 2.42. */
    assert_str(p.e[5].name, "foo_created");
    assert_true(p.e[5].value == 1520430000.123);
    assert_int_equal(p.e[6].nlabels, 0);
    assert_int_equal(p.e[6].ts_ms, -1500); /* truncated toward zero, as Go's int64() */
    assert_int_equal(p.e[8].type, ST_METRIC_STATESET);
    assert_int_equal(p.e[9].type, ST_METRIC_INFO);
    assert_int_equal(p.e[10].type, ST_METRIC_GAUGEHISTOGRAM);
    assert_int_equal(p.e[11].type, ST_METRIC_UNKNOWN);
    assert_str(p.e[12].text, "");
    done(&p);

    /* # EOF without a final newline is fine. */
    parse_str(&p, "a 1\n# EOF", COL_EXPFMT_OPENMETRICS);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.n, 1);
    done(&p);

    assert_error("a 1\n", COL_EXPFMT_OPENMETRICS, WF_E_INVAL,
                 "line 2: data does not end with # EOF");
    assert_error("a 1", COL_EXPFMT_OPENMETRICS, WF_E_INVAL, "line 1: data does not end with # EOF");
    assert_error("# EOF\na 1\n", COL_EXPFMT_OPENMETRICS, WF_E_INVAL,
                 "line 2: unexpected data after # EOF");
    assert_error("a  1\n# EOF\n", COL_EXPFMT_OPENMETRICS, WF_E_INVAL, "expected value");
    assert_error("a\t1\n# EOF\n", COL_EXPFMT_OPENMETRICS, WF_E_INVAL, "expected value");
    assert_error("a{b=\"1\",} 1\n# EOF\n", COL_EXPFMT_OPENMETRICS, WF_E_INVAL, "label name");
    assert_error("a{b=\"1\", c=\"2\"} 1\n# EOF\n", COL_EXPFMT_OPENMETRICS, WF_E_INVAL,
                 "expected label name");
    assert_error("a{,} 1\n# EOF\n", COL_EXPFMT_OPENMETRICS, WF_E_INVAL, "expected label name");
    assert_error("\n# EOF\n", COL_EXPFMT_OPENMETRICS, WF_E_INVAL, "line 1:");
    assert_error("# random comment\n# EOF\n", COL_EXPFMT_OPENMETRICS, WF_E_INVAL,
                 "invalid comment");
    assert_error("# HELP foo\n# EOF\n", COL_EXPFMT_OPENMETRICS, WF_E_INVAL, "expected text");
    assert_error("# TYPE foo untyped\n# EOF\n", COL_EXPFMT_OPENMETRICS, WF_E_INVAL,
                 "invalid metric type");
    assert_error("# UNIT foo_bytes seconds\n# EOF\n", COL_EXPFMT_OPENMETRICS, WF_E_INVAL,
                 "unit not a suffix");
    assert_error("foo 1 # {a=\"b\"} 1\n# EOF\n", COL_EXPFMT_OPENMETRICS, WF_E_INVAL,
                 "does not support exemplars");
    assert_error("foo_total 1 # {a=\"b} 1\n# EOF\n", COL_EXPFMT_OPENMETRICS, WF_E_INVAL,
                 "unterminated");
    assert_error("foo_total 1 # {a=\"b\"}\n# EOF\n", COL_EXPFMT_OPENMETRICS, WF_E_INVAL,
                 "expected value after exemplar");
    assert_error("foo 1 NaN\n# EOF\n", COL_EXPFMT_OPENMETRICS, WF_E_INVAL, "invalid timestamp");
    assert_error("foo 1 2 3\n# EOF\n", COL_EXPFMT_OPENMETRICS, WF_E_INVAL, "after timestamp");
    assert_error("foo{a=\"1\n\"} 1\n# EOF\n", COL_EXPFMT_OPENMETRICS, WF_E_INVAL, "unterminated");
}

static void test_format_of(void **state)
{
    (void)state;
    assert_int_equal(col_expfmt_format_of(NULL), COL_EXPFMT_TEXT);
    assert_int_equal(col_expfmt_format_of("text/plain; version=0.0.4"), COL_EXPFMT_TEXT);
    assert_int_equal(col_expfmt_format_of("application/openmetrics-text; version=1.0.0; "
                                          "charset=utf-8"),
                     COL_EXPFMT_OPENMETRICS);
    assert_int_equal(col_expfmt_format_of("application/openmetrics-text"), COL_EXPFMT_OPENMETRICS);
    assert_int_equal(col_expfmt_format_of("application/openmetrics-textual"), COL_EXPFMT_TEXT);
}

static void assert_value_fmt(double v, const char *want)
{
    wf_buf_t b = WF_BUF_INIT;
    col_expfmt_write_value(&b, v);
    if (strcmp(wf_buf_cstr(&b), want) != 0) {
        fail_msg("%.17g formatted as %s, want %s", v, wf_buf_cstr(&b), want);
    }
    wf_buf_free(&b);
}

static void test_write_value(void **state)
{
    (void)state;
    /* Go: strconv.FormatFloat(v, 'g', -1, 64) and writeFloat's special cases. */
    assert_value_fmt(0, "0");
    assert_value_fmt(-0.0, "0");
    assert_value_fmt(1, "1");
    assert_value_fmt(-1, "-1");
    assert_value_fmt(NAN, "NaN");
    assert_value_fmt(INFINITY, "+Inf");
    assert_value_fmt(-INFINITY, "-Inf");
    assert_value_fmt(0.1, "0.1");
    assert_value_fmt(1.5, "1.5");
    assert_value_fmt(123456, "123456");
    assert_value_fmt(1234567, "1.234567e+06");
    assert_value_fmt(1e6, "1e+06");
    assert_value_fmt(100000, "100000");
    assert_value_fmt(1.458255915e9, "1.458255915e+09");
    assert_value_fmt(0.0001, "0.0001");
    assert_value_fmt(0.00001, "1e-05");
    assert_value_fmt(1.234e-7, "1.234e-07");
    assert_value_fmt(-2.5e-300, "-2.5e-300");
    assert_value_fmt(1e100, "1e+100");
    assert_value_fmt(0.30000000000000004, "0.30000000000000004");
    assert_value_fmt(1.7976931348623157e308, "1.7976931348623157e+308");
    assert_value_fmt(5e-324, "5e-324");
    assert_value_fmt(12.47, "12.47");
    assert_value_fmt(-123.456, "-123.456");
}

static void test_writer_roundtrip(void **state)
{
    (void)state;
    wf_buf_t b = WF_BUF_INIT;
    st_label_t ls[] = {
        {WF_STR_LIT("zone"), WF_STR_LIT("a\"b\\c\nd")},
        {WF_STR_LIT("__name__"), WF_STR_LIT("ignored")},
        {WF_STR_LIT("app"), WF_STR_LIT("x")},
    };
    col_expfmt_write_help(&b, WF_STR_LIT("m"), WF_STR_LIT("line1\nback\\slash \"q\""));
    col_expfmt_write_type(&b, WF_STR_LIT("m"), ST_METRIC_GAUGE);
    col_expfmt_write_type(&b, WF_STR_LIT("u"), ST_METRIC_INFO);
    col_expfmt_write_sample(&b, WF_STR_LIT("m"), ls, 3, 0.25, true, 1700000000123LL);
    col_expfmt_write_sample(&b, WF_STR_LIT("u"), NULL, 0, 1e6, false, 0);
    const char *want = "# HELP m line1\\nback\\\\slash \"q\"\n"
                       "# TYPE m gauge\n"
                       "# TYPE u untyped\n"
                       "m{app=\"x\",zone=\"a\\\"b\\\\c\\nd\"} 0.25 1700000000123\n"
                       "u 1e+06\n";
    assert_string_equal(wf_buf_cstr(&b), want);

    parsed_t p;
    parse_all(&p, (const char *)b.data, b.len, COL_EXPFMT_TEXT, NULL);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.n, 5);
    assert_str(p.e[0].text, "line1\nback\\slash \"q\"");
    assert_label(&p.e[3], 0, "app", "x");
    assert_label(&p.e[3], 1, "zone", "a\"b\\c\nd");
    assert_true(p.e[3].value == 0.25);
    assert_int_equal(p.e[3].ts_ms, 1700000000123LL);
    assert_true(p.e[4].value == 1e6);
    done(&p);

    /* Many labels, given in reverse order, come out sorted. */
    wf_buf_reset(&b);
    st_label_t many[40];
    char names[40][8];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof(names[i]), "l%02d", 39 - i);
        many[i].name = wf_str(names[i]);
        many[i].value = WF_STR_LIT("v");
    }
    col_expfmt_write_sample(&b, WF_STR_LIT("x"), many, 40, 2, false, 0);
    const char *s = wf_buf_cstr(&b);
    assert_true(strncmp(s, "x{l00=\"v\",l01=\"v\",", 18) == 0);
    assert_non_null(strstr(s, "l38=\"v\",l39=\"v\"} 2\n"));
    wf_buf_free(&b);
}

static void test_names(void **state)
{
    (void)state;
    assert_true(col_expfmt_valid_metric_name(WF_STR_LIT("a:b_c9")));
    assert_false(col_expfmt_valid_metric_name(WF_STR_LIT("9a")));
    assert_false(col_expfmt_valid_metric_name(WF_STR_LIT("")));
    assert_true(col_expfmt_valid_label_name(WF_STR_LIT("_a9")));
    assert_false(col_expfmt_valid_label_name(WF_STR_LIT("a:b")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_examples), cmocka_unit_test(test_values),
        cmocka_unit_test(test_text_errors),   cmocka_unit_test(test_limits),
        cmocka_unit_test(test_openmetrics),   cmocka_unit_test(test_format_of),
        cmocka_unit_test(test_write_value),   cmocka_unit_test(test_writer_roundtrip),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
