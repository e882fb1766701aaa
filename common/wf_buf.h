/*
 * wf_buf.h - growable byte buffers, and a bounds-checked reader over a byte slice.
 *
 * wf_buf_t owns its memory (data is NULL until the first append). Appends never fail: the
 * buffer grows through wf_realloc, which aborts on OOM; callers that hold input-controlled data
 * check sizes against their own limits before appending. A buffer is used by one thread at a
 * time.
 *
 * The varint forms are the protobuf/LEB128 ones (little-endian base-128, at most 10 bytes for
 * 64 bits); zigzag maps signed values to unsigned so that small magnitudes stay short.
 *
 * wf_rd_t reads from borrowed memory; every getter returns 0 on success or -EBADMSG when the
 * slice ends early or a varint is malformed, and never reads past the end.
 */
#ifndef WF_BUF_H
#define WF_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
} wf_buf_t;

#define WF_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void wf_buf_init(wf_buf_t *b);
/* Release the memory; the buffer is empty and reusable afterwards. */
void wf_buf_free(wf_buf_t *b);
/* Make room for n more bytes beyond len; returns a pointer to data + len. */
uint8_t *wf_buf_reserve(wf_buf_t *b, size_t n);
void wf_buf_reset(wf_buf_t *b);
void wf_buf_append(wf_buf_t *b, const void *p, size_t n);
void wf_buf_putc(wf_buf_t *b, uint8_t c);
void wf_buf_puts(wf_buf_t *b, const char *s);
void wf_buf_printf(wf_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void wf_buf_vprintf(wf_buf_t *b, const char *fmt, va_list ap);
void wf_buf_put_uvarint(wf_buf_t *b, uint64_t v);
void wf_buf_put_svarint(wf_buf_t *b, int64_t v);
void wf_buf_put_u32le(wf_buf_t *b, uint32_t v);
void wf_buf_put_u64le(wf_buf_t *b, uint64_t v);
/* Append p[0..n) as lowercase hex digits, or as standard base64 with padding (RFC 4648). */
void wf_buf_put_hex(wf_buf_t *b, const uint8_t *p, size_t n);
void wf_buf_put_base64(wf_buf_t *b, const uint8_t *p, size_t n);
/* Append a NUL after len without counting it, so data can be used as a C string. */
const char *wf_buf_cstr(wf_buf_t *b);
/* Hand the memory to the caller (who frees it with wf_free); the buffer becomes empty. */
uint8_t *wf_buf_detach(wf_buf_t *b, size_t *len);

static inline uint64_t wf_zigzag_enc(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t wf_zigzag_dec(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* Encode v at p (room for 10 bytes needed); returns the number of bytes written. */
size_t wf_uvarint_put(uint8_t *p, uint64_t v);

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} wf_rd_t;

static inline void wf_rd_init(wf_rd_t *r, const void *data, size_t len)
{
    r->p = data;
    r->end = len ? r->p + len : r->p; /* NULL + 0 is undefined in C */
}

static inline size_t wf_rd_left(const wf_rd_t *r)
{
    return (size_t)(r->end - r->p);
}

int wf_rd_uvarint(wf_rd_t *r, uint64_t *v);
int wf_rd_svarint(wf_rd_t *r, int64_t *v);
int wf_rd_u8(wf_rd_t *r, uint8_t *v);
int wf_rd_u32le(wf_rd_t *r, uint32_t *v);
int wf_rd_u64le(wf_rd_t *r, uint64_t *v);
/* Borrow n bytes: *out points into the slice. */
int wf_rd_bytes(wf_rd_t *r, size_t n, const uint8_t **out);

#endif
