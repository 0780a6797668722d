import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { assert, describe } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import { allChildren, eventually, foreignNamespaceFds, mainId, withThreads } from "./helpers.ts"

/** Pids of this process's children whose pid namespace (as `readlink` names it) is `id`. */
const childrenIn = (id: string) =>
  fs.readdirSync(`/proc/${process.pid}/task`)
    .flatMap((tid) => fs.readFileSync(`/proc/${process.pid}/task/${tid}/children`, "utf8").trim().split(/\s+/).filter(Boolean))
    .map(Number)
    .filter((pid) => {
      try {
        return fs.readlinkSync(`/proc/${pid}/ns/pid`) === id
      } catch {
        return false
      }
    })

/** Whether process `pid` exists and is not a zombie. */
const alive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) [ZX] /.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"))
  } catch {
    return false
  }
}

withThreads({ min: 1, max: 2 })("user and pid namespaces", (it) => {
  describe("user", () => {
    it.effect("user+net with root mapped: a child inside is uid 0 with full capabilities, and the maps read back exactly", () =>
      Effect.gen(function*() {
        const uidMap = [{ containerId: 0, hostId: 100_000, size: 65_536 }]
        const gidMap = [{ containerId: 0, hostId: 200_000, size: 1_000 }, { containerId: 1_000, hostId: 300_000, size: 10 }]
        const set = yield* NamespaceSet.unshareCurrent(["user", "net"], { uidMap, gidMap })
        assert.notStrictEqual(yield* NamespaceSet.id(set, "user"), mainId("user"))
        const result = yield* NamespaceSet.run(set, Task.exec("sh", ["-c", [
          "id -u",
          "id -g",
          "grep CapEff /proc/self/status",
          "echo --",
          "cat /proc/self/uid_map",
          "echo --",
          "cat /proc/self/gid_map",
          "echo --",
          "readlink /proc/self/ns/user /proc/self/ns/net"
        ].join("; ")]))
        assert.strictEqual(result.exitCode, 0, result.stderr)
        const [ids, uidText, gidText, links] = result.stdout.split("--\n")
        assert.isDefined(links, result.stdout)
        const [uid, gid, capEff] = ids!.trim().split("\n")
        assert.strictEqual(uid, "0")
        assert.strictEqual(gid, "0")
        // Full capabilities in the namespace: every capability this kernel knows.
        const last = Number(fs.readFileSync("/proc/sys/kernel/cap_last_cap", "utf8"))
        assert.strictEqual(BigInt(`0x${capEff!.split(/\s+/)[1]}`), (1n << BigInt(last + 1)) - 1n)
        const parse = (text: string) => text.trim().split("\n").map((line) => line.trim().split(/\s+/).map(Number))
        assert.deepStrictEqual(parse(uidText!), [[0, 100_000, 65_536]])
        assert.deepStrictEqual(parse(gidText!), [[0, 200_000, 1_000], [1_000, 300_000, 10]])
        assert.deepStrictEqual(links!.trim().split("\n"), [yield* NamespaceSet.id(set, "user"), yield* NamespaceSet.id(set, "net")])
        // What the kernel says of the maps, read from outside.
        const owner = yield* NamespaceSet.ownerUid(set)
        assert.strictEqual(owner, 0)
      }))

    it.effect("the other new kinds are owned by the new user namespace (NS_GET_USERNS)", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.unshareCurrent(["user", "net", "uts", "ipc"], { uidMap: [{ containerId: 0, hostId: 0, size: 1 }] })
        const user = yield* NamespaceSet.identity(set, "user")
        for (const kind of ["net", "uts", "ipc"] as const) {
          const owner = yield* NamespaceSet.owner(set, kind)
          assert.strictEqual(yield* NamespaceSet.id(owner, "user"), user.id, kind)
        }
        // The new user namespace's parent is this process's.
        const parent = yield* NamespaceSet.parent(set, "user")
        assert.strictEqual(yield* NamespaceSet.id(parent, "user"), mainId("user"))
        // A kind made without "user" is owned by this process's user namespace.
        const plain = yield* NamespaceSet.unshareCurrent(["net"])
        assert.strictEqual(yield* NamespaceSet.id(yield* NamespaceSet.owner(plain, "net"), "user"), mainId("user"))
      }))

    it.effect("as an unprivileged user, user+net with a self-mapping works, setgroups is denied for the gid map", () =>
      Effect.sync(() => {
        const script = new URL("./fixtures/rootless.ts", import.meta.url).pathname
        const child = spawnSync(process.execPath, [script], { encoding: "utf8", timeout: 30_000 })
        assert.strictEqual(child.status, 0, child.stderr)
        const result = JSON.parse(child.stdout)
        assert.strictEqual(result._tag, "Success", child.stdout)
        const value = result.value
        assert.strictEqual(value.uid, 65534)
        assert.strictEqual(value.ownerUid, 65534)
        const lines = value.inside.stdout.trim().split("\n").map((line: string) => line.trim().split(/\s+/).join(" "))
        assert.deepStrictEqual(lines, ["0", "0", "deny", "0 65534 1", "0 65534 1", value.user, value.net, "1"])
      }))
  })

  describe("pid", () => {
    it.effect("a new pid namespace: a process inside is in it with a small pid; processes inside see each other, not the host's", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.unshareCurrent(["pid", "mnt"])
        const id = yield* NamespaceSet.id(set, "pid")
        assert.notStrictEqual(id, mainId("pid"))
        const propagation = yield* NamespaceSet.run(set, Task.exec("findmnt", ["-no", "PROPAGATION", "/"]))
        assert.strictEqual(propagation.stdout.trim(), "private")
        const result = yield* NamespaceSet.run(set, Task.exec("sh", ["-c", "readlink /proc/self/ns/pid; echo $$; mount -t proc proc /proc && ps -e -o pid=,comm="]))
        assert.strictEqual(result.exitCode, 0, result.stderr)
        const [link, pid, ...ps] = result.stdout.trim().split("\n")
        assert.strictEqual(link, id)
        assert.isBelow(Number(pid), 10)
        const seen = ps.map((line) => line.trim().split(/\s+/))
        assert.includeMembers(seen.map(([, comm]) => comm), ["sh", "ps"])
        assert.isBelow(seen.length, 5, JSON.stringify(seen))
        for (const [p] of seen) assert.isBelow(Number(p), 10)
        // The host's /proc is untouched.
        assert.isTrue(fs.existsSync(`/proc/${process.pid}`))
      }))

    it.effect("closing the set's Scope kills its init, and nothing is left in /proc", () =>
      Effect.gen(function*() {
        const id = yield* Effect.scoped(Effect.gen(function*() {
          const set = yield* NamespaceSet.unshareCurrent(["pid"])
          const id = yield* NamespaceSet.id(set, "pid")
          assert.lengthOf(childrenIn(id), 1, "the set owns one init")
          // A dup keeps it alive after the original closes... until the dup closes too.
          const twice = yield* NamespaceSet.run(set, Task.exec("sh", ["-c", "echo $$"]))
          assert.strictEqual(twice.stdout.trim(), "2")
          return id
        }))
        assert.lengthOf(childrenIn(id), 0)
        const left = fs.readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).filter((pid) => {
          try {
            return fs.readlinkSync(`/proc/${pid}/ns/pid`) === id
          } catch {
            return false
          }
        })
        assert.deepStrictEqual(left, [])
      }))

    it.effect("a dup of a pid set keeps the namespace usable after the original closes", () =>
      Effect.gen(function*() {
        // Each set in a Scope of its own, closed here in turn (and at the end, should the test fail).
        const originalScope = yield* Scope.make()
        const dupScope = yield* Scope.make()
        yield* Effect.addFinalizer(() => Effect.andThen(Scope.close(dupScope, Exit.void), Scope.close(originalScope, Exit.void)))
        const original = yield* Scope.provide(NamespaceSet.unshareCurrent(["pid"]), originalScope)
        const id = yield* NamespaceSet.id(original, "pid")
        const inits = childrenIn(id)
        assert.lengthOf(inits, 1, "the set owns one init")
        const init = inits[0]!
        const dup = yield* Scope.provide(NamespaceSet.dup(original), dupScope)
        yield* Scope.close(originalScope, Exit.void)
        assert.strictEqual((yield* Effect.flip(NamespaceSet.id(original, "pid")))._tag, "SetClosed", "the original is closed")
        // Processes can still be started in the namespace, and the init lives on for the dup.
        const result = yield* NamespaceSet.run(dup, Task.exec("sh", ["-c", "echo $$; readlink /proc/self/ns/pid"]))
        assert.strictEqual(result.exitCode, 0, result.stderr)
        const [pid, link] = result.stdout.trim().split("\n")
        assert.strictEqual(link, id)
        assert.isAbove(Number(pid), 1)
        assert.isBelow(Number(pid), 100)
        assert.isTrue(alive(init), `init ${init} was killed when the original closed`)
        assert.deepStrictEqual(childrenIn(id), [init])
        // The last set holding the init closes: it is killed and reaped.
        yield* Scope.close(dupScope, Exit.void)
        assert.isTrue(yield* Effect.promise(() => eventually(() => !alive(init))), `init ${init} still alive`)
        assert.deepStrictEqual(childrenIn(id), [])
      }))

    it.effect("user+pid: an init owned by the new user namespace", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.unshareCurrent(["user", "pid", "mnt"], { uidMap: [{ containerId: 0, hostId: 0, size: 1 }], gidMap: [{ containerId: 0, hostId: 0, size: 1 }] })
        const result = yield* NamespaceSet.run(set, Task.exec("sh", ["-c", "echo $$; readlink /proc/self/ns/pid /proc/self/ns/user"]))
        assert.strictEqual(result.exitCode, 0, result.stderr)
        const [pid, pidNs, userNs] = result.stdout.trim().split("\n")
        assert.isBelow(Number(pid), 10)
        assert.strictEqual(pidNs, yield* NamespaceSet.id(set, "pid"))
        assert.strictEqual(userNs, yield* NamespaceSet.id(set, "user"))
        assert.strictEqual(yield* NamespaceSet.id(yield* NamespaceSet.owner(set, "pid"), "user"), userNs)
        assert.strictEqual(yield* NamespaceSet.id(yield* NamespaceSet.parent(set, "pid"), "pid"), mainId("pid"))
        // lsns on the machine lists the same namespaces (the set's init is in them).
        const lsns = spawnSync("lsns", ["-n", "-o", "NS,TYPE"], { encoding: "utf8" }).stdout
        for (const kind of ["user", "pid", "mnt"] as const) {
          assert.include(lsns, `${(yield* NamespaceSet.identity(set, kind)).ino} ${kind}`)
        }
      }))
  })

  describe("pidfd", () => {
    it.effect("fromPid joins a live process's net and uts at once", () =>
      Effect.gen(function*() {
        const target = yield* NamespaceSet.unshareCurrent(["net", "uts"])
        yield* NamespaceSet.run(target, Task.setHostname("pidfd-target"))
        const child = yield* Effect.acquireRelease(
          Effect.map(NamespaceSet.run(target, Task.exec("sh", ["-c", "sleep 30 >/dev/null 2>&1 & echo $!"])), (r) => Number(r.stdout.trim())),
          (pid) => Effect.sync(() => process.kill(pid, "SIGKILL"))
        )
        const byPid = yield* NamespaceSet.fromPid(child, ["net", "uts"])
        assert.isTrue(yield* NamespaceSet.equals(byPid, target))
        const inside = yield* NamespaceSet.run(byPid, Task.exec("sh", ["-c", "hostname; readlink /proc/self/ns/net"]))
        assert.deepStrictEqual(inside.stdout.trim().split("\n"), ["pidfd-target", yield* NamespaceSet.id(target, "net")])
      }))

    it.effect("a set from a process that has since exited fails to join with ProcessNotFound", () =>
      Effect.gen(function*() {
        const target = yield* NamespaceSet.unshareCurrent(["net"])
        const started = yield* NamespaceSet.run(target, Task.exec("sh", ["-c", "sleep 30 >/dev/null 2>&1 & echo $!"]))
        const pid = Number(started.stdout.trim())
        const byPid = yield* NamespaceSet.fromPid(pid, ["net"])
        process.kill(pid, "SIGKILL")
        for (let i = 0; i < 100 && fs.existsSync(`/proc/${pid}`); i++) yield* Effect.sleep("10 millis")
        const error = yield* Effect.flip(NamespaceSet.run(byPid, Task.tid))
        assert.strictEqual(error._tag, "ProcessNotFound")
        if (error._tag === "ProcessNotFound") assert.strictEqual(error.pid, pid)
      }))
  })
  describe("a process that dies holding pid sets", () => {
    for (const mode of ["exit", "kill"] as const) {
      it.effect(`leaves no init behind (${mode === "exit" ? "process.exit" : "SIGKILL"})`, () =>
        Effect.gen(function*() {
          const script = new URL("./fixtures/dies-holding-a-pid-set.ts", import.meta.url).pathname
          const out = `/dev/shm/gonso-dies-${process.pid}-${mode}`
          yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(out, { force: true })))
          // No pipes: an init left alive would share the child's fd table and hold them open.
          const result = spawnSync(process.execPath, [script, mode, out], { stdio: "ignore", timeout: 30_000 })
          assert.strictEqual(result.signal, mode === "kill" ? "SIGKILL" : null)
          const inits = JSON.parse(fs.readFileSync(out, "utf8")) as Array<number>
          assert.lengthOf(inits, 1)
          // Killed, it may still wait for the system's init to reap it: a zombie holds nothing.
          const alive = (pid: number) => {
            try {
              return !/^\d+ \(.*\) [ZX] /.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"))
            } catch {
              return false
            }
          }
          assert.isTrue(yield* Effect.promise(() => eventually(() => !alive(inits[0]!))), `init ${inits[0]} still alive`)
        }))
    }
  })

  describe("interruption", () => {
    it.effect("unshare interrupted at any point leaves no namespace fd and no init process behind", () =>
      Effect.gen(function*() {
        const makers = [
          NamespaceSet.unshareCurrent(["user", "net"], { uidMap: [{ containerId: 0, hostId: 0, size: 1 }] }),
          NamespaceSet.unshareCurrent(["pid", "net"])
        ]
        const children = allChildren()
        for (const [m, make] of makers.entries()) {
          for (let i = 0; i < 16; i++) {
            const fiber = yield* Effect.forkChild(Effect.scoped(Effect.andThen(make, Effect.never)))
            yield* Effect.sleep((i % 8) / 4)
            yield* Fiber.interrupt(fiber)
            const left = { user: foreignNamespaceFds("user"), net: foreignNamespaceFds("net"), pid: foreignNamespaceFds("pid") }
            assert.deepStrictEqual(left, { user: [], net: [], pid: [] }, `maker ${m}, attempt ${i}`)
            assert.deepStrictEqual(allChildren(), children, `maker ${m}, attempt ${i}`)
          }
        }
      }))
  })
})
