/**
 * gonso's spans, metrics and logs, printed to the console: a tracer that prints each span as it
 * ends, the debug log, and gonso's metrics at the end. In an application the same services come
 * from an OpenTelemetry setup (docs/observability.md). Run with `node examples/observability.ts` as root.
 */
import { Effect, Layer, Logger, Metric, References, Tracer } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"

/** A console span exporter, in a few lines: Effect's own spans, printed when they end. */
const consoleTracer = Tracer.make({
  span: (options) => {
    const span = new Tracer.NativeSpan(options)
    const end = span.end.bind(span)
    span.end = (endTime, exit) => {
      end(endTime, exit)
      const micros = Number(endTime - span.startTime) / 1_000
      console.log(`span ${span.name} ${micros.toFixed(0)}µs ${JSON.stringify(Object.fromEntries(span.attributes))}`)
    }
    return span
  }
})

const observability = Layer.mergeAll(
  Layer.succeed(Tracer.Tracer, consoleTracer),
  Layer.succeed(References.MinimumLogLevel, "Debug"),
  Logger.layer([Logger.consolePretty({ colors: false })])
)

const program = Effect.gen(function*() {
  const host = yield* NamespaceSet.current(["net", "uts"])
  const isolated = yield* NamespaceSet.unshare(host, ["net", "uts"])
  yield* NamespaceSet.run(isolated, Task.setHostname("observed"))
  yield* NamespaceSet.run(isolated, Task.tid, { restore: false }) // drops its thread: a warning and a span
  yield* Effect.sleep("50 millis")
  for (const metric of yield* Metric.snapshot) {
    if (!metric.id.startsWith("gonso_")) continue
    const value = metric.type === "Histogram" ? `count=${metric.state.count}` : JSON.stringify(metric.state, (_, v) => typeof v === "bigint" ? String(v) : v)
    console.log(`metric ${metric.id} ${JSON.stringify(metric.attributes ?? {})} ${value}`)
  }
}).pipe(Effect.withSpan("example"))

Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()), Effect.provide(observability)))
