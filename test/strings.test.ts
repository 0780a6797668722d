import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import { NamespacedSocket, NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import type { NamespaceKind } from "../src/NamespaceKind.ts"
import * as libc from "../src/internal/libc.ts"
import { assertInvalid, withThreads } from "./helpers.ts"


/** A temporary directory for the length of `f`, removed however `f` ends. */
const inTempDir = <A, E, R>(f: (dir: string) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "gonso-nul-"))),
    f,
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

withThreads({ min: 1, max: 1 })("strings that reach libc", (it) => {
  describe("a NUL byte in a path or name is InvalidOptions naming the field, before anything is opened", () => {
    it.effect("sets opened from files and directories", () =>
      Effect.gen(function*() {
        // koffi ends a C string at its first NUL: this opened /proc/self/ns/net.
        yield* assertInvalid(NamespaceSet.fromFiles({ net: "/proc/self/ns/net\0/etc/passwd" }), "NamespaceSet.fromFiles", "net")
        yield* assertInvalid(NamespaceSet.fromPath("/proc/self/ns\0/etc", ["net"]), "NamespaceSet.fromPath", "dir")
        // Not a string at all: was a defect (or a ThreadFailure of no known shape).
        yield* assertInvalid(NamespaceSet.fromFiles({ net: 1 as unknown as string }), "NamespaceSet.fromFiles", "net")
        yield* assertInvalid(NamespaceSet.fromPath(undefined as unknown as string, ["net"]), "NamespaceSet.fromPath", "dir")
      }))

    it.effect("tasks: readFile, writeFile, setHostname", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.unshareCurrent(["uts"])
        yield* assertInvalid(NamespaceSet.run(set, Task.readFile("/etc/hostname\0/etc/shadow")), "Task.readFile", "path")
        yield* inTempDir((dir) =>
          Effect.gen(function*() {
            yield* assertInvalid(NamespaceSet.run(set, Task.writeFile(`${dir}/a\0b`, "x")), "Task.writeFile", "path")
            assert.deepStrictEqual(fs.readdirSync(dir), [])
          })
        )
        yield* assertInvalid(NamespaceSet.run(set, Task.setHostname("box\0evil")), "Task.setHostname", "name")
        assert.notInclude(yield* NamespaceSet.run(set, Task.hostname), "box")
        // The same through a thread leased by enter.
        const inside = yield* NamespaceSet.enter(set)
        yield* assertInvalid(inside.run(Task.setHostname("box\0evil")), "Task.setHostname", "name")
      }))

    it.effect("commands: the command, each argument, the environment and the working directory", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.current(["uts"])
        const run = (command: string, args: Array<string>, options: Task.ExecOptions = {}) =>
          NamespaceSet.run(set, Task.exec(command, args, options))
        yield* assertInvalid(run("echo\0x", []), "Task.exec", "command")
        yield* assertInvalid(run("echo", ["a", "b\0c"]), "Task.exec", "args[1]")
        yield* assertInvalid(run("env", [], { env: { A: "1\0B=2" } }), "Task.exec", "env.A")
        yield* assertInvalid(run("env", [], { env: { "A\0B": "1" } }), "Task.exec", "env")
        yield* assertInvalid(run("env", [], { env: { "A=B": "1" } }), "Task.exec", "env")
        yield* assertInvalid(run("pwd", [], { cwd: "/tmp\0/etc" }), "Task.exec", "cwd")
        yield* assertInvalid(run("echo", ["a", 7 as unknown as string]), "Task.exec", "args[1]")
        yield* assertInvalid(NamespaceSet.spawn(set, "echo", ["x\0y"]), "NamespaceSet.spawn", "args[0]")
        const inside = yield* NamespaceSet.enter(set)
        yield* assertInvalid(inside.run(Task.exec("echo", ["x\0y"])), "Task.exec", "args[0]")
      }))

    it.effect("a unix socket's path", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.unshareCurrent(["net"])
        yield* inTempDir((dir) =>
          Effect.gen(function*() {
            yield* assertInvalid(NamespacedSocket.listen(set, { type: "unix", path: `${dir}/s\0x` }), "NamespacedSocket.listen", "path")
            assert.deepStrictEqual(fs.readdirSync(dir), [])
          })
        )
      }))

    it.effect("mount targets (in a mount namespace of the test's own)", () =>
      Effect.gen(function*() {
        const mnt = yield* NamespaceSet.unshareCurrent(["mnt"])
        const set = yield* NamespaceSet.current(["uts"])
        const options = { mountNamespace: mnt }
        yield* assertInvalid(NamespaceSet.mountKind(set, "uts", "/tmp/gonso-nul\0x", options), "NamespaceSet.mountKind", "file")
        yield* assertInvalid(NamespaceSet.mount(set, "/tmp/gonso-nul\0x", options), "NamespaceSet.mount", "dir")
        yield* assertInvalid(Effect.scoped(NamespaceSet.mountScoped(set, "/tmp/gonso-nul\0x", options)), "NamespaceSet.mountScoped", "dir")
        yield* assertInvalid(Effect.scoped(NamespaceSet.mountKindScoped(set, "uts", "/tmp/gonso-nul\0x", options)), "NamespaceSet.mountKindScoped", "file")
        yield* assertInvalid(NamespaceSet.unmount(["/tmp/gonso-nul\0x"], options), "NamespaceSet.unmount", "paths[0]")
        assert.isFalse(fs.existsSync("/tmp/gonso-nul"))
      }))
  })

  it.effect("the libc wrappers refuse a string with a NUL byte themselves (the last line of defence)", () =>
    Effect.sync(() => {
      const refused = (f: () => unknown) => {
        try {
          f()
        } catch (error) {
          assert.instanceOf(error, libc.SyscallFailure)
          assert.strictEqual((error as libc.SyscallFailure).errno, "EINVAL")
          return
        }
        assert.fail("the call was made")
      }
      refused(() => libc.open("/proc/self/ns/net\0/etc/passwd"))
      refused(() => libc.unmount("/tmp/gonso-nul\0x"))
      refused(() => libc.bindMount("/proc/self/ns/net\0", "/tmp/gonso-nul\0x"))
      refused(() => libc.socketAddress(libc.AF_UNIX, "/tmp/s\0x", 0))
      refused(() => libc.socketAddress(libc.AF_INET, "127.0.0.1\0x", 80))
      refused(() => libc.spawn({ file: "true\0x", argv: ["true"], env: [], stdio: [0, 1, 2] }))
      refused(() => libc.spawn({ file: "true", argv: ["true", "a\0b"], env: [], stdio: [0, 1, 2] }))
      assert.isFalse(fs.existsSync("/tmp/gonso-nul"))
      void ([] as Array<NamespaceKind>)
    }))
})
