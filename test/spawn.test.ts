import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe } from "@effect/vitest"
import { Effect, Fiber, Option, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import { NamespacedProcess, NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import { allChildren, eventually, withThreads } from "./helpers.ts"

const text = (stream: Stream.Stream<Uint8Array, unknown>) =>
  stream.pipe(Stream.decodeText(), Stream.mkString)

withThreads({ min: 1, max: 2 })("NamespaceSet.spawn", (it) => {
  describe("spawn", () => {
    it.effect("the child is inside every kind of the set, by the kernel's own links", () =>
      Effect.gen(function*() {
        const kinds = ["cgroup", "ipc", "uts", "net", "pid", "mnt"] as const
        const set = yield* NamespaceSet.unshareCurrent(kinds)
        const child = yield* NamespaceSet.spawn(set, "sh", ["-c", kinds.map((kind) => `readlink /proc/self/ns/${kind}`).join("; ")])
        const output = yield* text(child.stdout)
        const status = yield* child.exit
        assert.deepStrictEqual(status, { exitCode: 0, signal: null })
        const expected = []
        for (const kind of kinds) expected.push(yield* NamespaceSet.id(set, kind))
        assert.deepStrictEqual(output.trim().split("\n"), expected)
      }))

    it.effect("output streams in before the child exits; stdin reaches it", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.unshareCurrent(["net"])
        const child = yield* NamespaceSet.spawn(set, "sh", ["-c", "echo first; read line; echo \"got $line\"; sleep 0.3; echo last"])
        const first = yield* Effect.callback<string>((resume) => {
          child.stdoutReadable.once("data", (chunk: Buffer) => resume(Effect.succeed(chunk.toString())))
        })
        assert.strictEqual(first, "first\n")
        assert.isTrue(fs.existsSync(`/proc/${child.pid}`), "the child is still running")
        child.stdin.end("hello\n")
        let rest = ""
        child.stdoutReadable.on("data", (chunk: Buffer) => (rest += chunk.toString()))
        const status = yield* child.exit
        assert.strictEqual(status.exitCode, 0)
        yield* Effect.promise(() => eventually(() => rest.includes("last")))
        assert.strictEqual(rest, "got hello\nlast\n")
      }))

    it.effect("closing the Scope kills the child and its group within a bounded time, leaving no zombie", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.unshareCurrent(["uts"])
        const pids = yield* Effect.scoped(Effect.gen(function*() {
          const child = yield* NamespaceSet.spawn(set, "sh", ["-c", "sleep 60 & echo $!; wait"])
          const grandchild = Number((yield* child.stdout.pipe(Stream.decodeText(), Stream.splitLines, Stream.runHead)).pipe(Option.getOrThrow))
          return [child.pid, grandchild]
        }))
        const [child, grandchild] = pids as [number, number]
        // The child is killed and reaped by the time the Scope has closed: not even a zombie.
        assert.isFalse(fs.existsSync(`/proc/${child}`))
        // Its own child, killed with its process group, is dead too (reaping an orphan is the
        // system init's job, so it may linger briefly as a zombie).
        const dead = () => {
          try {
            return /^State:\s+Z/m.test(fs.readFileSync(`/proc/${grandchild}/status`, "utf8"))
          } catch {
            return true
          }
        }
        assert.isTrue(yield* Effect.promise(() => eventually(dead, 2_000)), "the group is killed")
      }))

    it.effect("interrupting the fiber that owns the child kills it", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.unshareCurrent(["uts"])
        let pid = 0
        const fiber = yield* Effect.forkChild(Effect.scoped(Effect.gen(function*() {
          const child = yield* NamespaceSet.spawn(set, "sleep", ["60"])
          pid = child.pid
          return yield* child.exit
        })))
        yield* Effect.promise(() => eventually(() => pid !== 0))
        yield* Fiber.interrupt(fiber)
        assert.isFalse(fs.existsSync(`/proc/${pid}`))
      }))

    it.effect("interrupted at any point while it starts, no child is left running or unreaped", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.unshareCurrent(["uts"])
        const before = allChildren()
        for (let i = 0; i < 40; i++) {
          const fiber = yield* Effect.forkChild(Effect.scoped(Effect.andThen(NamespaceSet.spawn(set, "sleep", ["60"]), Effect.never)))
          yield* Effect.sleep(i % 8 === 0 ? 0 : (i % 8) / 2)
          yield* Fiber.interrupt(fiber)
          assert.deepStrictEqual(allChildren(), before, `attempt ${i}`)
        }
      }))

    it.effect("as a pid namespace's init, the command is pid 1 and ps lists only its own processes", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.unshareCurrent(["pid", "mnt"])
        const child = yield* NamespaceSet.spawn(set, "sh", ["-c", "echo $$; ps -e -o pid=,comm="], { init: true })
        const [self, ...ps] = (yield* text(child.stdout)).trim().split("\n").map((line) => line.trim())
        assert.strictEqual((yield* child.exit).exitCode, 0)
        assert.strictEqual(self, "1")
        assert.deepStrictEqual(ps.map((line) => line.split(/\s+/)[1]).sort(), ["ps", "sh"])
      }))

    it.effect("options: cwd, env, uid and gid; a missing command is CommandNotFound", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.unshareCurrent(["uts"])
        const child = yield* NamespaceSet.spawn(set, "sh", ["-c", "pwd; echo $GREETING; id -u; id -g"], {
          cwd: "/tmp",
          env: { GREETING: "hi", PATH: process.env.PATH },
          uid: 65534,
          gid: 65534
        })
        assert.deepStrictEqual((yield* text(child.stdout)).trim().split("\n"), ["/tmp", "hi", "65534", "65534"])
        const missing = yield* Effect.flip(NamespaceSet.spawn(set, "gonso-no-such-command"))
        assert.strictEqual(missing._tag, "CommandNotFound")
        // Nothing of the failed attempt is left open.
        const fds = fs.readdirSync("/proc/self/fd").length
        yield* Effect.flip(Effect.scoped(NamespaceSet.spawn(set, "gonso-no-such-command")))
        assert.strictEqual(fs.readdirSync("/proc/self/fd").length, fds)
      }))

    it.effect("sets with a user namespace work too", () =>
      Effect.gen(function*() {
        const rootMap = [{ containerId: 0, hostId: 100_000, size: 65_536 }]
        const set = yield* NamespaceSet.unshareCurrent(["user", "net"], { uidMap: rootMap, gidMap: rootMap })
        const child = yield* NamespaceSet.spawn(set, "sh", ["-c", "id -u; readlink /proc/self/ns/user"])
        assert.deepStrictEqual((yield* text(child.stdout)).trim().split("\n"), ["0", yield* NamespaceSet.id(set, "user")])
        assert.strictEqual(yield* NamespaceSet.run(set, Task.exec("true")).pipe(Effect.map((r) => r.exitCode)), 0)
      }))
  })
})

withThreads({ min: 1, max: 1 })("NamespacedProcess.layerSpawner", (it) => {
  it.effect("Effect's ChildProcess commands, pipelines and shells run inside the set", () =>
    Effect.gen(function*() {
      const set = yield* NamespaceSet.unshareCurrent(["net", "uts", "mnt"])
      yield* NamespaceSet.run(set, Task.setHostname("spawner-box"))
      const expected = `${yield* NamespaceSet.id(set, "net")}`
      const spawner = NamespacedProcess.layerSpawner(set)
      const output = (command: ChildProcess.Command) =>
        Effect.flatMap(ChildProcessSpawner.ChildProcessSpawner, (spawner) => spawner.string(command)).pipe(Effect.provide(spawner))
      assert.strictEqual((yield* output(ChildProcess.make("hostname"))).trim(), "spawner-box")
      assert.strictEqual((yield* output(ChildProcess.make("readlink", ["/proc/self/ns/net"]))).trim(), expected)
      // Each stage of a pipeline is inside.
      const piped = ChildProcess.make("readlink", ["/proc/self/ns/uts"]).pipe(ChildProcess.pipeTo(ChildProcess.make("sh", ["-c", "cat; hostname"])))
      assert.deepStrictEqual((yield* output(piped)).trim().split("\n"), [yield* NamespaceSet.id(set, "uts"), "spawner-box"])
      // A shell command's shell runs inside, in the set's mount namespace's /tmp.
      assert.strictEqual((yield* output(ChildProcess.make("hostname && pwd", { shell: true, cwd: "/tmp" }))).trim(), "spawner-box\n/tmp")
      // A working directory is resolved in the set's mount namespace: one that exists only on a
      // tmpfs mounted inside it.
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gonso-spawner-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      yield* NamespaceSet.run(set, Task.exec("sh", ["-c", `mount -t tmpfs gonso-spawner ${dir} && mkdir ${dir}/only-inside`]))
      assert.isFalse(fs.existsSync(`${dir}/only-inside`))
      assert.strictEqual((yield* output(ChildProcess.make("pwd", { cwd: `${dir}/only-inside` }))).trim(), `${dir}/only-inside`)
    }))

  it.effect("a command is refused where Effect's own spawner would refuse it: arguments beside a shell, a cwd no path can be; an empty shell is none", () =>
    Effect.gen(function*() {
      const set = yield* NamespaceSet.unshareCurrent(["uts", "mnt"])
      const output = (command: ChildProcess.Command) =>
        Effect.flatMap(ChildProcessSpawner.ChildProcessSpawner, (spawner) => spawner.string(command)).pipe(
          Effect.provide(NamespacedProcess.layerSpawner(set))
        )
      // Joined into the shell's script, arguments would be run as commands of their own.
      for (
        const command of [
          ChildProcess.make("echo", ["hello; echo injected"], { shell: true }),
          ChildProcess.make("echo", ["hello; echo injected"], { shell: "/bin/sh" }),
          ChildProcess.make("true").pipe(ChildProcess.pipeTo(ChildProcess.make("echo", ["$(echo injected)"], { shell: true })))
        ]
      ) {
        const error = yield* Effect.flip(output(command))
        assert.strictEqual(error._tag, "PlatformError", String(error))
        assert.include(error.message, "The shell option cannot be combined with arguments")
      }
      // A working directory no path can be (PATH_MAX) is refused, rather than dying in spawn (E2BIG)
      // once it is too long for nsenter's command line.
      for (const length of [5_000, 200_000]) {
        const error = yield* Effect.flip(output(ChildProcess.make("pwd", { cwd: `/${"x".repeat(length)}` })))
        assert.strictEqual(error._tag, "PlatformError", String(error))
        assert.include(error.message, "cwd")
      }
      // Node runs a command with an empty shell directly.
      assert.strictEqual(yield* output(ChildProcess.make("hostname", { shell: "" })), `${os.hostname()}\n`)
    }))

  it.effect("without a mount namespace in the set, a working directory is the host's", () =>
    Effect.gen(function*() {
      const set = yield* NamespaceSet.unshareCurrent(["uts"])
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gonso-spawner-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      const output = yield* Effect.flatMap(ChildProcessSpawner.ChildProcessSpawner, (spawner) =>
        spawner.string(ChildProcess.make("sh", ["-c", "pwd; readlink /proc/self/ns/uts"], { cwd: dir }))).pipe(Effect.provide(NamespacedProcess.layerSpawner(set)))
      assert.deepStrictEqual(output.trim().split("\n"), [dir, yield* NamespaceSet.id(set, "uts")])
    }))
})
