/*
 * st_matcher.h - label matchers (=, !=, =~, !~) as the index sees them. Internal to store/;
 * the public constructor and st_matcher_matches are in st_store.h.
 *
 * A matcher is immutable after st_matcher_new and may be shared by threads. Regex matching
 * needs scratch memory (PCRE2 match data), which callers that match many values create once
 * with st__matcher_scratch_new and pass in; st_matcher_matches makes its own.
 */
#ifndef ST_MATCHER_H
#define ST_MATCHER_H

#include "st_store.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

struct st_matcher {
    st_match_type_t type;
    wf_str_t name;  /* owned copy */
    wf_str_t value; /* owned copy: the literal, or the regex source */
    pcre2_code *re; /* regex types, unless `set` or `any` applies */
    /*
     * Regexes that are a plain alternation of literals (`GET|POST`, `200`) are matched as a
     * set, which lets the index look each literal up instead of scanning every value.
     */
    wf_str_t *set;
    size_t nset;
    int any;           /* `.*`: the regex matches every value */
    int matches_empty; /* the matcher (with negation applied) matches "" */
};

/* Match with caller-provided scratch (NULL allowed: then one is made for the call). */
bool st__matcher_match(const st_matcher_t *m, wf_str_t value, pcre2_match_data *md);
pcre2_match_data *st__matcher_scratch_new(void);
void st__matcher_scratch_free(pcre2_match_data *md);

#endif
