/*
 * col_otlp_json.c - typed reads of OTLP JSON members (see col_otlp_json.h), so that the trace
 * and metric receivers accept exactly the same spellings of numbers, ids and bytes.
 */
#include "col_otlp_json.h"

#include "wf_err.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return WF_E_INVAL;
}

json_t *col_oj_get(json_t *obj, const char *camel, const char *snake)
{
    json_t *v = json_object_get(obj, camel);
    if (v == NULL && snake != NULL) {
        v = json_object_get(obj, snake);
    }
    return json_is_null(v) ? NULL : v;
}

int col_oj_array(json_t *obj, const char *camel, const char *snake, json_t **out, char *err,
                 size_t errlen)
{
    json_t *v = col_oj_get(obj, camel, snake);
    *out = NULL;
    if (v != NULL && !json_is_array(v)) {
        return fail(err, errlen, "json: %s is not an array", camel);
    }
    *out = v;
    return 0;
}

int col_oj_object(json_t *v, const char *what, char *err, size_t errlen)
{
    return json_is_object(v) ? 0 : fail(err, errlen, "json: %s is not an object", what);
}

int col_oj_string(json_t *obj, const char *camel, const char *snake, wf_str_t *out, char *err,
                  size_t errlen)
{
    json_t *v = col_oj_get(obj, camel, snake);
    *out = (wf_str_t){"", 0};
    if (v == NULL) {
        return 0;
    }
    if (!json_is_string(v)) {
        return fail(err, errlen, "json: %s is not a string", camel);
    }
    *out = (wf_str_t){json_string_value(v), json_string_length(v)};
    return 0;
}

int col_oj_int(json_t *v, const char *what, bool is_unsigned, int64_t *si, uint64_t *ui, char *err,
               size_t errlen)
{
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (is_unsigned && x < 0) {
            return fail(err, errlen, "json: %s is negative", what);
        }
        *si = x;
        *ui = (uint64_t)x;
        return 0;
    }
    if (json_is_real(v)) {
        /* jansson reads numbers beyond int64 as reals too; only exact, in-range ones pass */
        double d = json_real_value(v);
        if (d != floor(d) || fabs(d) > 9.2e18) {
            return fail(err, errlen, "json: %s is not an integer", what);
        }
        if (is_unsigned && d < 0) {
            return fail(err, errlen, "json: %s is negative", what);
        }
        *si = (int64_t)d;
        *ui = (uint64_t)*si;
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end = NULL;
        errno = 0;
        if (is_unsigned) {
            if (s[0] == '-') {
                return fail(err, errlen, "json: %s is negative", what);
            }
            *ui = strtoull(s, &end, 10);
            *si = (int64_t)*ui;
        } else {
            *si = strtoll(s, &end, 10);
            *ui = (uint64_t)*si;
        }
        if (end == s || *end != '\0' || errno != 0) {
            return fail(err, errlen, "json: %s is not an integer", what);
        }
        return 0;
    }
    return fail(err, errlen, "json: %s is not an integer", what);
}

int col_oj_int_field(json_t *obj, const char *camel, const char *snake, bool is_unsigned,
                     int64_t *si, uint64_t *ui, bool *present, char *err, size_t errlen)
{
    json_t *v = col_oj_get(obj, camel, snake);
    *si = 0;
    *ui = 0;
    if (present != NULL) {
        *present = v != NULL;
    }
    return v == NULL ? 0 : col_oj_int(v, camel, is_unsigned, si, ui, err, errlen);
}

int col_oj_double(json_t *v, const char *what, double *out, char *err, size_t errlen)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "NaN") == 0) {
            *out = NAN;
            return 0;
        }
        if (strcmp(s, "Infinity") == 0) {
            *out = INFINITY;
            return 0;
        }
        if (strcmp(s, "-Infinity") == 0) {
            *out = -INFINITY;
            return 0;
        }
        char *end = NULL;
        *out = strtod(s, &end);
        if (end != s && *end == '\0') {
            return 0;
        }
    }
    return fail(err, errlen, "json: %s is not a number", what);
}

int col_otlp_content_type(const char *content_type, bool *json, col_resp_t *resp)
{
    *json = false;
    if (content_type == NULL || strncasecmp(content_type, "application/x-protobuf", 22) == 0 ||
        strncasecmp(content_type, "application/protobuf", 20) == 0) {
        return 0;
    }
    if (strncasecmp(content_type, "application/json", 16) == 0) {
        *json = true;
        return 0;
    }
    col_resp_text(resp, 415,
                  "unsupported Content-Type %.64s: use application/x-protobuf or application/json",
                  content_type);
    return WF_E_INVAL;
}

bool col_hex_decode(const char *s, size_t len, uint8_t *out, size_t n)
{
    if (len != 2 * n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        int hi = wf_hex_digit(s[2 * i]);
        int lo = wf_hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

int col_oj_hex_id(json_t *obj, const char *camel, const char *snake, uint8_t *id, size_t size,
                  bool may_be_empty, bool *present, char *err, size_t errlen)
{
    json_t *v = col_oj_get(obj, camel, snake);
    memset(id, 0, size);
    *present = v != NULL;
    if (v == NULL) {
        return 0;
    }
    if (!json_is_string(v)) {
        return fail(err, errlen, "json: %s is not a string", camel);
    }
    size_t len = json_string_length(v);
    if (len == 0 && may_be_empty) {
        return 0;
    }
    if (len != 2 * size) {
        return fail(err, errlen, "json: %s has %zu hex digits, want %zu", camel, len, 2 * size);
    }
    if (!col_hex_decode(json_string_value(v), len, id, size)) {
        return fail(err, errlen, "json: %s is not hexadecimal", camel);
    }
    return 0;
}

static int b64_digit(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    /* both alphabets: proto3 JSON parsers accept the URL-safe one too */
    if (c == '+' || c == '-') {
        return 62;
    }
    if (c == '/' || c == '_') {
        return 63;
    }
    return -1;
}

int col_oj_base64(json_t *v, const char *what, wf_arena_t *arena, wf_str_t *out, char *err,
                  size_t errlen)
{
    if (!json_is_string(v)) {
        return fail(err, errlen, "json: %s is not a string", what);
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    while (len > 0 && s[len - 1] == '=') {
        len--;
    }
    if (len % 4 == 1) {
        return fail(err, errlen, "json: %s is not base64", what);
    }
    uint8_t *d = wf_arena_alloc_checked(arena, len * 3 / 4 + 1);
    if (d == NULL) {
        snprintf(err, errlen, "request too large: out of request memory");
        return WF_E_LIMIT;
    }
    size_t n = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < len; i++) {
        int x = b64_digit(s[i]);
        if (x < 0) {
            return fail(err, errlen, "json: %s is not base64", what);
        }
        acc = acc << 6 | (uint32_t)x;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            d[n++] = (uint8_t)(acc >> bits);
        }
    }
    *out = (wf_str_t){(const char *)d, n};
    return 0;
}
