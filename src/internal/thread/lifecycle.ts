/**
 * A pinned thread's place in its pool, as one tagged union, and every change of it, in one pure
 * function (`next`): the drop rule is what this function says.
 *
 * - A thread is dropped when it reports itself unclean (restore or verification failed, user code
 *   moved or tainted it, or the request asked for no restore), when a lease on it ends by a defect
 *   or while a request of it that does not restore the thread is in flight (its caller was
 *   interrupted: the pool dooms the thread then), or when it exits. A lease interrupted between
 *   its requests gives the thread back: every answer it had was restored and verified.
 * - A thread held by a lease stays the lease's until the lease ends, even once doomed: the lease
 *   holder's later calls fail, and the drop happens at release. An exit is final at once.
 * - A lease that ends while its caller's request is still in flight (the caller was interrupted)
 *   leaves the thread draining: out of service until the request is answered. Answered clean
 *   (restored and verified, like any other answer) within the drain time, the thread is back in
 *   service; otherwise it is dropped (`Interrupted`). So an interrupted task that settles soon
 *   costs no thread.
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
  /**
   * Held by a lease. `doomed`: why it is to be dropped when the lease ends, if it is;
   * `abandoned`: a request of the lease is in flight and its caller gave up on it.
   */
  | { readonly _tag: "Leased"; readonly doomed: DropReason | undefined; readonly abandoned: boolean }
  /** Its lease ended with a request in flight: out of service until it is answered (see above). */
  | { readonly _tag: "Draining" }
  /** Out of the pool for good: being stopped, or stopped. */
  | { readonly _tag: "Out"; readonly out: Out }

export type ThreadEvent =
  /** The pool promises the thread to a waiting lease. */
  | { readonly _tag: "Reserve" }
  /** The pool takes the promise back: the lease was served by another thread. */
  | { readonly _tag: "Unreserve" }
  /** A lease takes the thread. */
  | { readonly _tag: "Lease" }
  /** A caller of the lease gave up on a request that is in flight. */
  | { readonly _tag: "Abandon" }
  /** A lease ends; `reason` if it ended by an interruption or a defect. */
  | { readonly _tag: "Release"; readonly reason: DropReason | undefined }
  /** A draining thread's request was answered, and it is clean. */
  | { readonly _tag: "Drained" }
  /** A draining thread's request was not answered in time. */
  | { readonly _tag: "DrainExpired" }
  /** The thread must not be reused. */
  | { readonly _tag: "Unclean"; readonly reason: DropReason }
  /** The Worker's OS thread ended. */
  | { readonly _tag: "Exited"; readonly code: number }
  /** The pool retires the thread. */
  | { readonly _tag: "Retire"; readonly reason: "idle" | "shutdown" }

/** The events that carry nothing, made once: `idle` runs on every request's answer. */
export const reserve: ThreadEvent = { _tag: "Reserve" }
export const unreserve: ThreadEvent = { _tag: "Unreserve" }
export const lease: ThreadEvent = { _tag: "Lease" }
export const abandon: ThreadEvent = { _tag: "Abandon" }
export const drained: ThreadEvent = { _tag: "Drained" }
export const drainExpired: ThreadEvent = { _tag: "DrainExpired" }

export const shared: ThreadState = { _tag: "Shared" }
const reserved: ThreadState = { _tag: "Reserved" }
const leased: ThreadState = { _tag: "Leased", doomed: undefined, abandoned: false }
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
    case "Abandon":
      return state._tag === "Leased" && !state.abandoned ? { ...state, abandoned: true } : state
    case "Release": {
      if (state._tag !== "Leased") return state
      if (state.doomed !== undefined) return dropped(state.doomed)
      // A defect of the caller's: nothing says what the thread was doing when it happened.
      if (event.reason?._tag === "Died") return dropped(event.reason)
      // A new object each time: a drain's deadline is for that drain alone.
      return state.abandoned ? { _tag: "Draining" } : shared
    }
    case "Drained":
      return state._tag === "Draining" ? shared : state
    case "DrainExpired":
      return state._tag === "Draining" ? dropped({ _tag: "Interrupted" }) : state
    case "Unclean":
      return state._tag === "Leased" ? (state.doomed === undefined ? { ...state, doomed: event.reason } : state) : dropped(event.reason)
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
