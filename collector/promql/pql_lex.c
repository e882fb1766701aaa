/*
 * pql_lex.c - the PromQL lexer, and the Go-compatible quoting and duration helpers the parser
 * and the printer share (pql_lex.h).
 *
 * The lexer mirrors Prometheus 2.42's lex.go: the same states (statements, inside braces,
 * inside brackets), the same lookahead rules for numbers and durations (a number followed by a
 * letter is a duration or an error), the same string escape validation, and the same error
 * messages, because users see those messages verbatim in API errors. It tokenizes the whole
 * query up front; a lexical error becomes the last token, so the parser reports it only when it
 * reaches that point, as Prometheus's lazy lexer does.
 */
#include "pql_lex.h"

#include "wf_alloc.h"
#include "wf_str.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define EOF_RUNE (-1)

typedef struct {
    const char *in;
    size_t len;
    size_t pos;   /* next byte to read */
    size_t start; /* first byte of the token being scanned */
    size_t width; /* bytes of the last rune read by next(), for backup() */
    int paren_depth;
    bool brace_open;
    bool bracket_open;
    bool got_colon;
    char string_open;
    bool done;
    pql_toks_t *out;
} lexer_t;

size_t pql__utf8_decode(const char *p, size_t n, uint32_t *r)
{
    const uint8_t *s = (const uint8_t *)p;
    uint32_t c = s[0];
    size_t need;
    uint32_t min;
    if (c < 0x80) {
        *r = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        min = 0x80;
        c &= 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        min = 0x800;
        c &= 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        min = 0x10000;
        c &= 0x07;
    } else {
        goto invalid;
    }
    if (n < need + 1) {
        goto invalid;
    }
    for (size_t i = 1; i <= need; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            goto invalid;
        }
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
        goto invalid;
    }
    *r = c;
    return need + 1;
invalid:
    *r = 0xFFFD;
    return 1;
}

/* An approximation of Go's unicode.IsPrint: ASCII exactly, and the common non-printing
 * code points (C1 controls, spaces other than U+0020, format characters, private use). */
static bool is_print(uint32_t r)
{
    if (r < 0x80) {
        return r >= 0x20 && r < 0x7F;
    }
    if (r < 0xA1 || r == 0xAD || r == 0x1680 || (r >= 0x2000 && r <= 0x200F) ||
        (r >= 0x2028 && r <= 0x202F) || (r >= 0x205F && r <= 0x206F) || r == 0x3000 ||
        r == 0xFEFF || (r >= 0xE000 && r <= 0xF8FF) || r >= 0xF0000 || (r & 0xFFFE) == 0xFFFE) {
        return false;
    }
    return true;
}

static void put_escaped_rune(wf_buf_t *b, uint32_t r, size_t width, uint8_t byte, char quote)
{
    if (width == 1 && r == 0xFFFD) {
        wf_buf_printf(b, "\\x%02x", byte);
        return;
    }
    if (r == (uint32_t)quote || r == '\\') {
        wf_buf_putc(b, '\\');
        wf_buf_putc(b, (uint8_t)r);
        return;
    }
    if (is_print(r)) {
        return; /* the caller copies the original bytes */
    }
    switch (r) {
    case '\a':
        wf_buf_puts(b, "\\a");
        return;
    case '\b':
        wf_buf_puts(b, "\\b");
        return;
    case '\f':
        wf_buf_puts(b, "\\f");
        return;
    case '\n':
        wf_buf_puts(b, "\\n");
        return;
    case '\r':
        wf_buf_puts(b, "\\r");
        return;
    case '\t':
        wf_buf_puts(b, "\\t");
        return;
    case '\v':
        wf_buf_puts(b, "\\v");
        return;
    default:
        break;
    }
    if (r < ' ' || r == 0x7F) {
        wf_buf_printf(b, "\\x%02x", (unsigned)r);
    } else if (r < 0x10000) {
        wf_buf_printf(b, "\\u%04x", (unsigned)r);
    } else {
        wf_buf_printf(b, "\\U%08x", (unsigned)r);
    }
}

static void quote_with(wf_buf_t *b, const char *s, size_t n, size_t max_runes, char quote)
{
    wf_buf_putc(b, (uint8_t)quote);
    size_t runes = 0;
    for (size_t i = 0; i < n;) {
        if (max_runes > 0 && runes == max_runes) {
            break;
        }
        uint32_t r;
        size_t w = pql__utf8_decode(s + i, n - i, &r);
        bool plain = !(w == 1 && r == 0xFFFD) && r != (uint32_t)quote && r != '\\' && is_print(r);
        if (plain) {
            wf_buf_append(b, s + i, w);
        } else {
            put_escaped_rune(b, r, w, (uint8_t)s[i], quote);
        }
        i += w;
        runes++;
    }
    wf_buf_putc(b, (uint8_t)quote);
}

void pql__quote(wf_buf_t *b, const char *s, size_t n, size_t max_runes)
{
    quote_with(b, s, n, max_runes, '"');
}

static size_t encode_rune(uint32_t u, char enc[4])
{
    size_t n;
    if (u < 0x80) {
        enc[0] = (char)u;
        n = 1;
    } else if (u < 0x800) {
        enc[0] = (char)(0xC0 | (u >> 6));
        enc[1] = (char)(0x80 | (u & 0x3F));
        n = 2;
    } else if (u < 0x10000) {
        enc[0] = (char)(0xE0 | (u >> 12));
        enc[1] = (char)(0x80 | ((u >> 6) & 0x3F));
        enc[2] = (char)(0x80 | (u & 0x3F));
        n = 3;
    } else {
        enc[0] = (char)(0xF0 | (u >> 18));
        enc[1] = (char)(0x80 | ((u >> 12) & 0x3F));
        enc[2] = (char)(0x80 | ((u >> 6) & 0x3F));
        enc[3] = (char)(0x80 | (u & 0x3F));
        n = 4;
    }
    return n;
}

/* Go's %q of a rune (strconv.QuoteRune); EOF_RUNE prints as U+FFFD, as Go does. */
static void quote_rune(wf_buf_t *b, int32_t r)
{
    char enc[4];
    size_t n = encode_rune(r < 0 ? 0xFFFD : (uint32_t)r, enc);
    quote_with(b, enc, n, 0, '\'');
}

static void quote_rune_raw(wf_buf_t *b, uint32_t u)
{
    char enc[4];
    wf_buf_append(b, enc, encode_rune(u, enc));
}

/* ---- Durations ---------------------------------------------------------------------------- */

void pql_format_duration(wf_buf_t *b, int64_t ms)
{
    static const struct {
        const char *unit;
        int64_t mult;
        bool exact;
    } units[] = {
        {"y", 1000LL * 60 * 60 * 24 * 365, true},
        {"w", 1000LL * 60 * 60 * 24 * 7, true},
        {"d", 1000LL * 60 * 60 * 24, false},
        {"h", 1000LL * 60 * 60, false},
        {"m", 1000LL * 60, false},
        {"s", 1000, false},
        {"ms", 1, false},
    };
    if (ms == 0) {
        wf_buf_puts(b, "0s");
        return;
    }
    /* model.Duration prints the magnitude unit by unit; negative values never reach here
     * (the printer writes the sign itself), but keep them well-defined. */
    if (ms < 0) {
        wf_buf_putc(b, '-');
        ms = ms == INT64_MIN ? INT64_MAX : -ms;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (units[i].exact && ms % units[i].mult != 0) {
            continue;
        }
        int64_t v = ms / units[i].mult;
        if (v > 0) {
            wf_buf_printf(b, "%lld%s", (long long)v, units[i].unit);
            ms -= v * units[i].mult;
        }
    }
}

int pql__parse_duration(const char *s, size_t n, int64_t *ms, char *msg, size_t msglen)
{
    /* model.ParseDuration: ^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$ with
     * time.Duration (nanoseconds) as the range limit. */
    static const struct {
        const char *unit;
        int64_t mult;
    } units[] = {
        {"y", 1000LL * 60 * 60 * 24 * 365},
        {"w", 1000LL * 60 * 60 * 24 * 7},
        {"d", 1000LL * 60 * 60 * 24},
        {"h", 1000LL * 60 * 60},
        {"m", 1000LL * 60},
        {"s", 1000},
        {"ms", 1},
    };
    const int64_t max_ms = INT64_MAX / 1000000; /* time.Duration counts nanoseconds */
    size_t i = 0, u = 0;
    int64_t total = 0;
    bool overflow = false;
    if (n == 0) {
        snprintf(msg, msglen, "empty duration string");
        return -1;
    }
    while (i < n) {
        size_t d0 = i;
        int64_t v = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            v = v > INT64_MAX / 10 ? INT64_MAX : v * 10 + (s[i] - '0');
            i++;
        }
        if (i == d0) {
            goto bad;
        }
        size_t ulen = 0;
        while (i + ulen < n && isalpha((unsigned char)s[i + ulen])) {
            ulen++;
        }
        while (u < sizeof(units) / sizeof(units[0]) &&
               !(strlen(units[u].unit) == ulen && memcmp(units[u].unit, s + i, ulen) == 0)) {
            u++;
        }
        if (u == sizeof(units) / sizeof(units[0])) {
            goto bad;
        }
        if (v > max_ms / units[u].mult) {
            overflow = true;
        } else {
            total += v * units[u].mult;
            if (total > max_ms) {
                overflow = true;
            }
        }
        u++;
        i += ulen;
    }
    if (overflow) {
        snprintf(msg, msglen, "duration out of range");
        return -1;
    }
    if (total == 0) {
        snprintf(msg, msglen, "duration must be greater than 0");
        return -1;
    }
    *ms = total;
    return 0;
bad : {
    wf_buf_t b = WF_BUF_INIT;
    pql__quote(&b, s, n, 0);
    snprintf(msg, msglen, "not a valid duration string: %s", wf_buf_cstr(&b));
    wf_buf_free(&b);
    return -1;
}
}

/* ---- The lexer ---------------------------------------------------------------------------- */

static int32_t next(lexer_t *l)
{
    if (l->pos >= l->len) {
        l->width = 0;
        return EOF_RUNE;
    }
    uint32_t r;
    size_t w = pql__utf8_decode(l->in + l->pos, l->len - l->pos, &r);
    l->width = w;
    l->pos += w;
    return (int32_t)r;
}

static void backup(lexer_t *l)
{
    l->pos -= l->width;
}

static int32_t peek(lexer_t *l)
{
    int32_t r = next(l);
    backup(l);
    return r;
}

static bool accept(lexer_t *l, const char *valid)
{
    int32_t r = next(l);
    if (r > 0 && r < 0x80 && strchr(valid, (int)r) != NULL) {
        return true;
    }
    backup(l);
    return false;
}

static void accept_run(lexer_t *l, const char *valid)
{
    while (accept(l, valid)) {
    }
}

static bool is_space(int32_t r)
{
    return r == ' ' || r == '\t' || r == '\n' || r == '\r';
}

static bool is_alpha(int32_t r)
{
    return r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z');
}

static bool is_digit(int32_t r)
{
    return r >= '0' && r <= '9';
}

static bool is_alnum(int32_t r)
{
    return is_alpha(r) || is_digit(r);
}

static void emit(lexer_t *l, pql_tok_type_t t)
{
    pql_toks_t *o = l->out;
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 64;
        o->toks = wf_realloc(o->toks, o->cap * sizeof(*o->toks));
    }
    o->toks[o->n++] = (pql_tok_t){t, (uint32_t)l->start, (uint32_t)(l->pos - l->start)};
    l->start = l->pos;
    if (t == PQL_T_EOF) {
        l->done = true;
    }
}

static void lex_error(lexer_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void lex_error(lexer_t *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->out->msg, sizeof(l->out->msg), fmt, ap);
    va_end(ap);
    size_t save = l->pos;
    l->pos = l->start;
    emit(l, PQL_T_ERROR);
    l->pos = save;
    l->done = true;
}

/* Error whose message ends with a Go-quoted rune or text. */
static void lex_error_rune(lexer_t *l, const char *prefix, int32_t r)
{
    wf_buf_t b = WF_BUF_INIT;
    quote_rune(&b, r);
    lex_error(l, "%s%s", prefix, wf_buf_cstr(&b));
    wf_buf_free(&b);
}

static void lex_error_text(lexer_t *l, const char *prefix, size_t from, size_t to)
{
    wf_buf_t b = WF_BUF_INIT;
    pql__quote(&b, l->in + from, to - from, 0);
    lex_error(l, "%s%s", prefix, wf_buf_cstr(&b));
    wf_buf_free(&b);
}

/* Go's %#U: "U+0071 'q'" (the character only when printable). */
static void lex_error_U(lexer_t *l, const char *fmt_pre, const char *fmt_post, int32_t r)
{
    wf_buf_t b = WF_BUF_INIT;
    uint32_t u = r < 0 ? 0xFFFD : (uint32_t)r;
    wf_buf_printf(&b, "U+%04X", (unsigned)u);
    if (is_print(u)) {
        /* %#U puts the character between quotes as is, without escaping. */
        wf_buf_puts(&b, " '");
        quote_rune_raw(&b, u);
        wf_buf_putc(&b, '\'');
    }
    lex_error(l, "%s%s%s", fmt_pre, wf_buf_cstr(&b), fmt_post);
    wf_buf_free(&b);
}

static void skip_comment(lexer_t *l)
{
    while (l->pos < l->len && l->in[l->pos] != '\n' && l->in[l->pos] != '\r') {
        l->pos++;
    }
    l->start = l->pos;
}

static void skip_spaces(lexer_t *l)
{
    while (is_space(peek(l))) {
        next(l);
    }
    l->start = l->pos;
}

static bool scan_number(lexer_t *l)
{
    const char *digits = "0123456789";
    if (accept(l, "0") && accept(l, "xX")) {
        digits = "0123456789abcdefABCDEF";
    }
    accept_run(l, digits);
    if (accept(l, ".")) {
        accept_run(l, digits);
    }
    if (accept(l, "eE")) {
        accept(l, "+-");
        accept_run(l, "0123456789");
    }
    return !is_alnum(peek(l));
}

static bool accept_remaining_duration(lexer_t *l)
{
    if (!accept(l, "smhdwy")) {
        return false;
    }
    accept(l, "s");
    while (accept(l, "0123456789")) {
        while (accept(l, "0123456789")) {
        }
        if (!accept(l, "smhdw")) {
            return false;
        }
        accept(l, "s");
    }
    return !is_alnum(next(l));
}

static void lex_number_or_duration(lexer_t *l)
{
    if (scan_number(l)) {
        emit(l, PQL_T_NUMBER);
        return;
    }
    if (accept_remaining_duration(l)) {
        backup(l);
        emit(l, PQL_T_DURATION);
        return;
    }
    lex_error_text(l, "bad number or duration syntax: ", l->start, l->pos);
}

static void lex_duration(lexer_t *l)
{
    if (scan_number(l)) {
        lex_error(l, "missing unit character in duration");
        return;
    }
    if (!accept_remaining_duration(l)) {
        lex_error_text(l, "bad duration syntax: ", l->start, l->pos);
        return;
    }
    backup(l);
    emit(l, PQL_T_DURATION);
}

/* A digit's value in any base up to 16; 16 for a character that is none. */
static int digit_val(int32_t c)
{
    int v = c < 128 ? wf_hex_digit((int)c) : -1;
    return v < 0 ? 16 : v;
}

/* One escape sequence; the backslash has been read. false after an error. */
static bool lex_escape(lexer_t *l)
{
    int n;
    uint32_t base, max;
    int32_t ch = next(l);
    switch (ch) {
    case 'a':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
    case 'v':
    case '\\':
        return true;
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
        n = 3;
        base = 8;
        max = 255;
        break;
    case 'x':
        ch = next(l);
        n = 2;
        base = 16;
        max = 255;
        break;
    case 'u':
        ch = next(l);
        n = 4;
        base = 16;
        max = 0x10FFFF;
        break;
    case 'U':
        ch = next(l);
        n = 8;
        base = 16;
        max = 0x10FFFF;
        break;
    case EOF_RUNE:
        lex_error(l, "escape sequence not terminated");
        return false;
    default:
        if (ch == l->string_open) {
            return true;
        }
        lex_error_U(l, "unknown escape sequence ", "", ch);
        return false;
    }
    uint32_t x = 0;
    while (n > 0) {
        uint32_t d = (uint32_t)digit_val(ch);
        if (d >= base) {
            if (ch == EOF_RUNE) {
                lex_error(l, "escape sequence not terminated");
            } else {
                lex_error_U(l, "illegal character ", " in escape sequence", ch);
            }
            return false;
        }
        x = x * base + d;
        n--;
        if (n > 0) {
            ch = next(l);
        }
    }
    if (x > max || (x >= 0xD800 && x < 0xE000)) {
        lex_error(l, "escape sequence is an invalid Unicode code point");
        return false;
    }
    return true;
}

static void lex_string(lexer_t *l)
{
    for (;;) {
        int32_t r = next(l);
        if (r == '\\') {
            if (!lex_escape(l)) {
                return;
            }
            continue;
        }
        if (r == 0xFFFD) {
            lex_error(l, "invalid UTF-8 rune");
            return;
        }
        if (r == EOF_RUNE || r == '\n') {
            lex_error(l, "unterminated quoted string");
            return;
        }
        if (r == l->string_open) {
            break;
        }
    }
    emit(l, PQL_T_STRING);
}

static void lex_raw_string(lexer_t *l)
{
    for (;;) {
        int32_t r = next(l);
        if (r == 0xFFFD) {
            lex_error(l, "invalid UTF-8 rune");
            return;
        }
        if (r == EOF_RUNE) {
            lex_error(l, "unterminated raw string");
            return;
        }
        if (r == l->string_open) {
            break;
        }
    }
    emit(l, PQL_T_STRING);
}

static const struct {
    const char *word;
    pql_tok_type_t type;
} keywords[] = {
    {"and", PQL_T_LAND},
    {"or", PQL_T_LOR},
    {"unless", PQL_T_LUNLESS},
    {"atan2", PQL_T_ATAN2},
    {"sum", PQL_T_SUM},
    {"avg", PQL_T_AVG},
    {"count", PQL_T_COUNT},
    {"min", PQL_T_MIN},
    {"max", PQL_T_MAX},
    {"group", PQL_T_GROUP},
    {"stddev", PQL_T_STDDEV},
    {"stdvar", PQL_T_STDVAR},
    {"topk", PQL_T_TOPK},
    {"bottomk", PQL_T_BOTTOMK},
    {"count_values", PQL_T_COUNT_VALUES},
    {"quantile", PQL_T_QUANTILE},
    {"offset", PQL_T_OFFSET},
    {"by", PQL_T_BY},
    {"without", PQL_T_WITHOUT},
    {"on", PQL_T_ON},
    {"ignoring", PQL_T_IGNORING},
    {"group_left", PQL_T_GROUP_LEFT},
    {"group_right", PQL_T_GROUP_RIGHT},
    {"bool", PQL_T_BOOL},
    {"start", PQL_T_START},
    {"end", PQL_T_END},
    {"inf", PQL_T_NUMBER},
    {"nan", PQL_T_NUMBER},
};

static void lex_keyword_or_identifier(lexer_t *l)
{
    bool colon = false;
    for (;;) {
        int32_t r = next(l);
        if (is_alnum(r) || r == ':') {
            colon |= r == ':';
            continue;
        }
        backup(l);
        break;
    }
    const char *w = l->in + l->start;
    size_t n = l->pos - l->start;
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
        if (strlen(keywords[i].word) == n && strncasecmp(keywords[i].word, w, n) == 0) {
            emit(l, keywords[i].type);
            return;
        }
    }
    emit(l, colon ? PQL_T_METRIC_IDENTIFIER : PQL_T_IDENTIFIER);
}

static void lex_inside_braces(lexer_t *l)
{
    if (l->pos < l->len && l->in[l->pos] == '#') {
        skip_comment(l);
        return;
    }
    int32_t r = next(l);
    if (r == EOF_RUNE) {
        lex_error(l, "unexpected end of input inside braces");
    } else if (is_space(r)) {
        skip_spaces(l);
    } else if (is_alpha(r)) {
        while (is_alnum(next(l))) {
        }
        backup(l);
        emit(l, PQL_T_IDENTIFIER);
    } else if (r == ',') {
        emit(l, PQL_T_COMMA);
    } else if (r == '"' || r == '\'') {
        l->string_open = (char)r;
        lex_string(l);
    } else if (r == '`') {
        l->string_open = (char)r;
        lex_raw_string(l);
    } else if (r == '=') {
        if (next(l) == '~') {
            emit(l, PQL_T_EQL_REGEX);
        } else {
            backup(l);
            emit(l, PQL_T_EQL);
        }
    } else if (r == '!') {
        int32_t nr = next(l);
        if (nr == '~') {
            emit(l, PQL_T_NEQ_REGEX);
        } else if (nr == '=') {
            emit(l, PQL_T_NEQ);
        } else {
            lex_error_rune(l, "unexpected character after '!' inside braces: ", nr);
        }
    } else if (r == '{') {
        lex_error_rune(l, "unexpected left brace ", r);
    } else if (r == '}') {
        emit(l, PQL_T_RIGHT_BRACE);
        l->brace_open = false;
    } else {
        lex_error_rune(l, "unexpected character inside braces: ", r);
    }
}

static void lex_statements(lexer_t *l)
{
    if (l->pos < l->len && l->in[l->pos] == '#') {
        skip_comment(l);
        return;
    }
    int32_t r = next(l);
    switch (r) {
    case EOF_RUNE:
        if (l->paren_depth != 0) {
            lex_error(l, "unclosed left parenthesis");
        } else if (l->bracket_open) {
            lex_error(l, "unclosed left bracket");
        } else {
            emit(l, PQL_T_EOF);
        }
        return;
    case ',':
        emit(l, PQL_T_COMMA);
        return;
    case '*':
        emit(l, PQL_T_MUL);
        return;
    case '/':
        emit(l, PQL_T_DIV);
        return;
    case '%':
        emit(l, PQL_T_MOD);
        return;
    case '+':
        emit(l, PQL_T_ADD);
        return;
    case '-':
        emit(l, PQL_T_SUB);
        return;
    case '^':
        emit(l, PQL_T_POW);
        return;
    case '=': {
        int32_t t = peek(l);
        if (t == '=') {
            next(l);
            emit(l, PQL_T_EQLC);
        } else if (t == '~') {
            lex_error_rune(l, "unexpected character after '=': ", t);
        } else {
            emit(l, PQL_T_EQL);
        }
        return;
    }
    case '!': {
        int32_t t = next(l);
        if (t == '=') {
            emit(l, PQL_T_NEQ);
        } else {
            lex_error_rune(l, "unexpected character after '!': ", t);
        }
        return;
    }
    case '<':
        if (peek(l) == '=') {
            next(l);
            emit(l, PQL_T_LTE);
        } else {
            emit(l, PQL_T_LSS);
        }
        return;
    case '>':
        if (peek(l) == '=') {
            next(l);
            emit(l, PQL_T_GTE);
        } else {
            emit(l, PQL_T_GTR);
        }
        return;
    case '"':
    case '\'':
        l->string_open = (char)r;
        lex_string(l);
        return;
    case '`':
        l->string_open = (char)r;
        lex_raw_string(l);
        return;
    case '(':
        emit(l, PQL_T_LEFT_PAREN);
        l->paren_depth++;
        return;
    case ')':
        emit(l, PQL_T_RIGHT_PAREN);
        l->paren_depth--;
        if (l->paren_depth < 0) {
            /* Prometheus overwrites the ')' it just emitted with the error. */
            l->out->n--;
            lex_error_rune(l, "unexpected right parenthesis ", r);
        }
        return;
    case '{':
        emit(l, PQL_T_LEFT_BRACE);
        l->brace_open = true;
        return;
    case '[':
        if (l->bracket_open) {
            lex_error_rune(l, "unexpected left bracket ", r);
            return;
        }
        l->got_colon = false;
        emit(l, PQL_T_LEFT_BRACKET);
        if (is_space(peek(l))) {
            skip_spaces(l);
        }
        l->bracket_open = true;
        lex_duration(l);
        return;
    case ']':
        if (!l->bracket_open) {
            lex_error_rune(l, "unexpected right bracket ", r);
            return;
        }
        emit(l, PQL_T_RIGHT_BRACKET);
        l->bracket_open = false;
        return;
    case '@':
        emit(l, PQL_T_AT);
        return;
    default:
        break;
    }
    if (is_space(r)) {
        skip_spaces(l);
    } else if (is_digit(r) || (r == '.' && is_digit(peek(l)))) {
        backup(l);
        lex_number_or_duration(l);
    } else if (is_alpha(r) || r == ':') {
        if (!l->bracket_open) {
            backup(l);
            lex_keyword_or_identifier(l);
        } else if (l->got_colon) {
            lex_error_rune(l, "unexpected colon ", r);
        } else {
            emit(l, PQL_T_COLON);
            l->got_colon = true;
        }
    } else {
        lex_error_rune(l, "unexpected character: ", r);
    }
}

void pql__lex(const char *q, size_t len, pql_toks_t *out)
{
    memset(out, 0, sizeof(*out));
    lexer_t l = {.in = q, .len = len, .out = out};
    while (!l.done) {
        if (l.brace_open) {
            lex_inside_braces(&l);
        } else {
            lex_statements(&l);
        }
    }
}

void pql__lex_free(pql_toks_t *t)
{
    wf_free(t->toks);
    t->toks = NULL;
    t->n = t->cap = 0;
}
