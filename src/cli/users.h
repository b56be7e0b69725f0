/*
 * users.h — `clarity users`: create, list, show, disable, unlock, set-role
 * and reset-password accounts, each change audited (see users.c).
 */
#ifndef CLARITY_CLI_USERS_H
#define CLARITY_CLI_USERS_H

int cli_users(int argc, char **argv);

#endif
