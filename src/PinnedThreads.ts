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
import { Config, type Duration, Effect, Layer } from "effect"
import type { InvalidOptions, ThreadFailure, UnsupportedRuntime } from "./NamespaceError.ts"
import * as observe from "./internal/observe.ts"
import { PinnedThreads, type Stats } from "./internal/service.ts"
import * as internal from "./internal/thread/layer.ts"

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
  /**
   * How long a thread above `min` may stay idle before it is retired (default 30 seconds). Each
   * thread that ends, retired or dropped, leaves about 45 KB behind in koffi (see
   * docs/reliability.md): a program whose load comes in bursts keeps its threads with a longer
   * time, or with `min` equal to `max`.
   */
  readonly idleTimeToLive?: Duration.Input | undefined
  /**
   * The script the pinned threads run: gonso's worker, `gonso/worker` (`dist/internal/worker/main.js`
   * in the package), as a `file:` URL, or a `file:` URL string or absolute path. Leave it out
   * (the default) to use the worker beside gonso's own modules, which is where it is unless gonso
   * was bundled into the program: a bundler inlines gonso's modules but not the worker, which
   * Node loads by its URL. Bundle `gonso/worker` as an entry of its own and pass its URL here
   * (see docs/bundling.md).
   *
   * The layer checks, when it is built, that the file is there and can be read: a missing
   * worker fails the layer with `InvalidOptions` (a `workerUrl` given) or `ThreadFailure` (the
   * default), naming the file, instead of every later run failing with "Cannot find module".
   *
   * @example
   * ```ts
   * // main.ts, bundled by esbuild with gonso/worker as a second entry, named gonso-worker.js
   * import { Effect } from "effect"
   * import { NamespaceSet, PinnedThreads, Task } from "gonso"
   *
   * const PinnedThreadsLive = PinnedThreads.layer({
   *   workerUrl: new URL("./gonso-worker.js", import.meta.url)
   * })
   *
   * const program = NamespaceSet.current(["net"]).pipe(
   *   Effect.flatMap(NamespaceSet.run(Task.tid)),
   *   Effect.scoped,
   *   Effect.provide(PinnedThreadsLive)
   * )
   * ```
   */
  readonly workerUrl?: URL | string | undefined
  /**
   * How long a new thread may take to begin as gonso's worker before it is terminated and its
   * start counted as failed (default 30 seconds; a Worker usually starts in tens of
   * milliseconds). It bounds the wait of callers when `workerUrl` names a script that never
   * reports, such as a server. A thread that has begun as gonso's worker is not terminated before
   * it reports ready or exits, however long that takes: terminating a thread while it loads
   * koffi's native addon aborts the whole process.
   */
  readonly startTimeout?: Duration.Input | undefined
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
export const maxThreads: 256 = internal.maxThreads

export { PinnedThreads } from "./internal/service.ts"
export type { Stats } from "./internal/service.ts"

/**
 * Builds the service. Before any thread exists it starts libuv's shared thread pool from the main
 * thread, in the host namespaces: the pool's threads keep the namespaces they were born in for the
 * life of the process, and were a pinned thread inside a namespace the first to need them, every
 * later asynchronous fs call of the program would run inside that namespace.
 *
 * Closing the layer cancels the tasks still running, terminates every thread, and returns once the
 * kernel has released them. A thread still starting is stopped once it has reported ready (one
 * that has not begun as gonso's worker yet is terminated at once).
 *
 * Options that do not fit (`min` or `max` not a whole number in range, `min` above `max`, an
 * `idleTimeToLive` that is no duration, a `startTimeout` that is no duration above 0, a
 * `workerUrl` that is not a `file:` URL or an absolute path or names no file that can be read, an
 * unknown option) fail the layer with `InvalidOptions`. Without a `workerUrl`, a worker script missing from where gonso's modules are
 * (gonso bundled into the program without it, see docs/bundling.md) fails the layer with
 * `ThreadFailure`, naming the file. A runtime without what every thread needs (`Worker`,
 * `SharedArrayBuffer`, `Atomics.waitAsync`) fails it with `UnsupportedRuntime`, naming the runtime
 * and what is missing (docs/runtimes.md).
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
export const layer = (options: Options = {}): Layer.Layer<PinnedThreads, ThreadFailure | InvalidOptions | UnsupportedRuntime> =>
  Layer.effect(PinnedThreads, internal.make(options))

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
export const layerConfig = (options: Config.Wrap<Options>): Layer.Layer<PinnedThreads, ThreadFailure | InvalidOptions | UnsupportedRuntime | Config.ConfigError> =>
  Layer.effect(PinnedThreads, Effect.flatMap(Config.unwrap(options), internal.make))

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
 *   return yield* PinnedThreads.stats  // { idle: 1, busy: 0, pending: 0, spawned: 1, dropped: 0, droppedByReason: {}, retired: 0 }
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
 * | `gonso_pinned_threads_dropped_total` | counter | `reason`: no-restore, restore-failed, tainted, moved, interrupted, died, exited, failed-to-start |
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
