/*
 * test_deploy_systemd_common.h - reading the shipped systemd units of deploy/systemd/ the way
 * systemd reads them, for test_deploy_systemd (systemd-analyze on each unit) and
 * test_deploy_systemd_run (each unit's ExecStart run for real). Included by both, so everything
 * is static.
 *
 * What is implemented is what the shipped units and env files use, with systemd's meaning
 * (systemd.syntax(7), systemd.service(5) "Command lines", systemd.exec(5) "Environment",
 * systemd.unit(5) "Specifiers"): backslash-continued lines, [Service] keys in order,
 * Environment= assignments overridden by EnvironmentFile= lines (the later one wins), the
 * specifiers %i %S %d %%, ExecStart= words where "${NAME}" is replaced inside a word and a word
 * that is exactly "$NAME" becomes the value split on whitespace (none when empty), unset
 * variables empty. Anything else a unit or env file might contain (quotes, other specifiers,
 * ExecStart prefixes such as "-" or "+", "$NAME" inside a word) fails the test instead of being
 * guessed at: a unit that starts using it must extend this reader first.
 */
#ifndef TEST_DEPLOY_SYSTEMD_COMMON_H
#define TEST_DEPLOY_SYSTEMD_COMMON_H

#include "wf_alloc.h"
#include "wt_util.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shipped units, and the name systemd-analyze is given for each (a template needs an
 * instance). */
static const struct {
    const char *file;
    const char *instance;
} su_units[] = {
    {"weft-control.service", "weft-control.service"},
    {"weft-collector.service", "weft-collector.service"},
    {"weft-proxy@.service", "weft-proxy@ratings-v1.service"},
    {"weft-gateway.service", "weft-gateway.service"},
};
#define SU_NUNITS (sizeof(su_units) / sizeof(su_units[0]))

/* Where the units say the binary is, as README.md installs it. */
#define SU_UNIT_BIN "/usr/local/bin/weft"

#define SU_MAX_VARS 64
#define SU_MAX_KEYS 128
#define SU_MAX_ARGS 96

typedef struct {
    char *key[SU_MAX_KEYS]; /* [Service] keys in file order, values after specifiers */
    char *val[SU_MAX_KEYS];
    int n;
} su_service_t;

typedef struct {
    char *name[SU_MAX_VARS];
    char *value[SU_MAX_VARS];
    int n;
} su_env_t;

/* What the specifiers and the rewritten paths stand for in one run. */
typedef struct {
    const char *instance;   /* %i: "" for a unit that is no template */
    const char *state_root; /* %S: systemd's /var/lib */
    const char *cred_dir;   /* %d: $CREDENTIALS_DIRECTORY of this unit */
    const char *etc_root;   /* absolute /etc/weft paths are taken under this directory */
} su_ctx_t;

/* A file of deploy/systemd/ in the source tree this test was built from (CMake compiles with
 * absolute source paths, so __FILE__ locates it). New string. */
static inline char *su_path(const char *name)
{
    const char *here = __FILE__;
    const char *cut = strstr(here, "/tests/integration/");
    if (here[0] != '/' || cut == NULL) {
        fprintf(stderr, "cannot locate the source tree from %s\n", here);
        abort();
    }
    size_t n = (size_t)(cut - here) + strlen(name) + 32;
    char *p = wf_malloc(n);
    snprintf(p, n, "%.*s/deploy/systemd/%s", (int)(cut - here), here, name);
    return p;
}

static inline char *su_strdup(const char *s)
{
    size_t n = strlen(s);
    char *p = wf_malloc(n + 1);
    memcpy(p, s, n + 1);
    return p;
}

/*
 * text with every "from" that is not followed by a digit replaced by "to" (so ":1500" does not
 * match inside ":15006"). Returns a new string.
 */
static inline char *su_replace(const char *text, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    for (const char *p = strstr(text, from); p != NULL; p = strstr(p + fl, from)) {
        n++;
    }
    char *out = wf_malloc(strlen(text) + n * (tl > fl ? tl - fl : 0) + 1);
    char *o = out;
    const char *s = text;
    for (const char *p = strstr(s, from); p != NULL; p = strstr(s, from)) {
        memcpy(o, s, (size_t)(p - s));
        o += p - s;
        if (isdigit((unsigned char)p[fl])) {
            memcpy(o, p, fl);
            o += fl;
        } else {
            memcpy(o, to, tl);
            o += tl;
        }
        s = p + fl;
    }
    strcpy(o, s);
    return out;
}

/* The specifiers in s expanded; NULL (and a message) for one this reader does not know. */
static inline char *su_specifiers(const char *s, const su_ctx_t *c)
{
    size_t cap = strlen(s) + 1;
    for (const char *p = s; *p; p++) {
        cap += *p == '%' ? 1024 : 0;
    }
    char *out = wf_malloc(cap);
    char *o = out;
    for (const char *p = s; *p; p++) {
        if (*p != '%') {
            *o++ = *p;
            continue;
        }
        const char *v = NULL;
        switch (p[1]) {
        case 'i':
            v = c->instance;
            break;
        case 'S':
            v = c->state_root;
            break;
        case 'd':
            v = c->cred_dir;
            break;
        case '%':
            v = "%";
            break;
        default:
            fprintf(stderr, "unit uses the specifier %%%c, unknown to this test: %s\n", p[1], s);
            wf_free(out);
            return NULL;
        }
        if (v == NULL) {
            fprintf(stderr, "specifier %%%c has no value here: %s\n", p[1], s);
            wf_free(out);
            return NULL;
        }
        o += sprintf(o, "%s", v);
        p++;
    }
    *o = '\0';
    return out;
}

/* An absolute /etc/weft path moved under c->etc_root; other paths unchanged. New string. */
static inline char *su_etc(const char *path, const su_ctx_t *c)
{
    if (strncmp(path, "/etc/weft/", 10) != 0) {
        return su_strdup(path);
    }
    size_t n = strlen(c->etc_root) + strlen(path) + 1;
    char *p = wf_malloc(n);
    snprintf(p, n, "%s%s", c->etc_root, path);
    return p;
}

static inline void su_service_free(su_service_t *s)
{
    for (int i = 0; i < s->n; i++) {
        wf_free(s->key[i]);
        wf_free(s->val[i]);
    }
    s->n = 0;
}

/*
 * The [Service] section of a unit's text: continuation lines joined (the backslash becomes a
 * space), comments skipped, specifiers expanded in every value. 0, or -1 on a line this reader
 * cannot take.
 */
static inline int su_parse_unit(const char *text, const su_ctx_t *c, su_service_t *out)
{
    memset(out, 0, sizeof(*out));
    char *joined = su_replace(text, "\\\n", " ");
    bool in_service = false;
    int rc = 0;
    char *save = NULL;
    for (char *line = strtok_r(joined, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        while (isspace((unsigned char)*line)) {
            line++;
        }
        if (*line == '\0' || *line == '#' || *line == ';') {
            continue;
        }
        if (*line == '[') {
            in_service = strcmp(line, "[Service]") == 0;
            continue;
        }
        char *eq = strchr(line, '=');
        if (eq == NULL || out->n == SU_MAX_KEYS) {
            fprintf(stderr, "unit line not understood: %s\n", line);
            rc = -1;
            break;
        }
        if (!in_service) {
            continue;
        }
        *eq = '\0';
        char *v = su_specifiers(eq + 1, c);
        if (v == NULL) {
            rc = -1;
            break;
        }
        out->key[out->n] = su_strdup(line);
        out->val[out->n++] = v;
    }
    wf_free(joined);
    if (rc != 0) {
        su_service_free(out);
    }
    return rc;
}

static inline void su_env_set(su_env_t *e, const char *name, size_t nl, const char *value)
{
    for (int i = 0; i < e->n; i++) {
        if (strlen(e->name[i]) == nl && memcmp(e->name[i], name, nl) == 0) {
            wf_free(e->value[i]);
            e->value[i] = su_strdup(value);
            return;
        }
    }
    if (e->n == SU_MAX_VARS) {
        fprintf(stderr, "too many variables\n");
        abort();
    }
    e->name[e->n] = wf_malloc(nl + 1);
    memcpy(e->name[e->n], name, nl);
    e->name[e->n][nl] = '\0';
    e->value[e->n++] = su_strdup(value);
}

static inline const char *su_env_get(const su_env_t *e, const char *name, size_t nl)
{
    for (int i = 0; i < e->n; i++) {
        if (strlen(e->name[i]) == nl && memcmp(e->name[i], name, nl) == 0) {
            return e->value[i];
        }
    }
    return "";
}

static inline void su_env_free(su_env_t *e)
{
    for (int i = 0; i < e->n; i++) {
        wf_free(e->name[i]);
        wf_free(e->value[i]);
    }
    e->n = 0;
}

static inline bool su_valid_name(const char *s, size_t n)
{
    if (n == 0 || isdigit((unsigned char)s[0])) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '_') {
            return false;
        }
    }
    return true;
}

/* Environment=: whitespace-separated NAME=VALUE words (no quotes here). 0 or -1. */
static inline int su_env_assign(su_env_t *e, const char *value)
{
    char *copy = su_strdup(value);
    int rc = 0;
    char *save = NULL;
    for (char *w = strtok_r(copy, " \t", &save); w != NULL; w = strtok_r(NULL, " \t", &save)) {
        char *eq = strchr(w, '=');
        if (eq == NULL || !su_valid_name(w, (size_t)(eq - w)) || strpbrk(w, "\"'\\") != NULL) {
            fprintf(stderr, "Environment= word not understood: %s\n", w);
            rc = -1;
            break;
        }
        su_env_set(e, w, (size_t)(eq - w), eq + 1);
    }
    wf_free(copy);
    return rc;
}

/*
 * An environment file's text: NAME=VALUE lines, blank lines and #/; comments; whitespace around
 * the line is dropped. Quotes, backslashes and "$" in values are refused (systemd gives them a
 * meaning this reader does not implement). 0 or -1.
 */
static inline int su_env_file(su_env_t *e, const char *text)
{
    char *copy = su_strdup(text);
    int rc = 0;
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        while (isspace((unsigned char)*line)) {
            line++;
        }
        size_t len = strlen(line);
        while (len > 0 && isspace((unsigned char)line[len - 1])) {
            line[--len] = '\0';
        }
        if (len == 0 || *line == '#' || *line == ';') {
            continue;
        }
        char *eq = strchr(line, '=');
        if (eq == NULL || !su_valid_name(line, (size_t)(eq - line)) ||
            strpbrk(eq + 1, "\"'\\$") != NULL) {
            fprintf(stderr, "environment file line not understood: %s\n", line);
            rc = -1;
            break;
        }
        su_env_set(e, line, (size_t)(eq - line), eq + 1);
    }
    wf_free(copy);
    return rc;
}

/*
 * ExecStart= into argv (wf_malloc'ed strings, NULL-terminated; *argc set): split on
 * whitespace, "${NAME}" replaced inside a word, a word "$NAME" split into the value's words.
 * 0 or -1.
 */
static inline int su_exec_argv(const char *line, const su_env_t *e, char **argv, int *argc)
{
    char *copy = su_strdup(line);
    int n = 0, rc = 0;
    char *wsave = NULL;
    for (char *w = strtok_r(copy, " \t", &wsave); w != NULL && rc == 0;
         w = strtok_r(NULL, " \t", &wsave)) {
        if (n == 0 && strchr("-@+!:", w[0]) != NULL) {
            fprintf(stderr, "ExecStart prefix not understood: %s\n", w);
            rc = -1;
            break;
        }
        if (strpbrk(w, "\"'\\;") != NULL) {
            fprintf(stderr, "ExecStart word not understood: %s\n", w);
            rc = -1;
            break;
        }
        if (w[0] == '$' && w[1] != '{') {
            if (!su_valid_name(w + 1, strlen(w + 1))) {
                fprintf(stderr, "ExecStart word not understood: %s\n", w);
                rc = -1;
                break;
            }
            char *v = su_strdup(su_env_get(e, w + 1, strlen(w + 1)));
            char *save = NULL;
            for (char *x = strtok_r(v, " \t", &save); x != NULL; x = strtok_r(NULL, " \t", &save)) {
                if (n + 1 >= SU_MAX_ARGS) {
                    rc = -1;
                    break;
                }
                argv[n++] = su_strdup(x);
            }
            wf_free(v);
            continue;
        }
        char buf[4096];
        size_t o = 0;
        for (const char *p = w; *p && rc == 0;) {
            if (p[0] == '$' && p[1] == '{') {
                const char *end = strchr(p, '}');
                if (end == NULL || !su_valid_name(p + 2, (size_t)(end - p - 2))) {
                    rc = -1;
                    break;
                }
                const char *v = su_env_get(e, p + 2, (size_t)(end - p - 2));
                o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s", v);
                p = end + 1;
            } else if (p[0] == '$') {
                fprintf(stderr, "ExecStart word not understood ($ inside a word): %s\n", w);
                rc = -1;
            } else {
                buf[o++] = *p++;
            }
            if (o >= sizeof(buf) - 1) {
                rc = -1;
            }
        }
        buf[o < sizeof(buf) ? o : sizeof(buf) - 1] = '\0';
        if (rc == 0 && n + 1 < SU_MAX_ARGS) {
            argv[n++] = su_strdup(buf);
        }
    }
    argv[n] = NULL;
    *argc = n;
    wf_free(copy);
    if (rc != 0) {
        for (int i = 0; i < n; i++) {
            wf_free(argv[i]);
        }
        *argc = 0;
        argv[0] = NULL;
    }
    return rc;
}

#endif
