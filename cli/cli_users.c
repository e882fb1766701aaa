/*
 * cli_users.c - `weft users`: edits the collector's users file (col_users.h) so that nobody has
 * to hand-write a hash. Passwords are read from the terminal without echo (twice), or from
 * standard input with --password-stdin (scripts, tests); API tokens are printed once and only
 * their SHA-256 is stored.
 */
#include "cli_users.h"

#include "col_users.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: weft users <command> [flags] FILE NAME\n\n"
            "Edit a users file for `weft collector --users FILE` (created when missing, mode "
            "0600,\nreplaced atomically).\n\nCommands:\n"
            "  add FILE NAME      set NAME's password (asked twice on the terminal), replacing "
            "an old one\n"
            "  remove FILE NAME   remove NAME: its password and every token\n"
            "  token FILE NAME    make an API token for NAME (Authorization: Bearer ...); "
            "printed once\n\n"
            "Flags of add:\n"
            "  --password-stdin   read the password from standard input (one line)\n"
            "  --scheme S         bcrypt (default, cost 12) or yescrypt\n"
            "  --cost N           the scheme's cost (bcrypt 4..31, yescrypt 1..11)\n");
}

/* Read a line from fd into buf (without its end of line); length, or -1 (too long, error). */
static ssize_t read_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return -1;
        }
        if (r == 0 || c == '\n') {
            break;
        }
        if (n + 1 >= cap) {
            return -1;
        }
        buf[n++] = c;
    }
    if (n > 0 && buf[n - 1] == '\r') {
        n--;
    }
    buf[n] = '\0';
    return (ssize_t)n;
}

/* Ask for a password on the terminal with echo off. 0, or -1 after saying why. */
static int ask_tty(const char *prompt, char *buf, size_t cap)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "weft users: no terminal to ask for the password on: use "
                        "--password-stdin\n");
        return -1;
    }
    struct termios old;
    struct termios quiet;
    bool restore = tcgetattr(fd, &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        quiet.c_lflag |= ECHONL;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    if (write(fd, prompt, strlen(prompt)) < 0) {
        /* The prompt is a courtesy; the read below still works. */
    }
    ssize_t n = read_line(fd, buf, cap);
    if (restore) {
        tcsetattr(fd, TCSAFLUSH, &old);
    }
    close(fd);
    if (n < 0) {
        fprintf(stderr, "weft users: could not read the password (at most %d bytes)\n",
                COL_USERS_PASSWORD_MAX);
        return -1;
    }
    return 0;
}

static int cmd_add(const char *file, const char *name, bool from_stdin, const char *scheme,
                   unsigned cost)
{
    char pw[COL_USERS_PASSWORD_MAX + 2];
    char again[COL_USERS_PASSWORD_MAX + 2];
    char hash[256];
    char err[512];
    int status = 1;
    if (from_stdin) {
        if (read_line(0, pw, sizeof(pw)) < 0) {
            fprintf(stderr,
                    "weft users: could not read the password from standard input (at "
                    "most %d bytes)\n",
                    COL_USERS_PASSWORD_MAX);
            goto out;
        }
    } else {
        char prompt[200];
        snprintf(prompt, sizeof(prompt), "Password for %.128s: ", name);
        if (ask_tty(prompt, pw, sizeof(pw)) != 0 ||
            ask_tty("Repeat the password: ", again, sizeof(again)) != 0) {
            goto out;
        }
        if (strcmp(pw, again) != 0) {
            fprintf(stderr, "weft users: the passwords differ; nothing changed\n");
            goto out;
        }
    }
    if (pw[0] == '\0') {
        fprintf(stderr, "weft users: empty password refused\n");
        goto out;
    }
    if (strlen(pw) > COL_USERS_PASSWORD_MAX) {
        fprintf(stderr, "weft users: password longer than %d bytes\n", COL_USERS_PASSWORD_MAX);
        goto out;
    }
    if (strcmp(scheme, "bcrypt") == 0 && strlen(pw) > 72) {
        /* bcrypt reads 72 bytes; more would silently be ignored. */
        fprintf(stderr, "weft users: bcrypt uses only the first 72 bytes of a password: use "
                        "--scheme yescrypt for longer ones\n");
        goto out;
    }
    if (col_users_hash_password(scheme, cost, pw, hash, sizeof(hash)) != 0) {
        fprintf(stderr,
                "weft users: cannot hash with --scheme %s --cost %u (bcrypt 4..31, "
                "yescrypt 1..11)\n",
                scheme, cost);
        goto out;
    }
    if (col_users_file_edit(file, COL_USERS_SET_PASSWORD, name, hash, err, sizeof(err)) != 0) {
        fprintf(stderr, "weft users: %s\n", err);
        goto out;
    }
    fprintf(stderr, "weft users: password of %s set in %s\n", name, file);
    status = 0;
out:
    OPENSSL_cleanse(pw, sizeof(pw));
    OPENSSL_cleanse(again, sizeof(again));
    return status;
}

static int cmd_token(const char *file, const char *name)
{
    char token[80];
    char field[96];
    char err[512];
    if (col_users_new_token(token, sizeof(token), field, sizeof(field)) != 0) {
        fprintf(stderr, "weft users: no random bytes for a token\n");
        return 1;
    }
    if (col_users_file_edit(file, COL_USERS_ADD_TOKEN, name, field, err, sizeof(err)) != 0) {
        fprintf(stderr, "weft users: %s\n", err);
        OPENSSL_cleanse(token, sizeof(token));
        return 1;
    }
    printf("%s\n", token);
    fflush(stdout);
    fprintf(stderr,
            "weft users: token for %s added to %s; it is shown only now. Use it as "
            "`Authorization: Bearer <token>`\n",
            name, file);
    OPENSSL_cleanse(token, sizeof(token));
    return 0;
}

int cli_users_main(int argc, char **argv)
{
    const char *pos[3] = {NULL, NULL, NULL};
    size_t npos = 0;
    bool from_stdin = false;
    const char *scheme = "bcrypt";
    unsigned cost = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--password-stdin") == 0) {
            from_stdin = true;
        } else if (strcmp(a, "--scheme") == 0 && i + 1 < argc) {
            scheme = argv[++i];
        } else if (strcmp(a, "--cost") == 0 && i + 1 < argc) {
            char *end;
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (*end != '\0' || v == 0 || v > 31) {
                fprintf(stderr, "weft users: invalid --cost %s\n", argv[i]);
                return 2;
            }
            cost = (unsigned)v;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "weft users: unknown flag %s\n\n", a);
            usage(stderr);
            return 2;
        } else if (npos < 3) {
            pos[npos++] = a;
        } else {
            fprintf(stderr, "weft users: too many arguments\n\n");
            usage(stderr);
            return 2;
        }
    }
    if (npos != 3) {
        usage(stderr);
        return 2;
    }
    const char *cmd = pos[0];
    const char *file = pos[1];
    const char *name = pos[2];
    if (strcmp(scheme, "bcrypt") != 0 && strcmp(scheme, "yescrypt") != 0) {
        fprintf(stderr, "weft users: unknown --scheme %s (bcrypt or yescrypt)\n", scheme);
        return 2;
    }
    if (strcmp(cmd, "add") == 0) {
        return cmd_add(file, name, from_stdin, scheme, cost);
    }
    if (strcmp(cmd, "token") == 0) {
        return cmd_token(file, name);
    }
    if (strcmp(cmd, "remove") == 0) {
        char err[512];
        int rc = col_users_file_edit(file, COL_USERS_REMOVE, name, NULL, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "weft users: %s\n", err);
            return 1;
        }
        fprintf(stderr, "weft users: %s removed from %s\n", name, file);
        return 0;
    }
    fprintf(stderr, "weft users: unknown command %s\n\n", cmd);
    usage(stderr);
    return 2;
}
