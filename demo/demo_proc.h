/*
 * demo_proc.h - starting and stopping the processes `weft demo` and `weft run` supervise, and
 * the small network checks they make before and after (ports, an HTTP GET).
 */
#ifndef DEMO_PROC_H
#define DEMO_PROC_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct {
    char *const *argv;      /* argv[0] is the program's path */
    const char *log;        /* stdout and stderr appended here; NULL: inherited */
    const char *http_proxy; /* http_proxy and HTTP_PROXY for the child; NULL: both removed */
    const char *no_proxy;   /* no_proxy and NO_PROXY with http_proxy; NULL: "" */
    bool own_group;         /* its own process group (a terminal's Ctrl-C does not reach it) */
} demo_spawn_t;

/*
 * fork + exec as s says. The child gets SIGTERM when this process dies (PR_SET_PDEATHSIG), its
 * signal dispositions reset, stdin from /dev/null when it logs to a file. Returns the pid, or
 * -1 with a message on stderr (prefixed by who).
 */
pid_t demo_spawn(const char *who, const demo_spawn_t *s);

/* SIGTERM, up to timeout_ms for the process to exit, then SIGKILL; its wait status. */
int demo_stop(pid_t pid, int64_t timeout_ms);

/* Whether ip:port (IPv4) can be bound now: nothing listens there. */
bool demo_port_free(const char *ip, int port);

/* n distinct ports of 127.0.0.1 the kernel says are free now (all held open while they are
 * chosen, so no two are the same); 0, or -1 when the kernel gave none. */
int demo_free_ports(int *ports, size_t n);

/* GET url with handle c (reset first; no proxy; body discarded): the status, or 0 when
 * nothing answered. cookie may be NULL. */
long demo_http_get(CURL *c, const char *url, const char *cookie, long timeout_ms);

#endif
