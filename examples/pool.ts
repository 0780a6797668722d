/**
 * A pool that keeps network namespaces ready, with `lo` already up, for tests that each want a
 * network of their own. Run with `node examples/pool.ts` as root.
 */
import { Effect } from "effect"
import { NamespacePool, NamespaceSet, PinnedThreads, Task } from "../src/index.ts"

const program = Effect.gen(function*() {
  const pool = yield* NamespacePool.make({ kinds: ["net"], size: 4, unshare: { loopback: "up" } })
  for (let test = 1; test <= 3; test++) {
    yield* Effect.scoped(Effect.gen(function*() {
      const net = yield* NamespacePool.take(pool)
      const lo = yield* NamespaceSet.run(net, Task.exec("ip", ["-brief", "addr", "show", "lo"]))
      console.log(`test ${test} in ${yield* NamespaceSet.id(net, "net")}: ${lo.stdout.trim().replace(/\s+/g, " ")}`)
    }))
  }
})

Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(PinnedThreads.layer())))
