import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import type { NamespaceKind } from "../src/NamespaceKind.ts"

layer(PinnedThreads.layer({ min: 1, max: 1 }), { excludeTestServices: true })("bad input", (it) => {
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

    it.effect("a set holding a user namespace cannot be entered; dup without user can", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.current(["user", "net"])
        const error = yield* Effect.flip(NamespaceSet.run(set, Task.tid))
        assert.strictEqual(error._tag, "UserNamespaceNotEnterable")
        assert.include(error.message, "dup")
        const withoutUser = yield* NamespaceSet.dup(set, ["net"])
        assert.isNumber(yield* NamespaceSet.run(withoutUser, Task.tid))
      }))

    it.effect("user and pid namespaces cannot be unshared yet: UnsupportedKind says so", () =>
      Effect.gen(function*() {
        for (const kind of ["user", "pid"] as const) {
          const error = yield* Effect.flip(NamespaceSet.unshareCurrent([kind, "net"]))
          assert.strictEqual(error._tag, "UnsupportedKind")
          if (error._tag === "UnsupportedKind") assert.strictEqual(error.kind, kind)
        }
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
