/**
 * Reproduction: `NamespaceSet.unshare` with `timeOffsets`, when the process is out of fds
 * (EMFILE), crashes the whole process with an unhandled 'error' event of the util-linux `unshare`
 * helper's ChildProcess, instead of failing with a typed error.
 *
 *   node_modules/.bin/node bench/repro/time-offsets-emfile.ts      (as root)
 *
 * Expected: "typed failure: SystemError" (or similar) for each limit, and exit 0.
 */
import * as fs from "node:fs"
import { createRequire } from "node:module"
import { Cause, Effect, Exit } from "effect"
import { NamespaceSet, PinnedThreads } from "../../src/index.ts"

const require = createRequire(import.meta.url)
const koffi = require("koffi") as typeof import("koffi")
koffi.struct("repro_rlimit", { cur: "uint64", max: "uint64" })
const prlimit = koffi.load("libc.so.6").func("int prlimit(int, int, const repro_rlimit *, _Out_ repro_rlimit *)")

const saved = { cur: 0, max: 0 }
prlimit(0, 7, null, saved)
const program = Effect.gen(function*() {
  yield* Effect.scoped(NamespaceSet.unshareCurrent(["net"])) // threads up, everything loaded
  for (let extra = 0; extra <= 6; extra++) {
    const open = fs.readdirSync("/proc/self/fd").length
    prlimit(0, 7, { cur: open + extra, max: saved.max }, null)
    const exit = yield* Effect.exit(Effect.scoped(NamespaceSet.unshareCurrent(["time"], { timeOffsets: { monotonic: 60 } })))
    // Give the helper's events a turn of the loop before the limit is restored.
    yield* Effect.sleep(50)
    prlimit(0, 7, saved, null)
    console.log(`+${extra}: ${Exit.isSuccess(exit) ? "ok" : Cause.hasDies(exit.cause) ? `defect: ${Cause.pretty(exit.cause).split("\n")[0]}` : `typed failure: ${String((Cause.squash(exit.cause) as { _tag?: string })._tag)}`}`)
  }
}).pipe(Effect.provide(PinnedThreads.layer()))

await Effect.runPromise(program)
console.log("no crash")
