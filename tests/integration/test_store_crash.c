/*
 * test_store_crash.c - the store's durability proof: a writer process is killed with SIGKILL at
 * random moments, and what it acknowledged must be there, whole, when the store is reopened.
 *
 * A forked child opens the store and commits batches k = start, start+1, ... Batch k holds
 * NSAMPLES samples of each of NSERIES series; sample m of batch k has the index i = k*NSAMPLES+m,
 * the timestamp base + i*STEP_MS and the value i*1000 + series, so every stored sample says which
 * batch it came from. After st_batch_commit returns 0, and only then, the child writes "k\n" to
 * a pipe: the acknowledgement. The parent kills the child after a random 0-50 ms, reopens the
 * store and checks that
 *   - every acknowledged batch is present with all its samples and exact values;
 *   - a batch after the last acknowledged one is present whole or not at all;
 *   - the stored batches are 0..n without holes, and no sample is stored twice;
 * then closes the store and lets the next child continue after the last stored batch.
 * A second variant flushes every few batches, so that kills land inside flush transactions too.
 *
 * The torn-tail test copies the database and its -wal file right after a kill, cuts the copy of
 * the -wal at many offsets (inside frames, on frame boundaries) and checks that every copy opens
 * and holds a prefix of the batches with no partial batch: SQLite drops the torn transaction.
 *
 * Kill timing is random (seeded from the clock, or WEFT_TEST_SEED; the seed is printed); the
 * properties hold for every timing, so a failure is a real durability bug.
 */
#include "st_store.h"
#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wf_log.h"
#include "wt_util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h> /* cmocka needs these before its header */
#include <cmocka.h>

#define NSERIES 40
#define NSAMPLES 8
#define STEP_MS 10
#define ROUNDS 30
#define FLUSH_EVERY 5 /* batches between flushes in the flush variant */
#define MAX_BATCHES 2000000
#define FIRST_ACK_TIMEOUT_MS 20000

typedef struct {
    char *dir;
    int64_t base; /* timestamp of sample index 0 */
    uint64_t rng;
} crash_ctx_t;

static uint64_t test_seed(void)
{
    const char *e = getenv("WEFT_TEST_SEED");
    uint64_t seed = e ? strtoull(e, NULL, 10) : (uint64_t)wf_wall_ns();
    printf("seed %" PRIu64 " (set WEFT_TEST_SEED to repeat the choices)\n", seed);
    return seed;
}

static void sleep_us(int64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void crash_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void crash_report(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void series_labels(int j, st_label_t *l, char *buf, size_t cap)
{
    snprintf(buf, cap, "%d", j);
    l[0] = (st_label_t){WF_STR_LIT("__name__"), WF_STR_LIT("crash_test")};
    l[1] = (st_label_t){WF_STR_LIT("job"), WF_STR_LIT("durability")};
    l[2] = (st_label_t){WF_STR_LIT("series"), wf_str(buf)};
}

static void store_options(st_options_t *o, const char *dir)
{
    st_options_default(o);
    o->dir = dir;
    /* The data lies an hour back; keep everything so that nothing ages out between rounds. */
    o->metrics_retention_ms = 0;
}

/*
 * The writer: commit batches from `start` on, acknowledging each on fd after its commit
 * returned 0. Runs until killed (or MAX_BATCHES). Exit codes other than by SIGKILL are failures.
 */
static void child_main(const char *dir, int64_t base, int64_t start, int flush_every, int fd)
{
    st_options_t o;
    store_options(&o, dir);
    st_store_t *s = NULL;
    int rc = st_store_open(&o, &s);
    if (rc != 0) {
        fprintf(stderr, "child: open: %s\n", st_strerror(rc));
        _exit(10);
    }
    char buf[32];
    st_label_t labels[NSERIES][3];
    char names[NSERIES][16];
    for (int j = 0; j < NSERIES; j++) {
        series_labels(j, labels[j], names[j], sizeof(names[j]));
    }
    for (int64_t k = start; k < MAX_BATCHES; k++) {
        st_batch_t *b = NULL;
        rc = st_batch_begin(s, &b);
        if (rc != 0) {
            fprintf(stderr, "child: batch_begin: %s\n", st_strerror(rc));
            _exit(11);
        }
        for (int m = 0; m < NSAMPLES; m++) {
            int64_t i = k * NSAMPLES + m;
            for (int j = 0; j < NSERIES; j++) {
                rc = st_batch_add(b, labels[j], 3, base + i * STEP_MS, (double)(i * 1000 + j));
                if (rc != 0) {
                    fprintf(stderr, "child: batch %" PRId64 " add: %s\n", k, st_strerror(rc));
                    _exit(12);
                }
            }
        }
        rc = st_batch_commit(b);
        if (rc != 0) {
            fprintf(stderr, "child: batch %" PRId64 " commit: %s\n", k, st_strerror(rc));
            _exit(13);
        }
        int n = snprintf(buf, sizeof(buf), "%" PRId64 "\n", k);
        if (write(fd, buf, (size_t)n) != n) { /* below PIPE_BUF: one atomic write */
            _exit(14);
        }
        if (flush_every > 0 && (k + 1) % flush_every == 0) {
            rc = st_store_flush(s);
            if (rc != 0) {
                fprintf(stderr, "child: flush: %s\n", st_strerror(rc));
                _exit(15);
            }
        }
    }
    st_store_close(s);
    _exit(0);
}

typedef struct {
    pid_t pid;
    int fd; /* read end of the acknowledgement pipe */
    char buf[256];
    size_t len;
    int64_t last_ack; /* -1: none yet */
    int64_t acks;
} writer_t;

static void writer_start(writer_t *w, const crash_ctx_t *c, int64_t start, int flush_every)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        child_main(c->dir, c->base, start, flush_every, p[1]);
    }
    close(p[1]);
    memset(w, 0, sizeof(*w));
    w->pid = pid;
    w->fd = p[0];
    w->last_ack = -1;
}

/*
 * Read acknowledgements until EOF (eof_wait) or until none is ready within timeout_ms. Acks
 * arrive in order and each must be the previous plus one.
 */
static void writer_read(writer_t *w, int timeout_ms, int64_t start)
{
    for (;;) {
        struct pollfd pfd = {w->fd, POLLIN, 0};
        int r = poll(&pfd, 1, timeout_ms);
        if (r <= 0) {
            return;
        }
        ssize_t n = read(w->fd, w->buf + w->len, sizeof(w->buf) - 1 - w->len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;
        }
        w->len += (size_t)n;
        char *nl;
        while ((nl = memchr(w->buf, '\n', w->len)) != NULL) {
            *nl = '\0';
            int64_t k = strtoll(w->buf, NULL, 10);
            int64_t want = w->last_ack < 0 ? start : w->last_ack + 1;
            if (k != want) {
                crash_report("acknowledgement %" PRId64 ", expected %" PRId64, k, want);
                fail();
            }
            w->last_ack = k;
            w->acks++;
            size_t used = (size_t)(nl - w->buf) + 1;
            memmove(w->buf, nl + 1, w->len - used);
            w->len -= used;
        }
        if (timeout_ms > 0) {
            return; /* the caller only wanted the first sign of life */
        }
    }
}

/* SIGKILL the writer, collect every acknowledgement it sent, and check that it died by it. */
static void writer_kill(writer_t *w, int64_t start)
{
    kill(w->pid, SIGKILL);
    int status = 0;
    while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR) {
    }
    writer_read(w, -1, start);
    close(w->fd);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
        crash_report("writer ended on its own (status 0x%x) instead of by SIGKILL; see its stderr",
                     status);
        fail();
    }
}

/*
 * Open the store in dir and check what it holds: the batches 0..n-1 whole, nothing else.
 * Returns n (the number of stored batches), or -1 after printing why the content is wrong.
 */
static int64_t verify_store(const char *dir, int64_t base)
{
    st_options_t o;
    store_options(&o, dir);
    st_store_t *s = NULL;
    int rc = st_store_open(&o, &s);
    if (rc != 0) {
        crash_report("%s: st_store_open: %s", dir, st_strerror(rc));
        return -1;
    }
    st_matcher_t *m = NULL;
    rc = st_matcher_new(ST_MATCH_EQ, WF_STR_LIT("__name__"), WF_STR_LIT("crash_test"), &m, NULL, 0);
    WF_ASSERT(rc == 0);
    st_series_set_t *set = NULL;
    int64_t stored = -1;
    int32_t *count = NULL; /* samples present per batch */
    size_t cap = 0;
    rc = st_select(s, (const st_matcher_t *const *)&m, 1, base, INT64_MAX / 2, &set);
    if (rc != 0) {
        crash_report("%s: st_select: %s", dir, st_strerror(rc));
        goto out;
    }
    size_t nset = st_series_set_len(set);
    if (nset != 0 && nset != NSERIES) {
        crash_report("%s: %zu series, want 0 or %d", dir, nset, NSERIES);
        goto out;
    }
    int64_t max_batch = -1;
    for (size_t si = 0; si < nset; si++) {
        size_t nl = 0;
        const st_label_t *l = st_series_set_labels(set, si, &nl);
        int j = -1;
        for (size_t x = 0; x < nl; x++) {
            if (wf_str_eq_c(l[x].name, "series") && l[x].value.len > 0 && l[x].value.len < 8) {
                char num[8];
                memcpy(num, l[x].value.p, l[x].value.len);
                num[l[x].value.len] = '\0';
                j = atoi(num);
            }
        }
        const int64_t *ts = NULL;
        const double *v = NULL;
        size_t n = 0;
        rc = st_series_set_samples(set, si, &ts, &v, &n);
        if (rc != 0 || j < 0 || j >= NSERIES) {
            crash_report("%s: series %zu: rc=%d label series=%d", dir, si, rc, j);
            goto out;
        }
        for (size_t x = 0; x < n; x++) {
            int64_t i = (ts[x] - base) / STEP_MS;
            if ((ts[x] - base) % STEP_MS != 0 || i < 0 || v[x] != (double)(i * 1000 + j)) {
                crash_report("%s: series %d sample %zu: ts=%" PRId64 " v=%.17g does not belong to "
                             "any batch",
                             dir, j, x, ts[x], v[x]);
                goto out;
            }
            if (x > 0 && ts[x] <= ts[x - 1]) {
                crash_report("%s: series %d: timestamps not increasing at %zu (%" PRId64
                             " after %" PRId64 "): duplicate or disorder",
                             dir, j, x, ts[x], ts[x - 1]);
                goto out;
            }
            int64_t k = i / NSAMPLES;
            if ((size_t)k >= cap) {
                size_t ncap = cap ? cap : 1024;
                while (ncap <= (size_t)k) {
                    ncap *= 2;
                }
                count = wf_realloc(count, ncap * sizeof(*count));
                memset(count + cap, 0, (ncap - cap) * sizeof(*count));
                cap = ncap;
            }
            count[k]++;
            max_batch = k > max_batch ? k : max_batch;
        }
    }
    for (int64_t k = 0; k <= max_batch; k++) {
        if (count[k] != NSERIES * NSAMPLES) {
            crash_report("%s: batch %" PRId64 " has %d of %d samples (stored batches up to %" PRId64
                         "): %s",
                         dir, k, count[k], NSERIES * NSAMPLES, max_batch,
                         count[k] == 0 ? "a hole" : "partial batch");
            goto out;
        }
    }
    stored = max_batch + 1;
out:
    wf_free(count);
    st_series_set_free(set);
    st_matcher_free(m);
    st_store_close(s);
    return stored;
}

static int setup(void **state)
{
    crash_ctx_t *c = wf_calloc(1, sizeof(*c));
    c->dir = wt_tmpdir("crash");
    c->base = wf_wall_ms() - 3600 * 1000;
    c->rng = test_seed();
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    crash_ctx_t *c = *state;
    wt_rm_rf(c->dir);
    wf_free(c->dir);
    wf_free(c);
    return 0;
}

static void crash_rounds(crash_ctx_t *c, int flush_every)
{
    int64_t next = 0, total_acks = 0, beyond = 0;
    for (int round = 0; round < ROUNDS; round++) {
        writer_t w;
        writer_start(&w, c, next, flush_every);
        /*
         * Half the rounds kill at a random moment after the fork (which may fall into the
         * child's open and replay); the others only after the first acknowledgement, so that
         * every run commits something and the kill lands among commits and flushes.
         */
        if (round % 2 == 1) {
            writer_read(&w, FIRST_ACK_TIMEOUT_MS, next);
            if (w.acks == 0) {
                crash_report("round %d: no acknowledgement within %d ms", round,
                             FIRST_ACK_TIMEOUT_MS);
                writer_kill(&w, next);
                fail();
            }
        }
        sleep_us((int64_t)(wt_rand(&c->rng) % 50001));
        writer_kill(&w, next);
        int64_t stored = verify_store(c->dir, c->base);
        assert_true(stored >= 0);
        if (stored <= w.last_ack) {
            crash_report("round %d: batch %" PRId64 " was acknowledged but only %" PRId64
                         " batches are stored",
                         round, w.last_ack, stored);
            fail();
        }
        if (stored < next) {
            crash_report("round %d: %" PRId64 " batches stored, fewer than the %" PRId64
                         " of the previous round",
                         round, stored, next);
            fail();
        }
        beyond += stored - (w.last_ack < 0 ? next : w.last_ack + 1);
        total_acks += w.acks;
        next = stored;
    }
    printf("%d rounds: %" PRId64 " batches acknowledged, %" PRId64 " stored (%" PRId64
           " committed but killed before their acknowledgement)\n",
           ROUNDS, total_acks, next, beyond);
    /* Every other round waited for an acknowledgement, so the kills did land among commits. */
    assert_true(total_acks >= ROUNDS / 2);
    assert_int_equal(next, total_acks + beyond);
}

static void test_kill_during_appends(void **state)
{
    crash_rounds(*state, 0);
}

static void test_kill_during_flushes(void **state)
{
    crash_rounds(*state, FLUSH_EVERY);
}

static int copy_file(const char *from, const char *to, off_t limit)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        close(in);
        return -errno;
    }
    char buf[65536];
    off_t done = 0;
    int rc = 0;
    while (limit < 0 || done < limit) {
        size_t want = sizeof(buf);
        if (limit >= 0 && (off_t)want > limit - done) {
            want = (size_t)(limit - done);
        }
        ssize_t n = read(in, buf, want);
        if (n <= 0) {
            rc = n < 0 ? -errno : 0;
            break;
        }
        if (write(out, buf, (size_t)n) != n) {
            rc = -EIO;
            break;
        }
        done += n;
    }
    close(in);
    close(out);
    return rc;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void torn_tail(crash_ctx_t *c, int flush_every)
{
    /* A writer that has committed a good number of batches, killed: its -wal holds them (and,
     * with flushes, the transactions that sealed them). */
    writer_t w;
    writer_start(&w, c, 0, flush_every);
    int64_t t0 = wf_mono_ns();
    while (w.acks < 300 && wf_mono_ns() - t0 < 20 * 1000000000LL) {
        writer_read(&w, 1000, 0);
    }
    writer_kill(&w, 0);
    assert_true(w.acks > 0);

    char snap[4200], path[4300], wal[4300], cdir[4300];
    snprintf(snap, sizeof(snap), "%s-snap", c->dir);
    mkdir(snap, 0755);
    snprintf(path, sizeof(path), "%s/weft.db", c->dir);
    snprintf(cdir, sizeof(cdir), "%s/weft.db", snap);
    assert_int_equal(copy_file(path, cdir, -1), 0);
    snprintf(path, sizeof(path), "%s/weft.db-wal", c->dir);
    snprintf(wal, sizeof(wal), "%s/weft.db-wal", snap);
    assert_int_equal(copy_file(path, wal, -1), 0);
    off_t wal_size = file_size(wal);
    snprintf(path, sizeof(path), "%s/weft.db", c->dir);
    printf("after %" PRId64 " acknowledged batches: weft.db %lld bytes, weft.db-wal %lld bytes\n",
           w.acks, (long long)file_size(path), (long long)wal_size);
    assert_true(wal_size > 32);

    int64_t full = verify_store(c->dir, c->base);
    assert_true(full > w.last_ack);

    /* Cut points: the whole file, nothing, frame boundaries (page size 4096 + 24-byte frame
     * header after the 32-byte file header) and just around them, and random bytes. */
    off_t cuts[40];
    int ncuts = 0;
    cuts[ncuts++] = wal_size;
    cuts[ncuts++] = 0;
    cuts[ncuts++] = 31;
    off_t nframes = (wal_size - 32) / 4120;
    for (int i = 0; i < 12; i++) {
        off_t f = nframes > 0 ? (off_t)(wt_rand(&c->rng) % (uint64_t)nframes) : 0;
        off_t b = 32 + f * 4120;
        cuts[ncuts++] = b + (i % 3 == 0 ? 0 : i % 3 == 1 ? 1 : -1);
    }
    while (ncuts < 30) {
        cuts[ncuts++] = (off_t)(wt_rand(&c->rng) % (uint64_t)wal_size);
    }
    int64_t min_seen = INT64_MAX, max_seen = -1;
    for (int i = 0; i < ncuts; i++) {
        off_t cut = cuts[i] < 0 ? 0 : cuts[i] > wal_size ? wal_size : cuts[i];
        char copy[4400], f[4500];
        snprintf(copy, sizeof(copy), "%s-cut%d", c->dir, i);
        mkdir(copy, 0755);
        snprintf(f, sizeof(f), "%s/weft.db", copy);
        assert_int_equal(copy_file(cdir, f, -1), 0);
        snprintf(f, sizeof(f), "%s/weft.db-wal", copy);
        assert_int_equal(copy_file(wal, f, cut), 0);
        int64_t n = verify_store(copy, c->base);
        if (n < 0) {
            crash_report("copy with weft.db-wal cut at %lld of %lld bytes is not a prefix of the "
                         "batches (kept in %s)",
                         (long long)cut, (long long)wal_size, copy);
            fail();
        }
        if (cut == wal_size && n != full) {
            crash_report("copy with the whole weft.db-wal holds %" PRId64
                         " batches, the original %" PRId64,
                         n, full);
            fail();
        }
        min_seen = n < min_seen ? n : min_seen;
        max_seen = n > max_seen ? n : max_seen;
        wt_rm_rf(copy);
    }
    printf("%d cuts of the -wal: every copy opened and held batches 0..n-1 whole, n from %" PRId64
           " to %" PRId64 "\n",
           ncuts, min_seen, max_seen);
    wt_rm_rf(snap);
}

static void test_torn_wal_tail(void **state)
{
    torn_tail(*state, 0);
}

static void test_torn_wal_tail_with_flushes(void **state)
{
    torn_tail(*state, FLUSH_EVERY);
}

int main(void)
{
    wf_log_set_level(WF_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill_during_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_during_flushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_wal_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_wal_tail_with_flushes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
