// The worker pool behind Parallel.forEach (see ThreadPool.h for the contract).
//
// Hand-off, per region: the caller writes the body and context, sets `remaining` to the number of
// helpers taking part, then bumps each such helper's own generation counter (release) and wakes
// it with a futex only if that helper said it was asleep. A helper that sees its counter change
// (acquire) runs its share and decrements `remaining`; the last one wakes the caller if the caller
// said it was asleep. Both "asleep" flags and the counters they guard are sequentially consistent,
// so of a waiter that sets its flag and re-reads the counter and a signaller that writes the counter
// and reads the flag, at least one sees the other (no lost wake-up); the futex call itself re-checks
// the counter in the kernel.
//
// Helpers that a region does not need are not woken. One region at a time: `pool_lock` is taken
// with trylock, and a second thread that finds it held gets 0 back (ThreadPool.h).
#define _GNU_SOURCE
#include "ThreadPool.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__linux__)
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
static inline void cpu_relax(void) { __builtin_ia32_pause(); }
#elif defined(__aarch64__)
static inline void cpu_relax(void) { __asm__ volatile("yield" ::: "memory"); }
#else
static inline void cpu_relax(void) {}
#endif

/// Most helpers a pool keeps (a bound on `threads`, not a tuning choice).
#define MAX_HELPERS 1023

static void futex_wait(_Atomic uint32_t *word, uint32_t expected) {
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word) {
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static _Atomic long spin_us = -1, yield_us = -1;

/// The bound cached in `*cache`: at the first call, the environment variable `name` (a whole
/// number of µs; above `cap` it is `cap`), else `fallback`. Any other value stops the process
/// with a message naming the variable, as dsan's other switches do.
static long cached_bound(_Atomic long *cache, const char *name, long fallback, long cap) {
    long s = atomic_load_explicit(cache, memory_order_relaxed);
    if (s >= 0) return s;
    s = fallback;
    const char *env = getenv(name);
    if (env && *env) {
        char *end;
        errno = 0;
        long v = strtol(env, &end, 10);
        if (*end != 0 || v < 0 || errno == ERANGE) {
            fprintf(stderr, "dsan: %s=%s: expected a whole number of microseconds, 0 to %ld (default %ld)\n",
                    name, env, cap, fallback);
            exit(2);
        }
        s = v > cap ? cap : v;
    }
    atomic_store_explicit(cache, s, memory_order_relaxed);
    return s;
}

long dsan_pool_spin_microseconds(void) { return cached_bound(&spin_us, "DSAN_POOL_SPIN_US", 50, 1000); }

long dsan_pool_yield_microseconds(void) { return cached_bound(&yield_us, "DSAN_POOL_YIELD_US", 2000, 100000); }

void dsan_pool_set_wait_microseconds(long spin, long yield) {
    atomic_store_explicit(&spin_us, spin < 0 ? 0 : spin, memory_order_relaxed);
    atomic_store_explicit(&yield_us, yield < 0 ? 0 : yield, memory_order_relaxed);
}

static _Atomic long helper_sleeps;

long dsan_pool_helper_sleeps(void) { return atomic_load_explicit(&helper_sleeps, memory_order_relaxed); }

/// A waiter polling a word since `start`: between two polls `poll_again` pauses, with the CPU's
/// pause instruction for the first `dsan_pool_spin_microseconds`, then with sched_yield (the core
/// goes to any other thread that wants it: OpenBLAS's, another rank's, the prefetcher) for
/// `dsan_pool_yield_microseconds` more; after that it returns 0 and the waiter sleeps on a futex.
typedef struct {
    uint64_t start, spin_ns, until_ns;
    unsigned polls;
    int yielding;
} poller;

static poller poller_start(void) {
    const uint64_t spin = (uint64_t)dsan_pool_spin_microseconds() * 1000u;
    const poller p = {now_ns(), spin, spin + (uint64_t)dsan_pool_yield_microseconds() * 1000u, 0, 0};
    return p;
}

static int poll_again(poller *p) {
    if (!p->yielding) {
        cpu_relax();
        if ((++p->polls & 63) != 0) return 1;   // the clock every 64 pauses
        if (now_ns() - p->start < p->spin_ns) return 1;
        p->yielding = 1;
    }
    if (now_ns() - p->start >= p->until_ns) return 0;
    sched_yield();
    return 1;
}

/// One helper thread. Its counter and flag sit on their own cache line: the caller writes them,
/// and the helper spins on them, without disturbing the other helpers.
typedef struct {
    _Alignas(64) _Atomic uint32_t generation;   // bumped by the caller: a region (or stop) for me
    _Atomic uint32_t sleeping;                  // 1 while I may be in futex_wait on `generation`
    _Atomic uint32_t stop;                      // set with a bump: leave the loop
    long index;                                 // 1, 2, …: the share of each region I run
    pthread_t thread;
} helper;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static helper *helpers[MAX_HELPERS];   // helpers[i] has index i + 1; only the lock holder touches
static long helper_count;

// The current region, written by the lock holder before it bumps any helper's generation.
static dsan_pool_body region_body;
static void *region_context;
static _Alignas(64) _Atomic uint32_t remaining;   // helpers of this region not yet done
static _Atomic uint32_t caller_sleeping;          // 1 while the caller may be in futex_wait on it

static _Thread_local long current_helper;   // my index on a helper thread, else 0
static _Thread_local int inside_region;     // 1 while this thread runs a region's body

/// Returns the first value of `*word` other than `old`: polls (`poll_again`), then sleeps.
static uint32_t wait_for_change(_Atomic uint32_t *word, uint32_t old, _Atomic uint32_t *sleeping) {
    uint32_t v = atomic_load_explicit(word, memory_order_acquire);
    if (v != old) return v;
    poller p = poller_start();
    while (poll_again(&p)) {
        v = atomic_load_explicit(word, memory_order_acquire);
        if (v != old) return v;
    }
    for (;;) {
        atomic_store(sleeping, 1);
        v = atomic_load(word);
        if (v == old) {
            atomic_fetch_add_explicit(&helper_sleeps, 1, memory_order_relaxed);
            futex_wait(word, old);
        }
        atomic_store(sleeping, 0);
        v = atomic_load_explicit(word, memory_order_acquire);
        if (v != old) return v;
    }
}

static void *helper_main(void *argument) {
    helper *h = argument;
    current_helper = h->index;
    inside_region = 1;   // everything a helper runs is a region's body: nested calls run inline
    uint32_t seen = 0;   // the generation at creation
    for (;;) {
        seen = wait_for_change(&h->generation, seen, &h->sleeping);
        if (atomic_load_explicit(&h->stop, memory_order_acquire)) return NULL;
        region_body(region_context, h->index);
        if (atomic_fetch_sub(&remaining, 1) == 1 && atomic_load(&caller_sleeping)) futex_wake(&remaining);
    }
}

/// Tells helper `h` to start (the region or its stop) and wakes it if it sleeps.
static void signal_helper(helper *h) {
    atomic_fetch_add(&h->generation, 1);
    if (atomic_load(&h->sleeping)) futex_wake(&h->generation);
}

/// Grows or shrinks the pool to `count` helpers; returns the count reached (lock held).
static long resize(long count) {
    if (count > MAX_HELPERS) count = MAX_HELPERS;
    while (helper_count > count) {
        helper *h = helpers[--helper_count];
        atomic_store_explicit(&h->stop, 1, memory_order_release);
        signal_helper(h);
        pthread_join(h->thread, NULL);
        free(h);
        helpers[helper_count] = NULL;
    }
    while (helper_count < count) {
        helper *h = aligned_alloc(64, sizeof(helper));
        if (!h) break;
        atomic_init(&h->generation, 0);
        atomic_init(&h->sleeping, 0);
        atomic_init(&h->stop, 0);
        h->index = helper_count + 1;
        // Helpers take no asynchronous signals (as Dispatch's threads): those go to the
        // program's own threads, whatever the mask of the thread that happened to create us.
        sigset_t all, saved;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        int failed = pthread_create(&h->thread, NULL, helper_main, h);
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (failed) { free(h); break; }
        char name[16];
        snprintf(name, sizeof name, "dsan-pool-%ld", h->index);
        pthread_setname_np(h->thread, name);
        helpers[helper_count++] = h;
    }
    return helper_count;
}

int dsan_pool_run(long threads, long workers, dsan_pool_body body, void *context) {
    if (workers <= 0) return 2;
    if (inside_region || workers == 1) {   // nested (or nothing to share): inline, in order
        for (long t = 0; t < workers; t++) body(context, t);
        return 2;
    }
    if (pthread_mutex_trylock(&pool_lock) != 0) return 0;
    long wanted = (threads > workers ? threads : workers) - 1;
    if (resize(wanted) < workers - 1) {
        pthread_mutex_unlock(&pool_lock);
        return 0;
    }
    region_body = body;
    region_context = context;
    atomic_store_explicit(&remaining, (uint32_t)(workers - 1), memory_order_relaxed);
    for (long t = 1; t < workers; t++) signal_helper(helpers[t - 1]);   // seq_cst: publishes the region

    inside_region = 1;
    body(context, 0);
    inside_region = 0;

    uint32_t left = atomic_load_explicit(&remaining, memory_order_acquire);
    if (left != 0) {
        poller p = poller_start();
        while ((left = atomic_load_explicit(&remaining, memory_order_acquire)) != 0 && poll_again(&p)) {}
        while (left != 0) {
            atomic_store(&caller_sleeping, 1);
            left = atomic_load(&remaining);
            if (left != 0) futex_wait(&remaining, left);
            atomic_store(&caller_sleeping, 0);
            left = atomic_load_explicit(&remaining, memory_order_acquire);
        }
    }
    pthread_mutex_unlock(&pool_lock);
    return 1;
}

long dsan_pool_current_helper(void) { return current_helper; }

int dsan_pool_enter(void) {
    int previous = inside_region;
    inside_region = 1;
    return previous;
}

void dsan_pool_leave(int previous) { inside_region = previous; }

long dsan_pool_helper_count(void) {
    pthread_mutex_lock(&pool_lock);
    long n = helper_count;
    pthread_mutex_unlock(&pool_lock);
    return n;
}

#else   // no futex: the Swift side runs every region with Dispatch

int dsan_pool_run(long threads, long workers, dsan_pool_body body, void *context) {
    (void)threads; (void)workers; (void)body; (void)context;
    return 0;
}
long dsan_pool_current_helper(void) { return 0; }
long dsan_pool_helper_count(void) { return 0; }
int dsan_pool_enter(void) { return 0; }
void dsan_pool_leave(int previous) { (void)previous; }
long dsan_pool_spin_microseconds(void) { return 0; }
long dsan_pool_yield_microseconds(void) { return 0; }
void dsan_pool_set_wait_microseconds(long spin, long yield) { (void)spin; (void)yield; }
long dsan_pool_helper_sleeps(void) { return 0; }

#endif

long dsan_pool_take(long *counter, long step) { return __atomic_fetch_add(counter, step, __ATOMIC_RELAXED); }
long dsan_pool_arrive(long *counter) { return __atomic_fetch_add(counter, 1, __ATOMIC_ACQ_REL); }
