/*
 * migrate.c — the schema, as forward-only migrations. See migrate.h and
 * docs/data-model.md.
 *
 * Both backends run the same SQL except for two placeholders substituted per
 * backend before checksumming:
 *   {ID}    SQLite "INTEGER PRIMARY KEY" (the rowid) / PostgreSQL identity
 *   {BLOB}  SQLite BLOB / PostgreSQL BYTEA
 * Timestamps are BIGINT epoch milliseconds (UTC) in both, ids TEXT, so that a
 * row means the same on either backend.
 */
#include "store/migrate.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "store/store_int.h"

struct migration {
    const char *name;
    const char *ddl;      /* run in one transaction with the _migrations row */
    const char *backfill; /* one batch; repeated until it changes no row (NULL: none) */
    /* A contract migration (drops what the release before still used):
     * applied only by store_migrate_contract, never by store_migrate_up,
     * and not counted as pending. */
    int contract;
    /* Contract only: a query that must return no row first (NULL: none),
     * and what to tell the operator when it does. */
    const char *refuse_if;
    const char *refusal;
    /* Contract only: the table it drops, locked (PostgreSQL, ACCESS
     * EXCLUSIVE, waiting at most CONTRACT_LOCK_TIMEOUT) before refuse_if is
     * asked, so nothing is written between the check and the drop. */
    const char *lock_table;
};

#define CONTRACT_LOCK_TIMEOUT "5s"

/* health_samples as 001 created it (also what undoing 014 recreates first).
 * NULLs are distinct in a unique index on both backends, so samples
 * without a HealthKit uuid are never deduplicated. */
#define HEALTH_SAMPLES_001                                                                                             \
    "CREATE TABLE health_samples ("                                                                                    \
    " id {ID},"                                                                                                        \
    " user_id TEXT NOT NULL,"                                                                                          \
    " upload_id TEXT,"                                                                                                 \
    " metric_type TEXT NOT NULL,"                                                                                      \
    " start_ms BIGINT NOT NULL,"                                                                                       \
    " end_ms BIGINT NOT NULL,"                                                                                         \
    " value DOUBLE PRECISION,"                                                                                         \
    " value2 DOUBLE PRECISION,"                                                                                        \
    " unit TEXT NOT NULL DEFAULT '',"                                                                                  \
    " source TEXT NOT NULL DEFAULT '',"                                                                                \
    " device TEXT NOT NULL DEFAULT '',"                                                                                \
    " hk_uuid TEXT,"                                                                                                   \
    " payload TEXT,"                                                                                                   \
    " created_at BIGINT NOT NULL);\n"                                                                                  \
    "CREATE UNIQUE INDEX health_samples_user_uuid ON health_samples (user_id, hk_uuid);\n"                             \
    "CREATE INDEX health_samples_user_time_type"                                                                       \
    " ON health_samples (user_id, start_ms DESC, metric_type);\n"                                                      \
    "CREATE INDEX health_samples_upload ON health_samples (upload_id);\n"

/* 001: every table of the storage model (ARCHITECTURE.md) with the indexes of
 * the deployment guide: users (created_at desc, email); health data
 * (user_id, timestamp desc, data_type); insights (user_id, created_at desc,
 * insight_type). */
static const char m001_ddl[] =
    "CREATE TABLE users ("
    " id TEXT PRIMARY KEY,"
    " email TEXT NOT NULL UNIQUE,"
    " password_hash TEXT NOT NULL DEFAULT '',"
    " first_name TEXT NOT NULL DEFAULT '',"
    " last_name TEXT NOT NULL DEFAULT '',"
    " phone_number TEXT NOT NULL DEFAULT '',"
    " role TEXT NOT NULL DEFAULT 'patient'"
    "  CHECK (role IN ('patient','clinician','researcher','admin')),"
    " status TEXT NOT NULL DEFAULT 'active',"
    " failed_logins INTEGER NOT NULL DEFAULT 0,"
    " locked_until BIGINT NOT NULL DEFAULT 0,"
    " last_login BIGINT NOT NULL DEFAULT 0,"
    " created_at BIGINT NOT NULL,"
    " updated_at BIGINT NOT NULL);\n"
    "CREATE INDEX users_created_email ON users (created_at DESC, email);\n"
    "CREATE TABLE refresh_tokens ("
    " id TEXT PRIMARY KEY,"
    " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " family_id TEXT NOT NULL,"
    " token_hash TEXT NOT NULL UNIQUE,"
    " created_at BIGINT NOT NULL,"
    " expires_at BIGINT NOT NULL,"
    " revoked_at BIGINT NOT NULL DEFAULT 0,"
    " replaced_by TEXT NOT NULL DEFAULT '');\n"
    "CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);\n"
    "CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);\n"
    /* Audit rows name the actor but hold no foreign key: they outlive erasure
     * unless deleted on purpose, and never hold health values. */
    "CREATE TABLE audit_log ("
    " id TEXT PRIMARY KEY,"
    " user_id TEXT NOT NULL DEFAULT '',"
    " action TEXT NOT NULL,"
    " resource_type TEXT NOT NULL DEFAULT '',"
    " resource_id TEXT NOT NULL DEFAULT '',"
    " outcome TEXT NOT NULL,"
    " request_id TEXT NOT NULL DEFAULT '',"
    " ip TEXT NOT NULL DEFAULT '',"
    " created_at BIGINT NOT NULL);\n"
    "CREATE INDEX audit_log_user_created ON audit_log (user_id, created_at DESC, id DESC);\n"
    "CREATE TABLE uploads ("
    " id TEXT PRIMARY KEY,"
    " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " source TEXT NOT NULL DEFAULT '',"
    " status TEXT NOT NULL DEFAULT 'received'"
    "  CHECK (status IN ('received','processing','completed','failed')),"
    " total_metrics BIGINT NOT NULL DEFAULT 0,"
    " processed_metrics BIGINT NOT NULL DEFAULT 0,"
    " accepted BIGINT NOT NULL DEFAULT 0,"
    " rejected BIGINT NOT NULL DEFAULT 0,"
    " progress DOUBLE PRECISION NOT NULL DEFAULT 0,"
    " error TEXT NOT NULL DEFAULT '',"
    " sync_token TEXT NOT NULL DEFAULT '',"
    " client_timestamp BIGINT NOT NULL DEFAULT 0,"
    " created_at BIGINT NOT NULL,"
    " updated_at BIGINT NOT NULL);\n"
    "CREATE INDEX uploads_user_created ON uploads (user_id, created_at DESC, id DESC);\n"
    /* The hot table carries no foreign keys: PostgreSQL checks each one with
     * a per-row trigger, which measured at about a third of the insert cost
     * (docs/data-model.md). The repository checks the owner once per batch
     * (FOR KEY SHARE on PostgreSQL, the lock a foreign key would take) and
     * deletes samples itself when their user or upload goes. */
    HEALTH_SAMPLES_001 "CREATE TABLE raw_uploads ("
    " upload_id TEXT PRIMARY KEY REFERENCES uploads(id) ON DELETE CASCADE,"
    " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " key_version INTEGER NOT NULL,"
    " wrapped_dek {BLOB},"
    " nonce {BLOB},"
    " ciphertext {BLOB} NOT NULL,"
    " content_type TEXT NOT NULL DEFAULT '',"
    " created_at BIGINT NOT NULL);\n"
    "CREATE INDEX raw_uploads_user ON raw_uploads (user_id);\n"
    "CREATE TABLE analyses ("
    " id TEXT PRIMARY KEY,"
    " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " upload_id TEXT REFERENCES uploads(id) ON DELETE CASCADE,"
    " kind TEXT NOT NULL DEFAULT '',"
    " model_version TEXT NOT NULL DEFAULT '',"
    " version INTEGER NOT NULL DEFAULT 1,"
    " coverage TEXT,"
    " result TEXT,"
    " created_at BIGINT NOT NULL);\n"
    "CREATE INDEX analyses_user_created ON analyses (user_id, created_at DESC, id DESC);\n"
    "CREATE INDEX analyses_upload ON analyses (upload_id);\n"
    "CREATE TABLE insights ("
    " id TEXT PRIMARY KEY,"
    " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " analysis_id TEXT REFERENCES analyses(id) ON DELETE CASCADE,"
    " insight_type TEXT NOT NULL DEFAULT '',"
    " generator TEXT NOT NULL DEFAULT '',"
    " narrative TEXT NOT NULL DEFAULT '',"
    " body TEXT,"
    " confidence DOUBLE PRECISION NOT NULL DEFAULT 0,"
    " created_at BIGINT NOT NULL);\n"
    "CREATE INDEX insights_user_created_type"
    " ON insights (user_id, created_at DESC, insight_type);\n"
    "CREATE INDEX insights_analysis ON insights (analysis_id);\n"
    "CREATE TABLE key_ring ("
    " version INTEGER PRIMARY KEY,"
    " algorithm TEXT NOT NULL,"
    " status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active','retired')),"
    " wrapped_key {BLOB} NOT NULL,"
    " created_at BIGINT NOT NULL);\n"
    /* state 0 = unacknowledged (visible when visible_at <= now, leased until
     * visible_at otherwise), 1 = acknowledged (kept for the retention). */
    "CREATE TABLE queue_messages ("
    " id {ID},"
    " topic TEXT NOT NULL,"
    " payload TEXT NOT NULL,"
    " state INTEGER NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " max_attempts INTEGER NOT NULL,"
    " visible_at BIGINT NOT NULL,"
    " lease_token TEXT NOT NULL DEFAULT '',"
    " last_error TEXT NOT NULL DEFAULT '',"
    " original_topic TEXT NOT NULL DEFAULT '',"
    " created_at BIGINT NOT NULL,"
    " acked_at BIGINT);\n"
    "CREATE INDEX queue_messages_ready ON queue_messages (topic, visible_at, id) WHERE state = 0;\n"
    "CREATE INDEX queue_messages_acked ON queue_messages (acked_at) WHERE state = 1;\n";

/* 002: the guide's data-quality fields, with a batched backfill. Rows stored
 * before 002 were never quality-checked: they get processing_version 1,
 * validation_status 'unvalidated' and a quality score of 1 when they carry a
 * value (0 when empty). Rows written after 002 carry the writer's values. */
static const char m002_ddl[] = "ALTER TABLE health_samples ADD COLUMN quality_score DOUBLE PRECISION;\n"
                               "ALTER TABLE health_samples ADD COLUMN validation_status TEXT;\n"
                               "ALTER TABLE health_samples ADD COLUMN processing_version INTEGER;\n"
                               /* Lets each batch find the rows left without scanning the table. */
                               "CREATE INDEX health_samples_unversioned ON health_samples (id)"
                               " WHERE processing_version IS NULL;\n";
static const char m002_backfill[] =
    "UPDATE health_samples SET"
    " quality_score = CASE WHEN value IS NULL AND payload IS NULL THEN 0.0 ELSE 1.0 END,"
    " validation_status = 'unvalidated',"
    " processing_version = 1"
    " WHERE id IN (SELECT id FROM health_samples WHERE processing_version IS NULL"
    " ORDER BY id LIMIT 500)";

/* 003: Idempotency-Key replies (the upload APIs). A key is per user; the
 * stored reply is what the first request answered, kept 24 h. Erasing the
 * user erases them (foreign key). */
static const char m003_ddl[] = "CREATE TABLE idempotency_keys ("
                               " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
                               " idem_key TEXT NOT NULL,"
                               " request_hash TEXT NOT NULL,"
                               " status INTEGER NOT NULL,"
                               " response TEXT NOT NULL,"
                               " created_at BIGINT NOT NULL,"
                               " PRIMARY KEY (user_id, idem_key));\n"
                               "CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);\n";

/* 004: the analysis window read (store_sample_window). The device's UTC
 * offset gets a column of its own, written at insert from the payload's
 * "tz_offset_min" (store_sample_payload_offset), so that a week of samples is
 * read without touching a payload. Expand-only, like every migration (the
 * previous release keeps running during a deploy): rows stored before 004,
 * or by a previous release during the deploy, keep NULL there and their
 * offset is read from their payload, so there is no backfill to wait for
 * and the rule lives in one place, in C. No new index: the window's
 * (start_ms, id) order comes from health_samples_user_time_type plus a sort
 * of the rows that share a start_ms, cheaper than a second time index
 * maintained on every sample insert. */
static const char m004_ddl[] = "ALTER TABLE health_samples ADD COLUMN utc_offset_min INTEGER;\n";

/* 005: an upload's samples in time order. The analysis job starts from an
 * upload's newest samples (store_sample_newest); with an index on upload_id
 * alone the planner read every sample of the upload and sorted them — a
 * week-long upload is 20,000 rows, an Apple Health import millions — for 64
 * rows. (upload_id, start_ms) serves that in index order and everything the
 * old index served (deleting an upload's samples, per-upload counts), so it
 * replaces it rather than adding a third index to every sample insert.
 * Compatible with the previous release during a deploy: its queries by
 * upload_id use the new index's prefix. On a large PostgreSQL table, build
 * the index by hand first with CREATE INDEX CONCURRENTLY (same name and
 * columns): IF NOT EXISTS then leaves it alone (docs/operations.md). */
static const char m005_ddl[] =
    "CREATE INDEX IF NOT EXISTS health_samples_upload_time ON health_samples (upload_id, start_ms);\n"
    "DROP INDEX IF EXISTS health_samples_upload;\n";

/* 006: a user's samples packed per UTC day (src/store/days.c), for the
 * analysis window: a week is a few rows instead of ~20,000. Written with the
 * samples in the same transaction; health_samples stays the source of truth
 * (days are rebuilt from it when an upload is deleted). Expand-only: uploads
 * stored before 006, or by the previous release during a deploy, keep
 * days_indexed = 0 and their user's window is read from the rows until the
 * analysis job has put them in (store_sample_days_heal), so there is no
 * backfill to wait for. The bytes are stored uncompressed (PostgreSQL
 * STORAGE EXTERNAL): they are read far more often than written, and packed
 * doubles do not compress much. */
static const char m006_ddl[] = "CREATE TABLE sample_days ("
                               " id {ID},"
                               " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
                               " day BIGINT NOT NULL,"
                               " data {BLOB} NOT NULL);\n"
                               "CREATE INDEX sample_days_user_day ON sample_days (user_id, day, id);\n"
                               "{EXTERNAL}"
                               "ALTER TABLE uploads ADD COLUMN days_indexed INTEGER NOT NULL DEFAULT 0;\n"
                               "CREATE INDEX uploads_days_pending ON uploads (user_id) WHERE days_indexed = 0;\n";

/* 007: sign-in identities and sessions (docs/identity.md).
 * external_identities binds an external provider's (issuer, subject) to one
 * Clarity user: the key is the pair, never the e-mail, so a token from
 * another issuer or another subject can never reach this user through it.
 * revoked_sessions is the revocation set the guard checks every access
 * token against: a session id ("sid" claim) revoked by logout, or a whole
 * user ("user:<id>", tokens issued up to revoked_at) revoked by erasure,
 * disabling or a password change; rows are pruned after expires_at, when no
 * token they could match is still valid. users gains email_verified and
 * display_name, and email_verifications holds pending e-mail codes. Expand-only: the previous release ignores the new tables
 * and columns during a deploy. */
static const char m007_ddl[] = "CREATE TABLE external_identities ("
                               " issuer TEXT NOT NULL,"
                               " subject TEXT NOT NULL,"
                               " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
                               " email TEXT NOT NULL DEFAULT '',"
                               " created_at BIGINT NOT NULL,"
                               " PRIMARY KEY (issuer, subject));\n"
                               "CREATE INDEX external_identities_user ON external_identities (user_id);\n"
                               "CREATE TABLE revoked_sessions ("
                               " sid TEXT PRIMARY KEY,"
                               " revoked_at BIGINT NOT NULL,"
                               " expires_at BIGINT NOT NULL);\n"
                               "CREATE INDEX revoked_sessions_revoked ON revoked_sessions (revoked_at);\n"
                               "ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0;\n"
                               "ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';\n"
                               /* One pending e-mail verification code per user: its hash, expiry,
     * wrong attempts so far and when it was sent (resend cooldown). */
                               "CREATE TABLE email_verifications ("
                               " user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,"
                               " code_hash TEXT NOT NULL,"
                               " expires_at BIGINT NOT NULL,"
                               " attempts INTEGER NOT NULL DEFAULT 0,"
                               " sent_at BIGINT NOT NULL);\n";

/* 008: raw bodies by age, for RAW_UPLOAD_RETENTION_DAYS
 * (store_raw_upload_purge). Without it each purge would read every row, and
 * on SQLite walk each body's overflow pages to reach created_at, the last
 * column. One entry per upload, not per sample. */
static const char m008_ddl[] = "CREATE INDEX IF NOT EXISTS raw_uploads_created ON raw_uploads (created_at);\n";

/* 009: analyses and insights sealed by the key ring (store_set_sealer): the
 * health values move into `sealed`, the metadata stays in its columns.
 * Expand-only: rows written before keep their clear columns and read as
 * they are; the previous release writes and reads clear columns as before
 * (it cannot read rows this release sealed: their clear columns are NULL /
 * '', so roll back only with that in mind; docs/data-model.md). */
static const char m009_ddl[] = "ALTER TABLE analyses ADD COLUMN sealed {BLOB};\n"
                               "ALTER TABLE insights ADD COLUMN sealed {BLOB};\n";

/* 010: fair leasing (store_queue_lease). A message carries its fair key (the
 * user a job is for; '' none) and a rank given at publish: the rank of the
 * oldest pending message of its topic, or one more than the key's last
 * pending message when that is higher. Lease order is (fair_rank, id), so
 * a user with thousands of queued jobs gets one turn per round and a user
 * who arrives later is served next, not after the whole backlog (start-time
 * fair queueing; Goyal, Vin & Cheng, SIGCOMM 1996). Expand-only: the
 * previous release publishes rank 0 (served first) and leases by
 * (visible_at, id) as before. */
static const char m010_ddl[] = "ALTER TABLE queue_messages ADD COLUMN fair_key TEXT NOT NULL DEFAULT '';\n"
                               "ALTER TABLE queue_messages ADD COLUMN fair_rank BIGINT NOT NULL DEFAULT 0;\n"
                               "CREATE INDEX queue_messages_fair ON queue_messages (topic, fair_rank, id)"
                               " WHERE state = 0;\n"
                               "CREATE INDEX queue_messages_fair_key ON queue_messages (topic, fair_key, fair_rank)"
                               " WHERE state = 0;\n";

/* 011: series aggregates (store_series_aggregate, days.c): per sample_days
 * row and metric type, the row's values summed per 15-minute UTC slot, so
 * that GET /api/v1/series for a year adds a few hundred records instead of
 * decoding ~350,000 samples. Keyed by the row's id with ON DELETE CASCADE:
 * sample_days rows are inserted and deleted, never changed (the re-encoder
 * deletes a row's aggregates with its new bytes), so every writer — this
 * release's and the previous one's — invalidates the cache by what it
 * already does. Filled on first read; expand-only (the previous release
 * never reads it, and its deletes cascade). */
static const char m011_ddl[] = "CREATE TABLE sample_day_aggs ("
                               " sample_day_id BIGINT NOT NULL REFERENCES sample_days(id) ON DELETE CASCADE,"
                               " metric_type TEXT NOT NULL,"
                               " data {BLOB} NOT NULL,"
                               " PRIMARY KEY (sample_day_id, metric_type));\n";

/* 012: operator password resets (`clarity users reset-password`, redeemed by
 * POST /api/v1/auth/reset-password; src/auth/reset.c). One pending code per
 * user: only SHA-256(user id ":" code) is kept, with its expiry, the wrong
 * attempts so far and when it was issued. Expand-only: the previous release
 * ignores the table. */
static const char m012_ddl[] = "CREATE TABLE password_resets ("
                               " user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,"
                               " code_hash TEXT NOT NULL,"
                               " expires_at BIGINT NOT NULL,"
                               " attempts INTEGER NOT NULL DEFAULT 0,"
                               " created_at BIGINT NOT NULL);\n";

/* 013: samples live in sealed blocks (issue #19; days.c). A sample's id
 * now comes from its user's counter (taken under the user's sample lock,
 * so ids still follow append order), starting 2^32 above the last
 * health_samples id at the user's first insert. health_samples is no
 * longer written: its rows are moved into blocks by the backfill
 * (store_sample_rows_backfill, run by the workers in batches) and dropped
 * by a later contract migration. Expand-only: the previous release ignores
 * the column (and can neither read sealed blocks nor see samples stored
 * by this release; docs/data-model.md has the rollback). */
static const char m013_ddl[] = "ALTER TABLE users ADD COLUMN sample_seq BIGINT NOT NULL DEFAULT 0;\n";

/* 014 (contract): health_samples and its indexes go. Since 013 nothing
 * writes the table and the backfill moves its rows into blocks; this runs
 * once that is done (no row left) and no release before 013 runs any more.
 * Applied by `clarity migrate contract` only. The code reads the table only
 * while it exists (store_legacy_rows); `migrate samples-to-rows` recreates
 * it (HEALTH_SAMPLES_001 + 002 + 004 + 005) and undoes 014 first. */
static const char m014_ddl[] = "DROP TABLE health_samples;\n";

static const struct migration migrations[] = {
    {"001_create_indexes", m001_ddl, NULL, 0, NULL, NULL, NULL},
    {"002_add_data_quality_fields", m002_ddl, m002_backfill, 0, NULL, NULL, NULL},
    {"003_idempotency_keys", m003_ddl, NULL, 0, NULL, NULL, NULL},
    {"004_sample_utc_offset", m004_ddl, NULL, 0, NULL, NULL, NULL},
    {"005_sample_upload_time_index", m005_ddl, NULL, 0, NULL, NULL, NULL},
    {"006_sample_days", m006_ddl, NULL, 0, NULL, NULL, NULL},
    {"007_external_identities", m007_ddl, NULL, 0, NULL, NULL, NULL},
    {"008_raw_upload_retention_index", m008_ddl, NULL, 0, NULL, NULL, NULL},
    {"009_sealed_analyses_insights", m009_ddl, NULL, 0, NULL, NULL, NULL},
    {"010_queue_fairness", m010_ddl, NULL, 0, NULL, NULL, NULL},
    {"011_series_aggregates", m011_ddl, NULL, 0, NULL, NULL, NULL},
    {"012_password_resets", m012_ddl, NULL, 0, NULL, NULL, NULL},
    {"013_sample_blocks", m013_ddl, NULL, 0, NULL, NULL, NULL},
    {"014_drop_health_samples", m014_ddl, NULL, 1, "SELECT 1 FROM health_samples LIMIT 1",
     "health_samples still holds rows the backfill has not moved into blocks: run `clarity migrate "
     "samples-backfill` (or let the workers finish: their log says done=1), then run this again",
     "health_samples"},
};
#define N_MIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

size_t store_migration_count(void)
{
    size_t n = 0;
    for (size_t i = 0; i < N_MIGRATIONS; i++)
        n += !migrations[i].contract;
    return n;
}

size_t store_migration_known(void) { return N_MIGRATIONS; }

static const char create_table_sql[] = "CREATE TABLE IF NOT EXISTS _migrations ("
                                       " name TEXT PRIMARY KEY,"
                                       " checksum TEXT NOT NULL,"
                                       " applied_at BIGINT NOT NULL,"
                                       " complete INTEGER NOT NULL DEFAULT 1)";

/* Substitute the per-backend placeholders. Caller frees. */
static char *dialect(const struct store *st, const char *sql)
{
    static const char *const keys[] = {"{ID}", "{BLOB}", "{EXTERNAL}"};
    const char *lite[] = {"INTEGER PRIMARY KEY", "BLOB", ""};
    const char *pg[] = {"BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "BYTEA",
                        "ALTER TABLE sample_days ALTER COLUMN data SET STORAGE EXTERNAL;\n"};
    const char *const *vals = st->backend == DB_SQLITE ? lite : pg;
    size_t cap = strlen(sql) * 2 + 64;
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (const char *p = sql; *p;) {
        int hit = -1;
        for (int k = 0; k < 3; k++)
            if (strncmp(p, keys[k], strlen(keys[k])) == 0)
                hit = k;
        const char *src = hit >= 0 ? vals[hit] : p;
        size_t n = hit >= 0 ? strlen(vals[hit]) : 1;
        if (o + n + 1 > cap) {
            free(out);
            return NULL;
        }
        memcpy(out + o, src, n);
        o += n;
        p += hit >= 0 ? strlen(keys[hit]) : 1;
    }
    out[o] = '\0';
    return out;
}

/* SHA-256 (FIPS 180-4) of the backend's SQL for migration m, in hex. */
static int checksum(const struct store *st, const struct migration *m, char out[65])
{
    char *ddl = dialect(st, m->ddl);
    if (ddl == NULL)
        return STORE_ENOMEM;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) && EVP_DigestUpdate(ctx, ddl, strlen(ddl)) &&
             (m->backfill == NULL || EVP_DigestUpdate(ctx, m->backfill, strlen(m->backfill))) &&
             EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    free(ddl);
    if (!ok || mdlen != 32)
        return STORE_EINTERNAL;
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

struct applied {
    char name[STORE_MIGRATION_NAME_LEN];
    char checksum[65];
    int64_t applied_at;
    int complete;
};

/* Serialise migrators across processes. SQLite: BEGIN IMMEDIATE already
 * holds the write lock. PostgreSQL: a transaction-scoped advisory lock. */
static int lock_migrations(struct store_tx *tx)
{
    if (tx->st->backend != DB_POSTGRES)
        return 0;
    return db_exec(tx->conn, "SELECT pg_advisory_xact_lock(7718323001)");
}

/* Read _migrations (created if missing) inside tx. */
static int read_applied(struct store_tx *tx, struct applied *out, size_t max, size_t *n)
{
    struct db_stmt *s = NULL;
    int rc = db_exec(tx->conn, create_table_sql);
    if (rc != 0)
        return store_tx_fail(tx, rc);
    rc = store_tx_stmt(tx, "SELECT name, checksum, applied_at, complete FROM _migrations ORDER BY name", &s);
    if (rc != 0)
        return rc;
    size_t k = 0;
    while ((rc = db_step(s)) == DB_ROW) {
        if (k == max) {
            db_stmt_reset(s);
            snprintf(tx->err, sizeof(tx->err), "too many rows in _migrations");
            return STORE_EMIGRATION;
        }
        store_col_copy(s, 0, out[k].name, sizeof(out[k].name));
        store_col_copy(s, 1, out[k].checksum, sizeof(out[k].checksum));
        out[k].applied_at = db_col_int64(s, 2);
        out[k].complete = (int)db_col_int64(s, 3);
        k++;
    }
    db_stmt_reset(s);
    if (rc < 0)
        return store_tx_fail(tx, rc);
    *n = k;
    return 0;
}

#define MAX_APPLIED 256

/*
 * Compare the database's record with the binary's migrations. Fills status
 * (N_MIGRATIONS entries). Returns STORE_EMIGRATION with a message in err when
 * a checksum changed or an unknown migration is recorded.
 */
/*
 * Compare the database's _migrations with the binary's list into status[]
 * (one per known migration). Every row is looked at, so a status shows each
 * changed and unknown migration, not only the first; rows the binary does
 * not know go to unknown[0..*n_unknown) when unknown is not NULL. Returns 0,
 * STORE_EMIGRATION (err names the first problem) or another STORE_E* code.
 */
static int compare_all(struct store_tx *tx, struct store_migration_status *status,
                       struct store_migration_status *unknown, size_t max_unknown, size_t *n_unknown, char *err,
                       size_t errlen)
{
    struct applied *ap = calloc(MAX_APPLIED, sizeof(*ap));
    size_t nap = 0;
    int rc, bad = 0;
    if (n_unknown != NULL)
        *n_unknown = 0;
    if (ap == NULL)
        return STORE_ENOMEM;
    rc = read_applied(tx, ap, MAX_APPLIED, &nap);
    if (rc != 0) {
        snprintf(err, errlen, "cannot read _migrations: %s", tx->err);
        goto done;
    }
    for (size_t i = 0; i < N_MIGRATIONS; i++) {
        struct store_migration_status *ms = &status[i];
        memset(ms, 0, sizeof(*ms));
        snprintf(ms->name, sizeof(ms->name), "%s", migrations[i].name);
        ms->contract = migrations[i].contract;
        rc = checksum(tx->st, &migrations[i], ms->checksum);
        if (rc != 0)
            goto done;
    }
    for (size_t j = 0; j < nap; j++) {
        size_t i = 0;
        while (i < N_MIGRATIONS && strcmp(migrations[i].name, ap[j].name) != 0)
            i++;
        if (i == N_MIGRATIONS) {
            if (!bad)
                snprintf(err, errlen,
                         "the database has migration %s, which this binary does not know "
                         "(was it migrated by a newer version?)",
                         ap[j].name);
            bad = 1;
            if (unknown != NULL && *n_unknown < max_unknown) {
                struct store_migration_status *u = &unknown[(*n_unknown)++];
                memset(u, 0, sizeof(*u));
                snprintf(u->name, sizeof(u->name), "%s", ap[j].name);
                snprintf(u->checksum, sizeof(u->checksum), "%s", ap[j].checksum);
                u->applied = 1;
                u->unknown = 1;
                u->complete = ap[j].complete;
                u->applied_at_ms = ap[j].applied_at;
            }
            continue;
        }
        struct store_migration_status *ms = &status[i];
        ms->applied = 1;
        ms->complete = ap[j].complete;
        ms->applied_at_ms = ap[j].applied_at;
        ms->checksum_ok = strcmp(ms->checksum, ap[j].checksum) == 0;
        if (!ms->checksum_ok) {
            if (!bad)
                snprintf(err, errlen,
                         "migration %s was changed after it was applied (checksum in database "
                         "%.12s…, in this binary %.12s…); refusing to continue — restore the "
                         "original migration and add a new one instead",
                         ms->name, ap[j].checksum, ms->checksum);
            bad = 1;
        }
    }
    rc = bad ? STORE_EMIGRATION : 0;
done:
    free(ap);
    return rc;
}

static int compare(struct store_tx *tx, struct store_migration_status *status, char *err, size_t errlen)
{
    return compare_all(tx, status, NULL, 0, NULL, err, errlen);
}

int store_migrate_status(struct store *st, struct store_migration_status *out, size_t max, size_t *n, char *err,
                         size_t errlen)
{
    struct store_migration_status status[N_MIGRATIONS];
    struct store_migration_status unknown[16];
    size_t n_unknown = 0;
    struct store_tx *tx = NULL;
    int rc = store_tx_begin(st, STORE_TX_WRITE, &tx);
    if (rc != 0) {
        snprintf(err, errlen, "cannot begin a transaction: %s", clarity_strerror(rc));
        return rc;
    }
    /* The lock also serialises the first CREATE TABLE IF NOT EXISTS, which
     * PostgreSQL does not make safe against a concurrent twin. */
    int crc = lock_migrations(tx);
    if (crc != 0)
        snprintf(err, errlen, "cannot lock migrations: %s", db_conn_errmsg(tx->conn));
    else
        crc = compare_all(tx, status, unknown, 16, &n_unknown, err, errlen);
    if (crc != 0 && crc != STORE_EMIGRATION) {
        store_tx_rollback(tx);
        return crc;
    }
    rc = store_tx_commit(tx); /* keeps a freshly created _migrations */
    if (rc != 0) {
        snprintf(err, errlen, "cannot commit: %s", clarity_strerror(rc));
        return rc;
    }
    size_t k = N_MIGRATIONS < max ? N_MIGRATIONS : max;
    memcpy(out, status, k * sizeof(*out));
    for (size_t j = 0; j < n_unknown && k < max; j++)
        out[k++] = unknown[j];
    *n = k;
    return crc;
}

int store_migrate_pending(struct store *st, int *pending, char *err, size_t errlen)
{
    struct store_migration_status status[N_MIGRATIONS];
    size_t n = 0;
    int rc = store_migrate_status(st, status, N_MIGRATIONS, &n, err, errlen);
    if (rc != 0)
        return rc;
    int p = 0;
    for (size_t i = 0; i < n; i++)
        p += !status[i].contract && !(status[i].applied && status[i].complete);
    *pending = p;
    return 0;
}

/* Run a migration's backfill in batches of their own transactions, then
 * mark it complete. Idempotent: each batch only touches rows still unset. */
static int run_backfill(struct store *st, const struct migration *m, int *completed, char *err, size_t errlen)
{
    *completed = 0;
    for (;;) {
        struct store_tx *tx = NULL;
        struct db_stmt *s = NULL;
        int64_t changed = 0;
        int rc = store_tx_begin(st, STORE_TX_WRITE, &tx);
        if (rc == 0)
            rc = store_tx_stmt(tx, m->backfill, &s);
        if (rc == 0)
            rc = store_tx_run(tx, s, &changed);
        if (rc == 0 && changed == 0) {
            /* Several runners may finish the same backfill; the one whose
             * update flips the flag reports it. */
            rc = store_tx_stmt(tx,
                               "UPDATE _migrations SET complete = 1 WHERE name = ?1"
                               " AND complete = 0",
                               &s);
            if (rc == 0) {
                int64_t flipped = 0;
                db_bind_text(s, 1, m->name);
                rc = store_tx_run(tx, s, &flipped);
                *completed = flipped > 0;
            }
        }
        if (rc != 0) {
            snprintf(err, errlen, "backfill of %s failed: %s", m->name, tx != NULL ? tx->err : clarity_strerror(rc));
            store_tx_rollback(tx);
            return rc;
        }
        rc = store_tx_commit(tx);
        if (rc != 0) {
            snprintf(err, errlen, "backfill of %s failed to commit: %s", m->name, clarity_strerror(rc));
            return rc;
        }
        if (changed == 0)
            return 0;
    }
}

/* Whether a contract migration's refuse_if query finds a row (then err says
 * why and the migration is not applied). */
static int refused(struct store_tx *tx, const struct migration *m, char *err, size_t errlen)
{
    struct db_stmt *s = NULL;
    int rc;
    if (tx->st->backend == DB_POSTGRES && m->lock_table != NULL) {
        /* Not behind a long reader for ever: every statement on the table
         * would queue behind the waiting DROP. Busy: run it again later. */
        char sql[160];
        snprintf(sql, sizeof(sql),
                 "SET LOCAL lock_timeout = '" CONTRACT_LOCK_TIMEOUT "'; LOCK TABLE %s IN ACCESS EXCLUSIVE MODE",
                 m->lock_table);
        if ((rc = db_exec(tx->conn, sql)) != 0) {
            snprintf(err, errlen, "migration %s: cannot lock %s (busy? run it again): %s", m->name, m->lock_table,
                     db_conn_errmsg(tx->conn));
            return rc;
        }
    }
    if (m->refuse_if == NULL)
        return 0;
    rc = store_tx_stmt(tx, m->refuse_if, &s);
    if (rc != 0) {
        snprintf(err, errlen, "migration %s: cannot check it may run: %s", m->name, tx->err);
        return rc;
    }
    int step = db_step(s);
    db_stmt_reset(s);
    if (step == DB_ROW) {
        snprintf(err, errlen, "migration %s refused: %s", m->name, m->refusal);
        return STORE_ECONFLICT;
    }
    if (step != DB_DONE) {
        rc = store_tx_fail(tx, step);
        snprintf(err, errlen, "migration %s: cannot check it may run: %s", m->name, tx->err);
        return rc;
    }
    return 0;
}

/* Apply the pending migrations of one kind (expand: contract == 0). */
static int run_migrations(struct store *st, const char *target, int contract, int *applied, char *err, size_t errlen)
{
    int count = 0;
    if (target != NULL) {
        size_t i = 0;
        while (i < N_MIGRATIONS && strcmp(migrations[i].name, target) != 0)
            i++;
        if (i == N_MIGRATIONS) {
            snprintf(err, errlen, "unknown migration %s", target);
            return STORE_EINVAL;
        }
        if (migrations[i].contract != contract) {
            snprintf(err, errlen, "%s is %s migration: run `clarity migrate %s`", target,
                     migrations[i].contract ? "a contract" : "an expand", migrations[i].contract ? "contract" : "up");
            return STORE_EINVAL;
        }
    }
    for (size_t i = 0; i < N_MIGRATIONS; i++) {
        const struct migration *m = &migrations[i];
        struct store_migration_status status[N_MIGRATIONS];
        if (m->contract != contract)
            continue;
        struct store_tx *tx = NULL;
        char *ddl = NULL;
        int rc = store_tx_begin(st, STORE_TX_WRITE, &tx);
        if (rc != 0) {
            snprintf(err, errlen, "cannot begin a transaction: %s", clarity_strerror(rc));
            return rc;
        }
        rc = lock_migrations(tx);
        if (rc != 0) {
            snprintf(err, errlen, "cannot lock migrations: %s", db_conn_errmsg(tx->conn));
            goto fail;
        }
        /* Re-read under the lock: another process may have just migrated. */
        rc = compare(tx, status, err, errlen);
        if (rc != 0)
            goto fail;
        if (status[i].applied) {
            store_tx_rollback(tx);
            if (!status[i].complete) {
                int done = 0;
                rc = run_backfill(st, m, &done, err, errlen);
                if (rc != 0)
                    return rc;
                count += done;
                if (done)
                    log_info("migration completed", LOG_STR, "name", m->name, LOG_END);
            }
            goto next;
        }
        if (contract && (rc = refused(tx, m, err, errlen)) != 0)
            goto fail;
        ddl = dialect(st, m->ddl);
        if (ddl == NULL) {
            rc = STORE_ENOMEM;
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        rc = db_exec(tx->conn, ddl);
        free(ddl);
        ddl = NULL;
        if (rc != 0) {
            snprintf(err, errlen, "migration %s failed: %s", m->name, db_conn_errmsg(tx->conn));
            goto fail;
        }
        struct db_stmt *s = NULL;
        rc = store_tx_stmt(tx,
                           "INSERT INTO _migrations (name, checksum, applied_at, complete)"
                           " VALUES (?1, ?2, ?3, ?4)",
                           &s);
        if (rc == 0) {
            db_bind_text(s, 1, m->name);
            db_bind_text(s, 2, status[i].checksum);
            db_bind_int64(s, 3, store_now_ms());
            db_bind_int64(s, 4, m->backfill == NULL ? 1 : 0);
            rc = store_tx_run(tx, s, NULL);
        }
        if (rc != 0) {
            snprintf(err, errlen, "cannot record migration %s: %s", m->name, tx->err);
            goto fail;
        }
        rc = store_tx_commit(tx);
        tx = NULL;
        if (rc != 0) {
            snprintf(err, errlen, "migration %s failed to commit: %s", m->name, clarity_strerror(rc));
            return rc;
        }
        int done = 1;
        if (m->backfill != NULL) {
            rc = run_backfill(st, m, &done, err, errlen);
            if (rc != 0)
                return rc;
        }
        count += done; /* a backfilled migration counts for whoever completes it */
        log_info("migration applied", LOG_STR, "name", m->name, LOG_STR, "backend", store_backend_name(st), LOG_END);
    next:
        if (target != NULL && strcmp(m->name, target) == 0)
            break;
        continue;
    fail:
        free(ddl);
        store_tx_rollback(tx);
        return rc;
    }
    if (applied != NULL)
        *applied = count;
    return 0;
}

int store_migrate_up(struct store *st, const char *target, int *applied, char *err, size_t errlen)
{
    int rc = run_migrations(st, target, 0, applied, err, errlen);
    store_legacy_rows_forget(st); /* 001 may have just created health_samples */
    return rc;
}

int store_migrate_undo_014(struct store *st, int *undone, char *err, size_t errlen)
{
    /* health_samples as 013 left it: 001's table and indexes, then what 002,
     * 004 and 005 changed, in their order. */
    const char *const steps[] = {HEALTH_SAMPLES_001, m002_ddl, m004_ddl, m005_ddl};
    struct store_tx *tx = NULL;
    struct db_stmt *s = NULL;
    int rc = store_tx_begin(st, STORE_TX_WRITE, &tx), step;
    *undone = 0;
    if (rc != 0) {
        snprintf(err, errlen, "cannot begin a transaction: %s", clarity_strerror(rc));
        return rc;
    }
    if ((rc = lock_migrations(tx)) != 0 ||
        (rc = store_tx_stmt(tx, "SELECT 1 FROM _migrations WHERE name = '014_drop_health_samples'", &s)) != 0) {
        snprintf(err, errlen, "cannot read _migrations: %s", db_conn_errmsg(tx->conn));
        store_tx_rollback(tx);
        return rc ? rc : STORE_EINTERNAL;
    }
    step = db_step(s);
    db_stmt_reset(s);
    if (step == DB_DONE) {
        store_tx_rollback(tx);
        return 0; /* not applied: the table is there */
    }
    if (step != DB_ROW) {
        rc = store_tx_fail(tx, step);
        snprintf(err, errlen, "cannot read _migrations: %s", tx->err);
        store_tx_rollback(tx);
        return rc;
    }
    for (size_t i = 0; rc == 0 && i < sizeof(steps) / sizeof(steps[0]); i++) {
        char *ddl = dialect(st, steps[i]);
        rc = ddl == NULL ? STORE_ENOMEM : db_exec(tx->conn, ddl);
        free(ddl);
    }
    if (rc == 0)
        rc = db_exec(tx->conn, "DELETE FROM _migrations WHERE name = '014_drop_health_samples'");
    if (rc != 0) {
        snprintf(err, errlen, "cannot recreate health_samples: %s", db_conn_errmsg(tx->conn));
        store_tx_rollback(tx);
        return rc;
    }
    if ((rc = store_tx_commit(tx)) != 0) {
        snprintf(err, errlen, "cannot commit: %s", clarity_strerror(rc));
        return rc;
    }
    store_legacy_rows_forget(st);
    *undone = 1;
    log_info("migration undone", LOG_STR, "name", "014_drop_health_samples", LOG_END);
    return 0;
}

int store_migrate_contract(struct store *st, int *applied, char *err, size_t errlen)
{
    int pending = 0;
    if (applied != NULL)
        *applied = 0;
    int rc = store_migrate_pending(st, &pending, err, errlen);
    if (rc != 0)
        return rc;
    if (pending > 0) {
        snprintf(err, errlen, "%d expand migration%s pending: run `clarity migrate up` first", pending,
                 pending == 1 ? " is" : "s are");
        return STORE_ECONFLICT;
    }
    rc = run_migrations(st, NULL, 1, applied, err, errlen);
    store_legacy_rows_forget(st);
    return rc;
}
