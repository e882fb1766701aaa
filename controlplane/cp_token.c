/*
 * cp_token.c - bearer tokens: creation, loading, constant-time checks (see cp_token.h).
 */
#include "cp_token.h"

#include "wf_err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

int cp_token_generate(char out[CP_TOKEN_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t raw[CP_TOKEN_HEX_LEN / 2];
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[CP_TOKEN_HEX_LEN] = '\0';
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int create_token(const char *path)
{
    char tok[CP_TOKEN_HEX_LEN + 2];
    int err = cp_token_generate(tok);
    if (err < 0) {
        return err;
    }
    tok[CP_TOKEN_HEX_LEN] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return errno == EEXIST ? 0 : -errno;
    }
    /* The umask may have narrowed the mode, never widened it; set it exactly. */
    if (fchmod(fd, 0600) < 0 || (err = write_all(fd, tok, CP_TOKEN_HEX_LEN + 1)) < 0 ||
        fsync(fd) < 0) {
        err = err < 0 ? err : -errno;
        close(fd);
        unlink(path);
        return err;
    }
    return close(fd) < 0 ? -errno : 0;
}

int cp_token_load(const char *path, bool create, char out[CP_TOKEN_MAX_LEN + 1])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
        int err = create_token(path);
        if (err < 0) {
            return err;
        }
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        return -errno;
    }
    char buf[CP_TOKEN_MAX_LEN + 2];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int err = -errno;
            close(fd);
            return err;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
        if (len == sizeof(buf) - 1) {
            break;
        }
    }
    close(fd);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
                       buf[len - 1] == '\t')) {
        len--;
    }
    if (len == 0 || len > CP_TOKEN_MAX_LEN) {
        return WF_E_INVAL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c <= ' ' || c >= 0x7f) {
            return WF_E_INVAL;
        }
    }
    memcpy(out, buf, len);
    out[len] = '\0';
    return 0;
}

bool cp_token_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    /* Walk b's length whatever a holds, so the time says nothing about where they differ. */
    unsigned diff = la != lb;
    for (size_t i = 0; i < lb; i++) {
        unsigned char ca = i < la ? (unsigned char)a[i] : 0;
        diff |= ca ^ (unsigned char)b[i];
    }
    return diff == 0;
}

bool cp_token_check_bearer(const char *header, const char *token)
{
    if (header == NULL || strncasecmp(header, "Bearer ", 7) != 0) {
        return false;
    }
    header += 7;
    while (*header == ' ') {
        header++;
    }
    return cp_token_equal(header, token);
}
