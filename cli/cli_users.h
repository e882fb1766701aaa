/*
 * cli_users.h - `weft users add|remove|token FILE NAME`: the collector's users file.
 */
#ifndef CLI_USERS_H
#define CLI_USERS_H

/* argv[0] is "users". Returns the exit status: 0, 1 (failed), 2 (usage). */
int cli_users_main(int argc, char **argv);

#endif
