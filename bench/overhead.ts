/**
 * The cost of gonso's own observability on the hot path: the median latency of `NamespaceSet.run(set,
 * Task.tid)`, 40k sequential runs after a warm-up, with no tracer installed (Effect's native tracer)
 * and, for comparison, with a tracer that records nothing. Figures are microseconds.
 *
 * `GONSO_SRC=/path/to/src/index.ts` measures another checkout (e.g. the commit before), so two trees
 * can be timed alternately on one machine.
 */
import { Effect, Tracer } from "effect"

const entry = process.env.GONSO_SRC ?? new URL("../src/index.ts", import.meta.url).href
const { NamespaceSet, PinnedThreads, Task } = (await import(entry)) as typeof import("../src/index.ts")
const RUNS = Number(process.env.GONSO_BENCH_RUNS ?? 40_000)
const ROUNDS = Number(process.env.GONSO_BENCH_ROUNDS ?? 3)

const now = () => process.hrtime.bigint()
const median = (samples: Array<number>) => samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)]!

const silentTracer = Tracer.make({ span: (options) => new Tracer.NativeSpan(options) })

const program = Effect.gen(function*() {
  const set = yield* NamespaceSet.current(["net", "uts"])
  const run = NamespaceSet.run(set, Task.tid)
  const time = Effect.gen(function*() {
    for (let i = 0; i < 2_000; i++) yield* run
    const samples: Array<number> = []
    for (let i = 0; i < RUNS; i++) {
      const start = now()
      yield* run
      samples.push(Number(now() - start) / 1_000)
    }
    return median(samples)
  })
  const plain: Array<number> = []
  const traced: Array<number> = []
  for (let round = 0; round < ROUNDS; round++) {
    plain.push(yield* time)
    traced.push(yield* Effect.withTracer(time, silentTracer))
  }
  return { plain, traced }
}).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer({ min: 1, max: 1 })))

const result = await Effect.runPromise(program)
console.log(JSON.stringify({ entry, runs: RUNS, medianMicros: result }))

/**
 * The same observability in isolation, against a trivial callback instead of a thread round trip
 * (which is noisy on a shared machine): the span check `run` pays with no tracer installed, and
 * the latency histogram the pool records. Nanoseconds per call.
 */
if (process.env.GONSO_SRC === undefined) {
  const { Context } = await import("effect")
  const { latency, traceRun } = await import("../src/internal/observe.ts")
  const set = { kinds: ["net"] } as never
  const members = () => [{ kind: "net", ino: 1, dev: 1, fd: 3 }] as never
  let hook: ((operation: string, micros: number) => void) | undefined
  const bare = Effect.callback<number>((resume) => {
    const start = hook === undefined ? 0 : performance.now()
    if (hook !== undefined) hook("NamespaceSet.run", (performance.now() - start) * 1_000)
    resume(Effect.succeed(1))
  })
  const checked = traceRun("NamespaceSet.run", set, members, { op: "tid" } as never, true, bare)
  const N = 300_000
  const perCall = (effect: Effect.Effect<number>) =>
    Effect.runPromise(Effect.gen(function*() {
      for (let i = 0; i < 20_000; i++) yield* effect
      const start = now()
      for (let i = 0; i < N; i++) yield* effect
      return Number(now() - start) / N
    }))
  const rows: Array<{ bare: number; spanCheck: number; spanCheckAndHistogram: number }> = []
  for (let round = 0; round < ROUNDS; round++) {
    hook = undefined
    const base = await perCall(bare)
    const check = await perCall(checked)
    hook = latency(Context.empty())
    const both = await perCall(checked)
    rows.push({ bare: Math.round(base), spanCheck: Math.round(check - base), spanCheckAndHistogram: Math.round(both - base) })
  }
  console.log(JSON.stringify({ isolatedNanos: rows }))
}
