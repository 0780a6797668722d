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
import { constants as fsConstants, promises as fsp } from "node:fs"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { isMainThread, workerData } from "node:worker_threads"
import { Config, Context, Duration, Effect, Layer, Option, Schema } from "effect"
import { InvalidOptions, ThreadFailure } from "./NamespaceError.ts"
import * as observe from "./internal/observe.ts"
import { PinnedThreads, type Stats } from "./internal/service.ts"
import { PINNED_THREAD } from "./internal/protocol.ts"
import { bundlingHint } from "./internal/thread/bootstrap.ts"
import { defaultWorkerUrl } from "./internal/workerUrl.ts"
import { ThreadPool, withPool } from "./internal/thread/pool.ts"
import { timersOf } from "./internal/thread/timers.ts"
import { cStringProblem, decodeOptions, describe } from "./internal/validate.ts"

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
export const maxThreads = 256

const threads = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: maxThreads }))
const OptionsSchema = Schema.Struct({
  min: Schema.optional(threads),
  max: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: maxThreads }))),
  idleTimeToLive: Schema.optional(Schema.Unknown),
  workerUrl: Schema.optional(Schema.Unknown),
  startTimeout: Schema.optional(Schema.Unknown)
})

const operation = "PinnedThreads.layer"

/**
 * `workerUrl` as a `file:` URL, or why it is not one: a URL or a string, a `file:` URL with no
 * host or an absolute path (a relative one would depend on the working directory), no NUL byte
 * once decoded (`%00`).
 */
const workerUrlOf = (value: unknown): URL | InvalidOptions => {
  const refuse = (why: string) => new InvalidOptions({ operation, reason: `workerUrl ${why}` })
  const shown = value instanceof URL ? value.href : value
  if (typeof shown !== "string") {
    return refuse(`must be a file: URL or an absolute path, not ${value === null ? "null" : typeof value}`)
  }
  const nul = cStringProblem(shown)
  if (nul !== undefined) return refuse(nul)
  let url: URL
  if (value instanceof URL || /^[a-z][a-z0-9+.-]*:/i.test(shown)) {
    if (!URL.canParse(shown)) return refuse(`is not a URL: ${JSON.stringify(shown)}`)
    url = new URL(shown)
    if (url.protocol !== "file:") return refuse(`must be a file: URL or an absolute path, not ${JSON.stringify(shown)}`)
  } else {
    if (!path.isAbsolute(shown)) {
      return refuse(`must be a file: URL or an absolute path, not ${JSON.stringify(shown)} (a relative path would depend on the working directory)`)
    }
    url = pathToFileURL(shown)
  }
  let file: string
  try {
    file = fileURLToPath(url)
  } catch (error) {
    // A host (file://host/...), or an encoded "/".
    return refuse(`is not a local file: ${JSON.stringify(shown)}: ${(error as Error).message}`)
  }
  const decoded = cStringProblem(file)
  return decoded === undefined ? url : refuse(decoded)
}

/** The options, checked: whole numbers in range, `min <= max`, a duration that is one, a file: URL. */
const validOptions = (
  options: Options
): Effect.Effect<{ min: number; max: number; idleTimeToLiveMs: number; startTimeoutMs: number; workerUrl: URL | undefined }, InvalidOptions> =>
  Effect.gen(function*() {
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
      return yield* new InvalidOptions({ operation, reason: `idleTimeToLive must be a duration of 0 or more, not ${describe(decoded.idleTimeToLive)}` })
    }
    const start = decoded.startTimeout === undefined
      ? Option.some(Duration.seconds(30))
      : Duration.fromInput(decoded.startTimeout as Duration.Input)
    const startTimeoutMs = Option.isSome(start) ? Duration.toMillis(start.value) : Number.NaN
    // setTimeout's own limit, about 24.8 days.
    if (!(startTimeoutMs > 0 && startTimeoutMs <= 2 ** 31 - 1)) {
      return yield* new InvalidOptions({ operation, reason: `startTimeout must be a duration above 0 and at most 24 days, not ${describe(decoded.startTimeout)}` })
    }
    let workerUrl: URL | undefined
    if (decoded.workerUrl !== undefined) {
      const checked = workerUrlOf(decoded.workerUrl)
      if (checked instanceof InvalidOptions) return yield* checked
      workerUrl = checked
    }
    return { min, max: decoded.max ?? Math.max(4, min), idleTimeToLiveMs, startTimeoutMs, workerUrl }
  })

/**
 * The worker script, checked when the layer is built: a regular file this program can open now.
 * Missing, it is named in the failure with what to do, rather than in every run's "Cannot find
 * module": an `InvalidOptions` when the program gave it, a `ThreadFailure` when it is the default
 * (gonso bundled without its worker).
 */
const checkWorker = (given: URL | undefined): Effect.Effect<URL, InvalidOptions | ThreadFailure> => {
  const url = given ?? defaultWorkerUrl
  // A given URL is a file: URL already; gonso's own modules could be loaded from elsewhere.
  if (url.protocol !== "file:") {
    return Effect.fail(new ThreadFailure({ reason: `gonso's worker script ${url.href} is not a file; ${bundlingHint}` }))
  }
  const file = fileURLToPath(url)
  return Effect.tryPromise({
    try: async () => {
      // Non-blocking: opening a FIFO would otherwise wait for a writer.
      const handle = await fsp.open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK)
      try {
        const stats = await handle.stat()
        if (!stats.isFile()) throw Object.assign(new Error("not a regular file"), { code: "ENOTREG" })
      } finally {
        await handle.close()
      }
      return url
    },
    catch: (error) => {
      const code = (error as NodeJS.ErrnoException)?.code
      // Out of fds or memory, say: nothing is wrong with the file, and nothing to say about bundles.
      if (code === undefined || !notThere.has(code)) {
        return new ThreadFailure({ reason: `gonso's worker script ${file} could not be checked: ${(error as Error)?.message ?? String(error)}` })
      }
      const why = code === "ENOTREG" ? "is not a regular file" : `cannot be read (${code})`
      return given === undefined
        ? new ThreadFailure({ reason: `gonso's worker script ${file} ${why}; ${bundlingHint}` })
        : new InvalidOptions({
          operation,
          reason: `workerUrl ${file} ${why}: it must name gonso's worker script, gonso/worker (see gonso's docs/bundling.md)`
        })
    }
  })
}

/** The errors of opening a worker script that say it is not there, or not one that can be run. */
const notThere = new Set(["ENOENT", "ENOTDIR", "ENOTREG", "EACCES", "EPERM", "ELOOP", "ENAMETOOLONG", "ENXIO"])

/**
 * A layer built on one of gonso's own pinned threads: code on a pinned thread must start no
 * threads, and when it is the program itself, run there because its `workerUrl` names the program
 * rather than gonso's worker, each thread would run the program again and start a thread of its
 * own, without end. Refused, so that such a thread ends and fails to start instead.
 */
const onPinnedThread = (): boolean =>
  !isMainThread && (workerData as { gonso?: unknown } | null)?.gonso === PINNED_THREAD

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
 * `ThreadFailure`, naming the file.
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
    if (onPinnedThread()) {
      return yield* new ThreadFailure({
        reason: "PinnedThreads.layer was built on a pinned thread, where no thread may be started: most likely the workerUrl of the layer that started this thread names the program itself, not gonso's worker (gonso/worker; see gonso's docs/bundling.md)"
      })
    }
    const { workerUrl: given, ...limits } = yield* validOptions(options)
    const workerUrl = yield* checkWorker(given)
    yield* Effect.promise(() => fsp.access("/"))
    // The pool reports each thread's life with the services the layer is built with: the
    // user's tracer, logger and metric registry.
    const context = yield* Effect.context<never>()
    const pool = yield* Effect.acquireRelease(
      Effect.try({
        try: () =>
          new ThreadPool({
            ...limits,
            workerUrl,
            report: observe.reporter(context),
            latency: observe.latency(context),
            timers: timersOf(context)
          }),
        // A TypeScript worker's modules are read here, before any thread starts (see ThreadPool).
        catch: (error) => new ThreadFailure({ reason: `could not read the worker's modules: ${(error as Error)?.message ?? String(error)}` })
      }),
      (pool) => Effect.promise(() => pool.close())
    )
    const unregister = observe.registerGauges(context, pool)
    yield* Effect.addFinalizer(() => Effect.sync(unregister))
    return withPool(PinnedThreads.of({ stats: Effect.sync(() => pool.counts()) }), pool)
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
