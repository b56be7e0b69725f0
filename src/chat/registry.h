/*
 * registry.h — who is connected to the chat on this instance: per user the
 * number of sockets and the message budget, and the owner of every named
 * room.
 *
 * Threads: every function may be called from any thread; one mutex guards
 * the tables and is held only for a lookup (never across I/O).
 */
#ifndef CLARITY_CHAT_REGISTRY_H
#define CLARITY_CHAT_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#define CHAT_USER_ID_MAX 64 /* bytes with NUL */
#define CHAT_ROOM_ID_MAX 72

struct chat_registry;

/* A registry allowing max_conns sockets per user and per_minute messages per
 * user (a token bucket refilled continuously). NULL when out of memory. */
struct chat_registry *chat_registry_new(int max_conns, double per_minute);

/* Free; accepts NULL. */
void chat_registry_free(struct chat_registry *r);

/*
 * Claim room_id for user_id. A room is the user's own id or a room name
 * first used by that user on this instance. Returns 0 when the user may
 * join, -1 when the room belongs to someone else (or out of memory).
 */
int chat_registry_room_claim(struct chat_registry *r, const char *room_id, const char *user_id);

/*
 * Take one of the user's connection slots. Returns 0, or -1 when the user
 * already holds max_conns (or out of memory). *held receives how many the
 * user holds afterwards (may be NULL).
 */
int chat_registry_conn_acquire(struct chat_registry *r, const char *user_id, int *held);

/* Give a slot back (the entry goes when the user holds none). */
void chat_registry_conn_release(struct chat_registry *r, const char *user_id);

/* 1 when the user holds a connection slot here. */
int chat_registry_connected(struct chat_registry *r, const char *user_id);

/*
 * Take one message from the user's budget at now_ms (wall clock, ms).
 * Returns 0 when allowed, -1 when the budget is spent or the user holds no
 * connection.
 */
int chat_registry_rate_take(struct chat_registry *r, const char *user_id, int64_t now_ms);

/* Copy up to cap ids of users holding connections into ids; returns how
 * many were copied. */
size_t chat_registry_users(struct chat_registry *r, char (*ids)[CHAT_USER_ID_MAX], size_t cap);

#endif
