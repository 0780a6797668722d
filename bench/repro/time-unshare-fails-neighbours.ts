/**
 * Reproduction: under load, `NamespaceSet.unshare(..., ["time"])` (no offsets) on a shared pinned
 * thread fails other callers' unrelated requests with `ThreadFailure` ("the thread is not
 * reusable: a thread of a multithreaded process cannot return to its time namespace"). The docs
 * say only that the thread which made the time namespace is dropped and replaced; requests of
 * other callers should be served or re-routed, not failed. (Likely: a batch already sent to the
 * thread's second slot while it made the time namespace.)
 *
 *   node_modules/.bin/node bench/repro/time-unshare-fails-neighbours.ts      (as root)
 */
import { Effect, Exit } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../../src/index.ts"

const outcomes = new Map<string, number>()
const count = (key: string) => outcomes.set(key, (outcomes.get(key) ?? 0) + 1)
const tagOf = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isSuccess(exit) ? "ok" : String((Exit.findErrorOption(exit) as { value?: { _tag?: string } }).value?._tag ?? "not a typed error")

const program = Effect.gen(function*() {
  const sets = [yield* NamespaceSet.current(["net", "uts"]), ...(yield* Effect.forEach([1, 2, 3], () => NamespaceSet.unshareCurrent(["net", "uts"])))]
  const deadline = Date.now() + 8_000
  const load = (i: number) =>
    Effect.gen(function*() {
      while (Date.now() < deadline) count(`identify on one of four sets: ${tagOf(yield* Effect.exit(NamespaceSet.run(sets[i % 4]!, Task.identify)))}`)
    })
  const timeMaker = Effect.gen(function*() {
    while (Date.now() < deadline) {
      count(`unshare time: ${tagOf(yield* Effect.exit(Effect.scoped(Effect.asVoid(NamespaceSet.unshareCurrent(["time"])))))}`)
      yield* Effect.sleep(20)
    }
  })
  yield* Effect.all([timeMaker, ...Array.from({ length: 32 }, (_, i) => load(i))], { concurrency: "unbounded" })
}).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer({ min: 1, max: 4 })))

await Effect.runPromise(program)
for (const [key, n] of outcomes) console.log(`${key.padEnd(50)} ${n}`)
process.exit([...outcomes.keys()].some((key) => key.startsWith("identify") && !key.endsWith("ok")) ? 1 : 0)
