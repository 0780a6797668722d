/**
 * Measures RSS while pinned threads are dropped and replaced, nothing else running: whether a
 * dropped thread costs memory that is never given back.
 *
 *   node_modules/.bin/node bench/repro/thread-churn-rss.ts [drops] [builtin|module]
 */
import * as fs from "node:fs"
import { Effect } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../../src/index.ts"

const drops = Number(process.argv[2] ?? 1_000)
const mode = process.argv[3] ?? "builtin"
const tasks = new URL("../soak-tasks.ts", import.meta.url)
const task = mode === "module" ? Task.module(tasks, "whereAmI", undefined) : Task.identify

const program = Effect.gen(function*() {
  const set = yield* NamespaceSet.current(["net"])
  const rows: Array<string> = []
  for (let i = 1; i <= drops; i++) {
    yield* NamespaceSet.run(set, task, { restore: false })
    if (i % Math.max(1, Math.floor(drops / 10)) === 0) {
      globalThis.gc?.()
      const usage = process.memoryUsage()
      const threads = fs.readdirSync("/proc/self/task").length
      const m = (n: number) => (n / 2 ** 20).toFixed(1)
      rows.push(`${String(i).padStart(6)} drops: rss ${m(usage.rss)} MiB, heap ${m(usage.heapUsed)}, external ${m(usage.external)}, arrayBuffers ${m(usage.arrayBuffers)}, threads ${threads}`)
      console.log(rows.at(-1))
    }
  }
  return (yield* PinnedThreads.stats)
}).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer({ min: 1, max: 4 })))

console.log(await Effect.runPromise(program))
