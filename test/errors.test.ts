import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import type { NamespaceKind } from "../src/NamespaceKind.ts"
import { eventually, mainNamespace, withThreads } from "./helpers.ts"

withThreads({ min: 1, max: 1 })("bad input", (it) => {
  describe("typed errors carry what caused them", () => {
    it.effect("an unknown kind is InvalidKind, naming the kind", () =>
      Effect.gen(function*() {
        for (const attempt of [
          NamespaceSet.current(["net", "nett" as NamespaceKind]),
          NamespaceSet.fromPid(process.pid, ["bogus" as NamespaceKind]),
          NamespaceSet.fromFiles({ ["bogus" as NamespaceKind]: "/proc/self/ns/net" })
        ]) {
          const error = yield* Effect.flip(attempt)
          assert.strictEqual(error._tag, "InvalidKind")
          if (error._tag === "InvalidKind") assert.match(error.kind, /^(nett|bogus)$/)
        }
        const set = yield* NamespaceSet.current(["net"])
        const unshared = yield* Effect.flip(NamespaceSet.unshare(set, ["network" as NamespaceKind]))
        assert.strictEqual(unshared._tag, "InvalidKind")
      }))

    it.effect("a path that is not a namespace file is NotANamespace, with the path and the kind asked for", () =>
      Effect.gen(function*() {
        for (const path of ["/etc/hostname", "/proc/self", "/dev/null"]) {
          const error = yield* Effect.flip(NamespaceSet.fromFiles({ net: path }))
          assert.deepStrictEqual({ tag: error._tag, path: (error as { path?: string }).path }, { tag: "NotANamespace", path })
          if (error._tag === "NotANamespace") assert.strictEqual(error.expected, "net")
        }
        const missing = yield* Effect.flip(NamespaceSet.fromFiles({ net: "/run/netns/gonso-does-not-exist" }))
        assert.strictEqual(missing._tag, "NamespaceNotFound")
      }))

    it.effect("a namespace file of another kind is KindMismatch, naming both kinds", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(NamespaceSet.fromFiles({ net: "/proc/self/ns/uts" }))
        assert.strictEqual(error._tag, "KindMismatch")
        if (error._tag === "KindMismatch") {
          assert.deepStrictEqual([error.path, error.expected, error.actual], ["/proc/self/ns/uts", "net", "uts"])
          assert.include(error.message, "is a uts namespace, not a net namespace")
        }
        // Nothing opened for the kinds before the bad one is left behind.
        const fds = fs.readdirSync("/proc/self/fd").length
        yield* Effect.flip(NamespaceSet.fromFiles({ uts: "/proc/self/ns/uts", net: "/proc/self/ns/ipc" }))
        assert.strictEqual(fs.readdirSync("/proc/self/fd").length, fds)
      }))

    it.effect("a dead pid is ProcessNotFound, with the pid", () =>
      Effect.gen(function*() {
        const child = spawnSync("true")
        const pid = child.pid!
        const error = yield* Effect.flip(NamespaceSet.fromPid(pid, ["net"]))
        assert.strictEqual(error._tag, "ProcessNotFound")
        if (error._tag === "ProcessNotFound") assert.strictEqual(error.pid, pid)
        const negative = yield* Effect.flip(NamespaceSet.fromPid(-1))
        assert.strictEqual(negative._tag, "ProcessNotFound")
      }))

    it.effect("a process that moved after fromPid is ProcessMoved when joined through its pidfd, and the thread is restored", () =>
      Effect.gen(function*() {
        // The child starts in a uts namespace of its own, then, told to, moves to another one
        // under the same pid (unshare(1) execs in place).
        const child = spawn("unshare", ["--uts", "sh", "-c", "read line; exec unshare --uts sleep 600"], { stdio: ["pipe", "ignore", "ignore"] })
        yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
        const pid = child.pid!
        const utsOf = () => {
          try {
            return fs.readlinkSync(`/proc/${pid}/ns/uts`)
          } catch {
            return undefined
          }
        }
        const host = fs.readlinkSync("/proc/self/ns/uts")
        assert.isTrue(yield* Effect.promise(() => eventually(() => utsOf() !== undefined && utsOf() !== host && !fs.readlinkSync(`/proc/${pid}/exe`).endsWith("/unshare"))))
        const first = utsOf()
        const set = yield* NamespaceSet.fromPid(pid, ["uts"])
        assert.strictEqual(yield* NamespaceSet.id(set, "uts"), first)
        child.stdin!.write("go\n")
        assert.isTrue(yield* Effect.promise(() => eventually(() => utsOf() !== first && utsOf() !== undefined)))
        const error = yield* Effect.flip(NamespaceSet.run(set, Task.identify))
        assert.strictEqual(error._tag, "ProcessMoved")
        if (error._tag === "ProcessMoved") assert.deepStrictEqual([error.pid, error.kind], [pid, "uts"])
        // The thread that refused is back where it started, and in service.
        const after = yield* NamespaceSet.run(yield* NamespaceSet.current(["uts"]), Task.identify)
        assert.deepStrictEqual({ dev: after.namespaces.uts.dev, ino: after.namespaces.uts.ino }, mainNamespace("uts"))
        assert.strictEqual((yield* PinnedThreads.stats).dropped, 0)
        // The set's own namespace is still joinable by its fd.
        const byFd = yield* NamespaceSet.dup(set)
        const inside = yield* NamespaceSet.run(byFd, Task.identify)
        assert.strictEqual(inside.namespaces.uts.id, first)
      }))

    it.effect("a closed set is SetClosed for every operation", () =>
      Effect.gen(function*() {
        const set = yield* Effect.scoped(NamespaceSet.current(["net", "uts"]))
        const attempts = [
          NamespaceSet.id(set, "net"),
          NamespaceSet.equals(set, set),
          Effect.scoped(NamespaceSet.dup(set)),
          Effect.scoped(NamespaceSet.fds(set)),
          NamespaceSet.run(set, Task.tid),
          Effect.scoped(NamespaceSet.enter(set)),
          Effect.scoped(NamespaceSet.unshare(set, ["net"]))
        ]
        for (const attempt of attempts) {
          const error = yield* Effect.flip(attempt as Effect.Effect<unknown, { _tag: string; operation?: string }, PinnedThreads.PinnedThreads>)
          assert.strictEqual(error._tag, "SetClosed")
          assert.match(error.operation!, /^NamespaceSet\./)
        }
      }))

    it.effect("a kind the set does not hold is KindNotInSet", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.current(["net"])
        const error = yield* Effect.flip(NamespaceSet.id(set, "uts"))
        assert.strictEqual(error._tag, "KindNotInSet")
        if (error._tag === "KindNotInSet") assert.strictEqual(error.kind, "uts")
      }))

    it.effect("a set holding a new user namespace cannot be entered (but exec runs in it); dup without user can", () =>
      Effect.gen(function*() {
        const rootMap = [{ containerId: 0, hostId: 0, size: 1 }]
        const set = yield* NamespaceSet.unshareCurrent(["user", "net"], { uidMap: rootMap, gidMap: rootMap })
        const error = yield* Effect.flip(NamespaceSet.run(set, Task.tid))
        assert.strictEqual(error._tag, "UserNamespaceNotEnterable")
        assert.include(error.message, "dup")
        const entered = yield* Effect.flip(Effect.scoped(NamespaceSet.enter(set)))
        assert.strictEqual(entered._tag, "UserNamespaceNotEnterable")
        const inside = yield* NamespaceSet.run(set, Task.exec("readlink", ["/proc/self/ns/user"]))
        assert.strictEqual(inside.exitCode, 0, inside.stderr)
        assert.strictEqual(inside.stdout.trim(), yield* NamespaceSet.id(set, "user"))
        const withoutUser = yield* NamespaceSet.dup(set, ["net"])
        assert.isNumber(yield* NamespaceSet.run(withoutUser, Task.tid))
        // This process's own user namespace is where the threads already are: that set can be entered.
        const own = yield* NamespaceSet.current(["user", "net"])
        assert.isNumber(yield* NamespaceSet.run(own, Task.tid))
      }))

    it.effect("unshares that would put namespaces under the wrong owner, or bad id maps, are refused with the reason", () =>
      Effect.gen(function*() {
        const withUser = yield* NamespaceSet.unshareCurrent(["user", "net"], { uidMap: [{ containerId: 0, hostId: 0, size: 1 }] })
        const nested = yield* Effect.flip(NamespaceSet.unshare(withUser, ["uts"]))
        assert.strictEqual(nested._tag, "UnsupportedKind")
        assert.include(nested.message, "user namespace")
        const timeAndUser = yield* Effect.flip(NamespaceSet.unshareCurrent(["user", "time"]))
        assert.strictEqual(timeAndUser._tag === "UnsupportedKind" && timeAndUser.kind, "time")
        const mapsWithoutUser = yield* Effect.flip(NamespaceSet.unshareCurrent(["net"], { uidMap: [{ containerId: 0, hostId: 0, size: 1 }] }))
        assert.strictEqual(mapsWithoutUser._tag, "InvalidOptions")
        const badMap = yield* Effect.flip(NamespaceSet.unshareCurrent(["user"], { gidMap: [{ containerId: 0, hostId: -1, size: 1 }] }))
        assert.strictEqual(badMap._tag, "InvalidOptions")
        assert.include(badMap.message, "hostId")
      }))

    it.effect("a caller without CAP_SYS_ADMIN gets PermissionDenied, with the operation, call and errno", () =>
      Effect.sync(() => {
        const script = new URL("./fixtures/unprivileged.ts", import.meta.url).pathname
        const result = spawnSync("setpriv", ["--bounding-set=-sys_admin", process.execPath, script], {
          encoding: "utf8",
          timeout: 30_000
        })
        assert.strictEqual(result.status, 0, result.stderr)
        const error = JSON.parse(result.stdout)
        assert.deepInclude(error, { _tag: "PermissionDenied", operation: "NamespaceSet.unshare", call: "unshare", errno: "EPERM", code: 1, kind: "net" })
        assert.include(error.message, "not privileged")
      }))
  })
})
