import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import { eventually, withThreads } from "./helpers.ts"

const MiB = 1024 * 1024

/** A temporary directory for the length of `f`. */
const inTempDir = <A, E, R>(f: (dir: string) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "gonso-bounded-"))),
    f,
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

withThreads({ min: 1, max: 1 })("reads and output are bounded", (it) => {
  describe("Task.readFile", () => {
    it.effect("reads at most maxBytes (default 16 MiB); more is OutputTooLarge with the path and the limit", () =>
      inTempDir((dir) =>
        Effect.gen(function*() {
          const set = yield* NamespaceSet.current(["mnt"])
          const file = `${dir}/data`
          fs.writeFileSync(file, "x".repeat(4096))
          assert.strictEqual((yield* NamespaceSet.run(set, Task.readFile(file, { maxBytes: 4096 }))).length, 4096)
          const small = yield* Effect.flip(NamespaceSet.run(set, Task.readFile(file, { maxBytes: 1024 })))
          assert.deepInclude(small, { _tag: "OutputTooLarge", operation: "Task.readFile", limit: 1024, path: file })
          // A sparse file larger than the default limit: refused without reading it all.
          fs.truncateSync(file, 17 * MiB)
          const large = yield* Effect.flip(NamespaceSet.run(set, Task.readFile(file)))
          assert.deepInclude(large, { _tag: "OutputTooLarge", limit: 16 * MiB })
          assert.include(large.message, "16777216")
          // A /proc file reports size 0 and is read to its end all the same.
          assert.include(yield* NamespaceSet.run(set, Task.readFile("/proc/self/status")), "Name:")
          for (const maxBytes of [0, -1, 1.5, Number.NaN, 65 * MiB]) {
            const bad = yield* Effect.flip(NamespaceSet.run(set, Task.readFile(file, { maxBytes })))
            assert.deepInclude(bad, { _tag: "InvalidOptions", operation: "Task.readFile" })
            assert.include((bad as { reason: string }).reason, "maxBytes")
          }
        })
      ))

    it.effect("a character device (/dev/null, /dev/zero) or a directory is refused at once, typed", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.current(["mnt"])
        for (const device of ["/dev/null", "/dev/zero"]) {
          const error = yield* Effect.flip(NamespaceSet.run(set, Task.readFile(device)))
          assert.deepInclude(error, { _tag: "InvalidOptions", operation: "Task.readFile" })
          assert.include((error as { reason: string }).reason, "character device")
        }
        const directory = yield* Effect.flip(NamespaceSet.run(set, Task.readFile("/etc")))
        assert.deepInclude(directory, { _tag: "SystemError", errno: "EISDIR", path: "/etc" })
      }))

    it.effect("a FIFO is refused at once; nothing blocks the thread or the layer's closing", () =>
      inTempDir((dir) =>
        Effect.sync(() => {
          const fifo = `${dir}/fifo`
          execFileSync("mkfifo", [fifo])
          const script = new URL("./fixtures/read-fifo.ts", import.meta.url).pathname
          const result = spawnSync(process.execPath, [script, fifo], { encoding: "utf8", timeout: 20_000, killSignal: "SIGKILL" })
          assert.strictEqual(result.status, 0, `the reader did not finish: ${result.signal ?? ""} ${result.stderr}`)
          const outcome = JSON.parse(result.stdout)
          assert.deepInclude(outcome, { exit: "Failure", tag: "InvalidOptions" })
          assert.include(outcome.reason, "FIFO")
          assert.isBelow(outcome.ms, 2_000)
        })
      ))
  })

  describe("Task.writeFile", () => {
    it.effect("a FIFO without a reader is refused at once, not waited on forever", () =>
      inTempDir((dir) =>
        Effect.sync(() => {
          const fifo = `${dir}/fifo`
          execFileSync("mkfifo", [fifo])
          const script = new URL("./fixtures/read-fifo.ts", import.meta.url).pathname
          const result = spawnSync(process.execPath, [script, fifo, "write"], { encoding: "utf8", timeout: 20_000, killSignal: "SIGKILL" })
          assert.strictEqual(result.status, 0, `the writer did not finish: ${result.signal ?? ""} ${result.stderr}`)
          const outcome = JSON.parse(result.stdout)
          assert.deepInclude(outcome, { exit: "Failure", tag: "InvalidOptions" })
          assert.include(outcome.reason, "FIFO")
          assert.isBelow(outcome.ms, 2_000)
        })
      ))

    it.effect("regular files are still written, created with the mode asked for", () =>
      inTempDir((dir) =>
        Effect.gen(function*() {
          const set = yield* NamespaceSet.current(["mnt"])
          yield* NamespaceSet.run(set, Task.writeFile(`${dir}/new`, "first", { mode: 0o600 }))
          yield* NamespaceSet.run(set, Task.writeFile(`${dir}/new`, "2"))
          assert.strictEqual(fs.readFileSync(`${dir}/new`, "utf8"), "2")
          assert.strictEqual(fs.statSync(`${dir}/new`).mode & 0o777, 0o600)
          const error = yield* Effect.flip(NamespaceSet.run(set, Task.writeFile("/dev/full", "x")))
          assert.deepInclude(error, { _tag: "InvalidOptions", operation: "Task.writeFile" })
        })
      ))
  })

  describe("Task.exec", () => {
    it.effect("output past maxBuffer (default 16 MiB, stdout and stderr together) is OutputTooLarge", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.current(["uts"])
        const error = yield* Effect.flip(NamespaceSet.run(set, Task.exec("head", ["-c", String(20 * MiB), "/dev/zero"])))
        assert.deepInclude(error, { _tag: "OutputTooLarge", operation: "Task.exec", limit: 16 * MiB, command: "head" })
        assert.include(error.message, "NamespaceSet.spawn")
        const both = yield* Effect.flip(NamespaceSet.run(set, Task.exec("sh", ["-c", "head -c 3000 /dev/zero; head -c 3000 /dev/zero >&2"], { maxBuffer: 5000 })))
        assert.deepInclude(both, { _tag: "OutputTooLarge", limit: 5000 })
        const fits = yield* NamespaceSet.run(set, Task.exec("sh", ["-c", "head -c 3000 /dev/zero; head -c 1000 /dev/zero >&2"], { maxBuffer: 4000 }))
        assert.deepStrictEqual([fits.stdout.length, fits.stderr.length], [3000, 1000])
        for (const maxBuffer of [0, -5, 2.5, Number.NaN]) {
          const bad = yield* Effect.flip(NamespaceSet.run(set, Task.exec("true", [], { maxBuffer })))
          assert.deepInclude(bad, { _tag: "InvalidOptions", operation: "Task.exec" })
        }
      }))

    it.effect("past the limit the command's whole process group is killed while it prints, and what it printed so far comes with the error", () =>
      inTempDir((dir) =>
        Effect.gen(function*() {
          const set = yield* NamespaceSet.current(["uts"])
          // A slow endless printer with a child of its own, in the same process group.
          const script = `sleep 600 & echo $! > ${dir}/sleeper; echo $$ > ${dir}/shell; while :; do echo 0123456789; done`
          const error = yield* Effect.flip(
            NamespaceSet.run(set, Task.exec("sh", ["-c", script], { maxBuffer: 64 * 1024 })).pipe(Effect.timeout("10 seconds"))
          )
          assert.strictEqual(error._tag, "OutputTooLarge", String(error))
          if (error._tag !== "OutputTooLarge") return
          assert.strictEqual(error.stdout!.length, 64 * 1024)
          assert.match(error.stdout!, /^(0123456789\n)+/)
          for (const file of ["shell", "sleeper"]) {
            const pid = Number(fs.readFileSync(`${dir}/${file}`, "utf8"))
            assert.isTrue(yield* Effect.promise(() => eventually(() => !fs.existsSync(`/proc/${pid}`))), `${file} ${pid} still runs`)
          }
        })
      ))
  })
})
