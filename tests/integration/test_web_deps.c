/*
 * test_web_deps.c - cmake/weft_web_deps.cmake, which installs web/node_modules from the npm
 * registry as web/package-lock.json pins it (the build's way to the web UI's packages without
 * npm). Each test writes a registry of real npm-style tarballs (made with tar, their SHA-512
 * integrity computed here) to a directory, points npm_config_registry at it as a file:// URL,
 * writes a lock file, and runs the script with `cmake -P` as the build does. The build itself
 * runs the same script against registry.npmjs.org for web/'s real lock file.
 *
 * Checked: the packages for this platform land where the lock file says (scoped, nested,
 * optional ones for other platforms skipped, executable bits kept); an unchanged lock file
 * downloads nothing; a tarball that does not match its integrity, a missing one, and tarballs
 * with a symlink or a '..' member fail with a clear message and leave the previous
 * node_modules exactly as it was and nothing written outside; malformed lock files fail with
 * the reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "wf_alloc.h"
#include "wt_util.h"

static char *g_dir;          /* the test's temporary directory */
static char g_web[600];      /* the web/ the script installs into */
static char g_registry[600]; /* the directory npm_config_registry names */
static char g_script[600];   /* cmake/weft_web_deps.cmake */

/* The lock file's integrity string of a file: "sha512-" and the base64 of its SHA-512. */
static void integrity_of(const char *path, char *out, size_t cap)
{
    size_t len = 0;
    char *data = wt_read_file(path, &len);
    assert_non_null(data);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    assert_int_equal(EVP_Digest(data, len, md, &mdlen, EVP_sha512(), NULL), 1);
    wf_free(data);
    unsigned char b64[128];
    EVP_EncodeBlock(b64, md, (int)mdlen);
    snprintf(out, cap, "sha512-%s", (const char *)b64);
}

/*
 * Publish name@version to the test registry as npm lays it out (NAME/-/BASE-VERSION.tgz, BASE
 * being the name without its scope): a tarball with package/package.json, package/index.js
 * holding `marker`, and an executable package/bin/tool. Its integrity goes to integ.
 */
static void publish(const char *name, const char *version, const char *marker, char *integ,
                    size_t cap)
{
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    char src[900], tgz[900];
    snprintf(src, sizeof(src), "%s/src/%s-%s/package", g_dir, name, version);
    snprintf(tgz, sizeof(tgz), "%s/%s/-/%s-%s.tgz", g_registry, name, base, version);
    assert_int_equal(wt_sh(g_dir, "mkdir -p '%s/bin' '%s/%s/-'", src, g_registry, name), 0);
    char path[1000], text[600];
    snprintf(path, sizeof(path), "%s/package.json", src);
    snprintf(text, sizeof(text), "{\"name\": \"%s\", \"version\": \"%s\"}\n", name, version);
    wt_write_file(path, text);
    snprintf(path, sizeof(path), "%s/index.js", src);
    snprintf(text, sizeof(text), "module.exports = '%s';\n", marker);
    wt_write_file(path, text);
    snprintf(path, sizeof(path), "%s/bin/tool", src);
    wt_write_file(path, "#!/bin/sh\necho tool\n");
    assert_int_equal(chmod(path, 0755), 0);
    assert_int_equal(wt_sh(g_dir, "tar -czf '%s' -C '%s/..' package", tgz, src), 0);
    integrity_of(tgz, integ, cap);
}

/* Run the script in g_web as the build does (linux, x64); its exit status, and its output in
 * *log with every run of white space made one space (CMake wraps its messages' lines). */
static int run_script(char **log)
{
    int rc =
        wt_sh(g_web,
              "npm_config_registry='file://%s' cmake -DWEB='%s' -DNODE=node -DNODE_PLATFORM=linux "
              "-DNODE_ARCH=x64 -P '%s'",
              g_registry, g_web, g_script);
    char path[700];
    snprintf(path, sizeof(path), "%s/sh.log", g_web);
    char *s = wt_read_file(path, NULL);
    if (s == NULL) {
        s = wf_strdup("");
    }
    size_t n = 0;
    for (size_t i = 0; s[i] != '\0'; i++) {
        bool space = s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r';
        if (!space) {
            s[n++] = s[i];
        } else if (n > 0 && s[n - 1] != ' ') {
            s[n++] = ' ';
        }
    }
    s[n] = '\0';
    *log = s;
    return rc;
}

static void write_lock(const char *text)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/package-lock.json", g_web);
    wt_write_file(path, text);
}

/* A lock file of version 3 whose packages are the JSON members in entries. */
static char *lock_of(const char *entries)
{
    size_t cap = strlen(entries) + 400;
    char *s = wf_malloc(cap);
    snprintf(s, cap,
             "{\"name\": \"t\", \"lockfileVersion\": 3, \"requires\": true, \"packages\": {\n"
             "\"\": {\"name\": \"t\"}%s%s}}\n",
             entries[0] ? ",\n" : "", entries);
    return s;
}

static char *read_in_web(const char *rel)
{
    char path[900];
    snprintf(path, sizeof(path), "%s/%s", g_web, rel);
    return wt_read_file(path, NULL);
}

static bool exists_in_web(const char *rel)
{
    char path[900];
    snprintf(path, sizeof(path), "%s/%s", g_web, rel);
    return access(path, F_OK) == 0;
}

static int setup(void **state)
{
    (void)state;
    g_dir = wt_tmpdir("web_deps");
    snprintf(g_web, sizeof(g_web), "%s/web", g_dir);
    snprintf(g_registry, sizeof(g_registry), "%s/registry", g_dir);
    assert_int_equal(wt_sh(g_dir, "mkdir -p '%s' '%s'", g_web, g_registry), 0);
    char here[500];
    snprintf(here, sizeof(here), "%s", __FILE__);
    char *cut = strstr(here, "/tests/integration/");
    assert_non_null(cut);
    *cut = '\0';
    snprintf(g_script, sizeof(g_script), "%s/cmake/weft_web_deps.cmake", here);
    assert_int_equal(access(g_script, R_OK), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    wt_rm_rf(g_dir);
    wf_free(g_dir);
    return 0;
}

/* The node_modules of a good install, kept by the failure tests: returns the lock file text. */
static char *install_good(void)
{
    char a[200], b[200], linux_pkg[200], c[200];
    publish("alpha", "1.0.0", "alpha-1", a, sizeof(a));
    publish("beta", "2.0.0", "beta-nested", b, sizeof(b));
    publish("@sc/linux-x64", "0.1.0", "native", linux_pkg, sizeof(linux_pkg));
    publish("gamma", "3.0.0", "gamma-3", c, sizeof(c));
    char entries[3000];
    snprintf(entries, sizeof(entries),
             "\"node_modules/alpha\": {\"version\": \"1.0.0\", \"integrity\": \"%s\"},\n"
             "\"node_modules/alpha/node_modules/beta\": {\"version\": \"2.0.0\", "
             "\"integrity\": \"%s\"},\n"
             "\"node_modules/@sc/darwin-arm64\": {\"version\": \"0.1.0\", \"integrity\": "
             "\"%s\", \"optional\": true, \"os\": [\"darwin\"], \"cpu\": [\"arm64\"]},\n"
             "\"node_modules/@sc/linux-x64\": {\"version\": \"0.1.0\", \"integrity\": \"%s\", "
             "\"optional\": true, \"os\": [\"linux\"], \"cpu\": [\"x64\"]},\n"
             "\"node_modules/gamma\": {\"version\": \"3.0.0\", \"integrity\": \"%s\", "
             "\"cpu\": [\"!arm64\"]}",
             a, b, linux_pkg, linux_pkg, c);
    char *lock = lock_of(entries);
    write_lock(lock);
    char *log = NULL;
    int rc = run_script(&log);
    if (rc != 0) {
        fprintf(stderr, "%s", log);
    }
    assert_int_equal(rc, 0);
    assert_non_null(strstr(log, "4 packages"));
    wf_free(log);
    return lock;
}

static void assert_good_install(const char *lock)
{
    char *s = read_in_web("node_modules/alpha/index.js");
    assert_non_null(s);
    assert_non_null(strstr(s, "'alpha-1'"));
    wf_free(s);
    s = read_in_web("node_modules/alpha/node_modules/beta/index.js");
    assert_non_null(s);
    assert_non_null(strstr(s, "'beta-nested'"));
    wf_free(s);
    s = read_in_web("node_modules/@sc/linux-x64/index.js");
    assert_non_null(s);
    assert_non_null(strstr(s, "'native'"));
    wf_free(s);
    s = read_in_web("node_modules/gamma/index.js");
    assert_non_null(s);
    wf_free(s);
    assert_false(exists_in_web("node_modules/@sc/darwin-arm64"));
    s = read_in_web("node_modules/.package-lock.json.weft");
    assert_non_null(s);
    assert_string_equal(s, lock);
    wf_free(s);
    char path[900];
    snprintf(path, sizeof(path), "%s/node_modules/alpha/bin/tool", g_web);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true((st.st_mode & 0111) != 0);
    assert_false(exists_in_web("node_modules.new"));
    assert_false(exists_in_web("node_modules.download"));
}

static void test_installs_what_the_lock_pins(void **state)
{
    (void)state;
    char *lock = install_good();
    assert_good_install(lock);

    /* The same lock file again: nothing is downloaded (the registry is gone) and nothing
     * changes. */
    char moved[700];
    snprintf(moved, sizeof(moved), "%s.away", g_registry);
    assert_int_equal(rename(g_registry, moved), 0);
    char *log = NULL;
    assert_int_equal(run_script(&log), 0);
    assert_null(strstr(log, "packages from"));
    wf_free(log);
    assert_good_install(lock);
    assert_int_equal(rename(moved, g_registry), 0);
    wf_free(lock);
}

/* Run the script on lock text that must fail with `reason` in its output, leaving the good
 * install of `good_lock` untouched. */
static void assert_refused(const char *good_lock, const char *lock, const char *reason)
{
    write_lock(lock);
    char *log = NULL;
    int rc = run_script(&log);
    if (rc == 0 || strstr(log, reason) == NULL) {
        fprintf(stderr, "expected a failure with \"%s\", got exit %d:\n%s", reason, rc, log);
    }
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(log, reason));
    wf_free(log);
    assert_good_install(good_lock);
}

static void test_wrong_or_missing_tarballs_change_nothing(void **state)
{
    (void)state;
    char *good = install_good();
    char other[200], entries[2000];
    publish("delta", "1.0.0", "delta", other, sizeof(other));

    /* alpha 1.0.0's tarball against delta's integrity: refused, node_modules as it was. */
    snprintf(entries, sizeof(entries),
             "\"node_modules/alpha\": {\"version\": \"1.0.0\", \"integrity\": \"%s\"}", other);
    char *lock = lock_of(entries);
    assert_refused(good, lock, "does not match the integrity of alpha@1.0.0");
    wf_free(lock);

    /* A version the registry does not have. */
    snprintf(entries, sizeof(entries),
             "\"node_modules/delta\": {\"version\": \"9.9.9\", \"integrity\": \"%s\"}", other);
    lock = lock_of(entries);
    assert_refused(good, lock, "delta-9.9.9.tgz failed");
    wf_free(lock);
    wf_free(good);
}

static void test_hostile_tarballs_write_nothing_outside(void **state)
{
    (void)state;
    char *good = install_good();
    char integ[200], entries[2000];

    /* A tarball with a symlink pointing out of the package. */
    assert_int_equal(wt_sh(g_dir,
                           "mkdir -p evil1/package && ln -s '%s' evil1/package/out && "
                           "mkdir -p '%s/evil1/-' && "
                           "tar -czf '%s/evil1/-/evil1-1.0.0.tgz' -C evil1 package",
                           g_dir, g_registry, g_registry),
                     0);
    char tgz[900];
    snprintf(tgz, sizeof(tgz), "%s/evil1/-/evil1-1.0.0.tgz", g_registry);
    integrity_of(tgz, integ, sizeof(integ));
    snprintf(entries, sizeof(entries),
             "\"node_modules/evil1\": {\"version\": \"1.0.0\", \"integrity\": \"%s\"}", integ);
    char *lock = lock_of(entries);
    assert_refused(good, lock, "evil1@1.0.0");
    wf_free(lock);

    /* A member named ../../../escaped, which from the directory the script unpacks in
     * (web/node_modules.download/N) is this test's directory (tar -P keeps the '..'). */
    assert_int_equal(wt_sh(g_dir,
                           "mkdir -p evil2/package && echo x > evil2/package/f && echo y > "
                           "evil2/extra && mkdir -p '%s/evil2/-' && cd evil2 && "
                           "tar -czPf '%s/evil2/-/evil2-1.0.0.tgz' "
                           "--transform 's,^extra$,../../../escaped,' package extra",
                           g_registry, g_registry),
                     0);
    snprintf(tgz, sizeof(tgz), "%s/evil2/-/evil2-1.0.0.tgz", g_registry);
    integrity_of(tgz, integ, sizeof(integ));
    snprintf(entries, sizeof(entries),
             "\"node_modules/evil2\": {\"version\": \"1.0.0\", \"integrity\": \"%s\"}", integ);
    lock = lock_of(entries);
    assert_refused(good, lock, "evil2@1.0.0");
    wf_free(lock);
    char path[700];
    snprintf(path, sizeof(path), "%s/escaped", g_dir);
    assert_int_equal(access(path, F_OK), -1);
    wf_free(good);
}

static void test_malformed_lock_files(void **state)
{
    (void)state;
    char *good = install_good();
    char integ[200], entries[2000];
    publish("zeta", "1.0.0", "zeta", integ, sizeof(integ));

    assert_refused(good, "{\"lockfileVersion\": 3, \"packages\": {", "is not an npm lock file");
    assert_refused(good, "{\"lockfileVersion\": 1, \"dependencies\": {}}\n",
                   "is not an npm lock file of version 2 or 3");
    assert_refused(good, "{\"lockfileVersion\": 3, \"packages\": {}}\n",
                   "is not an npm lock file of version 2 or 3");
    assert_refused(good, "[3]", "is not an npm lock file of version 2 or 3");
    static const struct {
        const char *entry; /* INTEG stands for a good integrity */
        const char *reason;
    } cases[] = {
        {"\"node_modules/zeta\": {\"integrity\": \"INTEG\"}", "has no valid version"},
        {"\"node_modules/zeta\": {\"version\": \"../../x\", \"integrity\": \"INTEG\"}",
         "has no valid version"},
        {"\"node_modules/zeta\": \"1.0.0\"", "has no valid version"},
        {"\"node_modules/zeta\": {\"version\": \"1.0.0\"}", "has no sha512 integrity"},
        {"\"node_modules/zeta\": {\"version\": \"1.0.0\", \"integrity\": "
         "\"sha1-AAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}",
         "has no sha512 integrity"},
        {"\"node_modules/zeta\": {\"version\": \"1.0.0\", \"integrity\": \"sha512-!!\"}",
         "has no sha512 integrity"},
        {"\"node_modules/zeta\": {\"version\": \"1.0.0\", \"integrity\": \"sha512-QUJD\"}",
         "malformed integrity"},
        {"\"node_modules/zeta\": {\"version\": \"1.0.0\", \"integrity\": \"INTEG\", \"link\": "
         "true}",
         "is a link"},
        {"\"node_modules/zeta\": {\"version\": \"1.0.0\", \"integrity\": \"INTEG\", \"os\": "
         "[\"darwin\"]}",
         "does not run on linux-x64"},
        {"\"node_modules/zeta\": {\"version\": \"1.0.0\", \"integrity\": \"INTEG\", \"cpu\": "
         "[\"!x64\"]}",
         "does not run on linux-x64"},
        {"\"node_modules/..\": {\"version\": \"1.0.0\", \"integrity\": \"INTEG\"}",
         "unexpected package path"},
        {"\"node_modules/zeta/../../x\": {\"version\": \"1.0.0\", \"integrity\": \"INTEG\"}",
         "unexpected package path"},
        {"\"lib/zeta\": {\"version\": \"1.0.0\", \"integrity\": \"INTEG\"}",
         "unexpected package path"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *at = strstr(cases[i].entry, "INTEG");
        if (at != NULL) {
            snprintf(entries, sizeof(entries), "%.*s%s%s", (int)(at - cases[i].entry),
                     cases[i].entry, integ, at + 5);
        } else {
            snprintf(entries, sizeof(entries), "%s", cases[i].entry);
        }
        char *lock = lock_of(entries);
        assert_refused(good, lock, cases[i].reason);
        wf_free(lock);
    }
    wf_free(good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_installs_what_the_lock_pins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_or_missing_tarballs_change_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hostile_tarballs_write_nothing_outside, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_malformed_lock_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
