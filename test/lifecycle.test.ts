/**
 * The drop rule, as `lifecycle.ts`'s one transition function states it: pure, no kernel needed.
 */
import { assert, describe, it } from "@effect/vitest"
import { dropClass, describe as describeReason, type DropReason } from "../src/internal/drop.ts"
import { next, shared, type ThreadEvent, type ThreadState, usable } from "../src/internal/thread/lifecycle.ts"

const run = (...events: ReadonlyArray<ThreadEvent>): ThreadState => events.reduce(next, shared)
const interrupted: DropReason = { _tag: "Interrupted" }
const moved: DropReason = { _tag: "Moved", when: "after", namespaces: [{ kind: "uts", expected: "uts:[1]", found: "uts:[2]" }] }

describe("a pinned thread's lifecycle", () => {
  it("a lease that ends cleanly gives the thread back; one that dies drops it", () => {
    assert.deepStrictEqual(run({ _tag: "Lease" }, { _tag: "Release", reason: undefined }), shared)
    assert.deepStrictEqual(run({ _tag: "Lease" }, { _tag: "Release", reason: { _tag: "Died" } }), { _tag: "Out", out: { _tag: "Dropped", reason: { _tag: "Died" } } })
  })

  it("an interrupted lease with nothing in flight gives the thread back; with a request in flight it drains", () => {
    assert.deepStrictEqual(run({ _tag: "Lease" }, { _tag: "Release", reason: interrupted }), shared)
    const draining = run({ _tag: "Lease" }, { _tag: "Abandon" }, { _tag: "Release", reason: interrupted })
    assert.strictEqual(draining._tag, "Draining")
    assert.isFalse(usable(draining))
    assert.deepStrictEqual(next(draining, { _tag: "Drained" }), shared)
    assert.deepStrictEqual(next(draining, { _tag: "DrainExpired" }), { _tag: "Out", out: { _tag: "Dropped", reason: interrupted } })
    assert.deepStrictEqual(next(draining, { _tag: "Unclean", reason: moved }), { _tag: "Out", out: { _tag: "Dropped", reason: moved } })
  })

  it("a leased thread found unclean stays the lease's until it ends, then is dropped for the first reason", () => {
    const doomed = run({ _tag: "Lease" }, { _tag: "Unclean", reason: moved }, { _tag: "Unclean", reason: { _tag: "NoRestore" } })
    assert.deepStrictEqual(doomed, { _tag: "Leased", doomed: moved, abandoned: false })
    assert.isFalse(usable(doomed))
    assert.deepStrictEqual(next(doomed, { _tag: "Release", reason: undefined }), { _tag: "Out", out: { _tag: "Dropped", reason: moved } })
  })

  it("a shared thread found unclean is dropped at once; an exit is final whatever the state", () => {
    assert.deepStrictEqual(run({ _tag: "Unclean", reason: moved }), { _tag: "Out", out: { _tag: "Dropped", reason: moved } })
    assert.deepStrictEqual(run({ _tag: "Lease" }, { _tag: "Exited", code: 7 }), { _tag: "Out", out: { _tag: "Dropped", reason: { _tag: "Exited", code: 7 } } })
    assert.deepStrictEqual(run({ _tag: "Reserve" }, { _tag: "Exited", code: 1 }), { _tag: "Out", out: { _tag: "Dropped", reason: { _tag: "Exited", code: 1 } } })
  })

  it("out of the pool is for good: the first reason stays", () => {
    const out = run({ _tag: "Retire", reason: "idle" })
    for (const event of [{ _tag: "Lease" }, { _tag: "Unclean", reason: moved }, { _tag: "Exited", code: 0 }, { _tag: "Drained" }] as const) {
      assert.strictEqual(next(out, event), out)
    }
  })

  it("a reserved thread takes no shared work and is handed to the lease or given back", () => {
    const reserved = run({ _tag: "Reserve" })
    assert.strictEqual(reserved._tag, "Reserved")
    assert.deepStrictEqual(next(reserved, { _tag: "Unreserve" }), shared)
    assert.strictEqual(next(reserved, { _tag: "Lease" })._tag, "Leased")
  })

  it("every drop reason has a metric class and a sentence naming what happened", () => {
    const reasons: ReadonlyArray<[DropReason, string]> = [
      [{ _tag: "NoRestore" }, "no-restore"],
      [{ _tag: "Tainted", detail: "setresuid" }, "tainted"],
      [moved, "moved"],
      [{ _tag: "RestoreFailed", detail: "fchdir: EBADF" }, "restore-failed"],
      [{ _tag: "TimeNamespace" }, "restore-failed"],
      [interrupted, "interrupted"],
      [{ _tag: "Died" }, "died"],
      [{ _tag: "Exited", code: 7 }, "exited"]
    ]
    for (const [reason, cls] of reasons) assert.strictEqual(dropClass(reason), cls)
    assert.strictEqual(describeReason(moved), "the thread was moved behind the library's back: when the task ended it was in uts:[2], not uts:[1]")
    assert.strictEqual(describeReason({ _tag: "Tainted", detail: "setresuid" }), "tainted by the task: setresuid")
  })
})
