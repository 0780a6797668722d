/**
 * The pinned threads that namespace work runs on: Workers, each owning one OS thread for its life,
 * started, shared, leased and dropped by the service this module provides as a Layer.
 *
 * A thread serves requests from many callers, batched per round trip, and stays inside a set
 * between back-to-back requests for it. Before it serves another set, and before it goes idle, it
 * returns to its baseline namespaces and the kernel confirms it; otherwise it is dropped
 * (terminated) and replaced in the background. User code (module tasks) and `NamespaceSet.enter`
 * get a thread to themselves. Starting a Worker costs tens of milliseconds, so reuse is what makes
 * `run` cheap.
 *
 * @since 0.1.0
 */
import { promises as fsp } from "node:fs"
import { Config, Context, Duration, Effect, Layer, Option, Schema } from "effect"
import { InvalidOptions, type ThreadFailure } from "./NamespaceError.ts"
import * as observe from "./internal/observe.ts"
import { pools, ThreadPool } from "./internal/thread.ts"
import { decodeOptions } from "./internal/validate.ts"

/**
 * Options of {@link layer}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Threads kept ready even when idle (default 1): a whole number from 0 to `max`. */
  readonly min?: number | undefined
  /**
   * Threads at most; more concurrent leases wait (default 4, or `min` if larger): a whole number
   * from 1 to {@link maxThreads}. Each thread costs about 24 MB and 14 fds.
   */
  readonly max?: number | undefined
  /** How long a thread above `min` may stay idle before it is retired (default 30 seconds). */
  readonly idleTimeToLive?: Duration.Input | undefined
}

/**
 * The most threads a layer may have (`max`).
 *
 * @since 0.1.0
 * @example
 * ```ts
 * import * as os from "node:os"
 * import { PinnedThreads } from "gonso"
 *
 * // Sixteen threads per core, within what a layer allows
 * const PinnedThreadsLive = PinnedThreads.layer({ max: Math.min(16 * os.availableParallelism(), PinnedThreads.maxThreads) })
 * ```
 */
export const maxThreads = 256

const threads = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: maxThreads }))
const OptionsSchema = Schema.Struct({
  min: Schema.optional(threads),
  max: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: maxThreads }))),
  idleTimeToLive: Schema.optional(Schema.Unknown)
})

/** The options, checked: whole numbers in range, `min <= max`, a duration that is one. */
const validOptions = (options: Options): Effect.Effect<{ min: number; max: number; idleTimeToLiveMs: number }, InvalidOptions> =>
  Effect.gen(function*() {
    const operation = "PinnedThreads.layer"
    const decoded = yield* decodeOptions(operation, OptionsSchema, options)
    const min = decoded.min ?? 1
    if (decoded.max !== undefined && min > decoded.max) {
      return yield* new InvalidOptions({ operation, reason: `min (${min}) is larger than max (${decoded.max})` })
    }
    const ttl = decoded.idleTimeToLive === undefined
      ? Option.some(Duration.seconds(30))
      : Duration.fromInput(decoded.idleTimeToLive as Duration.Input)
    const idleTimeToLiveMs = Option.isSome(ttl) ? Duration.toMillis(ttl.value) : Number.NaN
    if (!(idleTimeToLiveMs >= 0)) {
      return yield* new InvalidOptions({ operation, reason: `idleTimeToLive must be a duration of 0 or more, not ${JSON.stringify(String(decoded.idleTimeToLive))}` })
    }
    return { min, max: decoded.max ?? Math.max(4, min), idleTimeToLiveMs }
  })

/**
 * A point-in-time count of the service's threads.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** Threads waiting for work. */
  readonly idle: number
  /** Threads serving requests or held by a lease (`NamespaceSet.enter`, a module task). */
  readonly busy: number
  /** Requests and leases waiting for a thread. */
  readonly pending: number
  /** Threads started since the layer was built. */
  readonly spawned: number
  /** Threads terminated because they could not be restored (or were not to be), or died. */
  readonly dropped: number
  /** Threads terminated because they were idle past their time to live, or at shutdown. */
  readonly retired: number
}

/**
 * The service. Most code never calls it directly: `NamespaceSet.run`, `enter` and `unshare` do.
 *
 * @since 0.1.0
 * @category services
 */
export class PinnedThreads extends Context.Service<PinnedThreads, {
  /** Counts of idle, busy, spawned, dropped and retired threads. */
  readonly stats: Effect.Effect<Stats>
}>()("gonso/PinnedThreads") {}

/**
 * Builds the service. Before any thread exists it starts libuv's shared thread pool from the main
 * thread, in the host namespaces: the pool's threads keep the namespaces they were born in for the
 * life of the process, and were a pinned thread inside a namespace the first to need them, every
 * later asynchronous fs call of the program would run inside that namespace.
 *
 * Closing the layer cancels the tasks still running, terminates every thread, and returns once the
 * kernel has released them.
 *
 * Options that do not fit (`min` or `max` not a whole number in range, `min` above `max`, an
 * `idleTimeToLive` that is no duration, an unknown option) fail the layer with `InvalidOptions`.
 *
 * @since 0.1.0
 * @category layers
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
export const layer = (options: Options = {}): Layer.Layer<PinnedThreads, ThreadFailure | InvalidOptions> =>
  Layer.effect(PinnedThreads, make(options))

/**
 * {@link layer}, with its options read from Effect `Config` (environment variables by default, or
 * any `ConfigProvider`), as `NodeHttpServer.layerConfig` does. Each option is a `Config` of its
 * own; options left out take their defaults.
 *
 * @since 0.1.0
 * @category layers
 * @example
 * ```ts
 * import { Config, Effect } from "effect"
 * import { NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * // GONSO_MAX_THREADS=8 GONSO_IDLE_TTL="10 seconds" node main.js
 * const PinnedThreadsLive = PinnedThreads.layerConfig({
 *   min: Config.Int("GONSO_MIN_THREADS").pipe(Config.withDefault(1)),
 *   max: Config.Int("GONSO_MAX_THREADS").pipe(Config.withDefault(4)),
 *   idleTimeToLive: Config.Duration("GONSO_IDLE_TTL").pipe(Config.withDefault("30 seconds"))
 * })
 *
 * const program = NamespaceSet.current(["net"]).pipe(
 *   Effect.flatMap(NamespaceSet.run(Task.tid)),
 *   Effect.scoped,
 *   Effect.provide(PinnedThreadsLive)
 * )
 * ```
 */
export const layerConfig = (options: Config.Wrap<Options>): Layer.Layer<PinnedThreads, ThreadFailure | InvalidOptions | Config.ConfigError> =>
  Layer.effect(PinnedThreads, Effect.flatMap(Config.unwrap(options), make))

const make = (options: Options) =>
  Effect.gen(function*() {
    const limits = yield* validOptions(options)
    yield* Effect.promise(() => fsp.access("/"))
    // The pool reports each thread's life with the services the layer is built with: the
    // user's tracer, logger and metric registry.
    const context = yield* Effect.context<never>()
    const pool = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new ThreadPool({
          ...limits,
          report: observe.reporter(context),
          latency: observe.latency(context)
        })
      ),
      (pool) => Effect.promise(() => pool.close())
    )
    const unregister = observe.registerGauges(context, pool)
    yield* Effect.addFinalizer(() => Effect.sync(unregister))
    const service = PinnedThreads.of({ stats: Effect.sync(() => pool.counts()) })
    pools.set(service, pool)
    return service
  })

/**
 * The current counts of the service's threads.
 *
 * @since 0.1.0
 * @category getters
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.current(["net"])
 *   yield* NamespaceSet.run(set, Task.tid)
 *   return yield* PinnedThreads.stats  // { idle: 1, busy: 0, pending: 0, spawned: 1, dropped: 0, retired: 0 }
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const stats: Effect.Effect<Stats, never, PinnedThreads> = PinnedThreads.use((service) => service.stats)

/**
 * gonso's metrics, as Effect `Metric`s: read them with `Metric.snapshot`, or export them with your
 * metrics exporter (see docs/observability.md). The gauges are read when metrics are snapshotted,
 * from the registry the layer was built with; the counters carry a `reason` attribute, the
 * histogram an `operation` attribute.
 *
 * | Metric | Kind | Attributes |
 * | --- | --- | --- |
 * | `gonso_pinned_threads_idle`, `_busy`, `_pending` | gauge | |
 * | `gonso_pinned_threads_spawned_total` | counter | `reason`: min, demand, replacement |
 * | `gonso_pinned_threads_dropped_total` | counter | `reason`: no-restore, restore-failed, tainted, interrupted, died, exited, failed-to-start, other |
 * | `gonso_pinned_threads_retired_total` | counter | `reason`: idle, shutdown |
 * | `gonso_run_duration_microseconds` | histogram | `operation` |
 * | `gonso_namespace_sets_open` | gauge | |
 * | `gonso_pid_inits_alive` | gauge | |
 *
 * @since 0.1.0
 * @category metrics
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { PinnedThreads } from "gonso"
 *
 * const dropped = Metric.value(PinnedThreads.metrics.threadsDropped)
 * const all = Metric.snapshot.pipe(
 *   Effect.map((snapshots) => snapshots.filter((snapshot) => snapshot.id.startsWith("gonso_")))
 * )
 * ```
 */
export const metrics = {
  threadsIdle: observe.threadsIdle,
  threadsBusy: observe.threadsBusy,
  threadsPending: observe.threadsPending,
  threadsSpawned: observe.threadsSpawned,
  threadsDropped: observe.threadsDropped,
  threadsRetired: observe.threadsRetired,
  runDuration: observe.runDuration,
  setsOpen: observe.setsOpen,
  initsAlive: observe.initsAlive
} as const
