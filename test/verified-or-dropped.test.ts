/**
 * The rule of every answer: it is delivered only if its thread was verified inside the set's
 * namespaces before the task began and after it ended; otherwise the caller gets a typed
 * `ThreadFailure` naming the kinds expected and found, and the thread is dropped.
 *
 * The adversary is user code that breaks the rules of docs/pinned-threads.md: a module task that
 * returns at once, leaving behind a timer (or an immediate) that moves its thread into a new uts
 * namespace later, when the thread serves someone else.
 */
import * as fs from "node:fs"
import { assert, describe } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import { eventually, fixtures, foreignNamespaceFds, idleAgain as idleAgainIn, threadExists, withThreads } from "./helpers.ts"

const moveLater = (kind: "uts" | "net", ms?: number) =>
  Task.module<{ kind: "uts" | "net"; ms?: number }, string>(fixtures, "moveLater", ms === undefined ? { kind } : { kind, ms })
const utsAfter = (ms: number) => Task.module<number, string>(fixtures, "utsAfter", ms)
const whereNow = Task.module<void, { uts: string; net: string }>(fixtures, "whereNow", undefined)

// One thread, so that the caller after the adversary is served by the thread it left its timer on.
withThreads({ min: 1, max: 1 })("verified or dropped", (it) => {
  const idleAgain = idleAgainIn()

  /** Asserts a ThreadFailure that names `kind`, expected `expected`, found elsewhere, on thread `tid`. */
  const assertMoved = (failure: { readonly _tag: string }, kind: string, expected: string, tid: number) => {
    assert.strictEqual(failure._tag, "ThreadFailure")
    const thread = failure as PinnedThreadsFailure
    assert.strictEqual(thread.tid, tid)
    assert.deepStrictEqual(thread.namespaces?.map((each) => [each.kind, each.expected]), [[kind, expected]])
    assert.notStrictEqual(thread.namespaces?.[0]?.found, expected)
    assert.match(thread.reason, /moved behind the library's back/)
  }

  describe("a timer left by one task moves the thread while a later task runs", () => {
    it.effect("on the back-to-back (sticky) path, in the same set: the later task fails typed", () =>
      Effect.gen(function*() {
        yield* idleAgain
        const set = yield* NamespaceSet.unshareCurrent(["uts"])
        const expected = yield* NamespaceSet.id(set, "uts")
        const tid = yield* NamespaceSet.run(set, Task.tid)
        const before = yield* PinnedThreads.stats
        yield* NamespaceSet.run(set, moveLater("uts", 10))
        // The timer fires while this task waits on the thread's event loop: the task then reads
        // another uts namespace than the set's, and its answer must not be delivered.
        const failure = yield* Effect.flip(NamespaceSet.run(set, utsAfter(60)))
        assertMoved(failure, "uts", expected, tid)
        assert.isFalse(threadExists(tid))
        assert.strictEqual((yield* PinnedThreads.stats).dropped, before.dropped + 1)
        // The replacement serves the set from inside it.
        assert.strictEqual((yield* NamespaceSet.run(set, whereNow)).uts, expected)
      }))

    it.effect("on a thread that served another set before: the later task fails typed", () =>
      Effect.gen(function*() {
        yield* idleAgain
        const first = yield* NamespaceSet.unshareCurrent(["uts"])
        const second = yield* NamespaceSet.unshareCurrent(["uts", "net"])
        const expected = yield* NamespaceSet.id(second, "uts")
        const tid = yield* NamespaceSet.run(first, Task.tid)
        yield* NamespaceSet.run(first, moveLater("uts", 10))
        const failure = yield* Effect.flip(NamespaceSet.run(second, utsAfter(60)))
        assertMoved(failure, "uts", expected, tid)
        assert.isFalse(threadExists(tid))
        assert.strictEqual((yield* NamespaceSet.run(second, whereNow)).uts, expected)
      }))
  })

  describe("a thread moved between tasks is caught before the next task begins", () => {
    // The set holds a uts namespace only: joining it does not set the thread's net namespace,
    // which the left-behind code moves at the thread's next turn of its event loop.
    it.effect("a library operation is answered from inside the set, by another thread", () =>
      Effect.gen(function*() {
        yield* idleAgain
        const set = yield* NamespaceSet.unshareCurrent(["uts"])
        const uts = yield* NamespaceSet.identity(set, "uts")
        const tid = yield* NamespaceSet.run(set, Task.tid)
        const before = yield* PinnedThreads.stats
        yield* NamespaceSet.run(set, moveLater("net"))
        const ids = yield* NamespaceSet.run(set, Task.identify)
        assert.strictEqual(ids.namespaces.uts.ino, uts.ino)
        assert.strictEqual(ids.namespaces.net.id, fs.readlinkSync("/proc/self/ns/net"))
        assert.notStrictEqual(ids.tid, tid)
        assert.isFalse(threadExists(tid))
        assert.strictEqual((yield* PinnedThreads.stats).dropped, before.dropped + 1)
      }))

    it.effect("a module task on the moved thread fails typed, naming what was found before it began", () =>
      Effect.gen(function*() {
        yield* idleAgain
        const set = yield* NamespaceSet.unshareCurrent(["uts"])
        const tid = yield* NamespaceSet.run(set, Task.tid)
        yield* NamespaceSet.run(set, moveLater("net"))
        const failure = yield* Effect.flip(NamespaceSet.run(set, whereNow))
        assertMoved(failure, "net", fs.readlinkSync("/proc/self/ns/net"), tid)
        assert.match((failure as PinnedThreadsFailure).reason, /before the task began/)
        assert.deepStrictEqual(yield* NamespaceSet.run(set, whereNow), {
          uts: yield* NamespaceSet.id(set, "uts"),
          net: fs.readlinkSync("/proc/self/ns/net")
        })
      }))

    it.effect("a request given up while in flight, then sent back unserved, still lets its set go: the set's fds close with its Scope", () =>
      Effect.gen(function*() {
        let refused = 0
        for (let attempt = 0; attempt < 12; attempt++) {
          yield* idleAgain
          const scope = yield* Scope.make()
          const set = yield* Scope.provide(NamespaceSet.unshareCurrent(["uts"]), scope)
          const uts = yield* NamespaceSet.id(set, "uts")
          yield* NamespaceSet.run(set, moveLater("net"))
          // Two requests in flight together (so that nobody waits for them on the spot); the
          // first one's caller gives up before the thread, found moved, sends both back unserved.
          const given = yield* Effect.forkChild(NamespaceSet.run(set, Task.identify), { startImmediately: true })
          const kept = yield* Effect.forkChild(NamespaceSet.run(set, Task.identify), { startImmediately: true })
          yield* Fiber.interrupt(given)
          const answer = yield* Fiber.join(kept)
          assert.strictEqual(answer.namespaces.uts.id, uts)
          const stats = yield* PinnedThreads.stats
          refused = stats.droppedByReason.moved ?? 0
          // The moved thread's replacement, and the thread started for the requests it sent
          // back, are one thread: the pool's max is 1.
          assert.isAtMost(stats.idle + stats.busy, 1, `attempt ${attempt}: threads above max`)
          yield* Scope.close(scope, Exit.void)
          // Closed once nothing holds the set: at once here (the answer has come), and always.
          const closed = yield* Effect.promise(() => eventually(() => !foreignNamespaceFds("uts").includes(uts), 2_000))
          assert.isTrue(closed, `attempt ${attempt}: the set's uts fd is still open after its Scope closed`)
        }
        assert.isAbove(refused, 0)
      }))

    it.effect("a thread whose user code left nothing behind is kept", () =>
      Effect.gen(function*() {
        yield* idleAgain
        const set = yield* NamespaceSet.unshareCurrent(["uts"])
        const tid = yield* NamespaceSet.run(set, Task.tid)
        const before = yield* PinnedThreads.stats
        assert.strictEqual(yield* NamespaceSet.run(set, utsAfter(5)), yield* NamespaceSet.id(set, "uts"))
        assert.strictEqual((yield* NamespaceSet.run(set, Task.identify)).tid, tid)
        // Back at its baseline once idle, as the kernel shows it from outside the thread.
        const home = fs.readlinkSync("/proc/self/ns/uts")
        assert.isTrue(yield* Effect.promise(() => eventually(() => fs.readlinkSync(`/proc/self/task/${tid}/ns/uts`) === home)))
        assert.strictEqual((yield* PinnedThreads.stats).dropped, before.dropped)
      }))
  })
})

interface PinnedThreadsFailure {
  readonly _tag: "ThreadFailure"
  readonly reason: string
  readonly tid?: number
  readonly namespaces?: ReadonlyArray<{ readonly kind: string; readonly expected: string; readonly found: string }>
}
