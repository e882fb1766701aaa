/*
 * cp_kinds.c - the table of served Istio kinds and its look-ups (see cp_kinds.h).
 */
#include "cp_kinds.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

static const char *const net_versions[] = {"v1", "v1beta1", "v1alpha3", NULL};
static const char *const sec_versions[] = {"v1", "v1beta1", NULL};

const cp_kind_info_t cp_kinds[] = {
    {CP_KIND_VIRTUAL_SERVICE, "VirtualService", "networking.istio.io", "virtualservices",
     "virtualservice", "vs", net_versions},
    {CP_KIND_DESTINATION_RULE, "DestinationRule", "networking.istio.io", "destinationrules",
     "destinationrule", "dr", net_versions},
    {CP_KIND_GATEWAY, "Gateway", "networking.istio.io", "gateways", "gateway", "gw", net_versions},
    {CP_KIND_SERVICE_ENTRY, "ServiceEntry", "networking.istio.io", "serviceentries", "serviceentry",
     "se", net_versions},
    {CP_KIND_SIDECAR, "Sidecar", "networking.istio.io", "sidecars", "sidecar", NULL, net_versions},
    {CP_KIND_PEER_AUTHENTICATION, "PeerAuthentication", "security.istio.io", "peerauthentications",
     "peerauthentication", "pa", sec_versions},
    {CP_KIND_AUTHORIZATION_POLICY, "AuthorizationPolicy", "security.istio.io",
     "authorizationpolicies", "authorizationpolicy", "ap", sec_versions},
    {CP_KIND_NONE, NULL, NULL, NULL, NULL, NULL, NULL},
};

const cp_kind_info_t *cp_kinds_find(const char *group, const char *version, const char *plural)
{
    for (const cp_kind_info_t *k = cp_kinds; k->kind; k++) {
        if (strcmp(k->group, group) != 0 || strcmp(k->plural, plural) != 0) {
            continue;
        }
        for (const char *const *v = k->versions; *v; v++) {
            if (strcmp(*v, version) == 0) {
                return k;
            }
        }
    }
    return NULL;
}

const cp_kind_info_t *cp_kinds_by_id(cp_kind_t id)
{
    for (const cp_kind_info_t *k = cp_kinds; k->kind; k++) {
        if (k->id == id) {
            return k;
        }
    }
    return NULL;
}

const cp_kind_info_t *cp_kinds_by_kind(const char *kind)
{
    for (const cp_kind_info_t *k = cp_kinds; k->kind; k++) {
        if (strcmp(k->kind, kind) == 0) {
            return k;
        }
    }
    return NULL;
}

/* word is name, or name "." group. */
static bool names(const char *word, const char *name, const char *group)
{
    size_t n = strlen(name);
    if (strncasecmp(word, name, n) != 0) {
        return false;
    }
    return word[n] == '\0' || (word[n] == '.' && strcasecmp(word + n + 1, group) == 0);
}

const cp_kind_info_t *cp_kinds_lookup(const char *word)
{
    for (const cp_kind_info_t *k = cp_kinds; k->kind; k++) {
        if ((k->short_name != NULL && strcasecmp(word, k->short_name) == 0) ||
            names(word, k->plural, k->group) || names(word, k->singular, k->group)) {
            return k;
        }
    }
    return NULL;
}
