/*
 * cp_cli_print.c - what the CLI prints: ages as kubectl writes them, kubectl's column layout,
 * and block YAML from a JSON value (see cp_cli.h).
 */
#include "cp_cli.h"

#include "wf_alloc.h"
#include "wf_err.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- ages and timestamps ---- */

void cp_cli_age(int64_t ms, char *out, size_t len)
{
    /* apimachinery's HumanDuration: precision falls as the age grows, so a column of ages stays
     * narrow; up to 2 s in the future counts as now (clocks of two machines disagree). */
    int64_t s = ms / 1000;
    if (s < -1) {
        snprintf(out, len, "<invalid>");
        return;
    }
    if (s < 0) {
        s = 0;
    }
    int64_t m = s / 60, h = s / 3600, d = h / 24;
    if (s < 120) {
        snprintf(out, len, "%" PRId64 "s", s);
    } else if (m < 10) {
        if (s % 60 == 0) {
            snprintf(out, len, "%" PRId64 "m", m);
        } else {
            snprintf(out, len, "%" PRId64 "m%" PRId64 "s", m, s % 60);
        }
    } else if (m < 180) {
        snprintf(out, len, "%" PRId64 "m", m);
    } else if (h < 8) {
        if (m % 60 == 0) {
            snprintf(out, len, "%" PRId64 "h", h);
        } else {
            snprintf(out, len, "%" PRId64 "h%" PRId64 "m", h, m % 60);
        }
    } else if (h < 48) {
        snprintf(out, len, "%" PRId64 "h", h);
    } else if (h < 24 * 8) {
        if (h % 24 == 0) {
            snprintf(out, len, "%" PRId64 "d", d);
        } else {
            snprintf(out, len, "%" PRId64 "d%" PRId64 "h", d, h % 24);
        }
    } else if (h < 24 * 365 * 2) {
        snprintf(out, len, "%" PRId64 "d", d);
    } else if (h < 24 * 365 * 8) {
        if (d % 365 == 0) {
            snprintf(out, len, "%" PRId64 "y", d / 365);
        } else {
            snprintf(out, len, "%" PRId64 "y%" PRId64 "d", d / 365, d % 365);
        }
    } else {
        snprintf(out, len, "%" PRId64 "y", d / 365);
    }
}

int64_t cp_cli_parse_time(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;
    if (end == NULL || *end != '\0') {
        return -1;
    }
    return (int64_t)timegm(&tm);
}

/* ---- tables ---- */

struct cp_cli_table {
    size_t ncols;
    size_t nrows; /* the header row included */
    size_t cap;
    char **cells; /* nrows * ncols */
};

cp_cli_table_t *cp_cli_table_new(size_t ncols, const char *const *headers)
{
    WF_ASSERT(ncols > 0);
    cp_cli_table_t *t = wf_calloc(1, sizeof(*t));
    t->ncols = ncols;
    cp_cli_table_add(t, headers);
    return t;
}

void cp_cli_table_add(cp_cli_table_t *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 8;
        t->cells = wf_realloc(t->cells, t->cap * t->ncols * sizeof(char *));
    }
    for (size_t c = 0; c < t->ncols; c++) {
        t->cells[t->nrows * t->ncols + c] = wf_strdup(cells[c] ? cells[c] : "");
    }
    t->nrows++;
}

size_t cp_cli_table_rows(const cp_cli_table_t *t)
{
    return t->nrows - 1;
}

/* Width on a terminal: code points, as kubectl's tabwriter counts runes. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++) {
        w += ((unsigned char)*s & 0xC0) != 0x80;
    }
    return w;
}

void cp_cli_table_print(const cp_cli_table_t *t, FILE *out)
{
    size_t *width = wf_calloc(t->ncols, sizeof(size_t));
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            size_t w = text_width(t->cells[r * t->ncols + c]);
            width[c] = w > width[c] ? w : width[c];
        }
    }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            if (c + 1 == t->ncols) {
                fprintf(out, "%s\n", cell);
            } else {
                fprintf(out, "%s%*s", cell, (int)(width[c] - text_width(cell) + 3), "");
            }
        }
    }
    wf_free(width);
}

void cp_cli_table_free(cp_cli_table_t *t)
{
    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < t->nrows * t->ncols; i++) {
        wf_free(t->cells[i]);
    }
    wf_free(t->cells);
    wf_free(t);
}

/* ---- YAML ---- */

/* Whether a YAML reader would take s, written plain, as anything but the string s. */
static bool needs_quotes(const char *s)
{
    static const char *const words[] = {"null", "~",   "true", "false", "yes", "no",
                                        "on",   "off", "y",    "n",     NULL};
    size_t n = strlen(s);
    if (n == 0 || s[0] == ' ' || s[n - 1] == ' ' || s[n - 1] == ':') {
        return true;
    }
    for (const char *const *w = words; *w; w++) {
        if (strcasecmp(s, *w) == 0) {
            return true;
        }
    }
    /* Anything that may read as a number (ints, floats, octal, hex, .inf, .nan, dates). */
    if ((s[0] >= '0' && s[0] <= '9') ||
        ((s[0] == '+' || s[0] == '-' || s[0] == '.') && n > 1 &&
         ((s[1] >= '0' && s[1] <= '9') || s[1] == '.' || strchr("iInN", s[1]) != NULL))) {
        return true;
    }
    if (strchr("-?:,[]{}#&*!|>'\"%@`", s[0]) != NULL) {
        return true;
    }
    if (strstr(s, ": ") != NULL || strstr(s, " #") != NULL) {
        return true;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return true;
        }
    }
    return false;
}

static void print_string(FILE *out, const char *s)
{
    if (!needs_quotes(s)) {
        fputs(s, out);
        return;
    }
    /* JSON's string escapes are a subset of YAML's double-quoted ones. */
    json_t *j = json_string(s);
    char *q = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    fputs(q ? q : "\"\"", out);
    free(q);
    json_decref(j);
}

static void print_scalar(FILE *out, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        print_string(out, json_string_value(v));
        break;
    case JSON_INTEGER:
        fprintf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL: {
        char *d = json_dumps(v, JSON_ENCODE_ANY);
        fputs(d ? d : "0", out);
        free(d);
        break;
    }
    case JSON_TRUE:
        fputs("true", out);
        break;
    case JSON_FALSE:
        fputs("false", out);
        break;
    case JSON_OBJECT:
        fputs("{}", out);
        break;
    case JSON_ARRAY:
        fputs("[]", out);
        break;
    default:
        fputs("null", out);
        break;
    }
}

static void print_node(FILE *out, const json_t *v, int indent, bool inline_first);

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool is_block(const json_t *v)
{
    return (json_is_object(v) && json_object_size(v) > 0) ||
           (json_is_array(v) && json_array_size(v) > 0);
}

/* A mapping's entries at indent; with inline_first, the first line's indent is already out. */
static void print_map(FILE *out, const json_t *v, int indent, bool inline_first)
{
    size_t n = json_object_size(v), i = 0;
    const char **keys = wf_calloc(n, sizeof(char *));
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        keys[i++] = k;
    }
    qsort(keys, n, sizeof(char *), cmp_keys);
    for (i = 0; i < n; i++) {
        const json_t *val = json_object_get(v, keys[i]);
        if (i > 0 || !inline_first) {
            fprintf(out, "%*s", indent, "");
        }
        print_string(out, keys[i]);
        fputc(':', out);
        if (json_is_object(val) && is_block(val)) {
            fputc('\n', out);
            print_map(out, val, indent + 2, false);
        } else if (is_block(val)) {
            /* Sequences in a mapping sit at the key's indent, as kubectl prints them. */
            fputc('\n', out);
            print_node(out, val, indent, false);
        } else {
            fputc(' ', out);
            print_scalar(out, val);
            fputc('\n', out);
        }
    }
    wf_free(keys);
}

static void print_node(FILE *out, const json_t *v, int indent, bool inline_first)
{
    if (json_is_object(v) && is_block(v)) {
        print_map(out, v, indent, inline_first);
        return;
    }
    if (!is_block(v)) {
        if (!inline_first) {
            fprintf(out, "%*s", indent, "");
        }
        print_scalar(out, v);
        fputc('\n', out);
        return;
    }
    size_t i;
    json_t *item;
    json_array_foreach((json_t *)v, i, item)
    {
        if (i > 0 || !inline_first) {
            fprintf(out, "%*s", indent, "");
        }
        fputs("- ", out);
        print_node(out, item, indent + 2, true);
    }
}

void cp_cli_print_yaml(FILE *out, const json_t *v)
{
    print_node(out, v, 0, false);
}
