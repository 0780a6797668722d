/**
 * A pool of fresh namespace sets made ahead of time (gonso's `Pool`): a test harness that gives
 * every test its own network takes a ready set instead of waiting for the kernel to make one.
 *
 * @since 0.1.0
 */
import { Effect, Exit, Fiber, Queue, Scope, Semaphore } from "effect"
import type { NamespaceKind } from "./NamespaceKind.ts"
import * as NamespaceSet from "./NamespaceSet.ts"
import type { NamespaceError } from "./NamespaceError.ts"
import type { PinnedThreads } from "./PinnedThreads.ts"
import type { Task } from "./Task.ts"

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
  /** How many sets to keep ready (at least 1). */
  readonly size: number
  /**
   * The set new namespaces are made from (default: the process's own namespaces of `kinds`). Its
   * other kinds are carried over into every set, as with `NamespaceSet.unshare`.
   */
  readonly from?: NamespaceSet.NamespaceSet | undefined
  /** Options for making each set (propagation, id maps). */
  readonly unshare?: NamespaceSet.UnshareOptions | undefined
  /**
   * A task run inside each new set before it is handed out (bring up `lo`, write a config file,
   * ...). A failure here is what the taker of that set receives.
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
 * taker receives it as its typed error, and only then is another attempt made.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import { Task, NamespacePool } from "gonso"
 *
 * const pool = yield* NamespacePool.make({ kinds: ["net"], size: 4, afterCreate: Task.exec("ip", ["link", "set", "lo", "up"]) })
 * const set = yield* NamespacePool.take(pool) // closed with the taker's Scope
 * ```
 */
export const make = <E = never>(
  options: Options<E>
): Effect.Effect<NamespacePool, never, PinnedThreads | Scope.Scope> =>
  Effect.gen(function*() {
    const size = Math.max(1, Math.floor(options.size))
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
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* Fiber.interrupt(filler)
        const left = yield* Queue.clear(queue)
        yield* Queue.shutdown(queue)
        for (const exit of left) {
          if (Exit.isSuccess(exit)) yield* Scope.close(exit.value.scope, Exit.void)
        }
      }).pipe(Effect.ignore)
    )
    return { [TypeId]: TypeId, queue, room }
  })

/**
 * Takes a ready set out of the pool (waiting for one if none is ready); it belongs to the current
 * Scope from then on. A set that could not be made reaches the taker as its typed error.
 *
 * @since 0.1.0
 * @category pooling
 */
export const take = (pool: NamespacePool): Effect.Effect<NamespaceSet.NamespaceSet, NamespaceError, Scope.Scope> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const exit = yield* restore(Queue.take(pool.queue))
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
 */
export const ready = (pool: NamespacePool): Effect.Effect<number> => Queue.size(pool.queue)
