// dsan's persistent worker pool behind `Parallel.forEach` / `Parallel.forEachWorker`.
//
// A region is `workers` calls body(context, t), t = 0 on the calling thread and t ≥ 1 on the
// pool's helper thread t, always the same thread for the same t (static assignment: fixed chunks,
// the same bits on any run; `Parallel.forEachWorkerDynamically` has each share take items from a
// shared counter instead, with `dsan_pool_take`, where an item's result does not depend on who
// runs it). Helpers are long-lived: after a region a helper polls its own generation counter for a
// bounded time (tens of µs with the CPU's pause instruction, then up to 2 ms yielding the core
// between polls), so the next region starts without a system call, then sleeps on a futex. The
// caller waits for the helpers the same way: bounded polling, then futex. Docs/performance.md ("Threads") says why.
//
// Linux only (futex); elsewhere `dsan_pool_run` returns 0 and the Swift side uses Dispatch.
#ifndef DSAN_THREAD_POOL_H
#define DSAN_THREAD_POOL_H

#ifdef __cplusplus
extern "C" {
#endif

/// One worker's share of a region: `worker` is 0..<workers.
typedef void (*dsan_pool_body)(void *context, long worker);

/// Runs body(context, t) for every t in 0..<workers and returns when all have returned: t = 0 on
/// the calling thread, t ≥ 1 on helper thread t. The pool first grows or shrinks to
/// max(threads, workers) − 1 helpers (created lazily, stopped and joined when `threads` fell).
///
/// Returns 1 when every t ran on the pool. A call from inside a region (from a body, on the
/// caller or a helper), or with one worker, runs body(context, 0), …, (workers − 1) in order on
/// the calling thread and returns 2: nested regions are serial, never a deadlock. Returns 0,
/// having called nothing, when the pool is serving a region of another thread, or a helper thread
/// could not be created, or on a system without futexes: the caller then runs the region some
/// other way (Swift: Dispatch).
int dsan_pool_run(long threads, long workers, dsan_pool_body body, void *context);

/// Marks the calling thread as running a region's body (returns the previous mark, for
/// `dsan_pool_leave`): the shares of a region run another way (Swift: Dispatch, when the pool was
/// busy) call this, so that their nested calls run inline as they do on the pool.
int dsan_pool_enter(void);
/// Restores the mark `dsan_pool_enter` returned.
void dsan_pool_leave(int previous);

/// The helper index (1, 2, …) of the calling thread, or 0 when it is not one of the pool's threads.
long dsan_pool_current_helper(void);

/// Atomically adds `step` to *counter and returns its value before: the shared job counter of
/// `Parallel.forEachWorkerDynamically`, whose workers take their next jobs from it.
long dsan_pool_take(long *counter, long step);
/// Atomically adds 1 to *counter and returns its value before, with acquire-release order: the
/// worker that sees n − 1 is the last of n to arrive and sees every write the others made before
/// they arrived (the one-block Winograd phase's panels, whose last part does the output transform).
long dsan_pool_arrive(long *counter);

/// Helper threads alive now (tests).
long dsan_pool_helper_count(void);

/// How long a helper waiting for work, or a caller waiting for its helpers, polls before it sleeps
/// on a futex: first it spins with the CPU's pause instruction for `dsan_pool_spin_microseconds`
/// (default 50, or `DSAN_POOL_SPIN_US` at the first region, capped at 1000), then it polls with
/// sched_yield between checks for `dsan_pool_yield_microseconds` more (default 2000, or
/// `DSAN_POOL_YIELD_US`, capped at 100000; a value that is not a whole number stops the process
/// with a message): a core nobody else wants stays with the pool, so the
/// next region after a serial stretch of a few hundred µs starts without a futex wake-up (tens of
/// µs or more on a virtual machine), and a core another thread wants goes to it.
long dsan_pool_spin_microseconds(void);
long dsan_pool_yield_microseconds(void);
/// Sets both bounds (µs) for the rest of the process (benchmarks and tests compare them).
void dsan_pool_set_wait_microseconds(long spin, long yield);
/// Times a helper has gone to sleep on its futex since the process started (each costs the next
/// region it takes part in a wake-up).
long dsan_pool_helper_sleeps(void);

#ifdef __cplusplus
}
#endif

#endif
