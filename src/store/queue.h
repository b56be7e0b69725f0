/*
 * queue.h — the durable pub/sub queue (the deployment guide's Pub/Sub topics)
 * in the queue_messages table of either backend.
 *
 * Semantics (docs/data-model.md has the long form):
 *  - Publishing is a row insert inside the caller's transaction: the message
 *    exists exactly when the data it describes does.
 *  - A consumer leases up to n visible messages of a topic for lease_ms; each
 *    lease gets a fresh lease token and counts one delivery attempt. No two
 *    consumers ever hold the same message at once (SQLite: BEGIN IMMEDIATE;
 *    PostgreSQL: FOR UPDATE SKIP LOCKED).
 *  - Ack (with the lease token) marks the message done; a stale token (the
 *    lease expired and someone else leased it) gets STORE_ECONFLICT.
 *  - Nack, or a lease that expires, makes the message visible again after an
 *    exponential backoff (base * 2^(attempts-1), capped).
 *  - A message leased max_attempts times without an ack moves to the topic's
 *    dead-letter topic (`<topic>-dead-letter`) with its last error.
 *  - Acknowledged messages are kept queue_retention_ms (86400 s) and then
 *    purged by store_queue_purge; unacknowledged ones are never dropped.
 *  - Wake-up: PostgreSQL NOTIFY on commit wakes listeners in every process;
 *    on SQLite a commit wakes listeners of the same process and other
 *    processes fall back to polling.
 */
#ifndef CLARITY_STORE_QUEUE_H
#define CLARITY_STORE_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define STORE_TOPIC_HEALTH_DATA "health-data-processing"
#define STORE_TOPIC_INSIGHTS "insights-generation"
#define STORE_DEAD_LETTER_SUFFIX "-dead-letter"
#define STORE_TOPIC_LEN 64

struct store_msg {
    int64_t id;
    char topic[STORE_TOPIC_LEN];
    char *payload; /* JSON text, heap (store_msg_clear) */
    int attempts;  /* deliveries so far, including this one */
    int max_attempts;
    char lease_token[STORE_ID_LEN];
    int64_t created_at_ms;
    char last_error[512]; /* from the previous nack, "" none */
};

struct store_publish_opts {
    int64_t delay_ms; /* invisible until now + delay (0) */
    int max_attempts; /* 0 → store_options.queue_max_attempts */
    /* Who the message is for (a user id; NULL or "" none): messages are
     * leased fairly between keys, not strictly oldest first (migration 010,
     * store_queue_lease). */
    const char *fair_key;
};

/*
 * Publish payload (JSON text, borrowed) to topic inside tx. opts may be NULL.
 * *id_out (may be NULL) receives the message id.
 */
int store_queue_publish(struct store_tx *tx, const char *topic, const char *payload,
                        const struct store_publish_opts *opts, int64_t *id_out);

/*
 * Publish n payloads (JSON text, borrowed) to one topic inside tx with one
 * statement (an outbox flush, a fan-out); same semantics as n publishes,
 * except that opts->fair_key is ignored (none of them carries a key).
 */
int store_queue_publish_batch(struct store_tx *tx, const char *topic, const char *const *payloads, size_t n,
                              const struct store_publish_opts *opts);

/*
 * Lease up to max visible messages of topic for lease_ms, in its own short
 * transaction. Fills msgs[0..*n) (each to be cleared with store_msg_clear);
 * *n == 0 when nothing is visible. Messages over max_attempts are moved to
 * the dead-letter topic here instead of being delivered. Order: by fair rank,
 * then oldest first — round robin between fair keys, each key's messages in
 * publish order (store_publish_opts.fair_key).
 */
int store_queue_lease(struct store *st, const char *topic, int64_t lease_ms, struct store_msg *msgs, size_t max,
                      size_t *n);

/* Acknowledge inside tx (so that a job's results and its ack commit
 * together). STORE_ECONFLICT when the lease was lost. */
/*
 * Read (without leasing) up to max messages of topic with id > after_id,
 * oldest first, in any state: for operators and for the recovery of
 * dead-lettered jobs (pipeline/jobs.c). msgs[0..*n) are filled (free each
 * with store_msg_clear); their lease_token is "".
 */
int store_queue_list(struct store_tx *tx, const char *topic, int64_t after_id, size_t max, struct store_msg *msgs,
                     size_t *n);
int store_queue_ack(struct store_tx *tx, const struct store_msg *m);
/*
 * Acknowledge a batch (typically what one store_queue_lease returned) with
 * one statement per distinct lease token instead of one per message.
 * *acked receives how many were still held and are now acknowledged; the
 * others had lost their lease (compare with n).
 */
int store_queue_ack_batch(struct store_tx *tx, const struct store_msg *msgs, size_t n, size_t *acked);
/* Give the message back with an error: visible again after backoff, or to
 * the dead-letter topic when attempts are exhausted. */
int store_queue_nack(struct store_tx *tx, const struct store_msg *m, const char *error);
/* Give the message back without spending an attempt: for a job that failed
 * for a passing reason of the server's (the store unavailable or busy, memory
 * short), not the message's; visible again after its attempt's backoff,
 * never dead-lettered for it. STORE_ECONFLICT when the lease was lost. */
int store_queue_release(struct store_tx *tx, const struct store_msg *m, const char *error);
/* Extend the lease of a long job to now + lease_ms. */
int store_queue_extend(struct store_tx *tx, const struct store_msg *m, int64_t lease_ms);
/* Convenience: ack in a transaction of its own. */
int store_queue_ack_now(struct store *st, const struct store_msg *m);

/* Delete acknowledged messages older than the retention. *n purged. */
int store_queue_purge(struct store *st, int64_t now_ms, int64_t *n);

struct store_queue_stats {
    int64_t depth;         /* unacknowledged messages (visible, leased or delayed) */
    int64_t oldest_age_ms; /* age of the oldest unacknowledged message, 0 none */
    int64_t dead;          /* messages in the topic's dead-letter topic */
};
int store_queue_stats(struct store *st, const char *topic, struct store_queue_stats *out);

void store_msg_clear(struct store_msg *m);

/*
 * A listener wakes consumers when messages are published. PostgreSQL: a
 * dedicated connection with LISTEN clarity_queue. SQLite: in-process wake-ups.
 */
struct store_listener;
int store_listener_open(struct store *st, struct store_listener **out);
/* Wait up to timeout_ms. Returns 1 when woken by a publish, 0 on timeout, or
 * a STORE_E* code (the listener reconnects on the next call). */
int store_listener_wait(struct store_listener *l, int timeout_ms);
void store_listener_close(struct store_listener *l);

/*
 * "Insight created" events: one API on both backends, for whoever must hear
 * of every insight committed by store_insight_insert (the chat's push). An
 * event is delivered after the inserting transaction commits, never for a
 * rollback, in commit order, on every process sharing the database.
 *   - PostgreSQL: a dedicated session with LISTEN on the store's insight
 *     channel; store_insight_insert NOTIFYs inside its transaction, so
 *     PostgreSQL delivers at COMMIT (PostgreSQL manual, NOTIFY).
 *   - SQLite: the listener follows the insights table by rowid (rowids are
 *     assigned under SQLite's single writer lock, so in commit order): a
 *     commit in this process wakes it at once (as the queue's wake-up does),
 *     a commit of another process (an out-of-process worker) is seen within
 *     STORE_EVENTS_POLL_MS.
 * The caller learns nothing of channels or SQL.
 */
struct store_insight_event {
    char user_id[STORE_ID_LEN];
    char insight_id[STORE_ID_LEN];
};

/* store_insight_events_next: the PostgreSQL session was re-established;
 * events of the gap are lost, so the caller should look up what it may have
 * missed since it last heard anything. Never returned on SQLite. */
#define STORE_EVENTS_RESYNC 2
/* SQLite: how often another process's commits are looked for. */
#define STORE_EVENTS_POLL_MS 1000

struct store_events;

/* Subscribe from now on: events committed before the call are not
 * delivered. Returns 0 and *out (close with store_insight_events_close),
 * STORE_ENOMEM, or STORE_EUNAVAILABLE (PostgreSQL unreachable). */
int store_insight_events_open(struct store *st, struct store_events **out);

/*
 * The next event, waiting up to timeout_ms. Returns 1 with *ev filled, 0 on
 * timeout, STORE_EVENTS_RESYNC, or a negative STORE_E* code (the next call
 * reconnects). One subscriber belongs to one thread.
 */
int store_insight_events_next(struct store_events *l, int timeout_ms, struct store_insight_event *ev);

/* Unsubscribe and free; accepts NULL. */
void store_insight_events_close(struct store_events *l);

#endif
