/*
 * cp_syntax.c - the value syntaxes Istio's API borrows from elsewhere: Go durations and RE2
 * regular expressions. Declared in cp_istio.h.
 *
 * Regexes are checked twice: a scan refuses what PCRE2 would accept but RE2 (the syntax Istio
 * and Envoy's safe_regex promise) does not, so a pattern means the same here as in Istio; then
 * PCRE2 compiles it to catch plain syntax errors. The proxy (px_snapshot.c) applies the same
 * rules to the compiled snapshot; the two scans could become one wf_ helper.
 */
#include <stdio.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "cp_istio.h"

#define NS_PER_MS 1000000LL
/* 100 years: anything longer is a typo, and it keeps every sum far from overflow. */
#define MAX_NS ((__int128)100 * 365 * 24 * 3600 * 1000000000LL)

int cp_duration_parse(wf_str_t s, int64_t *ms, const char **why)
{
    static const struct {
        const char *name;
        int64_t ns;
    } units[] = {{"ns", 1},
                 {"us", 1000},
                 {"\xc2\xb5s", 1000},
                 {"ms", NS_PER_MS},
                 {"s", 1000 * NS_PER_MS},
                 {"m", 60 * 1000 * NS_PER_MS},
                 {"h", 3600 * 1000 * NS_PER_MS}};
    size_t i = 0;
    __int128 total = 0;
    if (s.len == 0) {
        *why = "empty duration";
        return CP_E_INVALID;
    }
    if (s.p[0] == '-') {
        *why = "must not be negative";
        return CP_E_INVALID;
    }
    if (s.p[0] == '+') {
        i++;
    }
    if (s.len - i == 1 && s.p[i] == '0') {
        *ms = 0;
        return 0;
    }
    if (i == s.len) {
        *why = "expected a number";
        return CP_E_INVALID;
    }
    while (i < s.len) {
        __int128 whole = 0, frac = 0, scale = 1;
        size_t digits = 0;
        while (i < s.len && s.p[i] >= '0' && s.p[i] <= '9') {
            whole = whole * 10 + (s.p[i++] - '0');
            digits++;
            if (whole > MAX_NS) {
                *why = "longer than 100 years";
                return CP_E_INVALID;
            }
        }
        if (i < s.len && s.p[i] == '.') {
            i++;
            while (i < s.len && s.p[i] >= '0' && s.p[i] <= '9') {
                /* Digits beyond nanoseconds cannot change a millisecond count. */
                if (scale < 1000000000000000000LL) {
                    frac = frac * 10 + (s.p[i] - '0');
                    scale *= 10;
                }
                i++;
                digits++;
            }
        }
        if (digits == 0) {
            *why = "expected a number";
            return CP_E_INVALID;
        }
        size_t u = 0, best = 0;
        int64_t unit = 0;
        for (size_t k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
            size_t ul = strlen(units[k].name);
            if (ul > best && i + ul <= s.len && memcmp(s.p + i, units[k].name, ul) == 0) {
                best = ul;
                unit = units[k].ns;
                u = ul;
            }
        }
        if (u == 0) {
            *why = "missing or unknown unit (ns, us, ms, s, m, h)";
            return CP_E_INVALID;
        }
        i += u;
        total += whole * unit + frac * unit / scale;
        if (total > MAX_NS) {
            *why = "longer than 100 years";
            return CP_E_INVALID;
        }
    }
    if (total % NS_PER_MS != 0) {
        *why = "finer than a millisecond";
        return CP_E_INVALID;
    }
    *ms = (int64_t)(total / NS_PER_MS);
    return 0;
}

/* Length of a {n}, {n,} or {n,m} repetition at p, 0 when the brace is a literal; *count gets
 * the largest bound written. */
static size_t repeat_len(const char *p, size_t n, long *count)
{
    size_t i = 1;
    long a = 0, b = -1;
    size_t d = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9' && d < 9) {
        a = a * 10 + (p[i++] - '0');
        d++;
    }
    if (d == 0) {
        return 0;
    }
    if (i < n && p[i] == ',') {
        i++;
        size_t d2 = 0;
        long v = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9' && d2 < 9) {
            v = v * 10 + (p[i++] - '0');
            d2++;
        }
        if (d2 > 0) {
            b = v;
        }
    }
    if (i >= n || p[i] != '}') {
        return 0;
    }
    *count = b > a ? b : a;
    return i + 1;
}

/* The first feature PCRE2 has and RE2 lacks, or NULL. */
static const char *non_re2(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        size_t qlen = 0;
        if (ch == '\\' && i + 1 < n) {
            char e = p[++i];
            if (e == 'Q') {
                const char *end = NULL;
                for (size_t k = i + 1; k + 1 < n; k++) {
                    if (p[k] == '\\' && p[k + 1] == 'E') {
                        end = p + k;
                        break;
                    }
                }
                i = end ? (size_t)(end - p) + 1 : n;
                continue;
            }
            if ((e >= '1' && e <= '9') || e == 'g' || e == 'k') {
                return "backreferences are not RE2 syntax";
            }
            if (strchr("KGZRXhHVNceCuUlL", e) != NULL) {
                return "this escape is not RE2 syntax";
            }
            continue;
        }
        if (ch == '[') {
            size_t k = i + 1;
            if (k < n && p[k] == '^') {
                k++;
            }
            if (k < n && p[k] == ']') {
                k++;
            }
            while (k < n && p[k] != ']') {
                if (p[k] == '\\') {
                    k++;
                } else if (p[k] == '[' && k + 1 < n && p[k + 1] == ':') {
                    const char *close = strstr(p + k, ":]");
                    if (close != NULL && close < p + n) {
                        k = (size_t)(close - p) + 1;
                    }
                }
                k++;
            }
            i = k;
            continue;
        }
        if (ch == '(' && i + 1 < n && p[i + 1] == '*') {
            return "backtracking verbs are not RE2 syntax";
        }
        if (ch == '(' && i + 1 < n && p[i + 1] == '?') {
            const char *g = p + i + 2;
            size_t rest = n - i - 2;
            if (rest >= 1 && g[0] == ':') {
                continue;
            }
            if (rest >= 2 && g[0] == 'P' && g[1] == '<') {
                continue;
            }
            if (rest >= 2 && g[0] == '<' && g[1] != '=' && g[1] != '!') {
                continue;
            }
            if (rest >= 1 && (g[0] == '=' || g[0] == '!')) {
                return "lookahead is not RE2 syntax";
            }
            if (rest >= 1 && g[0] == '<') {
                return "lookbehind is not RE2 syntax";
            }
            size_t k = 0;
            while (k < rest && strchr("imsU-", g[k]) != NULL && g[k] != '\0') {
                k++;
            }
            if (k > 0 && k < rest && (g[k] == ':' || g[k] == ')')) {
                continue;
            }
            return "this group syntax is not RE2 (only (?:, (?P<name>, (?<name> and flags imsU)";
        }
        if (ch == '*' || ch == '+' || ch == '?') {
            qlen = 1;
        } else if (ch == '{') {
            long count = 0;
            qlen = repeat_len(p + i, n - i, &count);
            if (qlen > 0 && count > 1000) {
                return "repetition count above 1000 is not RE2 syntax";
            }
        }
        if (qlen > 0) {
            i += qlen - 1;
            if (i + 1 < n && p[i + 1] == '+') {
                return "possessive quantifiers are not RE2 syntax";
            }
            if (i + 1 < n && p[i + 1] == '?') {
                i++; /* lazy quantifier: RE2 has it */
            }
        }
    }
    return NULL;
}

int cp_regex_check(wf_str_t re, char *why, size_t why_len)
{
    const char *bad = non_re2(re.p, re.len);
    if (bad != NULL) {
        snprintf(why, why_len, "%s", bad);
        return CP_E_INVALID;
    }
    int ecode;
    PCRE2_SIZE eoff;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)re.p, re.len, PCRE2_UTF | PCRE2_NO_AUTO_CAPTURE,
                                     &ecode, &eoff, NULL);
    if (code == NULL) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ecode, msg, sizeof(msg));
        snprintf(why, why_len, "%s at offset %zu", (const char *)msg, (size_t)eoff);
        return CP_E_INVALID;
    }
    pcre2_code_free(code);
    return 0;
}
