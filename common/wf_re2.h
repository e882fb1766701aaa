/*
 * wf_re2.h - is a regular expression RE2 syntax? Istio's API and Envoy's safe_regex promise
 * RE2; the proxy and the control plane compile patterns with PCRE2, which accepts more. This is
 * the one check both use, so that a pattern the control plane accepts is one the proxy takes
 * and means the same as in Istio.
 *
 * Refused: backreferences (\1..\9, \g, \k, (?P=name)), lookahead and lookbehind, atomic
 * groups, recursion, conditionals, callouts, backtracking verbs `(*...)`, possessive
 * quantifiers, repetition counts above 1000, the escapes \K \G \Z \R \X \h \H \V \N \c \e
 * \C \u \U \l \L, and group openers other than `(?:`, `(?P<name>`, `(?<name>` and flags from
 * [imsU-]. Whether the pattern is otherwise well-formed is left to the compiler.
 */
#ifndef WF_RE2_H
#define WF_RE2_H

#include <stddef.h>

/* The first feature of p[0..n) that PCRE2 has and RE2 lacks, as a message ending in "not RE2
 * syntax" (or naming the limit), or NULL. */
const char *wf_re2_unsupported(const char *p, size_t n);

#endif
