/*
 * fuzz_inject.c - manifests in, injected manifests out (cp_inject.h). Checked beyond "no
 * crash": a refusal comes with a message and writes nothing; an accepted input gives YAML that
 * parses back with as many documents, and injecting that output again changes nothing (the
 * rewrite is idempotent, as `istioctl kube-inject` is).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp_inject.h"
#include "wf_buf.h"

static void check(int ok)
{
    if (!ok) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp_inject_opts_t o = {.image = "weft:0.1.0",
                          .control = "http://weft-control.weft-system:15010",
                          .memory_limit = "128Mi",
                          .native_sidecar = (size & 1) == 0};
    wf_buf_t out, again;
    wf_buf_init(&out);
    wf_buf_init(&again);
    cp_err_t err;
    int rc = cp_inject((const char *)data, size, &o, &out, NULL, &err);
    if (rc < 0) {
        check(out.len == 0 && err.msg[0] != '\0');
        return 0;
    }
    cp_yaml_stream_t *in_s = NULL, *out_s = NULL;
    cp_yaml_limits_t lim;
    cp_yaml_limits_default(&lim);
    const char *in_text = size > 0 ? (const char *)data : "";
    const char *out_text = out.len > 0 ? (const char *)out.data : "";
    check(cp_yaml_parse(in_text, size, &lim, &in_s, &err) == 0);
    /* Aliases come out expanded: the output may be larger than the input's limits allow. */
    lim.max_bytes = lim.max_expanded_bytes = 1u << 30;
    lim.max_nodes = 100u << 20;
    check(cp_yaml_parse(out_text, out.len, &lim, &out_s, &err) == 0);
    check(in_s->n_docs == out_s->n_docs);
    cp_yaml_free(in_s);
    cp_yaml_free(out_s);
    if (out.len <= (1u << 20)) {
        rc = cp_inject(out_text, out.len, &o, &again, NULL, &err);
        check(rc == 0 && again.len == out.len &&
              (out.len == 0 || memcmp(again.data, out_text, out.len) == 0));
    }
    wf_buf_free(&again);
    wf_buf_free(&out);
    return 0;
}
