/**
 * Reproduction: a pinned thread whose start fails under a low fd limit (EMFILE while it opens its
 * baseline fds) leaves the fds it had already opened open in the process, for good.
 *
 *   node_modules/.bin/node bench/repro/thread-start-emfile.ts      (as root)
 *
 * Prints the fds the process holds after the layer closed that it did not hold before; expected
 * none.
 */
import * as fs from "node:fs"
import { createRequire } from "node:module"
import { Effect, Exit } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../../src/index.ts"

const require = createRequire(import.meta.url)
const koffi = require("koffi") as typeof import("koffi")
koffi.struct("repro_rlimit", { cur: "uint64", max: "uint64" })
const prlimit = koffi.load("libc.so.6").func("int prlimit(int, int, const repro_rlimit *, _Out_ repro_rlimit *)")
const links = () => fs.readdirSync("/proc/self/fd").flatMap((fd) => {
  try {
    return [fs.readlinkSync(`/proc/self/fd/${fd}`)]
  } catch {
    return []
  }
})

await fs.promises.access("/")
// Warm up once with no limit, so what loads lazily is loaded.
await Effect.runPromise(Effect.scoped(Effect.flatMap(NamespaceSet.current(["net"]), (set) => NamespaceSet.run(set, Task.tid))).pipe(Effect.provide(PinnedThreads.layer())))
const before = links()
const saved = { cur: 0, max: 0 }
prlimit(0, 7, null, saved)
const outcomes: Array<string> = []
for (let extra = 4; extra <= 40; extra += 2) {
  const program = Effect.scoped(Effect.flatMap(NamespaceSet.current(["net"]), (set) => NamespaceSet.run(set, Task.tid)))
    .pipe(Effect.provide(PinnedThreads.layer({ min: 0, max: 1 })))
  const open = fs.readdirSync("/proc/self/fd").length
  prlimit(0, 7, { cur: open + extra, max: saved.max }, null)
  const exit = await Effect.runPromiseExit(program).finally(() => prlimit(0, 7, saved, null))
  outcomes.push(`+${extra}: ${Exit.isSuccess(exit) ? "ok" : "failed"}`)
}
await new Promise((resolve) => setTimeout(resolve, 500))
const after = links()
const extra = [...after]
for (const link of before) {
  const at = extra.indexOf(link)
  if (at >= 0) extra.splice(at, 1)
}
console.log(outcomes.join(", "))
console.log(`fds held after every layer closed that were not before: ${extra.length}`)
for (const link of extra) console.log(`  ${link}`)
process.exit(extra.length === 0 ? 0 : 1)
