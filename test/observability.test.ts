/**
 * Spans, metrics and logs: a recording tracer, a fresh metric registry and a recording logger are
 * provided to the layer and the program, as a user's OpenTelemetry setup would be.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Logger, Metric, References, Tracer } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import { eventually } from "./helpers.ts"

interface Recorded {
  readonly name: string
  readonly attributes: Map<string, unknown>
  readonly ended: () => boolean
}

const recording = () => {
  const spans: Array<Recorded> = []
  const tracer = Tracer.make({
    span: (options) => {
      const span = new Tracer.NativeSpan(options)
      spans.push({ name: span.name, attributes: span.attributes, ended: () => span.status._tag === "Ended" })
      return span
    }
  })
  const logs: Array<{ level: string; message: unknown; annotations: Record<string, unknown> }> = []
  const logger = Logger.make((options) => {
    logs.push({
      level: options.logLevel,
      message: options.message,
      annotations: { ...options.fiber.getRef(References.CurrentLogAnnotations) }
    })
  })
  const registry: Metric.MetricRegistry = new Map()
  const services = Layer.mergeAll(
    Layer.succeed(Tracer.Tracer, tracer),
    Layer.succeed(Metric.MetricRegistry, registry),
    Layer.succeed(References.MinimumLogLevel, "Debug"),
    Logger.layer([logger])
  )
  const layer = PinnedThreads.layer({ min: 1, max: 2 }).pipe(Layer.provideMerge(services))
  return { spans, logs, registry, layer }
}

const counterBy = (snapshots: ReadonlyArray<Metric.Metric.Snapshot>, id: string, reason: string): number => {
  let total = 0
  for (const snapshot of snapshots) {
    if (snapshot.id === id && snapshot.attributes?.reason === reason && snapshot.type === "Counter") {
      total += Number(snapshot.state.count)
    }
  }
  return total
}

describe("observability", () => {
  it.live("a run produces its span with its attributes, and its latency in the histogram", () => {
    const { spans, layer } = recording()
    return Effect.gen(function*() {
      const set = yield* NamespaceSet.current(["net", "uts"])
      const netId = yield* NamespaceSet.id(set, "net")
      yield* NamespaceSet.run(set, Task.tid)
      const span = spans.find((each) => each.name === "NamespaceSet.run")
      assert.isDefined(span)
      assert.isTrue(span!.ended())
      assert.strictEqual(span!.attributes.get("gonso.operation"), "NamespaceSet.run")
      assert.strictEqual(span!.attributes.get("gonso.task"), "tid")
      assert.strictEqual(span!.attributes.get("gonso.restore"), true)
      assert.deepStrictEqual(span!.attributes.get("gonso.kinds"), ["uts", "net"])
      assert.include(span!.attributes.get("gonso.namespaces") as ReadonlyArray<string>, netId)

      const snapshots = yield* Metric.snapshot
      const histogram = snapshots.find((each) =>
        each.id === "gonso_run_duration_microseconds" && each.attributes?.operation === "NamespaceSet.run"
      )
      assert.isDefined(histogram)
      assert.strictEqual(histogram!.type, "Histogram")
      if (histogram!.type === "Histogram") assert.isAtLeast(histogram!.state.count, 1)
      const idle = snapshots.find((each) => each.id === "gonso_pinned_threads_idle")
      assert.isDefined(idle)
      const open = snapshots.find((each) => each.id === "gonso_namespace_sets_open")
      assert.isTrue(open?.type === "Gauge" && Number(open.state.value) >= 1)

      // Opening a set and entering one are traced too; `enter` knows its thread.
      assert.deepStrictEqual(spans.find((each) => each.name === "NamespaceSet.current")?.attributes.get("gonso.kinds"), ["net", "uts"])
      const inside = yield* NamespaceSet.enter(set)
      const enter = spans.find((each) => each.name === "NamespaceSet.enter")
      assert.strictEqual(enter?.attributes.get("gonso.thread.tid"), inside.tid)
    }).pipe(Effect.scoped, Effect.provide(layer))
  })

  it.live("a thread dropped shows in the counter with its reason, in a warning and in a span", () => {
    const { spans, logs, layer } = recording()
    return Effect.gen(function*() {
      const set = yield* NamespaceSet.current(["uts"])
      const tid = yield* NamespaceSet.run(set, Task.tid, { restore: false })
      const span = spans.find((each) => each.name === "NamespaceSet.run")
      assert.strictEqual(span?.attributes.get("gonso.restore"), false)
      assert.strictEqual(span?.attributes.get("gonso.thread.tid"), tid)

      yield* Effect.promise(() => eventually(() => spans.some((each) => each.name === "PinnedThreads.drop")))
      const snapshots = yield* Metric.snapshot
      assert.strictEqual(counterBy(snapshots, "gonso_pinned_threads_dropped_total", "no-restore"), 1)
      const spawned = ["min", "demand", "replacement"].map((reason) => counterBy(snapshots, "gonso_pinned_threads_spawned_total", reason))
      assert.isAtLeast(spawned.reduce((a, b) => a + b), 1)

      const drop = spans.find((each) => each.name === "PinnedThreads.drop")!
      assert.strictEqual(drop.attributes.get("gonso.thread.tid"), tid)
      assert.strictEqual(drop.attributes.get("gonso.drop.reason"), "restore: false")
      const warning = logs.find((each) => each.level === "Warn")
      assert.deepInclude(warning?.annotations, { tid, reason: "restore: false", reasonClass: "no-restore" })
      assert.isTrue(logs.some((each) => each.level === "Debug" && String(each.message).includes("started")))
    }).pipe(Effect.scoped, Effect.provide(layer))
  })

  it.live("with no tracer installed a run makes no span and still records its latency", () => {
    const registry: Metric.MetricRegistry = new Map()
    return Effect.gen(function*() {
      const set = yield* NamespaceSet.current(["net"])
      const native = yield* Effect.withFiber((fiber) => Effect.succeed(fiber.getRef(Tracer.Tracer) === Tracer.nativeTracer))
      assert.isTrue(native)
      yield* NamespaceSet.run(set, Task.tid)
      const stats = yield* PinnedThreads.stats
      assert.strictEqual(stats.spawned >= 1, true)
      const snapshots = yield* Metric.snapshot
      assert.isTrue(snapshots.some((each) => each.id === "gonso_run_duration_microseconds"))
    }).pipe(
      Effect.scoped,
      Effect.provide(PinnedThreads.layer({ min: 1, max: 1 })),
      Effect.provideService(Metric.MetricRegistry, registry)
    )
  })
})
