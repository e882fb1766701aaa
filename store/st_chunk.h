/*
 * st_chunk.h - the sample chunk codec: Gorilla-style compression of (timestamp, value) pairs
 * of one series.
 *
 * A chunk is a self-describing byte string: a 14-byte header (form, modes, sample count, first
 * timestamp), then bit-packed samples: timestamps (ms) as delta-of-delta residuals against a
 * smoothed interval, values as integer delta residuals while they are integers (|v| < 2^53,
 * not -0.0), switching to XOR-compressed floats at the first value that is not. Every bit
 * pattern of a double survives a round trip, including NaN payloads (Prometheus's staleness
 * marker is the NaN 0x7ff0000000000002), -0.0 and the infinities. st_chunk.c describes the
 * format.
 *
 * The encoder appends in timestamp order (strictly increasing); at any moment its bytes form a
 * valid chunk that the iterator can read (this is how the in-memory head is queried).
 * st_chunk_seal re-encodes a finished chunk into its most compact stored form;
 * st_chunk_seal_split into a timestamp column and a values-only chunk, so that series with
 * identical timestamps can share one column (the store's sealed chunks).
 *
 * Not thread-safe: callers (the store) serialise access. The iterator never reads outside the
 * given bytes and reports corrupt input as WF_E_CORRUPT; it is fuzzed.
 */
#ifndef ST_CHUNK_H
#define ST_CHUNK_H

#include "wf_buf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    wf_buf_t buf;      /* the chunk bytes (owned) */
    uint32_t count;    /* samples in the chunk */
    int64_t mint;      /* first timestamp */
    int64_t maxt;      /* last timestamp */
    double last_value; /* the newest value (bit-exact) */
    /* encoder state, private */
    uint64_t nbits;         /* bits of the sample stream (after the header) */
    int64_t t_delta;        /* timestamp predictor: reference interval (ms) */
    uint64_t v_prev;        /* bits of the previous value (float mode) */
    int64_t i_v;            /* previous value (integer mode) */
    int64_t i_delta;        /* value predictor state (integer mode) */
    uint8_t t_frac, i_frac; /* sixteenths of t_delta / i_delta for the averaging predictors */
    uint8_t leading;        /* XOR window of the previous value; 0xff = none yet */
    uint8_t trailing;
    uint8_t mode;   /* current value mode: 0 float, 1 integer */
    uint8_t vpred;  /* integer value predictor (set before the first append; seal tries all) */
    uint8_t tcode;  /* timestamp code table (set before the first append; seal tries all) */
    uint8_t no_int; /* never start in integer mode (st_chunk_seal's alternative form) */
    uint8_t part;   /* 0 timestamps and values; 1 timestamps only; 2 values only (seal) */
    uint8_t hdr;    /* header bytes of the form being written */
    uint64_t vbits; /* bits of the value codes: the size of the values-only sealed stream */
} st_chunk_enc_t;

void st_chunk_enc_init(st_chunk_enc_t *e);
void st_chunk_enc_free(st_chunk_enc_t *e);
/*
 * Append a sample; ts must be > e->maxt when count > 0, else ST_E_OUT_OF_ORDER (nothing is
 * changed). Every int64 timestamp and every double bit pattern is encodable; the only other
 * error is WF_E_LIMIT when the chunk already holds 2^32 - 1 samples. Amortised O(1); the
 * buffer grows by doubling.
 */
int st_chunk_enc_append(st_chunk_enc_t *e, int64_t ts, double v);
/* The chunk's bytes as they are now (borrowed; valid until the next append or free). */
const uint8_t *st_chunk_enc_bytes(const st_chunk_enc_t *e, size_t *len);

/*
 * Re-encode the chunk in data/len into its most compact stored form, appended to out. Returns
 * 0, or WF_E_CORRUPT when data is not a valid chunk (out is then unchanged). Tries every
 * predictor and code table (and zstd), so it costs a few microseconds per hundred samples
 * plus one zstd attempt for streams of 128 bytes or more; a zstd form makes every later read
 * of the chunk pay a decompression (tens of microseconds), so seal keeps it only when it saves
 * an eighth of the bytes.
 */
int st_chunk_seal(const uint8_t *data, size_t len, wf_buf_t *out);

/*
 * Seal into the split form: the timestamp column (ts_out) and a values-only chunk (vals_out),
 * appended to the two buffers. Series scraped together have identical timestamps, so the store
 * keeps one timestamp column for all their chunks (st_metrics.c). Reading needs both parts
 * (st_chunk_iter_init_split). Returns 0, or WF_E_CORRUPT when data is not a valid chunk or
 * holds no sample (both buffers are then unchanged). Costs as st_chunk_seal.
 */
int st_chunk_seal_split(const uint8_t *data, size_t len, wf_buf_t *ts_out, wf_buf_t *vals_out);

typedef struct {
    const uint8_t *data; /* borrowed */
    size_t len;
    /* private decoder state; data/len are the sample stream after the header */
    size_t bit;   /* next bit to read */
    size_t nbits; /* bits present */
    uint32_t count, read;
    int64_t t, t_delta;
    uint64_t v;
    int64_t i_v, i_delta;
    uint8_t t_frac, i_frac, vpred, tcode;
    uint8_t leading, trailing, mode;
    uint8_t failed; /* a corrupt sample was met: every later call fails too */
    uint8_t *owned; /* decompressed form of a sealed chunk, when it needs one */
    /* split form: the timestamp stream's cursor (data/bit/nbits are the value stream's) */
    const uint8_t *tdata;
    size_t tlen, tbit, tnbits;
} st_chunk_iter_t;

/*
 * Prepare to read a chunk (head or sealed form). WF_E_CORRUPT if the header is invalid or the
 * stream cannot hold the announced count (nothing to free then; st_chunk_iter_free is harmless
 * anyway). A chunk in zstd form is decompressed here into memory the iterator owns.
 */
int st_chunk_iter_init(st_chunk_iter_t *it, const uint8_t *data, size_t len);
/*
 * Prepare to read a chunk of the split form: its timestamp column ts/ts_len and its values-only
 * chunk vals/vals_len (st_chunk_seal_split). With ts == NULL this is st_chunk_iter_init of
 * vals. WF_E_CORRUPT when either part is invalid, the parts' sample counts differ, or a part
 * has the wrong form; as st_chunk_iter_init otherwise. Both parts are borrowed.
 */
int st_chunk_iter_init_split(st_chunk_iter_t *it, const uint8_t *ts, size_t ts_len,
                             const uint8_t *vals, size_t vals_len);
/*
 * Next sample: returns 1 with *ts and *v set, 0 at the end, or WF_E_CORRUPT (and again on every
 * later call). Samples already returned were decoded correctly only if the whole chunk reads
 * without error: a caller that must not use partial data reads to the end first.
 */
int st_chunk_iter_next(st_chunk_iter_t *it, int64_t *ts, double *v);
/* Number of samples the chunk header announces. */
uint32_t st_chunk_iter_count(const st_chunk_iter_t *it);
void st_chunk_iter_free(st_chunk_iter_t *it);

#endif
