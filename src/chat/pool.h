/*
 * pool.h — the chat's answer pool: a few threads that prepare answers which
 * read the store or analyse (free-text answers, health_insight), so that a
 * slow database or LLM never stalls the WebSocket loop.
 *
 * A job is a function and its argument; the queue is bounded, so a flood of
 * questions is refused at once (the caller answers "busy") instead of
 * growing memory.
 *
 * Threads: chat_pool_submit from any thread; one mutex guards the queue.
 */
#ifndef CLARITY_CHAT_POOL_H
#define CLARITY_CHAT_POOL_H

#include <stddef.h>

/* Runs on a pool thread; owns arg. */
typedef void (*chat_pool_fn)(void *arg);
/* Frees the argument of a job that will never run (pool freed first). */
typedef void (*chat_pool_drop_fn)(void *arg);

struct chat_pool;

/* Start `threads` threads with room for max_jobs queued jobs. NULL when out
 * of memory or a thread cannot start. */
struct chat_pool *chat_pool_new(int threads, size_t max_jobs);

/* Queue fn(arg). Returns 0, or -1 when the queue is full, out of memory or
 * stopping (arg untouched, still the caller's). */
int chat_pool_submit(struct chat_pool *p, chat_pool_fn fn, chat_pool_drop_fn drop, void *arg);

/* Jobs waiting (not running). */
size_t chat_pool_queued(struct chat_pool *p);

/* Stop: running jobs finish, waiting ones are dropped (drop(arg)), threads
 * joined, freed. Accepts NULL. */
void chat_pool_free(struct chat_pool *p);

#endif
