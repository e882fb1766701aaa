/*
 * pql_fnsig.c - the signatures of PromQL's functions (Prometheus 2.42 promql/parser/
 * functions.go): argument and return types the parser checks calls against, lookup by name,
 * and the documented names of the value types used in error messages.
 */
#include "pql_ast.h"

#include <string.h>

#define V PQL_TYPE_VECTOR
#define M PQL_TYPE_MATRIX
#define S PQL_TYPE_SCALAR
#define STR PQL_TYPE_STRING

static const pql_fn_sig_t sigs[PQL_FN_COUNT_] = {
    [PQL_FN_ABS] = {"abs", {V}, 1, 0, V},
    [PQL_FN_ABSENT] = {"absent", {V}, 1, 0, V},
    [PQL_FN_ABSENT_OVER_TIME] = {"absent_over_time", {M}, 1, 0, V},
    [PQL_FN_ACOS] = {"acos", {V}, 1, 0, V},
    [PQL_FN_ACOSH] = {"acosh", {V}, 1, 0, V},
    [PQL_FN_ASIN] = {"asin", {V}, 1, 0, V},
    [PQL_FN_ASINH] = {"asinh", {V}, 1, 0, V},
    [PQL_FN_ATAN] = {"atan", {V}, 1, 0, V},
    [PQL_FN_ATANH] = {"atanh", {V}, 1, 0, V},
    [PQL_FN_AVG_OVER_TIME] = {"avg_over_time", {M}, 1, 0, V},
    [PQL_FN_CEIL] = {"ceil", {V}, 1, 0, V},
    [PQL_FN_CHANGES] = {"changes", {M}, 1, 0, V},
    [PQL_FN_CLAMP] = {"clamp", {V, S, S}, 3, 0, V},
    [PQL_FN_CLAMP_MAX] = {"clamp_max", {V, S}, 2, 0, V},
    [PQL_FN_CLAMP_MIN] = {"clamp_min", {V, S}, 2, 0, V},
    [PQL_FN_COS] = {"cos", {V}, 1, 0, V},
    [PQL_FN_COSH] = {"cosh", {V}, 1, 0, V},
    [PQL_FN_COUNT_OVER_TIME] = {"count_over_time", {M}, 1, 0, V},
    [PQL_FN_DAY_OF_MONTH] = {"day_of_month", {V}, 1, 1, V},
    [PQL_FN_DAY_OF_WEEK] = {"day_of_week", {V}, 1, 1, V},
    [PQL_FN_DAY_OF_YEAR] = {"day_of_year", {V}, 1, 1, V},
    [PQL_FN_DAYS_IN_MONTH] = {"days_in_month", {V}, 1, 1, V},
    [PQL_FN_DEG] = {"deg", {V}, 1, 0, V},
    [PQL_FN_DELTA] = {"delta", {M}, 1, 0, V},
    [PQL_FN_DERIV] = {"deriv", {M}, 1, 0, V},
    [PQL_FN_EXP] = {"exp", {V}, 1, 0, V},
    [PQL_FN_FLOOR] = {"floor", {V}, 1, 0, V},
    [PQL_FN_HISTOGRAM_COUNT] = {"histogram_count", {V}, 1, 0, V},
    [PQL_FN_HISTOGRAM_FRACTION] = {"histogram_fraction", {S, S, V}, 3, 0, V},
    [PQL_FN_HISTOGRAM_QUANTILE] = {"histogram_quantile", {S, V}, 2, 0, V},
    [PQL_FN_HISTOGRAM_SUM] = {"histogram_sum", {V}, 1, 0, V},
    [PQL_FN_HOLT_WINTERS] = {"holt_winters", {M, S, S}, 3, 0, V},
    [PQL_FN_HOUR] = {"hour", {V}, 1, 1, V},
    [PQL_FN_IDELTA] = {"idelta", {M}, 1, 0, V},
    [PQL_FN_INCREASE] = {"increase", {M}, 1, 0, V},
    [PQL_FN_IRATE] = {"irate", {M}, 1, 0, V},
    [PQL_FN_LABEL_JOIN] = {"label_join", {V, STR, STR, STR}, 4, -1, V},
    [PQL_FN_LABEL_REPLACE] = {"label_replace", {V, STR, STR, STR, STR}, 5, 0, V},
    [PQL_FN_LAST_OVER_TIME] = {"last_over_time", {M}, 1, 0, V},
    [PQL_FN_LN] = {"ln", {V}, 1, 0, V},
    [PQL_FN_LOG10] = {"log10", {V}, 1, 0, V},
    [PQL_FN_LOG2] = {"log2", {V}, 1, 0, V},
    [PQL_FN_MAX_OVER_TIME] = {"max_over_time", {M}, 1, 0, V},
    [PQL_FN_MIN_OVER_TIME] = {"min_over_time", {M}, 1, 0, V},
    [PQL_FN_MINUTE] = {"minute", {V}, 1, 1, V},
    [PQL_FN_MONTH] = {"month", {V}, 1, 1, V},
    [PQL_FN_PI] = {"pi", {0}, 0, 0, S},
    [PQL_FN_PREDICT_LINEAR] = {"predict_linear", {M, S}, 2, 0, V},
    [PQL_FN_PRESENT_OVER_TIME] = {"present_over_time", {M}, 1, 0, V},
    [PQL_FN_QUANTILE_OVER_TIME] = {"quantile_over_time", {S, M}, 2, 0, V},
    [PQL_FN_RAD] = {"rad", {V}, 1, 0, V},
    [PQL_FN_RATE] = {"rate", {M}, 1, 0, V},
    [PQL_FN_RESETS] = {"resets", {M}, 1, 0, V},
    [PQL_FN_ROUND] = {"round", {V, S}, 2, 1, V},
    [PQL_FN_SCALAR] = {"scalar", {V}, 1, 0, S},
    [PQL_FN_SGN] = {"sgn", {V}, 1, 0, V},
    [PQL_FN_SIN] = {"sin", {V}, 1, 0, V},
    [PQL_FN_SINH] = {"sinh", {V}, 1, 0, V},
    [PQL_FN_SORT] = {"sort", {V}, 1, 0, V},
    [PQL_FN_SORT_DESC] = {"sort_desc", {V}, 1, 0, V},
    [PQL_FN_SQRT] = {"sqrt", {V}, 1, 0, V},
    [PQL_FN_STDDEV_OVER_TIME] = {"stddev_over_time", {M}, 1, 0, V},
    [PQL_FN_STDVAR_OVER_TIME] = {"stdvar_over_time", {M}, 1, 0, V},
    [PQL_FN_SUM_OVER_TIME] = {"sum_over_time", {M}, 1, 0, V},
    [PQL_FN_TAN] = {"tan", {V}, 1, 0, V},
    [PQL_FN_TANH] = {"tanh", {V}, 1, 0, V},
    [PQL_FN_TIME] = {"time", {0}, 0, 0, S},
    [PQL_FN_TIMESTAMP] = {"timestamp", {V}, 1, 0, V},
    [PQL_FN_VECTOR] = {"vector", {S}, 1, 0, V},
    [PQL_FN_YEAR] = {"year", {V}, 1, 1, V},
};

#undef V
#undef M
#undef S
#undef STR

_Static_assert(sizeof(sigs) / sizeof(sigs[0]) == PQL_FN_COUNT_, "one signature per function");

const pql_fn_sig_t *pql_fn_sig(pql_fn_t fn)
{
    if ((unsigned)fn >= PQL_FN_COUNT_) {
        return NULL;
    }
    return &sigs[fn];
}

int pql_fn_lookup(const char *name, size_t len)
{
    /* Function names are case-sensitive in Prometheus (unlike keywords). */
    for (int i = 0; i < PQL_FN_COUNT_; i++) {
        if (strlen(sigs[i].name) == len && memcmp(sigs[i].name, name, len) == 0) {
            return i;
        }
    }
    return -1;
}

const char *pql_type_name(pql_type_t t)
{
    switch (t) {
    case PQL_TYPE_SCALAR:
        return "scalar";
    case PQL_TYPE_VECTOR:
        return "instant vector";
    case PQL_TYPE_MATRIX:
        return "range vector";
    case PQL_TYPE_STRING:
        return "string";
    case PQL_TYPE_NONE:
        break;
    }
    return "none";
}
