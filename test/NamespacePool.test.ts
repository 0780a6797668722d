import * as fs from "node:fs"
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Scope, Exit } from "effect"
import { NamespacePool, NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import { eventually, mainId, openFdCount } from "./helpers.ts"

layer(PinnedThreads.layer({ min: 1, max: 2 }), { excludeTestServices: true })("NamespacePool and time offsets", (it) => {
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
        const fdsBefore = openFdCount()
        const scope = yield* Scope.make()
        const pool = yield* Scope.provide(scope)(NamespacePool.make({ kinds: ["net", "uts"], size: 3 }))
        const taken = yield* NamespacePool.take(pool)
        assert.isTrue(yield* Effect.promise(() => eventually(() => Effect.runSync(NamespacePool.ready(pool)) === 3)))
        yield* Scope.close(scope, Exit.void)
        // The taken set is still open (two fds), and nothing else is.
        assert.notStrictEqual(yield* NamespaceSet.id(taken, "uts"), mainId("uts"))
        assert.strictEqual(openFdCount(), fdsBefore + 2)
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
      }))
  })
})
