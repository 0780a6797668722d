import { Effect } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../../src/index.ts"
const program = Effect.gen(function*() {
  const set = yield* NamespaceSet.unshareCurrent(["net"])
  for (let i = 0; i < 30000; i++) yield* NamespaceSet.run(set, Task.tid)
  for (let round = 0; round < 3; round++) {
    const n = 50000
    const s = new Float64Array(n)
    const t0 = performance.now()
    for (let i = 0; i < n; i++) { const a = performance.now(); yield* NamespaceSet.run(set, Task.tid); s[i] = (performance.now() - a) * 1000 }
    const total = performance.now() - t0
    s.sort()
    const q = (p: number) => s[Math.floor(p * n)]!.toFixed(1)
    console.log(`ops/s ${Math.round(n / total * 1000)} mean ${(total * 1000 / n).toFixed(1)} p10 ${q(0.1)} p50 ${q(0.5)} p75 ${q(0.75)} p90 ${q(0.9)} p99 ${q(0.99)}`)
  }
}).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
Effect.runPromise(program)
