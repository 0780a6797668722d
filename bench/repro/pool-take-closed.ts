/**
 * Reproduction: `NamespacePool.take` on a pool whose Scope has closed (or that closes while the
 * taker waits) ends the taker's fiber as *interrupted*, not with a typed error: nothing
 * interrupted the caller, yet its Effect reports an interruption (an `Effect.catchTag` cannot see
 * it, and a fiber running it looks cancelled).
 *
 *   node_modules/.bin/node bench/repro/pool-take-closed.ts      (as root)
 */
import { Cause, Effect, Exit, Fiber, Scope } from "effect"
import { NamespacePool, PinnedThreads } from "../../src/index.ts"

const program = Effect.gen(function*() {
  const poolScope = yield* Scope.make()
  const pool = yield* Scope.provide(poolScope)(NamespacePool.make({ kinds: ["net"], size: 1 }))
  yield* Effect.scoped(NamespacePool.take(pool)) // the one ready set
  const waiting = yield* Effect.forkChild(Effect.scoped(NamespacePool.take(pool)))
  yield* Effect.yieldNow
  yield* Scope.close(poolScope, Exit.void)
  const waiter = yield* Fiber.await(waiting)
  const after = yield* Effect.exit(Effect.scoped(NamespacePool.take(pool)))
  const describe = (exit: Exit.Exit<unknown, unknown>) =>
    Exit.isSuccess(exit) ? "success" : Cause.hasInterruptsOnly(exit.cause) ? "interrupted" : Cause.pretty(exit.cause)
  return { waiter: describe(waiter), after: describe(after) }
})

const result = await Effect.runPromise(program.pipe(Effect.provide(PinnedThreads.layer())))
console.log(`take waiting while the pool closed: ${result.waiter}`)
console.log(`take after the pool closed:        ${result.after}`)
process.exit(result.waiter === "interrupted" || result.after === "interrupted" ? 1 : 0)
