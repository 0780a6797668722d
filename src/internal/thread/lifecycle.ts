/**
 * A pinned thread's place in its pool, as one tagged union, and every change of it, in one pure
 * function (`next`): the drop rule is what this function says.
 *
 * - A thread is dropped when it reports itself unclean (restore or verification failed, user code
 *   moved or tainted it, or the request asked for no restore), when a lease on it ends by
 *   interruption or a defect, or when it exits.
 * - A thread held by a lease stays the lease's until the lease ends, even once doomed: the lease
 *   holder's later calls fail, and the drop happens at release. An exit is final at once.
 * - A retired thread (idle past its time to live, or its layer closed) leaves like a dropped one,
 *   but is counted apart.
 *
 * @internal
 */
import type { DropReason } from "../drop.ts"

/** Why a thread left its pool. */
export type Out =
  | { readonly _tag: "Dropped"; readonly reason: DropReason }
  | { readonly _tag: "Retired"; readonly reason: "idle" | "shutdown" }

export type ThreadState =
  /** In the pool, serving shared requests, free to be leased once it has none. */
  | { readonly _tag: "Shared" }
  /** Promised to a waiting lease: takes no new shared requests, and is handed over once it has none. */
  | { readonly _tag: "Reserved" }
  /** Held by a lease. `doomed`: why it is to be dropped when the lease ends, if it is. */
  | { readonly _tag: "Leased"; readonly doomed: DropReason | undefined }
  /** Out of the pool for good: being stopped, or stopped. */
  | { readonly _tag: "Out"; readonly out: Out }

export type ThreadEvent =
  /** The pool promises the thread to a waiting lease. */
  | { readonly _tag: "Reserve" }
  /** The pool takes the promise back: the lease was served by another thread. */
  | { readonly _tag: "Unreserve" }
  /** A lease takes the thread. */
  | { readonly _tag: "Lease" }
  /** A lease ends; `reason` if it ended in a way that drops the thread (interrupted, died). */
  | { readonly _tag: "Release"; readonly reason: DropReason | undefined }
  /** The thread must not be reused. */
  | { readonly _tag: "Unclean"; readonly reason: DropReason }
  /** The Worker's OS thread ended. */
  | { readonly _tag: "Exited"; readonly code: number }
  /** The pool retires the thread. */
  | { readonly _tag: "Retire"; readonly reason: "idle" | "shutdown" }

export const shared: ThreadState = { _tag: "Shared" }
const reserved: ThreadState = { _tag: "Reserved" }
const leased: ThreadState = { _tag: "Leased", doomed: undefined }
const dropped = (reason: DropReason): ThreadState => ({ _tag: "Out", out: { _tag: "Dropped", reason } })

/** The state after `event`. An event that does not apply leaves the state as it is. */
export const next = (state: ThreadState, event: ThreadEvent): ThreadState => {
  if (state._tag === "Out") return state
  switch (event._tag) {
    case "Reserve":
      return state._tag === "Shared" ? reserved : state
    case "Unreserve":
      return state._tag === "Reserved" ? shared : state
    case "Lease":
      return state._tag === "Leased" ? state : leased
    case "Release": {
      if (state._tag !== "Leased") return state
      const reason = state.doomed ?? event.reason
      return reason === undefined ? shared : dropped(reason)
    }
    case "Unclean":
      return state._tag === "Leased" ? (state.doomed === undefined ? { _tag: "Leased", doomed: event.reason } : state) : dropped(event.reason)
    case "Exited":
      return dropped(state._tag === "Leased" && state.doomed !== undefined ? state.doomed : { _tag: "Exited", code: event.code })
    case "Retire":
      return { _tag: "Out", out: { _tag: "Retired", reason: event.reason } }
  }
}

/** Whether the thread may still serve: in the pool, and not doomed. */
export const usable = (state: ThreadState): boolean =>
  state._tag === "Shared" || state._tag === "Reserved" || (state._tag === "Leased" && state.doomed === undefined)

/** Why the thread is not usable, if it is not. */
export const unusableReason = (state: ThreadState): DropReason | "retired" | undefined =>
  state._tag === "Leased" ? state.doomed : state._tag === "Out" ? (state.out._tag === "Dropped" ? state.out.reason : "retired") : undefined
