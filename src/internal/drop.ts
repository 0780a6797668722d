/**
 * Why a pinned thread is dropped: one typed union, made where the reason arises (on the thread or
 * on the main side), carried as data through the channel, the pool's events, spans, metrics, logs
 * and the `ThreadFailure`s of the callers it affects. Its text and its metric class are decided
 * here and nowhere else.
 *
 * Pure data and functions: loaded by the main thread and by every pinned thread.
 *
 * @internal
 */
import type { NamespaceKind } from "./kind.ts"

/** A namespace kind the thread was found in, other than the one it had to be in. */
export interface Misplaced {
  readonly kind: NamespaceKind
  /** The namespace the thread had to be in, as the kernel names it (`"uts:[4026531838]"`). */
  readonly expected: string
  /** The namespace it was in. */
  readonly found: string
}

/** When a thread was found moved: before a task began, when it ended, or when the thread left a set. */
export type MovedWhen = "before" | "after" | "leaving"

const whenText: Record<MovedWhen, string> = {
  before: "before the task began",
  after: "when the task ended",
  leaving: "when it left the set"
}

export type DropReason =
  /** The request asked for no restore (`restore: false`). */
  | { readonly _tag: "NoRestore" }
  /** User code declared the thread tainted (`context.taint(detail)`). */
  | { readonly _tag: "Tainted"; readonly detail: string }
  /**
   * The thread was found outside the namespaces it had to be in, before a task began or after it
   * ended: user code (a task, or a timer it left) moved it behind the library's back.
   */
  | { readonly _tag: "Moved"; readonly when: MovedWhen; readonly namespaces: ReadonlyArray<Misplaced> }
  /** Returning to the baseline failed, or could not be verified (`detail` says what). */
  | { readonly _tag: "RestoreFailed"; readonly detail: string }
  /** A thread of a multithreaded process cannot return to the time namespace it left. */
  | { readonly _tag: "TimeNamespace" }
  /** The caller holding the thread was interrupted while its task ran. */
  | { readonly _tag: "Interrupted" }
  /** The caller holding the thread died (a defect) while its task ran. */
  | { readonly _tag: "Died" }
  /** The thread's OS thread ended (user code called `process.exit`, or it crashed). */
  | { readonly _tag: "Exited"; readonly code: number }

/** A drop reason's class, fit for a metric attribute (`gonso_pinned_threads_dropped_total`). */
export type DropClass =
  | "no-restore"
  | "tainted"
  | "moved"
  | "restore-failed"
  | "interrupted"
  | "died"
  | "exited"
  | "failed-to-start"

/** The metric class of each reason. */
export const dropClass = (reason: DropReason): DropClass => {
  switch (reason._tag) {
    case "NoRestore":
      return "no-restore"
    case "Tainted":
      return "tainted"
    case "Moved":
      return "moved"
    case "RestoreFailed":
    case "TimeNamespace":
      return "restore-failed"
    case "Interrupted":
      return "interrupted"
    case "Died":
      return "died"
    case "Exited":
      return "exited"
  }
}

const listMoved = (namespaces: ReadonlyArray<Misplaced>) =>
  namespaces.map((each) => `${each.found}, not ${each.expected}`).join("; ")

/** A drop reason as a sentence, for logs, spans and `ThreadFailure.reason`. */
export const describe = (reason: DropReason): string => {
  switch (reason._tag) {
    case "NoRestore":
      return "restore: false"
    case "Tainted":
      return `tainted by the task: ${reason.detail}`
    case "Moved":
      return `the thread was moved behind the library's back: ${whenText[reason.when]} it was in ${listMoved(reason.namespaces)}`
    case "RestoreFailed":
      return `restore failed: ${reason.detail}`
    case "TimeNamespace":
      return "a thread of a multithreaded process cannot return to its time namespace"
    case "Interrupted":
      return "interrupted during a task"
    case "Died":
      return "the task died"
    case "Exited":
      return `the thread exited (code ${reason.code})`
  }
}
