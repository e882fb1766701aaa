/*
 * cp_err.h - the control plane's error codes (wf_err.h reserves -1400..-1499 for it) and their
 * names. Functions return 0, a negative WF_E_* / -errno, or one of these.
 */
#ifndef CP_ERR_H
#define CP_ERR_H

enum {
    CP_E_SYNTAX = -1400,      /* not well-formed YAML/JSON, non-UTF-8, duplicate key */
    CP_E_LIMIT = -1401,       /* a size, depth or node-count limit was exceeded */
    CP_E_KIND = -1402,        /* unknown kind or apiVersion */
    CP_E_INVALID = -1403,     /* a field failed structural validation */
    CP_E_UNSUPPORTED = -1404, /* a valid Istio feature weft refuses (AuthorizationPolicy CUSTOM) */
    CP_E_EXISTS = -1420,      /* create of a key that exists (Kubernetes AlreadyExists) */
    CP_E_CONFLICT = -1421,    /* stale resourceVersion on update/delete (Kubernetes Conflict) */
};

/* Name of a CP_E_* / WF_E_* / -errno code. Never NULL. */
const char *cp_strerror(int code);

#endif
