/*
 * wf_buf.c - growable byte buffers, varints, and the bounds-checked slice reader.
 */
#include "wf_buf.h"

#include "wf_alloc.h"
#include "wf_err.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

void wf_buf_init(wf_buf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void wf_buf_free(wf_buf_t *b)
{
    wf_free(b->data);
    wf_buf_init(b);
}

uint8_t *wf_buf_reserve(wf_buf_t *b, size_t n)
{
    /* len + n must be representable, or the capacity below would wrap to a short block. */
    WF_ASSERT(n <= SIZE_MAX - b->len);
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                cap = b->len + n;
                break;
            }
            cap *= 2;
        }
        b->data = wf_realloc(b->data, cap);
        b->cap = cap;
    }
    return b->data + b->len;
}

void wf_buf_reset(wf_buf_t *b)
{
    b->len = 0;
}

void wf_buf_append(wf_buf_t *b, const void *p, size_t n)
{
    if (n == 0) {
        return;
    }
    memcpy(wf_buf_reserve(b, n), p, n);
    b->len += n;
}

void wf_buf_putc(wf_buf_t *b, uint8_t c)
{
    *wf_buf_reserve(b, 1) = c;
    b->len++;
}

void wf_buf_puts(wf_buf_t *b, const char *s)
{
    wf_buf_append(b, s, strlen(s));
}

void wf_buf_vprintf(wf_buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf((char *)wf_buf_reserve(b, 128), 128, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        return;
    }
    if ((size_t)n >= 128) {
        vsnprintf((char *)wf_buf_reserve(b, (size_t)n + 1), (size_t)n + 1, fmt, ap);
    }
    b->len += (size_t)n;
}

void wf_buf_printf(wf_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    wf_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

size_t wf_uvarint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

void wf_buf_put_uvarint(wf_buf_t *b, uint64_t v)
{
    b->len += wf_uvarint_put(wf_buf_reserve(b, 10), v);
}

void wf_buf_put_svarint(wf_buf_t *b, int64_t v)
{
    wf_buf_put_uvarint(b, wf_zigzag_enc(v));
}

void wf_buf_put_u32le(wf_buf_t *b, uint32_t v)
{
    uint8_t *p = wf_buf_reserve(b, 4);
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
    b->len += 4;
}

void wf_buf_put_u64le(wf_buf_t *b, uint64_t v)
{
    uint8_t *p = wf_buf_reserve(b, 8);
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
    b->len += 8;
}

const char *wf_buf_cstr(wf_buf_t *b)
{
    *wf_buf_reserve(b, 1) = '\0';
    return (const char *)b->data;
}

uint8_t *wf_buf_detach(wf_buf_t *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len != NULL) {
        *len = b->len;
    }
    wf_buf_init(b);
    return p;
}

int wf_rd_uvarint(wf_rd_t *r, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) {
            return -EBADMSG;
        }
        uint8_t c = *r->p++;
        if (shift == 63 && c > 1) {
            return -EBADMSG;
        }
        x |= (uint64_t)(c & 0x7f) << shift;
        if (c < 0x80) {
            *v = x;
            return 0;
        }
    }
    return -EBADMSG;
}

int wf_rd_svarint(wf_rd_t *r, int64_t *v)
{
    uint64_t u;
    int rc = wf_rd_uvarint(r, &u);
    if (rc == 0) {
        *v = wf_zigzag_dec(u);
    }
    return rc;
}

int wf_rd_u8(wf_rd_t *r, uint8_t *v)
{
    if (r->p >= r->end) {
        return -EBADMSG;
    }
    *v = *r->p++;
    return 0;
}

int wf_rd_u32le(wf_rd_t *r, uint32_t *v)
{
    if (wf_rd_left(r) < 4) {
        return -EBADMSG;
    }
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        x |= (uint32_t)r->p[i] << (8 * i);
    }
    r->p += 4;
    *v = x;
    return 0;
}

int wf_rd_u64le(wf_rd_t *r, uint64_t *v)
{
    if (wf_rd_left(r) < 8) {
        return -EBADMSG;
    }
    uint64_t x = 0;
    for (int i = 0; i < 8; i++) {
        x |= (uint64_t)r->p[i] << (8 * i);
    }
    r->p += 8;
    *v = x;
    return 0;
}

int wf_rd_bytes(wf_rd_t *r, size_t n, const uint8_t **out)
{
    if (wf_rd_left(r) < n) {
        return -EBADMSG;
    }
    *out = r->p;
    r->p += n;
    return 0;
}

void wf_buf_put_hex(wf_buf_t *b, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    if (n == 0) {
        return;
    }
    uint8_t *d = wf_buf_reserve(b, 2 * n);
    for (size_t i = 0; i < n; i++) {
        d[2 * i] = (uint8_t)digits[p[i] >> 4];
        d[2 * i + 1] = (uint8_t)digits[p[i] & 15];
    }
    b->len += 2 * n;
}

void wf_buf_put_base64(wf_buf_t *b, const uint8_t *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= p[i + 2];
        }
        uint8_t q[4] = {(uint8_t)tab[(v >> 18) & 63], (uint8_t)tab[(v >> 12) & 63],
                        i + 1 < n ? (uint8_t)tab[(v >> 6) & 63] : (uint8_t)'=',
                        i + 2 < n ? (uint8_t)tab[v & 63] : (uint8_t)'='};
        wf_buf_append(b, q, 4);
    }
}
