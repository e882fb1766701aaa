/*
 * test_control_ca.c - the mesh CA of a real `weft control`, checked with the openssl CLI: a
 * registered workload's CSR (key made by `openssl req`) signed into a chain that `openssl
 * verify` accepts against the served bundle, with exactly the workload's SPIFFE URI as SAN;
 * refusals (another identity 403, unregistered 404, no token 401, garbage 400, oversized 413)
 * counted on /metrics; the trust bundle endpoint and the snapshots' "security" key; the root
 * kept across a restart; an intermediate given by --ca-cert/--ca-key/--ca-chain (made with the
 * openssl CLI) chaining to the organisation's root, and a mismatched key refused at start;
 * `weft ca rotate` through its phases with a short propagation timeout and overlap.
 */
#include "wf_alloc.h"
#include "wt_control.h"
#include "wt_util.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define ID "spiffe://cluster.local/ns/shop/sa/cart"

/* dir/name's contents (wf_free it); fails the test when absent. */
static char *slurp(const char *dir, const char *name)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *s = wt_read_file(path, NULL);
    if (s == NULL) {
        fail_msg("cannot read %s", path);
    }
    return s;
}

static void put(const char *dir, const char *name, const char *text)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    wt_write_file(path, text);
}

static int count_certs(const char *pem)
{
    int n = 0;
    for (const char *p = pem; (p = strstr(p, "-----BEGIN CERTIFICATE-----")) != NULL; p++) {
        n++;
    }
    return n;
}

static void register_workload(wt_control_t *c, const char *service, const char *sa)
{
    char body[512], *out = NULL;
    snprintf(body, sizeof(body),
             "{\"service\":\"%s\",\"namespace\":\"shop\",\"version\":\"v1\",\"address\":"
             "\"127.0.0.1\",\"serviceAccount\":\"%s\",\"ports\":[9080]}",
             service, sa);
    assert_int_equal(wt_control_req(c->port, "POST", "/v1/register", c->boot, body, &out), 200);
    wf_free(out);
}

/* A P-256 key and a CSR made by the openssl CLI in dir/<name>.csr, asking for san (NULL:
 * none); the JSON body {"csr": PEM} (wf_free it). */
static char *csr_body(const char *dir, const char *name, const char *san)
{
    char ext[600] = "";
    if (san != NULL) {
        snprintf(ext, sizeof(ext), "-addext 'subjectAltName=%s'", san);
    }
    assert_int_equal(wt_sh(dir,
                           "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                           "-subj / %s -keyout %s.key -out %s.csr",
                           ext, name, name),
                     0);
    char file[64];
    snprintf(file, sizeof(file), "%s.csr", name);
    char *pem = slurp(dir, file);
    json_t *o = json_pack("{s:s}", "csr", pem);
    char *body = json_dumps(o, JSON_COMPACT);
    char *out = wf_strdup(body);
    free(body);
    json_decref(o);
    wf_free(pem);
    return out;
}

/* POST /v1/certificate for proxy with token; the status, and the answer parsed in *ans. */
static int certify(wt_control_t *c, const char *proxy, const char *token, const char *body,
                   json_t **ans)
{
    char path[256], *out = NULL;
    snprintf(path, sizeof(path), "/v1/certificate?proxy=%s", proxy);
    int st = wt_control_req(c->port, "POST", path, token, body, &out);
    *ans = json_loads(out ? out : "", 0, NULL);
    wf_free(out);
    return st;
}

/*
 * Sign a CSR for cart-v1.shop and write dir/<name>-leaf.pem, <name>-rest.pem (the
 * intermediates) and <name>-bundle.pem from the answer; its trust_bundle_version.
 */
static long issue(wt_control_t *c, const char *name)
{
    char *body = csr_body(c->dir, name, "URI:" ID), file[128];
    json_t *ans = NULL;
    int st = certify(c, "cart-v1.shop", c->boot, body, &ans);
    wf_free(body);
    if (st != 200 || ans == NULL) {
        fail_msg("certificate: HTTP %d", st);
    }
    const char *chain = json_string_value(json_object_get(ans, "certificate_chain"));
    const char *bundle = json_string_value(json_object_get(ans, "trust_bundle"));
    assert_non_null(chain);
    assert_non_null(bundle);
    const char *end = strstr(chain, "-----END CERTIFICATE-----\n");
    assert_non_null(end);
    end += strlen("-----END CERTIFICATE-----\n");
    char *leaf = wf_malloc((size_t)(end - chain) + 1);
    memcpy(leaf, chain, (size_t)(end - chain));
    leaf[end - chain] = '\0';
    snprintf(file, sizeof(file), "%s-leaf.pem", name);
    put(c->dir, file, leaf);
    snprintf(file, sizeof(file), "%s-rest.pem", name);
    put(c->dir, file, end);
    snprintf(file, sizeof(file), "%s-bundle.pem", name);
    put(c->dir, file, bundle);
    /* valid for the default 24 h from now (the clock may tick between) */
    int64_t left = json_integer_value(json_object_get(ans, "not_after")) - (int64_t)time(NULL);
    assert_true(left > 86400 - 30 && left <= 86400);
    long v = (long)json_integer_value(json_object_get(ans, "trust_bundle_version"));
    wf_free(leaf);
    json_decref(ans);
    return v;
}

/* openssl verify of dir/<name>-leaf.pem against the roots in dir/bundle_file, with
 * <name>-rest.pem as untrusted intermediates when it holds any. */
static bool verifies(const char *dir, const char *name, const char *bundle_file)
{
    char rest[128];
    snprintf(rest, sizeof(rest), "%s-rest.pem", name);
    char *r = slurp(dir, rest);
    bool inter = count_certs(r) > 0;
    wf_free(r);
    return wt_sh(dir, "openssl verify -CAfile %s %s%s %s-leaf.pem", bundle_file,
                 inter ? "-untrusted " : "", inter ? rest : "", name) == 0;
}

static double metric(wt_control_t *c, const char *reason)
{
    char name[128];
    snprintf(name, sizeof(name), "weft_control_ca_csr_refusals_total{reason=\"%s\"}", reason);
    return wt_control_metric(c->port, name);
}

/* GET /v1/trust-bundle with curl: the body into dir/file, the version header's value. */
static long fetch_bundle(wt_control_t *c, const char *file)
{
    assert_int_equal(wt_sh(c->dir, "curl -sf -D hdr.txt -o %s http://127.0.0.1:%d/v1/trust-bundle",
                           file, c->port),
                     0);
    char *hdr = slurp(c->dir, "hdr.txt");
    char *v = strcasestr(hdr, "X-Weft-Trust-Bundle-Version: ");
    long n = v != NULL ? strtol(v + strlen("X-Weft-Trust-Bundle-Version: "), NULL, 10) : -1;
    assert_non_null(strcasestr(hdr, "Content-Type: application/x-pem-file"));
    wf_free(hdr);
    return n;
}

static void test_certificates(void **state)
{
    (void)state;
    wt_control_t c;
    assert_int_equal(wt_control_new(&c, "ctlca", NULL), 0);
    register_workload(&c, "cart", "cart");
    assert_int_equal(issue(&c, "a"), 1);
    assert_true(verifies(c.dir, "a", "a-bundle.pem"));
    /* Exactly the URI, critical, and nothing else. */
    assert_int_equal(wt_sh(c.dir, "openssl x509 -noout -ext subjectAltName -in a-leaf.pem"), 0);
    char *san = slurp(c.dir, "sh.log");
    assert_string_equal(san, "X509v3 Subject Alternative Name: critical\n    URI:" ID "\n");
    wf_free(san);
    assert_int_equal(wt_sh(c.dir, "openssl x509 -noout -ext extendedKeyUsage -in a-leaf.pem"), 0);
    char *eku = slurp(c.dir, "sh.log");
    assert_non_null(strstr(eku, "TLS Web Server Authentication, TLS Web Client Authentication"));
    wf_free(eku);
    assert_int_equal(wt_control_metric(c.port, "weft_control_ca_certificates_issued_total"), 1);

    /* Refusals, each counted by reason. */
    json_t *ans = NULL;
    char *other = csr_body(c.dir, "other", "URI:spiffe://cluster.local/ns/shop/sa/admin");
    assert_int_equal(certify(&c, "cart-v1.shop", c.boot, other, &ans), 403);
    assert_non_null(strstr(json_string_value(json_object_get(ans, "error")), ID));
    json_decref(ans);
    char *dns = csr_body(c.dir, "dns", "URI:" ID ",DNS:cart.shop.svc.cluster.local");
    assert_int_equal(certify(&c, "cart-v1.shop", c.boot, dns, &ans), 403);
    json_decref(ans);
    assert_int_equal(metric(&c, "identity"), 2);
    char *good = csr_body(c.dir, "good", NULL);
    assert_int_equal(certify(&c, "ghost-v1.shop", c.boot, good, &ans), 404);
    assert_non_null(strstr(json_string_value(json_object_get(ans, "error")), "register"));
    json_decref(ans);
    assert_int_equal(metric(&c, "unregistered"), 1);
    assert_int_equal(certify(&c, "cart-v1.shop", NULL, good, &ans), 401);
    json_decref(ans);
    assert_int_equal(certify(&c, "cart-v1.shop", "wrong-token", good, &ans), 401);
    json_decref(ans);
    assert_int_equal(certify(&c, "cart-v1.shop", c.boot, "{not json", &ans), 400);
    json_decref(ans);
    assert_int_equal(certify(&c, "cart-v1.shop", c.boot, "{\"csr\":\"garbage\"}", &ans), 400);
    json_decref(ans);
    assert_int_equal(metric(&c, "malformed"), 2);
    /* 70 KiB: refused by its Content-Length, and chunked (no length) once read past 64 KiB. */
    size_t big = 70 << 10;
    char *huge = wf_malloc(big + 1);
    memset(huge, 'x', big);
    huge[big] = '\0';
    char *out = NULL;
    assert_int_equal(wt_control_req_full(c.port, "POST", "/v1/certificate?proxy=cart-v1.shop",
                                         c.boot, huge, big, false, 10000, &out),
                     413);
    wf_free(out);
    assert_int_equal(wt_control_req_full(c.port, "POST", "/v1/certificate?proxy=cart-v1.shop",
                                         c.boot, huge, big, true, 10000, &out),
                     413);
    wf_free(out);
    wf_free(huge);
    assert_int_equal(metric(&c, "too_large"), 2);
    /* The good CSR (no SAN asked) is still signed: nothing above broke the CA. */
    assert_int_equal(certify(&c, "cart-v1.shop", c.boot, good, &ans), 200);
    json_decref(ans);

    /* The bundle endpoint (no token) and the snapshots carry the same roots. */
    assert_int_equal(fetch_bundle(&c, "served.pem"), 1);
    char *served = slurp(c.dir, "served.pem"), *given = slurp(c.dir, "a-bundle.pem");
    assert_string_equal(served, given);
    assert_int_equal(
        wt_control_req(c.port, "GET", "/v1/snapshot?proxy=cart-v1.shop", c.boot, NULL, &out), 200);
    json_t *snap = json_loads(out, 0, NULL);
    wf_free(out);
    json_t *sec = json_object_get(snap, "security");
    assert_string_equal(json_string_value(json_object_get(sec, "trust_bundle")), served);
    assert_int_equal(json_integer_value(json_object_get(sec, "trust_bundle_version")), 1);
    json_decref(snap);
    assert_int_equal(wt_control_req(c.port, "GET", "/v1/ca", c.admin, NULL, &out), 200);
    json_t *st = json_loads(out, 0, NULL);
    wf_free(out);
    assert_string_equal(json_string_value(json_object_get(st, "mode")), "managed");
    json_t *r0 = json_array_get(json_object_get(st, "roots"), 0);
    assert_string_equal(json_string_value(json_object_get(r0, "state")), "ACTIVE");
    assert_string_equal(json_string_value(json_object_get(r0, "subject")),
                        "/O=cluster.local/CN=weft root CA");
    json_decref(st);

    /* A restart keeps the root: the bundle is the same and old certificates still verify. */
    char path[700];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/ca/root-1-key.pem", c.data);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(wt_control_stop(&c), 0);
    assert_int_equal(wt_control_start(&c, NULL), 0);
    assert_int_equal(fetch_bundle(&c, "served2.pem"), 1);
    char *again = slurp(c.dir, "served2.pem");
    assert_string_equal(again, served);
    assert_true(verifies(c.dir, "a", "served2.pem"));

    wf_free(again);
    wf_free(served);
    wf_free(given);
    wf_free(other);
    wf_free(dns);
    wf_free(good);
    wt_control_free(&c);
}

static void test_intermediate(void **state)
{
    (void)state;
    char *dir = wt_tmpdir("ctlca-org");
    assert_int_equal(
        wt_sh(dir, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "
                   "'/O=example org/CN=org root' -keyout root.key -out root.pem -days 30 "
                   "-addext basicConstraints=critical,CA:TRUE "
                   "-addext keyUsage=critical,keyCertSign,cRLSign"),
        0);
    assert_int_equal(wt_sh(dir, "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
                                "-nodes -subj '/O=example org/CN=weft intermediate' -keyout "
                                "int.key -out int.csr"),
                     0);
    put(dir, "ext.cnf",
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n");
    assert_int_equal(wt_sh(dir, "openssl x509 -req -in int.csr -CA root.pem -CAkey root.key "
                                "-CAcreateserial -days 7 -extfile ext.cnf -out int.pem && "
                                "cat int.pem root.pem > chain.pem"),
                     0);
    char cert[700], key[700], chain[700], rootkey[700];
    snprintf(cert, sizeof(cert), "%s/int.pem", dir);
    snprintf(key, sizeof(key), "%s/int.key", dir);
    snprintf(chain, sizeof(chain), "%s/chain.pem", dir);
    snprintf(rootkey, sizeof(rootkey), "%s/root.key", dir);

    wt_control_t c;
    const char *const args[] = {"--ca-cert", cert, "--ca-key", key, "--ca-chain", chain, NULL};
    assert_int_equal(wt_control_new(&c, "ctlca", args), 0);
    register_workload(&c, "cart", "cart");
    issue(&c, "i");
    char *rest = slurp(c.dir, "i-rest.pem"), *intpem = slurp(dir, "int.pem");
    assert_string_equal(rest, intpem); /* leaf, then the intermediate */
    char *bundle = slurp(c.dir, "i-bundle.pem"), *root = slurp(dir, "root.pem");
    assert_string_equal(bundle, root); /* the organisation's root is the trust anchor */
    char cmd[1600];
    snprintf(cmd, sizeof(cmd),
             "openssl verify -CAfile %s/root.pem -untrusted i-rest.pem i-leaf.pem", dir);
    assert_int_equal(wt_sh(c.dir, "%s", cmd), 0);
    /* Without the intermediate it does not chain. */
    snprintf(cmd, sizeof(cmd), "openssl verify -CAfile %s/root.pem i-leaf.pem", dir);
    assert_int_not_equal(wt_sh(c.dir, "%s", cmd), 0);
    /* A given signer does not rotate. */
    assert_int_equal(wt_sh(c.dir,
                           "WEFT_CONTROL=http://127.0.0.1:%d WEFT_TOKEN_FILE=%s %s ca rotate",
                           c.port, c.admin_file, wt_weft_bin()),
                     1);
    char *log = slurp(c.dir, "sh.log");
    assert_non_null(strstr(log, "--ca-cert"));
    wf_free(log);
    wt_control_free(&c);

    /* The root's key with the intermediate's certificate: refused at start (exit 1), and said
     * why. `timeout` only bounds a control plane that would wrongly keep running. */
    assert_int_equal(
        wt_sh(dir,
              "timeout 20 %s control --data-dir data --listen 127.0.0.1:0 --ca-cert %s "
              "--ca-key %s --ca-chain %s",
              wt_weft_bin(), cert, rootkey, chain),
        1);
    char *clog = slurp(dir, "sh.log");
    assert_non_null(strstr(clog, "cannot start the CA"));
    assert_non_null(strstr(clog, "does not match"));
    wf_free(clog);

    wf_free(rest);
    wf_free(intpem);
    wf_free(bundle);
    wf_free(root);
    wt_rm_rf(dir);
    free(dir);
}

/* GET /v1/ca until pred holds (at most 15 s); the status then, or NULL. */
static json_t *wait_status(wt_control_t *c, bool (*pred)(json_t *))
{
    for (int i = 0; i < 150; i++) {
        char *out = NULL;
        if (wt_control_req(c->port, "GET", "/v1/ca", c->admin, NULL, &out) == 200) {
            json_t *st = json_loads(out, 0, NULL);
            wf_free(out);
            if (st != NULL && pred(st)) {
                return st;
            }
            json_decref(st);
        } else {
            wf_free(out);
        }
        usleep(100 * 1000);
    }
    return NULL;
}

static bool switched(json_t *st)
{
    return json_is_null(json_object_get(st, "rotation"));
}

static bool one_root(json_t *st)
{
    return json_array_size(json_object_get(st, "roots")) == 1;
}

static void test_rotation(void **state)
{
    (void)state;
    wt_control_t c;
    const char *const args[] = {"--ca-propagation-timeout", "1s", "--ca-root-overlap", "3s", NULL};
    assert_int_equal(wt_control_new(&c, "ctlca", args), 0);
    /* A registered workload that never polls: the rotation proceeds on the timeout. */
    register_workload(&c, "cart", "cart");
    assert_int_equal(issue(&c, "old"), 1);
    assert_int_equal(fetch_bundle(&c, "bundle1.pem"), 1);

    assert_int_equal(wt_sh(c.dir,
                           "WEFT_CONTROL=http://127.0.0.1:%d WEFT_TOKEN_FILE=%s %s ca rotate",
                           c.port, c.admin_file, wt_weft_bin()),
                     0);
    char *log = slurp(c.dir, "sh.log");
    assert_non_null(strstr(log, "trust bundle version 2"));
    assert_non_null(strstr(log, "TRUSTED"));
    wf_free(log);
    /* Phase 1: both roots trusted. */
    assert_int_equal(fetch_bundle(&c, "bundle2.pem"), 2);
    char *b2 = slurp(c.dir, "bundle2.pem");
    assert_int_equal(count_certs(b2), 2);
    wf_free(b2);
    assert_true(verifies(c.dir, "old", "bundle2.pem"));

    /* Phase 2: the new root signs; old certificates still verify against the bundle. */
    json_t *st = wait_status(&c, switched);
    assert_non_null(st);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(st, "roots"), 0), "state")),
                        "RETIRING");
    json_decref(st);
    assert_int_equal(issue(&c, "new"), 2);
    assert_true(verifies(c.dir, "new", "bundle2.pem"));
    assert_false(verifies(c.dir, "new", "bundle1.pem")); /* chains to the new root */
    assert_true(verifies(c.dir, "old", "bundle2.pem"));

    /* Phase 3: after the overlap the old root is gone from the bundle and the snapshots. */
    st = wait_status(&c, one_root);
    assert_non_null(st);
    assert_int_equal(json_integer_value(json_object_get(st, "bundle_version")), 3);
    json_decref(st);
    assert_int_equal(fetch_bundle(&c, "bundle3.pem"), 3);
    assert_true(verifies(c.dir, "new", "bundle3.pem"));
    assert_false(verifies(c.dir, "old", "bundle3.pem"));
    assert_int_equal(wt_control_metric(c.port, "weft_control_ca_roots"), 1);
    assert_int_equal(wt_control_metric(c.port, "weft_control_ca_trust_bundle_version"), 3);
    char *out = NULL, *b3 = slurp(c.dir, "bundle3.pem");
    json_t *snap = NULL;
    for (int i = 0; i < 50; i++) {
        assert_int_equal(
            wt_control_req(c.port, "GET", "/v1/snapshot?proxy=cart-v1.shop", c.boot, NULL, &out),
            200);
        snap = json_loads(out, 0, NULL);
        wf_free(out);
        json_t *sec = json_object_get(snap, "security");
        if (json_integer_value(json_object_get(sec, "trust_bundle_version")) == 3) {
            assert_string_equal(json_string_value(json_object_get(sec, "trust_bundle")), b3);
            break;
        }
        json_decref(snap);
        snap = NULL;
        usleep(100 * 1000);
    }
    assert_non_null(snap);
    json_decref(snap);
    wf_free(b3);
    wt_control_free(&c);
}

/* The version of cart-v1.shop's current snapshot once it carries bundle version want (at
 * most 10 s of polls that do not wait); -1 if it never does. */
static long long snapshot_with_bundle(wt_control_t *c, long want)
{
    for (int i = 0; i < 100; i++) {
        char *out = NULL;
        int st = wt_control_req(c->port, "GET", "/v1/snapshot?proxy=cart-v1.shop&wait_ms=0",
                                c->boot, NULL, &out);
        json_t *snap = st == 200 ? json_loads(out, 0, NULL) : NULL;
        wf_free(out);
        json_t *sec = json_object_get(snap, "security");
        long long v = json_integer_value(json_object_get(snap, "version"));
        bool found = json_integer_value(json_object_get(sec, "trust_bundle_version")) == want;
        json_decref(snap);
        if (found) {
            return v;
        }
        usleep(100 * 1000);
    }
    return -1;
}

/* With the default 60 s propagation timeout, the new root signs as soon as the one live proxy
 * acknowledges a snapshot carrying the new bundle, and not before. */
static void test_rotation_acked(void **state)
{
    (void)state;
    wt_control_t c;
    assert_int_equal(wt_control_new(&c, "ctlca", NULL), 0);
    register_workload(&c, "cart", "cart");
    assert_int_equal(fetch_bundle(&c, "bundle1.pem"), 1);
    char *out = NULL;
    assert_int_equal(wt_control_req(c.port, "POST", "/v1/ca/rotate", c.boot, "", &out), 401);
    wf_free(out);
    assert_int_equal(wt_control_req(c.port, "POST", "/v1/ca/rotate", c.admin, "", &out), 200);
    json_t *st = json_loads(out, 0, NULL);
    wf_free(out);
    assert_int_equal(json_integer_value(json_object_get(st, "bundle_version")), 2);
    assert_true(json_is_object(json_object_get(st, "rotation")));
    json_decref(st);
    assert_int_equal(wt_control_req(c.port, "POST", "/v1/ca/rotate", c.admin, "", &out), 409);
    wf_free(out);

    long long v = snapshot_with_bundle(&c, 2);
    assert_true(v > 0);
    /* Fetched, not acknowledged: still the old root signs (the timeout is a minute away). */
    sleep(2);
    assert_int_equal(wt_control_req(c.port, "GET", "/v1/ca", c.admin, NULL, &out), 200);
    st = json_loads(out, 0, NULL);
    wf_free(out);
    assert_true(json_is_object(json_object_get(st, "rotation")));
    json_decref(st);
    /* The proxy's next poll acknowledges v: the switch follows within the main loop's tick. */
    char path[128];
    snprintf(path, sizeof(path), "/v1/snapshot?proxy=cart-v1.shop&version=%lld&wait_ms=0", v);
    int code = wt_control_req(c.port, "GET", path, c.boot, NULL, &out);
    assert_true(code == 304 || code == 200);
    wf_free(out);
    st = wait_status(&c, switched);
    assert_non_null(st);
    json_decref(st);
    assert_int_equal(issue(&c, "acked"), 2);
    assert_int_equal(fetch_bundle(&c, "bundle2.pem"), 2);
    assert_true(verifies(c.dir, "acked", "bundle2.pem"));
    assert_false(verifies(c.dir, "acked", "bundle1.pem"));
    wt_control_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_certificates),
        cmocka_unit_test(test_intermediate),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_rotation_acked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
