import * as fs from "node:fs"
import { Effect } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
const N = Number(process.argv[2] ?? 20000)
const P = Number(process.argv[3] ?? 1)
const max = Number(process.argv[4] ?? 4)
const prog = Effect.gen(function*() {
  const host = yield* NamespaceSet.current(["net"])
  const set = yield* NamespaceSet.unshare(host, ["net"])
  const one = NamespaceSet.run(set, Task.tid)
  for (let i = 0; i < 2000; i++) yield* one
  const samples: number[] = []
  const per = Math.floor(N / P)

  const cpu = () => { const f = fs.readFileSync("/proc/thread-self/stat", "utf8").split(") ")[1]!.split(" "); return (Number(f[11]) + Number(f[12])) * 10 }
  const c0 = cpu()
  const t0 = performance.now()
  yield* Effect.forEach(Array.from({ length: P }), () => Effect.gen(function*() {
    for (let i = 0; i < per; i++) { const s = performance.now(); yield* one; samples.push((performance.now() - s) * 1000) }
  }), { concurrency: "unbounded" })
  const wall = performance.now() - t0
  console.log("main cpu us/op", ((cpu() - c0) * 1000 / N).toFixed(2), "wall us/op", (wall * 1000 / N).toFixed(2))
  samples.sort((a, b) => a - b)
  const q = (x: number) => samples[Math.floor(x * samples.length)]!.toFixed(2)
  console.log(`P=${P} n=${samples.length} median=${q(0.5)} p90=${q(0.9)} p99=${q(0.99)} ops/s=${(samples.length / wall * 1000).toFixed(0)} rss=${(process.memoryUsage().rss/1e6).toFixed(0)}MB`)
}).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer({ min: 1, max })))
await Effect.runPromise(prog)
