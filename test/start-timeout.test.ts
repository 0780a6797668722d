/**
 * `PinnedThreads.layer`'s `startTimeout`: what happens to a thread given up on while it starts.
 * A thread past its birth holds fds (reported in its ready message) that only the main side can
 * close, so a thread that did report ready must not be thrown away with them; a script that is not
 * gonso's worker must not be left running; closing the layer must not wait out the timeout.
 */
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import { eventually, fixtures, openFdCount, threadCount } from "./helpers.ts"

/** A script in a temporary directory, removed with the test's Scope. */
const script = (source: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gonso-start-"))
      fs.writeFileSync(path.join(dir, "worker.mjs"), source)
      return dir
    }),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  ).pipe(Effect.map((dir) => path.join(dir, "worker.mjs")))

const tid = Effect.scoped(Effect.flatMap(NamespaceSet.current(["uts"]), (set) => NamespaceSet.run(set, Task.tid)))

describe("PinnedThreads.layer startTimeout", () => {
  it.live("a thread that reported ready while the main thread was busy past the timeout is not thrown away with its fds", () =>
    Effect.gen(function*() {
      // libuv's threads, which the layer starts for good, are there before counting.
      yield* Effect.promise(() => fs.promises.access("/"))
      const fds = openFdCount()
      const threads = threadCount()
      const stats = yield* Effect.gen(function*() {
        // The layer's first thread starts now; the main thread is then busy past startTimeout,
        // while the thread is born and reports ready.
        yield* Effect.sync(() => {
          const until = Date.now() + 1_500
          while (Date.now() < until) { /* busy */ }
        })
        yield* tid
        return yield* PinnedThreads.stats
      }).pipe(Effect.provide(PinnedThreads.layer({ min: 1, max: 1, startTimeout: "300 millis" })))
      // The thread that reported ready in time is the one that served the run.
      assert.strictEqual(stats.spawned, 1, JSON.stringify(stats))
      assert.isTrue(yield* Effect.promise(() => eventually(() => threadCount() <= threads)), "a thread is left")
      assert.strictEqual(openFdCount(), fds, "fds are left open")
    }))

  for (
    const [what, message] of [
      ["a first message that is not gonso's ready", `{ type: "hello" }`],
      ["a first message that is not an object", "null"],
      ["a first message that is a ready with no fds list", `{ type: "ready", ready: { tid: 1, fds: null } }`],
      ["a first message that is a ready whose fds are no fds", `{ type: "ready", ready: { tid: 1, fds: ["a", -1] } }`]
    ] as const
  ) {
    it.live(`a script whose ${what} is terminated, and the run fails (not the process)`, () =>
      Effect.gen(function*() {
        const worker = yield* script(`import { parentPort } from "node:worker_threads"
parentPort.postMessage(${message})
setInterval(() => {}, 1000)
`)
        const threads = threadCount()
        const failure = yield* tid.pipe(
          Effect.provide(PinnedThreads.layer({ min: 0, workerUrl: worker, startTimeout: "20 seconds" })),
          Effect.timeout("10 seconds"),
          Effect.flip
        )
        assert.strictEqual(failure._tag, "ThreadFailure", String(failure))
        assert.include((failure as { reason?: string }).reason, "unexpected first message")
        // The layer is closed: its thread is gone.
        // (A joined thread can stay listed for a moment while it finishes exiting.)
        assert.isTrue(yield* Effect.promise(() => eventually(() => threadCount() <= threads, 1_000)), "the Worker is left running")
      }))
  }

  it("closing layers while many of gonso's threads start (loading koffi) neither aborts the process nor leaves a thread or an fd", () => {
    const script = new URL("./fixtures/close-while-starting.ts", import.meta.url).pathname
    const result = spawnSync(process.execPath, [script, "4"], { encoding: "utf8", timeout: 120_000 })
    assert.strictEqual(result.status, 0, `exit ${result.status} ${result.signal ?? ""}: ${result.stderr.slice(0, 500)}`)
    const { before, after } = JSON.parse(result.stdout)
    assert.deepStrictEqual(after, before)
  }, 130_000)

  it.live("closing the layer while a thread starts does not wait out startTimeout, and returns once the thread is gone", () =>
    Effect.gen(function*() {
      const worker = yield* script("setInterval(() => {}, 1000)\n")
      const threads = threadCount()
      const started = Date.now()
      yield* tid.pipe(
        Effect.timeout("200 millis"),
        Effect.ignore,
        Effect.provide(PinnedThreads.layer({ min: 1, workerUrl: worker, startTimeout: "20 seconds" }))
      )
      // Not after the 20 seconds of startTimeout.
      assert.isBelow(Date.now() - started, 5_000)
      assert.isTrue(yield* Effect.promise(() => eventually(() => threadCount() <= threads, 1_000)), "the starting thread is left")
    }))
})

describe("a thread that cannot be terminated in time", () => {
  it.live("a module task blocked in a system call: the interrupted caller and the layer's close return, and the thread ends with its fds once the call returns", () =>
    Effect.gen(function*() {
      yield* Effect.promise(() => fs.promises.access("/"))
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gonso-fifo-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      const fifo = path.join(dir, "fifo")
      execFileSync("mkfifo", [fifo])
      const fds = openFdCount()
      const threads = threadCount()
      const started = Date.now()
      // The task blocks opening the FIFO (no writer): neither a cancel nor a terminate reaches it.
      const outcome = yield* Effect.scoped(Effect.flatMap(NamespaceSet.current(["uts"]), (set) =>
        NamespaceSet.run(set, Task.module(fixtures, "readFifo", fifo)).pipe(Effect.timeout("300 millis"), Effect.exit))).pipe(
          Effect.provide(PinnedThreads.layer({ min: 1, max: 1 }))
        )
      assert.strictEqual(outcome._tag, "Failure")
      // The caller's timeout and the layer's close each wait for the thread a bounded time.
      assert.isBelow(Date.now() - started, 15_000)
      // The call returns once a writer opens the FIFO; the thread then ends, and its fds are closed.
      // Opened without blocking: a writer's open waits for a reader, and on a loaded machine the
      // thread may have been ended before its task reached the FIFO (then there is none, ever).
      for (const deadline = Date.now() + 5_000; ;) {
        try {
          fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK))
          break
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "ENXIO") throw error
        }
        if (threadCount() <= threads || Date.now() > deadline) break
        yield* Effect.sleep("20 millis")
      }
      assert.isTrue(yield* Effect.promise(() => eventually(() => threadCount() <= threads, 5_000)), "the thread is left")
      assert.isTrue(yield* Effect.promise(() => eventually(() => openFdCount() <= fds, 5_000)), `fds are left: ${openFdCount()} > ${fds}`)
    }), 30_000)
})
