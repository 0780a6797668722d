/**
 * Task.exec's failures say what failed: a missing command, or a working directory that is not there.
 */
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import { withThreads } from "./helpers.ts"

withThreads({ min: 1, max: 1 })("Task.exec failures", (it) => {
  describe("what failed", () => {
    it.effect("a missing working directory is a SystemError of chdir naming it; a missing command is CommandNotFound", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.unshareCurrent(["net"])
        const noDir = yield* Effect.flip(NamespaceSet.run(set, Task.exec("pwd", [], { cwd: "/gonso-no-such-directory" })))
        assert.strictEqual(noDir._tag, "SystemError")
        if (noDir._tag === "SystemError") {
          assert.strictEqual(noDir.call, "chdir")
          assert.strictEqual(noDir.errno, "ENOENT")
          assert.strictEqual(noDir.path, "/gonso-no-such-directory")
        }
        const notDir = yield* Effect.flip(NamespaceSet.run(set, Task.exec("pwd", [], { cwd: "/etc/hostname" })))
        assert.strictEqual(notDir._tag === "SystemError" ? notDir.errno : notDir._tag, "ENOTDIR")
        const noCommand = yield* Effect.flip(NamespaceSet.run(set, Task.exec("gonso-no-such-command", [], { cwd: "/tmp" })))
        assert.strictEqual(noCommand._tag, "CommandNotFound")
        assert.strictEqual((yield* NamespaceSet.run(set, Task.exec("pwd", [], { cwd: "/tmp" }))).stdout.trim(), "/tmp")
      }))
  })
})
