/*
 * wf_re2.c - the RE2 syntax check (see wf_re2.h): one scan of the pattern, tracking escapes,
 * character classes, group openers and quantifiers.
 */
#include "wf_re2.h"

#include <string.h>

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

const char *wf_re2_unsupported(const char *p, size_t n)
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
            return "this group syntax is not RE2 syntax (only (?:, (?P<name>, (?<name> and flags "
                   "imsU)";
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
