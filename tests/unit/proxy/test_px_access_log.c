/*
 * test_px_access_log.c - the access log: exact logfmt lines (bare and quoted values, escapes,
 * no response, no trace), and the writer: lines from several workers all reach the file once
 * it is closed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "px_access_log.h"
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wt_util.h"

static px_request_info_t base_info(void)
{
    px_request_info_t i;
    memset(&i, 0, sizeof(i));
    i.inbound = false;
    i.start_wall_ns = 1795634004008123456LL; /* 2026-11-25T19:13:24.008Z */
    i.duration_ns = 1234567;
    i.method = wf_str("GET");
    i.authority = wf_str("details:9080");
    i.path = wf_str("/headers?a=1");
    i.request_id = wf_str("rid-1");
    i.minor_version = 1;
    i.status = 200;
    i.bytes_in = 5;
    i.bytes_out = 1234;
    i.upstream_cluster = wf_str("outbound|9080||details.default.svc.cluster.local");
    i.upstream_host = wf_str("127.0.0.1:9080");
    i.downstream_ip = wf_str("127.0.0.1");
    return i;
}

static char *format(const px_request_info_t *i)
{
    wf_buf_t b = WF_BUF_INIT;
    px_access_log_format(i, &b);
    wf_buf_cstr(&b);
    return (char *)wf_buf_detach(&b, NULL);
}

static void test_line(void **state)
{
    (void)state;
    px_request_info_t i = base_info();
    px_trace_ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    for (int k = 0; k < 16; k++) {
        ctx.trace_id[k] = (uint8_t)(0x10 + k);
    }
    i.trace = &ctx;
    char *s = format(&i);
    assert_string_equal(
        s, "start_time=2026-11-25T19:13:24.008Z method=GET authority=details:9080 "
           "path=\"/headers?a=1\" protocol=HTTP/1.1 status=200 response_flags=- bytes_in=5 "
           "bytes_out=1234 duration_ms=1.235 upstream_host=127.0.0.1:9080 "
           "upstream_cluster=outbound|9080||details.default.svc.cluster.local request_id=rid-1 "
           "trace_id=101112131415161718191a1b1c1d1e1f downstream_address=127.0.0.1 "
           "reporter=source\n");
    wf_free(s);
}

static void test_escapes_and_empty(void **state)
{
    (void)state;
    px_request_info_t i = base_info();
    i.inbound = true;
    i.minor_version = 0;
    i.status = 0;
    i.flags = PX_RF_UF;
    i.path = (wf_str_t){"/a b\"c\\d\n\x01", 10};
    i.authority = (wf_str_t){"h\xff", 2}; /* not UTF-8 */
    i.method = wf_str("GÉT");             /* UTF-8: kept, quoted */
    i.upstream_host = wf_str("");
    i.request_id = wf_str("x=y");
    char *s = format(&i);
    assert_string_equal(s,
                        "start_time=2026-11-25T19:13:24.008Z method=\"GÉT\" authority=\"h\\xff\" "
                        "path=\"/a b\\\"c\\\\d\\n\\u0001\" protocol=HTTP/1.0 status=0 "
                        "response_flags=UF bytes_in=5 bytes_out=1234 duration_ms=1.235 "
                        "upstream_host=\"\" "
                        "upstream_cluster=outbound|9080||details.default.svc.cluster.local "
                        "request_id=\"x=y\" trace_id=\"\" downstream_address=127.0.0.1 "
                        "reporter=destination\n");
    wf_free(s);
}

static void test_writer(void **state)
{
    (void)state;
    char *dir = wt_tmpdir("pxalog");
    char path[4200];
    snprintf(path, sizeof(path), "%s/access.log", dir);
    px_access_log_t *l = NULL;
    assert_int_equal(px_access_log_open(&l, path, 3), 0);
    px_request_info_t i = base_info();
    char rid[32];
    for (int n = 0; n < 3000; n++) {
        snprintf(rid, sizeof(rid), "r%d", n);
        i.request_id = wf_str(rid);
        px_access_log_record(l, n % 3, &i);
    }
    assert_int_equal(px_access_log_dropped(l), 0);
    px_access_log_close(l);
    size_t len = 0;
    char *text = wt_read_file(path, &len);
    assert_non_null(text);
    int lines = 0;
    for (char *p = text; (p = strchr(p, '\n')) != NULL; p++) {
        lines++;
    }
    assert_int_equal(lines, 3000);
    assert_non_null(strstr(text, " request_id=r0 "));
    assert_non_null(strstr(text, " request_id=r2999 "));
    wf_free(text);
    assert_int_equal(px_access_log_open(&l, "/nonexistent-dir/x/access.log", 1), -2); /* ENOENT */
    assert_null(l);
    wt_rm_rf(dir);
    wf_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line),
        cmocka_unit_test(test_escapes_and_empty),
        cmocka_unit_test(test_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
