/*
 * col_expfmt.h - the Prometheus exposition formats, in and out: a strict parser of the text
 * format 0.0.4 and of OpenMetrics 1.0 text, and a writer of the text format 0.0.4 (what
 * /federate and the collector's own /metrics answer).
 *
 * Parser. It walks a contiguous buffer one entry (sample, HELP, TYPE, UNIT, comment) at a time
 * and hands out slices: names and label values without escapes point into the input; only
 * values that had escapes are unescaped into the caller's arena, which also holds each
 * sample's label array. An entry therefore stays valid as long as the input buffer and the
 * arena do, so a caller may keep every entry of a scrape without copying, or reset the arena
 * after each entry when it keeps none. The grammar is Prometheus 2.42's (model/textparse),
 * with these deliberate differences, all in the strict direction:
 *   - a raw newline inside a quoted label value is an error (0.0.4 lets it through, which
 *     makes one unterminated quote swallow the rest of a scrape);
 *   - labels must be separated by commas (0.0.4 accepts `{a="1"b="2"}`);
 *   - the same label name twice in one series, and `__name__` inside the braces, are errors;
 *   - the last line of a 0.0.4 body need not end with a newline (curl --data strips it).
 * Blanks before a sample's metric name are an error here; in Prometheus they end up in the
 * name, which fails the scrape all the same.
 * Like Prometheus: unknown escapes in label values (`\t`) are kept as written; HELP text
 * unescapes \\ and \n (OpenMetrics: \" too, like a label value); a value "NaN"
 * becomes the ordinary NaN (never the staleness marker); OpenMetrics exemplars are checked
 * and skipped; `_created` series are ordinary series (2.42 has no special handling); an
 * OpenMetrics timestamp is float seconds truncated to ms, a 0.0.4 one is integer ms.
 *
 * Errors: col_expfmt_next returns WF_E_INVAL (syntax) or WF_E_LIMIT (a limit, or the arena's
 * limit) and col_expfmt_error() says what and on which line ("line 3: ..."). After an error
 * the parser stays failed.
 *
 * Writer: functions appending to a wf_buf_t; values formatted as Go's
 * strconv.FormatFloat(v, 'g', -1, 64) with +Inf/-Inf/NaN, as Prometheus's text encoder does.
 *
 * Threads: a parser is used by one thread; the writer functions are pure.
 */
#ifndef COL_EXPFMT_H
#define COL_EXPFMT_H

#include "st_store.h"
#include "wf_arena.h"
#include "wf_buf.h"
#include "wf_str.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    COL_EXPFMT_TEXT = 0,        /* text/plain;version=0.0.4 */
    COL_EXPFMT_OPENMETRICS = 1, /* application/openmetrics-text;version=1.0.0 (and 0.0.1) */
} col_expfmt_format_t;

typedef struct {
    size_t max_line_len;        /* bytes of one line; default 1 MiB */
    size_t max_labels;          /* per series, without __name__; default 64 */
    size_t max_label_name_len;  /* default 256 */
    size_t max_label_value_len; /* bytes after unescaping; default 16384 */
} col_expfmt_limits_t;

void col_expfmt_limits_default(col_expfmt_limits_t *l);

typedef enum {
    COL_EXPFMT_SERIES = 1,
    COL_EXPFMT_HELP,
    COL_EXPFMT_TYPE,
    COL_EXPFMT_UNIT,
    COL_EXPFMT_COMMENT, /* 0.0.4 only: a `#` line that is not HELP or TYPE */
} col_expfmt_kind_t;

typedef struct {
    col_expfmt_kind_t kind;
    size_t line;           /* 1-based line number of the entry */
    wf_str_t name;         /* the metric name (SERIES) or the family named by HELP/TYPE/UNIT */
    st_label_t *labels;    /* SERIES: the labels in the braces, in input order (no __name__) */
    size_t nlabels;        /* SERIES */
    double value;          /* SERIES */
    bool has_ts;           /* SERIES: the line carried a timestamp */
    int64_t ts_ms;         /* SERIES, when has_ts */
    st_metric_type_t type; /* TYPE ("untyped" and "unknown" are ST_METRIC_UNKNOWN) */
    wf_str_t text;         /* HELP text (unescaped), UNIT text, or the COMMENT line */
} col_expfmt_entry_t;

typedef struct {
    /* private */
    const char *p;
    const char *end;
    size_t line;
    col_expfmt_format_t fmt;
    col_expfmt_limits_t lim;
    wf_arena_t *arena;
    bool eof_seen; /* OpenMetrics: `# EOF` read */
    bool failed;
    char err[256];
} col_expfmt_parser_t;

/*
 * Prepare to parse buf[0..len) (borrowed; it must outlive every entry handed out) in format
 * fmt with limits lim (NULL: defaults). Unescaped strings and label arrays come from arena
 * (borrowed); its limit bounds what one parse may allocate.
 */
void col_expfmt_parser_init(col_expfmt_parser_t *p, const void *buf, size_t len,
                            col_expfmt_format_t fmt, const col_expfmt_limits_t *lim,
                            wf_arena_t *arena);

/* Read the next entry into *e: 1 when one was read, 0 at the end of the input (for
 * OpenMetrics, after `# EOF`), WF_E_INVAL or WF_E_LIMIT on error (see col_expfmt_error). */
int col_expfmt_next(col_expfmt_parser_t *p, col_expfmt_entry_t *e);

/* The message of the last error, "line N: what"; "" when there was none. */
const char *col_expfmt_error(const col_expfmt_parser_t *p);

/* The format a scrape's Content-Type names: OpenMetrics for application/openmetrics-text,
 * the text format for anything else (as Prometheus 2.42 falls back). NULL is the text format. */
col_expfmt_format_t col_expfmt_format_of(const char *content_type);

/* True when s is a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) / label name. */
bool col_expfmt_valid_metric_name(wf_str_t s);
bool col_expfmt_valid_label_name(wf_str_t s);

/* ---- Writer (text format 0.0.4) ----------------------------------------------------------- */

/* A value as Prometheus's text encoder writes it: Go 'g' shortest, "+Inf", "-Inf", "NaN". */
void col_expfmt_write_value(wf_buf_t *out, double v);
/* `# HELP name text\n` with `\` and newline escaped. */
void col_expfmt_write_help(wf_buf_t *out, wf_str_t name, wf_str_t help);
/* `# TYPE name type\n`; ST_METRIC_UNKNOWN is "untyped", types 0.0.4 lacks are "untyped". */
void col_expfmt_write_type(wf_buf_t *out, wf_str_t name, st_metric_type_t type);
/*
 * One sample line: name{l1="v1",...} value [ts]\n. labels (borrowed, any order, may include
 * __name__, which is skipped) are written sorted by name with values escaped; no braces when
 * there are none.
 */
void col_expfmt_write_sample(wf_buf_t *out, wf_str_t name, const st_label_t *labels, size_t nlabels,
                             double v, bool has_ts, int64_t ts_ms);
/* The same with the labels written in the order given (__name__ still skipped), for writers
 * that must reproduce Prometheus's order exactly (/federate appends instance="" last). */
void col_expfmt_write_sample_ordered(wf_buf_t *out, wf_str_t name, const st_label_t *labels,
                                     size_t nlabels, double v, bool has_ts, int64_t ts_ms);

#endif
