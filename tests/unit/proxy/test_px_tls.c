/*
 * test_px_tls.c - mutual TLS inside px_transport_t: real transports on one libuv loop over
 * loopback sockets, with certificates made here (a CA, leaves with SPIFFE URI SANs, and the bad
 * ones: expired, from another CA, self-signed, without a SAN, oversized). Peers that must be
 * refused are plain OpenSSL on blocking sockets in a thread, so that they can be as wrong as needed
 * (TLS 1.2 only, no or unknown ALPN, certificates px_creds would not even load).
 */
#include "px_tls.h"

#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_err.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#define ID_SERVER "spiffe://cluster.local/ns/default/sa/server"
#define ID_SERVER2 "spiffe://cluster.local/ns/default/sa/server-rotated"
#define ID_CLIENT "spiffe://cluster.local/ns/default/sa/client"
#define MAX_CONNS 8
#define BIG (1u << 20)

/* ---------------------------------------------------------------------------------------- */
/* Certificates */

typedef struct {
    X509 *cert;
    EVP_PKEY *key;
} kc_t;

static void add_ext(X509 *x, X509V3_CTX *v, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v, nid, value);
    assert_non_null(e);
    assert_int_equal(X509_add_ext(x, e, -1), 1);
    X509_EXTENSION_free(e);
}

/* A certificate for a new P-256 key, signed by issuer (NULL: self-signed), valid from nb to na
 * seconds from now, with URI SAN uri (NULL: no SAN). */
static kc_t mkcert(const char *cn, const kc_t *issuer, bool ca, const char *uri, long nb, long na)
{
    static long serial = 1;
    kc_t k = {X509_new(), EVP_EC_gen("P-256")};
    assert_non_null(k.cert);
    assert_non_null(k.key);
    X509 *x = k.cert;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), nb);
    X509_gmtime_adj(X509_getm_notAfter(x), na);
    X509_set_pubkey(x, k.key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer->cert) : n);
    X509V3_CTX v;
    X509V3_set_ctx_nodb(&v);
    X509V3_set_ctx(&v, issuer != NULL ? issuer->cert : x, x, NULL, NULL, 0);
    add_ext(x, &v, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    add_ext(x, &v, NID_key_usage,
            ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,keyEncipherment");
    add_ext(x, &v, NID_subject_key_identifier, "hash");
    if (!ca) {
        add_ext(x, &v, NID_ext_key_usage, "serverAuth,clientAuth");
    }
    if (uri != NULL) {
        char san[256];
        snprintf(san, sizeof(san), "URI:%s", uri);
        add_ext(x, &v, NID_subject_alt_name, san);
    }
    assert_true(X509_sign(x, issuer != NULL ? issuer->key : k.key, EVP_sha256()) > 0);
    return k;
}

static void kc_free(kc_t *k)
{
    X509_free(k->cert);
    EVP_PKEY_free(k->key);
}

static char *pem(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    char *out = wf_strndup(p, (size_t)n);
    BIO_free(b);
    return out;
}

static void creds_set(px_creds_t *c, const kc_t *leaf, const kc_t *root)
{
    char err[256] = "";
    char *lp = pem(leaf->cert);
    assert_int_equal(px_creds_set_cert(c, lp, strlen(lp), leaf->key, err, sizeof(err)), 0);
    wf_free(lp);
    char *rp = pem(root->cert);
    assert_int_equal(px_creds_set_roots(c, rp, strlen(rp), err, sizeof(err)), 0);
    wf_free(rp);
}

/* ---------------------------------------------------------------------------------------- */
/* Transports on one loop */

typedef struct fx fx_t;

typedef struct {
    px_transport_t t;
    fx_t *f;
    bool used;
    bool server;
    wf_buf_t in;     /* plaintext received */
    char mem[65536]; /* what on_alloc gives */
    int err;         /* the first negative on_read */
    int connect;     /* on_connect's status; 1 before it */
    bool closed;
    bool echo; /* a server writes back what it reads */
    bool close_on_connect;
    size_t stop_after; /* stop reading once this many bytes came (0: never) */
    size_t reads_while_stopped;
    bool stopped;
    size_t written_events;
} conn_t;

struct fx {
    uv_loop_t loop;
    uv_tcp_t lsn;
    uv_timer_t tick;
    int port;
    px_creds_t *screds, *ccreds;
    px_tls_ctx_t *sctx, *cctx;
    px_tls_inbound_t mode;
    conn_t conns[MAX_CONNS];
    kc_t ca, other_ca, server, client;
    bool server_echo;
    px_creds_t *empty_creds;
};

static void c_alloc(px_transport_t *t, size_t s, uv_buf_t *b)
{
    (void)s;
    conn_t *c = t->owner;
    *b = uv_buf_init(c->mem, sizeof(c->mem));
}

static void c_read(px_transport_t *t, ssize_t n, const uv_buf_t *b)
{
    conn_t *c = t->owner;
    if (n < 0) {
        if (c->err == 0) {
            c->err = (int)n;
        }
        px_transport_close(t);
        return;
    }
    if (c->stopped) {
        c->reads_while_stopped++;
    }
    wf_buf_append(&c->in, b->base, (size_t)n);
    if (c->echo) {
        uv_buf_t w = uv_buf_init(b->base, (unsigned)n);
        assert_int_equal(px_transport_write(t, &w, 1), 0);
    }
    if (c->stop_after > 0 && c->in.len >= c->stop_after && !c->stopped) {
        c->stopped = true;
        px_transport_read_stop(t);
    }
}

static void c_written(px_transport_t *t, int status)
{
    conn_t *c = t->owner;
    assert_int_equal(status, 0);
    c->written_events++;
}

static void c_connect(px_transport_t *t, int status)
{
    conn_t *c = t->owner;
    c->connect = status;
    if (status == 0 && c->close_on_connect) {
        px_transport_close(t);
    } else if (status == 0) {
        assert_int_equal(px_transport_read_start(t), 0);
    } else {
        px_transport_close(t);
    }
}

static void c_closed(px_transport_t *t)
{
    conn_t *c = t->owner;
    c->closed = true;
}

static const px_transport_cbs_t cbs = {
    .on_alloc = c_alloc,
    .on_read = c_read,
    .on_written = c_written,
    .on_connect = c_connect,
    .on_closed = c_closed,
};

static conn_t *conn_new(fx_t *f, bool server)
{
    for (int i = 0; i < MAX_CONNS; i++) {
        conn_t *c = &f->conns[i];
        if (!c->used) {
            memset(c, 0, sizeof(*c));
            c->used = true;
            c->f = f;
            c->server = server;
            c->connect = 1;
            assert_int_equal(px_transport_init(&f->loop, &c->t, &cbs, c), 0);
            return c;
        }
    }
    fail_msg("too many connections");
    return NULL;
}

static void on_conn(uv_stream_t *s, int status)
{
    fx_t *f = s->data;
    assert_int_equal(status, 0);
    conn_t *c = conn_new(f, true);
    c->echo = f->server_echo;
    assert_int_equal(px_transport_accept(s, &c->t), 0);
    assert_int_equal(px_transport_tls_accept(&c->t, f->sctx, f->mode), 0);
    assert_int_equal(px_transport_read_start(&c->t), 0);
}

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

/* Run the loop until cond holds (fails after 10 s). */
#define RUN_UNTIL(f, cond)                                                                         \
    do {                                                                                           \
        uint64_t end_ = uv_now(&(f)->loop) + 10000;                                                \
        uv_timer_start(&(f)->tick, tick_cb, 2, 2);                                                 \
        while (!(cond) && uv_now(&(f)->loop) < end_) {                                             \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        }                                                                                          \
        uv_timer_stop(&(f)->tick);                                                                 \
        assert_true(cond);                                                                         \
    } while (0)

/* Let the loop run for about ms milliseconds. */
static void run_for(fx_t *f, uint64_t ms)
{
    uv_update_time(&f->loop);
    uint64_t end = uv_now(&f->loop) + ms;
    uv_timer_start(&f->tick, tick_cb, 2, 2);
    while (uv_now(&f->loop) < end) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&f->tick);
}

static conn_t *server_conn(fx_t *f, int nth)
{
    for (int i = 0; i < MAX_CONNS; i++) {
        if (f->conns[i].used && f->conns[i].server && nth-- == 0) {
            return &f->conns[i];
        }
    }
    return NULL;
}

static conn_t *dial(fx_t *f, const char *expect, SSL_SESSION *sess)
{
    conn_t *c = conn_new(f, false);
    wf_str_t e = wf_str(expect != NULL ? expect : "");
    assert_int_equal(px_transport_tls_connect(&c->t, f->cctx, PX_TLS_ALPN_HTTP, &e,
                                              expect != NULL ? 1 : 0, sess),
                     0);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", f->port, &sa);
    assert_int_equal(px_transport_connect(&c->t, (const struct sockaddr *)&sa), 0);
    return c;
}

static int setup(void **state)
{
    fx_t *f = wf_calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->tick);
    uv_tcp_init(&f->loop, &f->lsn);
    f->lsn.data = f;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&f->lsn, (const struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&f->lsn, 16, on_conn), 0);
    struct sockaddr_in got;
    int len = sizeof(got);
    uv_tcp_getsockname(&f->lsn, (struct sockaddr *)&got, &len);
    f->port = ntohs(got.sin_port);
    f->ca = mkcert("mesh root", NULL, true, NULL, -60, 86400);
    f->other_ca = mkcert("other root", NULL, true, NULL, -60, 86400);
    f->server = mkcert("server", &f->ca, false, ID_SERVER, -60, 86400);
    f->client = mkcert("client", &f->ca, false, ID_CLIENT, -60, 86400);
    f->screds = px_creds_create();
    f->ccreds = px_creds_create();
    creds_set(f->screds, &f->server, &f->ca);
    creds_set(f->ccreds, &f->client, &f->ca);
    f->sctx = px_tls_ctx_create(f->screds);
    f->cctx = px_tls_ctx_create(f->ccreds);
    f->mode = PX_TLS_IN_STRICT;
    f->server_echo = true;
    *state = f;
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static int teardown(void **state)
{
    fx_t *f = *state;
    for (int i = 0; i < MAX_CONNS; i++) {
        if (f->conns[i].used && !f->conns[i].t.closing) {
            px_transport_close(&f->conns[i].t);
        }
    }
    RUN_UNTIL(f, ({
                  bool all = true;
                  for (int i = 0; i < MAX_CONNS; i++) {
                      all = all && (!f->conns[i].used || f->conns[i].closed);
                  }
                  all;
              }));
    uv_walk(&f->loop, close_walk, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    for (int i = 0; i < MAX_CONNS; i++) {
        wf_buf_free(&f->conns[i].in);
    }
    px_tls_ctx_destroy(f->sctx);
    px_tls_ctx_destroy(f->cctx);
    px_creds_destroy(f->screds);
    px_creds_destroy(f->ccreds);
    px_creds_destroy(f->empty_creds);
    kc_free(&f->ca);
    kc_free(&f->other_ca);
    kc_free(&f->server);
    kc_free(&f->client);
    wf_free(f);
    return 0;
}

static uint64_t ld(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

/* ---------------------------------------------------------------------------------------- */
/* A raw OpenSSL peer on blocking sockets, in a thread */

typedef struct {
    bool server;
    int port; /* client: where to connect; server: filled in */
    int lfd;
    kc_t *id;   /* its certificate (NULL: none) */
    X509 *root; /* what it trusts (NULL: verifies nothing) */
    int max_version;
    const unsigned char *alpn; /* wire format; NULL: none */
    unsigned alpn_len;
    bool garbage; /* client: send plaintext instead of TLS */
    const char *garbage_text;
    /* results */
    int hs_ok;
    int read_n; /* client: what the read after its request returned */
    char read_buf[64];
    _Atomic bool done;
    pthread_t th;
} raw_t;

static int raw_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    if (inlen > 0 && in[0] + 1u <= inlen) {
        *out = in + 1;
        *outlen = in[0];
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static void *raw_main(void *arg)
{
    raw_t *r = arg;
    int fd;
    if (r->server) {
        fd = accept(r->lfd, NULL, NULL);
    } else {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        atomic_store(&r->done, true);
        return NULL;
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (r->garbage) {
        ssize_t w = write(fd, r->garbage_text, strlen(r->garbage_text));
        (void)w;
        r->read_n = (int)read(fd, r->read_buf, sizeof(r->read_buf));
        close(fd);
        atomic_store(&r->done, true);
        return NULL;
    }
    SSL_CTX *ctx = SSL_CTX_new(r->server ? TLS_server_method() : TLS_client_method());
    SSL_CTX_set_max_proto_version(ctx, r->max_version);
    if (r->id != NULL) {
        SSL_CTX_use_certificate(ctx, r->id->cert);
        SSL_CTX_use_PrivateKey(ctx, r->id->key);
    }
    if (r->root != NULL) {
        X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), r->root);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    if (r->server) {
        SSL_CTX_set_alpn_select_cb(ctx, raw_alpn_cb, NULL);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), r->root);
    } else if (r->alpn != NULL) {
        SSL_CTX_set_alpn_protos(ctx, r->alpn, r->alpn_len);
    }
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    r->hs_ok = (r->server ? SSL_accept(ssl) : SSL_connect(ssl)) == 1;
    if (r->hs_ok) {
        if (!r->server) {
            SSL_write(ssl, "GET / HTTP/1.1\r\n\r\n", 18);
        }
        r->read_n = SSL_read(ssl, r->read_buf, sizeof(r->read_buf));
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    close(fd);
    atomic_store(&r->done, true);
    return NULL;
}

static void raw_start(raw_t *r)
{
    if (r->server) {
        r->lfd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(bind(r->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(r->lfd, 4), 0);
        socklen_t l = sizeof(sa);
        getsockname(r->lfd, (struct sockaddr *)&sa, &l);
        r->port = ntohs(sa.sin_port);
    }
    if (r->max_version == 0) {
        r->max_version = TLS1_3_VERSION;
    }
    assert_int_equal(pthread_create(&r->th, NULL, raw_main, r), 0);
}

static void raw_join(raw_t *r)
{
    pthread_join(r->th, NULL);
    if (r->server) {
        close(r->lfd);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Tests */

static void test_handshake_identities(void **state)
{
    fx_t *f = *state;
    conn_t *c = dial(f, ID_SERVER, NULL);
    RUN_UNTIL(f, c->connect != 1);
    assert_int_equal(c->connect, 0);
    assert_true(px_transport_is_tls(&c->t));
    assert_string_equal(c->t.peer_identity, ID_SERVER);
    conn_t *s = server_conn(f, 0);
    assert_non_null(s);
    RUN_UNTIL(f, s->t.peer_identity != NULL);
    assert_string_equal(s->t.peer_identity, ID_CLIENT);
    uv_buf_t b = uv_buf_init("hello", 5);
    assert_int_equal(px_transport_write(&c->t, &b, 1), 0);
    RUN_UNTIL(f, c->in.len == 5);
    assert_memory_equal(c->in.data, "hello", 5);
    assert_memory_equal(s->in.data, "hello", 5);
    assert_int_equal(ld(&px_tls_ctx_stats(f->sctx)->server_ok), 1);
    assert_int_equal(ld(&px_tls_ctx_stats(f->cctx)->client_ok), 1);
    assert_int_equal(ld(&px_tls_ctx_stats(f->sctx)->server_error), 0);
    /* close_notify: the server hears a clean end. */
    px_transport_close(&c->t);
    RUN_UNTIL(f, s->err != 0);
    assert_int_equal(s->err, UV_EOF);
}

static void fill(char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (char)((i * 31 + seed) & 0xff);
    }
}

/* 1 MiB each way: the server stops reading part way; while it does not read nothing is
 * delivered to it, and once it reads again every byte arrives in order. */
static void test_big_backpressure(void **state)
{
    fx_t *f = *state;
    f->server_echo = false;
    conn_t *c = dial(f, NULL, NULL);
    RUN_UNTIL(f, c->connect != 1);
    assert_int_equal(c->connect, 0);
    RUN_UNTIL(f, server_conn(f, 0) != NULL && server_conn(f, 0)->t.peer_identity != NULL);
    conn_t *s = server_conn(f, 0);
    s->stop_after = 100000;
    /* Small kernel buffers, so that a paused reader backs the writer up into its queue. */
    int small = 32768;
    uv_recv_buffer_size((uv_handle_t *)&s->t.tcp, &small);
    small = 32768;
    uv_send_buffer_size((uv_handle_t *)&c->t.tcp, &small);
    char *up = wf_malloc(BIG), *down = wf_malloc(BIG);
    fill(up, BIG, 7);
    fill(down, BIG, 99);
    uv_buf_t b = uv_buf_init(up, BIG);
    assert_int_equal(px_transport_write(&c->t, &b, 1), 0);
    b = uv_buf_init(down, BIG);
    assert_int_equal(px_transport_write(&s->t, &b, 1), 0);
    RUN_UNTIL(f, s->stopped);
    size_t at_stop = s->in.len;
    run_for(f, 100);
    assert_int_equal(s->reads_while_stopped, 0);
    assert_int_equal(s->in.len, at_stop);
    assert_true(at_stop < BIG);
    /* What the kernel would not take waits in the client's queue: the owner sees it. */
    assert_true(px_transport_queued(&c->t) > 0);
    /* The client's bytes wait somewhere between its queue and the server's buffers. */
    RUN_UNTIL(f, c->in.len == BIG);
    assert_memory_equal(c->in.data, down, BIG);
    s->stopped = false;
    s->stop_after = 0;
    assert_int_equal(px_transport_read_start(&s->t), 0);
    RUN_UNTIL(f, s->in.len == BIG);
    assert_memory_equal(s->in.data, up, BIG);
    RUN_UNTIL(f, px_transport_queued(&c->t) == 0 && px_transport_queued(&s->t) == 0);
    assert_true(c->written_events > 0); /* the queue drained through on_written */
    wf_free(up);
    wf_free(down);
}

/* A TLS server that px's client must refuse; returns the client's connect status. */
static int bad_server(fx_t *f, kc_t *id, const char *expect)
{
    raw_t r = {.server = true, .id = id, .root = f->ca.cert};
    raw_start(&r);
    conn_t *c = conn_new(f, false);
    c->close_on_connect = true;
    wf_str_t e = wf_str(expect != NULL ? expect : "");
    assert_int_equal(px_transport_tls_connect(&c->t, f->cctx, PX_TLS_ALPN_HTTP, &e,
                                              expect != NULL ? 1 : 0, NULL),
                     0);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", r.port, &sa);
    assert_int_equal(px_transport_connect(&c->t, (const struct sockaddr *)&sa), 0);
    RUN_UNTIL(f, c->connect != 1 && atomic_load(&r.done));
    raw_join(&r);
    assert_int_equal(c->in.len, 0);
    if (c->connect != 0) {
        assert_null(c->t.peer_identity);
    }
    return c->connect;
}

/* c grown past what a peer may send (OpenSSL's 100 KiB certificate list limit) by a 150 KiB
 * comment extension, then signed again by issuer. */
static void make_oversized(kc_t *c, const kc_t *issuer)
{
    size_t n = 150 * 1024;
    char *big = wf_malloc(n);
    memset(big, 'x', n);
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();
    assert_int_equal(ASN1_STRING_set(s, big, (int)n), 1);
    assert_int_equal(X509_add1_ext_i2d(c->cert, NID_netscape_comment, s, 0, X509V3_ADD_DEFAULT), 1);
    ASN1_IA5STRING_free(s);
    wf_free(big);
    assert_true(X509_sign(c->cert, issuer->key, EVP_sha256()) > 0);
}

static void test_bad_servers_refused(void **state)
{
    fx_t *f = *state;
    kc_t expired = mkcert("expired", &f->ca, false, ID_SERVER, -7200, -3600);
    kc_t foreign = mkcert("foreign", &f->other_ca, false, ID_SERVER, -60, 86400);
    kc_t self = mkcert("self", NULL, false, ID_SERVER, -60, 86400);
    kc_t nosan = mkcert("nosan", &f->ca, false, NULL, -60, 86400);
    kc_t other = mkcert("other", &f->ca, false, ID_CLIENT, -60, 86400);
    kc_t big = mkcert("big", &f->ca, false, ID_SERVER, -60, 86400);
    make_oversized(&big, &f->ca);
    assert_int_equal(bad_server(f, &big, ID_SERVER), UV_EPROTO);
    assert_int_equal(bad_server(f, &expired, ID_SERVER), UV_EPROTO);
    assert_int_equal(bad_server(f, &foreign, ID_SERVER), UV_EPROTO);
    assert_int_equal(bad_server(f, &self, ID_SERVER), UV_EPROTO);
    assert_int_equal(bad_server(f, &nosan, NULL), UV_EPROTO);
    assert_int_equal(bad_server(f, &other, ID_SERVER), UV_EPROTO); /* wrong SAN */
    assert_int_equal(ld(&px_tls_ctx_stats(f->cctx)->client_error), 6);
    assert_int_equal(ld(&px_tls_ctx_stats(f->cctx)->client_ok), 0);
    /* The same server certificate is fine when the identity matches. */
    assert_int_equal(bad_server(f, &other, ID_CLIENT), 0);
    kc_free(&expired);
    kc_free(&foreign);
    kc_free(&self);
    kc_free(&nosan);
    kc_free(&other);
    kc_free(&big);
}

/* A client px's server must refuse: the server's owner never gets a byte. */
static void bad_client(fx_t *f, raw_t *r)
{
    uint64_t err0 = ld(&px_tls_ctx_stats(f->sctx)->server_error);
    uint64_t ref0 = ld(&px_tls_ctx_stats(f->sctx)->plaintext_refused);
    r->port = f->port;
    if (r->root == NULL) {
        r->root = f->ca.cert;
    }
    raw_start(r);
    RUN_UNTIL(f, atomic_load(&r->done));
    raw_join(r);
    conn_t *s = server_conn(f, 0);
    assert_non_null(s);
    RUN_UNTIL(f, s->err != 0);
    assert_int_equal(s->err, UV_EPROTO);
    assert_int_equal(s->in.len, 0);
    assert_null(s->t.peer_identity);
    assert_true(r->read_n <= 0); /* the client's request got no answer */
    uint64_t d = ld(&px_tls_ctx_stats(f->sctx)->server_error) - err0 +
                 ld(&px_tls_ctx_stats(f->sctx)->plaintext_refused) - ref0;
    assert_int_equal(d, 1);
    RUN_UNTIL(f, s->closed);
    s->used = false;
    wf_buf_free(&s->in);
}

static const unsigned char alpn_http[] = "\x0eistio-http/1.1";
static const unsigned char alpn_h2[] = "\x02h2";

static void test_bad_clients_refused(void **state)
{
    fx_t *f = *state;
    kc_t expired = mkcert("expired", &f->ca, false, ID_CLIENT, -7200, -3600);
    kc_t foreign = mkcert("foreign", &f->other_ca, false, ID_CLIENT, -60, 86400);
    kc_t self = mkcert("self", NULL, false, ID_CLIENT, -60, 86400);
    kc_t nosan = mkcert("nosan", &f->ca, false, NULL, -60, 86400);
    kc_t big = mkcert("big", &f->ca, false, ID_CLIENT, -60, 86400);
    make_oversized(&big, &f->ca);
    kc_t *bad[] = {&expired, &foreign, &self, &nosan, &big, NULL}; /* NULL: no certificate */
    for (int i = 0; i < 6; i++) {
        raw_t r = {.id = bad[i], .alpn = alpn_http, .alpn_len = sizeof(alpn_http) - 1};
        bad_client(f, &r);
    }
    /* TLS 1.2 only, a good certificate. */
    raw_t r12 = {.id = &f->client,
                 .alpn = alpn_http,
                 .alpn_len = sizeof(alpn_http) - 1,
                 .max_version = TLS1_2_VERSION};
    bad_client(f, &r12);
    assert_false(r12.hs_ok);
    /* An unknown protocol, and none at all. */
    raw_t rh2 = {.id = &f->client, .alpn = alpn_h2, .alpn_len = sizeof(alpn_h2) - 1};
    bad_client(f, &rh2);
    assert_false(rh2.hs_ok);
    raw_t rnone = {.id = &f->client};
    bad_client(f, &rnone);
    assert_false(rnone.hs_ok);
    assert_int_equal(ld(&px_tls_ctx_stats(f->sctx)->server_error), 9);
    assert_int_equal(ld(&px_tls_ctx_stats(f->sctx)->server_ok), 0);
    /* The raw client itself is fine: a good certificate and ALPN make it through. */
    raw_t good = {.id = &f->client, .alpn = alpn_http, .alpn_len = sizeof(alpn_http) - 1};
    good.port = f->port;
    good.root = f->ca.cert;
    raw_start(&good);
    RUN_UNTIL(f, atomic_load(&good.done));
    raw_join(&good);
    assert_true(good.hs_ok);
    assert_int_equal(good.read_n, 18); /* the echo */
    assert_int_equal(ld(&px_tls_ctx_stats(f->sctx)->server_ok), 1);
    kc_free(&expired);
    kc_free(&foreign);
    kc_free(&self);
    kc_free(&nosan);
    kc_free(&big);
}

static void test_strict_garbage(void **state)
{
    fx_t *f = *state;
    raw_t r = {.garbage = true, .garbage_text = "GET /secret HTTP/1.1\r\nHost: x\r\n\r\n"};
    bad_client(f, &r);
    assert_int_equal(r.read_n, 0); /* closed at once, nothing answered */
    assert_int_equal(ld(&px_tls_ctx_stats(f->sctx)->plaintext_refused), 1);
    assert_int_equal(ld(&px_tls_ctx_stats(f->sctx)->server_error), 0);
}

static void test_permissive(void **state)
{
    fx_t *f = *state;
    f->mode = PX_TLS_IN_PERMISSIVE;
    raw_t r = {.garbage = true, .garbage_text = "plain hello"};
    r.port = f->port;
    raw_start(&r);
    RUN_UNTIL(f, atomic_load(&r.done));
    raw_join(&r);
    assert_int_equal(r.read_n, 11); /* echoed in plaintext */
    assert_memory_equal(r.read_buf, "plain hello", 11);
    conn_t *s = server_conn(f, 0);
    assert_int_equal(s->in.len, 11);
    assert_null(s->t.peer_identity);
    assert_false(px_transport_is_tls(&s->t));
    RUN_UNTIL(f, s->closed);
    s->used = false;
    wf_buf_free(&s->in);
    /* And a TLS client on the same listener. */
    conn_t *c = dial(f, ID_SERVER, NULL);
    RUN_UNTIL(f, c->connect != 1);
    assert_int_equal(c->connect, 0);
    uv_buf_t b = uv_buf_init("tls hello", 9);
    assert_int_equal(px_transport_write(&c->t, &b, 1), 0);
    RUN_UNTIL(f, c->in.len == 9);
    s = server_conn(f, 0);
    assert_string_equal(s->t.peer_identity, ID_CLIENT);
    assert_true(px_transport_is_tls(&s->t));
    assert_int_equal(ld(&px_tls_ctx_stats(f->sctx)->plaintext_refused), 0);
}

static void test_no_cert(void **state)
{
    fx_t *f = *state;
    px_creds_t *empty = px_creds_create();
    px_tls_ctx_t *x = px_tls_ctx_create(empty);
    assert_false(px_tls_ctx_ready(x));
    conn_t *c = conn_new(f, false);
    assert_int_equal(px_transport_tls_connect(&c->t, x, PX_TLS_ALPN_HTTP, NULL, 0, NULL),
                     WF_E_NOTFOUND);
    assert_null(c->t.tls);
    px_transport_close(&c->t);
    /* A server without a certificate: STRICT refuses everything. */
    px_tls_ctx_destroy(f->sctx); /* no connection uses it yet */
    f->sctx = x;
    conn_t *d = dial(f, NULL, NULL);
    RUN_UNTIL(f, d->connect != 1);
    assert_int_equal(d->connect, UV_EPROTO);
    assert_int_equal(ld(&px_tls_ctx_stats(x)->server_error), 1);
    raw_t r = {.garbage = true, .garbage_text = "plain"};
    bad_client(f, &r);
    assert_int_equal(ld(&px_tls_ctx_stats(x)->plaintext_refused), 1);
    /* PERMISSIVE serves plaintext only: a plain connection, which a TLS client cannot use. */
    f->mode = PX_TLS_IN_PERMISSIVE;
    raw_t p = {.garbage = true, .garbage_text = "plain"};
    p.port = f->port;
    raw_start(&p);
    RUN_UNTIL(f, atomic_load(&p.done));
    raw_join(&p);
    assert_int_equal(p.read_n, 5);
    assert_memory_equal(p.read_buf, "plain", 5);
    conn_t *e = dial(f, NULL, NULL);
    RUN_UNTIL(f, e->connect != 1);
    assert_int_equal(e->connect, UV_EPROTO);
    assert_null(e->t.peer_identity);
    assert_int_equal(ld(&px_tls_ctx_stats(x)->server_error), 1);
    assert_int_equal(ld(&px_tls_ctx_stats(x)->server_ok), 0);
    /* teardown frees x (as f->sctx), after every connection closed; empty must outlive it. */
    f->empty_creds = empty;
}

static bool has_session(conn_t *c)
{
    SSL_SESSION *s = px_transport_tls_session(&c->t);
    SSL_SESSION_free(s);
    return s != NULL;
}

static void test_resumption(void **state)
{
    fx_t *f = *state;
    conn_t *c = dial(f, ID_SERVER, NULL);
    RUN_UNTIL(f, c->connect != 1);
    assert_int_equal(c->connect, 0);
    uv_buf_t b = uv_buf_init("one", 3);
    assert_int_equal(px_transport_write(&c->t, &b, 1), 0);
    RUN_UNTIL(f, c->in.len == 3);
    RUN_UNTIL(f, has_session(c));
    SSL_SESSION *sess = px_transport_tls_session(&c->t);
    assert_non_null(sess);
    px_transport_close(&c->t);
    RUN_UNTIL(f, c->closed);
    assert_int_equal(ld(&px_tls_ctx_stats(f->cctx)->resumed), 0);
    conn_t *d = dial(f, ID_SERVER, sess);
    SSL_SESSION_free(sess);
    RUN_UNTIL(f, d->connect != 1);
    assert_int_equal(d->connect, 0);
    assert_int_equal(ld(&px_tls_ctx_stats(f->cctx)->resumed), 1);
    /* A resumed session still carries both identities. */
    assert_string_equal(d->t.peer_identity, ID_SERVER);
    b = uv_buf_init("two", 3);
    assert_int_equal(px_transport_write(&d->t, &b, 1), 0);
    RUN_UNTIL(f, d->in.len == 3);
    conn_t *s = server_conn(f, 1);
    assert_non_null(s);
    assert_string_equal(s->t.peer_identity, ID_CLIENT);
    /* The expectation still holds on resumption: another identity refuses the session. */
    SSL_SESSION *s2 = px_transport_tls_session(&d->t);
    conn_t *e = dial(f, ID_SERVER2, s2);
    SSL_SESSION_free(s2);
    RUN_UNTIL(f, e->connect != 1);
    assert_int_equal(e->connect, UV_EPROTO);
}

static void test_rotation(void **state)
{
    fx_t *f = *state;
    conn_t *c = dial(f, NULL, NULL);
    RUN_UNTIL(f, c->connect != 1);
    assert_string_equal(c->t.peer_identity, ID_SERVER);
    uint64_t g = px_creds_generation(f->screds);
    kc_t rotated = mkcert("server rotated", &f->ca, false, ID_SERVER2, -60, 86400);
    creds_set(f->screds, &rotated, &f->ca);
    assert_true(px_creds_generation(f->screds) > g);
    conn_t *d = dial(f, NULL, NULL);
    RUN_UNTIL(f, d->connect != 1);
    assert_int_equal(d->connect, 0);
    assert_string_equal(d->t.peer_identity, ID_SERVER2);
    /* The first connection keeps its context and keeps working. */
    uv_buf_t b = uv_buf_init("still here", 10);
    assert_int_equal(px_transport_write(&c->t, &b, 1), 0);
    RUN_UNTIL(f, c->in.len == 10);
    assert_memory_equal(c->in.data, "still here", 10);
    assert_int_equal(c->err, 0);
    kc_free(&rotated);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* raw peers write to sockets px closed */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handshake_identities, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_servers_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_clients_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strict_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permissive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resumption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
