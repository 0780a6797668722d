import { Effect } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../../src/index.ts"
const program = Effect.gen(function*() {
  const set = yield* NamespaceSet.unshareCurrent(["net"])
  for (let i = 0; i < 30000; i++) yield* NamespaceSet.run(set, Task.tid)
  const loop = (n: number) => Effect.gen(function*() { for (let i = 0; i < n; i++) yield* NamespaceSet.run(set, Task.tid) })
  for (let round = 0; round < 3; round++) {
    let t0 = performance.now()
    yield* loop(50000)
    const direct = 50000 / (performance.now() - t0) * 1000
    t0 = performance.now()
    yield* Effect.forEach([0], () => loop(50000), { concurrency: "unbounded", discard: true })
    const forked = 50000 / (performance.now() - t0) * 1000
    t0 = performance.now()
    yield* Effect.forEach([0, 1], () => loop(25000), { concurrency: "unbounded", discard: true })
    const two = 50000 / (performance.now() - t0) * 1000
    console.log(`direct ${Math.round(direct)} forked ${Math.round(forked)} two fibers ${Math.round(two)}`)
  }
}).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
Effect.runPromise(program)
