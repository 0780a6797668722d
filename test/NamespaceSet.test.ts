import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, expect } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import { fixtures, mainId, mainNamespace, onHost, withThreads } from "./helpers.ts"

withThreads({ min: 1, max: 2 })("NamespaceSet", (it) => {
  describe("unshare", () => {
    it.effect("a new net namespace holds only lo, the host's links are unchanged, the ids differ", () =>
      Effect.gen(function*() {
        const hostLinksBefore = onHost("ip", ["-o", "link"])
        const host = yield* NamespaceSet.current(["net"])
        const isolated = yield* NamespaceSet.unshare(host, ["net"])
        const inside = yield* NamespaceSet.run(isolated, Task.exec("ip", ["-o", "link"]))
        assert.strictEqual(inside.exitCode, 0)
        const names = inside.stdout.trim().split("\n").map((line) => line.split(":")[1]!.trim())
        assert.deepStrictEqual(names, ["lo"])
        assert.strictEqual(onHost("ip", ["-o", "link"]), hostLinksBefore)
        assert.notStrictEqual(yield* NamespaceSet.id(isolated, "net"), yield* NamespaceSet.id(host, "net"))
        assert.strictEqual(yield* NamespaceSet.id(host, "net"), mainId("net"))
        // A child started inside reports the set's namespace, as the kernel names it.
        const link = yield* NamespaceSet.run(isolated, Task.exec("readlink", ["/proc/self/ns/net"]))
        assert.strictEqual(link.stdout.trim(), yield* NamespaceSet.id(isolated, "net"))
      }))

    it.effect("a hostname set inside is seen by hostname run inside, not outside", () =>
      Effect.gen(function*() {
        const hostName = onHost("hostname").trim()
        const isolated = yield* NamespaceSet.unshareCurrent(["uts"])
        yield* NamespaceSet.run(isolated, Task.setHostname("gonso-uts-test"))
        const inside = yield* NamespaceSet.run(isolated, Task.exec("hostname"))
        assert.strictEqual(inside.stdout.trim(), "gonso-uts-test")
        assert.strictEqual(yield* NamespaceSet.run(isolated, Task.hostname), "gonso-uts-test")
        assert.strictEqual(onHost("hostname").trim(), hostName)
        assert.strictEqual(os.hostname(), hostName)
      }))

    it.effect("a tmpfs mounted in a new mount namespace is seen inside only, and the thread sees the host again after", () =>
      Effect.gen(function*() {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gonso-mnt-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
        const isolated = yield* NamespaceSet.unshareCurrent(["mnt"])
        // The new namespace was made private: a mount inside cannot propagate to the host.
        const propagation = yield* NamespaceSet.run(isolated, Task.exec("findmnt", ["-no", "PROPAGATION", "/"]))
        assert.strictEqual(propagation.stdout.trim(), "private")
        const inside = yield* NamespaceSet.enter(isolated)
        const mounted = yield* inside.run(Task.exec("sh", ["-c", `mount -t tmpfs gonso-test ${dir} && echo hello > ${dir}/file`]))
        assert.strictEqual(mounted.exitCode, 0, mounted.stderr)
        assert.strictEqual(yield* inside.run(Task.readFile(`${dir}/file`)), "hello\n")
        assert.strictEqual((yield* inside.run(Task.exec("cat", [`${dir}/file`]))).stdout, "hello\n")
        assert.isFalse(fs.existsSync(`${dir}/file`))
        assert.notInclude(fs.readFileSync("/proc/self/mountinfo", "utf8"), dir)
        assert.notInclude(onHost("findmnt", ["-rn", "-o", "TARGET"]), dir)
        // Leave the namespace (the enter Scope closes), then run on the same thread in the host.
        const tid = inside.tid
        return { dir, tid }
      }).pipe(
        Effect.scoped,
        Effect.flatMap(({ dir, tid }) =>
          Effect.gen(function*() {
            const host = yield* NamespaceSet.current(["mnt"])
            const after = yield* NamespaceSet.enter(host)
            assert.strictEqual(after.tid, tid, "the restored thread is reused")
            const read = yield* Effect.exit(after.run(Task.readFile(`${dir}/file`)))
            assert.isTrue(Exit.isFailure(read))
            const ls = yield* after.run(Task.exec("ls", ["-A", dir]))
            assert.strictEqual(ls.stdout, "")
          }).pipe(Effect.scoped)
        )
      ))

    for (const kind of ["ipc", "cgroup", "time"] as const) {
      it.effect(`a new ${kind} namespace differs from the host's, and a child started inside is in it`, () =>
        Effect.gen(function*() {
          const isolated = yield* NamespaceSet.unshareCurrent([kind])
          const id = yield* NamespaceSet.id(isolated, kind)
          assert.notStrictEqual(id, mainId(kind))
          assert.match(id, new RegExp(`^${kind}:\\[\\d+\\]$`))
          const child = yield* NamespaceSet.run(isolated, Task.exec("readlink", [`/proc/self/ns/${kind}`]))
          assert.strictEqual(child.stdout.trim(), id)
          assert.strictEqual(mainId(kind), onHost("readlink", [`/proc/self/ns/${kind}`]).trim())
        }))
    }

    it.effect("a new namespace carries the set's other kinds over", () =>
      Effect.gen(function*() {
        const host = yield* NamespaceSet.current(["net", "uts", "ipc"])
        const isolated = yield* NamespaceSet.unshare(host, ["net"])
        assert.deepStrictEqual(NamespaceSet.kinds(isolated), ["ipc", "uts", "net"])
        assert.strictEqual(yield* NamespaceSet.id(isolated, "uts"), mainId("uts"))
        assert.strictEqual(yield* NamespaceSet.id(isolated, "ipc"), mainId("ipc"))
        assert.notStrictEqual(yield* NamespaceSet.id(isolated, "net"), mainId("net"))
        // A second unshare from that set keeps its net namespace and replaces uts.
        const nested = yield* NamespaceSet.unshare(isolated, ["uts"])
        assert.strictEqual(yield* NamespaceSet.id(nested, "net"), yield* NamespaceSet.id(isolated, "net"))
        assert.notStrictEqual(yield* NamespaceSet.id(nested, "uts"), mainId("uts"))
      }))

    it.effect("a new mount namespace copies the set's mount namespace, not the caller's", () =>
      Effect.gen(function*() {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gonso-copy-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
        const first = yield* NamespaceSet.unshareCurrent(["mnt"])
        const mounted = yield* NamespaceSet.run(first, Task.exec("sh", ["-c", `mount -t tmpfs parent ${dir} && touch ${dir}/marker`]))
        assert.strictEqual(mounted.exitCode, 0, mounted.stderr)
        const second = yield* NamespaceSet.unshare(first, ["mnt"])
        assert.strictEqual((yield* NamespaceSet.run(second, Task.exec("ls", [dir]))).stdout, "marker\n")
        assert.isFalse(fs.existsSync(`${dir}/marker`))
      }))
  })

  describe("sets", () => {
    it.effect("current() holds every kind but user, by the kernel's ids of the main thread", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.current()
        assert.deepStrictEqual(NamespaceSet.kinds(set), ["cgroup", "ipc", "uts", "net", "pid", "mnt", "time"])
        for (const kind of NamespaceSet.kinds(set)) {
          const identity = yield* NamespaceSet.identity(set, kind)
          assert.deepStrictEqual({ dev: identity.dev, ino: identity.ino }, mainNamespace(kind))
          assert.strictEqual(identity.id, mainId(kind))
        }
      }))

    it.effect("fromPid and fromPath read another process's namespaces; equals compares dev+inode", () =>
      Effect.gen(function*() {
        const byPid = yield* NamespaceSet.fromPid(process.pid, ["net", "uts"])
        const byPath = yield* NamespaceSet.fromPath(`/proc/${process.pid}/ns`, ["net", "uts"])
        const byFiles = yield* NamespaceSet.fromFiles({ net: "/proc/self/ns/net", uts: `/proc/${process.pid}/task/${process.pid}/ns/uts` })
        assert.isTrue(yield* NamespaceSet.equals(byPid, byPath))
        assert.isTrue(yield* NamespaceSet.equals(byPid, byFiles))
        const isolated = yield* NamespaceSet.unshare(byPid, ["net"])
        assert.isFalse(yield* NamespaceSet.equals(byPid, isolated))
        assert.isFalse(yield* NamespaceSet.equals(byPid, yield* NamespaceSet.current(["net"])))
      }))

    it.effect("dup and fds hand out independent close-on-exec copies that close with their Scope", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.current(["net", "uts"])
        const copy = yield* Effect.scoped(Effect.gen(function*() {
          const fds = yield* NamespaceSet.fds(set, ["net"])
          const fd = fds.net!
          assert.strictEqual(fs.readlinkSync(`/proc/self/fd/${fd}`), mainId("net"))
          const flags = /flags:\s+([0-7]+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"))![1]!
          assert.notStrictEqual(parseInt(flags, 8) & 0o2000000, 0, "O_CLOEXEC is set")
          return fd
        }))
        assert.isFalse(fs.existsSync(`/proc/self/fd/${copy}`) && fs.readlinkSync(`/proc/self/fd/${copy}`) === mainId("net"))
        const dupScope = yield* Effect.scoped(Effect.gen(function*() {
          const dup = yield* NamespaceSet.dup(set, ["uts"])
          assert.deepStrictEqual(NamespaceSet.kinds(dup), ["uts"])
          assert.strictEqual(yield* NamespaceSet.id(dup, "uts"), mainId("uts"))
          return dup
        }))
        const closed = yield* Effect.flip(NamespaceSet.id(dupScope, "uts"))
        assert.strictEqual(closed._tag, "SetClosed")
        assert.strictEqual(yield* NamespaceSet.id(set, "uts"), mainId("uts"))
      }))
  })

  describe("Task", () => {
    it.effect("identify reports the set's namespaces from the thread's side", () =>
      Effect.gen(function*() {
        const isolated = yield* NamespaceSet.unshareCurrent(["net", "uts"])
        const identity = yield* NamespaceSet.run(isolated, Task.identify)
        assert.strictEqual(identity.namespaces.net.id, yield* NamespaceSet.id(isolated, "net"))
        assert.strictEqual(identity.namespaces.uts.id, yield* NamespaceSet.id(isolated, "uts"))
        assert.deepStrictEqual(
          { dev: identity.namespaces.mnt.dev, ino: identity.namespaces.mnt.ino },
          mainNamespace("mnt")
        )
      }))

    it.effect("exec returns exit codes and output, feeds input, and fails typed for a missing command", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.unshareCurrent(["net"])
        const result = yield* NamespaceSet.run(set, Task.exec("sh", ["-c", "cat; echo err >&2; exit 3"], { input: "in" }))
        assert.deepStrictEqual(result, { exitCode: 3, signal: null, stdout: "in", stderr: "err\n" })
        const missing = yield* Effect.flip(NamespaceSet.run(set, Task.exec("gonso-no-such-command")))
        assert.strictEqual(missing._tag, "CommandNotFound")
        assert.include(missing.message, "gonso-no-such-command")
      }))

    it.effect("writeFile and readFile work in the set's mount namespace", () =>
      Effect.gen(function*() {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gonso-rw-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
        const set = yield* NamespaceSet.unshareCurrent(["mnt"])
        const inside = yield* NamespaceSet.enter(set)
        yield* inside.run(Task.exec("mount", ["-t", "tmpfs", "rw-test", dir]))
        yield* inside.run(Task.writeFile(`${dir}/x`, "written inside"))
        assert.strictEqual(yield* inside.run(Task.readFile(`${dir}/x`)), "written inside")
        assert.strictEqual((yield* inside.run(Task.exec("cat", [`${dir}/x`]))).stdout, "written inside")
        assert.isFalse(fs.existsSync(`${dir}/x`))
        const missing = yield* Effect.flip(inside.run(Task.readFile(`${dir}/missing`)))
        assert.strictEqual(missing._tag, "SystemError")
        if (missing._tag === "SystemError") {
          assert.strictEqual(missing.errno, "ENOENT")
          assert.strictEqual(missing.path, `${dir}/missing`)
        }
      }))

    it.effect("module tasks run on the thread inside the set, with values and errors crossing typed", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.unshareCurrent(["net"])
        const link = yield* NamespaceSet.run(set, Task.module<void, string>(fixtures, "netLink", undefined))
        assert.strictEqual(link, yield* NamespaceSet.id(set, "net"))
        const echoed = yield* NamespaceSet.run(set, Task.module<unknown, { input: unknown; tid: number }>(fixtures, "echo", { a: [1, 2], m: new Map([["k", 1n]]) }))
        assert.deepStrictEqual(echoed.input, { a: [1, 2], m: new Map([["k", 1n]]) })
        const thrown = yield* Effect.flip(NamespaceSet.run(set, Task.module(fixtures, "fail", undefined)))
        assert.strictEqual(thrown._tag, "ModuleTaskError")
        if (thrown._tag === "ModuleTaskError") {
          assert.strictEqual(thrown.name, "Boom")
          assert.include(thrown.message, "it broke")
          assert.strictEqual((thrown.error as { detail: number }).detail, 42)
        }
        const rejected = yield* Effect.flip(NamespaceSet.run(set, Task.module(fixtures, "reject", undefined)))
        assert.strictEqual(rejected._tag === "ModuleTaskError" && rejected.name, "Rejected")
        const missing = yield* Effect.flip(NamespaceSet.run(set, Task.module(fixtures, "nothing", undefined)))
        assert.strictEqual(missing._tag === "ModuleTaskError" && missing.name, "TypeError")
      }))
  })

  describe("the caller's thread", () => {
    it.effect("never moves: the main thread stays in the host namespaces while tasks run", () =>
      Effect.gen(function*() {
        const kinds = ["net", "uts", "ipc", "mnt"] as const
        const before = kinds.map((kind) => mainId(kind))
        const isolated = yield* NamespaceSet.unshareCurrent(kinds)
        const inside = []
        for (const kind of kinds) inside.push(yield* NamespaceSet.id(isolated, kind))
        // The task's child is inside the set while the main thread is asked where it is.
        const fiber = yield* Effect.forkChild(NamespaceSet.run(isolated, Task.exec("sh", ["-c", "readlink /proc/self/ns/net; sleep 0.2"])))
        yield* Effect.sleep("50 millis")
        assert.deepStrictEqual(kinds.map((kind) => fs.readlinkSync(`/proc/thread-self/ns/${kind}`)), before)
        assert.notDeepEqual(before, inside)
        assert.strictEqual((yield* Fiber.join(fiber)).stdout.trim(), inside[0])
        // A child of the main thread is born in the host's namespaces.
        expect(execFileSync("readlink", ["/proc/self/ns/net"], { encoding: "utf8" }).trim()).toBe(before[0])
      }))
  })
})
