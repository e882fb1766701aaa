/*
 * wt_certs.h - certificates for tests and benchmarks, made with the `openssl` command line as an
 * operator would make them: a CA, leaves it signs (SPIFFE URI SANs, optionally expired), and
 * self-signed leaves. Every file is PEM in dir: <name>.pem (certificate) and <name>.key (its
 * EC P-256 key, unencrypted).
 */
#ifndef WT_CERTS_H
#define WT_CERTS_H

#include <stdbool.h>

/* A self-signed CA named name (CA:TRUE, keyCertSign), valid for a day. 0, or -1 (the openssl
 * output is printed). */
int wt_cert_ca(const char *dir, const char *name);
/*
 * A leaf name signed by the CA ca (a name given to wt_cert_ca in dir), or self-signed when ca
 * is NULL. san is an openssl subjectAltName value ("URI:spiffe://cluster.local/ns/default/sa/x",
 * "URI:...,DNS:server") or NULL for none. expired: its notAfter is a day ago. Key usage and
 * extended key usage fit a workload certificate (serverAuth and clientAuth). 0 or -1.
 */
int wt_cert_leaf(const char *dir, const char *name, const char *ca, const char *san, bool expired);
/* <dir>/<name>.pem (or .key with key true) into out; returns out. */
const char *wt_cert_path(const char *dir, const char *name, bool key, char *out, unsigned cap);

#endif
