/*
 * wf_pb.c - the zero-copy protobuf wire reader. See wf_pb.h.
 */
#include "wf_pb.h"

#include <errno.h>
#include <string.h>

void wf_pb_init(wf_pb_rd_t *r, const void *data, size_t len)
{
    r->p = data;
    r->end = len ? r->p + len : r->p; /* NULL + 0 is undefined in C */
    r->base = r->p;
    r->err = NULL;
    r->err_off = 0;
}

static int fail(wf_pb_rd_t *r, const uint8_t *at, const char *why)
{
    r->err = why;
    r->err_off = (size_t)(at - r->base);
    return -EBADMSG;
}

/*
 * Decode a varint at *pp (not past end). Unlike wf_rd_uvarint it tells a truncated varint
 * from an overlong one, because the two mean different things in a 400 answer (a cut body
 * versus a corrupt one). Returns 0, -1 truncated, -2 longer than 64 bits.
 */
static inline int varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    if (p < end && *p < 0x80) {
        *v = *p;
        *pp = p + 1;
        return 0;
    }
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (p >= end) {
            return -1;
        }
        uint8_t c = *p++;
        if (shift == 63 && c > 1) {
            return -2;
        }
        x |= (uint64_t)(c & 0x7f) << shift;
        if (c < 0x80) {
            *v = x;
            *pp = p;
            return 0;
        }
    }
    return -2;
}

static uint64_t load_le(const uint8_t *p, unsigned n)
{
    uint64_t x = 0;
    for (unsigned i = 0; i < n; i++) {
        x |= (uint64_t)p[i] << (8 * i);
    }
    return x;
}

int wf__pb_next_slow(wf_pb_rd_t *r, wf_pb_field_t *f)
{
    const uint8_t *start = r->p, *p = r->p;
    if (p >= r->end) {
        return 0;
    }
    uint64_t tag;
    int vr = varint(&p, r->end, &tag);
    if (vr != 0) {
        return fail(r, start, vr == -1 ? "truncated field tag" : "field tag is not a valid varint");
    }
    uint64_t num = tag >> 3;
    if (num == 0) {
        return fail(r, start, "field number 0");
    }
    if (num > WF_PB_MAX_FIELD) {
        return fail(r, start, "field number out of range");
    }
    f->num = (uint32_t)num;
    f->wire = (wf_pb_wire_t)(tag & 7);
    f->p = NULL;
    f->len = 0;
    f->off = (size_t)(start - r->base);
    switch (f->wire) {
    case WF_PB_VARINT:
        vr = varint(&p, r->end, &f->u);
        if (vr != 0) {
            return fail(r, start, vr == -1 ? "truncated varint" : "varint longer than 64 bits");
        }
        break;
    case WF_PB_I64:
        if (r->end - p < 8) {
            return fail(r, start, "truncated fixed64");
        }
        f->u = load_le(p, 8);
        p += 8;
        break;
    case WF_PB_I32:
        if (r->end - p < 4) {
            return fail(r, start, "truncated fixed32");
        }
        f->u = load_le(p, 4);
        p += 4;
        break;
    case WF_PB_LEN: {
        uint64_t n;
        vr = varint(&p, r->end, &n);
        if (vr != 0) {
            return fail(r, start, vr == -1 ? "truncated length" : "length is not a valid varint");
        }
        if (n > (uint64_t)(r->end - p)) {
            return fail(r, start, "length past the end of the message");
        }
        f->p = p;
        f->len = (size_t)n;
        f->u = n;
        p += n;
        break;
    }
    case WF_PB_SGROUP:
    case WF_PB_EGROUP:
        return fail(r, start, "deprecated group wire type");
    default:
        return fail(r, start, "invalid wire type");
    }
    r->p = p;
    return 1;
}

/* Every typed getter's first step: the field must have the wire type its schema gives it. */
static inline int want(wf_pb_rd_t *r, const wf_pb_field_t *f, wf_pb_wire_t wire)
{
    if (f->wire != wire) {
        r->err = "wrong wire type for field";
        r->err_off = f->off;
        return -EBADMSG;
    }
    return 0;
}

int wf_pb_uint64(wf_pb_rd_t *r, const wf_pb_field_t *f, uint64_t *v)
{
    int rc = want(r, f, WF_PB_VARINT);
    if (rc == 0) {
        *v = f->u;
    }
    return rc;
}

int wf_pb_int64(wf_pb_rd_t *r, const wf_pb_field_t *f, int64_t *v)
{
    int rc = want(r, f, WF_PB_VARINT);
    if (rc == 0) {
        *v = (int64_t)f->u;
    }
    return rc;
}

int wf_pb_uint32(wf_pb_rd_t *r, const wf_pb_field_t *f, uint32_t *v)
{
    int rc = want(r, f, WF_PB_VARINT);
    if (rc == 0) {
        *v = (uint32_t)f->u;
    }
    return rc;
}

int wf_pb_int32(wf_pb_rd_t *r, const wf_pb_field_t *f, int32_t *v)
{
    int rc = want(r, f, WF_PB_VARINT);
    if (rc == 0) {
        *v = (int32_t)(uint32_t)f->u;
    }
    return rc;
}

int wf_pb_bool(wf_pb_rd_t *r, const wf_pb_field_t *f, bool *v)
{
    int rc = want(r, f, WF_PB_VARINT);
    if (rc == 0) {
        *v = f->u != 0;
    }
    return rc;
}

int wf_pb_sint64(wf_pb_rd_t *r, const wf_pb_field_t *f, int64_t *v)
{
    int rc = want(r, f, WF_PB_VARINT);
    if (rc == 0) {
        *v = (int64_t)(f->u >> 1) ^ -(int64_t)(f->u & 1);
    }
    return rc;
}

int wf_pb_sint32(wf_pb_rd_t *r, const wf_pb_field_t *f, int32_t *v)
{
    int rc = want(r, f, WF_PB_VARINT);
    if (rc == 0) {
        uint32_t u = (uint32_t)f->u;
        *v = (int32_t)(u >> 1) ^ -(int32_t)(u & 1);
    }
    return rc;
}

int wf_pb_fixed64(wf_pb_rd_t *r, const wf_pb_field_t *f, uint64_t *v)
{
    int rc = want(r, f, WF_PB_I64);
    if (rc == 0) {
        *v = f->u;
    }
    return rc;
}

int wf_pb_sfixed64(wf_pb_rd_t *r, const wf_pb_field_t *f, int64_t *v)
{
    int rc = want(r, f, WF_PB_I64);
    if (rc == 0) {
        *v = (int64_t)f->u;
    }
    return rc;
}

double wf_pb_bits_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

float wf_pb_bits_float(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof(x));
    return x;
}

int wf_pb_double(wf_pb_rd_t *r, const wf_pb_field_t *f, double *v)
{
    int rc = want(r, f, WF_PB_I64);
    if (rc == 0) {
        *v = wf_pb_bits_double(f->u);
    }
    return rc;
}

int wf_pb_fixed32(wf_pb_rd_t *r, const wf_pb_field_t *f, uint32_t *v)
{
    int rc = want(r, f, WF_PB_I32);
    if (rc == 0) {
        *v = (uint32_t)f->u;
    }
    return rc;
}

int wf_pb_sfixed32(wf_pb_rd_t *r, const wf_pb_field_t *f, int32_t *v)
{
    int rc = want(r, f, WF_PB_I32);
    if (rc == 0) {
        *v = (int32_t)(uint32_t)f->u;
    }
    return rc;
}

int wf_pb_float(wf_pb_rd_t *r, const wf_pb_field_t *f, float *v)
{
    int rc = want(r, f, WF_PB_I32);
    if (rc == 0) {
        *v = wf_pb_bits_float((uint32_t)f->u);
    }
    return rc;
}

int wf_pb_bytes(wf_pb_rd_t *r, const wf_pb_field_t *f, wf_str_t *v)
{
    int rc = want(r, f, WF_PB_LEN);
    if (rc == 0) {
        v->p = (const char *)f->p;
        v->len = f->len;
    }
    return rc;
}

int wf_pb_sub(wf_pb_rd_t *r, const wf_pb_field_t *f, wf_pb_rd_t *sub)
{
    int rc = want(r, f, WF_PB_LEN);
    if (rc == 0) {
        sub->p = f->p;
        sub->end = f->len ? f->p + f->len : f->p;
        sub->base = r->base;
        sub->err = NULL;
        sub->err_off = 0;
    }
    return rc;
}

int wf_pb_rep_init(wf_pb_rd_t *r, const wf_pb_field_t *f, wf_pb_wire_t elem, wf_pb_rep_t *it)
{
    memset(it, 0, sizeof(*it));
    it->r = r;
    it->elem = elem;
    if (f->wire == elem) {
        it->single = true;
        it->u = f->u;
        return 0;
    }
    int rc = wf_pb_sub(r, f, &it->in);
    if (rc != 0) {
        return rc;
    }
    size_t width = elem == WF_PB_I64 ? 8 : elem == WF_PB_I32 ? 4 : 0;
    if (width != 0 && f->len % width != 0) {
        return fail(r, f->p, "packed fixed-width field with a partial element");
    }
    return 0;
}

int wf_pb_rep_next(wf_pb_rep_t *it, uint64_t *v)
{
    if (it->single) {
        if (it->single_done) {
            return 0;
        }
        it->single_done = true;
        *v = it->u;
        return 1;
    }
    wf_pb_rd_t *in = &it->in;
    if (in->p >= in->end) {
        return 0;
    }
    switch (it->elem) {
    case WF_PB_I64:
        *v = load_le(in->p, 8); /* the length was checked to be a multiple of 8 */
        in->p += 8;
        return 1;
    case WF_PB_I32:
        *v = load_le(in->p, 4);
        in->p += 4;
        return 1;
    default: {
        const uint8_t *at = in->p;
        int vr = varint(&in->p, in->end, v);
        if (vr != 0) {
            return fail(it->r, at,
                        vr == -1 ? "truncated packed varint"
                                 : "packed varint longer "
                                   "than 64 bits");
        }
        return 1;
    }
    }
}

size_t wf_pb_rep_count(const wf_pb_rep_t *it)
{
    if (it->single) {
        return 1;
    }
    size_t n = (size_t)(it->in.end - it->in.p);
    switch (it->elem) {
    case WF_PB_I64:
        return n / 8;
    case WF_PB_I32:
        return n / 4;
    default: {
        size_t count = 0;
        for (const uint8_t *p = it->in.p; p < it->in.end; p++) {
            count += *p < 0x80;
        }
        return count;
    }
    }
}
