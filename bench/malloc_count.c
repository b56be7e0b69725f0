/*
 * malloc_count.c — an LD_PRELOAD library that counts heap allocations
 * (malloc, calloc, realloc, aligned allocations) of a whole process and
 * writes the total to $MALLOC_COUNT_FILE at exit. bench/http_allocs.sh
 * runs `clarity serve` under it twice — idle, then after N probe requests —
 * and reports the difference per request (issue 22: ≤ 30 per probe).
 *
 * calloc is called by dlsym itself before the real one is known; those
 * first calls are served from a small static pool.
 */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_ulong count;
static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void (*real_free)(void *);
static _Alignas(16) char boot[4096];
static size_t boot_used;

static void init(void)
{
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    real_free = dlsym(RTLD_NEXT, "free");
}

void *malloc(size_t n)
{
    if (real_malloc == NULL)
        init();
    atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    return real_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    if (real_calloc == NULL) {
        /* dlsym's own calloc, before the real one is known. */
        size_t n = (a * b + 15) & ~(size_t)15;
        if (boot_used + n > sizeof(boot))
            return NULL;
        void *p = boot + boot_used;
        boot_used += n;
        return p;
    }
    atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    return real_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    if (real_realloc == NULL)
        init();
    atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    return real_realloc(p, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    if (real_posix_memalign == NULL)
        init();
    atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    return real_posix_memalign(out, align, n);
}

void free(void *p)
{
    if ((char *)p >= boot && (char *)p < boot + sizeof(boot))
        return;
    if (real_free == NULL)
        init();
    real_free(p);
}

__attribute__((destructor)) static void report(void)
{
    const char *path = getenv("MALLOC_COUNT_FILE");
    if (path == NULL)
        return;
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return;
    fprintf(f, "%lu\n", atomic_load(&count));
    fclose(f);
}
