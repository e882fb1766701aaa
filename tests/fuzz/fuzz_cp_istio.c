/*
 * fuzz_cp_istio.c - YAML in (cp_yaml.h), Istio resources out (cp_istio.h). Checked beyond "no
 * crash": a refusal comes with a message and no result; every accepted resource prints as
 * JSON that parses back to the same JSON (the canonical form is a fixed point).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp_istio.h"
#include "wf_alloc.h"

static void check(int ok)
{
    if (!ok) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp_yaml_limits_t lim;
    cp_yaml_limits_default(&lim);
    /* Small enough that alias expansions stay fast per input, large enough for real files. */
    lim.max_nodes = 20000;
    cp_yaml_stream_t *s = NULL;
    cp_err_t err;
    int rc = cp_yaml_parse((const char *)data, size, &lim, &s, &err);
    if (rc < 0) {
        check(s == NULL && err.msg[0] != '\0');
        return 0;
    }
    for (uint32_t i = 0; i < s->n_docs; i++) {
        cp_resource_t *r = NULL;
        rc = cp_istio_parse(s->docs[i], &r, &err);
        if (rc < 0) {
            check(r == NULL && err.msg[0] != '\0');
            continue;
        }
        char *json = cp_istio_to_json(r);
        cp_yaml_stream_t *s2 = NULL;
        cp_resource_t *r2 = NULL;
        check(cp_yaml_parse(json, strlen(json), NULL, &s2, &err) == 0 && s2->n_docs == 1);
        check(cp_istio_parse(s2->docs[0], &r2, &err) == 0);
        char *json2 = cp_istio_to_json(r2);
        check(strcmp(json, json2) == 0);
        wf_free(json2);
        cp_resource_free(r2);
        cp_yaml_free(s2);
        wf_free(json);
        cp_resource_free(r);
    }
    cp_yaml_free(s);
    return 0;
}
