/*
 * fuzz_col_mesh.c - what the collector does with the control plane's answers (col_mesh.h).
 *
 * First byte even: the rest is a JSON object printed as YAML by col_mesh_yaml (the mesh
 * page's read-only view), which must read back, through the control plane's own YAML reader,
 * as the same object: same keys, same strings, numbers, booleans and nulls, and no plain
 * scalar that a YAML reader would take for a number, boolean or null.
 * First byte odd: the rest is every answer of a refresh at once (a resource list, /v1/analyze,
 * /v1/workloads, /v1/proxy-status), and the badges of a few nodes are derived from the view.
 */
#include "col_mesh.h"
#include "cp_yaml.h"
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_err.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void mismatch(const char *what, const char *yaml)
{
    fprintf(stderr, "col_mesh_yaml: %s\n%s\n", what, yaml);
    abort();
}

/* Whether a plain scalar would be read as something other than a string. */
static bool plain_not_string(const char *v)
{
    static const char *const words[] = {"",   "~",  "null", "true", "false", "yes",
                                        "no", "on", "off",  "y",    "n"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strcasecmp(v, words[i]) == 0) {
            return true;
        }
    }
    if (strchr("0123456789+-.", v[0]) != NULL) {
        char *end = NULL;
        (void)strtod(v, &end);
        return *end == '\0';
    }
    return false;
}

static bool plain_is(const cp_yaml_node_t *n, const char *text)
{
    return n->kind == CP_YAML_SCALAR && n->style == CP_YAML_PLAIN && strcmp(n->value.p, text) == 0;
}

static void same(const json_t *j, const cp_yaml_node_t *n, const char *yaml)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        if (n->kind != CP_YAML_MAP || n->n != json_object_size(j)) {
            mismatch("mapping differs", yaml);
        }
        for (uint32_t i = 0; i < n->n; i++) {
            const json_t *v = json_object_get(j, n->pairs[i].key->value.p);
            if (v == NULL) {
                mismatch("key differs", yaml);
            }
            same(v, n->pairs[i].value, yaml);
        }
        break;
    }
    case JSON_ARRAY:
        if (n->kind != CP_YAML_SEQ || n->n != json_array_size(j)) {
            mismatch("sequence differs", yaml);
        }
        for (uint32_t i = 0; i < n->n; i++) {
            same(json_array_get(j, i), n->items[i], yaml);
        }
        break;
    case JSON_STRING:
        if (n->kind != CP_YAML_SCALAR || n->value.len != json_string_length(j) ||
            memcmp(n->value.p, json_string_value(j), n->value.len) != 0) {
            mismatch("string differs", yaml);
        }
        if (n->style == CP_YAML_PLAIN && plain_not_string(n->value.p)) {
            mismatch("plain string reads as another type", yaml);
        }
        break;
    case JSON_INTEGER: {
        char want[32];
        snprintf(want, sizeof(want), "%lld", (long long)json_integer_value(j));
        if (!plain_is(n, want)) {
            mismatch("integer differs", yaml);
        }
        break;
    }
    case JSON_REAL: {
        char *end = NULL;
        if (n->kind != CP_YAML_SCALAR || n->style != CP_YAML_PLAIN ||
            strtod(n->value.p, &end) != json_real_value(j) || *end != '\0') {
            mismatch("number differs", yaml);
        }
        break;
    }
    case JSON_TRUE:
    case JSON_FALSE:
    case JSON_NULL:
        if (!plain_is(n, json_is_true(j) ? "true" : json_is_false(j) ? "false" : "null")) {
            mismatch("constant differs", yaml);
        }
        break;
    }
}

static void yaml_round_trip(const char *text, size_t len)
{
    wf_buf_t out = WF_BUF_INIT;
    if (col_mesh_yaml(text, len, &out) != 0) {
        wf_buf_free(&out);
        return;
    }
    const char *yaml = wf_buf_cstr(&out);
    cp_yaml_stream_t *st = NULL;
    cp_err_t err;
    int rc = cp_yaml_parse(yaml, out.len, NULL, &st, &err);
    if (rc == 0) {
        json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
        if (st->n_docs != 1) {
            mismatch("not one document", yaml);
        }
        same(j, st->docs[0], yaml);
        json_decref(j);
    } else if (rc != CP_E_LIMIT) {
        /* deeper or bigger than the reader's limits is fine; anything else is a printing bug */
        mismatch(err.msg, yaml);
    }
    cp_yaml_free(st);
    wf_buf_free(&out);
}

static void badges_of(const char *text)
{
    const char *lists[] = {text};
    col_mesh_src_t src = {
        .lists = lists, .nlists = 1, .analyze = text, .workloads = text, .proxies = text};
    col_mesh_view_t *v = NULL;
    char err[256];
    if (col_mesh_view_new(&src, &v, err, sizeof(err)) != 0) {
        return;
    }
    static const char *const types[] = {"service", "app", "box", "workload", "unknown"};
    static const char *const versions[] = {"", "v1", "v2"};
    for (size_t t = 0; t < 5; t++) {
        for (size_t k = 0; k < 3; k++) {
            col_mesh_node_t n = {.type = types[t],
                                 .ns = wf_str(k == 2 ? "bookinfo" : "default"),
                                 .workload = wf_str(k ? "reviews-v1" : ""),
                                 .app = wf_str("reviews"),
                                 .version = wf_str(versions[k]),
                                 .service = wf_str("reviews")};
            col_mesh_badges_t b;
            col_mesh_badges(v, &n, &b);
            wf_buf_t out = WF_BUF_INIT;
            col_mesh_badges_json(&b, &out);
            WF_ASSERT(b.nhostnames <= COL_MESH_MAX_HOSTNAMES);
            WF_ASSERT(b.vs || b.nhostnames == 0);
            wf_buf_free(&out);
        }
    }
    col_mesh_view_release(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1 << 20)) {
        return 0;
    }
    char *text = wf_malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    if (data[0] % 2 == 0) {
        yaml_round_trip(text, size - 1);
    } else {
        badges_of(text);
    }
    wf_free(text);
    return 0;
}
