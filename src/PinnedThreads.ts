/**
 * The pinned threads that namespace work runs on: a pool of Workers, each owning one OS thread
 * for its life, kept by an Effect `Pool` and provided as a Layer.
 *
 * A thread comes back to the pool only after it has returned to its baseline namespaces and the
 * kernel confirms it; otherwise it is dropped (terminated) and the pool replaces it in the
 * background. Spawning a Worker costs tens of milliseconds, so reuse is what makes `run` cheap.
 *
 * @since 0.1.0
 */
import { promises as fsp } from "node:fs"
import { Context, Duration, Effect, Exit, Layer, Pool, type Scope } from "effect"
import type { ThreadFailure } from "./NamespaceError.ts"
import { PinnedThread } from "./internal/thread.ts"

/**
 * Options of {@link layer}.
 *
 * @since 0.1.0
 */
export interface Options {
  /** Threads kept ready even when idle (default 1). */
  readonly min?: number | undefined
  /** Threads at most; more concurrent tasks wait (default 4). */
  readonly max?: number | undefined
  /** How long a thread above `min` may stay idle before it is retired (default 30 seconds). */
  readonly idleTimeToLive?: Duration.Input | undefined
}

/**
 * A point-in-time count of the service's threads.
 *
 * @since 0.1.0
 */
export interface Stats {
  /** Threads waiting for work. */
  readonly idle: number
  /** Threads running a task or held by `NamespaceSet.enter`. */
  readonly busy: number
  /** Tasks waiting for a thread. */
  readonly pending: number
  /** Threads started since the layer was built. */
  readonly spawned: number
  /** Threads terminated because they could not be restored (or were not to be). */
  readonly dropped: number
  /** Threads terminated because they were idle past their time to live, or at shutdown. */
  readonly retired: number
}

/**
 * One pinned thread, leased from the service for the duration of a `use`.
 *
 * @since 0.1.0
 */
export type Thread = PinnedThread

/**
 * The service. Most code never calls it directly: `NamespaceSet.run`, `enter` and `unshare` do.
 *
 * @since 0.1.0
 */
export class PinnedThreads extends Context.Service<PinnedThreads, {
  /**
   * Leases a thread for `f`. Afterwards the thread goes back to the pool only if `f` succeeded
   * or failed with a typed error and the thread is clean; if `f` died, was interrupted, or the
   * thread was marked for dropping, the thread is terminated and replaced in the background.
   */
  readonly use: <A, E, R>(f: (thread: Thread) => Effect.Effect<A, E, R>) => Effect.Effect<A, E | ThreadFailure, R>
  /** Leases a thread for the life of the current Scope, under the same rules as `use`. */
  readonly lease: Effect.Effect<Thread, ThreadFailure, Scope.Scope>
  /** Counts of idle, busy, spawned and dropped threads. */
  readonly stats: Effect.Effect<Stats>
}>()("gonso/PinnedThreads") {}

/**
 * Builds the service. Before any thread exists it starts libuv's shared thread pool from the main
 * thread, in the host namespaces: the pool's threads keep the namespaces they were born in for the
 * life of the process, and were a pinned thread inside a namespace the first to need them, every
 * later asynchronous fs call of the program would run inside that namespace.
 *
 * @since 0.1.0
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * const program = NamespaceSet.current(["net"]).pipe(
 *   Effect.flatMap((set) => NamespaceSet.run(set, Task.identify)),
 *   Effect.scoped,
 *   Effect.provide(PinnedThreads.layer({ min: 1, max: 2 }))
 * )
 * ```
 */
export const layer = (options: Options = {}): Layer.Layer<PinnedThreads, ThreadFailure> =>
  Layer.effect(
    PinnedThreads,
    Effect.gen(function*() {
      yield* Effect.promise(() => fsp.access("/"))
      const counters = { spawned: 0, dropped: 0, retired: 0 }
      const acquire = Effect.acquireRelease(
        Effect.tap(PinnedThread.spawn, () => Effect.sync(() => counters.spawned++)),
        (thread) =>
          Effect.tap(thread.shutdown, () =>
            Effect.sync(() => {
              if (thread.dropReason === undefined) counters.retired++
              else counters.dropped++
            }))
      )
      const min = options.min ?? 1
      const pool = yield* Pool.makeWithTTL({
        acquire,
        min,
        max: Math.max(options.max ?? 4, min, 1),
        timeToLive: options.idleTimeToLive ?? Duration.seconds(30)
      })
      // Runs before the lease is returned: a thread that must not be reused is invalidated first,
      // so the pool terminates it on release and starts a replacement in the background.
      const settle = (thread: Thread, exit: Exit.Exit<unknown, unknown>) => {
        if (Exit.isFailure(exit) && (Exit.hasInterrupts(exit) || Exit.hasDies(exit))) {
          thread.dropReason ??= Exit.hasInterrupts(exit) ? "interrupted during a task" : "the task died"
        }
        return thread.dropReason === undefined ? Effect.void : Pool.invalidate(pool, thread)
      }
      const use = <A, E, R>(f: (thread: Thread) => Effect.Effect<A, E, R>) =>
        Pool.use(pool, (thread) => Effect.onExit(f(thread), (exit) => settle(thread, exit)))
      const lease = Effect.tap(Pool.get(pool), (thread) => Effect.addFinalizer((exit) => settle(thread, exit)))
      const stats = Effect.map(Pool.stats(pool), (poolStats): Stats => ({
        idle: poolStats.idle,
        busy: poolStats.used,
        pending: poolStats.pending,
        ...counters
      }))
      return PinnedThreads.of({ use, lease, stats })
    })
  )

/**
 * The current counts of the service's threads.
 *
 * @since 0.1.0
 */
export const stats: Effect.Effect<Stats, never, PinnedThreads> = PinnedThreads.use((service) => service.stats)
