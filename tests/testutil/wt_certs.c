/*
 * wt_certs.c - test certificates made with the openssl command line (see wt_certs.h).
 */
#include "wt_certs.h"

#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_str.h"
#include "wt_util.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

const char *wt_cert_path(const char *dir, const char *name, bool key, char *out, unsigned cap)
{
    snprintf(out, cap, "%s/%s.%s", dir, name, key ? "key" : "pem");
    return out;
}

/* Run openssl with argv (argv[0] = "openssl"); its output goes to <dir>/openssl.log, printed
 * when it fails. */
static int run_openssl(const char *dir, char *const argv[])
{
    char log[4200];
    snprintf(log, sizeof(log), "%s/openssl.log", dir);
    int st = wt_wait(wt_spawn(argv, log), 30000);
    if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        return 0;
    }
    char *text = wt_read_file(log, NULL);
    fprintf(stderr, "wt_certs: %s %s failed:\n%s\n", argv[0], argv[1], text ? text : "");
    wf_free(text);
    return -1;
}

int wt_cert_ca(const char *dir, const char *name)
{
    char pem[4200], key[4200], subj[256];
    snprintf(subj, sizeof(subj), "/O=cluster.local/CN=%s", name);
    char *argv[] = {"openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    (char *)wt_cert_path(dir, name, true, key, sizeof(key)),
                    "-out",
                    (char *)wt_cert_path(dir, name, false, pem, sizeof(pem)),
                    "-days",
                    "1",
                    "-subj",
                    subj,
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                    NULL};
    return run_openssl(dir, argv);
}

int wt_cert_leaf(const char *dir, const char *name, const char *ca, const char *san, bool expired)
{
    char pem[4200], key[4200], csr[4200], ext[4200], capem[4200], cakey[4200], subj[256];
    snprintf(subj, sizeof(subj), "/O=cluster.local/CN=%s", name);
    snprintf(csr, sizeof(csr), "%s/%s.csr", dir, name);
    snprintf(ext, sizeof(ext), "%s/%s.ext", dir, name);
    wf_buf_t e = WF_BUF_INIT;
    wf_buf_puts(&e, "[v3]\nbasicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n");
    if (san != NULL) {
        wf_buf_printf(&e, "subjectAltName=%s\n", san);
    }
    wt_write_file(ext, wf_buf_cstr(&e));
    wf_buf_free(&e);
    char *req[] = {"openssl",
                   "req",
                   "-new",
                   "-newkey",
                   "ec",
                   "-pkeyopt",
                   "ec_paramgen_curve:P-256",
                   "-nodes",
                   "-keyout",
                   (char *)wt_cert_path(dir, name, true, key, sizeof(key)),
                   "-out",
                   csr,
                   "-subj",
                   subj,
                   NULL};
    if (run_openssl(dir, req) != 0) {
        return -1;
    }
    const char *days = expired ? "-1" : "1";
    wt_cert_path(dir, name, false, pem, sizeof(pem));
    if (ca == NULL) {
        char *self[] = {"openssl", "x509",  "-req",       "-in",      csr, "-signkey",
                        key,       "-days", (char *)days, "-extfile", ext, "-extensions",
                        "v3",      "-out",  pem,          NULL};
        return run_openssl(dir, self);
    }
    /* Distinct serials per name: peers cache sessions and verifiers look certificates up by
     * issuer and serial. */
    char serial[32];
    snprintf(serial, sizeof(serial), "%llu",
             (unsigned long long)(wf_hash64(name, strlen(name), 7) >> 2));
    char *sign[] = {"openssl",
                    "x509",
                    "-req",
                    "-in",
                    csr,
                    "-CA",
                    (char *)wt_cert_path(dir, ca, false, capem, sizeof(capem)),
                    "-CAkey",
                    (char *)wt_cert_path(dir, ca, true, cakey, sizeof(cakey)),
                    "-set_serial",
                    serial,
                    "-days",
                    (char *)days,
                    "-extfile",
                    ext,
                    "-extensions",
                    "v3",
                    "-out",
                    pem,
                    NULL};
    return run_openssl(dir, sign);
}
