/*
 * backup.c — `clarity backup PATH`. See backup.h and docs/operations.md
 * (Storage).
 */
#include "cli/backup.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/timeutil.h"
#include "store/store.h"

int cli_backup(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fputs("usage: clarity backup PATH\n", stderr);
        return CLI_EXIT_USAGE;
    }
    struct config cfg;
    int rc = cli_config_load(&cfg);
    if (rc != 0)
        return rc;
    struct store *st = NULL;
    struct store_options o;
    char err[1024] = "", shown[512];
    store_options_from_config(&o, &cfg);
    o.pool_size = 1;
    config_redact_url(cfg.database_url, shown, sizeof(shown));
    rc = store_open(cfg.database_url, &o, &st, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "clarity backup: cannot open the database %s: %s\n", shown, err);
        config_free(&cfg);
        return CLI_EXIT_FAILURE;
    }
    uint64_t t0 = time_mono_ns();
    rc = store_backup(st, argv[1], err, sizeof(err));
    if (rc == 0) {
        printf("backed up %s to %s in %.1f ms\n", shown, argv[1], (double)(time_mono_ns() - t0) / 1e6);
    } else {
        fprintf(stderr, "clarity backup: %s\n", err);
    }
    store_close(st);
    config_free(&cfg);
    return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}
