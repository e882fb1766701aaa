/*
 * st_span.h - the span model shared by OTLP, Zipkin and Jaeger, and the span store's API.
 *
 * Spans are written by the store's writer thread with st_spans_append and read by any thread.
 * Ids are big-endian byte strings as on the wire: a 64-bit trace id (Zipkin, old Jaeger) is
 * stored as 16 bytes whose first 8 are zero. A parent span id of all zeros means "root".
 *
 * Input structs (st_span_t and what it points to) are borrowed for the duration of a call.
 * Output lists own their memory and everything their spans point to, until *_free.
 */
#ifndef ST_SPAN_H
#define ST_SPAN_H

#include "st_store.h"
#include "wf_arena.h"

typedef enum {
    ST_SPAN_KIND_UNSPECIFIED = 0, /* OTLP numbering */
    ST_SPAN_KIND_INTERNAL = 1,
    ST_SPAN_KIND_SERVER = 2,
    ST_SPAN_KIND_CLIENT = 3,
    ST_SPAN_KIND_PRODUCER = 4,
    ST_SPAN_KIND_CONSUMER = 5,
} st_span_kind_t;

typedef enum {
    ST_STATUS_UNSET = 0, /* OTLP numbering */
    ST_STATUS_OK = 1,
    ST_STATUS_ERROR = 2,
} st_status_code_t;

typedef enum {
    ST_VAL_STRING,
    ST_VAL_BOOL,
    ST_VAL_INT,
    ST_VAL_DOUBLE,
    ST_VAL_BYTES,
    ST_VAL_ARRAY,
} st_value_type_t;

typedef struct st_value st_value_t;
struct st_value {
    st_value_type_t type;
    union {
        wf_str_t s; /* STRING and BYTES */
        bool b;
        int64_t i;
        double d;
        struct {
            const st_value_t *items;
            size_t n;
        } arr;
    } u;
};

typedef struct {
    wf_str_t key;
    st_value_t value;
} st_attr_t;

typedef struct {
    int64_t time_ns;
    wf_str_t name;
    const st_attr_t *attrs;
    size_t n_attrs;
} st_span_event_t;

typedef struct {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    wf_str_t trace_state;
    const st_attr_t *attrs;
    size_t n_attrs;
} st_span_link_t;

typedef struct {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t parent_span_id[8]; /* zero = root */
    wf_str_t trace_state;
    uint32_t flags;
    wf_str_t name; /* the operation */
    st_span_kind_t kind;
    int64_t start_ns; /* Unix epoch nanoseconds */
    int64_t end_ns;   /* >= start_ns */
    st_status_code_t status_code;
    wf_str_t status_message;
    wf_str_t service; /* resource attribute service.name; "" is stored as "unknown_service" */
    wf_str_t scope_name;
    wf_str_t scope_version;
    const st_attr_t *resource_attrs; /* all resource attributes, service.name included */
    size_t n_resource_attrs;
    const st_attr_t *attrs;
    size_t n_attrs;
    const st_span_event_t *events;
    size_t n_events;
    const st_span_link_t *links;
    size_t n_links;
} st_span_t;

/*
 * Append n spans atomically: either every span is valid and all are durable on return 0 (inside
 * a group, below: valid and logged, durable when the group commits), or nothing is written and the
 * first problem is returned (ST_E_SPAN_INVALID, ST_E_SPAN_LIMIT, ST_E_TOO_OLD, ST_E_TOO_NEW,
 * ST_E_BATCH_LIMIT: more than max_batch_spans, or encoded spans over max_batch_bytes); *bad_index
 * (if not NULL) names the span. Writer thread only.
 */
int st_spans_append(st_store_t *s, const st_span_t *spans, size_t n, size_t *bad_index);

/*
 * Many small st_spans_append calls in one SQLite transaction, for the collector's write queue
 * (col_writer.c), whose commit is most of a small request's cost. Writer thread only; no flush,
 * retention or metric batch may run while a group is open.
 *
 * st_spans_group_begin opens the group (ST_E_CLOSED on a failed or closed store, or the
 * transaction's error). Inside it st_spans_append keeps its checks and its per-call answer: it
 * returns 0 when its spans are valid and logged in the group's transaction, or an error that
 * leaves the group exactly as it was (the call's own invalid spans, ST_E_BATCH_LIMIT, ...), or,
 * when a database error stopped it half-way, that error, after which the group cannot commit:
 * later appends return the same error and st_spans_group_commit rolls back and returns it.
 * Nothing of the group is durable, nor visible to readers, before st_spans_group_commit returns
 * 0; then every append of the group that returned 0 is durable and visible, as if each had been
 * made alone. On an error, none is: the caller may run each append again alone.
 * st_spans_group_abort rolls the group back.
 */
int st_spans_group_begin(st_store_t *s);
int st_spans_group_commit(st_store_t *s);
void st_spans_group_abort(st_store_t *s);

/* A list of decoded spans; everything they point to lives in the list's arena. */
typedef struct {
    st_span_t *spans;
    size_t n;
    wf_arena_t arena;
} st_span_list_t;

void st_span_list_free(st_span_list_t *l);

/* Every stored span of the trace, ordered by start time. WF_E_NOTFOUND when there is none. */
int st_trace_get(st_store_t *s, const uint8_t trace_id[16], st_span_list_t **out);

typedef struct {
    wf_str_t key;
    wf_str_t value; /* matched against the attribute's value printed as text */
} st_tag_filter_t;

typedef struct {
    wf_str_t service;            /* required ("" = any service) */
    wf_str_t operation;          /* "" = any */
    int span_kind;               /* -1 = any, else st_span_kind_t */
    const st_tag_filter_t *tags; /* all must match one span (span, resource or event attrs) */
    size_t n_tags;
    int64_t start_min_ns;    /* span start >= this (0 = unbounded) */
    int64_t start_max_ns;    /* span start <= this (0 = unbounded) */
    int64_t min_duration_ns; /* 0 = no bound */
    int64_t max_duration_ns; /* 0 = no bound */
    size_t limit;            /* max traces, 0 = 20 */
} st_trace_query_t;

typedef struct {
    uint8_t (*ids)[16];
    size_t n;
} st_trace_ids_t;

void st_trace_ids_free(st_trace_ids_t *l);

/*
 * Trace ids having at least one span that satisfies every condition of q, newest matching span
 * first, at most q->limit of them.
 */
int st_trace_search(st_store_t *s, const st_trace_query_t *q, st_trace_ids_t **out);

/* Sorted service names seen within the retention period. */
int st_services(st_store_t *s, st_strlist_t **out);

typedef struct {
    char *name;
    st_span_kind_t kind;
} st_operation_t;

typedef struct {
    st_operation_t *ops;
    size_t n;
} st_operation_list_t;

void st_operation_list_free(st_operation_list_t *l);

/* Operations (span name, kind) of service, sorted by name then kind; kind -1 = any kind. */
int st_operations(st_store_t *s, wf_str_t service, int kind, st_operation_list_t **out);

typedef struct {
    char *parent; /* calling service */
    char *child;  /* called service */
    uint64_t call_count;
    uint64_t error_count; /* calls whose called span, or calling CLIENT span, has status ERROR */
} st_dependency_t;

typedef struct {
    st_dependency_t *deps;
    size_t n;
} st_dependency_list_t;

void st_dependency_list_free(st_dependency_list_t *l);

/*
 * Caller -> callee service pairs with call counts, from spans starting in [from_ns, to_ns]:
 * every span whose parent span (same trace) belongs to another service counts one call from the
 * parent's service to its own; an error when that span, or its parent if the parent is a
 * CLIENT span, has status ERROR (Zipkin's rule for a link's errorCount).
 */
int st_dependencies(st_store_t *s, int64_t from_ns, int64_t to_ns, st_dependency_list_t **out);

#endif
