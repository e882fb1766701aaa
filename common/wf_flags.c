/*
 * wf_flags.c - parsing and help output for declarative flag tables. See wf_flags.h.
 */
#include "wf_flags.h"

#include "wf_alloc.h"
#include "wf_err.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

int wf_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return WF_E_INVAL;
}

/* Parse a run of "<number><unit>" pairs (Prometheus durations allow "1h30m"). */
int wf_parse_duration_ms(const char *s, int64_t *out)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1},       {"s", 1000},      {"m", 60000},      {"h", 3600000},
                 {"d", 86400000}, {"w", 604800000}, {"y", 31536000000}};
    int64_t total = 0;
    if (*s == '\0') {
        return WF_E_INVAL;
    }
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    while (*s) {
        if (*s < '0' || *s > '9') {
            return WF_E_INVAL;
        }
        char *end;
        errno = 0;
        long long n = strtoll(s, &end, 10);
        if (errno != 0) {
            return WF_E_INVAL;
        }
        s = end;
        size_t best = 0;
        int64_t mul = 0;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t ul = strlen(units[i].unit);
            if (strncmp(s, units[i].unit, ul) == 0 && ul > best) {
                best = ul;
                mul = units[i].ms;
            }
        }
        if (best == 0) {
            return WF_E_INVAL;
        }
        if (n > INT64_MAX / mul || total > INT64_MAX - n * mul) {
            return WF_E_INVAL;
        }
        total += n * mul;
        s += best;
    }
    *out = total;
    return 0;
}

int wf_parse_size(const char *s, int64_t *out)
{
    static const struct {
        const char *unit;
        int64_t mul;
    } units[] = {{"", 1},          {"B", 1},           {"KB", 1000},
                 {"MB", 1000000},  {"GB", 1000000000}, {"KiB", 1024},
                 {"MiB", 1048576}, {"GiB", 1073741824}};
    if (*s < '0' || *s > '9') {
        return WF_E_INVAL;
    }
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno != 0) {
        return WF_E_INVAL;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].unit) == 0) {
            if (n > INT64_MAX / units[i].mul) {
                return WF_E_INVAL;
            }
            *out = n * units[i].mul;
            return 0;
        }
    }
    return WF_E_INVAL;
}

static int set_value(const wf_flag_t *f, void *cfg, const char *v, char *err, size_t errlen)
{
    char *field = (char *)cfg + f->offset;
    int rc = 0;
    switch (f->type) {
    case WF_FLAG_STR: {
        char **dst = (char **)field;
        wf_free(*dst);
        *dst = v ? wf_strdup(v) : NULL;
        return 0;
    }
    case WF_FLAG_INT: {
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (errno != 0 || *v == '\0' || *end != '\0') {
            rc = WF_E_INVAL;
        } else {
            *(int64_t *)field = n;
        }
        break;
    }
    case WF_FLAG_BOOL:
        rc = wf_parse_bool(v, (bool *)field);
        break;
    case WF_FLAG_DURATION:
        rc = wf_parse_duration_ms(v, (int64_t *)field);
        break;
    case WF_FLAG_SIZE:
        rc = wf_parse_size(v, (int64_t *)field);
        break;
    }
    if (rc != 0) {
        static const char *const kinds[] = {"a string", "an integer", "true or false",
                                            "a duration such as 30s, 5m, 2h or 15d",
                                            "a size such as 512KiB or 64MiB"};
        snprintf(err, errlen, "invalid value \"%s\" for --%s: expected %s", v, f->name,
                 kinds[f->type]);
    }
    return rc;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) {
        return 64;
    }
    size_t row[64];
    for (size_t j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t sub = prev + (a[i - 1] != b[j - 1]);
            size_t del = row[j] + 1, ins = row[j - 1] + 1;
            row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            prev = cur;
        }
    }
    return row[lb];
}

static const wf_flag_t *find_flag(const wf_flag_t *table, const char *name, size_t len)
{
    for (const wf_flag_t *f = table; f->name; f++) {
        if (strlen(f->name) == len && strncmp(f->name, name, len) == 0) {
            return f;
        }
    }
    return NULL;
}

int wf_flags_parse(const wf_flag_t *table, void *cfg, int argc, char **argv, int *argi, char *err,
                   size_t errlen)
{
    err[0] = '\0';
    for (const wf_flag_t *f = table; f->name; f++) {
        if (f->def != NULL) {
            int rc = set_value(f, cfg, f->def, err, errlen);
            WF_ASSERT(rc == 0); /* a table default that does not parse is a programming error */
        } else {
            /* No default means zero / NULL, also when cfg holds an earlier parse's values. */
            char *field = (char *)cfg + f->offset;
            if (f->type == WF_FLAG_STR) {
                wf_free(*(char **)field);
                *(char **)field = NULL;
            } else if (f->type == WF_FLAG_BOOL) {
                *(bool *)field = false;
            } else {
                *(int64_t *)field = 0;
            }
        }
    }
    int i = 1;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            break;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const wf_flag_t *f = find_flag(table, name, nlen);
        if (f == NULL) {
            char want[128];
            snprintf(want, sizeof(want), "%.*s", (int)nlen, name);
            const wf_flag_t *best = NULL;
            size_t bestd = SIZE_MAX;
            for (const wf_flag_t *g = table; g->name; g++) {
                size_t d = edit_distance(want, g->name);
                if (d < bestd) {
                    bestd = d;
                    best = g;
                }
            }
            if (best != NULL && bestd <= 3) {
                snprintf(err, errlen, "unknown flag --%s (did you mean --%s?)", want, best->name);
            } else {
                snprintf(err, errlen, "unknown flag --%s (see --help)", want);
            }
            return WF_E_UNKNOWN_FLAG;
        }
        const char *value;
        if (eq != NULL) {
            value = eq + 1;
        } else if (f->type == WF_FLAG_BOOL) {
            value = "true";
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(err, errlen, "flag --%s needs a value", f->name);
            return WF_E_INVAL;
        }
        int rc = set_value(f, cfg, value, err, errlen);
        if (rc != 0) {
            return rc;
        }
    }
    if (argi != NULL) {
        *argi = i;
    }
    return 0;
}

void wf_flags_print_help(const wf_flag_t *table, FILE *out)
{
    static const char *const metas[] = {"STR", "N", "", "DURATION", "SIZE"};
    for (const wf_flag_t *f = table; f->name; f++) {
        char left[64];
        snprintf(left, sizeof(left), "--%s %s", f->name, metas[f->type]);
        fprintf(out, "  %-28s %s", left, f->help);
        if (f->def != NULL && f->def[0] != '\0') {
            fprintf(out, " (default: %s)", f->def);
        }
        fputc('\n', out);
    }
}

void wf_flags_free(const wf_flag_t *table, void *cfg)
{
    for (const wf_flag_t *f = table; f->name; f++) {
        if (f->type == WF_FLAG_STR) {
            char **dst = (char **)((char *)cfg + f->offset);
            wf_free(*dst);
            *dst = NULL;
        }
    }
}
