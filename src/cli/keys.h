/*
 * keys.h — `clarity keys status|rotate|rewrap`: the encryption key ring
 * (src/crypto/keyring.h, docs/security.md) from the command line.
 */
#ifndef CLARITY_CLI_KEYS_H
#define CLARITY_CLI_KEYS_H

/*
 * argv[0] is "keys".
 *   keys status [--json]        versions, status, age; warns past 90 days
 *   keys rotate [--wait SECONDS] [--batch N] [--no-rewrap]
 *                               add a version, wait for running instances to
 *                               switch to it (default 31 s), then re-wrap
 *                               every stored data key in batches
 *   keys rewrap [--batch N]     resume or repeat the re-wrap pass
 * Loads the configuration like `serve` (ENCRYPTION_KEY, DATABASE_URL) and
 * opens the store with serve's migration policy. Exit 0 ok, 1 failure (store
 * unreachable, wrong ENCRYPTION_KEY, rows that did not re-wrap), 2 usage or
 * invalid configuration.
 */
int cli_keys(int argc, char **argv);

#endif
