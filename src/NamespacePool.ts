/**
 * A pool of fresh namespace sets made ahead of time (gonso's `Pool`): a test harness that gives
 * every test its own network takes a ready set instead of waiting for the kernel to make one.
 *
 * @since 0.1.0
 */
import { Effect, Exit, Fiber, Queue, Scope } from "effect"
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
 */
export interface NamespacePool {
  readonly [TypeId]: typeof TypeId
  /** @internal */
  readonly queue: Queue.Queue<Exit.Exit<Ready, NamespaceError>>
}

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
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
 * Starts a pool that keeps up to `size` fresh sets ready, made in the background. The pool and
 * every set it still holds are closed when the current Scope closes; sets already taken belong to
 * their takers.
 *
 * Making a set that fails does not spin: the failure waits in the pool like a set would, the next
 * taker receives it as its typed error, and only then is another attempt made.
 *
 * @since 0.1.0
 * @example
 * ```ts
 * const pool = yield* NamespacePool.make({ kinds: ["net"], size: 4, afterCreate: Task.exec("ip", ["link", "set", "lo", "up"]) })
 * const set = yield* NamespacePool.take(pool) // closed with the taker's Scope
 * ```
 */
export const make = <E = never>(
  options: Options<E>
): Effect.Effect<NamespacePool, never, PinnedThreads | Scope.Scope> =>
  Effect.gen(function*() {
    const queue = yield* Queue.bounded<Exit.Exit<Ready, NamespaceError>>(Math.max(1, Math.floor(options.size)))
    const makeOne = Effect.gen(function*() {
      const scope = yield* Scope.make()
      const made = yield* Effect.exit(Scope.provide(scope)(
        Effect.gen(function*() {
          const set = options.from === undefined
            ? yield* NamespaceSet.unshareCurrent(options.kinds, options.unshare)
            : yield* NamespaceSet.unshare(options.from, options.kinds, options.unshare)
          if (options.afterCreate !== undefined) yield* NamespaceSet.run(set, options.afterCreate)
          return set
        })
      ))
      if (Exit.isFailure(made)) yield* Scope.close(scope, made)
      return Exit.map(made, (set): Ready => ({ set, scope })) as Exit.Exit<Ready, NamespaceError>
    })
    // Offering blocks while the pool is full, so at most `size` sets (or failures) wait at once.
    // A set made while the pool is full waits in `offer`; if the pool closes meanwhile, it is
    // closed here, since no taker will ever see it.
    const offer = (exit: Exit.Exit<Ready, NamespaceError>) =>
      Effect.onInterrupt(Queue.offer(queue, exit), () => Exit.isSuccess(exit) ? Scope.close(exit.value.scope, Exit.void) : Effect.void)
    const filler = yield* Effect.forkDetach(Effect.forever(Effect.flatMap(Effect.uninterruptible(makeOne), offer)))
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
    return { [TypeId]: TypeId, queue }
  })

/**
 * Takes a ready set out of the pool (waiting for one if none is ready); it belongs to the current
 * Scope from then on. A set that could not be made reaches the taker as its typed error.
 *
 * @since 0.1.0
 */
export const take = (pool: NamespacePool): Effect.Effect<NamespaceSet.NamespaceSet, NamespaceError, Scope.Scope> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const exit = yield* restore(Queue.take(pool.queue))
      if (Exit.isFailure(exit)) return yield* exit
      yield* Effect.addFinalizer((outcome) => Scope.close(exit.value.scope, outcome))
      return exit.value.set
    })
  ) as Effect.Effect<NamespaceSet.NamespaceSet, NamespaceError, Scope.Scope>

/**
 * How many sets (or failures) are ready to be taken.
 *
 * @since 0.1.0
 */
export const ready = (pool: NamespacePool): Effect.Effect<number> => Queue.size(pool.queue)
