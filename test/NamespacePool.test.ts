import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { assert, describe } from "@effect/vitest"
import { Effect, Exit, Fiber, Option, Scope } from "effect"
import { NamespacePool, NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import { allChildren, eventually, foreignNamespaceFds, mainId, withThreads } from "./helpers.ts"

withThreads({ min: 1, max: 2 })("NamespacePool and time offsets", (it) => {
  describe("NamespacePool", () => {
    it.effect("sets come out fresh, each after afterCreate ran inside it", () =>
      Effect.gen(function*() {
        const pool = yield* NamespacePool.make({ kinds: ["net"], size: 3, afterCreate: Task.exec("ip", ["link", "set", "lo", "up"]) })
        const ids = new Set<string>()
        for (let i = 0; i < 5; i++) {
          const set = yield* NamespacePool.take(pool)
          const id = yield* NamespaceSet.id(set, "net")
          assert.notStrictEqual(id, mainId("net"))
          ids.add(id)
          const lo = yield* NamespaceSet.run(set, Task.exec("ip", ["-o", "link", "show", "lo"]))
          assert.match(lo.stdout, /state UNKNOWN|<LOOPBACK,UP,LOWER_UP>/)
          assert.include(lo.stdout, "LOOPBACK,UP")
        }
        assert.strictEqual(ids.size, 5)
      }))

    it.effect("taking from a pool whose Scope closed, before or while waiting, fails with SetClosed", () =>
      Effect.gen(function*() {
        const poolScope = yield* Scope.make()
        // Nothing is ready for the first 30 seconds: a taker waits.
        const pool = yield* Scope.provide(poolScope)(NamespacePool.make({ kinds: ["uts"], size: 1, afterCreate: Task.exec("sleep", ["30"]) }))
        const waiting = yield* Effect.forkChild(Effect.scoped(NamespacePool.take(pool)))
        yield* Effect.yieldNow
        yield* Scope.close(poolScope, Exit.void)
        const waited = yield* Fiber.await(waiting)
        assert.strictEqual(Exit.isFailure(waited) ? Option.getOrUndefined(Exit.findErrorOption(waited))?._tag : "success", "SetClosed")
        const after = yield* Effect.flip(Effect.scoped(NamespacePool.take(pool)))
        assert.strictEqual(after._tag, "SetClosed")
      }))

    it.effect("a failing afterCreate reaches the taker as its typed error, without spinning", () =>
      Effect.gen(function*() {
        const pool = yield* NamespacePool.make({ kinds: ["uts"], size: 1, afterCreate: Task.exec("gonso-missing-command") })
        for (let i = 0; i < 2; i++) {
          const error = yield* Effect.flip(NamespacePool.take(pool))
          assert.strictEqual(error._tag, "CommandNotFound")
        }
        // Nothing is made while nobody takes: at most one failure waits.
        yield* Effect.sleep("100 millis")
        assert.isAtMost(yield* NamespacePool.ready(pool), 1)
      }))

    it.effect("closing the pool closes every set it still holds; taken sets belong to their takers", () =>
      Effect.gen(function*() {
        // Pinned threads may come and go meanwhile; what is counted are fds of namespaces the pool made.
        assert.deepStrictEqual([foreignNamespaceFds("net"), foreignNamespaceFds("uts")], [[], []])
        const scope = yield* Scope.make()
        const pool = yield* Scope.provide(scope)(NamespacePool.make({ kinds: ["net", "uts"], size: 3 }))
        const taken = yield* NamespacePool.take(pool)
        assert.isTrue(yield* Effect.promise(() => eventually(() => Effect.runSync(NamespacePool.ready(pool)) === 3)))
        assert.strictEqual(new Set(foreignNamespaceFds("uts")).size, 4)
        assert.strictEqual(foreignNamespaceFds("net").length, 4)
        yield* Scope.close(scope, Exit.void)
        // The taken set is still open (one fd per kind), and nothing else the pool made is.
        assert.deepStrictEqual(
          [foreignNamespaceFds("net"), foreignNamespaceFds("uts")],
          [[yield* NamespaceSet.id(taken, "net")], [yield* NamespaceSet.id(taken, "uts")]]
        )
      }))
    it.effect("closing the pool while it is making a set stops the making and leaves nothing behind", () =>
      Effect.gen(function*() {
        const flag = `/dev/shm/gonso-pool-slow-${process.pid}`
        const pidFile = `${flag}.pid`
        // The first set is made at once (and leaves a flag); the next one's afterCreate hangs.
        const afterCreate = Task.exec("sh", ["-c", `if [ -e ${flag} ]; then echo $$ > ${pidFile}; exec sleep 60; else touch ${flag}; fi`])
        const scope = yield* Scope.make()
        const pool = yield* Scope.provide(scope)(NamespacePool.make({ kinds: ["net"], size: 1, afterCreate }))
        yield* Effect.addFinalizer(() => Effect.sync(() => [flag, pidFile].forEach((file) => fs.rmSync(file, { force: true }))))
        const taken = yield* NamespacePool.take(pool)
        assert.isTrue(yield* Effect.promise(() => eventually(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, "utf8").endsWith("\n"))))
        const hanging = Number(fs.readFileSync(pidFile, "utf8"))
        fs.rmSync(pidFile)
        const started = Date.now()
        yield* Scope.close(scope, Exit.void)
        assert.isBelow(Date.now() - started, 5_000)
        assert.isFalse(fs.existsSync(`/proc/${hanging}`), "the afterCreate command is killed and reaped")
        assert.deepStrictEqual(foreignNamespaceFds("net"), [yield* NamespaceSet.id(taken, "net")])
      }))
  })

  describe("time offsets", () => {
    it.effect("a child inside a time namespace with a boottime offset sees it in /proc/uptime", () =>
      Effect.gen(function*() {
        const day = 86_400
        const set = yield* NamespaceSet.unshareCurrent(["time", "net"], { timeOffsets: { boottime: day, monotonic: 3_600 } })
        assert.notStrictEqual(yield* NamespaceSet.id(set, "time"), mainId("time"))
        assert.notStrictEqual(yield* NamespaceSet.id(set, "net"), mainId("net"))
        const inside = yield* NamespaceSet.run(set, Task.exec("sh", ["-c", "cat /proc/uptime; readlink /proc/self/ns/time /proc/self/ns/net"]))
        assert.strictEqual(inside.exitCode, 0, inside.stderr)
        const [uptime, time, net] = inside.stdout.trim().split("\n")
        const hostUptime = Number(fs.readFileSync("/proc/uptime", "utf8").split(" ")[0])
        const delta = Number(uptime!.split(" ")[0]) - hostUptime
        assert.approximately(delta, day, 5)
        assert.strictEqual(time, yield* NamespaceSet.id(set, "time"))
        assert.strictEqual(net, yield* NamespaceSet.id(set, "net"))
        const bad = yield* Effect.flip(NamespaceSet.unshareCurrent(["net"], { timeOffsets: { boottime: 1 } }))
        assert.strictEqual(bad._tag, "InvalidOptions")
        // The rules of a time namespace are the same with offsets: not in one call with a user
        // or pid namespace (the user namespace would not own it).
        for (const other of ["user", "pid"] as const) {
          const refused = yield* Effect.flip(NamespaceSet.unshareCurrent(["time", other], { timeOffsets: { boottime: 1 } }))
          assert.deepInclude(refused, { _tag: "UnsupportedKind", kind: "time" }, other)
        }
      }))

    it.effect("interrupted at any point, or from a closed set, it leaves no namespace fd and no helper process behind", () =>
      Effect.gen(function*() {
        const children = allChildren()
        for (let i = 0; i < 12; i++) {
          const make = NamespaceSet.unshareCurrent(["time", "net"], { timeOffsets: { boottime: 60 } })
          const fiber = yield* Effect.forkChild(Effect.scoped(Effect.andThen(make, Effect.never)))
          yield* Effect.sleep(i % 6)
          yield* Fiber.interrupt(fiber)
          assert.deepStrictEqual([foreignNamespaceFds("time"), foreignNamespaceFds("net")], [[], []], `attempt ${i}`)
          // The helper is killed and reaped before the interruption completes.
          assert.isTrue(yield* Effect.promise(() => eventually(() => allChildren().join() === children.join())), `attempt ${i}`)
        }
        // From a closed set: SetClosed, before anything is made.
        const closed = yield* Effect.scoped(NamespaceSet.current(["time"]))
        const error = yield* Effect.flip(NamespaceSet.unshare(closed, ["time"], { timeOffsets: { boottime: 60 } }))
        assert.strictEqual(error._tag, "SetClosed")
        assert.deepStrictEqual(foreignNamespaceFds("time"), [])
      }))

    it("out of fds at each of the helper's steps, it fails with a typed EMFILE and leaves no fd and no process", { timeout: 60_000 }, () => {
      // A process of its own: every fd it may have is taken for a moment.
      const child = spawnSync(process.execPath, [new URL("./fixtures/time-helper-emfile.ts", import.meta.url).pathname], { encoding: "utf8", timeout: 50_000 })
      assert.strictEqual(child.status, 0, child.stderr)
      const { attempts } = JSON.parse(child.stdout.trim().split("\n").pop()!) as {
        attempts: ReadonlyArray<{ spare: number; outcome: string; leftFds: ReadonlyArray<string>; leftChildren: ReadonlyArray<string> }>
      }
      for (const attempt of attempts) {
        assert.match(attempt.outcome, /^(ok|SystemError .+ EMFILE)$/, `${attempt.spare} fds to spare`)
        assert.deepStrictEqual([attempt.leftFds, attempt.leftChildren], [[], []], `${attempt.spare} fds to spare: ${attempt.outcome}`)
      }
      // Both ends were reached: some attempts had too few fds, the last had enough.
      assert.isTrue(attempts.some((attempt) => attempt.outcome !== "ok"))
      assert.strictEqual(attempts.at(-1)!.outcome, "ok")
    })
  })
})
