/*
 * test_deploy_systemd.c - the shipped units of deploy/systemd/ as systemd itself judges them:
 * `systemd-analyze verify` loads each one (copied to a temporary directory with ExecStart's
 * /usr/local/bin/weft pointed at the weft under test, since verify checks that the binary
 * exists) and must exit 0 and print nothing; `systemd-analyze security --offline=true` rates
 * each unit's sandbox, and the exposure must be at most SU_MAX_EXPOSURE (the figures are
 * printed and recorded in deploy/systemd/README.md).
 *
 * The units' command lines are run for real by test_deploy_systemd_run. Without a working
 * systemd-analyze (not installed, or unable to load even a trivial unit here) this test exits
 * 77 and ctest shows it skipped, never passed.
 */
#include "test_deploy_systemd_common.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/*
 * systemd rates exposure from 0 to 10 and calls 1.0-4.9 "OK"; the units score 1.1 (1.4 for the
 * gateway). The bound leaves a little room, but a score moves by only 0.1-0.3 when one
 * protection goes (DynamicUser implies several others), so the list of the checks systemd
 * reports as failed is held exactly too: a protection dropped from a unit adds to it.
 */
#define SU_MAX_EXPOSURE 1.9

/* The checks each unit knowingly fails: it talks to the network (any address: peers may be
 * on other hosts) and to local sockets (the journal), runs in the host's root directory, and
 * may read /dev/rtc (ProtectClock's device rule). */
static const char *const su_accepted[] = {
    "RootDirectory=/RootImage=",
    "RestrictAddressFamilies=~AF_UNIX",
    "RestrictAddressFamilies=~AF_(INET|INET6)",
    "PrivateNetwork=",
    "DeviceAllow=",
    "IPAddressDeny=",
    NULL,
};
/* The gateway also keeps CAP_NET_BIND_SERVICE (ambient, and in its bounding set) for ports
 * below 1024, which a user namespace (PrivateUsers=) would make useless on the host. */
static const char *const su_accepted_gateway[] = {
    "AmbientCapabilities=",
    "CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)",
    "PrivateUsers=",
    NULL,
};

static char *g_dir;

/* Run systemd-analyze with args; its exit status (-1 when it did not exit) and its stdout and
 * stderr together in *out (wf_free it). */
static int analyze(char *const *args, char **out)
{
    char log[700];
    snprintf(log, sizeof(log), "%s/analyze.log", g_dir);
    unlink(log); /* wt_spawn appends */
    char *argv[8] = {"systemd-analyze"};
    int n = 1;
    for (; args[n - 1] != NULL && n < 7; n++) {
        argv[n] = args[n - 1];
    }
    argv[n] = NULL;
    pid_t pid = wt_spawn(argv, log);
    int st = wt_wait(pid, 60000);
    *out = wt_read_file(log, NULL);
    if (*out == NULL) {
        *out = su_strdup("");
    }
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Copy a shipped unit into g_dir under the name systemd-analyze is given, with the binary path
 * replaced; returns the copy's path (wf_free it). */
static char *stage_unit(const char *file, const char *instance)
{
    char *src = su_path(file);
    char *text = wt_read_file(src, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "ExecStart=" SU_UNIT_BIN " "));
    char *fixed = su_replace(text, SU_UNIT_BIN, wt_weft_bin());
    size_t n = strlen(g_dir) + strlen(instance) + 2;
    char *dst = wf_malloc(n);
    snprintf(dst, n, "%s/%s", g_dir, instance);
    wt_write_file(dst, fixed);
    wf_free(fixed);
    wf_free(text);
    wf_free(src);
    return dst;
}

static void test_verify(void **state)
{
    (void)state;
    for (size_t i = 0; i < SU_NUNITS; i++) {
        char *unit = stage_unit(su_units[i].file, su_units[i].instance);
        char *out = NULL;
        int rc = analyze((char *[]){"verify", unit, NULL}, &out);
        printf("systemd-analyze verify %s: exit %d%s%s\n", su_units[i].instance, rc,
               out[0] ? ", said:\n" : ", nothing printed", out);
        assert_int_equal(rc, 0);
        assert_string_equal(out, "");
        wf_free(out);
        wf_free(unit);
    }
}

/* A unit with a typo is caught: verify is not a test that always passes. */
static void test_verify_catches_a_typo(void **state)
{
    (void)state;
    char *unit = stage_unit("weft-control.service", "weft-control.service");
    char *text = wt_read_file(unit, NULL);
    char *bad = su_replace(text, "ProtectSystem=strict", "ProtectSytem=strict");
    wt_write_file(unit, bad);
    char *out = NULL;
    analyze((char *[]){"verify", unit, NULL}, &out);
    assert_non_null(strstr(out, "Unknown key 'ProtectSytem'"));
    wf_free(out);
    /* and a binary that is not there */
    char *gone = su_replace(text, wt_weft_bin(), "/nonexistent/weft");
    wt_write_file(unit, gone);
    int rc = analyze((char *[]){"verify", unit, NULL}, &out);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(out, "/nonexistent/weft"));
    wf_free(out);
    wf_free(gone);
    wf_free(bad);
    wf_free(text);
    wf_free(unit);
}

static void test_security(void **state)
{
    (void)state;
    for (size_t i = 0; i < SU_NUNITS; i++) {
        char *unit = stage_unit(su_units[i].file, su_units[i].instance);
        char *out = NULL;
        int rc = analyze((char *[]){"security", "--offline=true", "--no-pager", unit, NULL}, &out);
        assert_int_equal(rc, 0);
        char marker[200];
        snprintf(marker, sizeof(marker), "Overall exposure level for %s: ", su_units[i].instance);
        const char *at = strstr(out, marker);
        if (at == NULL) {
            fprintf(stderr, "%s\n", out);
        }
        assert_non_null(at);
        char *end = NULL;
        double score = strtod(at + strlen(marker), &end);
        assert_true(end != at + strlen(marker));
        const char *eol = strchr(at, '\n');
        printf("systemd-analyze security --offline=true %s: %.*s\n", su_units[i].instance,
               (int)(eol != NULL ? eol - (at + strlen(marker)) : 20), at + strlen(marker));
        assert_true(score >= 0.0);
        assert_true(score <= SU_MAX_EXPOSURE);

        /* every failed check ("✗ NAME  description  weight") is an accepted one, and every
         * accepted one is reported (so the list stays true) */
        bool gateway = strcmp(su_units[i].file, "weft-gateway.service") == 0;
        int failed = 0, expected = 0;
        for (const char *x = strstr(out, "\u2717 "); x != NULL; x = strstr(x + 1, "\u2717 ")) {
            const char *name = x + strlen("\u2717 ");
            size_t len = strcspn(name, " \n");
            bool known = false;
            for (const char *const *a = su_accepted; *a && !known; a++) {
                known = strlen(*a) == len && memcmp(*a, name, len) == 0;
            }
            for (const char *const *a = su_accepted_gateway; gateway && *a && !known; a++) {
                known = strlen(*a) == len && memcmp(*a, name, len) == 0;
            }
            if (!known) {
                fprintf(stderr, "%s: systemd-analyze security reports %.*s\n", su_units[i].instance,
                        (int)len, name);
            }
            assert_true(known);
            failed++;
        }
        for (const char *const *a = su_accepted; *a; a++) {
            expected++;
        }
        for (const char *const *a = su_accepted_gateway; gateway && *a; a++) {
            expected++;
        }
        assert_int_equal(failed, expected);
        wf_free(out);
        wf_free(unit);
    }
}

/* The same rating for an unhardened unit is far above the bound: the check can fail. */
static void test_security_of_a_bare_unit(void **state)
{
    (void)state;
    char path[700];
    snprintf(path, sizeof(path), "%s/bare.service", g_dir);
    char text[900];
    snprintf(text, sizeof(text), "[Service]\nExecStart=%s control\n", wt_weft_bin());
    wt_write_file(path, text);
    char *out = NULL;
    assert_int_equal(
        analyze((char *[]){"security", "--offline=true", "--no-pager", path, NULL}, &out), 0);
    const char *at = strstr(out, "Overall exposure level for bare.service: ");
    assert_non_null(at);
    double score = strtod(at + strlen("Overall exposure level for bare.service: "), NULL);
    printf("an unhardened unit: %.1f\n", score);
    assert_true(score > SU_MAX_EXPOSURE);
    wf_free(out);
}

/* Whether systemd-analyze can load a trivial unit here; prints why not. */
static bool analyze_works(void)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/probe.service", g_dir);
    wt_write_file(path, "[Service]\nExecStart=/bin/sh -c true\n");
    char *out = NULL;
    int rc = analyze((char *[]){"verify", path, NULL}, &out);
    bool ok = rc == 0 && out[0] == '\0';
    if (!ok) {
        printf("skipped: systemd-analyze verify cannot check even a trivial unit here (exit %d)"
               "%s%s\n",
               rc, out[0] ? ": " : "", out);
    }
    wf_free(out);
    return ok;
}

int main(void)
{
    g_dir = wt_tmpdir("weft-systemd");
    if (!analyze_works()) {
        wt_rm_rf(g_dir);
        wf_free(g_dir);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_verify_catches_a_typo),
        cmocka_unit_test(test_security),
        cmocka_unit_test(test_security_of_a_bare_unit),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    wt_rm_rf(g_dir);
    wf_free(g_dir);
    return rc;
}
