/*
 * wf_pb.h - a zero-copy reader of the protobuf wire format.
 *
 * The reader walks a message one field at a time: wf_pb_next() decodes the tag and the
 * field's whole value (a varint, 8 or 4 fixed bytes, or a length-delimited slice), so fields
 * the caller does not know are skipped by simply not looking at them. Length-delimited
 * values (strings, bytes, nested messages, packed repeated scalars) are borrowed slices of
 * the input: nothing is copied and nothing is allocated. Nested messages are read with a
 * sub-reader over the slice (wf_pb_sub).
 *
 * Strictness, matching what gogo-proto's generated decoders (Prometheus's prompb) refuse:
 * field number 0 or above 2^29-1, wire types 6 and 7, the deprecated group wire types (3, 4:
 * no current schema uses them, and skipping them needs recursion), varints longer than 10
 * bytes or overflowing 64 bits, lengths past the end of the enclosing message, and a known
 * field with the wrong wire type (the typed getters below check it) are all errors. Reads
 * never go past the end of the slice given to wf_pb_init.
 *
 * Errors: -EBADMSG. The reader then holds a static description (r->err) and the byte offset
 * of the problem from the start of the outermost message (r->err_off), for 400 answers.
 * A reader is used by one thread at a time; it is a small value, cheap to copy.
 */
#ifndef WF_PB_H
#define WF_PB_H

#include "wf_str.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    WF_PB_VARINT = 0,
    WF_PB_I64 = 1,
    WF_PB_LEN = 2,
    WF_PB_SGROUP = 3,
    WF_PB_EGROUP = 4,
    WF_PB_I32 = 5,
} wf_pb_wire_t;

#define WF_PB_MAX_FIELD ((1u << 29) - 1)

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    const uint8_t *base; /* start of the outermost message, for error offsets */
    const char *err;     /* why the last call failed; NULL before any failure */
    size_t err_off;
} wf_pb_rd_t;

typedef struct {
    uint32_t num;      /* field number, 1 .. WF_PB_MAX_FIELD */
    wf_pb_wire_t wire; /* VARINT, I64, LEN or I32 */
    uint64_t u;        /* VARINT value, or the raw little-endian bits of I64 / I32 */
    const uint8_t *p;  /* LEN: the payload (borrowed from the input) */
    size_t len;        /* LEN: its length */
    size_t off;        /* offset of the field's tag from the start of the outermost message */
} wf_pb_field_t;

/* Read the message data[0..len) (borrowed for the reader's lifetime). */
void wf_pb_init(wf_pb_rd_t *r, const void *data, size_t len);

static inline bool wf_pb_done(const wf_pb_rd_t *r)
{
    return r->p >= r->end;
}

/* The general case of wf_pb_next (any tag and length); use wf_pb_next. */
int wf__pb_next_slow(wf_pb_rd_t *r, wf_pb_field_t *f);

/*
 * Decode the next field into *f. Returns 1 when a field was read, 0 at the end of the
 * message, -EBADMSG on malformed input (r->err says why; the reader stays at the bad field).
 *
 * Inline for the shapes that make up nearly every message (fields 1..15 with a varint below
 * 128, a fixed64, or a payload shorter than 128 bytes), because decoders call it once per
 * field: a remote_write request of 500 Istio series has some 30,000 fields.
 */
static inline int wf_pb_next(wf_pb_rd_t *r, wf_pb_field_t *f)
{
    const uint8_t *p = r->p;
    size_t left = (size_t)(r->end - p);
    if (left >= 2 && p[0] < 0x80 && p[0] >= 0x08) {
        unsigned wire = p[0] & 7;
        f->num = p[0] >> 3;
        f->off = (size_t)(p - r->base);
        if (wire == WF_PB_LEN && p[1] < 0x80 && left - 2 >= p[1]) {
            f->wire = WF_PB_LEN;
            f->p = p + 2;
            f->len = p[1];
            f->u = p[1];
            r->p = p + 2 + p[1];
            return 1;
        }
        if (wire == WF_PB_VARINT && p[1] < 0x80) {
            f->wire = WF_PB_VARINT;
            f->p = NULL;
            f->len = 0;
            f->u = p[1];
            r->p = p + 2;
            return 1;
        }
        if (wire == WF_PB_I64 && left >= 9) {
            uint64_t x = 0;
            for (unsigned i = 0; i < 8; i++) {
                x |= (uint64_t)p[1 + i] << (8 * i);
            }
            f->wire = WF_PB_I64;
            f->p = NULL;
            f->len = 0;
            f->u = x;
            r->p = p + 9;
            return 1;
        }
    }
    return wf__pb_next_slow(r, f);
}

/*
 * Typed views of a field read by wf_pb_next. Each checks the wire type the schema gives the
 * field and returns 0, or -EBADMSG (with r->err set) when the field has another one; r is
 * the reader the field came from.
 *
 * int32 / uint32 / enum values arrive as varints; like protobuf's own decoders these keep
 * the low 32 bits (a negative int32 is sent sign-extended to 64 bits).
 */
int wf_pb_uint64(wf_pb_rd_t *r, const wf_pb_field_t *f, uint64_t *v);
int wf_pb_int64(wf_pb_rd_t *r, const wf_pb_field_t *f, int64_t *v);
int wf_pb_uint32(wf_pb_rd_t *r, const wf_pb_field_t *f, uint32_t *v);
int wf_pb_int32(wf_pb_rd_t *r, const wf_pb_field_t *f, int32_t *v);
int wf_pb_bool(wf_pb_rd_t *r, const wf_pb_field_t *f, bool *v);
int wf_pb_sint64(wf_pb_rd_t *r, const wf_pb_field_t *f, int64_t *v); /* zigzag */
int wf_pb_sint32(wf_pb_rd_t *r, const wf_pb_field_t *f, int32_t *v); /* zigzag */
int wf_pb_fixed64(wf_pb_rd_t *r, const wf_pb_field_t *f, uint64_t *v);
int wf_pb_sfixed64(wf_pb_rd_t *r, const wf_pb_field_t *f, int64_t *v);
int wf_pb_double(wf_pb_rd_t *r, const wf_pb_field_t *f, double *v);
int wf_pb_fixed32(wf_pb_rd_t *r, const wf_pb_field_t *f, uint32_t *v);
int wf_pb_sfixed32(wf_pb_rd_t *r, const wf_pb_field_t *f, int32_t *v);
int wf_pb_float(wf_pb_rd_t *r, const wf_pb_field_t *f, float *v);
/* string / bytes: a borrowed slice (no UTF-8 check: the caller decides what is valid). */
int wf_pb_bytes(wf_pb_rd_t *r, const wf_pb_field_t *f, wf_str_t *v);
/* A nested message: *sub reads the field's payload; errors inside it report offsets from the
 * same outermost message as r. */
int wf_pb_sub(wf_pb_rd_t *r, const wf_pb_field_t *f, wf_pb_rd_t *sub);

/*
 * Repeated scalar fields come either packed (one LEN field holding the elements back to back,
 * proto3's default) or one field per element; decoders must accept both. wf_pb_rep_init
 * starts an iteration over field f whose element wire type is elem (VARINT, I64 or I32):
 * a packed payload yields all its elements, an unpacked field its one element. Then
 * wf_pb_rep_next returns 1 with the element's raw value in *v (the varint, or the fixed bits),
 * 0 after the last, -EBADMSG on a malformed payload (the error is recorded in r).
 */
typedef struct {
    wf_pb_rd_t *r; /* the reader the field came from, for errors */
    wf_pb_rd_t in; /* the packed payload */
    wf_pb_wire_t elem;
    bool single; /* unpacked: one element in `u` */
    bool single_done;
    uint64_t u;
} wf_pb_rep_t;

int wf_pb_rep_init(wf_pb_rd_t *r, const wf_pb_field_t *f, wf_pb_wire_t elem, wf_pb_rep_t *it);
int wf_pb_rep_next(wf_pb_rep_t *it, uint64_t *v);
/* How many elements the field holds (for sizing an array before iterating); malformed
 * varint payloads count their complete varints. */
size_t wf_pb_rep_count(const wf_pb_rep_t *it);

/* Raw bits to a double / float (memcpy, no aliasing). */
double wf_pb_bits_double(uint64_t u);
float wf_pb_bits_float(uint32_t u);

#endif
