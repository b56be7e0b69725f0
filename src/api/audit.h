/*
 * audit.h — the audit trail: who did what to which record, when, from where,
 * with what outcome. Never the values, passwords or tokens.
 */
#ifndef CLARITY_API_AUDIT_H
#define CLARITY_API_AUDIT_H

#include "http/http.h"

struct store;
struct store_tx;

/*
 * Record one event for the request's caller (or actor_id when given, e.g. a
 * login before any token exists). With tx the row joins that transaction;
 * without, it is written in its own. Failures are logged, and returned (-1).
 */
/*
 * Fill *a for the request's caller (or actor_id) without writing it, for a
 * use case that writes the row in its own transaction.
 */
struct store_audit;
void audit_fill(struct store_audit *a, const struct http_request *req, const char *actor_id, const char *action,
                const char *resource_type, const char *resource_id, const char *outcome);

int audit_record(struct store *st, struct store_tx *tx, const struct http_request *req, const char *actor_id,
                 const char *action, const char *resource_type, const char *resource_id, const char *outcome);

#endif
