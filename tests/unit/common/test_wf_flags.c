/*
 * test_wf_flags.c - declarative flag tables (wf_flags.h): every flag type, both value forms,
 * booleans alone, `--` and positional arguments, defaults, the error messages a user sees, and
 * the duration and size grammars with their overflow refusals.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf_err.h"
#include "wf_flags.h"

typedef struct {
    char *listen;
    char *name;
    int64_t workers;
    bool verbose;
    bool color;
    int64_t retention_ms;
    int64_t max_body;
    int64_t limit;
} cfg_t;

static const wf_flag_t table[] = {
    {"listen", WF_FLAG_STR, "127.0.0.1:20001", offsetof(cfg_t, listen), "address to serve"},
    {"name", WF_FLAG_STR, NULL, offsetof(cfg_t, name), "instance name"},
    {"workers", WF_FLAG_INT, "4", offsetof(cfg_t, workers), "worker threads"},
    {"verbose", WF_FLAG_BOOL, "false", offsetof(cfg_t, verbose), "log more"},
    {"color", WF_FLAG_BOOL, "true", offsetof(cfg_t, color), "colour output"},
    {"retention", WF_FLAG_DURATION, "15d", offsetof(cfg_t, retention_ms), "keep data"},
    {"max-body", WF_FLAG_SIZE, "16MiB", offsetof(cfg_t, max_body), "largest request body"},
    {"limit", WF_FLAG_SIZE, NULL, offsetof(cfg_t, limit), "optional limit"},
    {NULL, WF_FLAG_STR, NULL, 0, NULL},
};

/* Parse a NULL-terminated argument list (argv[0] supplied here). */
static int parse(cfg_t *cfg, int *argi, char *err, size_t errlen, const char *const *args)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)"weft";
    for (; *args != NULL; args++) {
        argv[argc++] = (char *)*args;
    }
    argv[argc] = NULL;
    return wf_flags_parse(table, cfg, argc, argv, argi, err, errlen);
}

#define PARSE(cfg, argi, err, ...)                                                                 \
    parse((cfg), (argi), (err), sizeof(err), (const char *const[]){__VA_ARGS__, NULL})

static void test_defaults(void **state)
{
    (void)state;
    cfg_t c = {0};
    char err[256];
    int argi = -1;
    char *argv[] = {(char *)"weft", NULL};
    assert_int_equal(wf_flags_parse(table, &c, 1, argv, &argi, err, sizeof(err)), 0);
    assert_int_equal(argi, 1);
    assert_string_equal(err, "");
    assert_string_equal(c.listen, "127.0.0.1:20001");
    assert_null(c.name);
    assert_int_equal(c.workers, 4);
    assert_false(c.verbose);
    assert_true(c.color);
    assert_int_equal(c.retention_ms, 15LL * 86400 * 1000);
    assert_int_equal(c.max_body, 16LL << 20);
    wf_flags_free(table, &c);
    assert_null(c.listen);
    assert_null(c.name);
}

static void test_every_type_both_forms(void **state)
{
    (void)state;
    cfg_t c = {0};
    char err[256];
    int argi = -1;
    assert_int_equal(PARSE(&c, &argi, err, "--listen=0.0.0.0:1", "--name", "n1", "--workers", "-3",
                           "--verbose=yes", "--color", "off", "--retention=1h30m", "--max-body",
                           "10MB"),
                     0);
    /* A boolean alone means true, so "off" is the first positional argument and the flags
     * after it are not parsed. */
    assert_int_equal(argi, 8);
    assert_string_equal(c.listen, "0.0.0.0:1");
    assert_string_equal(c.name, "n1");
    assert_int_equal(c.workers, -3);
    assert_true(c.verbose);
    assert_true(c.color);
    assert_int_equal(c.retention_ms, 15LL * 86400 * 1000);
    assert_int_equal(c.max_body, 16LL << 20);
    wf_flags_free(table, &c);

    memset(&c, 0, sizeof(c));
    assert_int_equal(PARSE(&c, &argi, err, "--color=off", "--retention", "1h30m", "--max-body=1GB",
                           "--workers=9223372036854775807"),
                     0);
    assert_int_equal(argi, 6);
    assert_false(c.color);
    assert_int_equal(c.retention_ms, 90LL * 60 * 1000);
    assert_int_equal(c.max_body, 1000000000LL);
    assert_int_equal(c.workers, INT64_MAX);
    /* `--name=` sets the empty string, which is not the same as no value. */
    wf_flags_free(table, &c);
    memset(&c, 0, sizeof(c));
    assert_int_equal(PARSE(&c, &argi, err, "--name=", "--listen=a=b"), 0);
    assert_string_equal(c.name, "");
    assert_string_equal(c.listen, "a=b"); /* only the first '=' splits */
    wf_flags_free(table, &c);
}

static void test_bool_forms(void **state)
{
    (void)state;
    static const struct {
        const char *arg;
        bool want;
    } cases[] = {
        {"--verbose", true},     {"--verbose=true", true}, {"--verbose=1", true},
        {"--verbose=yes", true}, {"--verbose=on", true},   {"--verbose=false", false},
        {"--verbose=0", false},  {"--verbose=no", false},  {"--verbose=off", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cfg_t c = {0};
        char err[256];
        assert_int_equal(PARSE(&c, NULL, err, "--verbose=true", cases[i].arg), 0);
        assert_int_equal(c.verbose, cases[i].want);
        wf_flags_free(table, &c);
    }
    cfg_t c = {0};
    char err[256];
    assert_int_equal(PARSE(&c, NULL, err, "--verbose=maybe"), WF_E_INVAL);
    assert_string_equal(err, "invalid value \"maybe\" for --verbose: expected true or false");
    wf_flags_free(table, &c);
}

static void test_positional_and_double_dash(void **state)
{
    (void)state;
    cfg_t c = {0};
    char err[256];
    int argi = -1;
    /* Parsing stops at the first argument that is not a flag. */
    assert_int_equal(PARSE(&c, &argi, err, "--workers", "2", "serve", "--workers", "5"), 0);
    assert_int_equal(argi, 3);
    assert_int_equal(c.workers, 2);
    wf_flags_free(table, &c);

    /* `--` ends the flags; the index points past it. */
    memset(&c, 0, sizeof(c));
    assert_int_equal(PARSE(&c, &argi, err, "--verbose", "--", "--workers", "5"), 0);
    assert_int_equal(argi, 3);
    assert_true(c.verbose);
    assert_int_equal(c.workers, 4);
    wf_flags_free(table, &c);

    /* A single dash word is positional too (it is not a flag of ours). */
    memset(&c, 0, sizeof(c));
    assert_int_equal(PARSE(&c, &argi, err, "-", "x"), 0);
    assert_int_equal(argi, 1);
    wf_flags_free(table, &c);

    /* A value that starts with dashes is taken as the value. */
    memset(&c, 0, sizeof(c));
    assert_int_equal(PARSE(&c, &argi, err, "--name", "--verbose"), 0);
    assert_string_equal(c.name, "--verbose");
    assert_false(c.verbose);
    assert_int_equal(argi, 3);
    wf_flags_free(table, &c);
}

static void test_help(void **state)
{
    (void)state;
    cfg_t c = {0};
    char err[256];
    assert_int_equal(PARSE(&c, NULL, err, "--help"), 1);
    wf_flags_free(table, &c);
    memset(&c, 0, sizeof(c));
    assert_int_equal(PARSE(&c, NULL, err, "--workers", "3", "-h", "--bogus"), 1);
    wf_flags_free(table, &c);
    /* After `--`, --help is an argument, not a request. */
    memset(&c, 0, sizeof(c));
    assert_int_equal(PARSE(&c, NULL, err, "--", "--help"), 0);
    wf_flags_free(table, &c);

    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    assert_non_null(f);
    wf_flags_print_help(table, f);
    fclose(f);
    assert_non_null(strstr(out, "--listen STR"));
    assert_non_null(strstr(out, "address to serve (default: 127.0.0.1:20001)\n"));
    assert_non_null(strstr(out, "--retention DURATION"));
    assert_non_null(strstr(out, "keep data (default: 15d)\n"));
    assert_non_null(strstr(out, "instance name\n")); /* no default shown when there is none */
    /* One line per flag. */
    int lines = 0;
    for (char *p = out; *p; p++) {
        lines += *p == '\n';
    }
    assert_int_equal(lines, 8);
    free(out);
}

static void test_unknown_flag(void **state)
{
    (void)state;
    cfg_t c = {0};
    char err[256];
    assert_int_equal(PARSE(&c, NULL, err, "--retension=5d"), WF_E_UNKNOWN_FLAG);
    assert_string_equal(err, "unknown flag --retension (did you mean --retention?)");
    wf_flags_free(table, &c);

    memset(&c, 0, sizeof(c));
    assert_int_equal(PARSE(&c, NULL, err, "--worker", "3"), WF_E_UNKNOWN_FLAG);
    assert_string_equal(err, "unknown flag --worker (did you mean --workers?)");
    wf_flags_free(table, &c);

    memset(&c, 0, sizeof(c));
    assert_int_equal(PARSE(&c, NULL, err, "--maxbody=1"), WF_E_UNKNOWN_FLAG);
    assert_string_equal(err, "unknown flag --maxbody (did you mean --max-body?)");
    wf_flags_free(table, &c);

    /* Nothing close: no guess. */
    memset(&c, 0, sizeof(c));
    assert_int_equal(PARSE(&c, NULL, err, "--completely-different"), WF_E_UNKNOWN_FLAG);
    assert_string_equal(err, "unknown flag --completely-different (see --help)");
    wf_flags_free(table, &c);

    /* A name longer than the distance table is still reported, not crashed on. */
    memset(&c, 0, sizeof(c));
    char longname[200];
    memset(longname, 'z', sizeof(longname));
    memcpy(longname, "--", 2);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(PARSE(&c, NULL, err, longname), WF_E_UNKNOWN_FLAG);
    assert_non_null(strstr(err, "unknown flag --zzz"));
    wf_flags_free(table, &c);
}

static void test_missing_and_invalid_values(void **state)
{
    (void)state;
    cfg_t c = {0};
    char err[256];
    assert_int_equal(PARSE(&c, NULL, err, "--listen"), WF_E_INVAL);
    assert_string_equal(err, "flag --listen needs a value");
    wf_flags_free(table, &c);

    memset(&c, 0, sizeof(c));
    assert_int_equal(PARSE(&c, NULL, err, "--workers", "1", "--retention"), WF_E_INVAL);
    assert_string_equal(err, "flag --retention needs a value");
    wf_flags_free(table, &c);

    static const struct {
        const char *arg;
        const char *msg;
    } cases[] = {
        {"--workers=", "invalid value \"\" for --workers: expected an integer"},
        {"--workers=12x", "invalid value \"12x\" for --workers: expected an integer"},
        {"--workers=1.5", "invalid value \"1.5\" for --workers: expected an integer"},
        {"--workers=99999999999999999999",
         "invalid value \"99999999999999999999\" for --workers: expected an integer"},
        {"--retention=5", "invalid value \"5\" for --retention: expected a duration such as 30s, "
                          "5m, 2h or 15d"},
        {"--retention=5x", "invalid value \"5x\" for --retention: expected a duration such as "
                           "30s, 5m, 2h or 15d"},
        {"--retention=-5s", "invalid value \"-5s\" for --retention: expected a duration such as "
                            "30s, 5m, 2h or 15d"},
        {"--max-body=5XB",
         "invalid value \"5XB\" for --max-body: expected a size such as 512KiB or 64MiB"},
        {"--max-body=-1",
         "invalid value \"-1\" for --max-body: expected a size such as 512KiB or 64MiB"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&c, 0, sizeof(c));
        int rc = PARSE(&c, NULL, err, cases[i].arg);
        assert_int_equal(rc, WF_E_INVAL);
        assert_string_equal(err, cases[i].msg);
        /* A refused value leaves the default in place. */
        assert_int_equal(c.workers, 4);
        assert_int_equal(c.retention_ms, 15LL * 86400 * 1000);
        assert_int_equal(c.max_body, 16LL << 20);
        wf_flags_free(table, &c);
    }

    /* A short error buffer gets a truncated, terminated message. */
    memset(&c, 0, sizeof(c));
    char small[16];
    assert_int_equal(PARSE(&c, NULL, small, "--workers=x"), WF_E_INVAL);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    wf_flags_free(table, &c);
}

static void test_reparse_applies_defaults(void **state)
{
    (void)state;
    /* Parsing twice into the same config starts again from the defaults and does not leak
     * the first parse's strings (LSan checks the latter). */
    cfg_t c = {0};
    char err[256];
    assert_int_equal(
        PARSE(&c, NULL, err, "--name=first", "--listen=x", "--workers=7", "--limit=1KiB"), 0);
    assert_int_equal(c.limit, 1024);
    assert_int_equal(PARSE(&c, NULL, err, "--verbose"), 0);
    assert_null(c.name);
    assert_int_equal(c.limit, 0); /* no default means zero */
    assert_string_equal(c.listen, "127.0.0.1:20001");
    assert_int_equal(c.workers, 4);
    assert_true(c.verbose);
    /* The last of repeated flags wins, and earlier copies are freed. */
    assert_int_equal(PARSE(&c, NULL, err, "--name=a", "--name=b", "--name", "c"), 0);
    assert_string_equal(c.name, "c");
    wf_flags_free(table, &c);
    wf_flags_free(table, &c); /* idempotent */
}

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t ms;
    } ok[] = {
        {"0", 0},
        {"0s", 0},
        {"500ms", 500},
        {"15s", 15000},
        {"5m", 300000},
        {"2h", 7200000},
        {"1h30m", 5400000},
        {"1m30s", 90000},
        {"1h0m5s250ms", 3605250},
        {"15d", 1296000000},
        {"1w", 604800000},
        {"1y", 31536000000},
        {"10y", 315360000000},
        {"9223372036854775807ms", INT64_MAX},
        {"106751991167d", 106751991167LL * 86400000},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t v = -1;
        if (wf_parse_duration_ms(ok[i].s, &v) != 0 || v != ok[i].ms) {
            fail_msg("duration \"%s\": got %lld want %lld", ok[i].s, (long long)v,
                     (long long)ok[i].ms);
        }
    }
    static const char *const bad[] = {
        "",
        "5",
        "s",
        "ms",
        "-1s",
        "+1s",
        " 1s",
        "1s ",
        "1.5h",
        "1hh",
        "1S",
        "1h30",
        "00",
        "1x",
        "9223372036854775808ms",    /* strtoll range */
        "9223372036854775807s",     /* n * unit overflows */
        "106751991168d",            /* just past INT64_MAX milliseconds */
        "9223372036854775807ms1ms", /* the sum overflows */
        "292471209y",               /* > INT64_MAX ms */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = 4242;
        if (wf_parse_duration_ms(bad[i], &v) != WF_E_INVAL || v != 4242) {
            fail_msg("duration \"%s\" accepted as %lld", bad[i], (long long)v);
        }
    }
}

static void test_sizes(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t bytes;
    } ok[] = {
        {"0", 0},
        {"512", 512},
        {"512B", 512},
        {"64KiB", 65536},
        {"16MiB", 16777216},
        {"1GiB", 1073741824},
        {"10KB", 10000},
        {"10MB", 10000000},
        {"3GB", 3000000000},
        {"9223372036854775807", INT64_MAX},
        {"8589934591GiB", 8589934591LL * 1073741824},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t v = -1;
        if (wf_parse_size(ok[i].s, &v) != 0 || v != ok[i].bytes) {
            fail_msg("size \"%s\": got %lld want %lld", ok[i].s, (long long)v,
                     (long long)ok[i].bytes);
        }
    }
    static const char *const bad[] = {
        "",
        "KiB",
        "-1",
        "+1",
        " 1",
        "1 KiB",
        "1kib",
        "1KIB",
        "1.5MB",
        "1TB",
        "1Ki",
        "1MiBx",
        "9223372036854775808",
        "8589934592GiB", /* overflows int64 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = 4242;
        if (wf_parse_size(bad[i], &v) != WF_E_INVAL || v != 4242) {
            fail_msg("size \"%s\" accepted as %lld", bad[i], (long long)v);
        }
    }
}

static void test_parse_bool(void **state)
{
    (void)state;
    bool b = false;
    assert_int_equal(wf_parse_bool("yes", &b), 0);
    assert_true(b);
    assert_int_equal(wf_parse_bool("off", &b), 0);
    assert_false(b);
    b = true;
    assert_int_equal(wf_parse_bool("", &b), WF_E_INVAL);
    assert_int_equal(wf_parse_bool("TRUE", &b), WF_E_INVAL);
    assert_int_equal(wf_parse_bool("2", &b), WF_E_INVAL);
    assert_true(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_type_both_forms),
        cmocka_unit_test(test_bool_forms),
        cmocka_unit_test(test_positional_and_double_dash),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_unknown_flag),
        cmocka_unit_test(test_missing_and_invalid_values),
        cmocka_unit_test(test_reparse_applies_defaults),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_parse_bool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
