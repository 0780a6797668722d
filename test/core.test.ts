/**
 * The pinned-thread core under concurrency: requests of many callers share a thread and its round
 * trips, and every answer still comes from inside its own set; a thread that stays inside a set
 * between requests is back at its baseline once idle.
 */
import * as fs from "node:fs"
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import { eventually, mainTask } from "./helpers.ts"

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

layer(PinnedThreads.layer({ min: 1, max: 4 }), { excludeTestServices: true })("pinned-thread core", (it) => {
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
      }))
  })
})
