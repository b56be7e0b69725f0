/*
 * pool.c — the answer threads. See pool.h.
 */
#include "chat/pool.h"

#include <pthread.h>
#include <stdlib.h>

#define POOL_MAX_THREADS 16

struct job {
    chat_pool_fn fn;
    chat_pool_drop_fn drop;
    void *arg;
    struct job *next;
};

struct chat_pool {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct job *head, *tail;
    size_t n, max;
    int stop;
    pthread_t threads[POOL_MAX_THREADS];
    int nthreads;
};

static void *pool_main(void *arg)
{
    struct chat_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->head == NULL && !p->stop)
            pthread_cond_wait(&p->cond, &p->mu);
        if (p->stop)
            break;
        struct job *j = p->head;
        p->head = j->next;
        if (p->head == NULL)
            p->tail = NULL;
        p->n--;
        pthread_mutex_unlock(&p->mu);
        j->fn(j->arg);
        free(j);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

struct chat_pool *chat_pool_new(int threads, size_t max_jobs)
{
    struct chat_pool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->max = max_jobs;
    if (threads < 1)
        threads = 1;
    if (threads > POOL_MAX_THREADS)
        threads = POOL_MAX_THREADS;
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, pool_main, p) != 0) {
            chat_pool_free(p);
            return NULL;
        }
        p->nthreads++;
    }
    return p;
}

int chat_pool_submit(struct chat_pool *p, chat_pool_fn fn, chat_pool_drop_fn drop, void *arg)
{
    struct job *j = malloc(sizeof(*j));
    if (j == NULL)
        return -1;
    j->fn = fn;
    j->drop = drop;
    j->arg = arg;
    j->next = NULL;
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    if (p->stop || p->n >= p->max) {
        rc = -1;
    } else {
        if (p->tail != NULL)
            p->tail->next = j;
        else
            p->head = j;
        p->tail = j;
        p->n++;
        pthread_cond_signal(&p->cond);
    }
    pthread_mutex_unlock(&p->mu);
    if (rc != 0)
        free(j);
    return rc;
}

size_t chat_pool_queued(struct chat_pool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->n;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void chat_pool_free(struct chat_pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    for (struct job *j = p->head; j != NULL;) {
        struct job *next = j->next;
        if (j->drop != NULL)
            j->drop(j->arg);
        free(j);
        j = next;
    }
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
