/**
 * The `Task` type: its one definition (the public `Task` module documents its constructors and
 * re-exports it).
 *
 * @internal
 */
import type { Operation } from "./protocol.ts"

export const TypeId = "~gonso/Task" as const

/**
 * A task that succeeds with `A` or fails with `E` when run with `NamespaceSet.run`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Task<out A, out E = never> {
  readonly [TypeId]: {
    readonly _A: (_: never) => A
    readonly _E: (_: never) => E
  }
  /** The operation: one of the pinned thread's, or `exec`, which is carried out from the main thread. */
  readonly op: Operation | "exec"
  /** Its arguments. */
  readonly args: unknown
}

