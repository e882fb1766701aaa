/*
 * wt_util.c - test helpers. See wt_util.h.
 */
#include "wt_util.h"

#include "wf_alloc.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

char *wt_tmpdir(const char *prefix)
{
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof(tmpl), "%s/weft-%s-XXXXXX", base ? base : "/tmp", prefix);
    if (mkdtemp(tmpl) == NULL) {
        perror("mkdtemp");
        abort();
    }
    return wf_strdup(tmpl);
}

void wt_rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
                continue;
            }
            char p[4096];
            snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
                wt_rm_rf(p);
            } else {
                unlink(p);
            }
        }
        closedir(d);
    }
    rmdir(path);
}

char *wt_ref_path(const char *rel)
{
    const char *base = getenv("WEFT_REF_DIR");
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s", base ? base : "../shared/ref", rel);
    if (access(p, R_OK) != 0) {
        printf("skipped: reference data not present (%s)\n", p);
        return NULL;
    }
    return wf_strdup(p);
}

const char *wt_weft_bin(void)
{
    const char *b = getenv("WEFT_BIN");
    if (b == NULL) {
        fprintf(stderr, "WEFT_BIN is not set\n");
        abort();
    }
    return b;
}

int wt_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("wt_free_port");
        abort();
    }
    close(fd);
    return ntohs(a.sin_port);
}

pid_t wt_spawn(char *const argv[], const char *log_path)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        abort();
    }
    if (pid == 0) {
        /* A test that crashes or is killed must not leave servers behind: the child dies
         * with it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127); /* the parent died before prctl took effect */
        }
        if (log_path != NULL) {
            int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
        }
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

int wt_wait(pid_t pid, int timeout_ms)
{
    int status;
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            return status;
        }
        if (r < 0) {
            return -1;
        }
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

int wt_stop(pid_t pid, int timeout_ms)
{
    kill(pid, SIGTERM);
    int status = wt_wait(pid, timeout_ms);
    return status;
}

bool wt_wait_port(int port, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        if (ok) {
            return true;
        }
        sleep_ms(20);
    }
    return false;
}

int64_t wt_du_bytes(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        return S_ISREG(st.st_mode) ? (int64_t)st.st_size : 0;
    }
    int64_t total = 0;
    DIR *d = opendir(path);
    if (d == NULL) {
        return 0;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        char p[4096];
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        total += wt_du_bytes(p);
    }
    closedir(d);
    return total;
}

char *wt_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 65536, n = 0;
    char *buf = wf_malloc(cap + 1);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            cap *= 2;
            buf = wf_realloc(buf, cap + 1);
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL) {
        *len = n;
    }
    return buf;
}

void wt_write_file(const char *path, const char *text)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    if (fp == NULL || fputs(text, fp) == EOF || fclose(fp) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "wt_write_file %s: %s\n", path, strerror(errno));
        abort();
    }
}

/* Whether a test of this process called wt_skip(): one test binary is one process. */
static bool wt_skipped;

void wt_note_skip(void)
{
    wt_skipped = true;
}

int wt_exit_code(int failed)
{
    return failed != 0 ? failed : wt_skipped ? 77 : 0;
}

uint64_t wt_rand(uint64_t *state)
{
    uint64_t x = *state ? *state : 0x2545f4914f6cdd1dULL;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dULL;
}

int wt_http_connect(int port, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* MSG_NOSIGNAL: a server that answers and closes before taking the body must not kill us. */
static bool send_all(int fd, const void *p, size_t len)
{
    return len == 0 || send(fd, p, len, MSG_NOSIGNAL) == (ssize_t)len;
}

int wt_http_send(int fd, int port, const char *method, const char *path, const char *headers,
                 const char *req_body, size_t req_len)
{
    bool chunked = headers != NULL && strstr(headers, "Transfer-Encoding: chunked\r\n") != NULL;
    char clen[64] = "";
    if (req_body != NULL && !chunked) {
        snprintf(clen, sizeof(clen), "Content-Length: %zu\r\n", req_len);
    }
    char head[4096];
    int hl = snprintf(head, sizeof(head),
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s%s\r\n",
                      method, path, port, headers != NULL ? headers : "", clen);
    if (hl < 0 || hl >= (int)sizeof(head) || !send_all(fd, head, (size_t)hl)) {
        return -1;
    }
    if (req_body == NULL) {
        return 0;
    }
    if (chunked) {
        char ch[32];
        int cl = snprintf(ch, sizeof(ch), "%zx\r\n", req_len);
        return send_all(fd, ch, (size_t)cl) && send_all(fd, req_body, req_len) &&
                       send_all(fd, "\r\n0\r\n\r\n", 7)
                   ? 0
                   : -1;
    }
    return send_all(fd, req_body, req_len) ? 0 : -1;
}

int wt_http_read(int fd, char **body)
{
    size_t cap = 65536, n = 0;
    char *buf = wf_malloc(cap + 1);
    ssize_t r;
    while ((r = read(fd, buf + n, cap - n)) > 0) {
        n += (size_t)r;
        if (n == cap) {
            cap *= 2;
            buf = wf_realloc(buf, cap + 1);
        }
    }
    close(fd);
    buf[n] = '\0';
    int status = -1;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
        status = -1;
    }
    if (body != NULL) {
        char *sep = strstr(buf, "\r\n\r\n");
        *body = wf_strdup(sep ? sep + 4 : "");
    }
    wf_free(buf);
    return status;
}

int wt_http_ex(int port, const char *method, const char *path, const char *headers,
               const char *req_body, size_t req_len, int timeout_ms, char **body)
{
    int fd = wt_http_connect(port, timeout_ms);
    if (fd < 0) {
        if (body != NULL) {
            *body = wf_strdup("");
        }
        return -1;
    }
    /* A server may refuse a body before reading it: its answer still counts, so a failed send
     * is not an error by itself (no answer at all gives -1 below). */
    (void)wt_http_send(fd, port, method, path, headers, req_body, req_len);
    return wt_http_read(fd, body);
}

int wt_http(int port, const char *method, const char *path, const char *req_body, size_t req_len,
            char **body)
{
    char *text = NULL;
    int status = wt_http_ex(port, method, path, NULL, req_body ? req_body : "",
                            req_body ? req_len : 0, 10000, &text);
    if (status < 0 || body == NULL) {
        wf_free(text);
    } else {
        *body = text;
    }
    return status;
}

bool wt_aborts(void (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        fn();
        _exit(0);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        return false;
    }
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

int wt_sh(const char *dir, const char *fmt, ...)
{
    char cmd[4096], full[4800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    snprintf(full, sizeof(full), "cd '%s' && (%s) >sh.log 2>&1", dir, cmd);
    int st = system(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void wt_gzip(const void *in, size_t n, wf_buf_t *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        abort();
    }
    size_t room = deflateBound(&z, (uLong)n);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = wf_buf_reserve(out, room);
    z.avail_out = (uInt)room;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
        abort();
    }
    out->len += room - z.avail_out;
    deflateEnd(&z);
}
