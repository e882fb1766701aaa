/*
 * cp_cli.c - `weft apply|get|delete|describe|workloads|proxy-status|analyze|ca`: the command
 * line, the files given with -f (parsed and validated here, before anything is sent), the
 * HTTP exchanges with `weft control` (libcurl, one handle so requests share a connection) and
 * kubectl's wording of results and errors (see cp_cli.h).
 */
#include "cp_cli.h"

#include "cp_istio.h"
#include "cp_kinds.h"
#include "cp_token.h"
#include "cp_yaml.h"

#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_clock.h"
#include "wf_err.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- commands and flags ---- */

enum {
    F_CONTROL = 1u << 0,
    F_TOKEN = 1u << 1,
    F_NS = 1u << 2,
    F_ALL = 1u << 3,
    F_OUTPUT = 1u << 4,
    F_FILE = 1u << 5,
    F_IGNORE = 1u << 6,
    F_HELP = 1u << 7,
    F_CONN = F_CONTROL | F_TOKEN | F_HELP,
};

typedef enum {
    CMD_APPLY,
    CMD_GET,
    CMD_DELETE,
    CMD_DESCRIBE,
    CMD_WORKLOADS,
    CMD_PROXY_STATUS,
    CMD_ANALYZE,
    CMD_CA,
    CMD_COUNT
} cmd_id_t;

typedef struct {
    const char *name;
    unsigned flags;      /* the F_* it takes */
    const char *outputs; /* the -o values it takes, space-separated */
    const char *usage;
    const char *summary;
} cmd_t;

static const cmd_t cmds[CMD_COUNT] = {
    [CMD_APPLY] = {"apply", F_CONN | F_FILE | F_NS, "", "weft apply -f FILE|DIR|- [-n NS]",
                   "Create or update Istio resources from YAML or JSON, all in one transaction."},
    [CMD_GET] =
        {"get", F_CONN | F_NS | F_ALL | F_OUTPUT, "yaml json wide name",
         "weft get KIND[,KIND...] [NAME...] | KIND/NAME... [-n NS | -A] [-o yaml|json|wide|name]",
         "List resources. KIND: vs, dr, gw, se, sidecar, pa, ap (or their singular, "
         "plural or kind.group names)."},
    [CMD_DELETE] = {"delete", F_CONN | F_FILE | F_NS | F_IGNORE, "",
                    "weft delete -f FILE|DIR|- | KIND[,KIND...] NAME... | KIND/NAME... [-n NS] "
                    "[--ignore-not-found]",
                    "Delete resources named in files or on the command line."},
    [CMD_DESCRIBE] = {"describe", F_CONN | F_NS, "",
                      "weft describe KIND NAME... | KIND/NAME... [-n NS]",
                      "Show resources and the validation messages about them."},
    [CMD_WORKLOADS] = {"workloads", F_CONN | F_NS | F_ALL | F_OUTPUT, "yaml json wide",
                       "weft workloads [-n NS | -A] [-o yaml|json]",
                       "List the registered workloads and their leases."},
    [CMD_PROXY_STATUS] = {"proxy-status", F_CONN | F_NS | F_ALL | F_OUTPUT, "yaml json wide",
                          "weft proxy-status [-n NS | -A] [-o yaml|json]",
                          "Show each proxy's configuration version and sync state."},
    [CMD_ANALYZE] = {"analyze", F_CONN | F_NS | F_ALL | F_OUTPUT, "yaml json",
                     "weft analyze [-n NS | -A] [-o yaml|json]",
                     "Print the cross-resource validation messages; exit 1 when one is an "
                     "error."},
    [CMD_CA] = {"ca", F_CONN | F_OUTPUT, "yaml json", "weft ca status|rotate [-o yaml|json]",
                "Show the mesh CA's roots and trust bundle, or start a root rotation."},
};

typedef struct {
    const char *name;
    char short_name; /* 0: none */
    bool value;
    unsigned bit;
    size_t offset; /* of the field in cp_cli_args_t */
    const char *help;
} flag_t;

static const flag_t flags[] = {
    {"control", 0, true, F_CONTROL, offsetof(cp_cli_args_t, control),
     "URL of weft control (default: $WEFT_CONTROL, else " CP_CLI_DEFAULT_CONTROL ")"},
    {"token-file", 0, true, F_TOKEN, offsetof(cp_cli_args_t, token_file),
     "file holding the admin token (default: $WEFT_TOKEN_FILE, else " CP_CLI_DEFAULT_TOKEN_FILE
     ")"},
    {"namespace", 'n', true, F_NS, offsetof(cp_cli_args_t, ns), "namespace (default: default)"},
    {"all-namespaces", 'A', false, F_ALL, offsetof(cp_cli_args_t, all_ns), "every namespace"},
    {"output", 'o', true, F_OUTPUT, offsetof(cp_cli_args_t, output), "output format"},
    {"filename", 'f', true, F_FILE, offsetof(cp_cli_args_t, files),
     "a YAML/JSON file, a directory of *.yaml, *.yml, *.json, or - for standard input"},
    {"ignore-not-found", 0, false, F_IGNORE, offsetof(cp_cli_args_t, ignore_not_found),
     "deleting what does not exist is not an error"},
    {"help", 'h', false, F_HELP, offsetof(cp_cli_args_t, help), "print this help"},
    {NULL, 0, false, 0, 0, NULL},
};

/* Edit distance of two short words, for "did you mean". */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[64];
    if (la >= 63 || lb >= 63) {
        return SIZE_MAX;
    }
    for (size_t j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            best = up + 1 < best ? up + 1 : best;
            best = row[j - 1] + 1 < best ? row[j - 1] + 1 : best;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static const cmd_t *find_cmd(const char *name)
{
    for (size_t i = 0; i < CMD_COUNT; i++) {
        if (strcmp(cmds[i].name, name) == 0) {
            return &cmds[i];
        }
    }
    return NULL;
}

static bool word_in(const char *word, const char *list)
{
    size_t n = strlen(word);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ' ');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, word, n) == 0) {
            return true;
        }
        p += len + (e != NULL);
    }
    return false;
}

/* Store a flag's value (or true) into a. */
static int set_flag(const flag_t *f, const char *value, cp_cli_args_t *a, char *err, size_t errlen)
{
    char *field = (char *)a + f->offset;
    if (!f->value) {
        *(bool *)field = true;
    } else if (f->bit == F_FILE) {
        if (a->nfiles == CP_CLI_MAX_ARGS) {
            snprintf(err, errlen, "more than %d -f flags", CP_CLI_MAX_ARGS);
            return WF_E_INVAL;
        }
        a->files[a->nfiles++] = value;
    } else {
        *(const char **)field = value;
    }
    return 0;
}

/* Resolve one kind word into a->targets' kind, or fail with kubectl's message. */
static const cp_kind_info_t *target_kind(const char *word, size_t len, char *err, size_t errlen)
{
    char w[128];
    const cp_kind_info_t *k = NULL;
    if (len > 0 && len < sizeof(w)) {
        memcpy(w, word, len);
        w[len] = '\0';
        k = cp_kinds_lookup(w);
    }
    if (k == NULL) {
        snprintf(err, errlen,
                 "the server doesn't have a resource type \"%.*s\" (vs, dr, gw, se, sidecar, "
                 "pa, ap)",
                 (int)(len < 100 ? len : 100), word);
    }
    return k;
}

static int add_target(cp_cli_args_t *a, const cp_kind_info_t *k, const char *name, size_t len,
                      char *err, size_t errlen)
{
    if (a->ntargets == CP_CLI_MAX_ARGS) {
        snprintf(err, errlen, "more than %d resources", CP_CLI_MAX_ARGS);
        return WF_E_INVAL;
    }
    if (len >= sizeof(a->targets[0].name)) {
        snprintf(err, errlen, "resource name \"%.40s...\" is longer than 253 characters", name);
        return WF_E_INVAL;
    }
    cp_cli_target_t *t = &a->targets[a->ntargets++];
    t->k = k;
    memcpy(t->name, name, len);
    t->name[len] = '\0';
    return 0;
}

/* The positionals as targets: `KIND[,KIND...] [NAME...]` or `KIND/NAME...`, as kubectl. */
static int parse_targets(cp_cli_args_t *a, char *err, size_t errlen)
{
    if (strchr(a->pos[0], '/') != NULL) {
        for (size_t i = 0; i < a->npos; i++) {
            const char *slash = strchr(a->pos[i], '/');
            if (slash == NULL || slash[1] == '\0') {
                snprintf(err, errlen,
                         "there is no need to specify a resource type as a separate argument "
                         "when passing arguments in resource/name form (\"%s\")",
                         a->pos[i]);
                return WF_E_INVAL;
            }
            const cp_kind_info_t *k =
                target_kind(a->pos[i], (size_t)(slash - a->pos[i]), err, errlen);
            if (k == NULL || add_target(a, k, slash + 1, strlen(slash + 1), err, errlen) < 0) {
                return WF_E_INVAL;
            }
        }
        return 0;
    }
    for (size_t i = 1; i < a->npos; i++) {
        if (strchr(a->pos[i], '/') != NULL) {
            snprintf(err, errlen,
                     "there is no need to specify a resource type as a separate argument when "
                     "passing arguments in resource/name form (\"%s\")",
                     a->pos[i]);
            return WF_E_INVAL;
        }
    }
    for (const char *p = a->pos[0];;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const cp_kind_info_t *k = target_kind(p, len, err, errlen);
        if (k == NULL) {
            return WF_E_INVAL;
        }
        if (a->npos == 1 && add_target(a, k, "", 0, err, errlen) < 0) {
            return WF_E_INVAL;
        }
        for (size_t i = 1; i < a->npos; i++) {
            if (add_target(a, k, a->pos[i], strlen(a->pos[i]), err, errlen) < 0) {
                return WF_E_INVAL;
            }
        }
        if (comma == NULL) {
            return 0;
        }
        p = comma + 1;
    }
}

int cp_cli_parse_args(int argc, char **argv, cp_cli_args_t *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    const cmd_t *cmd = argc > 0 ? find_cmd(argv[0]) : NULL;
    if (cmd == NULL) {
        snprintf(err, errlen, "unknown command \"%s\"", argc > 0 ? argv[0] : "");
        return WF_E_INVAL;
    }
    a->cmd = cmd->name;
    bool flags_done = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (flags_done || arg[0] != '-' || arg[1] == '\0') {
            if (a->npos == CP_CLI_MAX_ARGS) {
                snprintf(err, errlen, "more than %d arguments", CP_CLI_MAX_ARGS);
                return WF_E_INVAL;
            }
            a->pos[a->npos++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            flags_done = true;
            continue;
        }
        const flag_t *f = NULL;
        const char *value = NULL;
        char shown[64];
        if (arg[1] == '-') {
            const char *name = arg + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            for (const flag_t *g = flags; g->name && f == NULL; g++) {
                if (strlen(g->name) == len && strncmp(g->name, name, len) == 0) {
                    f = g;
                }
            }
            snprintf(shown, sizeof(shown), "--%.*s", (int)(len < 40 ? len : 40), name);
            if (f == NULL) {
                char word[64];
                snprintf(word, sizeof(word), "%.*s", (int)(len < 60 ? len : 60), name);
                const flag_t *best = NULL;
                size_t bd = SIZE_MAX;
                for (const flag_t *g = flags; g->name; g++) {
                    size_t d = distance(word, g->name);
                    if ((cmd->flags & g->bit) && d < bd) {
                        bd = d;
                        best = g;
                    }
                }
                if (best != NULL && bd <= 3) {
                    snprintf(err, errlen, "unknown flag %s (did you mean --%s?)", shown,
                             best->name);
                } else {
                    snprintf(err, errlen, "unknown flag %s", shown);
                }
                return WF_E_INVAL;
            }
            if (eq != NULL) {
                if (!f->value) {
                    snprintf(err, errlen, "flag %s takes no value", shown);
                    return WF_E_INVAL;
                }
                value = eq + 1;
            }
        } else {
            for (const flag_t *g = flags; g->name && f == NULL; g++) {
                if (g->short_name == arg[1]) {
                    f = g;
                }
            }
            snprintf(shown, sizeof(shown), "-%c", arg[1]);
            if (f == NULL) {
                snprintf(err, errlen, "unknown shorthand flag %s in %s", shown, arg);
                return WF_E_INVAL;
            }
            if (arg[2] != '\0') {
                if (!f->value) {
                    snprintf(err, errlen, "unknown shorthand flags in %s", arg);
                    return WF_E_INVAL;
                }
                value = arg + 2 + (arg[2] == '=');
            }
        }
        if (!(cmd->flags & f->bit)) {
            snprintf(err, errlen, "weft %s does not take %s", cmd->name, shown);
            return WF_E_INVAL;
        }
        if (f->value && value == NULL) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "flag needs a value: %s", shown);
                return WF_E_INVAL;
            }
            value = argv[++i];
        }
        if (set_flag(f, value, a, err, errlen) < 0) {
            return WF_E_INVAL;
        }
    }
    if (a->help) {
        return 0;
    }
    if (a->output != NULL && !word_in(a->output, cmd->outputs)) {
        snprintf(err, errlen, "unable to match a printer for --output=\"%s\" (allowed: %s)",
                 a->output, cmd->outputs);
        return WF_E_INVAL;
    }
    if (a->ns != NULL && a->all_ns) {
        snprintf(err, errlen, "--namespace and --all-namespaces cannot be used together");
        return WF_E_INVAL;
    }
    if (a->ns != NULL && a->ns[0] == '\0') {
        snprintf(err, errlen, "--namespace: must not be empty");
        return WF_E_INVAL;
    }
    switch ((cmd_id_t)(cmd - cmds)) {
    case CMD_APPLY:
        if (a->nfiles == 0 || a->npos > 0) {
            snprintf(err, errlen, "%s",
                     a->nfiles == 0 ? "must specify -f FILE, DIR or -"
                                    : "unexpected argument after -f");
            return WF_E_INVAL;
        }
        return 0;
    case CMD_DELETE:
        if (a->nfiles > 0 && a->npos > 0) {
            snprintf(err, errlen, "give either -f FILE or KIND NAME..., not both");
            return WF_E_INVAL;
        }
        if (a->nfiles > 0) {
            return 0;
        }
        if (a->npos == 0) {
            snprintf(err, errlen, "must specify -f FILE or KIND NAME...");
            return WF_E_INVAL;
        }
        break;
    case CMD_GET:
    case CMD_DESCRIBE:
        if (a->npos == 0) {
            snprintf(err, errlen, "you must specify the type of resource to %s", cmd->name);
            return WF_E_INVAL;
        }
        break;
    case CMD_CA:
        if (a->npos != 1 ||
            (strcmp(a->pos[0], "status") != 0 && strcmp(a->pos[0], "rotate") != 0)) {
            snprintf(err, errlen, "weft ca takes one argument: status or rotate");
            return WF_E_INVAL;
        }
        return 0;
    default:
        if (a->npos > 0) {
            snprintf(err, errlen, "weft %s takes no arguments (got \"%s\")", cmd->name, a->pos[0]);
            return WF_E_INVAL;
        }
        return 0;
    }
    if (parse_targets(a, err, errlen) < 0) {
        return WF_E_INVAL;
    }
    bool named = a->targets[0].name[0] != '\0';
    if (!named && cmd != &cmds[CMD_GET]) {
        snprintf(err, errlen, "resource(s) were provided, but no name was specified");
        return WF_E_INVAL;
    }
    if (named && a->all_ns) {
        snprintf(err, errlen, "a resource cannot be retrieved by name across all namespaces");
        return WF_E_INVAL;
    }
    return 0;
}

static void print_help(const cmd_t *cmd, FILE *out)
{
    fprintf(out, "%s\n\nUsage: %s\n\nFlags:\n", cmd->summary, cmd->usage);
    for (const flag_t *f = flags; f->name; f++) {
        if (!(cmd->flags & f->bit)) {
            continue;
        }
        char name[48];
        if (f->short_name) {
            snprintf(name, sizeof(name), "-%c, --%s%s", f->short_name, f->name,
                     f->value ? " VALUE" : "");
        } else {
            snprintf(name, sizeof(name), "    --%s%s", f->name, f->value ? " VALUE" : "");
        }
        fprintf(out, "  %-28s %s\n", name, f->help);
    }
}

/* ---- the connection ---- */

typedef struct {
    CURL *curl;
    struct curl_slist *headers;
    char base[1024];
    char token_path[PATH_MAX];
    bool have_token;
    char errbuf[CURL_ERROR_SIZE];
} conn_t;

/* An HTTP answer: status and body. */
typedef struct {
    long status;
    wf_buf_t body;
} answer_t;

#define MAX_ANSWER (256u << 20)

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    wf_buf_t *b = ud;
    if (b->len + size * n > MAX_ANSWER) {
        return 0;
    }
    wf_buf_append(b, p, size * n);
    return size * n;
}

/* Resolve the control URL and the token. 0, or 1 (an error was printed). */
static int conn_open(const cp_cli_args_t *a, conn_t *c)
{
    char token[CP_TOKEN_MAX_LEN + 1], auth[CP_TOKEN_MAX_LEN + 32];
    const char *url = a->control ? a->control : getenv("WEFT_CONTROL");
    if (url == NULL || url[0] == '\0') {
        url = CP_CLI_DEFAULT_CONTROL;
    }
    if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
        strlen(url) >= sizeof(c->base)) {
        fprintf(stderr, "error: --control: \"%s\" is not an http:// or https:// URL\n", url);
        return 1;
    }
    snprintf(c->base, sizeof(c->base), "%s", url);
    for (size_t n = strlen(c->base); n > 0 && c->base[n - 1] == '/'; n--) {
        c->base[n - 1] = '\0';
    }
    const char *tf = a->token_file ? a->token_file : getenv("WEFT_TOKEN_FILE");
    bool explicit_file = tf != NULL && tf[0] != '\0';
    snprintf(c->token_path, sizeof(c->token_path), "%s",
             explicit_file ? tf : CP_CLI_DEFAULT_TOKEN_FILE);
    int rc = cp_token_load(c->token_path, false, token);
    if (rc < 0 && (explicit_file || rc != -ENOENT)) {
        fprintf(stderr, "error: cannot read the admin token from %s: %s\n", c->token_path,
                cp_strerror(rc));
        return 1;
    }
    c->have_token = rc == 0;
    c->curl = curl_easy_init();
    if (c->curl == NULL) {
        explicit_bzero(token, sizeof(token));
        fprintf(stderr, "error: cannot initialise libcurl\n");
        return 1;
    }
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    c->headers = curl_slist_append(c->headers, "Accept: application/json");
    /* No 100-continue round trip: the server answers a refused write before reading it. */
    c->headers = curl_slist_append(c->headers, "Expect:");
    if (c->have_token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        c->headers = curl_slist_append(c->headers, auth);
    }
    WF_ASSERT(c->headers != NULL);
    /* The list holds its own copy; leave no secret behind on the stack. */
    explicit_bzero(token, sizeof(token));
    explicit_bzero(auth, sizeof(auth));
    return 0;
}

static void conn_close(conn_t *c)
{
    curl_slist_free_all(c->headers);
    if (c->curl != NULL) {
        curl_easy_cleanup(c->curl);
    }
}

/* One request; body NULL sends none. 0 with ans filled, or 1 (an error was printed). */
static int http(conn_t *c, const char *method, const char *path, const char *body, answer_t *ans)
{
    char url[2048];
    snprintf(url, sizeof(url), "%s%s", c->base, path);
    wf_buf_init(&ans->body);
    ans->status = 0;
    curl_easy_reset(c->curl);
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, 120000L);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &ans->body);
    curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->errbuf);
    if (body != NULL) {
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    c->errbuf[0] = '\0';
    CURLcode cc = curl_easy_perform(c->curl);
    if (cc != CURLE_OK) {
        fprintf(stderr,
                "error: cannot reach the control plane at %s: %s (set --control or "
                "WEFT_CONTROL)\n",
                c->base, c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
        wf_buf_free(&ans->body);
        return 1;
    }
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &ans->status);
    wf_buf_putc(&ans->body, '\0');
    ans->body.len--;
    return 0;
}

/* The answer's body as JSON, or NULL with an error printed. */
static json_t *answer_json(const answer_t *ans, const char *what)
{
    json_error_t jerr;
    json_t *o = json_loadb((const char *)ans->body.data, ans->body.len, 0, &jerr);
    if (o == NULL) {
        fprintf(stderr, "error: %s: the control plane answered malformed JSON (%s)\n", what,
                jerr.text);
    }
    return o;
}

/*
 * Print a failed answer as kubectl does: "Error from server (Reason): message". context, when
 * not NULL, goes before the message ("error when deleting \"f.yaml\": ").
 */
static void server_error(const conn_t *c, const answer_t *ans, const char *context)
{
    json_t *o = json_loadb((const char *)ans->body.data, ans->body.len, 0, NULL);
    const char *reason = json_string_value(json_object_get(o, "reason"));
    const char *msg = json_string_value(json_object_get(o, "message"));
    char hint[PATH_MAX + 160] = "";
    if (ans->status == 401) {
        if (c->have_token) {
            snprintf(hint, sizeof(hint), " (the admin token in %s was refused)", c->token_path);
        } else {
            snprintf(hint, sizeof(hint),
                     " (no admin token: %s does not exist; pass --token-file or set "
                     "WEFT_TOKEN_FILE)",
                     c->token_path);
        }
    }
    if (reason != NULL && msg != NULL) {
        fprintf(stderr, "Error from server (%s): %s%s%s\n", reason, context ? context : "", msg,
                hint);
    } else {
        fprintf(stderr, "Error from server: %sthe control plane answered HTTP %ld%s\n",
                context ? context : "", ans->status, hint);
    }
    json_decref(o);
}

/* GET path and parse the answer as JSON: NULL (with an error printed) unless 200. */
static json_t *get_json(conn_t *c, const char *path, long *status)
{
    answer_t ans;
    json_t *o = NULL;
    if (http(c, "GET", path, NULL, &ans) != 0) {
        return NULL;
    }
    if (status != NULL) {
        *status = ans.status;
    }
    if (ans.status == 200) {
        o = answer_json(&ans, path);
    } else if (status == NULL && ans.status == 404 && strncmp(path, "/v1/", 4) == 0) {
        /* A control plane older than this CLI: say which endpoint it lacks. */
        fprintf(stderr,
                "Error from server (NotFound): this control plane does not serve GET %s (is it "
                "older than this weft?)\n",
                path);
    } else if (status == NULL) {
        server_error(c, &ans, NULL);
    }
    wf_buf_free(&ans.body);
    return o;
}

/* ---- reading resources from files ---- */

/* One resource from a file, ready to send. */
typedef struct {
    json_t *obj; /* canonical JSON of the typed resource */
    const cp_kind_info_t *k;
    const char *ns, *name; /* borrowed from obj */
    const char *source;    /* file name, borrowed from the arguments or "STDIN" */
} item_t;

typedef struct {
    item_t *items;
    size_t n, cap;
    char **paths; /* directory entries read, owned */
    size_t npaths;
} items_t;

static void items_free(items_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        json_decref(l->items[i].obj);
    }
    for (size_t i = 0; i < l->npaths; i++) {
        wf_free(l->paths[i]);
    }
    wf_free(l->items);
    wf_free(l->paths);
}

/* Read a whole file (fd 0 for "-"); NULL with an error printed. */
static char *read_input(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    wf_buf_t b = WF_BUF_INIT;
    char chunk[65536];
    size_t r;
    if (f == NULL) {
        fprintf(stderr, "error: the path \"%s\" cannot be read: %s\n", path, strerror(errno));
        return NULL;
    }
    while ((r = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        /* cp_yaml refuses more than 4 MiB with a clear message; reading far past that only
         * wastes memory. */
        if (b.len > (64u << 20)) {
            break;
        }
        wf_buf_append(&b, chunk, r);
    }
    bool bad = ferror(f);
    if (f != stdin) {
        fclose(f);
    }
    if (bad) {
        fprintf(stderr, "error: the path \"%s\" cannot be read: %s\n", path, strerror(errno));
        wf_buf_free(&b);
        return NULL;
    }
    wf_buf_putc(&b, '\0');
    *len = b.len - 1;
    return (char *)wf_buf_detach(&b, NULL);
}

/* Print a parse error as "error: FILE:LINE:COL: message" with the message's own position
 * prefix ("line L column C: ") dropped. */
static void file_error(const char *source, const cp_err_t *err, int rc, const char *tail)
{
    const char *msg = err->msg[0] ? err->msg : cp_strerror(rc);
    if (strncmp(msg, "line ", 5) == 0) {
        const char *colon = strstr(msg, ": ");
        msg = colon ? colon + 2 : msg;
    }
    if (err->line > 0) {
        fprintf(stderr, "error: %s:%u:%u: %s%s\n", source, err->line, err->column, msg, tail);
    } else {
        fprintf(stderr, "error: %s: %s%s\n", source, msg, tail);
    }
}

static int add_doc(const cp_yaml_node_t *doc, const char *source, const char *ns_flag,
                   const char *tail, items_t *l)
{
    cp_err_t err;
    cp_resource_t *r = NULL;
    int rc = cp_istio_parse(doc, &r, &err);
    if (rc < 0) {
        file_error(source, &err, rc, tail);
        return 1;
    }
    char *text = cp_istio_to_json(r);
    json_t *o = json_loads(text, 0, NULL);
    wf_free(text);
    const cp_kind_info_t *k = cp_kinds_by_kind(cp_kind_name(r->kind));
    cp_resource_free(r);
    WF_ASSERT(o != NULL && k != NULL);
    json_t *md = json_object_get(o, "metadata");
    bool ns_written = cp_yaml_get(cp_yaml_get(doc, "metadata"), "namespace") != NULL &&
                      !cp_yaml_is_null(cp_yaml_get(cp_yaml_get(doc, "metadata"), "namespace"));
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    if (ns_flag != NULL && ns_written && ns != NULL && strcmp(ns, ns_flag) != 0) {
        fprintf(stderr,
                "error: %s:%u:%u: the namespace from the provided object \"%s\" does not match "
                "the namespace \"%s\"; pass --namespace=%s to use it%s\n",
                source, doc->line, doc->column, ns, ns_flag, ns, tail);
        json_decref(o);
        return 1;
    }
    if (ns_flag != NULL && !ns_written) {
        json_object_set_new(md, "namespace", json_string(ns_flag));
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->items = wf_realloc(l->items, l->cap * sizeof(*l->items));
    }
    item_t *it = &l->items[l->n++];
    it->obj = o;
    it->k = k;
    it->ns = json_string_value(json_object_get(md, "namespace"));
    it->name = json_string_value(json_object_get(md, "name"));
    it->source = source;
    if (it->ns == NULL) {
        it->ns = "default";
    }
    return 0;
}

/* Parse one input and append its resources; a kind "List" contributes its items. */
static int load_one(const char *path, const char *ns_flag, const char *tail, items_t *l)
{
    const char *source = strcmp(path, "-") == 0 ? "STDIN" : path;
    size_t len = 0;
    char *buf = read_input(path, &len);
    cp_yaml_stream_t *s = NULL;
    cp_err_t err;
    int rc = 1;
    if (buf == NULL) {
        return 1;
    }
    int e = cp_yaml_parse(buf, len, NULL, &s, &err);
    if (e < 0) {
        file_error(source, &err, e, tail);
        goto out;
    }
    for (uint32_t d = 0; d < s->n_docs; d++) {
        const cp_yaml_node_t *doc = s->docs[d];
        if (cp_yaml_is_null(doc)) {
            continue; /* an empty document between two `---` */
        }
        const cp_yaml_node_t *kind = cp_yaml_get(doc, "kind");
        const cp_yaml_node_t *items = cp_yaml_get(doc, "items");
        if (kind != NULL && kind->kind == CP_YAML_SCALAR && strcmp(kind->value.p, "List") == 0 &&
            items != NULL && items->kind == CP_YAML_SEQ) {
            for (uint32_t i = 0; i < items->n; i++) {
                if (add_doc(items->items[i], source, ns_flag, tail, l) != 0) {
                    goto out;
                }
            }
        } else if (add_doc(doc, source, ns_flag, tail, l) != 0) {
            goto out;
        }
    }
    rc = 0;
out:
    cp_yaml_free(s);
    wf_free(buf);
    return rc;
}

static bool has_ext(const char *name, const char *ext)
{
    size_t n = strlen(name), e = strlen(ext);
    return n > e && strcmp(name + n - e, ext) == 0;
}

static int cmp_names(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int want_entry(const struct dirent *d)
{
    return d->d_name[0] != '.' && (has_ext(d->d_name, ".yaml") || has_ext(d->d_name, ".yml") ||
                                   has_ext(d->d_name, ".json"));
}

/* Every -f input, a directory as its *.yaml, *.yml and *.json in name order. 0 or 1. */
static int load_all(const cp_cli_args_t *a, const char *tail, items_t *l)
{
    for (size_t i = 0; i < a->nfiles; i++) {
        const char *path = a->files[i];
        struct stat st;
        if (strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            struct dirent **ents = NULL;
            int n = scandir(path, &ents, want_entry, cmp_names);
            if (n < 0) {
                fprintf(stderr, "error: the path \"%s\" cannot be read: %s\n", path,
                        strerror(errno));
                return 1;
            }
            int rc = 0;
            for (int j = 0; j < n; j++) {
                if (rc == 0) {
                    size_t len = strlen(path) + strlen(ents[j]->d_name) + 2;
                    char *full = wf_malloc(len);
                    snprintf(full, len, "%s/%s", path, ents[j]->d_name);
                    l->paths = wf_realloc(l->paths, (l->npaths + 1) * sizeof(char *));
                    l->paths[l->npaths++] = full;
                    rc = load_one(full, a->ns, tail, l);
                }
                free(ents[j]);
            }
            free(ents);
            if (rc != 0) {
                return rc;
            }
        } else if (load_one(path, a->ns, tail, l) != 0) {
            return 1;
        }
    }
    if (l->n == 0) {
        fprintf(stderr, "error: no objects passed to %s\n", a->cmd);
        return 1;
    }
    return 0;
}

/* ---- apply ---- */

static int cmd_apply(const cp_cli_args_t *a, conn_t *c)
{
    items_t l = {0};
    answer_t ans = {0};
    json_t *res = NULL;
    int rc = 1;
    if (load_all(a, " (nothing was applied)", &l) != 0) {
        goto out;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n; i++) {
        json_array_append(arr, l.items[i].obj);
    }
    json_t *batch = json_pack("{s:o}", "items", arr);
    char *body = json_dumps(batch, JSON_COMPACT);
    json_decref(batch);
    WF_ASSERT(body != NULL);
    int e = http(c, "POST", "/v1/apply", body, &ans);
    free(body);
    if (e != 0) {
        goto out;
    }
    if (ans.status != 200) {
        /* Point a batch error ("items[3]: ...") at the file the item came from. */
        size_t idx;
        json_t *st = json_loadb((const char *)ans.body.data, ans.body.len, 0, NULL);
        const char *msg = json_string_value(json_object_get(st, "message"));
        char ctx[PATH_MAX + 64];
        int off = 0;
        if (msg != NULL && sscanf(msg, "items[%zu]: %n", &idx, &off) == 1 && off > 0 && idx < l.n) {
            snprintf(ctx, sizeof(ctx), "%s: %s/%s: ", l.items[idx].source, l.items[idx].ns,
                     l.items[idx].name);
            json_object_set_new(st, "message", json_string(msg + off));
            char *again = json_dumps(st, JSON_COMPACT);
            wf_buf_reset(&ans.body);
            wf_buf_puts(&ans.body, again);
            free(again);
            server_error(c, &ans, ctx);
        } else {
            server_error(c, &ans, NULL);
        }
        json_decref(st);
        goto out;
    }
    res = answer_json(&ans, "/v1/apply");
    json_t *items = json_object_get(res, "items");
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        const char *kind = json_string_value(json_object_get(it, "kind"));
        const cp_kind_info_t *k = kind ? cp_kinds_by_kind(kind) : NULL;
        printf("%s.%s/%s %s\n", k ? k->singular : "?", k ? k->group : "?",
               json_string_value(json_object_get(it, "name")),
               json_string_value(json_object_get(it, "result")));
    }
    rc = res != NULL && json_array_size(items) == l.n ? 0 : 1;
out:
    json_decref(res);
    wf_buf_free(&ans.body);
    items_free(&l);
    return rc;
}

/* ---- delete ---- */

/*
 * The API path of kind k: in namespace ns (NULL: all namespaces), of one name (NULL: the
 * collection). Namespace and name are the user's words, so they are percent-escaped.
 */
static void res_path(conn_t *c, const cp_kind_info_t *k, const char *ns, const char *name,
                     char *out, size_t len)
{
    char *ens = ns ? curl_easy_escape(c->curl, ns, 0) : NULL;
    char *ename = name ? curl_easy_escape(c->curl, name, 0) : NULL;
    WF_ASSERT((ns == NULL || ens != NULL) && (name == NULL || ename != NULL));
    snprintf(out, len, "/apis/%s/%s%s%s/%s%s%s", k->group, k->versions[0],
             ens ? "/namespaces/" : "", ens ? ens : "", k->plural, ename ? "/" : "",
             ename ? ename : "");
    curl_free(ens);
    curl_free(ename);
}

static int delete_one(conn_t *c, const cp_kind_info_t *k, const char *ns, const char *name,
                      const char *source, bool ignore_not_found)
{
    char path[1024], ctx[PATH_MAX + 40] = "";
    answer_t ans;
    res_path(c, k, ns, name, path, sizeof(path));
    if (http(c, "DELETE", path, NULL, &ans) != 0) {
        return 1;
    }
    int rc = 0;
    if (ans.status == 200) {
        printf("%s.%s \"%s\" deleted\n", k->singular, k->group, name);
    } else if (!(ans.status == 404 && ignore_not_found)) {
        if (source != NULL) {
            snprintf(ctx, sizeof(ctx), "error when deleting \"%s\": ", source);
        }
        server_error(c, &ans, source ? ctx : NULL);
        rc = 1;
    }
    wf_buf_free(&ans.body);
    return rc;
}

static int cmd_delete(const cp_cli_args_t *a, conn_t *c)
{
    const char *ns = a->ns ? a->ns : "default";
    int rc = 0;
    if (a->nfiles == 0) {
        for (size_t i = 0; i < a->ntargets; i++) {
            rc |= delete_one(c, a->targets[i].k, ns, a->targets[i].name, NULL, a->ignore_not_found);
        }
        return rc;
    }
    items_t l = {0};
    if (load_all(a, " (nothing was deleted)", &l) != 0) {
        items_free(&l);
        return 1;
    }
    for (size_t i = 0; i < l.n; i++) {
        rc |= delete_one(c, l.items[i].k, l.items[i].ns, l.items[i].name, l.items[i].source,
                         a->ignore_not_found);
    }
    items_free(&l);
    return rc;
}

/* ---- get ---- */

typedef struct {
    const char *header;
    const char *path; /* dot path under the object */
} column_t;

/* The columns Istio's CRDs declare (additionalPrinterColumns), between NAME and AGE. */
static const column_t *kind_columns(cp_kind_t id)
{
    static const column_t vs[] = {{"GATEWAYS", "spec.gateways"}, {"HOSTS", "spec.hosts"}, {0}};
    static const column_t dr[] = {{"HOST", "spec.host"}, {0}};
    static const column_t se[] = {{"HOSTS", "spec.hosts"},
                                  {"LOCATION", "spec.location"},
                                  {"RESOLUTION", "spec.resolution"},
                                  {0}};
    static const column_t pa[] = {{"MODE", "spec.mtls.mode"}, {0}};
    static const column_t ap[] = {{"ACTION", "spec.action"}, {0}};
    static const column_t none[] = {{0}};
    switch (id) {
    case CP_KIND_VIRTUAL_SERVICE:
        return vs;
    case CP_KIND_DESTINATION_RULE:
        return dr;
    case CP_KIND_SERVICE_ENTRY:
        return se;
    case CP_KIND_PEER_AUTHENTICATION:
        return pa;
    case CP_KIND_AUTHORIZATION_POLICY:
        return ap;
    default:
        return none;
    }
}

static const json_t *json_path(const json_t *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *save = NULL, *t = strtok_r(buf, ".", &save); t && o;
         t = strtok_r(NULL, ".", &save)) {
        o = json_object_get(o, t);
    }
    return o;
}

/* A cell: a string as is, anything else as compact JSON (kubectl prints ["a","b"]). */
static char *cell_text(const json_t *v)
{
    if (v == NULL || json_is_null(v)) {
        return wf_strdup("");
    }
    if (json_is_string(v)) {
        return wf_strdup(json_string_value(v));
    }
    char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    char *out = wf_strdup(d ? d : "");
    free(d);
    return out;
}

static void age_of(const char *ts, int64_t now_ms, char *out, size_t len)
{
    int64_t t = cp_cli_parse_time(ts);
    if (t < 0) {
        snprintf(out, len, "<unknown>");
    } else {
        cp_cli_age(now_ms - t * 1000, out, len);
    }
}

static void print_list_doc(const cp_cli_args_t *a, json_t *items, bool single)
{
    json_t *doc = single ? json_incref(json_array_get(items, 0))
                         : json_pack("{s:s, s:O, s:s, s:{s:s}}", "apiVersion", "v1", "items", items,
                                     "kind", "List", "metadata", "resourceVersion", "");
    if (strcmp(a->output, "json") == 0) {
        char *s = json_dumps(doc, JSON_INDENT(4) | JSON_SORT_KEYS);
        printf("%s\n", s ? s : "");
        free(s);
    } else {
        cp_cli_print_yaml(stdout, doc);
    }
    json_decref(doc);
}

/*
 * A table of items of kind k. with_kind names rows "virtualservice.networking.istio.io/x", as
 * kubectl does when one command lists several kinds.
 */
static void print_resources(const cp_cli_args_t *a, const cp_kind_info_t *k, json_t *items,
                            bool with_kind)
{
    const column_t *cols = kind_columns(k->id);
    size_t nk = 0;
    while (cols[nk].header) {
        nk++;
    }
    const char *headers[8];
    size_t n = 0;
    if (a->all_ns) {
        headers[n++] = "NAMESPACE";
    }
    headers[n++] = "NAME";
    for (size_t i = 0; i < nk; i++) {
        headers[n++] = cols[i].header;
    }
    headers[n++] = "AGE";
    cp_cli_table_t *t = cp_cli_table_new(n, headers);
    int64_t now = wf_wall_ms();
    size_t i;
    json_t *o;
    json_array_foreach(items, i, o)
    {
        char *cells[8] = {0};
        char age[32];
        size_t c = 0;
        const json_t *md = json_object_get(o, "metadata");
        if (a->all_ns) {
            cells[c++] = cell_text(json_object_get(md, "namespace"));
        }
        cells[c++] = cell_text(json_object_get(md, "name"));
        if (with_kind) {
            size_t len = strlen(k->singular) + strlen(k->group) + strlen(cells[c - 1]) + 3;
            char *qualified = wf_malloc(len);
            snprintf(qualified, len, "%s.%s/%s", k->singular, k->group, cells[c - 1]);
            wf_free(cells[c - 1]);
            cells[c - 1] = qualified;
        }
        for (size_t j = 0; j < nk; j++) {
            cells[c++] = cell_text(json_path(o, cols[j].path));
        }
        age_of(json_string_value(json_object_get(md, "creationTimestamp")), now, age, sizeof(age));
        cells[c++] = wf_strdup(age);
        cp_cli_table_add(t, (const char *const *)cells);
        for (size_t j = 0; j < c; j++) {
            wf_free(cells[j]);
        }
    }
    cp_cli_table_print(t, stdout);
    cp_cli_table_free(t);
}

/* The kind of a listed object, from its "kind". */
static const cp_kind_info_t *item_kind(const json_t *o)
{
    const char *kind = json_string_value(json_object_get(o, "kind"));
    return kind ? cp_kinds_by_kind(kind) : NULL;
}

static int cmd_get(const cp_cli_args_t *a, conn_t *c)
{
    const char *ns = a->ns ? a->ns : "default";
    bool named = a->targets[0].name[0] != '\0';
    char path[1024];
    json_t *items = json_array();
    size_t kinds = 0;
    int rc = 0;
    for (size_t i = 0; i < a->ntargets; i++) {
        const cp_cli_target_t *t = &a->targets[i];
        kinds += i == 0 || t->k != a->targets[i - 1].k;
        res_path(c, t->k, a->all_ns ? NULL : ns, named ? t->name : NULL, path, sizeof(path));
        json_t *o = get_json(c, path, NULL);
        if (o == NULL) {
            rc = 1;
            continue;
        }
        if (named) {
            json_array_append_new(items, o);
            continue;
        }
        json_t *list = json_object_get(o, "items");
        if (!json_is_array(list)) {
            fprintf(stderr, "error: %s: the answer has no items\n", path);
            rc = 1;
        } else {
            json_array_extend(items, list);
        }
        json_decref(o);
    }
    bool doc_output =
        a->output != NULL && (strcmp(a->output, "json") == 0 || strcmp(a->output, "yaml") == 0);
    if (doc_output && (!named || json_array_size(items) > 0)) {
        print_list_doc(a, items, named && a->ntargets == 1);
    } else if (json_array_size(items) == 0) {
        if (!named && rc == 0) {
            if (a->all_ns) {
                fprintf(stderr, "No resources found\n");
            } else {
                fprintf(stderr, "No resources found in %s namespace.\n", ns);
            }
        }
    } else if (a->output != NULL && strcmp(a->output, "name") == 0) {
        size_t i;
        json_t *o;
        json_array_foreach(items, i, o)
        {
            const cp_kind_info_t *k = item_kind(o);
            printf("%s.%s/%s\n", k ? k->singular : "?", k ? k->group : "?",
                   json_string_value(json_object_get(json_object_get(o, "metadata"), "name")));
        }
    } else {
        /* One table per run of objects of one kind, a blank line between, as kubectl. */
        size_t n = json_array_size(items), start = 0;
        for (size_t i = 1; i <= n; i++) {
            const cp_kind_info_t *k = item_kind(json_array_get(items, start));
            if (i < n && item_kind(json_array_get(items, i)) == k) {
                continue;
            }
            json_t *run = json_array();
            for (size_t j = start; j < i; j++) {
                json_array_append(run, json_array_get(items, j));
            }
            if (k != NULL) {
                printf("%s", start > 0 ? "\n" : "");
                print_resources(a, k, run, kinds > 1);
            }
            json_decref(run);
            start = i;
        }
    }
    json_decref(items);
    return rc;
}

/* ---- describe ---- */

/* "resourceVersion" -> "Resource Version", as kubectl describe titles fields. */
static void title(const char *key, char *out, size_t len)
{
    size_t w = 0;
    for (size_t i = 0; key[i] && w + 2 < len; i++) {
        char ch = key[i];
        if (i == 0 && ch >= 'a' && ch <= 'z') {
            ch = (char)(ch - 'a' + 'A');
        } else if (ch >= 'A' && ch <= 'Z' && i > 0 && key[i - 1] >= 'a' && key[i - 1] <= 'z') {
            out[w++] = ' ';
        }
        out[w++] = ch;
    }
    out[w] = '\0';
}

static void print_kv_block(const char *label, const json_t *map)
{
    printf("%-14s", label);
    if (json_object_size(map) == 0) {
        printf("<none>\n");
        return;
    }
    const char *key;
    json_t *v;
    bool first = true;
    json_object_foreach((json_t *)map, key, v)
    {
        printf("%*s%s=%s\n", first ? 0 : 14, "", key,
               json_string_value(v) ? json_string_value(v) : "");
        first = false;
    }
}

/* Print v as YAML with every line indented by two spaces. */
static void print_indented_yaml(const json_t *v)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    WF_ASSERT(m != NULL);
    cp_cli_print_yaml(m, v);
    fclose(m);
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (nl == NULL) {
            printf("  %s\n", line);
            break;
        }
        printf("  %.*s\n", (int)(nl - line), line);
    }
    free(text);
}

static bool message_about(const json_t *m, const char *kind, const char *ns, const char *name)
{
    const char *mk = json_string_value(json_object_get(m, "kind"));
    const char *mn = json_string_value(json_object_get(m, "namespace"));
    const char *mname = json_string_value(json_object_get(m, "name"));
    return mk && mn && mname && strcmp(mk, kind) == 0 && strcmp(mn, ns) == 0 &&
           strcmp(mname, name) == 0;
}

static void print_message(const json_t *m, bool with_object, FILE *out, const char *indent)
{
    const char *level = json_string_value(json_object_get(m, "level"));
    const char *code = json_string_value(json_object_get(m, "code"));
    const char *path = json_string_value(json_object_get(m, "path"));
    const char *msg = json_string_value(json_object_get(m, "message"));
    const char *lv = "Info";
    if (level != NULL && strcmp(level, "error") == 0) {
        lv = "Error";
    } else if (level != NULL && strcmp(level, "warning") == 0) {
        lv = "Warning";
    }
    fprintf(out, "%s%s [%s] ", indent, lv, code ? code : "");
    if (with_object) {
        fprintf(out, "%s %s/%s: ", json_string_value(json_object_get(m, "kind")),
                json_string_value(json_object_get(m, "namespace")),
                json_string_value(json_object_get(m, "name")));
    }
    fprintf(out, "%s%s%s\n", path && path[0] ? path : "", path && path[0] ? ": " : "",
            msg ? msg : "");
}

static int describe_one(const cp_cli_args_t *a, conn_t *c, const cp_kind_info_t *k,
                        const char *name, json_t *analysis, long analysis_status)
{
    const char *ns = a->ns ? a->ns : "default";
    char path[1024], label[64];
    res_path(c, k, ns, name, path, sizeof(path));
    json_t *o = get_json(c, path, NULL);
    if (o == NULL) {
        return 1;
    }
    const json_t *md = json_object_get(o, "metadata");
    printf("%-14s%s\n", "Name:", json_string_value(json_object_get(md, "name")));
    printf("%-14s%s\n", "Namespace:", json_string_value(json_object_get(md, "namespace")));
    print_kv_block("Labels:", json_object_get(md, "labels"));
    print_kv_block("Annotations:", json_object_get(md, "annotations"));
    printf("%-14s%s\n", "API Version:", json_string_value(json_object_get(o, "apiVersion")));
    printf("%-14s%s\n", "Kind:", k->kind);
    printf("Metadata:\n");
    static const char *const meta_keys[] = {"creationTimestamp", "generation", "resourceVersion",
                                            NULL};
    for (const char *const *mk = meta_keys; *mk; mk++) {
        char *v = cell_text(json_object_get(md, *mk));
        title(*mk, label, sizeof(label));
        strcat(label, ":");
        printf("  %-21s%s\n", label, v);
        wf_free(v);
    }
    printf("Spec:\n");
    const json_t *spec = json_object_get(o, "spec");
    if (spec != NULL && json_object_size(spec) > 0) {
        print_indented_yaml(spec);
    } else {
        printf("  <empty>\n");
    }
    printf("Validation Messages:\n");
    if (analysis == NULL) {
        printf("  <unavailable: GET /v1/analyze answered %ld>\n", analysis_status);
    } else {
        size_t i, shown = 0;
        json_t *m;
        json_array_foreach(json_object_get(analysis, "messages"), i, m)
        {
            if (message_about(m, k->kind, ns, name)) {
                print_message(m, false, stdout, "  ");
                shown++;
            }
        }
        if (shown == 0) {
            printf("  <none>\n");
        }
    }
    json_decref(o);
    return 0;
}

static int cmd_describe(const cp_cli_args_t *a, conn_t *c)
{
    long status = 0;
    int rc = 0;
    json_t *analysis = get_json(c, "/v1/analyze", &status);
    for (size_t i = 0; i < a->ntargets; i++) {
        if (i > 0) {
            printf("\n\n");
        }
        rc |= describe_one(a, c, a->targets[i].k, a->targets[i].name, analysis, status);
    }
    json_decref(analysis);
    return rc;
}

/* ---- workloads, proxy-status, analyze ---- */

/* Keep the entries of arr whose "namespace" is ns (all when ns is NULL); a new array. */
static json_t *filter_ns(const json_t *arr, const char *ns)
{
    json_t *out = json_array();
    size_t i;
    json_t *v;
    json_array_foreach((json_t *)arr, i, v)
    {
        const char *vns = json_string_value(json_object_get(v, "namespace"));
        if (ns == NULL || (vns != NULL && strcmp(vns, ns) == 0)) {
            json_array_append(out, v);
        }
    }
    return out;
}

static void print_doc(const char *output, json_t *doc)
{
    if (strcmp(output, "json") == 0) {
        char *s = json_dumps(doc, JSON_INDENT(4) | JSON_SORT_KEYS);
        printf("%s\n", s ? s : "");
        free(s);
    } else {
        cp_cli_print_yaml(stdout, doc);
    }
}

static bool doc_output(const cp_cli_args_t *a)
{
    return a->output != NULL && strcmp(a->output, "wide") != 0;
}

static int cmd_workloads(const cp_cli_args_t *a, conn_t *c)
{
    json_t *res = get_json(c, "/v1/workloads", NULL);
    if (res == NULL) {
        return 1;
    }
    json_t *items = filter_ns(json_object_get(res, "items"), a->all_ns ? NULL : a->ns);
    if (doc_output(a)) {
        json_t *doc = json_pack("{s:O}", "items", items);
        print_doc(a->output, doc);
        json_decref(doc);
    } else if (json_array_size(items) == 0) {
        fprintf(stderr, "No workloads registered%s%s.\n", a->ns ? " in namespace " : "",
                a->ns ? a->ns : "");
    } else {
        static const char *const headers[] = {"NAME",    "NAMESPACE", "SERVICE", "VERSION",
                                              "ADDRESS", "IDENTITY",  "LEASE"};
        static const char *const keys[] = {"id",      "namespace", "service",
                                           "version", "address",   "identity"};
        cp_cli_table_t *t = cp_cli_table_new(7, headers);
        size_t i;
        json_t *w;
        json_array_foreach(items, i, w)
        {
            char *cells[7];
            char lease[32];
            for (size_t j = 0; j < 6; j++) {
                cells[j] = cell_text(json_object_get(w, keys[j]));
            }
            cp_cli_age(json_integer_value(json_object_get(w, "leaseRemainingMs")), lease,
                       sizeof(lease));
            cells[6] = lease;
            cp_cli_table_add(t, (const char *const *)cells);
            for (size_t j = 0; j < 6; j++) {
                wf_free(cells[j]);
            }
        }
        cp_cli_table_print(t, stdout);
        cp_cli_table_free(t);
    }
    json_decref(items);
    json_decref(res);
    return 0;
}

static int cmd_proxy_status(const cp_cli_args_t *a, conn_t *c)
{
    json_t *res = get_json(c, "/v1/proxy-status", NULL);
    if (res == NULL) {
        return 1;
    }
    json_t *proxies = filter_ns(json_object_get(res, "proxies"), a->all_ns ? NULL : a->ns);
    if (doc_output(a)) {
        json_t *doc =
            json_pack("{s:O, s:O}", "version", json_object_get(res, "version"), "proxies", proxies);
        print_doc(a->output, doc);
        json_decref(doc);
    } else if (json_array_size(proxies) == 0) {
        fprintf(stderr, "No proxies found%s%s.\n", a->ns ? " in namespace " : "",
                a->ns ? a->ns : "");
    } else {
        bool reasons = false;
        size_t i;
        json_t *p;
        json_array_foreach(proxies, i, p)
        {
            const char *r = json_string_value(json_object_get(p, "reason"));
            reasons |= r != NULL && r[0] != '\0';
        }
        /* ACKED: the version the proxy applied (it says so in its polls); SENT: the last one
         * sent to it. */
        static const char *const headers[] = {"NAME", "ACKED", "SENT", "STATE", "REASON"};
        cp_cli_table_t *t = cp_cli_table_new(reasons ? 5 : 4, headers);
        json_array_foreach(proxies, i, p)
        {
            char *cells[5] = {
                cell_text(json_object_get(p, "id")), cell_text(json_object_get(p, "version")),
                cell_text(json_object_get(p, "sent")), cell_text(json_object_get(p, "state")),
                cell_text(json_object_get(p, "reason"))};
            cp_cli_table_add(t, (const char *const *)cells);
            for (size_t j = 0; j < 5; j++) {
                wf_free(cells[j]);
            }
        }
        cp_cli_table_print(t, stdout);
        cp_cli_table_free(t);
    }
    json_decref(proxies);
    json_decref(res);
    return 0;
}

static int cmd_analyze(const cp_cli_args_t *a, conn_t *c)
{
    json_t *res = get_json(c, "/v1/analyze", NULL);
    if (res == NULL) {
        return 1;
    }
    const char *ns = a->all_ns ? NULL : a->ns ? a->ns : "default";
    json_t *msgs = filter_ns(json_object_get(res, "messages"), ns);
    size_t i, errors = 0;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        const char *level = json_string_value(json_object_get(m, "level"));
        errors += level != NULL && strcmp(level, "error") == 0;
    }
    if (doc_output(a)) {
        json_t *doc = json_pack("{s:O}", "messages", msgs);
        print_doc(a->output, doc);
        json_decref(doc);
    } else if (json_array_size(msgs) == 0) {
        if (ns == NULL) {
            fprintf(stderr, "\u2714 No validation issues found when analyzing all namespaces.\n");
        } else {
            fprintf(stderr, "\u2714 No validation issues found when analyzing namespace: %s.\n",
                    ns);
        }
    } else {
        json_array_foreach(msgs, i, m)
        {
            print_message(m, true, stdout, "");
        }
    }
    json_decref(msgs);
    json_decref(res);
    return errors > 0 ? 1 : 0;
}

/* ---- ca ---- */

/* weft ca status|rotate: the CA's roots as a table (or -o yaml|json); rotate starts a root
 * rotation first and prints the roots it left. */
static int cmd_ca(const cp_cli_args_t *a, conn_t *c)
{
    json_t *st = NULL;
    if (strcmp(a->pos[0], "rotate") == 0) {
        answer_t ans;
        if (http(c, "POST", "/v1/ca/rotate", "", &ans) != 0) {
            return 1;
        }
        json_t *o = json_loadb((const char *)ans.body.data, ans.body.len, 0, NULL);
        if (ans.status != 200) {
            const char *msg = json_string_value(json_object_get(o, "error"));
            if (msg != NULL) {
                fprintf(stderr, "Error from server: %s\n", msg);
            } else {
                server_error(c, &ans, NULL);
            }
            json_decref(o);
            wf_buf_free(&ans.body);
            return 1;
        }
        wf_buf_free(&ans.body);
        if (o == NULL) {
            fprintf(stderr, "error: the control plane answered malformed JSON\n");
            return 1;
        }
        st = o;
        if (!doc_output(a)) {
            printf("root rotation started: trust bundle version %lld\n",
                   (long long)json_integer_value(json_object_get(st, "bundle_version")));
        }
    } else if ((st = get_json(c, "/v1/ca", NULL)) == NULL) {
        return 1;
    }
    if (doc_output(a)) {
        print_doc(a->output, st);
        json_decref(st);
        return 0;
    }
    json_t *rot = json_object_get(st, "rotation");
    printf("mode: %s   trust bundle version: %lld   certificate TTL: %llds%s\n",
           json_string_value(json_object_get(st, "mode")),
           (long long)json_integer_value(json_object_get(st, "bundle_version")),
           (long long)json_integer_value(json_object_get(st, "cert_ttl_seconds")),
           json_is_object(rot) ? "   rotation: propagating" : "");
    static const char *const headers[] = {"SUBJECT", "SERIAL", "NOT AFTER", "STATE"};
    cp_cli_table_t *t = cp_cli_table_new(4, headers);
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(st, "roots"), i, r)
    {
        char when[32] = "";
        time_t na = (time_t)json_integer_value(json_object_get(r, "not_after"));
        struct tm tm;
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&na, &tm));
        char *cells[4] = {cell_text(json_object_get(r, "subject")),
                          cell_text(json_object_get(r, "serial")), wf_strdup(when),
                          cell_text(json_object_get(r, "state"))};
        cp_cli_table_add(t, (const char *const *)cells);
        for (size_t j = 0; j < 4; j++) {
            wf_free(cells[j]);
        }
    }
    cp_cli_table_print(t, stdout);
    cp_cli_table_free(t);
    json_decref(st);
    return 0;
}

/* ---- entry ---- */

int cp_cli_main(int argc, char **argv)
{
    cp_cli_args_t a;
    char err[512];
    conn_t c;
    memset(&c, 0, sizeof(c));
    if (cp_cli_parse_args(argc, argv, &a, err, sizeof(err)) < 0) {
        fprintf(stderr, "error: %s\nSee 'weft %s --help' for usage.\n", err,
                argc > 0 ? argv[0] : "");
        return 2;
    }
    const cmd_t *cmd = find_cmd(a.cmd);
    if (a.help) {
        print_help(cmd, stdout);
        return 0;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "error: cannot initialise libcurl\n");
        return 1;
    }
    int rc = conn_open(&a, &c);
    if (rc == 0) {
        switch ((cmd_id_t)(cmd - cmds)) {
        case CMD_APPLY:
            rc = cmd_apply(&a, &c);
            break;
        case CMD_GET:
            rc = cmd_get(&a, &c);
            break;
        case CMD_DELETE:
            rc = cmd_delete(&a, &c);
            break;
        case CMD_DESCRIBE:
            rc = cmd_describe(&a, &c);
            break;
        case CMD_WORKLOADS:
            rc = cmd_workloads(&a, &c);
            break;
        case CMD_PROXY_STATUS:
            rc = cmd_proxy_status(&a, &c);
            break;
        case CMD_ANALYZE:
            rc = cmd_analyze(&a, &c);
            break;
        case CMD_CA:
            rc = cmd_ca(&a, &c);
            break;
        case CMD_COUNT:
            WF_ASSERT(false);
        }
    }
    conn_close(&c);
    curl_global_cleanup();
    return rc;
}
