/**
 * Running tasks on a pinned thread inside a set: `NamespaceSet.run` (a shared or leased thread,
 * see `set.ts`) and `NamespaceSet.enter` (a thread leased for a Scope, its restore a
 * finalizer). `Task.exec` is the one task carried out from the main thread: its process is
 * started on the thread and read and reaped here (`process.ts`); {@link dispatch} decides that,
 * for both.
 *
 * @internal
 */
import { Effect, Scope, Semaphore } from "effect"
import { type EnterError, type PayloadTooLarge, SetClosed, type ThreadFailure } from "./errors.ts"
import { annotateTid, setAttributes, traced } from "./observe.ts"
import { execWith, type SpawnError } from "./process.ts"
import type { Operation, TaskSpec } from "./protocol.ts"
import type { PinnedThreads } from "./service.ts"
import type { Task } from "./task.ts"
import { enterable, impl, type NamespaceSet, outcomeOf, runSpec, setRef, threadPool } from "./set.ts"
import * as validate from "./validate.ts"

type ExecArgs = Parameters<typeof execWith>[1]

/**
 * Carries out `task` through `send`, which runs an operation on a thread: `Task.exec` as a
 * `spawn` there and its process read and reaped here, any other task as itself.
 */
export const dispatch = <A, E, E2 extends SpawnError, R>(
  task: { readonly op: Operation | "exec"; readonly args: unknown },
  send: <A2, E3>(spec: TaskSpec) => Effect.Effect<A2, E3 | E2, R>
): Effect.Effect<A, E | E2, R> =>
  task.op === "exec"
    ? execWith((args) => send<number, SpawnError>({ op: "spawn", args }), task.args as ExecArgs) as Effect.Effect<A, E | E2, R>
    : send<A, E>({ op: task.op, args: task.args } as TaskSpec)

/** `NamespaceSet.run`. */
export const run = <A, E>(
  set: NamespaceSet,
  task: { readonly op: Operation | "exec"; readonly args: unknown },
  restore: boolean
): Effect.Effect<A, E | EnterError, PinnedThreads> =>
  dispatch<A, E, EnterError, PinnedThreads>(task, (spec) => runSpec("NamespaceSet.run", set, spec, restore))

/**
 * A pinned thread inside a set, from `NamespaceSet.enter`: run several tasks in a row on the same thread
 * and in the same namespaces.
 *
 * @since 0.1.0
 * @category models
 */
export interface EnteredThread {
  /** The pinned thread's tid. */
  readonly tid: number
  /** Runs a task on the thread. Tasks run one at a time, in order. */
  readonly run: <A, E>(task: Task<A, E>) => Effect.Effect<A, E | SetClosed | ThreadFailure | PayloadTooLarge>
}

/** `NamespaceSet.enter`. */
export const enter = (set: NamespaceSet, restore: boolean): Effect.Effect<EnteredThread, EnterError, PinnedThreads | Scope.Scope> =>
  traced("NamespaceSet.enter", () => ({ ...setAttributes("NamespaceSet.enter", set, () => impl(set).members.values()), "gonso.restore": restore }), Effect.gen(function*() {
    const operation = "NamespaceSet.enter"
        const self = impl(set)
    const members = yield* enterable(operation, self.members)
    // Hold the set's fds for as long as the thread may be inside it.
    const closed = self.hold(operation)
    if (closed !== undefined) return yield* closed
    yield* Effect.addFinalizer(() => Effect.sync(() => self.unhold()))
    const pool = yield* threadPool
    const thread = yield* pool.lease
    yield* annotateTid(thread.tid)
    yield* Effect.flatMap(pool.call(thread, { operation, set: setRef(set, members), hold: true }), outcomeOf<void, EnterError>)
    let open = true
    // The restore step: leave the set and verify, or drop the thread. It runs before the lease
    // ends (finalizers run in reverse order), so the lease sees whether the thread is clean.
    yield* Effect.addFinalizer(() => {
      open = false
      return pool.call(thread, restore ? { operation, leave: true } : { operation, drop: true }).pipe(
        Effect.catch((error) => Effect.sync(() => pool.doom(thread, { _tag: "RestoreFailed", detail: error.message }))),
        Effect.asVoid
      )
    })
    const lock = yield* Semaphore.make(1)
    const runOnThread = <A, E>(task: TaskSpec): Effect.Effect<A, E | SetClosed | ThreadFailure | PayloadTooLarge> =>
      Effect.suspend((): Effect.Effect<A, E | SetClosed | ThreadFailure | PayloadTooLarge> => {
        if (!open) return Effect.fail(new SetClosed({ operation: "EnteredThread.run" }))
        // Every task with strings declares InvalidOptions among its errors.
        const invalid = validate.specProblem(task)
        if (invalid !== undefined) return Effect.fail(invalid as E)
        return Effect.flatMap(pool.call(thread, { operation: "EnteredThread.run", task }), outcomeOf<A, E>)
      })
    return {
      tid: thread.tid,
      run: <A, E>(task: Task<A, E>) =>
        lock.withPermits(1)(
          dispatch<A, E, SetClosed | ThreadFailure | PayloadTooLarge, never>(task, runOnThread)
        )
    }
  }))
