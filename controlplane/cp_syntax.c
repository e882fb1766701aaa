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
#include "wf_re2.h"

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

int cp_regex_check(wf_str_t re, char *why, size_t why_len)
{
    const char *bad = wf_re2_unsupported(re.p, re.len);
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
