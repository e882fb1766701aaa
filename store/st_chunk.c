/*
 * st_chunk.c - the sample chunk codec (see st_chunk.h for the contract).
 *
 * Layout (all integers little-endian):
 *
 *   byte  0      form: 0 = raw sample stream, 1 = zstd-compressed sample stream;
 *                split form (st_chunk_seal_split): 2 = raw values-only stream, 3 = zstd
 *                values-only stream, 4 = timestamp column (raw timestamps-only stream)
 *   byte  1      bit 0: mode of the first value (0 float, 1 integer); bits 1-3: zero padding
 *                bits in the stream's last byte; bits 4-5: integer value predictor; bit 6:
 *                timestamp code table; bit 7: 0. Forms 2-3 have bits 6-7 zero, form 4 has bits
 *                0 and 4-5 zero
 *   bytes 2..5   sample count (u32); rewritten in place (with byte 1) on every append, so
 *                the head chunk's bytes are a valid chunk at any moment
 *   bytes 6..13  first timestamp (i64, ms); absent in forms 2-3 (their header is 6 bytes)
 *   form 0, 2, 4 the sample stream, MSB-first bit-packed
 *   form 1, 3:   u32 length of the raw sample stream, then one zstd frame holding it
 *
 * The stream must hold exactly count samples: the padding count makes its bit length exact,
 * so a wrong count or stray bits are detected rather than decoded as phantom samples.
 *
 * Sample stream: the first sample's value (64 raw bits in float mode, an integer code in
 * integer mode), then for every further sample a timestamp code followed by a value code.
 *
 * Timestamps: the residual of the delta against a reference interval, in prefix buckets.
 * Plain delta-of-delta (residual against the previous delta) suffers with scrape jitter: with
 * independent jitter j per sample, dod = j[n] - 2j[n-1] + j[n-2] has three times the variance
 * of j[n] - j[n-1]. So the reference is a moving average of the deltas (weight 1/16, in
 * sixteenths of a ms), restarted at the observed delta on the first delta and whenever the
 * residual leaves +-63 ms (missed scrape, interval change), where it behaves as dod. Tables
 * (payload two's complement): 0: 0 | 10+4 | 110+7 | 1110+16 | 11110+32 | 11111+64 bits, for
 * exact intervals (1 bit a sample); 1: 0+4 | 10+7 | 110+16 | 1110+32 | 1111+64, for jitter.
 * Every int64 timestamp sequence is encodable (residuals wrap modulo 2^64), and the decoder
 * refuses a timestamp that is not above the previous one.
 *
 * Values, integer mode: the residual of the value's delta against a predictor (previous delta
 * = Gorilla's delta-of-delta, moving average of the deltas, or zero for sparse histogram
 * buckets), 0 | 10+5 | 110+8 | 1110+13 | 11110+22 | 111110+36 | 1111110+64; the code 1111111
 * switches the rest of the chunk to float mode and is followed by the value as an XOR code
 * against the previous integer. An integer is a double v with |v| < 2^53 and v == trunc(v)
 * and not -0.0, so the conversion is exact.
 *
 * Values, float mode: Gorilla XOR: 0 = same bits | 10 + bits inside the previous
 * leading/trailing-zero window | 11 + 5 bits leading zeros + 6 bits significant-bit count
 * (0 means 64) + the significant bits.
 *
 * Split form: the same codes as the sample stream, separated: the timestamp column (form 4)
 * holds the first timestamp in its header and the timestamp codes of the later samples; the
 * values-only chunk (form 2/3) holds the value codes, and must announce the column's count.
 * Series scraped together have byte-equal columns, which the store keeps once. A values-only
 * chunk may use predictor 3 (constant): its stream is the first value alone, and every sample
 * has that value's bits (counters at rest, histogram buckets never hit: 480 samples in a
 * handful of bytes).
 *
 * The head encodes with the averaging predictors and the jitter table; st_chunk_seal encodes
 * every combination (and float-only), keeps the smallest, and zstd-compresses the stream when
 * that is smaller still; st_chunk_seal_split does the same for each of its two streams (the
 * timestamp column is never zstd-compressed: jitter does not compress).
 *
 * The encoder writes straight into the buffer through unaligned 64-bit big-endian
 * read-modify-write: the buffer always keeps zeroed slack after the last byte, so a write
 * never needs a branch for the buffer end and the bytes are complete after every append.
 */
#include "st_chunk.h"

#include "st_store.h"
#include "wf_alloc.h"
#include "wf_err.h"

#include <math.h>
#include <string.h>
#include <zstd.h>

#define HDR_LEN 14
#define VHDR_LEN 6 /* values-only forms: no first timestamp */
#define FORM_RAW 0
#define FORM_ZSTD 1
#define FORM_VALS 2      /* values only, raw stream (timestamps in a separate column) */
#define FORM_VALS_ZSTD 3 /* values only, zstd stream */
#define FORM_TS 4        /* timestamp column: timestamps only, raw stream */
#define PART_BOTH 0
#define PART_TS 1
#define PART_VALS 2
#define MODE_FLOAT 0
#define MODE_INT 1
#define NO_WINDOW 0xff
#define VPRED_DOD 0   /* residual = delta - previous delta (Gorilla's delta-of-delta) */
#define VPRED_AVG 1   /* residual = delta - moving average of the deltas */
#define VPRED_DELTA 2 /* residual = delta (sparse histogram buckets: no echo after a bump) */
#define VPRED_COUNT 3
#define VPRED_CONST 3 /* values-only forms: every value has the first value's bits */
#define TS_RESET 63

/* Upper bound of one sample's bits: ts 5+64, value 7 (switch) + 2+5+6+64. Round up, plus the
 * 8-byte window that a 64-bit read-modify-write touches. */
#define MAX_SAMPLE_BYTES 20
#define ENC_SLACK (MAX_SAMPLE_BYTES + 16)

/* A zstd-form chunk may not claim a raw stream longer than this (guards the allocation). */
#define MAX_RAW_LEN (4u << 20)

/* Timestamp code tables: payload bits after k prefix ones (0 = the residual 0, no payload).
 * Table 0 favours exact intervals, table 1 jittered ones (no 1-bit zero code, shorter prefixes). */
static const uint8_t ts_bits[2][6] = {{0, 4, 7, 16, 32, 64}, {4, 7, 16, 32, 64, 0}};
static const uint8_t ts_prefix_max[2] = {5, 4};
#define TCODE_COUNT 2
static const uint8_t int_bits[8] = {0, 5, 8, 13, 22, 36, 64, 0};
#define INT_PREFIX_MAX 7 /* seven ones: switch to float */

static const uint8_t empty_chunk[HDR_LEN] = {FORM_RAW, MODE_FLOAT};

static inline uint64_t load_be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline void store_be64(uint8_t *p, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
}

static inline void put_u32le(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint32_t get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void put_u64le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint64_t get_u64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

static inline uint64_t dbl_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

static inline double bits_dbl(uint64_t u)
{
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* True when v is exactly an integer that integer mode can carry (see the top comment). */
static inline int as_int(double v, int64_t *out)
{
    if (!(fabs(v) < 9007199254740992.0)) {
        return 0; /* also NaN */
    }
    int64_t i = (int64_t)v;
    if ((double)i != v || (i == 0 && signbit(v))) {
        return 0;
    }
    *out = i;
    return 1;
}

static inline int fits_signed(int64_t v, unsigned n)
{
    if (n == 64) {
        return 1;
    }
    int64_t lim = (int64_t)1 << (n - 1);
    return v >= -lim && v < lim;
}

static inline int64_t sign_extend(uint64_t v, unsigned n)
{
    if (n == 64) {
        return (int64_t)v;
    }
    uint64_t m = (uint64_t)1 << (n - 1);
    return (int64_t)((v ^ m) - m);
}

/*
 * Averaging predictor: ref + frac/16 follows the deltas with weight 1/16 (an exponential moving
 * average in fixed point: shifts, no division). Wrapping unsigned arithmetic keeps it defined
 * for any input the decoder meets; the encoder's inputs never wrap.
 */
static inline uint64_t avg_predict(int64_t ref, uint8_t frac)
{
    return (uint64_t)ref + (frac >= 8);
}

static inline void avg_learn(int64_t *ref, uint8_t *frac, int64_t r)
{
    uint64_t err16 = (((uint64_t)r + (*frac >= 8)) << 4) - *frac;
    uint64_t total = (uint64_t)*frac + (uint64_t)((int64_t)err16 >> 4);
    *ref = (int64_t)((uint64_t)*ref + (uint64_t)((int64_t)total >> 4));
    *frac = (uint8_t)(total & 15);
}

/* Timestamps: the reference interval restarts at the observed delta on the first delta and on
 * any residual outside the 7-bit bucket (missed scrape, interval change). */
static inline void ts_learn(int64_t *ref, uint8_t *frac, uint64_t delta, int64_t r, int first)
{
    if (first || r < -TS_RESET || r > TS_RESET) {
        *ref = (int64_t)delta;
        *frac = 0;
    } else {
        avg_learn(ref, frac, r);
    }
}

static inline uint64_t val_predict(uint8_t vpred, int64_t ref, uint8_t frac)
{
    switch (vpred) {
    case VPRED_DOD:
        return (uint64_t)ref;
    case VPRED_AVG:
        return avg_predict(ref, frac);
    default:
        return 0;
    }
}

static inline void val_learn(uint8_t vpred, int64_t *ref, uint8_t *frac, int64_t d, int64_t r,
                             int first)
{
    if (vpred == VPRED_DOD || (vpred == VPRED_AVG && first)) {
        *ref = d;
        *frac = 0;
    } else if (vpred == VPRED_AVG) {
        avg_learn(ref, frac, r);
    }
}

/* ---- encoder ---------------------------------------------------------------------------- */

/* Write the low n bits of v (1 <= n <= 64; higher bits of v must be 0). */
static inline void put_bits(st_chunk_enc_t *e, uint64_t v, unsigned n)
{
    if (n > 56) {
        put_bits(e, v >> 32, n - 32);
        v &= 0xffffffffu;
        n = 32;
    }
    uint8_t *p = e->buf.data + e->hdr + (e->nbits >> 3);
    unsigned off = (unsigned)(e->nbits & 7);
    store_be64(p, load_be64(p) | v << (64 - off - n));
    e->nbits += n;
}

static inline uint64_t low_bits(int64_t v, unsigned n)
{
    return n == 64 ? (uint64_t)v : (uint64_t)v & (((uint64_t)1 << n) - 1);
}

/* Write bucket k of a code table: k prefix ones (then a zero unless k == max), then the
 * payload in bits[k] bits (none when bits[k] == 0). */
static inline void put_code(st_chunk_enc_t *e, const uint8_t *bits, unsigned max, unsigned k,
                            int64_t val)
{
    unsigned plen = k == max ? k : k + 1;
    uint64_t prefix = k == max ? ((uint64_t)1 << k) - 1 : (((uint64_t)1 << k) - 1) << 1;
    unsigned nb = bits[k];
    if (plen + nb <= 56) {
        put_bits(e, nb ? prefix << nb | low_bits(val, nb) : prefix, plen + nb);
        return;
    }
    put_bits(e, prefix, plen);
    put_bits(e, low_bits(val, nb), nb);
}

static void put_ts_code(st_chunk_enc_t *e, int64_t dod)
{
    const uint8_t *bits = ts_bits[e->tcode];
    unsigned max = ts_prefix_max[e->tcode];
    for (unsigned k = 0; k <= max; k++) {
        if (bits[k] == 0 ? dod == 0 : fits_signed(dod, bits[k])) {
            put_code(e, bits, max, k, dod);
            return;
        }
    }
    WF_ASSERT(0); /* every table ends in a 64-bit bucket */
}

static void put_int_code(st_chunk_enc_t *e, int64_t dod)
{
    if (dod == 0) {
        put_bits(e, 0, 1);
        return;
    }
    for (unsigned k = 1; k < INT_PREFIX_MAX; k++) {
        if (fits_signed(dod, int_bits[k])) {
            put_code(e, int_bits, INT_PREFIX_MAX, k, dod);
            return;
        }
    }
    /* |dod| < 2^55 always fits the 64-bit bucket */
    WF_ASSERT(0);
}

static void put_xor(st_chunk_enc_t *e, uint64_t bits)
{
    uint64_t x = bits ^ e->v_prev;
    e->v_prev = bits;
    if (x == 0) {
        put_bits(e, 0, 1);
        return;
    }
    unsigned lead = (unsigned)__builtin_clzll(x);
    unsigned trail = (unsigned)__builtin_ctzll(x);
    if (lead > 31) {
        lead = 31;
    }
    if (e->leading != NO_WINDOW && lead >= e->leading && trail >= e->trailing) {
        unsigned sig = 64u - e->leading - e->trailing;
        put_bits(e, 2, 2);
        put_bits(e, x >> e->trailing, sig);
        return;
    }
    unsigned sig = 64u - lead - trail;
    put_bits(e, (uint64_t)3 << 11 | (uint64_t)lead << 6 | (sig & 63), 13);
    put_bits(e, x >> trail, sig);
    e->leading = (uint8_t)lead;
    e->trailing = (uint8_t)trail;
}

void st_chunk_enc_init(st_chunk_enc_t *e)
{
    memset(e, 0, sizeof(*e));
    wf_buf_init(&e->buf);
    e->leading = NO_WINDOW;
    /* the head's form: the choices that suit jittered scrapes of counters best */
    e->vpred = VPRED_AVG;
    e->tcode = 1;
    e->hdr = HDR_LEN;
}

void st_chunk_enc_free(st_chunk_enc_t *e)
{
    wf_buf_free(&e->buf);
    st_chunk_enc_init(e);
}

/* Make sure one more sample fits, with zeroed slack after the stream. */
static void enc_reserve(st_chunk_enc_t *e)
{
    size_t used = e->hdr + (size_t)((e->nbits + 7) >> 3);
    if (e->buf.cap - used < ENC_SLACK || e->buf.data == NULL) {
        size_t old_cap = e->buf.data ? e->buf.cap : 0;
        e->buf.len = 0;
        wf_buf_reserve(&e->buf, used + ENC_SLACK);
        e->buf.len = used;
        memset(e->buf.data + old_cap, 0, e->buf.cap - old_cap);
    }
}

int st_chunk_enc_append(st_chunk_enc_t *e, int64_t ts, double v)
{
    uint64_t vb = dbl_bits(v);
    int64_t iv = 0;
    int is_int = !e->no_int && as_int(v, &iv);

    if (e->count == 0) {
        enc_reserve(e);
        uint8_t *h = e->buf.data;
        e->mode = is_int ? MODE_INT : MODE_FLOAT;
        e->t_delta = 0;
        e->t_frac = 0;
        e->i_delta = 0;
        e->i_frac = 0;
        e->v_prev = vb;
        e->mint = ts;
        if (e->part == PART_TS) {
            h[0] = FORM_TS;
            h[1] = (uint8_t)(e->tcode << 6);
            put_u64le(h + 6, (uint64_t)ts);
            goto done;
        }
        if (e->part == PART_VALS) {
            h[0] = FORM_VALS;
            h[1] = (uint8_t)(e->mode | e->vpred << 4);
        } else {
            h[0] = FORM_RAW;
            h[1] = (uint8_t)(e->mode | e->vpred << 4 | e->tcode << 6);
            put_u64le(h + 6, (uint64_t)ts);
        }
        uint64_t before = e->nbits;
        if (e->mode == MODE_INT) {
            put_int_code(e, iv);
            e->i_v = iv;
        } else {
            put_bits(e, vb, 64);
            e->leading = NO_WINDOW;
        }
        e->vbits += e->nbits - before;
        goto done;
    }
    if (ts <= e->maxt) {
        return ST_E_OUT_OF_ORDER;
    }
    if (e->count == UINT32_MAX) {
        return WF_E_LIMIT;
    }
    /* ts > maxt, so the true delta is in [1, 2^64) and wrapping arithmetic is exact */
    uint64_t delta = (uint64_t)ts - (uint64_t)e->maxt;
    int64_t r = (int64_t)(delta - avg_predict(e->t_delta, e->t_frac));
    enc_reserve(e);
    if (e->part != PART_VALS) {
        put_ts_code(e, r);
        ts_learn(&e->t_delta, &e->t_frac, delta, r, e->count == 1);
    }
    if (e->part == PART_TS) {
        goto done;
    }
    uint64_t before = e->nbits;
    if (e->vpred == VPRED_CONST) {
        /* seal chooses this predictor only for a chunk whose values all have the same bits */
        WF_ASSERT(e->part == PART_VALS && vb == e->v_prev);
        goto done;
    }
    if (e->mode == MODE_INT) {
        if (is_int) {
            int64_t d = iv - e->i_v;
            int64_t rv = (int64_t)((uint64_t)d - val_predict(e->vpred, e->i_delta, e->i_frac));
            put_int_code(e, rv);
            val_learn(e->vpred, &e->i_delta, &e->i_frac, d, rv, e->count == 1);
            e->i_v = iv;
            e->v_prev = vb;
            e->vbits += e->nbits - before;
            goto done;
        }
        put_code(e, int_bits, INT_PREFIX_MAX, INT_PREFIX_MAX, 0); /* switch to float */
        e->mode = MODE_FLOAT;
        e->v_prev = dbl_bits((double)e->i_v);
        e->leading = NO_WINDOW;
    }
    put_xor(e, vb);
    e->vbits += e->nbits - before;
done:
    e->count++;
    e->maxt = ts;
    e->last_value = v;
    put_u32le(e->buf.data + 2, e->count);
    e->buf.data[1] = (uint8_t)((e->buf.data[1] & ~0x0e) | ((8 - (e->nbits & 7)) & 7) << 1);
    e->buf.len = e->hdr + (size_t)((e->nbits + 7) >> 3);
    return 0;
}

const uint8_t *st_chunk_enc_bytes(const st_chunk_enc_t *e, size_t *len)
{
    if (e->count == 0) {
        *len = sizeof(empty_chunk);
        return empty_chunk;
    }
    *len = e->buf.len;
    return e->buf.data;
}

/* ---- iterator --------------------------------------------------------------------------- */

/* The next bits of the stream at the top of a word (at least 57 of them are real; past the end
 * of the bytes they read as 0). Never touches memory past len. */
static inline uint64_t peek_bits(const st_chunk_iter_t *it)
{
    size_t byte = it->bit >> 3;
    uint64_t w;
    if (byte + 8 <= it->len) {
        w = load_be64(it->data + byte);
    } else {
        w = 0;
        for (size_t i = 0; i < 8; i++) {
            w = w << 8 | (byte + i < it->len ? it->data[byte + i] : 0);
        }
    }
    return w << (it->bit & 7);
}

/* Read n bits (1 <= n <= 56) MSB-first. */
static inline int get_bits(st_chunk_iter_t *it, unsigned n, uint64_t *out)
{
    if (it->nbits - it->bit < n) {
        return WF_E_CORRUPT;
    }
    *out = peek_bits(it) >> (64 - n);
    it->bit += n;
    return 0;
}

static inline int get_bits64(st_chunk_iter_t *it, unsigned n, uint64_t *out)
{
    if (n <= 56) {
        return get_bits(it, n, out);
    }
    uint64_t hi, lo;
    if (get_bits(it, n - 32, &hi) < 0 || get_bits(it, 32, &lo) < 0) {
        return WF_E_CORRUPT;
    }
    *out = hi << 32 | lo;
    return 0;
}

/* Read one code of a table (see put_code): *k is the bucket, *val the signed payload. */
static inline int get_code(st_chunk_iter_t *it, const uint8_t *bits, unsigned max, unsigned *k,
                           int64_t *val)
{
    uint64_t w = peek_bits(it); /* 57 real bits at least */
    uint64_t inv = ~w;
    unsigned ones = inv == 0 ? 64 : (unsigned)__builtin_clzll(inv);
    if (ones > max) {
        ones = max;
    }
    unsigned used = ones == max ? ones : ones + 1;
    unsigned nb = bits[ones];
    *k = ones;
    if (used + nb <= 57) {
        if (it->nbits - it->bit < used + nb) {
            return WF_E_CORRUPT; /* the stream ends inside the code */
        }
        *val = nb ? sign_extend((w << used) >> (64 - nb), nb) : 0;
        it->bit += used + nb;
        return 0;
    }
    uint64_t u;
    if (it->nbits - it->bit < used) {
        return WF_E_CORRUPT;
    }
    it->bit += used;
    if (get_bits64(it, nb, &u) < 0) {
        return WF_E_CORRUPT;
    }
    *val = sign_extend(u, nb);
    return 0;
}

static int get_int_code(st_chunk_iter_t *it, int64_t *dod, int *switch_mode)
{
    unsigned k;
    if (get_code(it, int_bits, INT_PREFIX_MAX, &k, dod) < 0) {
        return WF_E_CORRUPT;
    }
    *switch_mode = k == INT_PREFIX_MAX;
    return 0;
}

static int get_xor(st_chunk_iter_t *it)
{
    uint64_t u;
    if (get_bits(it, 1, &u) < 0) {
        return WF_E_CORRUPT;
    }
    if (u == 0) {
        return 0;
    }
    if (get_bits(it, 1, &u) < 0) {
        return WF_E_CORRUPT;
    }
    unsigned lead, sig;
    if (u == 0) {
        if (it->leading == NO_WINDOW) {
            return WF_E_CORRUPT;
        }
        lead = it->leading;
        sig = 64u - it->leading - it->trailing;
    } else {
        if (get_bits(it, 11, &u) < 0) {
            return WF_E_CORRUPT;
        }
        lead = (unsigned)(u >> 6);
        sig = (unsigned)(u & 63);
        if (sig == 0) {
            sig = 64;
        }
        if (lead + sig > 64) {
            return WF_E_CORRUPT;
        }
        it->leading = (uint8_t)lead;
        it->trailing = (uint8_t)(64 - lead - sig);
    }
    if (get_bits64(it, sig, &u) < 0) {
        return WF_E_CORRUPT;
    }
    it->v ^= u << it->trailing;
    return 0;
}

/* Decompress a zstd stream (u32 raw length, then one frame) into memory the iterator owns. */
static int unzstd(st_chunk_iter_t *it)
{
    if (it->len < 4) {
        return WF_E_CORRUPT;
    }
    size_t raw_len = get_u32le(it->data);
    const uint8_t *z = it->data + 4;
    size_t zlen = it->len - 4;
    if (raw_len == 0 || raw_len > MAX_RAW_LEN ||
        raw_len > (size_t)it->count * MAX_SAMPLE_BYTES + 8) {
        return WF_E_CORRUPT;
    }
    unsigned long long fsz = ZSTD_getFrameContentSize(z, zlen);
    if (fsz != raw_len) {
        return WF_E_CORRUPT;
    }
    void *p;
    if (wf_alloc_checked(raw_len, 1, MAX_RAW_LEN, &p) < 0) {
        return WF_E_CORRUPT;
    }
    size_t got = ZSTD_decompress(p, raw_len, z, zlen);
    if (ZSTD_isError(got) || got != raw_len) {
        wf_free(p);
        return WF_E_CORRUPT;
    }
    it->owned = p;
    it->data = p;
    it->len = raw_len;
    return 0;
}

int st_chunk_iter_init(st_chunk_iter_t *it, const uint8_t *data, size_t len)
{
    return st_chunk_iter_init_split(it, NULL, 0, data, len);
}

int st_chunk_iter_init_split(st_chunk_iter_t *it, const uint8_t *ts, size_t ts_len,
                             const uint8_t *data, size_t len)
{
    memset(it, 0, sizeof(*it));
    it->leading = NO_WINDOW;
    if (ts != NULL) {
        /* the timestamp column: form 4, tcode, padding, count >= 1, first timestamp */
        if (ts_len < HDR_LEN || ts[0] != FORM_TS || (ts[1] & 0x31) != 0 ||
            (ts[1] >> 6) >= TCODE_COUNT) {
            return WF_E_CORRUPT;
        }
        unsigned tpad = (ts[1] >> 1) & 7;
        it->count = get_u32le(ts + 2);
        it->t = (int64_t)get_u64le(ts + 6);
        it->tcode = (uint8_t)(ts[1] >> 6);
        it->tdata = ts + HDR_LEN;
        it->tlen = ts_len - HDR_LEN;
        if (it->tlen > SIZE_MAX / 8 || (it->tlen == 0 && tpad != 0)) {
            return WF_E_CORRUPT;
        }
        it->tnbits = it->tlen * 8 - tpad;
        /* every timestamp after the first takes one bit at least */
        if (it->count == 0 || (size_t)(it->count - 1) > it->tnbits) {
            return WF_E_CORRUPT;
        }
        /* the values-only chunk: form 2 or 3, no timestamp table bits, the same count */
        if (len < VHDR_LEN || (data[0] != FORM_VALS && data[0] != FORM_VALS_ZSTD) ||
            (data[1] >> 6) != 0 || get_u32le(data + 2) != it->count) {
            return WF_E_CORRUPT;
        }
        it->data = data + VHDR_LEN;
        it->len = len - VHDR_LEN;
    } else {
        if (len < HDR_LEN || data[0] > FORM_ZSTD || (data[1] >> 6) >= TCODE_COUNT ||
            ((data[1] >> 4) & 3) >= VPRED_COUNT) {
            return WF_E_CORRUPT;
        }
        it->count = get_u32le(data + 2);
        it->t = (int64_t)get_u64le(data + 6);
        it->tcode = (uint8_t)(data[1] >> 6);
        it->data = data + HDR_LEN;
        it->len = len - HDR_LEN;
    }
    unsigned pad = (data[1] >> 1) & 7;
    it->mode = data[1] & 1;
    it->vpred = (uint8_t)((data[1] >> 4) & 3);
    if ((data[0] == FORM_ZSTD || data[0] == FORM_VALS_ZSTD) && unzstd(it) < 0) {
        return WF_E_CORRUPT;
    }
    if (it->len > SIZE_MAX / 8) {
        st_chunk_iter_free(it);
        return WF_E_CORRUPT;
    }
    /* the stream must be exactly what count samples take: no more, no less */
    it->nbits = it->len * 8 - pad;
    int bad;
    if (ts != NULL) {
        /* one bit a value at least, except in the constant form (the first value only) */
        bad = (it->len == 0 && pad != 0) || it->nbits == 0 ||
              (it->vpred != VPRED_CONST && (size_t)(it->count - 1) > it->nbits - 1);
    } else {
        bad = (it->len == 0 && pad != 0) || (it->count == 0 && it->len != 0) ||
              (it->count > 0 && (it->nbits == 0 || (size_t)(it->count - 1) > (it->nbits - 1) / 2));
    }
    if (bad) {
        st_chunk_iter_free(it);
        return WF_E_CORRUPT;
    }
    return 0;
}

uint32_t st_chunk_iter_count(const st_chunk_iter_t *it)
{
    return it->count;
}

void st_chunk_iter_free(st_chunk_iter_t *it)
{
    wf_free(it->owned);
    it->owned = NULL;
    it->data = NULL;
    it->len = 0;
    it->nbits = 0;
    it->count = 0;
    it->tdata = NULL;
    it->tlen = 0;
    it->tnbits = 0;
}

/* Exchange the value and timestamp cursors (split form): the bit readers use data/bit/nbits. */
static void swap_cursor(st_chunk_iter_t *it)
{
    const uint8_t *d = it->data;
    size_t l = it->len, b = it->bit, n = it->nbits;
    it->data = it->tdata;
    it->len = it->tlen;
    it->bit = it->tbit;
    it->nbits = it->tnbits;
    it->tdata = d;
    it->tlen = l;
    it->tbit = b;
    it->tnbits = n;
}

static int iter_fail(st_chunk_iter_t *it)
{
    /* Stay failed: a caller that keeps calling next gets the same answer, not garbage. */
    it->failed = 1;
    return WF_E_CORRUPT;
}

int st_chunk_iter_next(st_chunk_iter_t *it, int64_t *ts, double *v)
{
    if (it->failed) {
        return WF_E_CORRUPT;
    }
    if (it->read >= it->count) {
        return 0;
    }
    int sw = 0;
    int64_t dod = 0;
    if (it->read == 0) {
        if (it->mode == MODE_INT) {
            if (get_int_code(it, &dod, &sw) < 0 || sw) {
                return iter_fail(it);
            }
            it->i_v = dod;
            goto int_value;
        }
        if (get_bits64(it, 64, &it->v) < 0) {
            return iter_fail(it);
        }
        goto out;
    }

    unsigned k;
    if (it->tdata != NULL) {
        swap_cursor(it);
    }
    int trc = get_code(it, ts_bits[it->tcode], ts_prefix_max[it->tcode], &k, &dod);
    if (it->tdata != NULL) {
        swap_cursor(it);
    }
    if (trc < 0) {
        return iter_fail(it);
    }
    uint64_t delta = avg_predict(it->t_delta, it->t_frac) + (uint64_t)dod;
    if (delta == 0 || delta > (uint64_t)INT64_MAX - (uint64_t)it->t) {
        return iter_fail(it);
    }
    ts_learn(&it->t_delta, &it->t_frac, delta, dod, it->read == 1);
    it->t = (int64_t)((uint64_t)it->t + delta);

    if (it->vpred == VPRED_CONST) {
        goto out; /* the value keeps the first value's bits */
    }
    if (it->mode == MODE_INT) {
        if (get_int_code(it, &dod, &sw) < 0) {
            return iter_fail(it);
        }
        if (!sw) {
            uint64_t d = val_predict(it->vpred, it->i_delta, it->i_frac) + (uint64_t)dod;
            val_learn(it->vpred, &it->i_delta, &it->i_frac, (int64_t)d, dod, it->read == 1);
            it->i_v = (int64_t)((uint64_t)it->i_v + d);
            goto int_value;
        }
        it->mode = MODE_FLOAT;
        it->v = dbl_bits((double)it->i_v);
        it->leading = NO_WINDOW;
    }
    if (get_xor(it) < 0) {
        return iter_fail(it);
    }
    goto out;

int_value:
    if (it->i_v <= -((int64_t)1 << 53) || it->i_v >= ((int64_t)1 << 53)) {
        return iter_fail(it);
    }
    it->v = dbl_bits((double)it->i_v);
out:
    it->read++;
    if (it->read == it->count && (it->bit != it->nbits || it->tbit != it->tnbits)) {
        return iter_fail(it); /* bits left over: the count or the stream is damaged */
    }
    *ts = it->t;
    *v = bits_dbl(it->v);
    return 1;
}

/* ---- seal ------------------------------------------------------------------------------- */

/*
 * Bit costs of the candidate forms, computed without writing: the timestamp stream and the
 * value stream are independent, so each table and each predictor is costed once over the
 * samples and only the winning combination is encoded.
 */
static uint64_t code_cost(const uint8_t *bits, unsigned max, int64_t val)
{
    for (unsigned k = 0; k <= max; k++) {
        if (bits[k] == 0 ? val == 0 : fits_signed(val, bits[k])) {
            return (k == max ? k : k + 1) + bits[k];
        }
    }
    WF_ASSERT(0);
    return 0;
}

static void cost_ts(const int64_t *ts, size_t n, uint64_t cost[TCODE_COUNT])
{
    int64_t ref = 0;
    uint8_t frac = 0;
    for (size_t i = 1; i < n; i++) {
        uint64_t delta = (uint64_t)ts[i] - (uint64_t)ts[i - 1];
        int64_t r = (int64_t)(delta - avg_predict(ref, frac));
        for (int t = 0; t < TCODE_COUNT; t++) {
            cost[t] += code_cost(ts_bits[t], ts_prefix_max[t], r);
        }
        ts_learn(&ref, &frac, delta, r, i == 1);
    }
}

static uint64_t int_cost(int64_t val)
{
    if (val == 0) {
        return 1;
    }
    for (unsigned k = 1; k < INT_PREFIX_MAX; k++) {
        if (fits_signed(val, int_bits[k])) {
            return k + 1 + int_bits[k];
        }
    }
    WF_ASSERT(0);
    return 0;
}

/* Integer-mode cost of values [0, m), all integers, under predictor vpred. */
static uint64_t cost_int(const double *vs, size_t m, uint8_t vpred)
{
    int64_t prev = 0, ref = 0;
    uint8_t frac = 0;
    int ok = as_int(vs[0], &prev);
    WF_ASSERT(ok);
    uint64_t cost = int_cost(prev);
    for (size_t i = 1; i < m; i++) {
        int64_t iv = 0;
        ok = as_int(vs[i], &iv);
        WF_ASSERT(ok);
        int64_t d = iv - prev;
        int64_t r = (int64_t)((uint64_t)d - val_predict(vpred, ref, frac));
        cost += int_cost(r);
        val_learn(vpred, &ref, &frac, d, r, i == 1);
        prev = iv;
    }
    return cost;
}

/* XOR cost of values [from, n) after the value whose bits are prev, with no window yet. */
static uint64_t cost_xor(const double *vs, size_t from, size_t n, uint64_t prev)
{
    uint64_t cost = 0;
    unsigned lw = NO_WINDOW, tw = 0;
    for (size_t i = from; i < n; i++) {
        uint64_t b = dbl_bits(vs[i]);
        uint64_t x = b ^ prev;
        prev = b;
        if (x == 0) {
            cost += 1;
            continue;
        }
        unsigned lead = (unsigned)__builtin_clzll(x);
        unsigned trail = (unsigned)__builtin_ctzll(x);
        if (lead > 31) {
            lead = 31;
        }
        if (lw != NO_WINDOW && lead >= lw && trail >= tw) {
            cost += 2 + 64 - lw - tw;
        } else {
            cost += 13 + 64 - lead - trail;
            lw = lead;
            tw = trail;
        }
    }
    return cost;
}

/* Decode a whole chunk into arrays (wf_malloc'ed; the caller frees them even on failure). */
static int decode_all(const uint8_t *data, size_t len, int64_t **ts, double **vs, size_t *n)
{
    st_chunk_iter_t it;
    *ts = NULL;
    *vs = NULL;
    *n = 0;
    if (st_chunk_iter_init(&it, data, len) < 0) {
        return WF_E_CORRUPT;
    }
    /* the header's count is bounded by the bits present (iter_init checks it) */
    size_t cnt = st_chunk_iter_count(&it) ? st_chunk_iter_count(&it) : 1;
    int r = WF_E_CORRUPT;
    if (wf_alloc_checked(cnt, sizeof(**ts), 0, (void **)ts) < 0 ||
        wf_alloc_checked(cnt, sizeof(**vs), 0, (void **)vs) < 0) {
        goto out;
    }
    while ((r = st_chunk_iter_next(&it, &(*ts)[*n], &(*vs)[*n])) == 1) {
        (*n)++;
    }
out:
    st_chunk_iter_free(&it);
    return r < 0 ? WF_E_CORRUPT : 0;
}

/* Choose the cheapest value coding for enc (float only, or integer mode with a predictor, or
 * constant when allowed); returns its bit cost. */
static uint64_t choose_values(st_chunk_enc_t *enc, const double *vs, size_t n, int allow_const)
{
    if (allow_const) {
        size_t i = 1;
        while (i < n && dbl_bits(vs[i]) == dbl_bits(vs[0])) {
            i++;
        }
        if (i == n) {
            int64_t iv;
            enc->vpred = VPRED_CONST;
            enc->no_int = !as_int(vs[0], &iv);
            return enc->no_int ? 64 : int_cost(iv);
        }
    }
    /* float only, or integer mode over the integer prefix [0, m) with each predictor */
    uint64_t best = 64 + cost_xor(vs, 1, n, dbl_bits(vs[0]));
    enc->no_int = 1;
    size_t m = 0;
    int64_t iv;
    while (m < n && as_int(vs[m], &iv)) {
        m++;
    }
    if (m > 0) {
        uint64_t tail = m < n ? 7 + cost_xor(vs, m, n, dbl_bits(vs[m - 1])) : 0;
        for (uint8_t vp = 0; vp < VPRED_COUNT; vp++) {
            uint64_t c = cost_int(vs, m, vp) + tail;
            if (c < best) {
                best = c;
                enc->no_int = 0;
                enc->vpred = vp;
            }
        }
    }
    return best;
}

/*
 * Append the encoder's chunk to out, zstd-compressing its stream when worth it (see the
 * callers). hdr is the header length of the form, zform the form byte of its zstd variant.
 */
static void emit(const st_chunk_enc_t *enc, size_t hdr, uint8_t zform, size_t min_raw,
                 int any_density, wf_buf_t *out)
{
    size_t blen;
    const uint8_t *b = st_chunk_enc_bytes(enc, &blen);
    size_t raw = blen - hdr;
    size_t n = enc->count;
    if (raw >= min_raw && raw <= MAX_RAW_LEN && (any_density || raw >= 3 * n)) {
        size_t bound = ZSTD_compressBound(raw);
        uint8_t *z = wf_malloc(bound);
        size_t zn = ZSTD_compress(z, bound, b + hdr, raw, 1);
        if (!ZSTD_isError(zn) && zn + 4 <= raw - raw / 8) {
            uint8_t *o = wf_buf_reserve(out, hdr + 4 + zn);
            memcpy(o, b, hdr);
            o[0] = zform;
            put_u32le(o + hdr, (uint32_t)raw);
            memcpy(o + hdr + 4, z, zn);
            out->len += hdr + 4 + zn;
            wf_free(z);
            return;
        }
        wf_free(z);
    }
    wf_buf_append(out, b, blen);
}

int st_chunk_seal(const uint8_t *data, size_t len, wf_buf_t *out)
{
    st_chunk_enc_t enc;
    int64_t *ts = NULL;
    double *vs = NULL;
    size_t n = 0;
    st_chunk_enc_init(&enc);
    int rc = decode_all(data, len, &ts, &vs, &n);
    if (rc != 0) {
        goto out;
    }
    if (n > 0) {
        uint64_t tcost[TCODE_COUNT] = {0};
        cost_ts(ts, n, tcost);
        enc.tcode = tcost[1] < tcost[0] ? 1 : 0;
        uint64_t best = choose_values(&enc, vs, n, 0);
        for (size_t i = 0; i < n; i++) {
            if (st_chunk_enc_append(&enc, ts[i], vs[i]) < 0) {
                rc = WF_E_CORRUPT;
                goto out;
            }
        }
        WF_ASSERT(enc.nbits == best + tcost[enc.tcode]);
    }
    /*
     * zstd finds what the bit codes miss (repeating float patterns). Trying it costs a context
     * setup (about 10 us), and every read of a zstd chunk pays a decompression, so it is tried
     * only on float-like streams (3 bytes a sample or more) and kept only when it saves an
     * eighth or more.
     */
    emit(&enc, HDR_LEN, FORM_ZSTD, 128, 0, out);
out:
    wf_free(ts);
    wf_free(vs);
    st_chunk_enc_free(&enc);
    return rc;
}

int st_chunk_seal_split(const uint8_t *data, size_t len, wf_buf_t *ts_out, wf_buf_t *vals_out)
{
    st_chunk_enc_t te, ve;
    int64_t *ts = NULL;
    double *vs = NULL;
    size_t n = 0;
    st_chunk_enc_init(&te);
    st_chunk_enc_init(&ve);
    int rc = decode_all(data, len, &ts, &vs, &n);
    if (rc == 0 && n == 0) {
        rc = WF_E_CORRUPT;
    }
    if (rc != 0) {
        goto out;
    }
    uint64_t tcost[TCODE_COUNT] = {0};
    cost_ts(ts, n, tcost);
    te.part = PART_TS;
    te.tcode = tcost[1] < tcost[0] ? 1 : 0;
    ve.part = PART_VALS;
    ve.hdr = VHDR_LEN;
    ve.tcode = 0;
    uint64_t best = choose_values(&ve, vs, n, 1);
    for (size_t i = 0; i < n; i++) {
        if (st_chunk_enc_append(&te, ts[i], 0) < 0 || st_chunk_enc_append(&ve, ts[i], vs[i]) < 0) {
            rc = WF_E_CORRUPT;
            goto out;
        }
    }
    WF_ASSERT(te.nbits == tcost[te.tcode] && ve.nbits == best);
    wf_buf_append(ts_out, te.buf.data, te.buf.len);
    /*
     * The same zstd policy as st_chunk_seal. Trying zstd on integer streams too (runs of zero
     * residuals) saved 2% of the bytes on the benchmark's mesh data but cost a fifth of the
     * append rate (a context setup per chunk); constant streams take VPRED_CONST instead.
     */
    emit(&ve, VHDR_LEN, FORM_VALS_ZSTD, 128, 0, vals_out);
out:
    wf_free(ts);
    wf_free(vs);
    st_chunk_enc_free(&te);
    st_chunk_enc_free(&ve);
    return rc;
}
