/*
 * cp_cli.h - the kubectl-like commands of `weft`: apply, get, delete, describe, workloads,
 * proxy-status and analyze, talking to `weft control` over its HTTP API with libcurl.
 *
 * The connection is `--control URL`, else $WEFT_CONTROL, else http://127.0.0.1:15010; the
 * admin token is read from `--token-file F`, else $WEFT_TOKEN_FILE, else
 * ./weft-control/admin-token (the default data directory of `weft control`). Files given to
 * apply and delete are parsed and validated locally (cp_yaml, cp_istio) before anything is
 * sent, so an error names file:line:column and the field path and nothing is applied.
 *
 * Exit status as kubectl's: 0 success, 1 an error (one line on stderr), 2 a usage error.
 * The output helpers (AGE, tables, YAML) are exposed for the tests. Single-threaded.
 */
#ifndef CP_CLI_H
#define CP_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cp_kinds.h"

#define CP_CLI_DEFAULT_CONTROL "http://127.0.0.1:15010"
#define CP_CLI_DEFAULT_TOKEN_FILE "weft-control/admin-token"
#define CP_CLI_MAX_ARGS 64

/* Run one command; argv[0] is its name ("apply", "get", ...). Returns the exit status. */
int cp_cli_main(int argc, char **argv);

/* What get, delete and describe act on: every object of a kind, or one by name. */
typedef struct {
    const cp_kind_info_t *k;
    char name[254]; /* "" = every object of the kind (get only) */
} cp_cli_target_t;

/* The command line of one command; every string is borrowed from argv. */
typedef struct {
    const char *cmd;
    const char *control;    /* --control */
    const char *token_file; /* --token-file */
    const char *ns;         /* -n, --namespace */
    bool all_ns;            /* -A, --all-namespaces */
    const char *output;     /* -o, --output: yaml, json, wide or name; NULL for a table */
    bool ignore_not_found;  /* --ignore-not-found */
    bool help;              /* -h, --help */
    const char *files[CP_CLI_MAX_ARGS]; /* -f, --filename (repeatable) */
    size_t nfiles;
    const char *pos[CP_CLI_MAX_ARGS]; /* positional arguments */
    size_t npos;
    /* get, delete, describe: the positionals resolved, `KIND[,KIND...] [NAME...]` (each kind
     * with each name, kind by kind) or `KIND/NAME...` */
    cp_cli_target_t targets[CP_CLI_MAX_ARGS];
    size_t ntargets;
} cp_cli_args_t;

/*
 * Parse argv[1..argc) of command argv[0] into a. Flags may come before or after positional
 * arguments, as kubectl takes them; `--` ends the flags. Returns 0, or WF_E_INVAL with one
 * sentence in err (an unknown command or flag, with the nearest valid name; a flag the command
 * does not take; a missing value; a bad -o; -n with -A; an unknown kind; wrong positional
 * arguments).
 */
int cp_cli_parse_args(int argc, char **argv, cp_cli_args_t *a, char *err, size_t errlen);

/* An age as kubectl prints it (apimachinery's HumanDuration): "45s", "3m20s", "2h", "5d". */
void cp_cli_age(int64_t ms, char *out, size_t len);

/* Seconds since the epoch of an RFC 3339 UTC timestamp ("2026-01-02T03:04:05Z"); -1 if bad. */
int64_t cp_cli_parse_time(const char *s);

/*
 * A table printed as kubectl does: an upper-case header row, every column as wide as its
 * widest cell plus three spaces, the last one unpadded. Cells are copied.
 */
typedef struct cp_cli_table cp_cli_table_t;
cp_cli_table_t *cp_cli_table_new(size_t ncols, const char *const *headers);
void cp_cli_table_add(cp_cli_table_t *t, const char *const *cells);
size_t cp_cli_table_rows(const cp_cli_table_t *t);
void cp_cli_table_print(const cp_cli_table_t *t, FILE *out);
void cp_cli_table_free(cp_cli_table_t *t);

/*
 * Print v as block YAML (mappings with their keys sorted, sequences as "- "), the way
 * `kubectl get -o yaml` does. A string that YAML would read as something else (empty, a
 * number, true/false/yes/no/on/off/null/~, leading indicator, ": ", " #", surrounding spaces,
 * control characters) is written double-quoted, so the output parses back to v.
 */
void cp_cli_print_yaml(FILE *out, const json_t *v);

#endif
