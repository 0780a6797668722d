/**
 * The entry point of a pinned thread: a Worker that owns one OS thread for its whole life, so the
 * namespace changes made here by koffi's `setns`/`unshare` apply to this thread alone.
 *
 * It serves batches of requests from the shared channel. For each request it makes sure it is
 * inside the request's set (leaving the one it was in first, restored and verified, see
 * `state.ts`), runs the task and records the outcome. Between back-to-back requests for the same
 * set it stays inside; when no request has come for a short while it leaves, before it parks, so
 * an idle thread is always back at its baseline (a thread leased by `enter` stays until told).
 *
 * @internal
 */
// First: nothing below is evaluated unless gonso started this thread (see `started.ts`).
import { data, port } from "./started.ts"
import * as channel from "../channel.ts"
import { type DropReason, describe, type Misplaced } from "../drop.ts"
import { syscallError } from "../failure.ts"
import * as life from "../life.ts"
import type { Notice, Outcome, Request, Response, WireError } from "../protocol.ts"
import * as state from "./state.ts"
import { handlers, moving } from "./tasks.ts"

const chan = channel.attach(data.channel)
/** The slot the next batch comes in: the main side fills them alternately. */
let next: 0 | 1 = 0
const notify = (notice: Notice) => port.postMessage(notice)

/**
 * How long the thread polls for the next request after answering, before it leaves its set and
 * parks. The caller of a sequence of runs sends its next request within a few microseconds.
 */
const LINGER_MICROS = 60

/** Whether an `enter` lease keeps the thread inside its set while idle. */
let held = false

/** What a task threw, as the typed error it reports. */
const failure = (operation: string, error: unknown): Outcome => {
  if (typeof (error as WireError)?._tag === "string" && !(error instanceof Error)) return { ok: false, error: error as WireError }
  // Node's own checks of its arguments (a path with a NUL byte, say): input the main side should
  // have refused, still a caller's mistake and not the thread's.
  const code = (error as NodeJS.ErrnoException)?.code
  if (error instanceof TypeError && (code === "ERR_INVALID_ARG_VALUE" || code === "ERR_INVALID_ARG_TYPE")) {
    return { ok: false, error: { _tag: "InvalidOptions", operation, reason: error.message } }
  }
  try {
    return { ok: false, error: syscallError(operation, error) }
  } catch {
    return { ok: false, error: { _tag: "ThreadFailure", reason: `${operation} failed: ${String(error)}`, tid: state.tid } }
  }
}

/** Outcomes of requests the thread did not serve because it is not reusable: the main side sends them elsewhere. */
const unserved = new WeakSet<Outcome>()

/** The failure of a request that the thread cannot serve, or whose task it found moved afterwards. */
const threadFailure = (reason: DropReason): Outcome => {
  const namespaces: ReadonlyArray<Misplaced> | undefined = reason._tag === "Moved" ? reason.namespaces : undefined
  return { ok: false, error: { _tag: "ThreadFailure", reason: describe(reason), tid: state.tid, ...(namespaces === undefined ? {} : { namespaces }) } }
}

const unusable = (reason: DropReason): Outcome => {
  const outcome = threadFailure(reason)
  unserved.add(outcome)
  return outcome
}

/**
 * Puts the thread inside the request's set, then starts its task. A task begins only on a thread
 * verified to be inside the set: if user code may have run since the thread's namespaces were
 * last checked, they are checked now, every kind (see `state.checkPlace`).
 */
const start = (request: Request): Outcome | Promise<Outcome> => {
  const unclean = state.uncleanReason()
  if (unclean !== undefined) return unusable(unclean)
  if (request.set !== undefined && request.set.key !== state.inside()) {
    if (state.inside() !== state.BASELINE) state.leave()
    const afterLeave = state.uncleanReason()
    if (afterLeave !== undefined) return unusable(afterLeave)
    try {
      state.join(request.operation, request.set)
    } catch (error) {
      // Half inside a set is nowhere to stay: undo the kinds already joined before answering.
      state.leave()
      return failure(request.operation, error)
    }
  }
  if (state.placeUnchecked() && state.checkPlace("before").length > 0) return unusable(state.uncleanReason()!)
  if (request.hold === true) held = true
  const task = request.task
  if (task === undefined) return { ok: true, value: undefined }
  try {
    const value = (handlers[task.op] as (args: unknown) => unknown)(task.args)
    if (value instanceof Promise) {
      return value.then((result): Outcome => ({ ok: true, value: result }), (error) => failure(`Task.${task.op}`, error))
    }
    return { ok: true, value }
  } catch (error) {
    return failure(`Task.${task.op}`, error)
  }
}

/**
 * Settles what the request leaves behind, and the response that reports it. After user code every
 * namespace is checked where the task ended: an answer computed outside the set is never
 * delivered, the caller gets a `ThreadFailure` naming the kinds expected and found instead.
 */
const finish = (request: Request, given: Outcome): Response => {
  let outcome = given
  const op = request.task?.op
  const leaving = request.leave === true || (op !== undefined && moving.has(op))
  if (op === "module" && !unserved.has(outcome) && state.checkPlace("after").length > 0) outcome = threadFailure(state.uncleanReason()!)
  if (leaving) {
    state.leave()
    if (request.leave === true) held = false
  }
  if (request.drop === true) state.markUnclean({ _tag: "NoRestore" })
  const unclean = state.uncleanReason()
  const response: Response = unclean === undefined ? { outcome } : { outcome, unclean }
  return unserved.has(outcome) ? { ...response, unserved: true } : response
}

/**
 * Publishes the responses. A module's result that cannot be cloned becomes that request's
 * `ModuleTaskError` (`DataCloneError`); answers that do not fit the channel together become
 * `PayloadTooLarge`, largest first, until the rest fit. The thread itself stays usable.
 */
const respond = (slot: channel.Slot, requests: ReadonlyArray<Request>, responses: Array<Response>, format: channel.Format): void => {
  let encoded: Buffer | string
  try {
    encoded = channel.encode(responses, format)
  } catch {
    const sizes = responses.map((response, i) => {
      try {
        return channel.encodedSize(response, format)
      } catch (error) {
        const task = requests[i]?.task
        const module = task?.op === "module" ? task.args : undefined
        responses[i] = {
          ...response,
          outcome: {
            ok: false,
            error: {
              _tag: "ModuleTaskError",
              url: module?.url ?? "",
              exportName: module?.exportName ?? "",
              name: "DataCloneError",
              error: String((error as Error)?.message ?? error)
            }
          }
        }
        return 256
      }
    })
    let total = sizes.reduce((sum, size) => sum + size, 2)
    const largestFirst = sizes.map((size, i) => [size, i] as const).sort((a, b) => b[0] - a[0])
    for (const [size, i] of largestFirst) {
      if (total <= channel.limit) break
      responses[i] = { ...responses[i]!, outcome: { ok: false, error: { _tag: "PayloadTooLarge", bytes: size, limit: channel.limit } } }
      total -= size - 256
    }
    encoded = channel.encode(responses, format)
  }
  channel.publish(slot, encoded, channel.RESPONSE)
}

/** Serves one batch; returns false when an asynchronous task took the thread's event loop. */
const serveBatch = (slot: channel.Slot): boolean => {
  const format = channel.formatOf(slot)
  const requests = channel.read(slot) as ReadonlyArray<Request>
  channel.markServing(slot)
  const responses: Array<Response> = []
  for (const request of requests) {
    const outcome = start(request)
    if (outcome instanceof Promise) {
      // An asynchronous task (a user module) needs this thread's event loop, so the thread stops
      // serving until it settles. Such tasks come alone: the thread is leased to them. Its user
      // code runs outside gonso's code (the thread may be terminated meanwhile); once the main
      // side has claimed the thread's end, nothing of gonso's runs here again.
      void outcome.then((settled) => {
        if (!life.enter(chan.control)) return
        try {
          state.loopTurned()
          responses.push(finish(request, settled))
          respond(slot, requests, responses, format)
          setImmediate(serve)
        } finally {
          life.leave(chan.control)
        }
      })
      return false
    }
    responses.push(finish(request, outcome))
  }
  respond(slot, requests, responses, format)
  return true
}

/** Leaves the set the thread lingered in before it parks, unless an `enter` lease holds it there. */
const goIdle = (): void => {
  if (held || state.inside() === state.BASELINE) return
  // Already reported unclean in a response: the main side is dropping the thread.
  if (state.uncleanReason() !== undefined) return
  state.leave()
  const unclean = state.uncleanReason()
  if (unclean !== undefined) notify({ type: "unclean", reason: unclean })
}

/** Serves batches until a task needs the event loop or the main side gives the thread up. */
const serve = (): void => {
  if (!life.enter(chan.control)) return
  state.loopTurned()
  try {
    for (;;) {
      const slot = chan.slots[next]
      if (!channel.awaitRequest(chan, slot, LINGER_MICROS, goIdle)) return
      next = next === 0 ? 1 : 0
      if (!serveBatch(slot)) return
    }
  } finally {
    life.leave(chan.control)
  }
}

notify({ type: "ready", ready: state.ready })
setImmediate(serve)
life.leave(chan.control)
