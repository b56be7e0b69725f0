/*
 * migrate.h — `clarity migrate up|status`, and opening the store the way
 * `serve` needs it (src/cli/serve.c).
 */
#ifndef CLARITY_CLI_MIGRATE_H
#define CLARITY_CLI_MIGRATE_H

struct config;
struct store;

/*
 * `clarity migrate up [--to NAME]` applies pending migrations (forward only);
 * `clarity migrate status` lists every migration with its state. argv[0] is
 * "migrate". Exit 0 ok, 1 failure (database unreachable, changed checksum),
 * 2 usage.
 */
int cli_migrate(int argc, char **argv);

/*
 * Open the store at cfg->database_url for `serve`: in development pending
 * migrations are applied; in staging and production any pending migration
 * is refused with a log line telling the operator to run `clarity migrate up`.
 * Returns 0 and *out (caller closes with store_close), or -1 after logging
 * why (never the database password).
 */
int cli_store_open_for_serve(const struct config *cfg, struct store **out);

struct envelope_key;
struct keyring;
/*
 * Open the encryption key ring (ENCRYPTION_KEY) over st and make it the
 * store's sealer: sample blocks, analyses and insights are sealed with it
 * (issue #19). Every process that writes or reads them calls this after
 * opening the store. *master and *ring are the caller's to free
 * (envelope_key_free, keyring_close) after the store is closed. Logs and
 * returns non-zero when the ring cannot be opened.
 */
int cli_store_seal(const struct config *cfg, struct store *st, struct envelope_key **master, struct keyring **ring);

/*
 * Open the store for an operator command (one connection) and refuse, with
 * a line on stderr, a database with pending or changed migrations. 0 or -1.
 */
int cli_store_open(const struct config *cfg, struct store **out);

#endif
