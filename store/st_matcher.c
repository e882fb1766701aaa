/*
 * st_matcher.c - label matchers: compilation and matching (see st_matcher.h, st_store.h).
 *
 * PromQL regexes are RE2 syntax and fully anchored. We compile them with PCRE2 using
 * PCRE2_ANCHORED | PCRE2_ENDANCHORED rather than wrapping the source in "^(?:...)$", so that a
 * pattern such as `a)|(b` cannot escape the wrapper, and with PCRE2_DOTALL because Prometheus
 * compiles "(?s:...)" (`.` matches a newline). PCRE2_UTF makes `.` a code point, as in RE2;
 * PCRE2_MATCH_INVALID_UTF keeps a non-UTF-8 subject from being an error (it just fails to
 * match where it is invalid). JIT is used when the library has it.
 */
#include "st_matcher.h"

#include "wf_alloc.h"
#include "wf_err.h"

#include <stdio.h>
#include <string.h>

static wf_str_t str_dup(wf_str_t s)
{
    return (wf_str_t){wf_strndup(s.p, s.len), s.len};
}

static bool is_meta(char c)
{
    return strchr("\\.^$|?*+()[]{}", c) != NULL;
}

/*
 * Split `a|b|c` into literals when no alternative contains regex syntax (an escaped
 * punctuation character counts as a literal). Returns false when the regex is not of that form.
 */
static bool literal_set(st_matcher_t *m)
{
    wf_str_t re = m->value;
    size_t nalt = 1;
    for (size_t i = 0; i < re.len; i++) {
        char c = re.p[i];
        if (c == '\\') {
            if (i + 1 >= re.len) {
                return false;
            }
            char d = re.p[i + 1];
            if (!is_meta(d) && d != '-' && d != '/' && d != '#' && d != ' ') {
                return false;
            }
            i++;
        } else if (c == '|') {
            nalt++;
        } else if (is_meta(c)) {
            return false;
        }
    }
    m->set = wf_calloc(nalt, sizeof(*m->set));
    char *buf = wf_malloc(re.len + 1);
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= re.len; i++) {
        if (i == re.len || re.p[i] == '|') {
            m->set[m->nset++] = (wf_str_t){buf + start, k - start};
            start = k;
            continue;
        }
        if (re.p[i] == '\\') {
            i++;
        }
        buf[k++] = re.p[i];
    }
    return true;
}

int st_matcher_new(st_match_type_t type, wf_str_t name, wf_str_t value, st_matcher_t **out,
                   char *err, size_t errlen)
{
    *out = NULL;
    if (type < ST_MATCH_EQ || type > ST_MATCH_NRE || (name.len > 0 && name.p == NULL) ||
        (value.len > 0 && value.p == NULL)) {
        return WF_E_INVAL;
    }
    st_matcher_t *m = wf_calloc(1, sizeof(*m));
    m->type = type;
    m->name = str_dup(name);
    m->value = str_dup(value);
    if (type == ST_MATCH_RE || type == ST_MATCH_NRE) {
        if (wf_str_eq_c(value, ".*")) {
            m->any = 1;
        } else if (!literal_set(m)) {
            int ecode;
            PCRE2_SIZE eoff;
            m->re = pcre2_compile((PCRE2_SPTR)m->value.p, m->value.len,
                                  PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_DOTALL | PCRE2_UTF |
                                      PCRE2_MATCH_INVALID_UTF,
                                  &ecode, &eoff, NULL);
            if (m->re == NULL) {
                if (err != NULL && errlen > 0) {
                    PCRE2_UCHAR msg[256];
                    pcre2_get_error_message(ecode, msg, sizeof(msg));
                    snprintf(err, errlen, "%s at offset %zu", (const char *)msg, (size_t)eoff);
                }
                st_matcher_free(m);
                return ST_E_REGEX;
            }
            /* A failed JIT compile is not an error: the interpreter still matches. */
            (void)pcre2_jit_compile(m->re, PCRE2_JIT_COMPLETE);
        }
    }
    m->matches_empty = 0;
    m->matches_empty = st__matcher_match(m, (wf_str_t){"", 0}, NULL);
    *out = m;
    return 0;
}

void st_matcher_free(st_matcher_t *m)
{
    if (m == NULL) {
        return;
    }
    if (m->set != NULL) {
        wf_free((void *)m->set[0].p);
        wf_free(m->set);
    }
    pcre2_code_free(m->re);
    wf_free((void *)m->name.p);
    wf_free((void *)m->value.p);
    wf_free(m);
}

pcre2_match_data *st__matcher_scratch_new(void)
{
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    WF_ASSERT(md != NULL);
    return md;
}

void st__matcher_scratch_free(pcre2_match_data *md)
{
    pcre2_match_data_free(md);
}

static bool re_match(const st_matcher_t *m, wf_str_t v, pcre2_match_data *md)
{
    if (m->any) {
        return true;
    }
    if (m->set != NULL) {
        for (size_t i = 0; i < m->nset; i++) {
            if (wf_str_eq(m->set[i], v)) {
                return true;
            }
        }
        return false;
    }
    pcre2_match_data *own = NULL;
    if (md == NULL) {
        md = own = st__matcher_scratch_new();
    }
    int rc = pcre2_match(m->re, (PCRE2_SPTR)(v.p ? v.p : ""), v.len, 0, 0, md, NULL);
    pcre2_match_data_free(own);
    return rc >= 0;
}

bool st__matcher_match(const st_matcher_t *m, wf_str_t value, pcre2_match_data *md)
{
    switch (m->type) {
    case ST_MATCH_EQ:
        return wf_str_eq(m->value, value);
    case ST_MATCH_NE:
        return !wf_str_eq(m->value, value);
    case ST_MATCH_RE:
        return re_match(m, value, md);
    case ST_MATCH_NRE:
        return !re_match(m, value, md);
    }
    return false;
}

bool st_matcher_matches(const st_matcher_t *m, wf_str_t value)
{
    return st__matcher_match(m, value, NULL);
}
