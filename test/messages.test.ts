import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as util from "node:util"
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import { NamespaceError, NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import { allChildren, eventually, withThreads } from "./helpers.ts"

/** Whether this process has CAP_SYS_ADMIN (bit 21 of its effective capabilities). */
const hasSysAdmin = () => {
  const effective = fs.readFileSync("/proc/self/status", "utf8").match(/^CapEff:\s*([0-9a-f]+)$/m)![1]!
  return (BigInt(`0x${effective}`) & (1n << 21n)) !== 0n
}

withThreads({ min: 1, max: 1 })("messages are shown and true", (it) => {
  describe("logging an error shows its message", () => {
    it.effect("util.inspect (console.error) of errors made here and of errors that came from a thread", () =>
      Effect.gen(function*() {
        const made = new NamespaceError.InvalidOptions({ operation: "Example.op", reason: "a reason worth reading" })
        assert.include(util.inspect(made), "Example.op: a reason worth reading")
        const fromThread = yield* Effect.flip(NamespaceSet.run(yield* NamespaceSet.current(["mnt"]), Task.readFile("/nonexistent/gonso")))
        const shown = util.inspect(fromThread)
        assert.include(shown, fromThread.message)
        assert.include(shown, "ENOENT")
        // The fields are still there for a reader.
        assert.include(shown, "errno")
      }))
  })

  describe("the hint fits the case", () => {
    it.effect("EACCES/EPERM with CAP_SYS_ADMIN does not tell the caller to get CAP_SYS_ADMIN", () =>
      Effect.gen(function*() {
        const error = new NamespaceError.PermissionDenied({ operation: "NamespaceSet.fromPid", call: "open", errno: "EACCES", code: 13, path: "/proc/1/ns/cgroup", pid: 1 })
        if (hasSysAdmin()) {
          assert.notInclude(error.message, "is needed")
          assert.include(error.message, "has CAP_SYS_ADMIN")
        } else {
          assert.include(error.message, "root or CAP_SYS_ADMIN is needed")
        }
        // pid 1's namespaces, where this machine refuses them to root (containers do).
        const joined = yield* Effect.exit(NamespaceSet.fromPid(1))
        if (joined._tag === "Failure" && hasSysAdmin()) assert.notInclude(String(joined.cause), "is needed")
      }))

    it.effect("a pid namespace whose init was killed from outside: spawning fails saying so, not just ENOMEM", () =>
      Effect.gen(function*() {
        const before = new Set(allChildren())
        const set = yield* NamespaceSet.unshareCurrent(["pid"])
        const inits = allChildren().filter((pid) => !before.has(pid))
        assert.lengthOf(inits, 1)
        const init = Number(inits[0])
        process.kill(init, "SIGKILL")
        assert.isTrue(yield* Effect.promise(() =>
          eventually(() => !fs.existsSync(`/proc/${init}`) || /^State:\s*Z/m.test(fs.readFileSync(`/proc/${init}/status`, "utf8")))
        ))
        const error = yield* Effect.flip(NamespaceSet.run(set, Task.exec("true")))
        assert.deepInclude(error, { _tag: "SystemError", errno: "ENOMEM", kind: "pid" })
        assert.match(error.message, /init .*(exited|gone)/)
      }))

    it.effect("a failed time-namespace helper reports its own error and its stderr, not an invented EIO", () =>
      Effect.gen(function*() {
        // unshare(1) prints "failed to write to /proc/self/timens_offsets: Numerical result out of range".
        const error = yield* Effect.flip(NamespaceSet.unshareCurrent(["time"], { timeOffsets: { monotonic: 9_999_999_999_999 } }))
        assert.deepInclude(error, { _tag: "SystemError", call: "unshare(1)", errno: "ERANGE", code: 34, kind: "time" })
        assert.include(error.message, "timens_offsets")
        void execFileSync
      }))
  })
})
