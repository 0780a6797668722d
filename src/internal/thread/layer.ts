/**
 * What `PinnedThreads.layer` builds: its options checked (whole numbers in range, durations, a
 * `file:` worker URL that names a file there is), libuv's pool started in the host namespaces,
 * and the pool of threads made, with the layer's tracer, logger, metrics and clock. The service
 * value carries the pool (see `pool.ts`).
 *
 * @internal
 */
import { constants as fsConstants, promises as fsp } from "node:fs"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { isMainThread, Worker, workerData } from "node:worker_threads"
import { Duration, Effect, Option, Schema } from "effect"
import { InvalidOptions, ThreadFailure, type UnsupportedRuntime } from "../errors.ts"
import * as observe from "../observe.ts"
import { PINNED_THREAD } from "../protocol.ts"
import { missingForThreads } from "../runtime.ts"
import { PinnedThreads } from "../service.ts"
import { cStringProblem, decodeOptions, describe } from "../validate.ts"
import { defaultWorkerUrl } from "../workerUrl.ts"
import { bundlingHint } from "./bootstrap.ts"
import { ThreadPool, withPool } from "./pool.ts"
import { timersOf } from "./timers.ts"

/** The most threads a layer may have. */
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
  options: object
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

/** The service of `PinnedThreads.layer`, built from options the caller gave (checked here). */
export const make = (options: object) =>
  Effect.gen(function*() {
    if (onPinnedThread()) {
      return yield* new ThreadFailure({
        reason: "PinnedThreads.layer was built on a pinned thread, where no thread may be started: most likely the workerUrl of the layer that started this thread names the program itself, not gonso's worker (gonso/worker; see gonso's docs/bundling.md)"
      })
    }
    const unsupported: UnsupportedRuntime | undefined = missingForThreads(operation, Worker)
    if (unsupported !== undefined) return yield* unsupported
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

