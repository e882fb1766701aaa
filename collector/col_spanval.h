/*
 * col_spanval.h - the one place where a span attribute value (st_value_t, store/st_span.h) is
 * written out, in each form the trace APIs need:
 *
 *   text    what a tag shows as a plain string and what tag filters compare against: strings
 *           as they are, true/false, decimal integers, shortest round-trip doubles (NaN, +Inf,
 *           -Inf), bytes as standard base64 (as OpenTelemetry's Value.AsString), arrays as
 *           their JSON text. Zipkin tags and Jaeger search use it.
 *   json    a JSON value: strings and bytes (base64) quoted, numbers bare, doubles that JSON
 *           cannot hold (NaN, +Inf, -Inf) as strings, arrays as JSON arrays.
 *   jaeger  a Jaeger model tag's type and value, as Jaeger's OTLP translator makes them:
 *           string, bool, int64, float64 (non-finite ones as strings), binary (base64);
 *           arrays, which Jaeger has no type for, as strings holding their JSON text.
 *   otlp    an OTLP JSON AnyValue object (protojson: int64 as decimal strings, bytes base64,
 *           non-finite doubles as "NaN", "Infinity", "-Infinity").
 *
 * Every function appends to out and cannot fail. Any thread.
 */
#ifndef COL_SPANVAL_H
#define COL_SPANVAL_H

#include "st_span.h"
#include "wf_buf.h"

/* The text form, unquoted. */
void col_spanval_text(wf_buf_t *out, const st_value_t *v);

/* The json form. */
void col_spanval_json(wf_buf_t *out, const st_value_t *v);

/* The jaeger form: appends the tag's JSON value and returns its type name (a literal). */
const char *col_spanval_jaeger(wf_buf_t *out, const st_value_t *v);

/* The otlp form ({"stringValue":".."} and so on). */
void col_spanval_otlp(wf_buf_t *out, const st_value_t *v);

/* A kvlist (a map, which the span model has no value type for) as the JSON object text
 * {"key":json,...}, keys in their given order. */
void col_spanval_kvlist_json(wf_buf_t *out, const st_attr_t *kv, size_t n);

/*
 * Does attribute value v match filter text f as a tag filter compares them (its text form)?
 * Doubles also match any text that reads back as the same number, so that "0.50" finds 0.5.
 */
bool col_spanval_matches(const st_value_t *v, wf_str_t f, wf_buf_t *scratch);

#endif
