/*
 * queue.c — the durable queue over queue_messages. See queue.h and
 * docs/data-model.md ("Queue semantics").
 *
 * Leasing is one UPDATE … RETURNING over the oldest visible rows of a topic.
 * On PostgreSQL the rows are picked by a MATERIALIZED CTE with FOR UPDATE
 * SKIP LOCKED, so concurrent consumers skip each other's rows instead of
 * queueing on them (PostgreSQL manual, SELECT, "The Locking Clause"); on
 * SQLite the write transaction (BEGIN IMMEDIATE) serialises consumers.
 */
#include "store/queue.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/uuid.h"
#include "store/store_int.h"

static int topic_ok(const char *topic)
{
    return topic != NULL && topic[0] != '\0' && strlen(topic) + sizeof(STORE_DEAD_LETTER_SUFFIX) <= STORE_TOPIC_LEN;
}

static void dead_letter_topic(const char *topic, char out[STORE_TOPIC_LEN])
{
    snprintf(out, STORE_TOPIC_LEN, "%s%s", topic, STORE_DEAD_LETTER_SUFFIX);
}

/* Retry delay after `attempts` deliveries: base * 2^(attempts-1), capped. */
static int64_t backoff_ms(const struct store *st, int attempts)
{
    int64_t d = st->opts.queue_backoff_base_ms;
    for (int i = 1; i < attempts && d < st->opts.queue_backoff_max_ms; i++)
        d *= 2;
    return d < st->opts.queue_backoff_max_ms ? d : st->opts.queue_backoff_max_ms;
}

void store_msg_clear(struct store_msg *m)
{
    if (m == NULL)
        return;
    free(m->payload);
    m->payload = NULL;
}

int store_queue_publish(struct store_tx *tx, const char *topic, const char *payload,
                        const struct store_publish_opts *opts, int64_t *id_out)
{
    /* The rank: the topic's oldest pending rank, or one past the key's last
     * pending message when that is later (migration 010). Both lookups are
     * index range ends. */
#define RANK_SQL(MAX)                                                                                                  \
    "INSERT INTO queue_messages (topic, payload, state, attempts, max_attempts, visible_at, created_at, fair_key,"     \
    " fair_rank) VALUES (?1, ?2, 0, 0, ?3, ?4, ?5, ?6, " MAX "("                                                       \
    "COALESCE((SELECT min(fair_rank) FROM queue_messages WHERE topic = ?1 AND state = 0), 0),"                         \
    " COALESCE((SELECT max(fair_rank) + 1 FROM queue_messages WHERE topic = ?1 AND state = 0 AND fair_key = ?6"        \
    " AND ?6 <> ''), 0))) RETURNING id"
    static const char lite[] = RANK_SQL("max");
    static const char pg[] = RANK_SQL("GREATEST");
#undef RANK_SQL
    struct db_stmt *s = NULL;
    if (!topic_ok(topic) || payload == NULL)
        return STORE_EINVAL;
    int64_t now = store_now_ms();
    int max_attempts = opts != NULL && opts->max_attempts > 0 ? opts->max_attempts : tx->st->opts.queue_max_attempts;
    int64_t delay = opts != NULL && opts->delay_ms > 0 ? opts->delay_ms : 0;
    const char *key = opts != NULL && opts->fair_key != NULL ? opts->fair_key : "";
    int rc = store_tx_stmt(tx, store_sql(tx->st, lite, pg), &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, topic);
    db_bind_text(s, 2, payload);
    db_bind_int64(s, 3, max_attempts);
    db_bind_int64(s, 4, now + delay);
    db_bind_int64(s, 5, now);
    db_bind_text(s, 6, key);
    rc = db_step(s);
    if (rc != DB_ROW) {
        db_stmt_reset(s);
        return store_tx_fail(tx, rc < 0 ? rc : STORE_EINTERNAL);
    }
    if (id_out != NULL)
        *id_out = db_col_int64(s, 0);
    db_stmt_reset(s);
    store_tx_note_publish(tx, topic);
    return 0;
}

int store_queue_publish_batch(struct store_tx *tx, const char *topic, const char *const *payloads, size_t n,
                              const struct store_publish_opts *opts)
{
    /* The payloads travel as one JSON array of strings, unpacked in order by
     * json_each (SQLite) or json_array_elements_text (PostgreSQL). They carry
     * no fair key: each takes the topic's oldest pending rank. */
#define HEAD_RANK "(SELECT COALESCE(min(fair_rank), 0) FROM queue_messages WHERE topic = ?1 AND state = 0)"
    static const char lite[] =
        "INSERT INTO queue_messages (topic, payload, state, attempts, max_attempts, visible_at,"
        " created_at, fair_rank) SELECT ?1, value, 0, 0, ?3, ?4, ?5, " HEAD_RANK " FROM json_each(?2) ORDER BY key";
    static const char pg[] = "INSERT INTO queue_messages (topic, payload, state, attempts, max_attempts, visible_at,"
                             " created_at, fair_rank) SELECT ?1, t.p, 0, 0, ?3, ?4, ?5, " HEAD_RANK
                             " FROM json_array_elements_text(CAST(?2 AS json)) WITH ORDINALITY AS t(p, i) ORDER BY t.i";
#undef HEAD_RANK
    struct db_stmt *s = NULL;
    struct buf b;
    int64_t k = 0;
    if (!topic_ok(topic) || (n > 0 && payloads == NULL))
        return STORE_EINVAL;
    if (n == 0)
        return 0;
    buf_init(&b, (size_t)1 << 30);
    int bad = buf_putc(&b, '[');
    for (size_t i = 0; i < n && bad == 0; i++) {
        if (payloads[i] == NULL) {
            buf_free(&b);
            return STORE_EINVAL;
        }
        bad = (i > 0 ? buf_putc(&b, ',') : 0) || buf_json_string(&b, payloads[i]);
    }
    if (bad || buf_putc(&b, ']') != 0) {
        buf_free(&b);
        return STORE_ENOMEM;
    }
    int64_t now = store_now_ms();
    int max_attempts = opts != NULL && opts->max_attempts > 0 ? opts->max_attempts : tx->st->opts.queue_max_attempts;
    int64_t delay = opts != NULL && opts->delay_ms > 0 ? opts->delay_ms : 0;
    int rc = store_tx_stmt(tx, store_sql(tx->st, lite, pg), &s);
    if (rc == 0) {
        db_bind_text(s, 1, topic);
        db_bind_text(s, 2, b.data);
        db_bind_int64(s, 3, max_attempts);
        db_bind_int64(s, 4, now + delay);
        db_bind_int64(s, 5, now);
        rc = store_tx_run(tx, s, &k);
    }
    buf_free(&b);
    if (rc == 0 && (size_t)k != n)
        rc = store_tx_fail(tx, STORE_EINTERNAL);
    if (rc == 0)
        store_tx_note_publish(tx, topic);
    return rc;
}

/* Move one message to its dead-letter topic, keeping its last error. The
 * attempt count restarts so that a consumer of the dead-letter topic gets
 * the usual number of tries. */
static int move_to_dead_letter(struct store_tx *tx, int64_t id, const char *topic, const char *token, const char *error)
{
    static const char sql[] = "UPDATE queue_messages SET original_topic = topic, topic = ?2, attempts = 0,"
                              " visible_at = ?3, lease_token = '', last_error = COALESCE(CAST(?5 AS TEXT), last_error)"
                              " WHERE id = ?1 AND state = 0 AND lease_token = ?4";
    char dlq[STORE_TOPIC_LEN];
    struct db_stmt *s = NULL;
    dead_letter_topic(topic, dlq);
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_int64(s, 1, id);
    db_bind_text(s, 2, dlq);
    db_bind_int64(s, 3, store_now_ms());
    db_bind_text(s, 4, token);
    db_bind_text(s, 5, error);
    int64_t n = 0;
    rc = store_tx_run(tx, s, &n);
    if (rc == 0 && n == 0)
        rc = STORE_ECONFLICT;
    return rc;
}

static int by_id(const void *a, const void *b)
{
    const struct store_msg *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

int store_queue_lease(struct store *st, const char *topic, int64_t lease_ms, struct store_msg *msgs, size_t max,
                      size_t *n)
{
    static const char sql_lite[] =
        "UPDATE queue_messages SET visible_at = ?3, attempts = attempts + 1, lease_token = ?4"
        " WHERE id IN (SELECT id FROM queue_messages WHERE state = 0 AND topic = ?1"
        " AND visible_at <= ?2 ORDER BY fair_rank, id LIMIT ?5)"
        " RETURNING id, topic, payload, attempts, max_attempts, created_at, last_error";
    static const char sql_pg[] = "WITH c AS MATERIALIZED (SELECT id FROM queue_messages WHERE state = 0 AND topic = ?1"
                                 " AND visible_at <= ?2 ORDER BY fair_rank, id LIMIT ?5 FOR UPDATE SKIP LOCKED)"
                                 " UPDATE queue_messages q SET visible_at = ?3, attempts = q.attempts + 1,"
                                 " lease_token = ?4 FROM c WHERE q.id = c.id"
                                 " RETURNING q.id, q.topic, q.payload, q.attempts, q.max_attempts, q.created_at,"
                                 " q.last_error";
    struct store_tx *tx = NULL;
    struct db_stmt *s = NULL;
    char token[STORE_ID_LEN];
    size_t k = 0;
    if (!topic_ok(topic) || max == 0 || lease_ms <= 0)
        return STORE_EINVAL;
    if (uuid_v4(token) != 0)
        return STORE_EINTERNAL;
    int rc = store_tx_begin(st, STORE_TX_WRITE, &tx);
    if (rc != 0)
        return rc;
    /* Exhausted messages found on the way are dead-lettered and do not count,
     * so look again (a bounded number of times) until something deliverable
     * turns up or nothing is visible. */
    for (int round = 0; round < 8 && k == 0; round++) {
        int64_t now = store_now_ms();
        int64_t dead_ids[64];
        size_t ndead = 0, got = 0;
        rc = store_tx_stmt(tx, store_sql(st, sql_lite, sql_pg), &s);
        if (rc != 0)
            goto fail;
        db_bind_text(s, 1, topic);
        db_bind_int64(s, 2, now);
        db_bind_text(s, 4, token);
        db_bind_int64(s, 5, (int64_t)(max - k));
        /* The lease ends at now + lease_ms; a message not acknowledged by then
         * becomes visible again after the backoff for its attempt count. The
         * backoff depends on the attempt, so use the first attempt's here and
         * correct per row below when it differs. */
        db_bind_int64(s, 3, now + lease_ms + backoff_ms(st, 1));
        while ((rc = db_step(s)) == DB_ROW) {
            got++;
            int attempts = (int)db_col_int64(s, 3);
            int max_attempts = (int)db_col_int64(s, 4);
            int64_t id = db_col_int64(s, 0);
            if (attempts > max_attempts) {
                if (ndead < sizeof(dead_ids) / sizeof(dead_ids[0]))
                    dead_ids[ndead++] = id;
                continue;
            }
            struct store_msg *m = &msgs[k];
            memset(m, 0, sizeof(*m));
            m->id = id;
            store_col_copy(s, 1, m->topic, sizeof(m->topic));
            if (store_col_dup(s, 2, &m->payload) != 0 || m->payload == NULL) {
                rc = STORE_ENOMEM;
                break;
            }
            m->attempts = attempts;
            m->max_attempts = max_attempts;
            m->created_at_ms = db_col_int64(s, 5);
            store_col_copy(s, 6, m->last_error, sizeof(m->last_error));
            memcpy(m->lease_token, token, sizeof(token));
            k++;
        }
        db_stmt_reset(s);
        if (rc < 0) {
            if (rc != STORE_ENOMEM)
                store_tx_fail(tx, rc);
            goto fail;
        }
        for (size_t i = 0; i < ndead; i++) {
            rc = move_to_dead_letter(tx, dead_ids[i], topic, token, NULL);
            if (rc != 0)
                goto fail;
        }
        /* Later attempts wait longer before redelivery after an expired lease. */
        for (size_t i = 0; i < k; i++) {
            if (msgs[i].attempts <= 1)
                continue;
            static const char ext[] = "UPDATE queue_messages SET visible_at = ?2 WHERE id = ?1";
            rc = store_tx_stmt(tx, ext, &s);
            if (rc != 0)
                goto fail;
            db_bind_int64(s, 1, msgs[i].id);
            db_bind_int64(s, 2, now + lease_ms + backoff_ms(st, msgs[i].attempts));
            if ((rc = store_tx_run(tx, s, NULL)) != 0)
                goto fail;
        }
        if (got == 0 || ndead == 0)
            break;
    }
    rc = store_tx_commit(tx);
    tx = NULL;
    if (rc != 0)
        goto fail;
    /* RETURNING order is unspecified on PostgreSQL: hand them out oldest first. */
    qsort(msgs, k, sizeof(*msgs), by_id);
    *n = k;
    return 0;
fail:
    for (size_t i = 0; i < k; i++)
        store_msg_clear(&msgs[i]);
    store_tx_rollback(tx);
    return rc;
}

int store_queue_list(struct store_tx *tx, const char *topic, int64_t after_id, size_t max, struct store_msg *msgs,
                     size_t *n)
{
    static const char sql[] = "SELECT id, topic, payload, attempts, max_attempts, created_at, last_error"
                              " FROM queue_messages WHERE topic = ?1 AND id > ?2 ORDER BY id LIMIT ?3";
    struct db_stmt *s = NULL;
    size_t k = 0;
    if (!topic_ok(topic) || max == 0)
        return STORE_EINVAL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, topic);
    db_bind_int64(s, 2, after_id);
    db_bind_int64(s, 3, (int64_t)max);
    while (k < max && (rc = db_step(s)) == DB_ROW) {
        struct store_msg *m = &msgs[k];
        memset(m, 0, sizeof(*m));
        m->id = db_col_int64(s, 0);
        store_col_copy(s, 1, m->topic, sizeof(m->topic));
        if (store_col_dup(s, 2, &m->payload) != 0) {
            rc = STORE_ENOMEM;
            break;
        }
        m->attempts = (int)db_col_int64(s, 3);
        m->max_attempts = (int)db_col_int64(s, 4);
        m->created_at_ms = db_col_int64(s, 5);
        store_col_copy(s, 6, m->last_error, sizeof(m->last_error));
        k++;
    }
    db_stmt_reset(s);
    if (rc < 0) {
        for (size_t i = 0; i < k; i++)
            store_msg_clear(&msgs[i]);
        return rc == STORE_ENOMEM ? rc : store_tx_fail(tx, rc);
    }
    *n = k;
    return 0;
}

int store_queue_ack(struct store_tx *tx, const struct store_msg *m)
{
    static const char sql[] = "UPDATE queue_messages SET state = 1, acked_at = ?3"
                              " WHERE id = ?1 AND lease_token = ?2 AND state = 0";
    struct db_stmt *s = NULL;
    int64_t n = 0;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_int64(s, 1, m->id);
    db_bind_text(s, 2, m->lease_token);
    db_bind_int64(s, 3, store_now_ms());
    rc = store_tx_run(tx, s, &n);
    if (rc == 0 && n == 0) {
        snprintf(tx->err, sizeof(tx->err), "lease of message %" PRId64 " was lost", m->id);
        rc = STORE_ECONFLICT;
    }
    return rc;
}

int store_queue_ack_batch(struct store_tx *tx, const struct store_msg *msgs, size_t n, size_t *acked)
{
    /* The ids travel as one parameter: a JSON array for SQLite's json_each
     * (built in since 3.38), an array literal for PostgreSQL. */
    static const char lite[] = "UPDATE queue_messages SET state = 1, acked_at = ?3 WHERE state = 0 AND lease_token = ?1"
                               " AND id IN (SELECT value FROM json_each(?2))";
    static const char pg[] = "UPDATE queue_messages SET state = 1, acked_at = ?3 WHERE state = 0 AND lease_token = ?1"
                             " AND id = ANY (CAST(?2 AS BIGINT[]))";
    int pgsql = tx->st->backend == DB_POSTGRES;
    int64_t total = 0;
    char *ids = malloc(n * 21 + 3);
    unsigned char *done = calloc(n ? n : 1, 1);
    int rc = 0;
    if (ids == NULL || done == NULL) {
        rc = STORE_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (done[i])
            continue;
        size_t o = 0;
        ids[o++] = pgsql ? '{' : '[';
        for (size_t j = i; j < n; j++) {
            if (done[j] || strcmp(msgs[j].lease_token, msgs[i].lease_token) != 0)
                continue;
            done[j] = 1;
            o += (size_t)snprintf(ids + o, 22, "%s%" PRId64, o > 1 ? "," : "", msgs[j].id);
        }
        ids[o++] = pgsql ? '}' : ']';
        ids[o] = '\0';
        struct db_stmt *s = NULL;
        int64_t k = 0;
        if ((rc = store_tx_stmt(tx, pgsql ? pg : lite, &s)) != 0)
            break;
        db_bind_text(s, 1, msgs[i].lease_token);
        db_bind_text(s, 2, ids);
        db_bind_int64(s, 3, store_now_ms());
        if ((rc = store_tx_run(tx, s, &k)) == 0)
            total += k;
    }
out:
    free(ids);
    free(done);
    if (rc == 0 && acked != NULL)
        *acked = (size_t)total;
    return rc;
}

int store_queue_ack_now(struct store *st, const struct store_msg *m)
{
    struct store_tx *tx = NULL;
    int rc = store_tx_begin(st, STORE_TX_WRITE, &tx);
    if (rc != 0)
        return rc;
    rc = store_queue_ack(tx, m);
    if (rc != 0) {
        store_tx_rollback(tx);
        return rc;
    }
    return store_tx_commit(tx);
}

int store_queue_nack(struct store_tx *tx, const struct store_msg *m, const char *error)
{
    static const char sql[] = "UPDATE queue_messages SET visible_at = ?3, lease_token = '', last_error = ?4"
                              " WHERE id = ?1 AND lease_token = ?2 AND state = 0";
    struct db_stmt *s = NULL;
    char err[512];
    snprintf(err, sizeof(err), "%s", error != NULL ? error : "");
    if (m->attempts >= m->max_attempts)
        return move_to_dead_letter(tx, m->id, m->topic, m->lease_token, err);
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_int64(s, 1, m->id);
    db_bind_text(s, 2, m->lease_token);
    db_bind_int64(s, 3, store_now_ms() + backoff_ms(tx->st, m->attempts));
    db_bind_text(s, 4, err);
    int64_t n = 0;
    rc = store_tx_run(tx, s, &n);
    if (rc == 0 && n == 0)
        rc = STORE_ECONFLICT;
    return rc;
}

int store_queue_release(struct store_tx *tx, const struct store_msg *m, const char *error)
{
    /* The delivery is not counted (attempts back by one: the lease counted
     * it), so a message that failed for the infrastructure's reason is
     * never dead-lettered for it; it waits the backoff of its attempt, so
     * an outage is not hammered. */
    static const char sql[] = "UPDATE queue_messages SET visible_at = ?3, lease_token = '', last_error = ?4,"
                              " attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END"
                              " WHERE id = ?1 AND lease_token = ?2 AND state = 0";
    struct db_stmt *s = NULL;
    char err[512];
    snprintf(err, sizeof(err), "%s", error != NULL ? error : "");
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_int64(s, 1, m->id);
    db_bind_text(s, 2, m->lease_token);
    db_bind_int64(s, 3, store_now_ms() + backoff_ms(tx->st, m->attempts));
    db_bind_text(s, 4, err);
    int64_t n = 0;
    rc = store_tx_run(tx, s, &n);
    if (rc == 0 && n == 0)
        rc = STORE_ECONFLICT;
    return rc;
}

int store_queue_extend(struct store_tx *tx, const struct store_msg *m, int64_t lease_ms)
{
    static const char sql[] = "UPDATE queue_messages SET visible_at = ?3"
                              " WHERE id = ?1 AND lease_token = ?2 AND state = 0";
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_int64(s, 1, m->id);
    db_bind_text(s, 2, m->lease_token);
    db_bind_int64(s, 3, store_now_ms() + lease_ms);
    int64_t n = 0;
    rc = store_tx_run(tx, s, &n);
    if (rc == 0 && n == 0)
        rc = STORE_ECONFLICT;
    return rc;
}

int store_queue_purge(struct store *st, int64_t now_ms, int64_t *n)
{
    /* Batches keep each transaction (and SQLite's write lock) short. */
    static const char sql[] = "DELETE FROM queue_messages WHERE id IN (SELECT id FROM queue_messages"
                              " WHERE state = 1 AND acked_at < ?1 LIMIT 5000)";
    int64_t total = 0;
    for (;;) {
        struct store_tx *tx = NULL;
        struct db_stmt *s = NULL;
        int64_t k = 0;
        int rc = store_tx_begin(st, STORE_TX_WRITE, &tx);
        if (rc != 0)
            return rc;
        rc = store_tx_stmt(tx, sql, &s);
        if (rc == 0) {
            db_bind_int64(s, 1, now_ms - st->opts.queue_retention_ms);
            rc = store_tx_run(tx, s, &k);
        }
        if (rc != 0) {
            store_tx_rollback(tx);
            return rc;
        }
        if ((rc = store_tx_commit(tx)) != 0)
            return rc;
        total += k;
        if (k < 5000)
            break;
    }
    if (n != NULL)
        *n = total;
    return 0;
}

int store_queue_stats(struct store *st, const char *topic, struct store_queue_stats *out)
{
    static const char sql[] = "SELECT COUNT(*), MIN(created_at),"
                              " (SELECT COUNT(*) FROM queue_messages WHERE state = 0 AND topic = ?2)"
                              " FROM queue_messages WHERE state = 0 AND topic = ?1";
    struct store_tx *tx = NULL;
    struct db_stmt *s = NULL;
    char dlq[STORE_TOPIC_LEN];
    if (!topic_ok(topic))
        return STORE_EINVAL;
    dead_letter_topic(topic, dlq);
    int rc = store_tx_begin(st, STORE_TX_READ, &tx);
    if (rc != 0)
        return rc;
    rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        goto fail;
    db_bind_text(s, 1, topic);
    db_bind_text(s, 2, dlq);
    rc = db_step(s);
    if (rc != DB_ROW) {
        db_stmt_reset(s);
        rc = store_tx_fail(tx, rc < 0 ? rc : STORE_EINTERNAL);
        goto fail;
    }
    struct store_queue_stats qs;
    qs.depth = db_col_int64(s, 0);
    qs.oldest_age_ms = db_col_is_null(s, 1) ? 0 : store_now_ms() - db_col_int64(s, 1);
    if (qs.oldest_age_ms < 0)
        qs.oldest_age_ms = 0;
    qs.dead = db_col_int64(s, 2);
    db_stmt_reset(s);
    rc = store_tx_commit(tx);
    if (rc != 0)
        return rc;
    *out = qs;
    return 0;
fail:
    store_tx_rollback(tx);
    return rc;
}

/* ---- listeners ------------------------------------------------------------ */

struct store_listener {
    struct store *st;
    const char *listen; /* "LISTEN <channel>" */
    PGconn *pg;         /* PostgreSQL: a dedicated LISTEN session */
    uint64_t seen_gen;  /* SQLite: the wake-up generation last seen */
};

static int pg_listen(struct store_listener *l)
{
    PGresult *res = PQexec(l->pg, l->listen);
    int ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    return ok ? 0 : STORE_EUNAVAILABLE;
}

int store_listener_open(struct store *st, struct store_listener **out)
{
    struct store_listener *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return STORE_ENOMEM;
    l->st = st;
    l->listen = "LISTEN " STORE_NOTIFY_CHANNEL;
    if (st->backend == DB_POSTGRES) {
        l->pg = db_pg_connect(st->target);
        if (l->pg == NULL || PQstatus(l->pg) != CONNECTION_OK || pg_listen(l) != 0) {
            store_listener_close(l);
            return STORE_EUNAVAILABLE;
        }
    } else {
        pthread_mutex_lock(&st->qmu);
        l->seen_gen = st->qgen;
        pthread_mutex_unlock(&st->qmu);
    }
    *out = l;
    return 0;
}

static int pg_drain(struct store_listener *l)
{
    int got = 0;
    PGnotify *n;
    while ((n = PQnotifies(l->pg)) != NULL) {
        got = 1;
        PQfreemem(n);
    }
    return got;
}

/* Wait up to timeout_ms for the LISTEN session's socket and read what came:
 * 1 input consumed, 0 nothing (timeout or a signal), or an error. */
static int pg_await_input(struct store_listener *l, int timeout_ms)
{
    struct pollfd pfd = {.fd = PQsocket(l->pg), .events = POLLIN};
    int pr = poll(&pfd, 1, timeout_ms);
    if (pr < 0)
        return errno == EINTR ? 0 : STORE_EUNAVAILABLE;
    if (pr == 0)
        return 0;
    return PQconsumeInput(l->pg) == 0 ? STORE_EUNAVAILABLE : 1;
}

/* The CLOCK_REALTIME instant ms from now (pthread_cond_timedwait's clock). */
static struct timespec deadline_in(int64_t ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    return dl;
}

int store_listener_wait(struct store_listener *l, int timeout_ms)
{
    if (l->pg == NULL) {
        struct store *st = l->st;
        struct timespec dl = deadline_in(timeout_ms);
        int woke = 0;
        pthread_mutex_lock(&st->qmu);
        while (st->qgen == l->seen_gen) {
            if (pthread_cond_timedwait(&st->qcv, &st->qmu, &dl) == ETIMEDOUT)
                break;
        }
        if (st->qgen != l->seen_gen) {
            woke = 1;
            l->seen_gen = st->qgen;
        }
        pthread_mutex_unlock(&st->qmu);
        return woke;
    }
    if (PQstatus(l->pg) != CONNECTION_OK) {
        PQreset(l->pg);
        if (PQstatus(l->pg) != CONNECTION_OK || pg_listen(l) != 0)
            return STORE_EUNAVAILABLE;
        return 1; /* notifications may have been missed: tell the caller to look */
    }
    if (PQconsumeInput(l->pg) == 0)
        return STORE_EUNAVAILABLE;
    if (pg_drain(l))
        return 1;
    int rc = pg_await_input(l, timeout_ms);
    return rc <= 0 ? rc : pg_drain(l);
}

int store_tx_notify_insight(struct store_tx *tx, const char *user_id, const char *insight_id)
{
    if (tx->st->backend != DB_POSTGRES) {
        tx->insight_created = 1; /* wake this process's subscribers at commit */
        return 0;
    }
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, "SELECT pg_notify('" STORE_INSIGHT_CHANNEL "', ?1::text || ':' || ?2::text)", &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    db_bind_text(s, 2, insight_id);
    return store_tx_run(tx, s, NULL);
}

/* ---- "insight created" events ------------------------------------------------ */

#define EVENTS_BATCH 32

struct store_events {
    struct store_listener pg; /* PostgreSQL: the LISTEN session (pg.pg) */
    struct store *st;
    int64_t cursor;        /* SQLite: the last insights rowid delivered */
    unsigned idle_fetches; /* SQLite: looks that found nothing */
    struct store_insight_event batch[EVENTS_BATCH];
    size_t nbatch, at;
};

/* SQLite: the largest rowid of insights, 0 when empty. */
static int lite_max_rowid(struct store *st, int64_t *out)
{
    struct store_tx *tx = NULL;
    struct db_stmt *s = NULL;
    int rc = store_tx_begin(st, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_tx_stmt(tx, "SELECT coalesce(max(rowid), 0) FROM insights", &s);
    if (rc == 0) {
        rc = db_step(s);
        if (rc == DB_ROW) {
            *out = db_col_int64(s, 0);
            rc = 0;
        } else if (rc == DB_DONE) {
            rc = STORE_EINTERNAL;
        }
        db_stmt_reset(s);
    }
    store_tx_rollback(tx);
    return rc;
}

/* SQLite: read the insights committed after the cursor into the batch. */
static int lite_fetch(struct store_events *l)
{
    struct store_tx *tx = NULL;
    struct db_stmt *s = NULL;
    l->nbatch = l->at = 0;
    int rc = store_tx_begin(l->st, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_tx_stmt(tx, "SELECT rowid, user_id, id FROM insights WHERE rowid > ?1 ORDER BY rowid LIMIT 32", &s);
    if (rc == 0) {
        db_bind_int64(s, 1, l->cursor);
        while ((rc = db_step(s)) == DB_ROW && l->nbatch < EVENTS_BATCH) {
            struct store_insight_event *e = &l->batch[l->nbatch++];
            l->cursor = db_col_int64(s, 0);
            store_col_copy(s, 1, e->user_id, sizeof(e->user_id));
            store_col_copy(s, 2, e->insight_id, sizeof(e->insight_id));
        }
        rc = rc < 0 ? rc : 0;
        db_stmt_reset(s);
    }
    store_tx_rollback(tx);
    if (rc == 0 && l->nbatch == 0 && ++l->idle_fetches % 5 == 0) {
        /* Deleting the newest rows (an erasure) lets SQLite hand their
         * rowids out again: follow the table back down (every 5 quiet
         * looks, ~5 s). */
        int64_t max = 0;
        if (lite_max_rowid(l->st, &max) == 0 && max < l->cursor)
            l->cursor = max;
    }
    return rc;
}

int store_insight_events_open(struct store *st, struct store_events **out)
{
    struct store_events *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return STORE_ENOMEM;
    l->st = st;
    l->pg.st = st;
    int rc = 0;
    if (st->backend == DB_POSTGRES) {
        l->pg.listen = "LISTEN " STORE_INSIGHT_CHANNEL;
        l->pg.pg = db_pg_connect(st->target);
        if (l->pg.pg == NULL || PQstatus(l->pg.pg) != CONNECTION_OK || pg_listen(&l->pg) != 0)
            rc = STORE_EUNAVAILABLE;
    } else {
        rc = lite_max_rowid(st, &l->cursor);
    }
    if (rc != 0) {
        store_insight_events_close(l);
        return rc;
    }
    *out = l;
    return 0;
}

/* PostgreSQL: one buffered notification "user_id:insight_id" into *ev; 0
 * when none is buffered. Malformed payloads are skipped. */
static int pg_take(struct store_listener *l, struct store_insight_event *ev)
{
    PGnotify *n;
    while ((n = PQnotifies(l->pg)) != NULL) {
        const char *p = n->extra != NULL ? n->extra : "";
        const char *colon = strchr(p, ':');
        int ok =
            colon != NULL && (size_t)(colon - p) < sizeof(ev->user_id) && strlen(colon + 1) < sizeof(ev->insight_id);
        if (ok) {
            memcpy(ev->user_id, p, (size_t)(colon - p));
            ev->user_id[colon - p] = '\0';
            snprintf(ev->insight_id, sizeof(ev->insight_id), "%s", colon + 1);
        }
        PQfreemem(n);
        if (ok)
            return 1;
    }
    return 0;
}

static int pg_next(struct store_listener *l, int timeout_ms, struct store_insight_event *ev)
{
    if (PQstatus(l->pg) != CONNECTION_OK) {
        PQreset(l->pg);
        if (PQstatus(l->pg) != CONNECTION_OK || pg_listen(l) != 0)
            return STORE_EUNAVAILABLE;
        return STORE_EVENTS_RESYNC;
    }
    if (pg_take(l, ev))
        return 1;
    if (PQconsumeInput(l->pg) == 0)
        return STORE_EUNAVAILABLE;
    if (pg_take(l, ev))
        return 1;
    int rc = pg_await_input(l, timeout_ms);
    return rc <= 0 ? rc : pg_take(l, ev);
}

int store_insight_events_next(struct store_events *l, int timeout_ms, struct store_insight_event *ev)
{
    if (l->pg.pg != NULL)
        return pg_next(&l->pg, timeout_ms, ev);
    struct store *st = l->st;
    int64_t deadline = store_now_ms() + timeout_ms;
    for (;;) {
        if (l->at < l->nbatch) {
            *ev = l->batch[l->at++];
            return 1;
        }
        pthread_mutex_lock(&st->qmu);
        uint64_t gen = st->igen;
        pthread_mutex_unlock(&st->qmu);
        int rc = lite_fetch(l);
        if (rc != 0)
            return rc;
        if (l->nbatch > 0)
            continue;
        int64_t left = deadline - store_now_ms();
        if (left <= 0)
            return 0;
        if (left > STORE_EVENTS_POLL_MS)
            left = STORE_EVENTS_POLL_MS;
        struct timespec dl = deadline_in(left);
        pthread_mutex_lock(&st->qmu);
        while (st->igen == gen)
            if (pthread_cond_timedwait(&st->qcv, &st->qmu, &dl) == ETIMEDOUT)
                break;
        pthread_mutex_unlock(&st->qmu);
    }
}

void store_insight_events_close(struct store_events *l)
{
    if (l == NULL)
        return;
    if (l->pg.pg != NULL)
        PQfinish(l->pg.pg);
    free(l);
}

void store_listener_close(struct store_listener *l)
{
    if (l == NULL)
        return;
    if (l->pg != NULL)
        PQfinish(l->pg);
    free(l);
}
