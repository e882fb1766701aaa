/*
 * test_docs.c - docs/operations.md keeps up with the binary. For every command `weft --help`
 * lists, `weft <command> --help` is run and every flag it defines (a help line starting with
 * `--name` or `-x, --name`) must be written in that command's section of operations.md; a
 * command without a section fails too. In the other direction, a flag named in the first cell
 * of a table row of a command's section must be one that command has (`--name-*` in a row: a
 * flag starting with `name-`), so that a removed or renamed flag does not stay documented.
 *
 * Sections: a `## ` heading starting with `weft ` names the commands it documents, separated
 * by commas (`## weft apply, get, delete, ...`: the control plane's CLI commands share one
 * section, as they share their flags); the section runs to the next `## ` heading, so its
 * `###` subsections belong to it. A flag counts as written when `--name` appears in the
 * section followed by a character that cannot continue a flag name (`--remote-write` is not
 * `--remote-write-url`).
 *
 * A row whose default is one code span (`| `--retention` | `15d` |`) must agree with the
 * "(default: 15d)" of the flag's help line.
 *
 * The last test removes one flag's row from a copy of the document and checks that the
 * checker names that flag, so that a checker which never fails is caught.
 */
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wt_util.h"

#include <libgen.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#define MAX_COMMANDS 64
#define MAX_FLAGS 96
#define DEFAULT_LEN 96
#define MAX_SECTIONS 64
#define MAX_NAMES 16
#define NAME_LEN 64

typedef struct {
    char name[NAME_LEN];
    int n_flags;
    char flags[MAX_FLAGS][NAME_LEN];       /* without the leading dashes */
    char defaults[MAX_FLAGS][DEFAULT_LEN]; /* the help line's "(default: X)" at its end, or "" */
} cmd_t;

typedef struct {
    int n_names;
    char names[MAX_NAMES][NAME_LEN]; /* commands the heading names */
    const char *start, *end;         /* the section's text, heading included */
} section_t;

typedef struct {
    char *dir; /* scratch directory for the commands' output */
    char *doc; /* docs/operations.md */
    int n_cmds;
    cmd_t cmds[MAX_COMMANDS];
} docs_fx_t;

/* A flag name starts with a letter or digit and goes on with those and '-'. */
static bool is_flag_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_flag_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/* Run `weft args...` and return what it printed on stdout and stderr (wf_free it). */
static char *weft_output(const docs_fx_t *fx, const char *cmd, const char *arg)
{
    char log[4096];
    /* one file per command: the child's output is appended to it */
    snprintf(log, sizeof(log), "%s/%s%s.txt", fx->dir, cmd, arg != NULL ? arg : "");
    char *argv[] = {(char *)wt_weft_bin(), (char *)cmd, (char *)arg, NULL};
    pid_t pid = wt_spawn(argv, log);
    assert_true(pid > 0);
    int st = wt_wait(pid, 30000);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fail_msg("weft %s %s: exit status %d", cmd, arg != NULL ? arg : "", st);
    }
    char *text = wt_read_file(log, NULL);
    assert_non_null(text);
    return text;
}

/* The command names of `weft --help`'s "Commands:" list, skipping those not built. */
static void read_commands(docs_fx_t *fx)
{
    char *help = weft_output(fx, "--help", NULL);
    const char *p = strstr(help, "\nCommands:\n");
    assert_non_null(p);
    p += strlen("\nCommands:\n");
    while (p[0] == ' ' && p[1] == ' ') {
        const char *eol = strchr(p, '\n');
        assert_non_null(eol);
        p += 2;
        size_t n = strcspn(p, " \n");
        assert_true(n > 0 && n < NAME_LEN);
        if (memmem(p, (size_t)(eol - p), "(not built yet)", 15) == NULL) {
            assert_true(fx->n_cmds < MAX_COMMANDS);
            cmd_t *c = &fx->cmds[fx->n_cmds++];
            memcpy(c->name, p, n);
            c->name[n] = '\0';
        }
        p = eol + 1;
    }
    wf_free(help);
    /* weft's own commands, at least: a parse that found none would make every check pass. */
    assert_true(fx->n_cmds >= 10);
}

/* The "(default: X)" that ends a wf_flags help line, into out ("" when there is none). */
static void read_default(const char *line, const char *eol, char out[DEFAULT_LEN])
{
    static const char tag[] = "(default: ";
    out[0] = '\0';
    if (eol <= line || eol[-1] != ')') {
        return;
    }
    const char *d = NULL;
    for (const char *p = line; p + sizeof(tag) - 1 < eol; p++) {
        if (memcmp(p, tag, sizeof(tag) - 1) == 0) {
            d = p + sizeof(tag) - 1;
        }
    }
    if (d != NULL && (size_t)(eol - 1 - d) < DEFAULT_LEN) {
        memcpy(out, d, (size_t)(eol - 1 - d));
        out[eol - 1 - d] = '\0';
    }
}

/* The flags `weft <cmd> --help` defines: lines whose first word is `--name` or `-x, --name`. */
static void read_flags(docs_fx_t *fx, cmd_t *c)
{
    char *help = weft_output(fx, c->name, "--help");
    for (const char *line = help; *line != '\0';) {
        const char *eol = strchr(line, '\n');
        const char *next = eol != NULL ? eol + 1 : line + strlen(line);
        const char *p = line;
        if (*p == ' ') {
            while (*p == ' ') {
                p++;
            }
            if (p[0] == '-' && p[1] != '-' && p[1] != '\0' && p[2] == ',' && p[3] == ' ') {
                p += 4;
            }
            if (p[0] == '-' && p[1] == '-' && is_flag_start(p[2])) {
                size_t n = 0;
                while (is_flag_char(p[2 + n])) {
                    n++;
                }
                if (n < NAME_LEN && !(n == 4 && memcmp(p + 2, "help", 4) == 0)) {
                    assert_true(c->n_flags < MAX_FLAGS);
                    memcpy(c->flags[c->n_flags], p + 2, n);
                    c->flags[c->n_flags][n] = '\0';
                    read_default(line, eol != NULL ? eol : next, c->defaults[c->n_flags]);
                    c->n_flags++;
                }
            }
        }
        line = next;
    }
    wf_free(help);
}

/* The command names of a `## weft a, b, c` heading (line without its "## "), or 0 names. */
static void parse_heading(const char *h, const char *eol, section_t *s)
{
    s->n_names = 0;
    const char *p = h;
    bool first = true;
    while (p < eol) {
        while (p < eol && (*p == ' ' || *p == '`' || *p == ',')) {
            p++;
        }
        if (p + 5 <= eol && memcmp(p, "weft ", 5) == 0) {
            p += 5;
        } else if (first) {
            return; /* not a command section */
        }
        first = false;
        while (p < eol && *p == '`') {
            p++;
        }
        const char *w = p;
        while (p < eol && is_flag_char(*p)) {
            p++;
        }
        if (p > w && (size_t)(p - w) < NAME_LEN && s->n_names < MAX_NAMES) {
            memcpy(s->names[s->n_names], w, (size_t)(p - w));
            s->names[s->n_names++][p - w] = '\0';
        }
        /* the rest of this comma-separated item is prose: "(sidecar and gateway)" */
        while (p < eol && *p != ',') {
            p++;
        }
    }
}

/* The `## weft ...` sections of doc. */
static int find_sections(const char *doc, section_t *secs, int cap)
{
    int n = 0;
    section_t *open = NULL;
    for (const char *line = doc; *line != '\0';) {
        const char *eol = strchr(line, '\n');
        if (eol == NULL) {
            eol = line + strlen(line);
        }
        if (strncmp(line, "## ", 3) == 0) {
            if (open != NULL) {
                open->end = line;
                open = NULL;
            }
            section_t s = {0};
            parse_heading(line + 3, eol, &s);
            if (s.n_names > 0) {
                assert_true(n < cap);
                s.start = line;
                secs[n] = s;
                open = &secs[n++];
            }
        }
        line = *eol != '\0' ? eol + 1 : eol;
    }
    if (open != NULL) {
        open->end = doc + strlen(doc);
    }
    return n;
}

static bool section_names(const section_t *s, const char *cmd)
{
    for (int i = 0; i < s->n_names; i++) {
        if (strcmp(s->names[i], cmd) == 0) {
            return true;
        }
    }
    return false;
}

/* Whether `--flag` occurs in [start, end) as a whole flag name. */
static bool mentions(const char *start, const char *end, const char *flag)
{
    size_t fl = strlen(flag);
    for (const char *p = start; p + 2 + fl <= end; p++) {
        p = memmem(p, (size_t)(end - p), "--", 2);
        if (p == NULL || p + 2 + fl > end) {
            return false;
        }
        if ((p == start || !is_flag_char(p[-1])) && memcmp(p + 2, flag, fl) == 0 &&
            (p + 2 + fl == end || !is_flag_char(p[2 + fl]))) {
            return true;
        }
    }
    return false;
}

/* Whether c has the flag; with prefix, whether one of its flags starts with it. */
static bool has_flag_like(const cmd_t *c, const char *flag, bool prefix)
{
    size_t fl = strlen(flag);
    for (int i = 0; i < c->n_flags; i++) {
        if (prefix ? strncmp(c->flags[i], flag, fl) == 0 : strcmp(c->flags[i], flag) == 0) {
            return true;
        }
    }
    return false;
}

static bool has_flag(const cmd_t *c, const char *flag)
{
    return has_flag_like(c, flag, false);
}

static const cmd_t *find_cmd(const docs_fx_t *fx, const char *name)
{
    for (int i = 0; i < fx->n_cmds; i++) {
        if (strcmp(fx->cmds[i].name, name) == 0) {
            return &fx->cmds[i];
        }
    }
    return NULL;
}

/*
 * Every command has a section, and every flag of it is written in one of its sections. Each
 * problem is one line in out ("weft collector --retention: ..."); returns how many.
 */
static int check_flags_documented(const docs_fx_t *fx, const char *doc, wf_buf_t *out)
{
    section_t secs[MAX_SECTIONS];
    int n_secs = find_sections(doc, secs, MAX_SECTIONS), problems = 0;
    for (int i = 0; i < fx->n_cmds; i++) {
        const cmd_t *c = &fx->cmds[i];
        bool has_section = false;
        for (int s = 0; s < n_secs; s++) {
            has_section |= section_names(&secs[s], c->name);
        }
        if (!has_section) {
            wf_buf_printf(out, "weft %s: no \"## weft %s\" section in docs/operations.md\n",
                          c->name, c->name);
            problems++;
            continue;
        }
        for (int f = 0; f < c->n_flags; f++) {
            bool found = false;
            for (int s = 0; s < n_secs && !found; s++) {
                found = section_names(&secs[s], c->name) &&
                        mentions(secs[s].start, secs[s].end, c->flags[f]);
            }
            if (!found) {
                wf_buf_printf(out, "weft %s --%s: not in docs/operations.md's section of weft %s\n",
                              c->name, c->flags[f], c->name);
                problems++;
            }
        }
    }
    return problems;
}

/*
 * A flag in the first cell of a table row of a command section is a flag of one of the
 * section's commands. Each problem is one line in out; returns how many.
 */
static int check_documented_flags_exist(const docs_fx_t *fx, const char *doc, wf_buf_t *out)
{
    section_t secs[MAX_SECTIONS];
    int n_secs = find_sections(doc, secs, MAX_SECTIONS), problems = 0;
    for (int s = 0; s < n_secs; s++) {
        const section_t *sec = &secs[s];
        bool known = false;
        for (int k = 0; k < sec->n_names; k++) {
            known |= find_cmd(fx, sec->names[k]) != NULL;
        }
        if (!known) {
            /* a command that is documented ahead of being built: nothing to compare with */
            continue;
        }
        for (const char *line = sec->start; line < sec->end;) {
            const char *eol = memchr(line, '\n', (size_t)(sec->end - line));
            eol = eol != NULL ? eol : sec->end;
            if (line[0] == '|') {
                const char *cell_end = memchr(line + 1, '|', (size_t)(eol - line - 1));
                cell_end = cell_end != NULL ? cell_end : eol;
                for (const char *p = line + 1; p + 2 < cell_end; p++) {
                    if (p[0] != '-' || p[1] != '-' || !is_flag_start(p[2]) || is_flag_char(p[-1])) {
                        continue;
                    }
                    char flag[NAME_LEN];
                    size_t n = 0;
                    while (p + 2 + n < cell_end && is_flag_char(p[2 + n]) && n + 1 < NAME_LEN) {
                        flag[n] = p[2 + n];
                        n++;
                    }
                    flag[n] = '\0';
                    /* `--remote-write-*` names a family of flags: one of them must exist */
                    bool prefix = p + 2 + n < cell_end && p[2 + n] == '*';
                    /* every command takes --help; read_flags leaves it out */
                    bool exists = strcmp(flag, "help") == 0;
                    for (int k = 0; k < sec->n_names && !exists; k++) {
                        const cmd_t *c = find_cmd(fx, sec->names[k]);
                        exists = c != NULL && has_flag_like(c, flag, prefix);
                    }
                    if (!exists) {
                        wf_buf_printf(out,
                                      "docs/operations.md documents --%s under \"## weft %s\", "
                                      "but no command of that section has it\n",
                                      flag, sec->names[0]);
                        problems++;
                    }
                    p += 1 + n;
                }
            }
            line = eol < sec->end ? eol + 1 : sec->end;
        }
    }
    return problems;
}

/*
 * A table row written `| `--name` | `value` | ...` (one flag, one code span as its default)
 * agrees with the default `weft <cmd> --help` prints for that flag, when it prints one. Rows
 * whose default is prose ("required", "`$WEFT_CONTROL`, else ...") are not compared. Each
 * problem is one line in out; returns how many.
 */
static int check_defaults(const docs_fx_t *fx, const char *doc, wf_buf_t *out)
{
    section_t secs[MAX_SECTIONS];
    int n_secs = find_sections(doc, secs, MAX_SECTIONS), problems = 0;
    for (int s = 0; s < n_secs; s++) {
        const section_t *sec = &secs[s];
        for (const char *line = sec->start; line < sec->end;) {
            const char *eol = memchr(line, '\n', (size_t)(sec->end - line));
            eol = eol != NULL ? eol : sec->end;
            char flag[NAME_LEN], value[DEFAULT_LEN];
            int fn = 0, vn = 0;
            /* "| `--" flag "` | `" value "` |" */
            if (sscanf(line, "| `--%63[a-z0-9-]` | `%n", flag, &fn) == 1 && fn > 0 &&
                line + fn < eol) {
                const char *v = line + fn;
                const char *tick = memchr(v, '`', (size_t)(eol - v));
                if (tick != NULL && tick + 3 < eol && memcmp(tick, "` |", 3) == 0 &&
                    (size_t)(tick - v) < DEFAULT_LEN &&
                    memchr(v, '|', (size_t)(tick - v)) == NULL) {
                    vn = (int)(tick - v);
                    memcpy(value, v, (size_t)vn);
                    value[vn] = '\0';
                }
            }
            for (int k = 0; vn > 0 && k < sec->n_names; k++) {
                const cmd_t *c = find_cmd(fx, sec->names[k]);
                for (int f = 0; c != NULL && f < c->n_flags; f++) {
                    if (strcmp(c->flags[f], flag) == 0 && c->defaults[f][0] != '\0' &&
                        strcmp(c->defaults[f], value) != 0) {
                        wf_buf_printf(out,
                                      "weft %s --%s: docs/operations.md says the default is "
                                      "\"%s\", --help says \"%s\"\n",
                                      c->name, flag, value, c->defaults[f]);
                        problems++;
                    }
                }
            }
            line = eol < sec->end ? eol + 1 : sec->end;
        }
    }
    return problems;
}

static int setup(void **state)
{
    static docs_fx_t fx;
    memset(&fx, 0, sizeof(fx));
    fx.dir = wt_tmpdir("weft-docs");
    char src[4096], path[4200];
    snprintf(src, sizeof(src), "%s", __FILE__);
    snprintf(path, sizeof(path), "%s/../../docs/operations.md", dirname(src));
    fx.doc = wt_read_file(path, NULL);
    if (fx.doc == NULL) {
        fprintf(stderr, "cannot read %s\n", path);
        return -1;
    }
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    docs_fx_t *fx = *state;
    wt_rm_rf(fx->dir);
    wf_free(fx->dir);
    wf_free(fx->doc);
    return 0;
}

static void load_commands(docs_fx_t *fx)
{
    if (fx->n_cmds > 0) {
        return;
    }
    read_commands(fx);
    for (int i = 0; i < fx->n_cmds; i++) {
        read_flags(fx, &fx->cmds[i]);
    }
    /* The collector's flag table is long: finding few flags means the help format changed. */
    const cmd_t *col = find_cmd(fx, "collector");
    assert_non_null(col);
    assert_true(col->n_flags >= 30);
    assert_true(has_flag(col, "retention"));
    const cmd_t *get = find_cmd(fx, "get");
    assert_non_null(get);
    assert_true(has_flag(get, "all-namespaces") && has_flag(get, "token-file"));
}

static void test_every_flag_is_documented(void **state)
{
    docs_fx_t *fx = *state;
    load_commands(fx);
    wf_buf_t out;
    wf_buf_init(&out);
    int problems = check_flags_documented(fx, fx->doc, &out);
    if (problems > 0) {
        fprintf(stderr, "%s", wf_buf_cstr(&out));
    }
    wf_buf_free(&out);
    assert_int_equal(problems, 0);
}

static void test_documented_flags_exist(void **state)
{
    docs_fx_t *fx = *state;
    load_commands(fx);
    wf_buf_t out;
    wf_buf_init(&out);
    int problems = check_documented_flags_exist(fx, fx->doc, &out);
    if (problems > 0) {
        fprintf(stderr, "%s", wf_buf_cstr(&out));
    }
    wf_buf_free(&out);
    assert_int_equal(problems, 0);
}

static void test_defaults_agree(void **state)
{
    docs_fx_t *fx = *state;
    load_commands(fx);
    const cmd_t *col = find_cmd(fx, "collector");
    for (int f = 0; f < col->n_flags; f++) {
        if (strcmp(col->flags[f], "retention") == 0) {
            assert_string_equal(col->defaults[f], "15d");
        }
    }
    wf_buf_t out;
    wf_buf_init(&out);
    int problems = check_defaults(fx, fx->doc, &out);
    if (problems > 0) {
        fprintf(stderr, "%s", wf_buf_cstr(&out));
    }
    wf_buf_free(&out);
    assert_int_equal(problems, 0);
}

/*
 * The checks fail on a document that lost a row, a section, or gained a stale flag: each change
 * adds its own problem to those the real document has (none, when the tests above pass), so
 * this test stays independent of them.
 */
static void test_checks_can_fail(void **state)
{
    docs_fx_t *fx = *state;
    load_commands(fx);
    wf_buf_t out;
    wf_buf_init(&out);
    int base_missing = check_flags_documented(fx, fx->doc, &out);
    wf_buf_reset(&out);
    int base_stale = check_documented_flags_exist(fx, fx->doc, &out);
    wf_buf_reset(&out);

    /* the collector's --retention row removed (the flag is written nowhere else in its
     * section: the count below proves it) */
    const char *row = strstr(fx->doc, "\n| `--retention` |");
    assert_non_null(row);
    const char *row_end = strchr(row + 1, '\n');
    assert_non_null(row_end);
    wf_buf_append(&out, fx->doc, (size_t)(row - fx->doc));
    wf_buf_puts(&out, row_end);
    char *doc = (char *)wf_buf_detach(&out, NULL);
    wf_buf_init(&out);
    assert_int_equal(check_flags_documented(fx, doc, &out), base_missing + 1);
    assert_non_null(strstr(wf_buf_cstr(&out), "weft collector --retention: not in "
                                              "docs/operations.md's section of weft collector\n"));
    wf_free(doc);

    /* a command's heading renamed: the command has no section */
    wf_buf_reset(&out);
    const char *h = strstr(fx->doc, "\n## weft demo-app\n");
    assert_non_null(h);
    wf_buf_append(&out, fx->doc, (size_t)(h - fx->doc));
    wf_buf_puts(&out, "\n## The demo application\n");
    wf_buf_puts(&out, h + strlen("\n## weft demo-app\n"));
    doc = (char *)wf_buf_detach(&out, NULL);
    wf_buf_init(&out);
    assert_true(check_flags_documented(fx, doc, &out) > base_missing);
    assert_non_null(
        strstr(wf_buf_cstr(&out),
               "weft demo-app: no \"## weft demo-app\" section in docs/operations.md\n"));
    wf_free(doc);

    /* a row for a flag the command does not have */
    wf_buf_reset(&out);
    wf_buf_append(&out, fx->doc, (size_t)(row - fx->doc));
    wf_buf_puts(&out, "\n| `--retention-size` | none | a flag that does not exist |");
    wf_buf_puts(&out, row);
    doc = (char *)wf_buf_detach(&out, NULL);
    wf_buf_init(&out);
    assert_int_equal(check_documented_flags_exist(fx, doc, &out), base_stale + 1);
    assert_non_null(strstr(wf_buf_cstr(&out), "docs/operations.md documents --retention-size under "
                                              "\"## weft collector\", but no command of that "
                                              "section has it\n"));
    wf_free(doc);

    /* a default written wrong */
    wf_buf_reset(&out);
    int base_defaults = check_defaults(fx, fx->doc, &out);
    wf_buf_reset(&out);
    const char *def = strstr(fx->doc, "\n| `--retention` | `15d` |");
    assert_non_null(def);
    wf_buf_append(&out, fx->doc, (size_t)(def - fx->doc));
    wf_buf_puts(&out, "\n| `--retention` | `30d` |");
    wf_buf_puts(&out, def + strlen("\n| `--retention` | `15d` |"));
    doc = (char *)wf_buf_detach(&out, NULL);
    wf_buf_init(&out);
    assert_int_equal(check_defaults(fx, doc, &out), base_defaults + 1);
    assert_non_null(strstr(wf_buf_cstr(&out), "weft collector --retention: docs/operations.md "
                                              "says the default is \"30d\", --help says "
                                              "\"15d\"\n"));
    wf_free(doc);
    wf_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_flag_is_documented),
        cmocka_unit_test(test_documented_flags_exist),
        cmocka_unit_test(test_defaults_agree),
        cmocka_unit_test(test_checks_can_fail),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
