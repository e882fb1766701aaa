/*
 * cp_kinds.h - the one table of Istio kinds the control plane serves, and the names users and
 * URLs give them: Kind ("VirtualService"), API group and served versions, the REST plural
 * ("virtualservices") used in /apis/ paths, the singular kubectl prints
 * ("virtualservice.networking.istio.io/reviews created") and the short name ("vs").
 *
 * The HTTP API (cp_api.c) routes resource paths with it and the CLI (cp_cli.c) resolves what
 * a user types after `weft get`, so a kind has one spelling everywhere. The table is constant;
 * any thread.
 */
#ifndef CP_KINDS_H
#define CP_KINDS_H

#include "cp_istio.h"

typedef struct {
    cp_kind_t id;
    const char *kind;            /* "VirtualService" */
    const char *group;           /* "networking.istio.io" */
    const char *plural;          /* "virtualservices" */
    const char *singular;        /* "virtualservice" */
    const char *short_name;      /* "vs"; NULL when Istio defines none */
    const char *const *versions; /* served, preferred first; NULL-terminated */
} cp_kind_info_t;

/* Every served kind, in the order `weft get` documents them; ends with an entry whose kind is
 * NULL. */
extern const cp_kind_info_t cp_kinds[];

/* The kind served at /apis/{group}/{version}/.../{plural}, or NULL. */
const cp_kind_info_t *cp_kinds_find(const char *group, const char *version, const char *plural);
/* The entry of kind id, or NULL for CP_KIND_NONE and out-of-range values. */
const cp_kind_info_t *cp_kinds_by_id(cp_kind_t id);
/* The kind named "VirtualService" (case-sensitive, as in documents), or NULL. */
const cp_kind_info_t *cp_kinds_by_kind(const char *kind);
/*
 * The kind a user means by word, as kubectl resolves it: short name ("vs"), singular, plural,
 * or either of the last two qualified by the group ("virtualservices.networking.istio.io"),
 * case-insensitive. NULL when none matches.
 */
const cp_kind_info_t *cp_kinds_lookup(const char *word);

#endif
