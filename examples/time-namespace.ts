/**
 * A time namespace whose clocks say the machine has been up a day longer. Run with
 * `node examples/time-namespace.ts` as root.
 */
import { readFileSync } from "node:fs"
import { Effect } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"

const program = Effect.gen(function*() {
  const set = yield* NamespaceSet.unshareCurrent(["time"], { timeOffsets: { boottime: 86_400 } })
  const inside = yield* NamespaceSet.run(set, Task.exec("cat", ["/proc/uptime"]))
  console.log("uptime outside:", readFileSync("/proc/uptime", "utf8").trim())
  console.log("uptime inside: ", inside.stdout.trim())
})

Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(PinnedThreads.layer())))
