/*
 * col_remote_write.h - the Prometheus remote_write receiver (POST /api/v1/write: 1.0, and 2.0's
 * io.prometheus.write.v2.Request), and the
 * decoded sample set that every push ingest path (remote_write, OTLP metrics) hands to the
 * write queue.
 *
 * A request body is a snappy block (not the framed format) holding a protobuf WriteRequest.
 * The handler checks the announced uncompressed size against COL_RW_MAX_UNCOMPRESSED before
 * allocating, decompresses, decodes the protobuf without copying (labels are slices of the
 * decompressed body), validates every series (label names, UTF-8 values, duplicates, metric
 * names, metadata) and only then submits the samples to the col_writer; a request that fails
 * validation writes nothing. Answers, as Prometheus's receiver and client expect:
 *   204  every sample is durable;
 *   400  text/plain: bad snappy, malformed protobuf, invalid labels or metadata; also when
 *        some samples were refused one by one (out of order, duplicate, too old or new): the
 *        others are kept and the message is the first refusal's, as Prometheus answers
 *        out-of-order samples with 400 and its client then drops rather than retries;
 *   413  the body inflates beyond the limit, or holds more samples than one store batch;
 *   503  shed (write queue full or too slow, bodies over the memory budget) or the store
 *        is shutting down, with Retry-After; 500 the store failed (both retried).
 * Exemplars and native histograms in a TimeSeries are accepted and ignored.
 *
 * Threads: the handler runs on HTTP worker threads; the sample set is filled on that thread
 * and read by the writer thread while the worker waits in col_writer_submit.
 */
#ifndef COL_REMOTE_WRITE_H
#define COL_REMOTE_WRITE_H

#include "col_http.h"
#include "col_writer.h"
#include "st_store.h"
#include "wf_str.h"

#include <stddef.h>
#include <stdint.h>

#define COL_RW_MAX_UNCOMPRESSED ((size_t)64 << 20)
/* Samples per request: the store's default batch limit, so that one request is one batch. */
#define COL_SSET_MAX_SAMPLES ((size_t)2000000)
/* Labels per series while decoding (the store refuses more than its max_labels anyway). */
#define COL_SSET_MAX_SERIES_LABELS 1024
/* All labels of one request, bounding the memory a crafted body can make us hold. */
#define COL_SSET_MAX_LABELS ((size_t)8 << 20)

/* POST /api/v1/write. writer is the collector's col_writer_t. Content-Type's proto parameter
 * picks the message: none or prometheus.WriteRequest (1.0), io.prometheus.write.v2.Request
 * (2.0: the answer carries X-Prometheus-Remote-Write-Samples-Written, and -Histograms- and
 * -Exemplars-Written as 0); any other is 415. */
void col_remote_write_handler(void *writer, col_req_t *req, col_resp_t *resp);

/* ---- the decoded sample set (shared by the push ingest paths) ------------------------------ */

typedef struct {
    size_t label_off, nlabels;   /* into labels[] */
    size_t sample_off, nsamples; /* into ts[] / v[] */
} col_sset_series_t;

typedef struct {
    wf_str_t family, help, unit; /* borrowed, like the labels */
    st_metric_type_t type;
} col_sset_meta_t;

/*
 * Series, samples and metadata of one request. Label and metadata strings are borrowed
 * (from the request body or its arena); the arrays are owned and grow within the limits
 * above. Zero-initialise, fill, submit, then col_sset_free.
 */
typedef struct {
    st_label_t *labels;
    size_t nlabels, cap_labels;
    col_sset_series_t *series;
    size_t nseries, cap_series;
    int64_t *ts;
    double *v;
    size_t nsamples, cap_samples;
    col_sset_meta_t *meta;
    size_t nmeta, cap_meta;
    size_t label_bytes; /* sum of name and value lengths of every series, for est_bytes */
    size_t cur_label_off, cur_sample_off; /* the series being built */
} col_sset_t;

void col_sset_free(col_sset_t *s);
/* Size the arrays for this many labels, samples, series and metadata entries up front (each
 * capped at its limit), so that a large request is not built by repeated doubling. */
void col_sset_reserve(col_sset_t *s, size_t labels, size_t samples, size_t series, size_t meta);
/* Start a series: the labels and samples appended next belong to it. */
void col_sset_begin(col_sset_t *s);
/* Append one label to the series being built; 0 or WF_E_LIMIT. */
int col_sset_label(col_sset_t *s, wf_str_t name, wf_str_t value);
/* Append one sample to the series being built; 0 or WF_E_LIMIT. */
int col_sset_sample(col_sset_t *s, int64_t ts_ms, double v);
/* The labels of the series being built (for validation before col_sset_end). */
static inline const st_label_t *col_sset_cur_labels(const col_sset_t *s, size_t *n)
{
    *n = s->nlabels - s->cur_label_off;
    return s->labels != NULL ? s->labels + s->cur_label_off : NULL; /* NULL + 0 is undefined */
}
/* Close the series being built; one without samples is dropped (its labels forgotten). 0 or
 * WF_E_LIMIT. */
int col_sset_end(col_sset_t *s);
int col_sset_metadata(col_sset_t *s, wf_str_t family, st_metric_type_t type, wf_str_t help,
                      wf_str_t unit);

/*
 * Validate the labels of one series the way the store will, so that a bad request is refused
 * as a whole before anything is written: names non-empty [a-zA-Z_][a-zA-Z0-9_]*, values
 * UTF-8, no name twice, at least one non-empty value, and a __name__ that is a valid metric
 * name. 0, or -EINVAL with a message in err.
 */
int col_sset_check_labels(const st_label_t *labels, size_t n, char *err, size_t errlen);
/* Is s a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)? */
bool col_metric_name_valid(wf_str_t s);

/*
 * Submit the set to the write queue and wait until it is durable; w receives the results
 * (w->status, accepted, rejected, reject_msg). Returns w->status.
 */
int col_sset_submit(col_writer_t *wr, col_sset_t *s, col_write_t *w);

/* ---- the decoder, exposed for tests and fuzzing --------------------------------------------- */

/*
 * Decompress a snappy block into a newly allocated buffer (*out, wf_free it). 0; WF_E_INVAL
 * when it is not valid snappy; WF_E_LIMIT when it would inflate beyond limit (checked before
 * allocating). err receives a message.
 */
int col_rw_uncompress(const uint8_t *in, size_t len, size_t limit, uint8_t **out, size_t *out_len,
                      char *err, size_t errlen);

/*
 * Decode and validate a protobuf WriteRequest into s (which borrows from pb). 0; WF_E_INVAL
 * for malformed protobuf or invalid labels/metadata; WF_E_LIMIT beyond the set's limits. err
 * receives the message for the 400/413 answer.
 */
int col_rw_decode(const uint8_t *pb, size_t len, col_sset_t *s, char *err, size_t errlen);

/*
 * The same for a remote write 2.0 io.prometheus.write.v2.Request: the symbol table (its first
 * entry must be "", every entry UTF-8, at most 4Mi entries), series as pairs of symbol refs
 * (a ref outside the table or an odd count is malformed), samples, and per-series metadata
 * recorded for the series' metric family. Native histograms and exemplars are accepted and
 * not stored; *histograms counts the series that carried histograms.
 */
int col_rw2_decode(const uint8_t *pb, size_t len, col_sset_t *s, size_t *histograms, char *err,
                   size_t errlen);

#endif
