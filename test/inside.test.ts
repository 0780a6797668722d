import * as fs from "node:fs"
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import { withThreads } from "./helpers.ts"

/**
 * A set with a /proc of its own: new pid and mount namespaces, a fresh proc mounted over /proc
 * inside (the mount namespace is private, so the host's /proc is untouched).
 */
const withFreshProc = Effect.gen(function*() {
  const set = yield* NamespaceSet.unshareCurrent(["pid", "mnt"])
  const mounted = yield* NamespaceSet.run(set, Task.exec("mount", ["-t", "proc", "proc", "/proc"]))
  assert.strictEqual(mounted.exitCode, 0, mounted.stderr)
  return set
})

withThreads({ min: 1, max: 2 })("what a task sees inside", (it) => {
  describe("a set whose /proc is its own", () => {
    it.effect("unshare of a time namespace works: the thread looks nothing up through the set's /proc", () =>
      Effect.gen(function*() {
        const set = yield* withFreshProc
        const timed = yield* NamespaceSet.unshare(set, ["time"])
        assert.deepStrictEqual([...timed.kinds].sort(), ["mnt", "pid", "time"])
        // And Task.identify, which reads the thread's namespaces, works inside it too.
        const seen = yield* NamespaceSet.run(set, Task.identify)
        assert.strictEqual(seen.namespaces.mnt.id, yield* NamespaceSet.id(set, "mnt"))
      }))

    it.effect("Task.exec through nsenter runs the command inside every namespace of the set", () =>
      Effect.gen(function*() {
        // The time namespace first, so that this test does not depend on the one above.
        const timeOnly = yield* NamespaceSet.unshareCurrent(["time"])
        const timed = yield* NamespaceSet.unshare(timeOnly, ["pid", "mnt"])
        const mounted = yield* NamespaceSet.run(timed, Task.exec("mount", ["-t", "proc", "proc", "/proc"]))
        assert.strictEqual(mounted.exitCode, 0, mounted.stderr)
        const result = yield* NamespaceSet.run(timed, Task.exec("sh", ["-c", "readlink /proc/self/ns/time /proc/self/ns/mnt; echo $$"]))
        assert.strictEqual(result.exitCode, 0, result.stderr)
        const [time, mnt] = result.stdout.trim().split("\n")
        assert.strictEqual(time, yield* NamespaceSet.id(timed, "time"))
        assert.strictEqual(mnt, yield* NamespaceSet.id(timed, "mnt"))
        // A working directory is resolved in the set's mount namespace: a tmpfs there, not the host's.
        const tmpfs = yield* NamespaceSet.run(timed, Task.exec("sh", ["-c", "mount -t tmpfs gonso-inside /mnt && touch /mnt/only-inside"]))
        assert.strictEqual(tmpfs.exitCode, 0, tmpfs.stderr)
        const cwd = yield* NamespaceSet.run(timed, Task.exec("ls", [], { cwd: "/mnt" }))
        assert.strictEqual(cwd.exitCode, 0, cwd.stderr)
        assert.strictEqual(cwd.stdout.trim(), "only-inside")
      }))
  })

  describe("commands through nsenter", () => {
    it.effect("a missing command is CommandNotFound, as without nsenter, not exit 127", () =>
      Effect.gen(function*() {
        const timed = yield* NamespaceSet.unshareCurrent(["time"])
        const error = yield* Effect.flip(NamespaceSet.run(timed, Task.exec("gonso-no-such-command", ["x"])))
        assert.strictEqual(error._tag, "CommandNotFound")
        if (error._tag === "CommandNotFound") assert.strictEqual(error.command, "gonso-no-such-command")
        const plain = yield* NamespaceSet.unshareCurrent(["uts"])
        const without = yield* Effect.flip(NamespaceSet.run(plain, Task.exec("gonso-no-such-command", ["x"])))
        assert.strictEqual(without._tag, "CommandNotFound")
        // A command that itself exits 127 is still just its exit code.
        const own = yield* NamespaceSet.run(timed, Task.exec("sh", ["-c", "exit 127"]))
        assert.strictEqual(own.exitCode, 127)
      }))
  })

  describe("what sysfs and /proc show", () => {
    it.effect("in a new network namespace, /sys and /proc/net show the host's links; withOwnSysfs and /proc/thread-self/net show the set's", () =>
      Effect.gen(function*() {
        const hostLinks = fs.readdirSync("/sys/class/net").sort()
        assert.include(hostLinks, "lo")
        assert.isAbove(hostLinks.length, 1, "the host needs a link besides lo for this test to mean anything")
        const set = yield* NamespaceSet.unshareCurrent(["net"])
        // What the docs used to promise, and is not so: sysfs is the mounter's network namespace,
        // /proc/net the thread-group leader's.
        const sys = yield* NamespaceSet.run(set, Task.exec("ls", ["/sys/class/net"]))
        assert.deepStrictEqual(sys.stdout.trim().split("\n").sort(), hostLinks)
        const procNet = yield* NamespaceSet.run(set, Task.readFile("/proc/net/dev"))
        assert.include(procNet, hostLinks.find((link) => link !== "lo")!)
        const threadNet = yield* NamespaceSet.run(set, Task.readFile("/proc/thread-self/net/dev"))
        assert.deepStrictEqual(threadNet.split("\n").slice(2).filter(Boolean).map((line) => line.split(":")[0]!.trim()), ["lo"])
        // A set with a fresh sysfs of its own shows its own links, and is the same network namespace.
        const withSys = yield* NamespaceSet.withOwnSysfs(set)
        assert.strictEqual(yield* NamespaceSet.id(withSys, "net"), yield* NamespaceSet.id(set, "net"))
        const own = yield* NamespaceSet.run(withSys, Task.exec("ls", ["/sys/class/net"]))
        assert.strictEqual(own.exitCode, 0, own.stderr)
        assert.strictEqual(own.stdout.trim(), "lo")
        // The host's /sys is untouched.
        assert.deepStrictEqual(fs.readdirSync("/sys/class/net").sort(), hostLinks)
      }))
  })
})
