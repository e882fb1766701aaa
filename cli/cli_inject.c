/*
 * cli_inject.c - `weft inject -f FILE|- [-o FILE]`: the sidecar injection of deploy/k8s, done
 * offline on manifests as `istioctl kube-inject` does (the rewriting is cp_inject.c). The
 * output appears only when the whole input was accepted: a refused input writes nothing to
 * standard output, and -o FILE is replaced atomically (a temporary file renamed over it).
 */
#include "cli_inject.h"

#include "cp_inject.h"
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_err.h"
#include "wf_flags.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char *filename;
    char *output;
    char *control;
    char *image;
    char *collector;
    char *log_level;
    char *proxy_cpu, *proxy_memory, *proxy_cpu_limit, *proxy_memory_limit;
    bool native_sidecar;
} inject_cfg_t;

static const wf_flag_t inject_flags[] = {
    {"filename", WF_FLAG_STR, NULL, offsetof(inject_cfg_t, filename),
     "the manifests to inject (-f; - = standard input) (required)"},
    {"output", WF_FLAG_STR, NULL, offsetof(inject_cfg_t, output),
     "write the result to this file instead of standard output (-o)"},
    {"control", WF_FLAG_STR, "http://weft-control.weft-system:15010",
     offsetof(inject_cfg_t, control), "control plane URL the sidecars register with"},
    {"image", WF_FLAG_STR, "weft:" WEFT_VERSION, offsetof(inject_cfg_t, image),
     "the sidecar's container image (one holding the weft binary as its entry point)"},
    {"collector", WF_FLAG_STR, NULL, offsetof(inject_cfg_t, collector),
     "collector URL the sidecars send spans to (default: the control plane's --collector)"},
    {"log-level", WF_FLAG_STR, NULL, offsetof(inject_cfg_t, log_level),
     "the sidecars' log level (default: weft proxy's, info)"},
    {"proxy-cpu", WF_FLAG_STR, "10m", offsetof(inject_cfg_t, proxy_cpu),
     "the sidecar's CPU request (empty = none)"},
    {"proxy-memory", WF_FLAG_STR, "32Mi", offsetof(inject_cfg_t, proxy_memory),
     "the sidecar's memory request (empty = none)"},
    {"proxy-cpu-limit", WF_FLAG_STR, NULL, offsetof(inject_cfg_t, proxy_cpu_limit),
     "the sidecar's CPU limit (default: none)"},
    {"proxy-memory-limit", WF_FLAG_STR, "128Mi", offsetof(inject_cfg_t, proxy_memory_limit),
     "the sidecar's memory limit (empty = none)"},
    {"native-sidecar", WF_FLAG_BOOL, "true", offsetof(inject_cfg_t, native_sidecar),
     "run the sidecar as a Kubernetes native sidecar (an init container with restartPolicy "
     "Always, Kubernetes 1.29 and later); false: an ordinary container"},
    {NULL, 0, NULL, 0, NULL},
};

/* Read all of fd, refusing more than max bytes; 0, -errno, or WF_E_LIMIT. */
static int read_all(int fd, size_t max, wf_buf_t *b)
{
    for (;;) {
        uint8_t *p = wf_buf_reserve(b, 65536);
        ssize_t n = read(fd, p, 65536);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        if (n == 0) {
            return 0;
        }
        b->len += (size_t)n;
        if (b->len > max) {
            return WF_E_LIMIT;
        }
    }
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* path replaced by data, or left as it was: a temporary file beside it, renamed over it. */
static int write_file(const char *path, const wf_buf_t *data)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
        return -ENAMETOOLONG;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return -errno;
    }
    int rc = write_all(fd, data->data, data->len);
    if (rc == 0 && fsync(fd) != 0) {
        rc = -errno;
    }
    if (close(fd) != 0 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        unlink(tmp);
    }
    return rc;
}

static const char *empty_none(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: weft inject -f FILE|- [-o FILE] [flags]\n\n"
            "Adds the weft sidecar to the pods of Kubernetes manifests (Pod, Deployment, "
            "StatefulSet,\nDaemonSet, ReplicaSet, ReplicationController, Job, CronJob, List) "
            "and sends the Services\nthat select them through it; other documents pass through "
            "unchanged. Offline, like\n`istioctl kube-inject`: weft inject -f app.yaml | kubectl "
            "apply -f -\n(deploy/k8s/README.md).\n\nFlags:\n");
    wf_flags_print_help(inject_flags, out);
}

int cli_inject_main(int argc, char **argv)
{
    inject_cfg_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    char err[256];
    int argi = argc, status = 2, fd = -1;
    wf_buf_t in, out, notes;
    wf_buf_init(&in);
    wf_buf_init(&out);
    wf_buf_init(&notes);
    /* kubectl's short forms, as wf_flags knows only --name. */
    char **args = wf_calloc((size_t)argc + 1, sizeof(*args));
    for (int i = 0; i < argc; i++) {
        args[i] = strcmp(argv[i], "-f") == 0   ? "--filename"
                  : strcmp(argv[i], "-o") == 0 ? "--output"
                                               : argv[i];
    }
    int rc = wf_flags_parse(inject_flags, &cfg, argc, args, &argi, err, sizeof(err));
    if (rc == 1) {
        usage(stdout);
        status = 0;
        goto out;
    }
    if (rc != 0) {
        fprintf(stderr, "weft inject: %s\n", err);
        goto out;
    }
    if (argi < argc) {
        fprintf(stderr, "weft inject: unexpected argument '%s' (weft inject --help)\n", argv[argi]);
        goto out;
    }
    if (cfg.filename == NULL || cfg.filename[0] == '\0') {
        fprintf(stderr, "weft inject: -f FILE (or -f - for standard input) is required\n");
        goto out;
    }
    if (empty_none(cfg.image) == NULL || empty_none(cfg.control) == NULL) {
        fprintf(stderr, "weft inject: --image and --control must not be empty\n");
        goto out;
    }
    status = 1;
    const char *name = strcmp(cfg.filename, "-") == 0 ? "standard input" : cfg.filename;
    fd = strcmp(cfg.filename, "-") == 0 ? 0 : open(cfg.filename, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "weft inject: %s: %s\n", name, strerror(errno));
        goto out;
    }
    cp_yaml_limits_t lim;
    cp_inject_limits(&lim);
    rc = read_all(fd, lim.max_bytes, &in);
    if (rc == WF_E_LIMIT) {
        fprintf(stderr, "weft inject: %s: larger than %zu bytes (the largest input accepted)\n",
                name, lim.max_bytes);
        goto out;
    }
    if (rc < 0) {
        fprintf(stderr, "weft inject: %s: %s\n", name, strerror(-rc));
        goto out;
    }
    cp_inject_opts_t o = {
        .image = cfg.image,
        .control = cfg.control,
        .collector = empty_none(cfg.collector),
        .log_level = empty_none(cfg.log_level),
        .cpu_request = empty_none(cfg.proxy_cpu),
        .memory_request = empty_none(cfg.proxy_memory),
        .cpu_limit = empty_none(cfg.proxy_cpu_limit),
        .memory_limit = empty_none(cfg.proxy_memory_limit),
        .native_sidecar = cfg.native_sidecar,
        .limits = &lim,
    };
    cp_err_t e;
    rc = cp_inject((const char *)in.data, in.len, &o, &out, &notes, &e);
    if (rc < 0) {
        fprintf(stderr, "weft inject: %s: %s\n", name, e.msg);
        goto out;
    }
    /* One line per workload left alone on purpose: not an error, but never silent. */
    for (size_t i = 0; i < notes.len;) {
        const uint8_t *nl = memchr(notes.data + i, '\n', notes.len - i);
        size_t end = nl != NULL ? (size_t)(nl - notes.data) : notes.len;
        fprintf(stderr, "weft inject: %.*s\n", (int)(end - i), (const char *)notes.data + i);
        i = end + 1;
    }
    if (cfg.output != NULL) {
        rc = write_file(cfg.output, &out);
    } else {
        rc = write_all(1, out.data, out.len);
    }
    if (rc < 0) {
        fprintf(stderr, "weft inject: %s: %s\n", cfg.output ? cfg.output : "standard output",
                strerror(-rc));
        goto out;
    }
    status = 0;
out:
    if (fd > 0) {
        close(fd);
    }
    wf_buf_free(&notes);
    wf_buf_free(&out);
    wf_buf_free(&in);
    wf_free(args);
    wf_flags_free(inject_flags, &cfg);
    return status;
}
