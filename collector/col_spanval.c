/*
 * col_spanval.c - rendering of span attribute values for Jaeger, Zipkin and OTLP JSON (see
 * col_spanval.h for the forms).
 */
#include "col_spanval.h"

#include "col_http.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void put_b64_quoted(wf_buf_t *out, wf_str_t s)
{
    wf_buf_putc(out, '"');
    wf_buf_put_base64(out, (const uint8_t *)s.p, s.len);
    wf_buf_putc(out, '"');
}

static void put_array(wf_buf_t *out, const st_value_t *v)
{
    wf_buf_putc(out, '[');
    for (size_t i = 0; i < v->u.arr.n; i++) {
        if (i > 0) {
            wf_buf_putc(out, ',');
        }
        col_spanval_json(out, &v->u.arr.items[i]);
    }
    wf_buf_putc(out, ']');
}

void col_spanval_text(wf_buf_t *out, const st_value_t *v)
{
    switch (v->type) {
    case ST_VAL_STRING:
        wf_buf_append(out, v->u.s.p, v->u.s.len);
        break;
    case ST_VAL_BOOL:
        wf_buf_puts(out, v->u.b ? "true" : "false");
        break;
    case ST_VAL_INT:
        wf_buf_printf(out, "%" PRId64, v->u.i);
        break;
    case ST_VAL_DOUBLE:
        col_fmt_float(out, v->u.d);
        break;
    case ST_VAL_BYTES:
        wf_buf_put_base64(out, (const uint8_t *)v->u.s.p, v->u.s.len);
        break;
    case ST_VAL_ARRAY:
        put_array(out, v);
        break;
    }
}

void col_spanval_json(wf_buf_t *out, const st_value_t *v)
{
    switch (v->type) {
    case ST_VAL_STRING:
        col_json_str(out, v->u.s.p, v->u.s.len);
        break;
    case ST_VAL_DOUBLE:
        /* JSON has no NaN or infinities: those travel as their text */
        if (!isfinite(v->u.d)) {
            wf_buf_putc(out, '"');
            col_fmt_float(out, v->u.d);
            wf_buf_putc(out, '"');
        } else {
            col_fmt_float(out, v->u.d);
        }
        break;
    case ST_VAL_BYTES:
        put_b64_quoted(out, v->u.s);
        break;
    case ST_VAL_BOOL:
    case ST_VAL_INT:
    case ST_VAL_ARRAY:
        col_spanval_text(out, v);
        break;
    }
}

const char *col_spanval_jaeger(wf_buf_t *out, const st_value_t *v)
{
    switch (v->type) {
    case ST_VAL_BOOL:
        col_spanval_json(out, v);
        return "bool";
    case ST_VAL_INT:
        col_spanval_json(out, v);
        return "int64";
    case ST_VAL_DOUBLE:
        col_spanval_json(out, v);
        return isfinite(v->u.d) ? "float64" : "string";
    case ST_VAL_BYTES:
        col_spanval_json(out, v);
        return "binary";
    case ST_VAL_ARRAY: {
        wf_buf_t tmp = WF_BUF_INIT;
        put_array(&tmp, v);
        col_json_str(out, (const char *)tmp.data, tmp.len);
        wf_buf_free(&tmp);
        return "string";
    }
    case ST_VAL_STRING:
        break;
    }
    col_json_str(out, v->u.s.p, v->u.s.len);
    return "string";
}

void col_spanval_otlp(wf_buf_t *out, const st_value_t *v)
{
    switch (v->type) {
    case ST_VAL_STRING:
        wf_buf_puts(out, "{\"stringValue\":");
        col_json_str(out, v->u.s.p, v->u.s.len);
        break;
    case ST_VAL_BOOL:
        wf_buf_printf(out, "{\"boolValue\":%s", v->u.b ? "true" : "false");
        break;
    case ST_VAL_INT:
        wf_buf_printf(out, "{\"intValue\":\"%" PRId64 "\"", v->u.i);
        break;
    case ST_VAL_DOUBLE:
        wf_buf_puts(out, "{\"doubleValue\":");
        if (isnan(v->u.d)) {
            wf_buf_puts(out, "\"NaN\"");
        } else if (isinf(v->u.d)) {
            wf_buf_puts(out, v->u.d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        } else {
            col_fmt_float(out, v->u.d);
        }
        break;
    case ST_VAL_BYTES:
        wf_buf_puts(out, "{\"bytesValue\":");
        put_b64_quoted(out, v->u.s);
        break;
    case ST_VAL_ARRAY:
        wf_buf_puts(out, "{\"arrayValue\":{\"values\":[");
        for (size_t i = 0; i < v->u.arr.n; i++) {
            if (i > 0) {
                wf_buf_putc(out, ',');
            }
            col_spanval_otlp(out, &v->u.arr.items[i]);
        }
        wf_buf_puts(out, "]}");
        break;
    }
    wf_buf_putc(out, '}');
}

void col_spanval_kvlist_json(wf_buf_t *out, const st_attr_t *kv, size_t n)
{
    wf_buf_putc(out, '{');
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            wf_buf_putc(out, ',');
        }
        col_json_str(out, kv[i].key.p, kv[i].key.len);
        wf_buf_putc(out, ':');
        col_spanval_json(out, &kv[i].value);
    }
    wf_buf_putc(out, '}');
}

bool col_spanval_matches(const st_value_t *v, wf_str_t f, wf_buf_t *scratch)
{
    if (v->type == ST_VAL_STRING) {
        return wf_str_eq(v->u.s, f);
    }
    wf_buf_reset(scratch);
    col_spanval_text(scratch, v);
    if (wf_str_eq((wf_str_t){(const char *)scratch->data, scratch->len}, f)) {
        return true;
    }
    if (v->type != ST_VAL_DOUBLE || f.len == 0 || f.len > 64) {
        return false;
    }
    char num[65];
    memcpy(num, f.p, f.len);
    num[f.len] = '\0';
    char *end = NULL;
    double d = strtod(num, &end);
    return *end == '\0' && (d == v->u.d || (isnan(d) && isnan(v->u.d)));
}
