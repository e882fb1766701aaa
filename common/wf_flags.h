/*
 * wf_flags.h - declarative flag tables: one table per command drives parsing, defaults,
 * `--help` and the flag reference in docs/operations.md.
 *
 *   typedef struct { char *listen; int64_t retention_ms; bool verbose; } my_cfg_t;
 *   static const wf_flag_t my_flags[] = {
 *       {"listen", WF_FLAG_STR, "127.0.0.1:20001", offsetof(my_cfg_t, listen), "address to serve"},
 *       {"retention", WF_FLAG_DURATION, "15d", offsetof(my_cfg_t, retention_ms), "keep data"},
 *       {"verbose", WF_FLAG_BOOL, "false", offsetof(my_cfg_t, verbose), "log more"},
 *       {NULL, 0, NULL, 0, NULL},
 *   };
 *
 * Accepted forms: `--name value`, `--name=value`, and for booleans `--name` alone. Parsing stops
 * at `--` or at the first argument that does not start with `--`; the index of the first
 * positional argument is returned through *argi. Unknown flags are errors, and the message
 * names the nearest known flag. Strings are owned by the config afterwards (free with
 * wf_flags_free). cfg must be zero-initialised before the first parse.
 */
#ifndef WF_FLAGS_H
#define WF_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    WF_FLAG_STR,      /* char *  (owned copy) */
    WF_FLAG_INT,      /* int64_t */
    WF_FLAG_BOOL,     /* bool: true/false/1/0/yes/no */
    WF_FLAG_DURATION, /* int64_t milliseconds: "500ms", "15s", "5m", "2h", "15d", "1w", "1y" */
    WF_FLAG_SIZE,     /* int64_t bytes: "512", "64KiB", "16MiB", "1GiB", "10MB" */
} wf_flag_type_t;

typedef struct {
    const char *name; /* without the leading dashes; NULL ends the table */
    wf_flag_type_t type;
    const char *def; /* default in the flag's own syntax; NULL = none (zero / NULL) */
    size_t offset;   /* of the field in the config struct */
    const char *help;
} wf_flag_t;

/*
 * Apply defaults, then parse argv[1..] into cfg. Returns 0, or WF_E_INVAL / WF_E_UNKNOWN_FLAG
 * with a message in err (a sentence, NUL-terminated). When `--help` or `-h` is seen, returns 1
 * without parsing further.
 */
int wf_flags_parse(const wf_flag_t *table, void *cfg, int argc, char **argv, int *argi, char *err,
                   size_t errlen);
/* Print "  --name VALUE   help (default: x)" lines for every flag. */
void wf_flags_print_help(const wf_flag_t *table, FILE *out);
/* Free the strings the table owns inside cfg. */
void wf_flags_free(const wf_flag_t *table, void *cfg);

int wf_parse_duration_ms(const char *s, int64_t *out);
int wf_parse_size(const char *s, int64_t *out);
int wf_parse_bool(const char *s, bool *out);

#endif
