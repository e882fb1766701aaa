/*
 * demo_proc.c - the process and network helpers of demo_proc.h.
 */
#include "demo_proc.h"

#include "wf_clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

pid_t demo_spawn(const char *who, const demo_spawn_t *s)
{
    int log = -1;
    if (s->log != NULL &&
        (log = open(s->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0) {
        fprintf(stderr, "%s: cannot open %s: %s\n", who, s->log, strerror(errno));
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: fork: %s\n", who, strerror(errno));
        if (log >= 0) {
            close(log);
        }
        return -1;
    }
    if (pid == 0) {
        if (s->own_group) {
            setpgid(0, 0);
        }
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) {
            _exit(1); /* the parent died before the line above */
        }
        if (log >= 0) {
            dup2(log, STDOUT_FILENO);
            dup2(log, STDERR_FILENO);
            int devnull = open("/dev/null", O_RDONLY);
            if (devnull >= 0) {
                dup2(devnull, STDIN_FILENO);
            }
        }
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        const char *names[2][2] = {{"http_proxy", "HTTP_PROXY"}, {"no_proxy", "NO_PROXY"}};
        for (int i = 0; i < 2; i++) {
            for (int k = 0; k < 2; k++) {
                unsetenv(names[i][k]);
            }
        }
        if (s->http_proxy != NULL) {
            const char *np = s->no_proxy != NULL ? s->no_proxy : "";
            setenv("http_proxy", s->http_proxy, 1);
            setenv("HTTP_PROXY", s->http_proxy, 1);
            setenv("no_proxy", np, 1);
            setenv("NO_PROXY", np, 1);
        }
        execvp(s->argv[0], s->argv);
        dprintf(STDERR_FILENO, "%s: cannot run %s: %s\n", who, s->argv[0], strerror(errno));
        _exit(127);
    }
    if (log >= 0) {
        close(log);
    }
    return pid;
}

int demo_stop(pid_t pid, int64_t timeout_ms)
{
    int st = 0;
    if (pid <= 0) {
        return 0;
    }
    kill(pid, SIGTERM);
    int64_t until = wf_mono_ns() / 1000000 + timeout_ms;
    pid_t r;
    while ((r = waitpid(pid, &st, WNOHANG)) == 0) {
        if (wf_mono_ns() / 1000000 > until) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    return r < 0 ? -1 : st;
}

bool demo_port_free(const char *ip, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    bool ok =
        inet_pton(AF_INET, ip, &a.sin_addr) == 1 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

int demo_free_ports(int *ports, size_t n)
{
    int fds[64];
    int rc = 0;
    size_t opened = 0;
    if (n > sizeof(fds) / sizeof(fds[0])) {
        return -1;
    }
    for (; opened < n && rc == 0; opened++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        fds[opened] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[opened] < 0 || bind(fds[opened], (struct sockaddr *)&a, sizeof(a)) != 0 ||
            getsockname(fds[opened], (struct sockaddr *)&a, &len) != 0) {
            rc = -1;
        }
        ports[opened] = ntohs(a.sin_port);
    }
    for (size_t i = 0; i < opened; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    return rc;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

long demo_http_get(CURL *c, const char *url, const char *cookie, long timeout_ms)
{
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    if (cookie != NULL) {
        curl_easy_setopt(c, CURLOPT_COOKIE, cookie);
    }
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    }
    return status;
}
