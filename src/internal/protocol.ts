/**
 * The messages that cross the channel between the main thread and a pinned thread. Types only:
 * both sides import this file, and the pinned thread must stay free of Effect (it is loaded by
 * every Worker, on the critical path of replacing a dropped thread).
 *
 * @internal
 */
import type { NamespaceKind } from "../NamespaceKind.ts"

/** One namespace of a set: its fd in this process and its identity (dev+inode of the nsfs file). */
export interface Member {
  readonly kind: NamespaceKind
  readonly fd: number
  readonly dev: number
  readonly ino: number
}

/** A built-in operation or a user module, to run on the pinned thread. */
export interface TaskSpec {
  readonly op: string
  readonly args: unknown
}

/**
 * One round trip. The steps run in order, all on the pinned thread: join the namespaces in `enter`,
 * run `task`, then (with `leave`) return to the baseline namespaces and verify them.
 */
export interface Request {
  /** The public operation this request serves, named in errors (e.g. `"NamespaceSet.run"`). */
  readonly operation: string
  readonly enter?: ReadonlyArray<Member> | undefined
  /** A pidfd to join `enter`'s kinds with, all at once (sets made by `fromPid`). */
  readonly pidfd?: { readonly fd: number; readonly pid: number } | undefined
  readonly task?: TaskSpec | undefined
  readonly leave?: boolean | undefined
}

/** A typed error as plain data: `_tag` names a class of `NamespaceError.ts`, the rest are its fields. */
export interface WireError {
  readonly _tag: string
  readonly [field: string]: unknown
}

export type Outcome =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: WireError }

export interface Response {
  /** What the failed `enter` step or the task came to; absent when neither ran. */
  readonly outcome?: Outcome
  /**
   * Whether the thread may be reused: after `leave`, that every namespace, the working directory
   * and the root equal the baseline; before it, that nothing went wrong that `leave` cannot undo.
   */
  readonly clean: boolean
  readonly reason?: string
}

export interface Identity {
  readonly dev: number
  readonly ino: number
}

/** The first message of a pinned thread: who it is and where it started. */
export interface Ready {
  readonly tid: number
  readonly baseline: Readonly<Record<NamespaceKind, Identity>>
  /**
   * The fds the thread holds for its whole life (baseline namespaces, working directory). They
   * belong to the process, not the thread: the main thread closes them once the thread is gone.
   */
  readonly fds: ReadonlyArray<number>
}

export interface WorkerData {
  readonly channel: { readonly control: SharedArrayBuffer; readonly data: SharedArrayBuffer }
}
