/*
 * st_span_codec.h - the span store's byte formats: validation of incoming spans, the log record
 * that makes a batch durable, and the sealed block that holds spans for good.
 *
 * Log record (one per st_spans_append batch, zstd-compressed): every span self-contained, strings
 * inline, so that replay needs nothing but the record.
 *
 * Block (one per seal of the head, up to 4096 spans, zstd-compressed): spans grouped by trace and
 * ordered by start within a trace; every string (names, services, attribute keys and string
 * values, ...) goes through a block dictionary ordered by frequency, resource attribute sets are
 * stored once per block, span ids sit in their own section (they are random and would break
 * zstd's matches in the records), times are offsets scaled by the largest power of ten that
 * divides every timestamp of the block (proxies report microseconds), and a parent is a
 * back-reference to its index in the trace when it is in the block. The layout, all integers
 * LEB128 varints unless said otherwise:
 *
 *   u8 version (1), n_spans, n_traces, svarint base_ns (smallest start), scale_exp (0..6)
 *   n_dict, then n_dict x (len, bytes)
 *   n_res, then n_res x attribute list (resource attribute sets)
 *   n_traces x (n_spans << 1 | is_64bit, 8 or 16 id bytes, record bytes)
 *   n_spans x 8 span id bytes, in record order
 *   the records, trace after trace
 *
 * Decoders check every length and reference against the input and return WF_E_CORRUPT on any
 * inconsistency; they never read out of bounds and allocate at most a small multiple of their
 * input size (fuzzed by tests/fuzz/fuzz_st_span_codec.c).
 */
#ifndef ST_SPAN_CODEC_H
#define ST_SPAN_CODEC_H

#include "st_span.h"

#include "wf_buf.h"

#include <zstd.h>

/* Limits enforced by st__span_check (ST_E_SPAN_LIMIT beyond them). */
#define ST__SPAN_MAX_STR 65536     /* bytes in any one string or bytes value */
#define ST__SPAN_MAX_ATTRS 1024    /* attributes in one list (span, resource, event, link) */
#define ST__SPAN_MAX_EVENTS 1024   /* events per span */
#define ST__SPAN_MAX_LINKS 256     /* links per span */
#define ST__SPAN_MAX_ARRAY 1024    /* items in one array value */
#define ST__SPAN_MAX_DEPTH 4       /* nesting of array values */
#define ST__SPAN_MAX_BYTES 1048576 /* encoded size of one span */

/* Largest decompressed block or log record the decoders accept. */
#define ST__SPAN_MAX_RAW (256u << 20)
_Static_assert(ST_MAX_BATCH_BYTES <= ST__SPAN_MAX_RAW, "replay must accept every span batch");

/*
 * Check one span against the model and the limits: 0, ST_E_SPAN_INVALID (zero ids, end before
 * start, kind or status out of range, invalid UTF-8), ST_E_SPAN_LIMIT or ST_E_TIMESTAMP
 * (negative start). Time-window checks (too old/new) are the caller's.
 */
int st__span_check(const st_span_t *sp);

/* The service name a span is stored under ("" becomes "unknown_service"). */
wf_str_t st__span_service(const st_span_t *sp);

/* Deep-copy src into dst with every pointer into arena a. */
void st__span_copy(wf_arena_t *a, st_span_t *dst, const st_span_t *src);

/*
 * Print a value as the text tag filters compare against (Jaeger's rendering): strings as they
 * are, true/false, decimal integers, shortest round-trip doubles, base64 bytes, JSON arrays.
 * Appends to out.
 */
void st__span_value_text(wf_buf_t *out, const st_value_t *v);

/*
 * Encode n checked spans as a log record payload (replaces out's content). Returns 0, or
 * ST_E_BATCH_LIMIT when the record before compression would exceed max_raw or what replay
 * accepts (ST__SPAN_MAX_RAW).
 */
int st__span_log_encode(wf_buf_t *out, const st_span_t *spans, size_t n, size_t max_raw,
                        ZSTD_CCtx *cctx);
/* The same with raw as the scratch space of the uncompressed record (its content is replaced):
 * the writer keeps one, so that a batch's few hundred kilobytes are not allocated, faulted in
 * and unmapped again on every append. */
int st__span_log_encode_tmp(wf_buf_t *out, wf_buf_t *raw, const st_span_t *spans, size_t n,
                            size_t max_raw, ZSTD_CCtx *cctx);

/*
 * Decode a log record payload; *spans (n of them) and everything they point to live in arena
 * a (strings may point into p, which must outlive them). 0 or WF_E_CORRUPT.
 */
int st__span_log_decode(const void *p, size_t len, wf_arena_t *a, st_span_t **spans, size_t *n);

/* Summary of a block the encoder wrote (for the block table and the trace index). */
typedef struct {
    size_t n_spans;
    size_t n_traces;
    int64_t min_start, max_start; /* ns */
    int64_t min_dur, max_dur;     /* ns */
    uint8_t (*trace_ids)[16];     /* n_traces distinct ids, wf_malloc'ed (wf_free) */
    uint64_t *items;              /* distinct bloom items (st__span_item_*), wf_malloc'ed */
    size_t n_items;
} st__block_info_t;

/*
 * Bloom filter items, as hashes: a service, a service's operation, and an attribute key with its
 * value printed as text (st__span_value_text). The block encoder lists every item of its spans
 * (span, resource, event and link attributes) in st__block_info_t; search asks for the same
 * items. tmp is scratch space.
 */
uint64_t st__span_item_service(wf_str_t service, wf_buf_t *tmp);
uint64_t st__span_item_operation(wf_str_t service, wf_str_t op, wf_buf_t *tmp);
uint64_t st__span_item_tag(wf_str_t key, wf_str_t text, wf_buf_t *tmp);

/*
 * Encode n spans (n >= 1; pointers are borrowed and reordered) as a compressed block into out
 * (replaces its content). info receives the summary.
 */
void st__span_block_encode(const st_span_t **spans, size_t n, ZSTD_CCtx *cctx, int zstd_level,
                           wf_buf_t *out, st__block_info_t *info);

/* A parsed block: header, dictionary and trace directory; records are decoded on demand. */
typedef struct {
    const uint8_t *raw; /* decompressed bytes (in the arena given to st__span_block_open) */
    size_t raw_len;
    size_t n_spans;
    size_t n_traces;
    int64_t base_ns;
    int64_t scale;
    wf_str_t *dict;
    size_t n_dict;
    const st_attr_t **res; /* resource attribute sets */
    size_t *res_n;
    size_t n_res;
    struct st__block_trace {
        uint8_t id[16];
        size_t n_spans;
        size_t first_span; /* index of its first span id */
        size_t rec_off;    /* offset of its records in raw */
        size_t rec_len;
    } * traces;
    const uint8_t *span_ids; /* n_spans x 8 */
} st__span_block_t;

/*
 * Decompress and parse a block; everything lives in arena a. 0 or WF_E_CORRUPT. The resulting
 * block is read-only and may be decoded from by one thread at a time per arena.
 */
int st__span_block_open(st__span_block_t *b, const void *z, size_t zlen, wf_arena_t *a);
/* The same, decompressing with dctx (reused: a fresh context per block costs its allocation and
 * the page faults of touching it). NULL behaves like st__span_block_open. */
int st__span_block_open_dctx(st__span_block_t *b, const void *z, size_t zlen, wf_arena_t *a,
                             ZSTD_DCtx *dctx);

/* Index of the trace with this id in b, or -1. */
long st__span_block_find(const st__span_block_t *b, const uint8_t id[16]);

/*
 * Decode the spans of trace ti into out[0 .. b->traces[ti].n_spans), allocating in a.
 * 0 or WF_E_CORRUPT.
 */
int st__span_block_decode_trace(const st__span_block_t *b, size_t ti, wf_arena_t *a,
                                st_span_t *out);

#endif
