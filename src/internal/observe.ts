/**
 * gonso's observability: its metrics (Effect `Metric`), the spans of operations that run on a
 * pinned thread, and the reporter through which the (callback-driven) thread pool records each
 * thread's start, drop and retirement with the services of the layer that built it: the user's
 * tracer, logger and metric registry.
 *
 * @internal
 */
import { Context, Effect, Metric, References, Tracer } from "effect"
import * as census from "./census.ts"
import type { NamespaceKind } from "./kind.ts"
import type { Member, TaskSpec } from "./protocol.ts"
import { describe, dropClass } from "./drop.ts"
import type { PoolEvent, ThreadPool } from "./thread/pool.ts"

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

/** Pinned threads waiting for work (read when metrics are snapshotted). */
export const threadsIdle = Metric.gauge("gonso_pinned_threads_idle", {
  description: "Pinned threads waiting for work"
})
/** Pinned threads serving requests or held by a lease. */
export const threadsBusy = Metric.gauge("gonso_pinned_threads_busy", {
  description: "Pinned threads serving requests or held by a lease"
})
/** Requests and leases waiting for a thread. */
export const threadsPending = Metric.gauge("gonso_pinned_threads_pending", {
  description: "Requests and leases waiting for a pinned thread"
})
/** Threads started, by `reason`: `min`, `demand` or `replacement`. */
export const threadsSpawned = Metric.counter("gonso_pinned_threads_spawned_total", {
  description: "Pinned threads started, by reason (min, demand, replacement)",
  incremental: true
})
/**
 * Threads dropped, by `reason`: `no-restore`, `restore-failed`, `tainted`, `moved`, `interrupted`,
 * `died`, `exited` or `failed-to-start` (the full reason is in the log line and the span).
 */
export const threadsDropped = Metric.counter("gonso_pinned_threads_dropped_total", {
  description: "Pinned threads dropped (terminated, not reused), by reason",
  incremental: true
})
/** Threads retired, by `reason`: `idle` (past their time to live) or `shutdown`. */
export const threadsRetired = Metric.counter("gonso_pinned_threads_retired_total", {
  description: "Pinned threads retired, by reason (idle, shutdown)",
  incremental: true
})
/** How long operations on a pinned thread take, from the caller's side, by `operation`. */
const histogramOptions = {
  description: "Latency of requests to a pinned thread (NamespaceSet.run and others), from posting to the answer, in microseconds",
  boundaries: [5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 50_000, 100_000, 1_000_000]
}
export const runDuration = Metric.histogram("gonso_run_duration_microseconds", histogramOptions)
/** Namespace sets whose fds are open in this process. */
export const setsOpen = Metric.gauge("gonso_namespace_sets_open", {
  description: "Namespace sets whose fds are open"
})
/** Init processes kept for pid namespaces, alive in this process. */
export const initsAlive = Metric.gauge("gonso_pid_inits_alive", {
  description: "Init processes kept alive for pid namespaces"
})

const byReason = new Map<string, Metric.Counter<number>>()
const withReason = (counter: Metric.Counter<number>, reason: string): Metric.Counter<number> => {
  const key = `${counter.id}\u0000${reason}`
  let metric = byReason.get(key)
  if (metric === undefined) {
    metric = Metric.withAttributes(counter, { reason })
    byReason.set(key, metric)
  }
  return metric
}

const byOperation = new Map<string, Metric.Histogram<number>>()
/** The histogram of one operation: a metric of its own, so that an update merges no attributes. */
const durationOf = (operation: string): Metric.Histogram<number> => {
  let metric = byOperation.get(operation)
  if (metric === undefined) {
    metric = Metric.histogram(runDuration.id, { ...histogramOptions, attributes: { operation } })
    byOperation.set(operation, metric)
  }
  return metric
}

// ---------------------------------------------------------------------------------------------
// Spans
// ---------------------------------------------------------------------------------------------

/** What spans need of a set: its kinds (sets are defined in `set.ts`, which uses this module). */
type NamespaceSet = { readonly kinds: ReadonlyArray<NamespaceKind> }

/** The namespace ids of a set, made once per set. */
const idsOf = new WeakMap<object, ReadonlyArray<string>>()
const namespaceIds = (set: NamespaceSet, members: () => Iterable<Member>): ReadonlyArray<string> => {
  let ids = idsOf.get(set)
  if (ids === undefined) {
    ids = [...members()].map((member) => `${member.kind}:[${member.ino}]`)
    idsOf.set(set, ids)
  }
  return ids
}

/** The attributes every span of an operation on a set carries. */
export const setAttributes = (
  operation: string,
  set: NamespaceSet,
  members: () => Iterable<Member>
): Record<string, unknown> => ({
  "gonso.operation": operation,
  "gonso.kinds": set.kinds,
  "gonso.namespaces": namespaceIds(set, members)
})

/** Whether spans made here could be seen: a tracer other than Effect's native one, and tracing on. */
const observable = (fiber: { getRef: <A>(ref: Context.Reference<A>) => A }): boolean =>
  fiber.getRef(Tracer.Tracer) !== Tracer.nativeTracer && fiber.getRef(References.TracerEnabled)

/**
 * An operation on a pinned thread, traced as a span named after it when a tracer is installed.
 * With Effect's native tracer (no tracer installed: nobody can see its spans) no span is made, and
 * the hot path pays for one check. (Its latency is recorded by the pool, see {@link latency}.)
 */
export const traceRun = <A, E, R>(
  operation: string,
  set: NamespaceSet,
  members: () => Iterable<Member>,
  task: TaskSpec,
  restore: boolean,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.withFiber((fiber) =>
    observable(fiber)
      ? Effect.withSpan(effect, operation, {
        kind: "client",
        attributes: { ...setAttributes(operation, set, members), "gonso.task": task.op, "gonso.restore": restore }
      })
      : effect
  )

/**
 * A public operation traced as a span named after it, with `attributes`; with no tracer installed
 * it runs as it is.
 */
export const traced = <A, E, R>(
  operation: string,
  attributes: () => Record<string, unknown>,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.withFiber((fiber) =>
    observable(fiber)
      ? Effect.withSpan(effect, operation, { attributes: { "gonso.operation": operation, ...attributes() } })
      : effect
  )

/** Adds the pinned thread's tid to the current span, if it is one anybody can see. */
export const annotateTid = (tid: number): Effect.Effect<void> =>
  Effect.withFiber((fiber) => observable(fiber) ? Effect.annotateCurrentSpan("gonso.thread.tid", tid) : Effect.void)

// ---------------------------------------------------------------------------------------------
// The thread pool's reporter
// ---------------------------------------------------------------------------------------------

/** What a layer hands its thread pool to record each request's latency into {@link runDuration}. */
export const latency = (context: Context.Context<never>) => (operation: string, micros: number): void => {
  try {
    durationOf(operation).updateUnsafe(micros, context)
  } catch {
    // Observing must never break the pool.
  }
}

/**
 * What a layer hands its thread pool to report each thread's life: counters, a debug log line when
 * a thread starts, a warning (and a span, `PinnedThreads.drop`) when one is dropped, all run with
 * `context`, the services of the layer being built.
 */
export const reporter = (context: Context.Context<never>) => {
  const run = Effect.runSyncWith(context)
  const record = (effect: Effect.Effect<void>) => {
    try {
      run(effect)
    } catch {
      // Observing must never break the pool.
    }
  }
  return (event: PoolEvent): void => {
    switch (event.type) {
      case "spawned":
        withReason(threadsSpawned, event.reason).updateUnsafe(1, context)
        return record(Effect.logDebug("gonso: pinned thread started").pipe(
          Effect.annotateLogs({ tid: event.tid, reason: event.reason })
        ))
      case "startFailed":
        withReason(threadsDropped, "failed-to-start").updateUnsafe(1, context)
        // The callers waiting for it get a typed ThreadFailure; this is for whoever debugs it.
        return record(Effect.logDebug("gonso: a pinned thread could not start").pipe(
          Effect.annotateLogs({ reason: event.reason })
        ))
      case "dropped": {
        const reasonClass = dropClass(event.reason)
        const reason = describe(event.reason)
        withReason(threadsDropped, reasonClass).updateUnsafe(1, context)
        return record(Effect.logWarning("gonso: pinned thread dropped").pipe(
          Effect.annotateLogs({ tid: event.tid, reason, reasonClass, drop: event.reason }),
          Effect.withSpan("PinnedThreads.drop", {
            attributes: { "gonso.thread.tid": event.tid, "gonso.drop.reason": reason, "gonso.drop.class": reasonClass, "gonso.drop": event.reason }
          })
        ))
      }
      case "retired":
        withReason(threadsRetired, event.reason).updateUnsafe(1, context)
        return record(Effect.logDebug("gonso: pinned thread retired").pipe(
          Effect.annotateLogs({ tid: event.tid, reason: event.reason })
        ))
      case "stuck":
        return record(Effect.logWarning("gonso: a dropped pinned thread is blocked in a system call; it ends when the call returns").pipe(
          Effect.annotateLogs({ tid: event.tid, waitedMs: event.waitedMs })
        ))
    }
  }
}

/**
 * Registers the gauges read at snapshot time (threads idle, busy and pending; sets open; inits
 * alive) in the registry of `context`; returns what unregisters them.
 */
export const registerGauges = (context: Context.Context<never>, pool: ThreadPool): () => void => {
  const gauge = (metric: Metric.Gauge<number>, read: () => number) =>
    Metric.registerUnsafe(metric, context, {
      get: () => ({ value: read() }),
      update: () => {},
      modify: () => {}
    })
  const registrations = [
    gauge(threadsIdle, () => pool.counts().idle),
    gauge(threadsBusy, () => pool.counts().busy),
    gauge(threadsPending, () => pool.counts().pending),
    gauge(setsOpen, census.setsOpen),
    gauge(initsAlive, census.initsAlive)
  ]
  return () => registrations.forEach((registration) => registration.remove())
}
