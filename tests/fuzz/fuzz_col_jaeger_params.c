/*
 * fuzz_col_jaeger_params.c - the Jaeger query parameters parsed by hand: Go durations
 * (col__jaeger_parse_go_duration, shared by the v1 and api_v3 routes) and trace ids
 * (col__jaeger_parse_trace_id). Checked beyond "no crash": a refused duration has Go's message,
 * an accepted one reads back the same from its nanosecond spelling; an accepted trace id is
 * 1..32 hex digits whose value the 16 bytes hold.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "col_jaeger.h"
#include "wf_alloc.h"

static void check(int ok)
{
    if (!ok) {
        abort();
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
        return (c | 0x20) - 'a' + 10;
    }
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = wf_malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';

    char err[512] = "";
    int64_t ns = 0;
    if (col__jaeger_parse_go_duration(s, &ns, err, sizeof(err)) != 0) {
        check(strncmp(err, "time: ", 6) == 0);
    } else {
        char again[32];
        int64_t ns2 = 0;
        snprintf(again, sizeof(again), "%" PRId64 "ns", ns);
        check(col__jaeger_parse_go_duration(again, &ns2, err, sizeof(err)) == 0 && ns2 == ns);
    }

    uint8_t id[16];
    if (col__jaeger_parse_trace_id(s, id) == 0) {
        size_t n = strlen(s);
        check(n >= 1 && n <= 32);
        for (size_t i = 0; i < n; i++) {
            int v = hexval(s[n - 1 - i]);
            check(v >= 0);
            check(((id[15 - i / 2] >> (i % 2 == 0 ? 0 : 4)) & 15) == v);
        }
        for (size_t i = n; i < 32; i++) {
            check(((id[15 - i / 2] >> (i % 2 == 0 ? 0 : 4)) & 15) == 0);
        }
    }
    wf_free(s);
    return 0;
}
