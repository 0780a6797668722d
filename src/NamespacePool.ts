/**
 * A pool of fresh namespace sets made ahead of time (gonso's `Pool`): a test harness that gives
 * every test its own network takes a ready set instead of waiting for the kernel to make one.
 *
 * @since 0.1.0
 */
import { Effect, Exit, Fiber, Queue, Scope, Semaphore } from "effect"
import type { NamespaceKind } from "./NamespaceKind.ts"
import * as NamespaceSet from "./NamespaceSet.ts"
import { InvalidOptions, type NamespaceError, SetClosed } from "./NamespaceError.ts"
import type { PinnedThreads } from "./PinnedThreads.ts"
import type { Task } from "./Task.ts"
import { MAX_POOL_SIZE, unshareOptionsProblem } from "./internal/validate.ts"

const TypeId = "~gonso/NamespacePool" as const

/** A set made ahead of time, in a Scope of its own until someone takes it. */
interface Ready {
  readonly set: NamespaceSet.NamespaceSet
  readonly scope: Scope.Closeable
}

/**
 * A pool of fresh sets.
 *
 * @since 0.1.0
 * @category models
 */
export interface NamespacePool {
  readonly [TypeId]: typeof TypeId
  /** @internal */
  readonly queue: Queue.Queue<Exit.Exit<Ready, NamespaceError>>
  /** @internal One permit per place in the pool: a set is made only when a place is free. */
  readonly room: Semaphore.Semaphore
  /** @internal Set when the pool's Scope has closed. */
  readonly closed: { value: boolean }
}

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<E = never> {
  /** The kinds each set gets new namespaces of. */
  readonly kinds: ReadonlyArray<NamespaceKind>
  /** How many sets to keep ready: a whole number from 1 to 1024. */
  readonly size: number
  /**
   * The set new namespaces are made from (default: the process's own namespaces of `kinds`). Its
   * other kinds are carried over into every set, as with `NamespaceSet.unshare`.
   */
  readonly from?: NamespaceSet.NamespaceSet | undefined
  /** Options for making each set (propagation, id maps). */
  readonly unshare?: NamespaceSet.UnshareOptions | undefined
  /**
   * A task run inside each new set before it is handed out (write a config file, set a hostname).
   * A failure of the task is what the taker of that set receives. `Task.exec` succeeds whatever its
   * command's exit status (the status is in its result), so a failing command is not a failure
   * here; to bring `lo` up, use `unshare: { loopback: "up" }`, which fails when it cannot.
   */
  readonly afterCreate?: Task<unknown, E> | undefined
}

/**
 * Starts a pool that keeps up to `size` fresh sets ready, made in the background (a set is made
 * only when a place is free). The pool and every set it still holds are closed when the current
 * Scope closes, and a set being made then is abandoned and closed; sets already taken belong to
 * their takers.
 *
 * Making a set that fails does not spin: the failure waits in the pool like a set would, the next
 * taker receives it as its typed error, and only then is another attempt made. A `size` that is
 * not a whole number from 1 to 1024, or `unshare` options that do not fit, fail `make` itself with
 * `InvalidOptions`.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespacePool, PinnedThreads, Task } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const pool = yield* NamespacePool.make({ kinds: ["net", "uts"], size: 4, unshare: { loopback: "up" }, afterCreate: Task.setHostname("worker") })
 *   const set = yield* NamespacePool.take(pool) // closed with the taker's Scope
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const make = <E = never>(
  options: Options<E>
): Effect.Effect<NamespacePool, InvalidOptions, PinnedThreads | Scope.Scope> =>
  Effect.gen(function*() {
    const size = options.size
    if (!Number.isSafeInteger(size) || size < 1 || size > MAX_POOL_SIZE) {
      return yield* new InvalidOptions({ operation: "NamespacePool.make", reason: `size must be a whole number from 1 to ${MAX_POOL_SIZE}, not ${size}` })
    }
    const badUnshare = unshareOptionsProblem(options.unshare)
    if (badUnshare !== undefined) return yield* badUnshare
    const queue = yield* Queue.bounded<Exit.Exit<Ready, NamespaceError>>(size)
    const room = yield* Semaphore.make(size)
    // Runs with interruption masked but for `restore`: making a set can be interrupted (the pool is
    // closing), and whatever it had made is closed with its scope before the filler stops.
    const makeOne = (restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>) =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const made = yield* Effect.exit(restore(Scope.provide(scope)(
          Effect.gen(function*() {
            const set = options.from === undefined
              ? yield* NamespaceSet.unshareCurrent(options.kinds, options.unshare)
              : yield* NamespaceSet.unshare(options.from, options.kinds, options.unshare)
            if (options.afterCreate !== undefined) yield* NamespaceSet.run(set, options.afterCreate)
            return set
          })
        )))
        if (Exit.isFailure(made)) yield* Scope.close(scope, made)
        return Exit.map(made, (set): Ready => ({ set, scope })) as Exit.Exit<Ready, NamespaceError>
      })
    // A place is taken before a set is made and freed when a taker takes it, so at most `size`
    // sets (or failures) exist in the pool at once. A set, once made, is always put in the queue,
    // where closing the pool finds it; an attempt cut short by the closing is not.
    const makeAndOffer = Effect.uninterruptibleMask((restore) =>
      Effect.andThen(
        restore(room.take(1)),
        Effect.flatMap(
          makeOne(restore),
          (exit) => Exit.isFailure(exit) && Exit.hasInterrupts(exit) ? Effect.void : Queue.offer(queue, exit)
        )
      )
    )
    const filler = yield* Effect.forkDetach(Effect.forever(makeAndOffer))
    const closed = { value: false }
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        closed.value = true
        yield* Fiber.interrupt(filler)
        const left = yield* Queue.clear(queue)
        yield* Queue.shutdown(queue)
        for (const exit of left) {
          if (Exit.isSuccess(exit)) yield* Scope.close(exit.value.scope, Exit.void)
        }
      }).pipe(Effect.ignore)
    )
    return { [TypeId]: TypeId, queue, room, closed }
  })

/**
 * Takes a ready set out of the pool (waiting for one if none is ready); it belongs to the current
 * Scope from then on. A set that could not be made reaches the taker as its typed error.
 *
 * @since 0.1.0
 * @category pooling
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespacePool, NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const pool = yield* NamespacePool.make({ kinds: ["net"], size: 2, unshare: { loopback: "up" } })
 *   for (let test = 1; test <= 3; test++) {
 *     yield* Effect.scoped(Effect.gen(function*() {
 *       const net = yield* NamespacePool.take(pool) // closed at the end of this test
 *       const ping = yield* NamespaceSet.run(net, Task.exec("ping", ["-c", "1", "127.0.0.1"]))
 *       yield* Effect.log(`test ${test}: ping exited ${ping.exitCode}`) // "test 1: ping exited 0"
 *     }))
 *   }
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const take = (pool: NamespacePool): Effect.Effect<NamespaceSet.NamespaceSet, NamespaceError, Scope.Scope> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      if (pool.closed.value) return yield* new SetClosed({ operation: "NamespacePool.take" })
      // A pool whose Scope has closed (before or while the taker waits) shuts its queue down, and a
      // take on it ends as an interruption: the taker was not interrupted, so it gets a typed error.
      const taken = yield* Effect.exit(restore(Queue.take(pool.queue)))
      if (Exit.isFailure(taken)) {
        if (pool.closed.value) return yield* new SetClosed({ operation: "NamespacePool.take" })
        return yield* taken
      }
      const exit = taken.value
      yield* pool.room.release(1)
      if (Exit.isFailure(exit)) return yield* exit
      yield* Effect.addFinalizer((outcome) => Scope.close(exit.value.scope, outcome))
      return exit.value.set
    })
  ) as Effect.Effect<NamespaceSet.NamespaceSet, NamespaceError, Scope.Scope>

/**
 * How many sets (or failures) are ready to be taken.
 *
 * @since 0.1.0
 * @category pooling
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespacePool, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const pool = yield* NamespacePool.make({ kinds: ["net"], size: 4 })
 *   const first = yield* NamespacePool.take(pool)
 *   return yield* NamespacePool.ready(pool) // from 0 to 4: how many sets (or failures) can be taken without waiting
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const ready = (pool: NamespacePool): Effect.Effect<number> => Queue.size(pool.queue)
