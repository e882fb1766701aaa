/*
 * px_http1_body.c - the streaming body framer: Content-Length, chunked (RFC 9112 §7.1) and
 * read-until-close bodies, fed in pieces split anywhere.
 *
 * Content is handed back as slices of the caller's input, so a chunked body is de-chunked
 * without a copy. The chunk-size lines and the trailer section are walked one byte at a time
 * by a small state machine (they are a few bytes per chunk); chunk data is passed over in one
 * step. Trailer fields are checked with the head's rules and bounded, then dropped: RFC 9110
 * §6.5.1 lets a recipient that removes the chunked coding discard them.
 */
#include "px_http1.h"

#include <string.h>

#include "wf_err.h"

enum {
    B_DONE = 0,
    B_ERROR,
    B_LENGTH,     /* remaining bytes of a Content-Length body */
    B_EOF,        /* until close (or a tunnel): everything is content */
    B_SIZE_START, /* first hex digit of a chunk size */
    B_SIZE,       /* more hex digits, ';' or CR */
    B_EXT,        /* chunk extensions up to CR */
    B_SIZE_LF,    /* LF ending the chunk-size line */
    B_DATA,       /* remaining bytes of chunk data */
    B_DATA_CR,    /* CRLF after chunk data */
    B_DATA_LF,
    B_TR_START, /* start of a trailer field line or of the final CRLF */
    B_TR_NAME,
    B_TR_VALUE,
    B_TR_LF,
    B_TR_END_LF, /* LF of the final CRLF */
};

void px_http1_body_init(px_http1_body_t *b, const px_http1_head_t *head,
                        const px_http1_limits_t *lim)
{
    px_http1_limits_t dl;
    if (lim == NULL) {
        px_http1_limits_init(&dl);
        lim = &dl;
    }
    memset(b, 0, sizeof(*b));
    b->kind = (uint8_t)head->body;
    b->err_status = head->status == 0 ? 400 : 502;
    b->max_chunk_line = lim->max_chunk_line;
    b->max_trailer = lim->max_trailer;
    b->max_trailers = lim->max_trailers;
    switch (head->body) {
    case PX_HTTP1_BODY_LENGTH:
        b->remaining = head->content_length;
        b->state = b->remaining > 0 ? B_LENGTH : B_DONE;
        break;
    case PX_HTTP1_BODY_CHUNKED:
        b->state = B_SIZE_START;
        break;
    case PX_HTTP1_BODY_EOF:
    case PX_HTTP1_BODY_TUNNEL:
        b->state = B_EOF;
        break;
    default:
        b->state = B_DONE;
        break;
    }
}

bool px_http1_body_done(const px_http1_body_t *b)
{
    return b->state == B_DONE;
}

static int body_fail(px_http1_body_t *b, const char *reason)
{
    b->state = B_ERROR;
    b->err.status = b->err_status;
    b->err.reason = reason;
    return PX_HTTP1_EMSG;
}

/* Token characters (RFC 9110 §5.6.2), for trailer field names. */
static bool is_tchar(char ch)
{
    uint8_t c = (uint8_t)ch;
    if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) {
        return true;
    }
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field-value and chunk-extension characters: HTAB, SP, VCHAR, obs-text. */
static bool is_vchar(char ch)
{
    uint8_t c = (uint8_t)ch;
    return c == '\t' || (c >= ' ' && c != 0x7f);
}

int px_http1_body_feed(px_http1_body_t *b, const char *p, size_t len, size_t *consumed,
                       wf_str_t *data)
{
    const char *s = p, *end = p + len;
    *data = (wf_str_t){p, 0};
    *consumed = 0;
    if (b->state == B_ERROR) {
        return PX_HTTP1_EMSG;
    }
    while (s < end && b->state != B_DONE) {
        char c = *s;
        if (b->state >= B_TR_START && ++b->trailer_len > b->max_trailer) {
            return body_fail(b, "trailer section too large");
        }
        switch (b->state) {
        case B_LENGTH:
        case B_DATA: {
            size_t n = (size_t)(end - s);
            if (n > b->remaining) {
                n = (size_t)b->remaining;
            }
            *data = (wf_str_t){s, n};
            s += n;
            b->remaining -= n;
            b->total += n;
            if (b->remaining == 0) {
                b->state = b->state == B_LENGTH ? B_DONE : B_DATA_CR;
            }
            goto out;
        }
        case B_EOF:
            *data = (wf_str_t){s, (size_t)(end - s)};
            b->total += (size_t)(end - s);
            s = end;
            goto out;
        case B_SIZE_START: {
            int v = wf_hex_digit(c);
            if (v < 0) {
                return body_fail(b, "invalid chunk size");
            }
            b->remaining = (uint64_t)v;
            b->line_len = 1;
            b->state = B_SIZE;
            break;
        }
        case B_SIZE: {
            int v = wf_hex_digit(c);
            if (c == '\r') {
                b->state = B_SIZE_LF;
                break;
            }
            if (++b->line_len > b->max_chunk_line) {
                return body_fail(b, "chunk-size line too long");
            }
            if (v >= 0) {
                /* Sizes stay below 2^63 so they fit every signed offset downstream. */
                if (b->remaining >> 59 != 0) {
                    return body_fail(b, "chunk size too large");
                }
                b->remaining = b->remaining << 4 | (uint64_t)v;
            } else if (c == ';') {
                b->state = B_EXT;
            } else {
                return body_fail(b, "invalid chunk size");
            }
            break;
        }
        case B_EXT:
            if (c == '\r') {
                b->state = B_SIZE_LF;
            } else if (!is_vchar(c)) {
                return body_fail(b, "invalid chunk extension");
            } else if (++b->line_len > b->max_chunk_line) {
                return body_fail(b, "chunk-size line too long");
            }
            break;
        case B_SIZE_LF:
            if (c != '\n') {
                return body_fail(b, "bare CR in chunk-size line");
            }
            b->state = b->remaining == 0 ? B_TR_START : B_DATA;
            break;
        case B_DATA_CR:
            if (c != '\r') {
                return body_fail(b, "missing CRLF after chunk data");
            }
            b->state = B_DATA_LF;
            break;
        case B_DATA_LF:
            if (c != '\n') {
                return body_fail(b, "missing CRLF after chunk data");
            }
            b->state = B_SIZE_START;
            break;
        case B_TR_START:
            if (c == '\r') {
                b->state = B_TR_END_LF;
            } else if (!is_tchar(c)) {
                return body_fail(b, "invalid trailer field");
            } else if (++b->trailer_count > b->max_trailers) {
                return body_fail(b, "too many trailer fields");
            } else {
                b->state = B_TR_NAME;
            }
            break;
        case B_TR_NAME:
            if (c == ':') {
                b->state = B_TR_VALUE;
            } else if (!is_tchar(c)) {
                return body_fail(b, "invalid trailer field name");
            }
            break;
        case B_TR_VALUE:
            if (c == '\r') {
                b->state = B_TR_LF;
            } else if (!is_vchar(c)) {
                return body_fail(b, "invalid trailer field value");
            }
            break;
        case B_TR_LF:
            if (c != '\n') {
                return body_fail(b, "bare CR in trailer section");
            }
            b->state = B_TR_START;
            break;
        case B_TR_END_LF:
            if (c != '\n') {
                return body_fail(b, "bare CR in trailer section");
            }
            b->state = B_DONE;
            break;
        default:
            WF_ASSERT(!"unreachable body state");
        }
        s++;
    }
out:
    *consumed = (size_t)(s - p);
    return 0;
}

int px_http1_body_eof(px_http1_body_t *b)
{
    if (b->state == B_EOF) {
        b->state = B_DONE;
    }
    if (b->state == B_DONE) {
        return 0;
    }
    if (b->state == B_ERROR) {
        return PX_HTTP1_EMSG;
    }
    return body_fail(b, "connection closed before the end of the body");
}
