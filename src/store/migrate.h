/*
 * migrate.h — versioned, forward-only schema migrations.
 *
 * Migrations are compiled in (migrate.c), ordered by name, and recorded in
 * `_migrations (name, checksum, applied_at, complete)`. The checksum is the
 * SHA-256 of the SQL the backend runs; an applied migration whose checksum
 * no longer matches the binary's is refused (STORE_EMIGRATION), because the
 * database then no longer has the schema the code expects.
 *
 * Each migration's schema change runs in one transaction together with its
 * _migrations row. A migration may carry a data backfill that runs after,
 * in batches of its own transactions; the row stays `complete = 0` until the
 * backfill finishes, so an interrupted run resumes where it stopped and a
 * finished one is a no-op.
 */
#ifndef CLARITY_STORE_MIGRATE_H
#define CLARITY_STORE_MIGRATE_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define STORE_MIGRATION_NAME_LEN 64

struct store_migration_status {
    char name[STORE_MIGRATION_NAME_LEN];
    char checksum[65];     /* the binary's checksum, hex */
    int applied;           /* a _migrations row exists */
    int complete;          /* ... and its backfill finished */
    int checksum_ok;       /* applied with the same checksum */
    int unknown;           /* in the database, not in this binary (checksum: the database's) */
    int contract;          /* applied by store_migrate_contract only; never pending */
    int64_t applied_at_ms; /* 0 when not applied */
};

/* How many expand migrations this binary knows (what store_migrate_up
 * applies), and how many in all (contract ones too: store_migrate_status
 * lists them all). */
size_t store_migration_count(void);
size_t store_migration_known(void);

/*
 * State of every known migration, in order, then the database's migrations
 * this binary does not know (unknown = 1), into out[0..*n) (max entries).
 * Every row is reported even when one is changed or unknown; that case
 * returns STORE_EMIGRATION with the first problem in err. Otherwise 0 or a
 * STORE_E* code with a reason in err.
 */
int store_migrate_status(struct store *st, struct store_migration_status *out, size_t max, size_t *n, char *err,
                         size_t errlen);

/*
 * Apply pending migrations in order, up to and including `target` (NULL: all).
 * *applied (may be NULL) receives how many this call brought to complete
 * (a migration with a backfill counts for the runner that finished it).
 * Refuses (STORE_EMIGRATION) when an applied migration's checksum changed,
 * or the database has migrations this binary does not know.
 */
int store_migrate_up(struct store *st, const char *target, int *applied, char *err, size_t errlen);

/*
 * Apply the contract migrations (docs/data-model.md, 014): each drops what
 * only the releases before still used, so run it once no such release runs.
 * Refuses (STORE_ECONFLICT, err says why) while an expand migration is
 * pending or a migration's precondition does not hold (014: health_samples
 * still has rows); *applied (may be NULL) how many it applied.
 */
int store_migrate_contract(struct store *st, int *applied, char *err, size_t errlen);

/*
 * Undo 014 when it was applied: recreate health_samples as 013 left it
 * (empty, with its indexes) and forget 014 (*undone = 1). The first step of
 * a rollback to the releases before 013 (store_sample_blocks_to_rows runs
 * it). 0 and *undone = 0 when 014 was not applied.
 */
int store_migrate_undo_014(struct store *st, int *undone, char *err, size_t errlen);

/*
 * Count pending (or incomplete) expand migrations (contract ones are never
 * pending), for `serve` in staging and
 * production. Returns STORE_EMIGRATION on tampering, like store_migrate_up.
 */
int store_migrate_pending(struct store *st, int *pending, char *err, size_t errlen);

#endif
