/*
 * cp_token.h - the control plane's bearer tokens: the admin token (writes and reads), the read
 * token (reads only) and the bootstrap token (proxies registering and fetching).
 *
 * A token is 32 random bytes (getrandom) written as 64 hex digits in a file of mode 0600,
 * created with O_EXCL so two control planes starting together never both write one. Clients
 * send `Authorization: Bearer <token>`; the comparison takes the same time whatever prefix
 * matches.
 */
#ifndef CP_TOKEN_H
#define CP_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#define CP_TOKEN_HEX_LEN 64
#define CP_TOKEN_MAX_LEN 512

/*
 * Read the token from path into out (NUL-terminated, trailing whitespace removed). When the
 * file does not exist and create is true, make a fresh token and write it there first (mode
 * 0600, O_EXCL; a file that appears meanwhile is read instead). An empty token, or one longer
 * than CP_TOKEN_MAX_LEN or holding whitespace or control characters, is WF_E_INVAL.
 */
int cp_token_load(const char *path, bool create, char out[CP_TOKEN_MAX_LEN + 1]);

/* Fill out with CP_TOKEN_HEX_LEN hex digits of fresh randomness and a NUL. */
int cp_token_generate(char out[CP_TOKEN_HEX_LEN + 1]);

/* Whether a and b are equal, in time that depends only on their lengths. */
bool cp_token_equal(const char *a, const char *b);

/* Whether an Authorization header value is "Bearer <token>" for token (constant time). */
bool cp_token_check_bearer(const char *header, const char *token);

#endif
