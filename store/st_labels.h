/*
 * st_labels.h - label sets: validation, the canonical encoding that identifies a series, and
 * its hash. Internal to store/.
 *
 * A series is identified by its label set sorted by name (byte order). The canonical encoding
 * is, for each label in that order, uvarint(len(name)) name uvarint(len(value)) value. It is
 * what the `series` table stores, what the writer hashes to find a series id, and what readers
 * decode to hand labels out. Two label sets are the same series exactly when their encodings
 * are byte-equal.
 *
 * Thread-safety: pure functions over caller memory.
 */
#ifndef ST_LABELS_H
#define ST_LABELS_H

#include "st_store.h"
#include "wf_buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Validate labels[0..n) against the limits in o, drop labels with empty values, sort the rest by
 * name into out (room for n entries; the slices still borrow the caller's bytes) and return
 * their count in *nout. Returns 0 or ST_E_LABEL_NAME, ST_E_LABEL_VALUE, ST_E_LABEL_DUP,
 * ST_E_LABEL_LIMIT, ST_E_NO_LABELS.
 */
int st__labels_normalize(const st_options_t *o, const st_label_t *labels, size_t n, st_label_t *out,
                         size_t *nout);

/*
 * Copy the labels with a non-empty value into out (room for n), sorted by name (stable), without
 * validating anything; *nout receives their count. Returns true when some label was dropped.
 */
bool st__labels_sort(const st_label_t *labels, size_t n, st_label_t *out, size_t *nout);

/*
 * Fast path for input that is already canonical: when labels are strictly sorted by name and
 * none has an empty value, append their encoding to b and return true; otherwise leave b
 * untouched and return false. Does not validate names or values (the caller only trusts the
 * result when it equals the encoding of a series that was validated before).
 */
bool st__labels_encode_if_sorted(const st_label_t *labels, size_t n, wf_buf_t *b);

/* Append the canonical encoding of the sorted labels to b. */
void st__labels_encode(const st_label_t *labels, size_t n, wf_buf_t *b);

/*
 * Iterate an encoding: returns 1 with *name and *value set (borrowing from the encoding), 0 at the
 * end, or WF_E_CORRUPT.
 */
int st__labels_next(wf_rd_t *r, wf_str_t *name, wf_str_t *value);

/* Number of labels in a valid encoding, or WF_E_CORRUPT. */
int st__labels_count(const uint8_t *enc, size_t len);

/* Value of label `name` in an encoding; "" when absent (the Prometheus view of a missing label). */
wf_str_t st__labels_get(const uint8_t *enc, size_t len, wf_str_t name);

/* Compare two label lists the way Prometheus orders series: label by label, name then value. */
int st__labels_cmp(const st_label_t *a, size_t na, const st_label_t *b, size_t nb);

#endif
