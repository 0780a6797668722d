/**
 * The pool of pinned threads: threads that die or expire, starting threads, values that cannot
 * cross to a thread, and closing the layer.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Option, Scope } from "effect"
import { TestClock } from "effect/testing"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import { eventually, fixtures, threadExists } from "./helpers.ts"

/** Waits `ms` of real time, whatever clock the test runs on. */
const realSleep = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

/** Runs `effect` with a pinned-thread layer of its own, torn down when it ends. */
const withThreads = (options: PinnedThreads.Options) =>
<A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provide(effect, PinnedThreads.layer(options))

/** Polls the service's stats until `done` holds (for at most 10 s), and returns them. */
const statsWhen = (done: (stats: PinnedThreads.Stats) => boolean) =>
  Effect.gen(function*() {
    let stats = yield* PinnedThreads.stats
    for (let i = 0; i < 500 && !done(stats); i++) {
      yield* Effect.sleep("20 millis")
      stats = yield* PinnedThreads.stats
    }
    return stats
  })

describe("pinned-thread core", () => {
  describe("threads that die or expire", () => {
    it.live("a thread that dies while idle is never handed to the next caller; it is counted as dropped", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.current(["uts"])
        const before = yield* PinnedThreads.stats
        const tid = yield* NamespaceSet.run(set, Task.tid)
        // The task succeeds; its thread ends a moment later, idle in the pool.
        assert.strictEqual(yield* NamespaceSet.run(set, Task.module<void, string>(fixtures, "exitWhenIdle", undefined)), "bye")
        assert.isTrue(yield* Effect.promise(() => eventually(() => !threadExists(tid))), `thread ${tid} did not exit`)
        // The next caller gets a live thread, not the dead one.
        assert.strictEqual(yield* NamespaceSet.run(set, Task.hostname), os.hostname())
        const next = yield* NamespaceSet.run(set, Task.tid)
        assert.notStrictEqual(next, tid)
        assert.isTrue(threadExists(next))
        const after = yield* statsWhen((stats) => stats.dropped > before.dropped)
        assert.strictEqual(after.dropped, before.dropped + 1)
        assert.strictEqual(after.retired, before.retired)
      }).pipe(withThreads({ min: 1, max: 1 })))

    it.effect("a thread retired after its idle time to live is counted as retired, not dropped, when the layer's clock says so", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.current(["uts"])
        const tid = yield* NamespaceSet.run(set, Task.tid)
        // Real time passes, the layer's clock (the test's) does not: the thread stays.
        yield* realSleep(300)
        assert.isTrue(threadExists(tid))
        assert.strictEqual((yield* PinnedThreads.stats).retired, 0)
        // Past its time to live on that clock, it goes.
        let stats = yield* PinnedThreads.stats
        for (let i = 0; i < 200 && !(stats.idle === 0 && stats.busy === 0 && stats.retired + stats.dropped >= 1); i++) {
          yield* TestClock.adjust("30 millis")
          yield* realSleep(10)
          stats = yield* PinnedThreads.stats
        }
        assert.deepInclude(stats, { idle: 0, busy: 0, spawned: 1 }, JSON.stringify(stats))
        assert.strictEqual(stats.retired, 1, JSON.stringify(stats))
        assert.strictEqual(stats.dropped, 0, JSON.stringify(stats))
        assert.isFalse(threadExists(tid))
      }).pipe(withThreads({ min: 0, max: 2, idleTimeToLive: "50 millis" })))
  })

  describe("starting threads", () => {
    it.live("a thread that cannot be started (EAGAIN under RLIMIT_NPROC) is a typed ThreadFailure, not a defect", () =>
      Effect.sync(() => {
        const script = new URL("./fixtures/thread-limit.ts", import.meta.url).pathname
        // An unprivileged uid nothing else on the machine runs as: RLIMIT_NPROC counts every
        // process and thread of the uid.
        const uid = 47_000 + (process.pid % 1_000)
        const child = spawnSync(process.execPath, [script, String(uid)], { encoding: "utf8", timeout: 30_000 })
        assert.strictEqual(child.status, 0, child.stderr)
        const result = JSON.parse(child.stdout) as { _tag: string; reason?: string; defect?: string }
        assert.strictEqual(result._tag, "ThreadFailure", child.stdout)
        assert.match(result.reason ?? "", /EAGAIN/, child.stdout)
      }))
  })

  describe("values that cannot cross threads", () => {
    /**
     * Runs `effect` between two runs of `Task.tid`, checks its outcome with `check`, then that the
     * same thread served before and after and none was dropped.
     */
    const reused = <A, E, R>(effect: Effect.Effect<A, E, R>, check: (exit: Exit.Exit<A, E>) => void) =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.current(["uts"])
        const tid = yield* NamespaceSet.run(set, Task.tid)
        const before = yield* PinnedThreads.stats
        check(yield* Effect.exit(effect))
        assert.strictEqual(yield* NamespaceSet.run(set, Task.tid), tid, "the thread was not reused")
        assert.strictEqual((yield* PinnedThreads.stats).dropped, before.dropped)
      })

    /** The typed error `exit` failed with; an assertion failure for anything else. */
    const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
      assert.isTrue(Exit.isFailure(exit) && !Exit.hasDies(exit) && !Exit.hasInterrupts(exit), `not a typed failure: ${String(exit)}`)
      return Option.getOrThrow(Exit.findErrorOption(exit))
    }

    it.live("a module task that returns a function fails with ModuleTaskError (DataCloneError), and the thread is reused", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.current(["uts"])
        yield* reused(NamespaceSet.run(set, Task.module<void, unknown>(fixtures, "returnFunction", undefined)), (exit) => {
          const error = failureOf(exit)
          assert.strictEqual(error._tag, "ModuleTaskError", error.message)
          // The name structuredClone gives this failure (v8.serialize throws a plain Error instead).
          if (error._tag === "ModuleTaskError") assert.strictEqual(error.name, "DataCloneError")
        })
      }).pipe(withThreads({ min: 1, max: 1 })))

    it.live("a module task that throws a value holding a function (an Error, a plain object) fails with ModuleTaskError, and the thread is reused", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.current(["uts"])
        yield* reused(NamespaceSet.run(set, Task.module<void, unknown>(fixtures, "throwUncloneable", undefined)), (exit) => {
          const error = failureOf(exit)
          assert.strictEqual(error._tag, "ModuleTaskError", error.message)
        })
        // A plain object, not an Error, holding a function.
        yield* reused(NamespaceSet.run(set, Task.module<void, unknown>(fixtures, "throwObjectWithFunction", undefined)), (exit) => {
          const error = failureOf(exit)
          assert.strictEqual(error._tag, "ModuleTaskError", error.message)
        })
      }).pipe(withThreads({ min: 1, max: 1 })))

    it.live("input that cannot be cloned fails with InvalidOptions, not a defect, and the thread is reused", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.current(["uts"])
        yield* reused(NamespaceSet.run(set, Task.module<unknown, unknown>(fixtures, "echo", { f: () => 1 })), (exit) => {
          const error = failureOf(exit)
          assert.strictEqual(error._tag, "InvalidOptions", error.message)
        })
      }).pipe(withThreads({ min: 1, max: 1 })))
  })

  describe("closing the layer", () => {
    it.live("cancels a running task instead of waiting for it: the close ends soon, the thread is gone, the task fails", () =>
      Effect.gen(function*() {
        const signal = `/dev/shm/gonso-core-close-${process.pid}`
        fs.rmSync(signal, { force: true })
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(signal, { force: true })))
        const set = yield* NamespaceSet.current(["uts"])
        const scope = yield* Scope.make()
        const threads = yield* Layer.buildWithScope(PinnedThreads.layer({ min: 1, max: 1 }), scope)
        const tid = yield* NamespaceSet.run(set, Task.tid).pipe(Effect.provideContext(threads))
        // A child of this test: should the close not end it, it is interrupted when the test ends.
        const task = yield* Effect.forkChild(
          NamespaceSet.run(set, Task.module<{ path: string; ms: number }, string>(fixtures, "signalThenWait", { path: signal, ms: 30_000 }))
            .pipe(Effect.provideContext(threads))
        )
        assert.isTrue(yield* Effect.promise(() => eventually(() => fs.existsSync(signal))), "the task did not start")
        assert.strictEqual(Number(fs.readFileSync(signal, "utf8")), tid)
        const closed = yield* Deferred.make<void>()
        yield* Effect.forkDetach(Effect.andThen(Scope.close(scope, Exit.void), Deferred.succeed(closed, undefined)))
        const done = yield* Effect.timeoutOption(Deferred.await(closed), "5 seconds")
        assert.isTrue(Option.isSome(done), "closing the layer did not end within 5 s: it waits for the running task")
        assert.isFalse(threadExists(tid), `thread ${tid} is still in /proc/self/task`)
        const exit = yield* Effect.timeoutOption(Fiber.await(task), "5 seconds")
        assert.isTrue(Option.isSome(exit), "the task's fiber did not end")
        if (Option.isSome(exit)) {
          const ended = exit.value
          assert.isTrue(Exit.isFailure(ended), `the task ended with ${String(ended)}`)
          const failedWithThreadFailure = Exit.isFailure(ended) && Option.exists(
            Exit.findErrorOption(ended),
            (error) => error._tag === "ThreadFailure"
          )
          assert.isTrue(Exit.hasInterrupts(ended) || failedWithThreadFailure, `the task ended with ${String(ended)}`)
        }
      }))
  })
})
