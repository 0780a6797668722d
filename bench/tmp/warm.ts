import { Effect } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../../src/index.ts"
const program = Effect.gen(function*() {
  const set = yield* NamespaceSet.unshareCurrent(["net"])
  for (let block = 0; block < 8; block++) {
    const samples = new Float64Array(10000)
    for (let i = 0; i < samples.length; i++) {
      const t0 = performance.now()
      yield* NamespaceSet.run(set, Task.tid)
      samples[i] = (performance.now() - t0) * 1000
    }
    samples.sort()
    console.log(`block ${block}: median ${samples[5000]!.toFixed(1)} p90 ${samples[9000]!.toFixed(1)} p99 ${samples[9900]!.toFixed(1)}`)
  }
}).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
Effect.runPromise(program)
