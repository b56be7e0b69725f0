/*
 * malloc_fail.c — fault injection in the style of SQLite's test_malloc.c and
 * curl's torture mode, for the real binary: an LD_PRELOAD library that makes
 * heap allocations fail on purpose (issue 16).
 *
 * Environment (all optional; without MALLOC_FAIL_EVERY nothing fails):
 *   MALLOC_FAIL_EVERY=N      fail every Nth allocation inside the window
 *   MALLOC_FAIL_AFTER_MS=T   the window opens T ms after the first allocation
 *   MALLOC_FAIL_FOR_MS=D     and closes D ms later (default: never)
 *   MALLOC_FAIL_ARM_FILE=P   only while the file P exists (checked every 256
 *                            allocations or 20 ms), so a test arms it once the server
 *                            is up and disarms it by removing the file
 *   MALLOC_FAIL_NTH_FILE=P   a sweep in the style of SQLite's test_malloc.c:
 *                            when P holds "k" or "k:tag" and its content
 *                            changed since the last look (every 256
 *                            allocations or 20 ms), the kth allocation from
 *                            then on fails, once. A test writes 1, 2, 3, ...
 *                            and sends the same request after each, so that
 *                            every allocation the request makes fails in turn
 *   MALLOC_FAIL_COUNT_FILE=P at exit, write "calls failed" to P
 *   MALLOC_COUNT_FILE=P      at exit, write the number of allocations to P
 *                            (bench/http_allocs.sh: allocations per request)
 *
 * tests/e2e/test_fault_injection.py runs `clarity serve` under it while
 * uploads, an import, analyses and chat go on, and holds the server to: no
 * crash, no acknowledged upload lost, a 5xx only for the server's own
 * failure, and normal service once the window closes. (Under ASan, which
 * owns malloc, the test runs the release binary only.)
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void (*real_free)(void *);
static _Alignas(16) char boot[8192];
static size_t boot_used;

static atomic_ulong calls, failed;
static unsigned long every;
static int64_t open_ms = -1, close_ms = -1, t0_ms = -1;
static atomic_int configured;
static const char *arm_file;
static atomic_int armed;
static const char *nth_file;
static atomic_ulong nth_target, nth_seen; /* 0: no sweep step pending */
static char nth_last[32];                 /* nth_file's content at the last look */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void init(void)
{
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    real_free = dlsym(RTLD_NEXT, "free");
}

static void configure(void)
{
    const char *e = getenv("MALLOC_FAIL_EVERY");
    every = e != NULL ? strtoul(e, NULL, 10) : 0;
    t0_ms = now_ms();
    const char *a = getenv("MALLOC_FAIL_AFTER_MS");
    const char *f = getenv("MALLOC_FAIL_FOR_MS");
    open_ms = t0_ms + (a != NULL ? strtoll(a, NULL, 10) : 0);
    close_ms = f != NULL ? open_ms + strtoll(f, NULL, 10) : INT64_MAX;
    arm_file = getenv("MALLOC_FAIL_ARM_FILE");
    nth_file = getenv("MALLOC_FAIL_NTH_FILE");
    atomic_store(&configured, 1);
}

/* The number that starts nth_file, read without allocating, when the
 * file's content changed since the last look; else 0. */
static unsigned long read_nth(void)
{
    char b[sizeof(nth_last)] = {0};
    int fd = open(nth_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t got = read(fd, b, sizeof(b) - 1);
    close(fd);
    if (got <= 0 || memcmp(b, nth_last, sizeof(b)) == 0)
        return 0;
    memcpy(nth_last, b, sizeof(b));
    unsigned long k = 0;
    for (ssize_t i = 0; i < got && b[i] >= '0' && b[i] <= '9'; i++)
        k = k * 10 + (unsigned long)(b[i] - '0');
    return k;
}

/* Sweep mode (MALLOC_FAIL_NTH_FILE): whether this allocation is the kth
 * since a new k was read. */
static int nth_fail_now(unsigned long n)
{
    static _Atomic int64_t last_check;
    static atomic_flag busy = ATOMIC_FLAG_INIT;
    int64_t t = now_ms();
    if ((n % 256 == 0 || t - atomic_load(&last_check) > 20) && !atomic_flag_test_and_set(&busy)) {
        atomic_store(&last_check, t);
        unsigned long k = read_nth();
        if (k != 0) {
            atomic_store(&nth_seen, 0);
            atomic_store(&nth_target, k);
        }
        atomic_flag_clear(&busy);
    }
    unsigned long target = atomic_load(&nth_target);
    if (target == 0 || atomic_fetch_add(&nth_seen, 1) + 1 != target)
        return 0;
    atomic_store(&nth_target, 0);
    atomic_fetch_add_explicit(&failed, 1, memory_order_relaxed);
    errno = ENOMEM;
    return 1;
}

/* Whether this allocation is to fail. */
static int fail_now(void)
{
    if (!atomic_load(&configured))
        configure();
    unsigned long n = atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed) + 1;
    if (nth_file != NULL)
        return nth_fail_now(n);
    if (arm_file != NULL) {
        /* Look at the file every 256 allocations or 20 ms, whichever first. */
        static _Atomic int64_t last_check;
        int64_t t = now_ms();
        if (n % 256 == 0 || t - atomic_load(&last_check) > 20) {
            atomic_store(&last_check, t);
            atomic_store(&armed, access(arm_file, F_OK) == 0);
        }
    }
    if (every == 0 || n % every != 0 || (arm_file != NULL && !atomic_load(&armed)))
        return 0;
    int64_t t = now_ms();
    if (t < open_ms || t >= close_ms)
        return 0;
    atomic_fetch_add_explicit(&failed, 1, memory_order_relaxed);
    errno = ENOMEM;
    return 1;
}

void *malloc(size_t n)
{
    if (real_malloc == NULL)
        init();
    return fail_now() ? NULL : real_malloc(n);
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
    return fail_now() ? NULL : real_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    if (real_realloc == NULL)
        init();
    return fail_now() ? NULL : real_realloc(p, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    if (real_posix_memalign == NULL)
        init();
    return fail_now() ? ENOMEM : real_posix_memalign(out, align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    if (real_aligned_alloc == NULL)
        init();
    return fail_now() ? NULL : real_aligned_alloc(align, n);
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
    const char *path = getenv("MALLOC_FAIL_COUNT_FILE");
    FILE *f = path != NULL ? fopen(path, "w") : NULL;
    if (f != NULL) {
        fprintf(f, "%lu %lu\n", atomic_load(&calls), atomic_load(&failed));
        fclose(f);
    }
    path = getenv("MALLOC_COUNT_FILE");
    f = path != NULL ? fopen(path, "w") : NULL;
    if (f != NULL) {
        fprintf(f, "%lu\n", atomic_load(&calls));
        fclose(f);
    }
}
