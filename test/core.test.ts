/**
 * The pinned-thread core under concurrency: requests of many callers share a thread and its round
 * trips, and every answer still comes from inside its own set; a thread that stays inside a set
 * between requests is back at its baseline once idle.
 */
import { execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Option, Scope } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import { allChildren, eventually, fixtures, foreignNamespaceFds, mainTask, withThreads } from "./helpers.ts"

const kinds = ["net", "uts", "ipc"] as const

/** Every kind's dev+inode, as a string to compare. */
const identityOf = (ids: Task.ThreadIdentity) => kinds.map((kind) => `${kind}:${ids.namespaces[kind].dev}:${ids.namespaces[kind].ino}`).join(" ")

const setIdentity = (set: NamespaceSet.NamespaceSet) =>
  Effect.map(
    Effect.forEach(kinds, (kind) => NamespaceSet.identity(set, kind)),
    (ids) => ids.map((id) => `${id.kind}:${id.dev}:${id.ino}`).join(" ")
  )

/** The link of `kind` of every thread of this process, by the kernel. */
const threadLinks = (kind: string) =>
  fs.readdirSync("/proc/self/task").flatMap((tid) => {
    try {
      return [fs.readlinkSync(`/proc/self/task/${tid}/ns/${kind}`)]
    } catch {
      return []
    }
  })

withThreads({ min: 1, max: 4 })("pinned-thread core", (it) => {
  describe("batching", () => {
    it.effect("256 concurrent runs over four sets each answer from inside their own set", () =>
      Effect.gen(function*() {
        const host = yield* NamespaceSet.current([...kinds])
        const sets = yield* Effect.forEach([0, 1, 2, 3], () => NamespaceSet.unshare(host, [...kinds]))
        const expected = yield* Effect.forEach(sets, setIdentity)
        assert.strictEqual(new Set(expected).size, 4, "four different sets")
        const answers = yield* Effect.forEach(
          Array.from({ length: 256 }, (_, i) => i),
          (i) => Effect.map(NamespaceSet.run(sets[i % 4]!, Task.identify), (ids) => ({ i, got: identityOf(ids) })),
          { concurrency: "unbounded" }
        )
        for (const { i, got } of answers) assert.strictEqual(got, expected[i % 4], `run ${i}`)
        // The kernel agrees from outside: what a child started inside sees.
        for (const [i, set] of sets.entries()) {
          const link = (yield* NamespaceSet.run(set, Task.exec("readlink", ["/proc/self/ns/net"]))).stdout.trim()
          assert.strictEqual(link, yield* NamespaceSet.id(set, "net"), `set ${i}`)
        }
      }))

    it.effect("runs on the host set interleaved with a new set never see each other's namespaces", () =>
      Effect.gen(function*() {
        const host = yield* NamespaceSet.current([...kinds])
        const isolated = yield* NamespaceSet.unshare(host, [...kinds])
        const hostId = yield* setIdentity(host)
        const isolatedId = yield* setIdentity(isolated)
        const answers = yield* Effect.forEach(
          Array.from({ length: 200 }, (_, i) => i),
          (i) => Effect.map(NamespaceSet.run(i % 3 === 0 ? isolated : host, Task.identify), (ids) => ({ i, got: identityOf(ids) })),
          { concurrency: 16 }
        )
        for (const { i, got } of answers) assert.strictEqual(got, i % 3 === 0 ? isolatedId : hostId, `run ${i}`)
      }))

    it.effect("eight callers looping on one set for 40,000 runs all get their answers from the one thread", () =>
      Effect.gen(function*() {
        const isolated = yield* NamespaceSet.unshareCurrent(["net"])
        const tid = yield* NamespaceSet.run(isolated, Task.tid)
        const counts = yield* Effect.forEach(Array.from({ length: 8 }, () => 0), () =>
          Effect.gen(function*() {
            let same = 0
            for (let i = 0; i < 5_000; i++) if ((yield* NamespaceSet.run(isolated, Task.tid)) === tid) same++
            return same
          }), { concurrency: "unbounded" })
        assert.deepStrictEqual(counts, Array.from({ length: 8 }, () => 5_000))
      }))
  })

  describe("staying inside a set", () => {
    it.effect("back-to-back runs keep the thread inside; once idle it is back in the host namespaces, by the kernel", () =>
      Effect.gen(function*() {
        const isolated = yield* NamespaceSet.unshareCurrent(["net", "uts"])
        const tid = yield* NamespaceSet.run(isolated, Task.tid)
        for (let i = 0; i < 100; i++) assert.strictEqual(yield* NamespaceSet.run(isolated, Task.tid), tid)
        const host = { net: fs.readlinkSync(`${mainTask}/ns/net`), uts: fs.readlinkSync(`${mainTask}/ns/uts`) }
        const back = () =>
          fs.readlinkSync(`/proc/self/task/${tid}/ns/net`) === host.net && fs.readlinkSync(`/proc/self/task/${tid}/ns/uts`) === host.uts
        assert.isTrue(yield* Effect.promise(() => eventually(back, 2_000)), "the idle thread returned to the host namespaces")
        assert.strictEqual((yield* PinnedThreads.stats).dropped, 0)
      }))

    it.effect("a set's namespace is no longer held by any thread soon after its last run", () =>
      Effect.gen(function*() {
        const id = yield* Effect.scoped(Effect.gen(function*() {
          const isolated = yield* NamespaceSet.unshareCurrent(["net"])
          yield* NamespaceSet.run(isolated, Task.tid)
          return yield* NamespaceSet.id(isolated, "net")
        }))
        assert.isTrue(yield* Effect.promise(() => eventually(() => !threadLinks("net").includes(id), 2_000)), `${id} still held by a thread`)
      }))
  })

  describe("interruption", () => {
    it.effect("a caller interrupted while its request is in flight costs no thread and leaves the others' answers right", () =>
      Effect.gen(function*() {
        const isolated = yield* NamespaceSet.unshareCurrent(["net"])
        const expected = yield* NamespaceSet.id(isolated, "net")
        const before = yield* PinnedThreads.stats
        const tid = yield* NamespaceSet.run(isolated, Task.tid)
        for (let round = 0; round < 50; round++) {
          const fibers = yield* Effect.forEach(
            Array.from({ length: 8 }, () => 0),
            // Forked one after another by this fiber, so they live as long as it does.
            () => Effect.forkChild(NamespaceSet.run(isolated, Task.identify))
          )
          yield* Fiber.interrupt(fibers[round % 8]!)
          for (const [i, fiber] of fibers.entries()) {
            if (i === round % 8) continue
            const ids = yield* Fiber.join(fiber)
            assert.strictEqual(ids.namespaces.net.id, expected)
          }
        }
        assert.strictEqual((yield* PinnedThreads.stats).dropped, before.dropped)
        // The kernel still lists the same thread, and it still serves.
        assert.isTrue(fs.existsSync(`/proc/self/task/${tid}`))
        assert.strictEqual(yield* NamespaceSet.run(isolated, Task.tid), tid)
      }))
  })
})

describe("pinned-thread core under faults", () => {
  /** Runs `effect` with a pinned-thread layer of its own. */
  const withThreads = (options: PinnedThreads.Options) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provide(effect, PinnedThreads.layer(options))

  it.live("a caller that gives up after its request was sent keeps the set's fds until the thread has answered", () =>
    Effect.gen(function*() {
      const file = `/dev/shm/gonso-core-slow-${process.pid}`
      fs.writeFileSync(file, "x".repeat(16 * 2 ** 20 - 1))
      // Two processes, each in a UTS namespace of its own, named aaa and bbb.
      const holders = ["aaa", "bbb"].map((name) =>
        spawn("unshare", ["--uts", "sh", "-c", `hostname ${name}; exec sleep 60`], { stdio: "ignore" })
      )
      try {
        yield* Effect.promise(() => eventually(() => holders.every((h) => fs.readlinkSync(`/proc/${h.pid}/ns/uts`) !== fs.readlinkSync("/proc/self/ns/uts"))))
        const host = yield* NamespaceSet.current(["uts"])
        yield* NamespaceSet.run(host, Task.tid)
        // The one thread is busy for milliseconds with a large read; the victim's request goes out
        // in the channel's second slot behind it.
        const slow = yield* Effect.forkChild(NamespaceSet.run(host, Task.readFile(file)))
        const scopeA = yield* Scope.make()
        const setA = yield* Scope.provide(scopeA)(NamespaceSet.fromFiles({ uts: `/proc/${holders[0]!.pid}/ns/uts` }))
        const idA = yield* NamespaceSet.id(setA, "uts")
        const victim = yield* Effect.forkChild(NamespaceSet.run(setA, Task.setHostname("WRONG")))
        yield* Effect.yieldNow
        yield* Fiber.interrupt(victim)
        yield* Scope.close(scopeA, Exit.void)
        assert.include(foreignNamespaceFds("uts"), idA, "A's fd stays open while its request is on the thread")
        // Were A's fd closed now, B would get its number, and the thread would join B for A.
        const setB = yield* NamespaceSet.fromFiles({ uts: `/proc/${holders[1]!.pid}/ns/uts` })
        yield* Fiber.join(slow)
        assert.isTrue(yield* Effect.promise(() => eventually(() => !foreignNamespaceFds("uts").includes(idA))), "A's fd is closed once answered")
        assert.strictEqual(yield* NamespaceSet.run(setB, Task.hostname), "bbb")
        assert.strictEqual(execFileSync("nsenter", ["-t", String(holders[1]!.pid), "-u", "hostname"], { encoding: "utf8" }).trim(), "bbb")
      } finally {
        for (const holder of holders) holder.kill("SIGKILL")
        fs.rmSync(file, { force: true })
      }
    }).pipe(Effect.scoped, withThreads({ min: 1, max: 1 })))

  it.live("requests that fit alone but not together go in several round trips; answers too large together fail typed, alone", () =>
    Effect.gen(function*() {
      const big = "x".repeat(1.2 * 2 ** 20)
      const file = `/dev/shm/gonso-core-big-${process.pid}`
      fs.writeFileSync(file, big)
      try {
        const set = yield* NamespaceSet.unshareCurrent(["uts"])
        const tid = yield* NamespaceSet.run(set, Task.tid)
        const sink = `${file}-sink`
        const writes = yield* Effect.forEach(Array.from({ length: 60 }, () => 0), () => Effect.exit(NamespaceSet.run(set, Task.writeFile(sink, big))), { concurrency: "unbounded" })
        fs.rmSync(sink, { force: true })
        assert.isTrue(writes.every(Exit.isSuccess), "every write crossed")
        const reads = yield* Effect.forEach(Array.from({ length: 60 }, () => 0), () => Effect.exit(NamespaceSet.run(set, Task.readFile(file))), { concurrency: "unbounded" })
        for (const read of reads) {
          if (Exit.isSuccess(read)) assert.strictEqual(read.value.length, big.length)
          else assert.strictEqual(Option.getOrUndefined(Exit.findErrorOption(read))?._tag, "PayloadTooLarge")
        }
        assert.strictEqual(yield* NamespaceSet.run(set, Task.tid), tid, "the same thread served throughout")
      } finally {
        fs.rmSync(file, { force: true })
      }
    }).pipe(Effect.scoped, withThreads({ min: 1, max: 1 })))

  it.live("waiting for a thread of one's own can time out, and is not starved by a stream of shared runs", () =>
    Effect.gen(function*() {
      const set = yield* NamespaceSet.current(["uts"])
      const started = `/dev/shm/gonso-core-lease-${process.pid}`
      const holder = yield* Effect.forkChild(NamespaceSet.run(set, Task.module(fixtures, "signalThenBlock", { path: started, ms: 3_000 })))
      assert.isTrue(yield* Effect.promise(() => eventually(() => fs.existsSync(started))))
      fs.rmSync(started)
      const began = Date.now()
      const waited = yield* NamespaceSet.run(set, Task.module(fixtures, "echo", 1)).pipe(Effect.timeoutOption("100 millis"))
      assert.isTrue(Option.isNone(waited))
      assert.isBelow(Date.now() - began, 2_000, "the wait ended with its timeout, not with the other lease")
      yield* Fiber.join(holder)
      // Sixteen callers keep the only thread busy; a lease still gets it.
      let stop = false
      const stream = yield* Effect.forkChild(Effect.forEach(Array.from({ length: 16 }, () => 0), () =>
        Effect.whileLoop({ while: () => !stop, body: () => NamespaceSet.run(set, Task.tid), step: () => {} }), { concurrency: "unbounded" }))
      const leased = yield* NamespaceSet.run(set, Task.module<number, { input: number }>(fixtures, "echo", 7)).pipe(Effect.timeoutOption("10 seconds"))
      stop = true
      yield* Fiber.join(stream)
      assert.strictEqual(Option.getOrUndefined(leased)?.input, 7)
    }).pipe(Effect.scoped, withThreads({ min: 1, max: 1 })))

  it.live("closing the layer with every kind of operation in flight leaves no child, zombie or namespace fd behind", () =>
    Effect.gen(function*() {
      const fdsBefore = foreignNamespaceFds("net").length + foreignNamespaceFds("uts").length
      const childrenBefore = allChildren()
      const layerScope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(PinnedThreads.layer({ min: 1, max: 4 }), layerScope)
      const sets = yield* Effect.provideContext(Effect.all([NamespaceSet.unshareCurrent(["net"]), NamespaceSet.unshareCurrent(["net", "uts"])]), context)
      const operations: ReadonlyArray<(set: NamespaceSet.NamespaceSet) => Effect.Effect<unknown, unknown, PinnedThreads.PinnedThreads>> = [
        (set) => NamespaceSet.run(set, Task.identify),
        (set) => NamespaceSet.run(set, Task.exec("sleep", ["0.2"])),
        (set) => Effect.scoped(Effect.flatMap(NamespaceSet.spawn(set, "sleep", ["3"]), (child) => child.exit)),
        (set) => Effect.scoped(Effect.flatMap(NamespaceSet.enter(set), (inside) => inside.run(Task.identify))),
        (set) => Effect.scoped(NamespaceSet.unshare(set, ["uts"]))
      ]
      const fibers = []
      for (let i = 0; i < 100; i++) {
        fibers.push(yield* Effect.forkDetach(Effect.provideContext(operations[i % operations.length]!(sets[i % 2]!), context)))
      }
      yield* Effect.sleep("20 millis")
      yield* Scope.close(layerScope, Exit.void)
      for (const fiber of fibers) {
        const exit = yield* Fiber.await(fiber).pipe(Effect.timeoutOption("10 seconds"))
        assert.isTrue(Option.isSome(exit), "every caller got an answer")
        const value = Option.getOrUndefined(exit)!
        if (Exit.isFailure(value)) assert.isFalse(Exit.hasDies(value), String(value))
      }
      assert.isTrue(yield* Effect.promise(() => eventually(() => allChildren().length === childrenBefore.length, 5_000)), `children left: ${allChildren()}`)
      // The two sets are still open in this scope: two net fds and one uts fd beyond what was there.
      assert.strictEqual(foreignNamespaceFds("net").length + foreignNamespaceFds("uts").length, fdsBefore + 3)
    }).pipe(Effect.scoped))
})

describe("pinned-thread core: neighbours", () => {
  it.live("time namespaces made while 32 callers run on other sets cost those callers nothing", () =>
    Effect.gen(function*() {
      const sets = [yield* NamespaceSet.current(["net", "uts"]), ...(yield* Effect.forEach([1, 2, 3], () => NamespaceSet.unshareCurrent(["net", "uts"])))]
      const failures: Array<string> = []
      let made = 0
      let stop = false
      const load = (i: number) =>
        Effect.whileLoop({
          while: () => !stop,
          body: () => Effect.exit(NamespaceSet.run(sets[i % 4]!, Task.identify)),
          step: (exit) => {
            if (Exit.isFailure(exit)) failures.push(String(exit))
          }
        })
      const maker = Effect.gen(function*() {
        for (let i = 0; i < 10; i++) {
          yield* Effect.scoped(NamespaceSet.unshareCurrent(["time"]))
          made++
          yield* Effect.sleep("20 millis")
        }
        stop = true
      })
      yield* Effect.all([maker, ...Array.from({ length: 32 }, (_, i) => load(i))], { concurrency: "unbounded" })
      assert.strictEqual(made, 10)
      assert.deepStrictEqual(failures.slice(0, 3), [])
    }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer({ min: 1, max: 4 }))))
})
