/*
 * backup.h — `clarity backup PATH`.
 */
#ifndef CLARITY_CLI_BACKUP_H
#define CLARITY_CLI_BACKUP_H

/*
 * Copy the running SQLite database named by DATABASE_URL to PATH, online and
 * consistent (SQLite's backup API; the server keeps serving). On PostgreSQL
 * prints the pg_dump command to use instead and exits 1. argv[0] is
 * "backup". Exit 0 ok, 1 failure, 2 usage.
 */
int cli_backup(int argc, char **argv);

#endif
