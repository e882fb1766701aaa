/*
 * col_otlp_json.h - reading OTLP JSON (the proto3 JSON mapping of opentelemetry-proto) with
 * jansson, shared by the trace and metric receivers: members by their lowerCamelCase or
 * original snake_case names, 64-bit integers as numbers or decimal strings, doubles with the
 * "NaN" / "Infinity" / "-Infinity" strings, hex ids and base64 bytes. Hex decoding is also what
 * Zipkin and Jaeger ids use.
 *
 * Every reader that can fail returns 0 or WF_E_INVAL with a message ("json: <what> is not
 * ...") written into err (errlen bytes, always terminated). Values are borrowed from the jansson
 * tree unless said otherwise. Any thread.
 */
#ifndef COL_OTLP_JSON_H
#define COL_OTLP_JSON_H

#include "col_http.h"
#include "wf_arena.h"
#include "wf_str.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Member camel of obj, else snake (NULL: no alternative name); NULL when absent or null. */
json_t *col_oj_get(json_t *obj, const char *camel, const char *snake);

/* An optional array member: *out is NULL when absent, else the array; a non-array fails. */
int col_oj_array(json_t *obj, const char *camel, const char *snake, json_t **out, char *err,
                 size_t errlen);

/* v must be an object; what names it in the message. */
int col_oj_object(json_t *v, const char *what, char *err, size_t errlen);

/* An optional string member ("" when absent), borrowed from the tree. */
int col_oj_string(json_t *obj, const char *camel, const char *snake, wf_str_t *out, char *err,
                  size_t errlen);

/*
 * An integer: a JSON number with no fraction (as protobuf's JSON parsers accept "1.0" and
 * "1e3") or a decimal string. Signed: *si in int64 range (and *ui its bit pattern); unsigned:
 * *ui in uint64 range, negatives refused (*si its bit pattern).
 */
int col_oj_int(json_t *v, const char *what, bool is_unsigned, int64_t *si, uint64_t *ui, char *err,
               size_t errlen);

/* An optional integer member (0 when absent); *present (may be NULL) says whether it was. */
int col_oj_int_field(json_t *obj, const char *camel, const char *snake, bool is_unsigned,
                     int64_t *si, uint64_t *ui, bool *present, char *err, size_t errlen);

/* A double: a number, or a string holding "NaN", "Infinity", "-Infinity" or a number. */
int col_oj_double(json_t *v, const char *what, double *out, char *err, size_t errlen);

/*
 * An optional id member of exactly size bytes as 2*size hex digits (either case); "" is
 * accepted (all zeros) when may_be_empty. *present says whether the member was there.
 */
int col_oj_hex_id(json_t *obj, const char *camel, const char *snake, uint8_t *id, size_t size,
                  bool may_be_empty, bool *present, char *err, size_t errlen);

/* Standard or URL-safe base64, padding optional, decoded into arena. WF_E_LIMIT (err set) when
 * the arena's limit is reached. */
int col_oj_base64(json_t *v, const char *what, wf_arena_t *arena, wf_str_t *out, char *err,
                  size_t errlen);

/*
 * The encoding of an OTLP/HTTP request from its Content-Type: *json true for application/json,
 * false for protobuf (application/x-protobuf, application/protobuf, or no Content-Type). 0, or
 * WF_E_INVAL after answering 415 in resp.
 */
int col_otlp_content_type(const char *content_type, bool *json, col_resp_t *resp);

/* Exactly 2*n hex digits s[0..len) into out[0..n); false when the length or a digit is wrong. */
bool col_hex_decode(const char *s, size_t len, uint8_t *out, size_t n);

#endif
