import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it as plain } from "@effect/vitest"
import { Cause, Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import type { InvalidOptions } from "../src/NamespaceError.ts"
import { NamespacedSocket, NamespacePool, NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import { assertInvalid, eventually, withThreads } from "./helpers.ts"


const build = (options: PinnedThreads.Options) => Effect.scoped(Layer.build(PinnedThreads.layer(options)))

describe("options are validated", () => {
  plain.effect("PinnedThreads.layer: min, max (a whole number up to 256) and idleTimeToLive", () =>
    Effect.gen(function*() {
      const operation = "PinnedThreads.layer"
      yield* assertInvalid(build({ min: Number.NaN }), operation, "min")
      yield* assertInvalid(build({ min: -1 }), operation, "min")
      yield* assertInvalid(build({ min: 0, max: 2.5 }), operation, "max")
      yield* assertInvalid(build({ min: 0, max: 0 }), operation, "max")
      yield* assertInvalid(build({ min: 0, max: 100_000 }), operation, "max")
      yield* assertInvalid(build({ min: 3, max: 2 }), operation, "min")
      yield* assertInvalid(build({ min: 0, idleTimeToLive: "bogus" as never }), operation, "idleTimeToLive")
      yield* assertInvalid(build({ min: 0, idleTimeToLive: -5 }), operation, "idleTimeToLive")
      yield* assertInvalid(build({ min: 0, threads: 3 } as never), operation, "threads")
      yield* assertInvalid(build({ min: 0, startTimeout: 0 }), operation, "startTimeout")
      yield* assertInvalid(build({ min: 0, startTimeout: "30 days" }), operation, "startTimeout")
      yield* assertInvalid(build({ min: 0, startTimeout: "soon" as never }), operation, "startTimeout")
      // An object that is no duration (one that cannot even be turned into a string) is refused too.
      yield* assertInvalid(build({ min: 0, startTimeout: Object.create(null) }), operation, "startTimeout")
      yield* assertInvalid(build({ min: 0, idleTimeToLive: { seconds: -1, toString: null } as never }), operation, "idleTimeToLive")
      // Fitting options build.
      yield* build({ min: 0, max: 256, idleTimeToLive: "1 second" })
      yield* build({ min: 0 })
    }))

  plain.effect("PinnedThreads.layer: workerUrl is a file: URL or an absolute path of a file there is", () =>
    Effect.gen(function*() {
      const operation = "PinnedThreads.layer"
      const worker = new URL("../src/internal/worker/main.ts", import.meta.url)
      for (
        const workerUrl of [
          `${fileURLToPath(worker)}\0.js`, // a NUL byte: the path would end there
          "file:///tmp/gonso%00worker.js", // one, encoded
          "./gonso-worker.js", // relative: would depend on the working directory
          "gonso-worker.js",
          "https://example.com/gonso-worker.js",
          new URL("data:text/javascript,1"),
          "file://elsewhere/gonso-worker.js", // a host
          "file:///tmp/a%2Fb.js", // an encoded "/"
          "",
          42,
          null
        ]
      ) {
        yield* assertInvalid(build({ min: 0, workerUrl: workerUrl as never }), operation, "workerUrl")
      }
      // Well formed, but no worker there: refused when the layer is built, naming the file and
      // the bundling docs (it used to fail every run with "Cannot find module").
      const missing = "/nonexistent/gonso-worker.js"
      const exit = yield* Effect.exit(build({ min: 0, workerUrl: missing }))
      const error = exit._tag === "Failure" ? Cause.squash(exit.cause) as InvalidOptions : undefined
      assert.strictEqual(error?._tag, "InvalidOptions")
      assert.include(error?.reason, missing)
      assert.include(error?.reason, "docs/bundling.md")
      yield* assertInvalid(build({ min: 0, workerUrl: "/tmp" }), operation, "not a regular file")
      yield* assertInvalid(build({ min: 0, workerUrl: "/dev/zero" }), operation, "not a regular file")
      // A FIFO with no writer: looked at without waiting for one (opening it to read would).
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gonso-fifo-"))
      try {
        execFileSync("mkfifo", [path.join(dir, "worker.js")])
        yield* assertInvalid(build({ min: 0, workerUrl: path.join(dir, "worker.js") }), operation, "not a regular file")
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
      // A script that never reports ready (a server, say): the thread is given up after
      // startTimeout, terminated, and the run waiting for it fails with ThreadFailure. The start
      // timer runs on the test's clock: it fires when the TestClock has been moved past it.
      const serverDir = fs.mkdtempSync(path.join(os.tmpdir(), "gonso-server-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(serverDir, { recursive: true, force: true })))
      fs.writeFileSync(path.join(serverDir, "server.mjs"), "setInterval(() => {}, 1000)\n")
      const threadsBefore = fs.readdirSync("/proc/self/task").length
      const waiting = yield* Effect.forkChild(Effect.exit(
        Effect.scoped(Effect.flatMap(NamespaceSet.current(["uts"]), (set) => NamespaceSet.run(set, Task.tid))).pipe(
          Effect.provide(PinnedThreads.layer({ min: 0, workerUrl: path.join(serverDir, "server.mjs"), startTimeout: "300 millis" }))
        )
      ))
      // Real time passes meanwhile (the Worker starts), but no start times out before the clock moves.
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 500)))
      assert.isUndefined(waiting.pollUnsafe(), "the start timed out before its time")
      let never = waiting.pollUnsafe()
      for (let i = 0; i < 500 && never === undefined; i++) {
        yield* TestClock.adjust("300 millis")
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
        never = waiting.pollUnsafe()
      }
      assert.isDefined(never, "the start did not time out")
      const result = never!._tag === "Success" ? never!.value : undefined
      const failure = result?._tag === "Failure" ? Cause.squash(result.cause) as { _tag?: string; reason?: string } : undefined
      assert.strictEqual(failure?._tag, "ThreadFailure", String(failure))
      assert.include(failure?.reason, "did not report ready within 300 ms")
      assert.isTrue(yield* Effect.promise(() => eventually(() => fs.readdirSync("/proc/self/task").length <= threadsBefore)), "the thread was not terminated")
      // The worker itself, in every form, builds.
      yield* build({ min: 0, workerUrl: worker })
      yield* build({ min: 0, workerUrl: worker.href })
      yield* build({ min: 0, workerUrl: fileURLToPath(worker) })
    }))
})

withThreads({ min: 1, max: 1 })("options of sets and pools", (it) => {
  it.effect("NamespacePool.make: size a whole number from 1 (NaN made take hang); its unshare options checked up front", () =>
    Effect.gen(function*() {
      const operation = "NamespacePool.make"
      for (const size of [Number.NaN, 0, 2.5, 1e9]) {
        yield* assertInvalid(Effect.scoped(NamespacePool.make({ kinds: ["net"], size })), operation, "size")
      }
      yield* assertInvalid(
        Effect.scoped(NamespacePool.make({ kinds: ["mnt"], size: 1, unshare: { propagation: "shared" as never } })),
        "NamespaceSet.unshare",
        "propagation"
      )
    }))

  it.effect("unshare: propagation, setgroups and timeOffsets take only what they document", () =>
    Effect.gen(function*() {
      const operation = "NamespaceSet.unshare"
      // Became "slave", silently.
      yield* assertInvalid(NamespaceSet.unshareCurrent(["mnt"], { propagation: "shared" as never }), operation, "propagation")
      // An unknown clock was ignored.
      yield* assertInvalid(NamespaceSet.unshareCurrent(["time"], { timeOffsets: { monotonic: 5, boot: 3 } as never }), operation, "boot")
      yield* assertInvalid(NamespaceSet.unshareCurrent(["user"], { setgroups: "maybe" as never }), operation, "setgroups")
      yield* assertInvalid(NamespaceSet.unshareCurrent(["net"], { isolate: true } as never), operation, "isolate")
      // What fits still works.
      yield* NamespaceSet.unshareCurrent(["mnt"], { propagation: "slave" })
    }))

  it.effect("spawn's uid and gid, and a socket's backlog, are whole numbers in range", () =>
    Effect.gen(function*() {
      const set = yield* NamespaceSet.current(["uts"])
      for (const [uid, field] of [[Number.NaN, "uid"], [-1, "uid"], [1.5, "uid"], [2 ** 32, "uid"]] as const) {
        yield* assertInvalid(Effect.scoped(NamespaceSet.spawn(set, "true", [], { uid, gid: 0 })), "NamespaceSet.spawn", field)
        yield* assertInvalid(Effect.scoped(NamespaceSet.spawn(set, "true", [], { uid: 0, gid: uid })), "NamespaceSet.spawn", "gid")
      }
      const net = yield* NamespaceSet.unshareCurrent(["net"])
      for (const backlog of [Number.NaN, -1, 1.5]) {
        yield* assertInvalid(NamespacedSocket.listen(net, { host: "127.0.0.1", backlog }), "NamespacedSocket.listen", "backlog")
      }
    }))

  it.effect("writeFile's mode is a file mode; a netns name is a string", () =>
    Effect.gen(function*() {
      const set = yield* NamespaceSet.current(["mnt"])
      for (const mode of [Number.NaN, -1, 0o10000, 1.5]) {
        yield* assertInvalid(NamespaceSet.run(set, Task.writeFile("/tmp/gonso-mode-never-written", "x", { mode })), "Task.writeFile", "mode")
      }
      yield* assertInvalid(NamespaceSet.fromNetnsName(7 as unknown as string), "NamespaceSet.fromNetnsName", "7")
    }))
})
