/*
 * fuzz_cp_ca_csr.c - feeds arbitrary certificate requests to the CA's CSR path (cp_ca.c): the
 * first byte picks the form, 0 = the rest is PEM text as a proxy would POST it, 1 = the rest
 * is DER, wrapped here into a PEM block so that the ASN.1 parser itself sees arbitrary bytes.
 * A request the checks accept must then be signed into a chain: the answer is a known refusal
 * or a certificate, never a crash, a leak or an internal error. The CA lives in a temporary
 * directory created on the first input and removed at exit.
 */
#include "cp_ca.h"

#include "wf_log.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ID "spiffe://cluster.local/ns/shop/sa/cart"

static char dir[64];
static cp_ca_t *ca;

static void remove_all(void)
{
    static const char *const files[] = {"root-1.pem", "root-1-key.pem", "state.json"};
    char path[128];
    cp_ca_close(ca);
    ca = NULL;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* data as one PEM CERTIFICATE REQUEST block (malloc'ed, *len bytes). */
static char *wrap_der(const uint8_t *data, size_t size, size_t *len)
{
    static const char head[] = "-----BEGIN CERTIFICATE REQUEST-----\n";
    static const char tail[] = "-----END CERTIFICATE REQUEST-----\n";
    size_t b64 = 4 * ((size + 2) / 3);
    char *out = malloc(sizeof(head) + b64 + b64 / 64 + 2 + sizeof(tail));
    if (out == NULL) {
        abort();
    }
    size_t n = strlen(head);
    memcpy(out, head, n);
    for (size_t off = 0; off < size; off += 48) {
        size_t chunk = size - off < 48 ? size - off : 48;
        n += (size_t)EVP_EncodeBlock((unsigned char *)out + n, data + off, (int)chunk);
        out[n++] = '\n';
    }
    memcpy(out + n, tail, strlen(tail));
    *len = n + strlen(tail);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ca == NULL) {
        char err[256];
        wf_log_set_level(WF_ERROR);
        snprintf(dir, sizeof(dir), "/tmp/fuzz_cp_ca_csr.XXXXXX");
        cp_ca_opts_t o = {.dir = dir};
        if (mkdtemp(dir) == NULL || cp_ca_open(&o, 1790000000000LL, &ca, err, sizeof(err)) != 0) {
            abort();
        }
        atexit(remove_all);
    }
    if (size == 0 || size > CP_CA_MAX_CSR_BODY) {
        return 0;
    }
    size_t len = 0;
    char *pem;
    if (data[0] & 1) {
        pem = wrap_der(data + 1, size - 1, &len);
    } else {
        len = size - 1;
        pem = malloc(len + 1);
        if (pem == NULL) {
            abort();
        }
        memcpy(pem, data + 1, len);
    }
    cp_ca_issued_t out;
    char err[256];
    int rc = cp_ca_sign(ca, pem, len, ID, 1790000000000LL, &out, err, sizeof(err));
    if (rc == 0) {
        if (out.chain_pem == NULL || strstr(out.chain_pem, "BEGIN CERTIFICATE") == NULL ||
            cp_ca_check_csr(pem, len, ID, NULL, 0) != 0) {
            abort();
        }
        cp_ca_issued_free(&out);
    } else if (rc != CP_CA_E_MALFORMED && rc != CP_CA_E_KEY && rc != CP_CA_E_IDENTITY) {
        fprintf(stderr, "fuzz_cp_ca_csr: unexpected %d: %s\n", rc, err);
        abort();
    }
    free(pem);
    return 0;
}
