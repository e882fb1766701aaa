/*
 * px_tls.c - mutual TLS between sidecars: contexts from the workload credentials and TLS inside
 * a px_transport_t (see px_tls.h).
 *
 * A TLS connection reads ciphertext into its own record-sized buffer, feeds it to the SSL's
 * read BIO and decrypts into the memory the owner's on_alloc gives; whatever the SSL writes
 * (handshake flights, records, alerts, close_notify) is drained from the write BIO into the
 * socket by the transport's plain try-write-then-queue path, so px_transport_queued counts the
 * ciphertext still waiting for the kernel. The socket keeps reading during a handshake even
 * when the owner does not; after it, only while the owner reads. Plaintext decrypted but not
 * yet delivered (the owner stopped reading in the middle) waits in the SSL and is delivered
 * from an idle callback when the owner reads again, never from inside px_transport_read_start.
 */
#include "px_tls.h"

#include "px_upstream.h"
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_err.h"
#include "wf_log.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <string.h>

#define PX_TLS_CBUF (16384 + 512) /* one full TLS record and its overhead */
#define PX_TLS_ID_MAX 512
#define PX_TLS_READ_HINT 65536

struct px_tls_ctx {
    px_creds_t *creds;
    uv_mutex_t mu;
    uint64_t gen;    /* the credentials generation server and client were built from */
    bool built;      /* gen is meaningful */
    SSL_CTX *server; /* NULL while there is no certificate or trust bundle */
    SSL_CTX *client;
    px_tls_stats_t st;
};

typedef enum {
    S_SNIFF,      /* accepted: the first bytes decide */
    S_CONNECTING, /* client: TCP connect in progress */
    S_HANDSHAKE,
    S_OPEN,
    S_PLAIN,  /* PERMISSIVE and the client spoke plaintext: a plain transport from now on */
    S_FAILED, /* refused or failed: the owner hears an error, nothing more is read */
} tls_state_t;

typedef struct px_tls_conn {
    uv_idle_t idle; /* delivers buffered plaintext once the owner reads again */
    px_tls_ctx_t *x;
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    tls_state_t state;
    px_tls_inbound_t mode;
    bool server;
    bool eof;       /* the socket ended or failed, or the handshake failed: sock_err says */
    bool eof_told;  /* the owner has heard sock_err */
    bool need_more; /* the read BIO holds only part of a record */
    bool pumping;
    bool shut;     /* close_notify sent */
    int sock_err;  /* UV_EOF or a negative uv error */
    char **expect; /* client: identities the server may have */
    uint32_t n_expect;
    SSL_SESSION *session; /* client: the last ticket received */
    wf_buf_t early;       /* plaintext written before the handshake completed */
    wf_buf_t plain;       /* PERMISSIVE: sniffed plaintext not yet delivered */
    size_t plain_pos;
    char cbuf[PX_TLS_CBUF]; /* ciphertext read memory, and scratch to drain the write BIO */
} px_tls_conn_t;

/* ---------------------------------------------------------------------------------------- */
/* Contexts */

/* ALPN values a server accepts: Istio's, for the HTTP/1.x and TCP traffic this proxy serves. */
static bool alpn_known(const unsigned char *p, size_t n)
{
    static const char *const known[] = {PX_TLS_ALPN_HTTP, "istio-http/1.0", PX_TLS_ALPN_TCP};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strlen(known[i]) == n && memcmp(known[i], p, n) == 0) {
            return true;
        }
    }
    return false;
}

static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    for (unsigned i = 0; i < inlen;) {
        unsigned l = in[i];
        if (l == 0 || i + 1 + l > inlen) {
            break;
        }
        if (alpn_known(in + i + 1, l)) {
            *out = in + i + 1;
            *outlen = (unsigned char)l;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + l;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
}

/* A hello without ALPN never reaches alpn_select_cb: refuse it here with the same alert. */
static int hello_cb(SSL *ssl, int *al, void *arg)
{
    (void)arg;
    const unsigned char *p = NULL;
    size_t n = 0;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p,
                                  &n) != 1) {
        *al = SSL_AD_NO_APPLICATION_PROTOCOL;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* The peer certificate's SPIFFE identity into id, checked against what a client expects.
 * 0 or WF_E_INVAL. */
static int check_peer(const px_tls_conn_t *s, X509 *cert, char *id, size_t cap)
{
    if (cert == NULL || px_creds_spiffe_id(cert, id, cap) != 0) {
        return WF_E_INVAL;
    }
    if (s->n_expect == 0) {
        return 0;
    }
    for (uint32_t i = 0; i < s->n_expect; i++) {
        if (strcmp(s->expect[i], id) == 0) {
            return 0;
        }
    }
    return WF_E_INVAL;
}

/* After the chain verified, the leaf must carry an identity the connection accepts: failing
 * here makes the handshake fail with an alert, before either side sends application data. */
static int verify_cb(int ok, X509_STORE_CTX *sc)
{
    if (!ok || X509_STORE_CTX_get_error_depth(sc) != 0) {
        return ok;
    }
    SSL *ssl = X509_STORE_CTX_get_ex_data(sc, SSL_get_ex_data_X509_STORE_CTX_idx());
    px_transport_t *t = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
    char id[PX_TLS_ID_MAX];
    if (t == NULL || t->tls == NULL ||
        check_peer(t->tls, X509_STORE_CTX_get_current_cert(sc), id, sizeof(id)) != 0) {
        X509_STORE_CTX_set_error(sc, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    return 1;
}

static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    px_transport_t *t = SSL_get_app_data(ssl);
    if (t == NULL || t->tls == NULL) {
        return 0;
    }
    SSL_SESSION_free(t->tls->session);
    t->tls->session = sess;
    return 1; /* the reference is ours */
}

static SSL_CTX *ctx_build(const px_creds_snap_t *cs, bool server)
{
    if (cs->leaf == NULL || sk_X509_num(cs->roots) == 0) {
        return NULL;
    }
    SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (c == NULL) {
        goto fail;
    }
    if (SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) != 1 ||
        SSL_CTX_use_certificate(c, cs->leaf) != 1 || SSL_CTX_use_PrivateKey(c, cs->key) != 1) {
        goto fail;
    }
    for (int i = 0; i < sk_X509_num(cs->intermediates); i++) {
        if (SSL_CTX_add1_chain_cert(c, sk_X509_value(cs->intermediates, i)) != 1) {
            goto fail;
        }
    }
    X509_STORE *store = SSL_CTX_get_cert_store(c);
    for (int i = 0; i < sk_X509_num(cs->roots); i++) {
        if (X509_STORE_add_cert(store, sk_X509_value(cs->roots, i)) != 1) {
            goto fail;
        }
    }
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
    if (server) {
        static const unsigned char sid[] = "weft-mtls";
        SSL_CTX_set_alpn_select_cb(c, alpn_select_cb, NULL);
        SSL_CTX_set_client_hello_cb(c, hello_cb, NULL);
        /* Resumption with client certificates needs a session id context. */
        if (SSL_CTX_set_session_id_context(c, sid, sizeof(sid) - 1) != 1) {
            goto fail;
        }
        SSL_CTX_set_num_tickets(c, 1);
    } else {
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(c, new_session_cb);
    }
    return c;
fail:
    WF_LOG(WF_WARN, "proxy", "TLS context not built", "side=%s err=\"%s\"",
           server ? "server" : "client", ERR_reason_error_string(ERR_peek_last_error()));
    ERR_clear_error();
    SSL_CTX_free(c);
    return NULL;
}

px_tls_ctx_t *px_tls_ctx_create(px_creds_t *creds)
{
    px_tls_ctx_t *x = wf_calloc(1, sizeof(*x));
    x->creds = creds;
    uv_mutex_init(&x->mu);
    return x;
}

void px_tls_ctx_destroy(px_tls_ctx_t *x)
{
    if (x == NULL) {
        return;
    }
    SSL_CTX_free(x->server);
    SSL_CTX_free(x->client);
    uv_mutex_destroy(&x->mu);
    wf_free(x);
}

bool px_tls_ctx_ready(px_tls_ctx_t *x)
{
    px_creds_snap_t *cs = px_creds_acquire(x->creds);
    bool ok = cs->leaf != NULL && sk_X509_num(cs->roots) > 0;
    px_creds_release(cs);
    return ok;
}

px_tls_stats_t *px_tls_ctx_stats(px_tls_ctx_t *x)
{
    return &x->st;
}

void px_tls_ctx_metrics(px_tls_ctx_t *x, wf_buf_t *out)
{
    if (x == NULL) {
        return;
    }
    px_tls_stats_t *st = &x->st;
#define LD(f) (unsigned long long)atomic_load_explicit(&st->f, memory_order_relaxed)
    wf_buf_printf(out,
                  "# HELP weft_proxy_tls_handshakes_total mTLS handshakes, by side (server: "
                  "accepted, client: connected) and result.\n"
                  "# TYPE weft_proxy_tls_handshakes_total counter\n"
                  "weft_proxy_tls_handshakes_total{side=\"server\",result=\"ok\"} %llu\n"
                  "weft_proxy_tls_handshakes_total{side=\"server\",result=\"error\"} %llu\n"
                  "weft_proxy_tls_handshakes_total{side=\"client\",result=\"ok\"} %llu\n"
                  "weft_proxy_tls_handshakes_total{side=\"client\",result=\"error\"} %llu\n"
                  "# HELP weft_proxy_tls_resumed_total Client handshakes that resumed a session.\n"
                  "# TYPE weft_proxy_tls_resumed_total counter\n"
                  "weft_proxy_tls_resumed_total %llu\n"
                  "# HELP weft_proxy_tls_plaintext_refused_total Inbound connections closed "
                  "because STRICT mTLS saw no TLS hello.\n"
                  "# TYPE weft_proxy_tls_plaintext_refused_total counter\n"
                  "weft_proxy_tls_plaintext_refused_total %llu\n",
                  LD(server_ok), LD(server_error), LD(client_ok), LD(client_error), LD(resumed),
                  LD(plaintext_refused));
#undef LD
}

/* A new SSL from the current contexts, rebuilt first when the credentials changed; NULL when
 * there is no certificate. SSL_new takes its own reference to the SSL_CTX, so a rebuild later
 * leaves this connection's context alive. */
static SSL *ssl_new(px_tls_ctx_t *x, bool server)
{
    uint64_t g = px_creds_generation(x->creds);
    uv_mutex_lock(&x->mu);
    if (!x->built || g != x->gen) {
        px_creds_snap_t *cs = px_creds_acquire(x->creds);
        SSL_CTX_free(x->server);
        SSL_CTX_free(x->client);
        x->server = ctx_build(cs, true);
        x->client = ctx_build(cs, false);
        x->gen = cs->generation;
        x->built = true;
        px_creds_release(cs);
    }
    SSL_CTX *c = server ? x->server : x->client;
    SSL *ssl = c != NULL ? SSL_new(c) : NULL;
    uv_mutex_unlock(&x->mu);
    return ssl;
}

/* ---------------------------------------------------------------------------------------- */
/* The transport side */

static void pump(px_transport_t *t);
static void update_sock(px_transport_t *t);

static void idle_cb(uv_idle_t *h)
{
    px_transport_t *t = h->data;
    uv_idle_stop(h);
    if (!t->closing) {
        pump(t);
    }
}

static void idle_closed(uv_handle_t *h)
{
    px__transport_handle_closed(h->data);
}

static px_tls_conn_t *conn_attach(px_transport_t *t, px_tls_ctx_t *x)
{
    px_tls_conn_t *s = wf_calloc(1, sizeof(*s));
    s->x = x;
    uv_idle_init(t->tcp.loop, &s->idle);
    s->idle.data = t;
    t->open_handles++;
    t->tls = s;
    return s;
}

static void ssl_attach(px_transport_t *t, SSL *ssl, bool server)
{
    px_tls_conn_t *s = t->tls;
    s->ssl = ssl;
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    WF_ASSERT(s->rbio != NULL && s->wbio != NULL);
    SSL_set_bio(ssl, s->rbio, s->wbio);
    SSL_set_app_data(ssl, t);
    if (server) {
        SSL_set_accept_state(ssl);
    } else {
        SSL_set_connect_state(ssl);
    }
}

int px_transport_tls_accept(px_transport_t *t, px_tls_ctx_t *x, px_tls_inbound_t mode)
{
    if (mode == PX_TLS_IN_DISABLE || (mode == PX_TLS_IN_PERMISSIVE && !px_tls_ctx_ready(x))) {
        /* Without a certificate PERMISSIVE can serve plaintext only: the connection stays a
         * plain one, at no cost (a TLS hello then fails as the bad HTTP it is). */
        return 0;
    }
    px_tls_conn_t *s = conn_attach(t, x);
    s->server = true;
    s->mode = mode;
    s->state = S_SNIFF;
    return 0;
}

int px_transport_tls_connect(px_transport_t *t, px_tls_ctx_t *x, const char *alpn,
                             const wf_str_t *expect, uint32_t n_expect, SSL_SESSION *session)
{
    SSL *ssl = ssl_new(x, false);
    if (ssl == NULL) {
        return WF_E_NOTFOUND;
    }
    px_tls_conn_t *s = conn_attach(t, x);
    ssl_attach(t, ssl, false);
    unsigned char wire[64];
    size_t al = strlen(alpn);
    WF_ASSERT(al > 0 && al < sizeof(wire));
    wire[0] = (unsigned char)al;
    memcpy(wire + 1, alpn, al);
    int arc = SSL_set_alpn_protos(ssl, wire, (unsigned)(al + 1)); /* fails only on OOM */
    WF_ASSERT(arc == 0);
    if (n_expect > 0) {
        s->expect = wf_calloc(n_expect, sizeof(*s->expect));
        for (uint32_t i = 0; i < n_expect; i++) {
            s->expect[i] = wf_strndup(expect[i].p, expect[i].len);
        }
        s->n_expect = n_expect;
    }
    if (session != NULL) {
        SSL_set_session(ssl, session); /* a session of another context is just not resumed */
    }
    s->state = S_CONNECTING;
    return 0;
}

bool px_transport_is_tls(const px_transport_t *t)
{
    return t->tls != NULL && t->tls->state == S_OPEN;
}

SSL_SESSION *px_transport_tls_session(px_transport_t *t)
{
    if (t->tls == NULL || t->tls->session == NULL) {
        return NULL;
    }
    SSL_SESSION_up_ref(t->tls->session);
    return t->tls->session;
}

/* Drain what the SSL wrote into the socket. 0 or a negative uv error. */
static int flush(px_transport_t *t)
{
    px_tls_conn_t *s = t->tls;
    int n;
    while ((n = BIO_read(s->wbio, s->cbuf, sizeof(s->cbuf))) > 0) {
        uv_buf_t b = uv_buf_init(s->cbuf, (unsigned)n);
        int rc = px__transport_raw_write(t, &b, 1);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* Encrypt and send plaintext. 0 or a negative uv error. */
static int ssl_send(px_transport_t *t, const char *p, size_t len)
{
    px_tls_conn_t *s = t->tls;
    while (len > 0) {
        size_t w = 0;
        ERR_clear_error();
        /* A memory BIO never pushes back: the whole buffer goes in. */
        if (SSL_write_ex(s->ssl, p, len, &w) != 1 || w == 0) {
            ERR_clear_error();
            return UV_EPROTO;
        }
        p += w;
        len -= w;
    }
    return flush(t);
}

static void fail(px_transport_t *t, int err)
{
    px_tls_conn_t *s = t->tls;
    s->state = S_FAILED;
    s->eof = true;
    s->sock_err = err;
    px__transport_sock_read(t, false);
}

static void hs_failed(px_transport_t *t)
{
    px_tls_conn_t *s = t->tls;
    long vr = SSL_get_verify_result(s->ssl);
    unsigned long e = ERR_peek_last_error();
    WF_LOG_RL(WF_WARN, 10, "proxy", "TLS handshake failed", "side=%s verify=\"%s\" err=\"%s\"",
              s->server ? "server" : "client",
              vr == X509_V_OK ? "ok" : X509_verify_cert_error_string(vr),
              e != 0 ? ERR_reason_error_string(e) : (s->eof ? "connection closed" : "refused"));
    ERR_clear_error();
    atomic_fetch_add_explicit(s->server ? &s->x->st.server_error : &s->x->st.client_error, 1,
                              memory_order_relaxed);
    fail(t, UV_EPROTO);
    if (!s->server) {
        s->eof_told = true;
        t->cbs->on_connect(t, UV_EPROTO);
    }
}

/* The handshake completed: what it established must hold, resumed or not. 0 or WF_E_INVAL. */
static int hs_check(px_transport_t *t)
{
    px_tls_conn_t *s = t->tls;
    char id[PX_TLS_ID_MAX];
    if (check_peer(s, SSL_get0_peer_certificate(s->ssl), id, sizeof(id)) != 0) {
        return WF_E_INVAL;
    }
    const unsigned char *p = NULL;
    unsigned n = 0;
    SSL_get0_alpn_selected(s->ssl, &p, &n);
    if (n == 0) {
        return WF_E_INVAL;
    }
    wf_free(t->peer_identity);
    t->peer_identity = wf_strdup(id);
    return 0;
}

static void handshake(px_transport_t *t)
{
    px_tls_conn_t *s = t->tls;
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(s->ssl, r);
    if (flush(t) != 0 && r == 1) {
        r = 0;
        e = SSL_ERROR_SYSCALL;
    }
    if (t->closing) {
        return;
    }
    if (r != 1) {
        if (e == SSL_ERROR_WANT_READ && !s->eof) {
            s->need_more = true;
            return;
        }
        hs_failed(t);
        return;
    }
    if (hs_check(t) != 0) {
        hs_failed(t);
        return;
    }
    s->state = S_OPEN;
    s->need_more = false;
    px_tls_stats_t *st = &s->x->st;
    atomic_fetch_add_explicit(s->server ? &st->server_ok : &st->client_ok, 1, memory_order_relaxed);
    if (!s->server && SSL_session_reused(s->ssl)) {
        atomic_fetch_add_explicit(&st->resumed, 1, memory_order_relaxed);
    }
    if (s->early.len > 0) {
        int rc = ssl_send(t, (const char *)s->early.data, s->early.len);
        wf_buf_free(&s->early);
        if (rc != 0) {
            fail(t, rc);
            return;
        }
    }
    if (!s->server) {
        t->cbs->on_connect(t, 0);
    }
}

/* Whether something waits for the owner: plaintext, or the end. */
static bool has_buffered(const px_tls_conn_t *s)
{
    if (s->eof && !s->eof_told) {
        return true;
    }
    if (s->state == S_PLAIN) {
        return s->plain_pos < s->plain.len;
    }
    if (s->state == S_OPEN) {
        return SSL_pending(s->ssl) > 0 || (!s->need_more && BIO_ctrl_pending(s->rbio) > 0);
    }
    return false;
}

/* Hand the owner what there is, while it reads. */
static void deliver(px_transport_t *t)
{
    px_tls_conn_t *s = t->tls;
    while (t->reading && !t->closing) {
        uv_buf_t b;
        if (s->state == S_PLAIN && s->plain_pos < s->plain.len) {
            t->cbs->on_alloc(t, PX_TLS_READ_HINT, &b);
            size_t n = s->plain.len - s->plain_pos;
            n = n < b.len ? n : b.len;
            memcpy(b.base, s->plain.data + s->plain_pos, n);
            s->plain_pos += n;
            if (s->plain_pos == s->plain.len) {
                wf_buf_free(&s->plain);
                s->plain_pos = 0;
            }
            t->cbs->on_read(t, (ssize_t)n, &b);
            continue;
        }
        if (s->state == S_OPEN &&
            (SSL_pending(s->ssl) > 0 || (!s->need_more && BIO_ctrl_pending(s->rbio) > 0))) {
            t->cbs->on_alloc(t, PX_TLS_READ_HINT, &b);
            size_t n = 0;
            ERR_clear_error();
            int r = SSL_read_ex(s->ssl, b.base, b.len, &n);
            if (r == 1) {
                t->cbs->on_read(t, (ssize_t)n, &b);
                continue;
            }
            int e = SSL_get_error(s->ssl, r);
            ERR_clear_error();
            if (e == SSL_ERROR_WANT_READ) {
                s->need_more = true;
                if (!s->eof) {
                    break;
                }
            } else if (e == SSL_ERROR_ZERO_RETURN) {
                s->eof = true; /* close_notify: the peer will send no more */
                s->sock_err = UV_EOF;
            } else {
                s->eof = true;
                s->sock_err = UV_EPROTO;
            }
        }
        if (s->eof && !s->eof_told && s->state != S_HANDSHAKE && s->state != S_CONNECTING) {
            s->eof_told = true;
            b = uv_buf_init(NULL, 0);
            t->cbs->on_read(t, s->sock_err, &b);
        }
        break;
    }
}

/* Run the handshake and deliver plaintext; the socket's reading follows. */
static void pump(px_transport_t *t)
{
    px_tls_conn_t *s = t->tls;
    if (s->pumping) {
        return; /* the outer pump sees the owner's change when the callback returns */
    }
    s->pumping = true;
    if (s->state == S_HANDSHAKE) {
        handshake(t);
    }
    if (!t->closing) {
        deliver(t);
    }
    s->pumping = false;
    if (!t->closing) {
        (void)flush(t); /* a key update or ticket acknowledgement SSL_read produced */
        update_sock(t);
    }
}

static void update_sock(px_transport_t *t)
{
    px_tls_conn_t *s = t->tls;
    bool want;
    switch (s->state) {
    case S_HANDSHAKE:
        want = !s->eof;
        break;
    case S_SNIFF:
    case S_OPEN:
        want = !s->eof && t->reading;
        break;
    case S_PLAIN:
        want = !s->eof && t->reading && s->plain_pos == s->plain.len;
        break;
    default:
        want = false;
    }
    px__transport_sock_read(t, want);
    if (t->reading && has_buffered(s)) {
        uv_idle_start(&s->idle, idle_cb);
    } else {
        uv_idle_stop(&s->idle);
    }
}

void px__tls_read_update(px_transport_t *t)
{
    if (t->tls->pumping) {
        return;
    }
    update_sock(t);
}

void px__tls_alloc(px_transport_t *t, size_t suggested, uv_buf_t *buf)
{
    px_tls_conn_t *s = t->tls;
    if (s->state == S_PLAIN) {
        t->cbs->on_alloc(t, suggested, buf);
        return;
    }
    *buf = uv_buf_init(s->cbuf, sizeof(s->cbuf));
}

/* Ciphertext from the socket into the SSL's read BIO (a memory BIO grows; it fails only when
 * memory does, which wf_alloc's policy makes fatal too). */
static void feed(px_tls_conn_t *s, const char *p, size_t n)
{
    int w = BIO_write(s->rbio, p, (int)n);
    WF_ASSERT(w == (int)n);
}

/* The first bytes of an accepted connection: a TLS handshake record (22, version 3.x) or not.
 */
static void sniff(px_transport_t *t, const char *p, size_t n)
{
    px_tls_conn_t *s = t->tls;
    bool hello = (unsigned char)p[0] == 0x16 && (n < 2 || p[1] == 0x03);
    if (hello) {
        SSL *ssl = ssl_new(s->x, true);
        if (ssl == NULL) {
            /* No certificate yet: nobody can be served over TLS. */
            atomic_fetch_add_explicit(&s->x->st.server_error, 1, memory_order_relaxed);
            fail(t, UV_EPROTO);
            return;
        }
        ssl_attach(t, ssl, true);
        s->state = S_HANDSHAKE;
        feed(s, p, n);
        return;
    }
    if (s->mode == PX_TLS_IN_STRICT) {
        atomic_fetch_add_explicit(&s->x->st.plaintext_refused, 1, memory_order_relaxed);
        fail(t, UV_EPROTO);
        return;
    }
    s->state = S_PLAIN;
    wf_buf_append(&s->plain, p, n);
    if (s->early.len > 0) {
        /* Written before the client spoke (an early error answer): plaintext after all. */
        uv_buf_t b = uv_buf_init((char *)s->early.data, (unsigned)s->early.len);
        int rc = px__transport_raw_write(t, &b, 1);
        wf_buf_free(&s->early);
        if (rc != 0) {
            fail(t, rc);
        }
    }
}

void px__tls_read(px_transport_t *t, ssize_t nread, const uv_buf_t *buf)
{
    px_tls_conn_t *s = t->tls;
    if (s->state == S_PLAIN && s->plain_pos == s->plain.len) {
        t->cbs->on_read(t, nread, buf); /* the owner's memory: on_alloc went to it */
        return;
    }
    if (nread < 0) {
        s->eof = true;
        s->sock_err = (int)nread;
        px__transport_sock_read(t, false);
    } else if (s->state == S_SNIFF) {
        sniff(t, buf->base, (size_t)nread);
    } else if (s->state == S_HANDSHAKE || s->state == S_OPEN) {
        feed(s, buf->base, (size_t)nread);
        s->need_more = false;
    }
    pump(t);
}

void px__tls_connected(px_transport_t *t, int status)
{
    px_tls_conn_t *s = t->tls;
    if (status != 0) {
        s->state = S_FAILED;
        s->eof = s->eof_told = true;
        t->cbs->on_connect(t, status);
        return;
    }
    s->state = S_HANDSHAKE;
    pump(t);
}

int px__tls_write(px_transport_t *t, const uv_buf_t *bufs, unsigned nbufs)
{
    px_tls_conn_t *s = t->tls;
    switch (s->state) {
    case S_PLAIN:
        return px__transport_raw_write(t, bufs, nbufs);
    case S_OPEN:
        if (s->shut) {
            return UV_EPIPE;
        }
        for (unsigned i = 0; i < nbufs; i++) {
            int rc = ssl_send(t, bufs[i].base, bufs[i].len);
            if (rc != 0) {
                return rc;
            }
        }
        return 0;
    case S_FAILED:
        return UV_EPROTO;
    default:
        for (unsigned i = 0; i < nbufs; i++) {
            wf_buf_append(&s->early, bufs[i].base, bufs[i].len);
        }
        return 0;
    }
}

size_t px__tls_queued(const px_transport_t *t)
{
    return t->tls->early.len;
}

static void send_close_notify(px_transport_t *t)
{
    px_tls_conn_t *s = t->tls;
    if (s->state != S_OPEN || s->shut) {
        return;
    }
    s->shut = true;
    ERR_clear_error();
    (void)SSL_shutdown(s->ssl);
    ERR_clear_error();
    (void)flush(t);
}

void px__tls_shutdown(px_transport_t *t)
{
    send_close_notify(t);
}

void px__tls_close(px_transport_t *t)
{
    px_tls_conn_t *s = t->tls;
    send_close_notify(t);
    uv_idle_stop(&s->idle);
    uv_close((uv_handle_t *)&s->idle, idle_closed);
}

void px__tls_free(px_transport_t *t)
{
    px_tls_conn_t *s = t->tls;
    if (s == NULL) {
        return;
    }
    SSL_free(s->ssl);
    SSL_SESSION_free(s->session);
    for (uint32_t i = 0; i < s->n_expect; i++) {
        wf_free(s->expect[i]);
    }
    wf_free(s->expect);
    wf_buf_free(&s->early);
    wf_buf_free(&s->plain);
    wf_free(s);
    t->tls = NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Policy */

void px_tls_pool_setup(struct px_pool *p, px_tls_ctx_t *x, const px_cluster_t *c,
                       const px_endpoint_t *ep)
{
    px_pool_tls_t t = {.mode = PX_POOL_PLAIN, .ctx = x, .alpn = PX_TLS_ALPN_HTTP};
    if (c->tls.mode == PX_TLS_ISTIO_MUTUAL) {
        t.mode = PX_POOL_MTLS;
    } else if (c->tls.mode == PX_TLS_AUTO && ep->in_mesh) {
        t.mode = PX_POOL_MTLS_AUTO;
    }
    if (c->tls.n_subject_alt_names > 0) {
        t.expect = c->tls.subject_alt_names;
        t.n_expect = c->tls.n_subject_alt_names;
    } else if (ep->identity.len > 0) {
        t.expect = &ep->identity;
        t.n_expect = 1;
    }
    px_pool_set_tls(p, &t);
}

static px_tls_inbound_t in_mode(px_peer_auth_t m)
{
    switch (m) {
    case PX_PEER_AUTH_STRICT:
        return PX_TLS_IN_STRICT;
    case PX_PEER_AUTH_DISABLE:
        return PX_TLS_IN_DISABLE;
    default:
        return PX_TLS_IN_PERMISSIVE;
    }
}

px_tls_inbound_t px_tls_inbound_mode(const px_inbound_t *in, uint32_t app_port)
{
    if (in == NULL) {
        return PX_TLS_IN_PERMISSIVE;
    }
    for (uint32_t i = 0; i < in->n_ports; i++) {
        if (in->ports[i].target_port == app_port && in->ports[i].mtls != PX_PEER_AUTH_UNSET) {
            return in_mode(in->ports[i].mtls);
        }
    }
    return in_mode(in->mtls_mode);
}

px_tls_inbound_t px_tls_port_mode(const px_inbound_t *in, uint32_t port)
{
    if (in == NULL) {
        return PX_TLS_IN_PERMISSIVE;
    }
    for (uint32_t i = 0; i < in->n_ports; i++) {
        if (in->ports[i].port == port && in->ports[i].mtls != PX_PEER_AUTH_UNSET) {
            return in_mode(in->ports[i].mtls);
        }
    }
    return in_mode(in->mtls_mode);
}
