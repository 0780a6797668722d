/**
 * The threads of one `PinnedThreads` layer: starting them, routing requests to them, leasing one
 * to a caller, and retiring the idle ones. Every change of a thread's state goes through
 * `transition` (the rule itself is `lifecycle.ts`'s `next`), which also takes a thread that has
 * left the pool out of it, counts and reports it, and starts a replacement where one is due.
 *
 * Two ways of using a thread:
 *
 * - **Shared.** Library operations (built-in tasks, unshare, sockets, spawns) are synchronous on the
 *   thread and cannot leave it anywhere but where the library put it. Requests from any number of
 *   callers are queued on a thread and sent as one batch per round trip; the thread serves a batch
 *   in order, staying inside a set between requests for that set. A caller interrupted while its
 *   request is in flight simply stops waiting: the request completes on the thread, which stays
 *   usable.
 * - **Leased.** User code (module tasks), `enter`, and runs that drop their thread get a thread to
 *   themselves until the lease ends. If the lease ends by a defect, or while a request of it is in
 *   flight (the caller was interrupted) that does not restore the thread, or the thread reported
 *   it could not be restored, the thread is dropped: terminated, and replaced. One interrupted
 *   while its restoring request is in flight drains first (see `lifecycle.ts`).
 *
 * @internal
 */
import * as os from "node:os"
import { Effect, Exit, type Scope } from "effect"
import type { PayloadTooLarge } from "../errors.ts"
import { ThreadFailure } from "../errors.ts"
import { type DropClass, dropClass, type DropReason } from "../drop.ts"
import type { Request, Response } from "../protocol.ts"
import { isTypeScript, strippedSources } from "./bootstrap.ts"
import { BATCH_MAX, type Host, type Pending, PinnedThread, type Settle } from "./driver.ts"
import { abandon, drained, drainExpired, lease, next, reserve, type ThreadEvent, unreserve } from "./lifecycle.ts"
import { startThread } from "./start.ts"
import { nodeTimers, type Timers } from "./timers.ts"

/** What the service was configured with. */
export interface Limits {
  readonly min: number
  readonly max: number
  readonly idleTimeToLiveMs: number
  /** Told of each thread's start, drop and retirement (metrics, logs); must not throw. */
  readonly report?: ((event: PoolEvent) => void) | undefined
  /** Told how long each request took, from posting to its answer, in microseconds; must not throw. */
  readonly latency?: ((operation: string, micros: number) => void) | undefined
  /** The script each thread runs: gonso's worker (`defaultWorkerUrl` unless the layer was given one). */
  readonly workerUrl: URL
  /** How long a thread may take to start and report ready (default 30 seconds). */
  readonly startTimeoutMs?: number | undefined
  /** The clock of starts timing out and idle threads retiring (default: Node's timers). */
  readonly timers?: Timers | undefined
}

/** A moment in a thread's life, as the pool reports it to whoever observes it. */
export type PoolEvent =
  | { readonly type: "spawned"; readonly tid: number; readonly reason: "min" | "demand" | "replacement" }
  | { readonly type: "startFailed"; readonly reason: string }
  | { readonly type: "dropped"; readonly tid: number; readonly reason: DropReason }
  | { readonly type: "retired"; readonly tid: number; readonly reason: "idle" | "shutdown" }
  /** A thread that could not be terminated in time: blocked in a system call, out of V8's reach. */
  | { readonly type: "stuck"; readonly tid: number; readonly waitedMs: number }

/** The counts `PinnedThreads.stats` reports. */
export interface Counts {
  readonly idle: number
  readonly busy: number
  readonly pending: number
  readonly spawned: number
  readonly dropped: number
  /** The drops by the class of their reason. */
  readonly droppedByReason: Readonly<Partial<Record<DropClass, number>>>
  readonly retired: number
}

/**
 * The failures of a round trip. `InvalidOptions` (input that cannot be cloned) can only come from a
 * module task, whose type declares it; the others from any request.
 */
export type CallError = ThreadFailure | PayloadTooLarge

/** What ends a lease, as the reason to drop its thread, if it is one: an interruption or a defect. */
const leaseEnd = (exit: Exit.Exit<unknown, unknown> | undefined): DropReason | undefined => {
  if (exit === undefined || !Exit.isFailure(exit)) return undefined
  if (Exit.hasInterrupts(exit)) return { _tag: "Interrupted" }
  if (Exit.hasDies(exit)) return { _tag: "Died" }
  return undefined
}

/** A caller waiting for a thread of its own. */
interface LeaseWaiter {
  readonly grant: (thread: PinnedThread | ThreadFailure) => void
}

const closedFailure = () => new ThreadFailure({ reason: "the PinnedThreads layer is closed" })

/** How long closing a pool waits, at most, for threads still starting (see `close`). */
const STARTING_LIMIT_MS = 10_000

/** How long a thread whose lease ended with a request in flight may take to answer it (see `lifecycle.ts`). */
const DRAIN_MS = 250

export class ThreadPool implements Host {
  private readonly limits: Limits
  private readonly timers: Timers
  private readonly threads = new Set<PinnedThread>()
  private starting = 0
  private closed = false
  /** Shared requests that found no thread to queue on. */
  private waitingShared: Array<Pending> = []
  private waitingLeases: Array<LeaseWaiter> = []
  private readonly stopping = new Set<Promise<void>>()
  private cancelSweep: () => void = () => {}
  /** Batches in flight on all threads. */
  private inFlight = 0
  private counters = { spawned: 0, dropped: 0, retired: 0 }
  private droppedByReason: Partial<Record<DropClass, number>> = {}
  /** Threads that may serve shared requests at once: more only add pollers competing for cores. */
  private readonly sharedLimit: number
  /** Ends the threads still starting, each failing its start once it is gone (see `start.ts`). */
  private readonly abandons = new Set<(reason: string) => void>()

  constructor(limits: Limits) {
    this.limits = limits
    this.timers = limits.timers ?? nodeTimers
    this.sharedLimit = Math.max(1, Math.min(limits.max, os.availableParallelism() - 1))
    // Read the thread's sources now, with the privileges the program has while it builds the
    // layer: a program that drops them later may no longer read its own files.
    if (isTypeScript(limits.workerUrl)) strippedSources(limits.workerUrl)
    for (let i = 0; i < limits.min; i++) this.start("min")
    this.scheduleSweep()
  }

  counts(): Counts {
    let idle = 0
    for (const thread of this.threads) if (thread.load === 0 && thread.state._tag !== "Leased") idle++
    return {
      idle,
      busy: this.threads.size - idle,
      pending: this.waitingShared.length + this.waitingLeases.length,
      ...this.counters,
      droppedByReason: { ...this.droppedByReason }
    }
  }

  now(): number {
    return this.timers.now()
  }

  countInFlight(delta: number): number {
    return (this.inFlight += delta)
  }

  // -------------------------------------------------------------------------------------------
  // A thread's life
  // -------------------------------------------------------------------------------------------

  /**
   * Applies `event` to the thread's state: the one place where a thread's state changes. A thread
   * that leaves the pool is taken out, counted and reported; the returned promise settles once it
   * is stopped. A thread a lease gave back serves whoever waits.
   */
  transition(thread: PinnedThread, event: ThreadEvent): Promise<void> | undefined {
    const before = thread.state
    const after = next(before, event)
    if (after === before) return undefined
    thread.state = after
    if (after._tag === "Out") {
      const out = after.out
      if (out._tag === "Dropped") {
        this.counters.dropped++
        const cls = dropClass(out.reason)
        this.droppedByReason[cls] = (this.droppedByReason[cls] ?? 0) + 1
        this.limits.report?.({ type: "dropped", tid: thread.tid, reason: out.reason })
        return this.remove(thread, "replacement")
      }
      // A retired thread is counted once it is gone, like a drop that a caller waits for: a
      // retired thread in the counts is one the kernel no longer lists.
      const stopped = this.remove(thread, "demand")
      void stopped.finally(() => {
        this.counters.retired++
        this.limits.report?.({ type: "retired", tid: thread.tid, reason: out.reason })
      })
      return stopped
    }
    if (after._tag === "Draining") {
      // Answered already (between the caller's giving up and the lease's end): back at once.
      if (thread.load === 0) return this.transition(thread, drained)
      this.timers.after(DRAIN_MS, () => {
        if (thread.state === after) void this.transition(thread, drainExpired)
      })
      return undefined
    }
    if (after._tag === "Shared" && (before._tag === "Leased" || before._tag === "Draining")) this.idle(thread)
    return undefined
  }

  /** Called when a thread has nothing queued or in flight: it serves whoever waits. */
  idle(thread: PinnedThread): void {
    if (thread.state._tag === "Draining") return void this.transition(thread, drained)
    if (!thread.usable || thread.state._tag === "Leased") return
    thread.idleSince = this.timers.now()
    const waiter = this.waitingLeases.shift()
    if (waiter !== undefined) {
      this.transition(thread, lease)
      return waiter.grant(thread)
    }
    if (thread.state._tag === "Reserved") this.transition(thread, unreserve)
    const waiting = this.waitingShared
    this.waitingShared = []
    for (const pending of waiting) this.route(pending)
  }

  /** Starts threads for what waits, within `max`. */
  private grow(): void {
    if (this.threads.size + this.starting < this.limits.max) this.start()
  }

  private start(reason: "min" | "demand" | "replacement" = "demand"): void {
    if (this.closed) return
    this.starting++
    startThread(this.limits.workerUrl, { timers: this.timers, startTimeoutMs: this.limits.startTimeoutMs ?? 30_000, abandons: this.abandons }).then(
      (started) => {
        this.starting--
        const thread = new PinnedThread(started, this)
        if (this.closed) {
          // Out of the pool from birth: its end is the shutdown's, not a drop.
          thread.state = { _tag: "Out", out: { _tag: "Retired", reason: "shutdown" } }
          return void this.stop(thread)
        }
        this.counters.spawned++
        this.threads.add(thread)
        this.limits.report?.({ type: "spawned", tid: thread.tid, reason })
        this.idle(thread)
      },
      (reason: string) => {
        this.starting--
        this.limits.report?.({ type: "startFailed", reason })
        // With no thread alive or coming, nobody waiting would ever be served: they fail.
        if (this.threads.size === 0 && this.starting === 0) {
          const failure = new ThreadFailure({ reason })
          const leases = this.waitingLeases
          const shared = this.waitingShared
          this.waitingLeases = []
          this.waitingShared = []
          for (const waiter of leases) waiter.grant(failure)
          for (const pending of shared) pending.settle(failure)
        }
      }
    )
    // Starting from a burst: one more thread per waiting lease, up to `max`, at once.
    if (this.waitingLeases.length > this.starting && this.threads.size + this.starting < this.limits.max) this.start()
  }

  /** Told that a thread could not be terminated in time. */
  reportStuck(tid: number, waitedMs: number): void {
    this.limits.report?.({ type: "stuck", tid, waitedMs })
  }

  /** Takes a thread out of the pool, stops it, and starts a replacement if one is due. */
  private remove(thread: PinnedThread, replacement: "demand" | "replacement"): Promise<void> {
    this.threads.delete(thread)
    const stopped = this.stop(thread)
    if (this.closed) return stopped
    // Below `min`, a replacement; for whoever waits, a thread within `max`, unless one is starting
    // for them already (the thread's own requests, rerouted as it stopped, may have started one).
    if (this.threads.size + this.starting < this.limits.min) this.start(replacement)
    else if (this.waitingLeases.length > 0 || (this.waitingShared.length > 0 && this.starting === 0)) this.grow()
    return stopped
  }

  private stop(thread: PinnedThread): Promise<void> {
    const stopped = thread.shutdown().finally(() => this.stopping.delete(stopped))
    this.stopping.add(stopped)
    return stopped
  }

  /** Retires, every half time to live, the threads above `min` idle longer than their time to live. */
  private scheduleSweep(): void {
    const every = Math.max(10, Math.min(1_000, this.limits.idleTimeToLiveMs / 2))
    this.cancelSweep = this.timers.after(every, () => {
      if (this.closed) return
      this.sweep()
      this.scheduleSweep()
    })
  }

  private sweep(): void {
    const now = this.timers.now()
    for (const thread of this.threads) {
      if (this.threads.size <= this.limits.min) return
      if (thread.state._tag === "Shared" && thread.load === 0 && now - thread.idleSince >= this.limits.idleTimeToLiveMs) {
        void this.transition(thread, { _tag: "Retire", reason: "idle" })
      }
    }
  }

  /**
   * Closes the pool: whoever waits fails, running tasks are cut short, and every thread is
   * terminated; resolves once they are all gone.
   */
  async close(): Promise<void> {
    this.closed = true
    this.cancelSweep()
    for (const waiter of this.waitingLeases) waiter.grant(closedFailure())
    for (const pending of this.waitingShared) pending.settle(closedFailure())
    this.waitingLeases = []
    this.waitingShared = []
    // A thread still starting that has begun as gonso's worker is stopped like the others once it
    // has reported ready (see `life.ts`); one that has not begun (or a script that is not gonso's
    // worker) is terminated now, rather than waited for.
    for (const abandon of [...this.abandons]) abandon("the PinnedThreads layer is closed")
    for (const thread of [...this.threads]) void this.transition(thread, { _tag: "Retire", reason: "shutdown" })
    // A thread still starting reports ready (and is stopped) or ends; one that hangs in its
    // birth is waited for ten seconds at most, and stopped whenever it reports.
    const startsUntil = Date.now() + STARTING_LIMIT_MS
    while (this.stopping.size > 0 || (this.starting > 0 && Date.now() < startsUntil)) {
      await Promise.all([...this.stopping])
      if (this.starting > 0) await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }

  // -------------------------------------------------------------------------------------------
  // Shared requests
  // -------------------------------------------------------------------------------------------

  /**
   * Sends `request` on a shared thread. `settle` is called exactly once with the answer, unless the
   * returned function, called when the caller gives up, returns true: then the request was still
   * waiting to be sent, and never will be. Once sent, a request completes on its thread and is
   * still settled, so that whatever the caller held for it (the set's fds) is let go only then.
   */
  post(request: Request, key: number, json: string | undefined, settle: Settle): () => boolean {
    let settled = false
    const latency = this.limits.latency
    const start = latency === undefined ? 0 : performance.now()
    const pending: Pending = {
      request,
      json,
      key,
      abandoned: false,
      settle: (result) => {
        if (settled) return
        settled = true
        if (latency !== undefined) latency(request.operation, (performance.now() - start) * 1_000)
        settle(result)
      }
    }
    this.route(pending)
    return () => {
      if (settled || pending.abandoned) return false
      pending.abandoned = true
      const thread = pending.queuedOn
      if (thread === undefined) {
        const before = this.waitingShared.length
        this.waitingShared = this.waitingShared.filter((each) => each !== pending)
        return this.waitingShared.length < before
      }
      return thread.unqueue(pending)
    }
  }

  /** Sends a request that a thread going out of service did not serve to another thread. */
  reroute(pending: Pending): void {
    this.route(pending)
  }

  private route(pending: Pending): void {
    if (this.closed) return pending.settle(closedFailure())
    const thread = this.choose(pending.key)
    if (thread === undefined) {
      pending.queuedOn = undefined
      this.waitingShared.push(pending)
      if (this.starting === 0) this.grow()
      return
    }
    thread.enqueue(pending)
  }

  /**
   * The thread for a shared request: one already inside the request's set, else an idle one, else
   * the least loaded; a new one is started when the shared threads are all well loaded.
   */
  private choose(key: number): PinnedThread | undefined {
    let best: PinnedThread | undefined
    let shared = 0
    for (const thread of this.threads) {
      if (thread.state._tag !== "Shared") continue
      shared++
      if (thread.lastKey === key && thread.load < BATCH_MAX) return thread
      if (best === undefined || thread.load < best.load) best = thread
    }
    if (best !== undefined && best.load >= BATCH_MAX / 2 && shared < this.sharedLimit && this.starting === 0) this.grow()
    return best
  }

  // -------------------------------------------------------------------------------------------
  // Leases
  // -------------------------------------------------------------------------------------------

  /**
   * A thread of the caller's own for the life of the current Scope. When the Scope closes the
   * thread returns to the pool, or is dropped (see `lifecycle.ts`).
   */
  readonly lease: Effect.Effect<PinnedThread, ThreadFailure, Scope.Scope> = Effect.acquireRelease(
    // Waiting for a thread can be interrupted (a timeout, a race); a thread granted after the
    // waiter gave up goes straight back.
    Effect.interruptible(Effect.callback<PinnedThread, ThreadFailure>((resume) => {
      let done = false
      const waiter: LeaseWaiter = {
        grant: (result) => {
          if (done) {
            if (!(result instanceof ThreadFailure)) void this.release(result, undefined)
            return
          }
          done = true
          if (result instanceof ThreadFailure) return resume(Effect.fail(result))
          resume(Effect.succeed(result))
        }
      }
      this.acquire(waiter)
      return Effect.sync(() => {
        if (done) return
        done = true
        this.waitingLeases = this.waitingLeases.filter((each) => each !== waiter)
      })
    })),
    (thread, exit) => Effect.promise(() => this.release(thread, exit))
  )

  private acquire(waiter: LeaseWaiter): void {
    if (this.closed) return waiter.grant(closedFailure())
    let busiest: PinnedThread | undefined
    for (const thread of this.threads) {
      if (thread.state._tag !== "Shared") continue
      if (thread.load === 0) {
        this.transition(thread, lease)
        return waiter.grant(thread)
      }
      if (busiest === undefined || thread.load < busiest.load) busiest = thread
    }
    this.waitingLeases.push(waiter)
    if (this.threads.size + this.starting < this.limits.max) return this.start()
    // At the limit: the least loaded shared thread takes no new shared work and is handed over
    // once what it has is done, unless another thread frees up first. Were it the only one,
    // shared requests wait meanwhile: a lease must not starve behind a stream of them.
    if (busiest !== undefined && this.reservedCount() < this.waitingLeases.length) this.transition(busiest, reserve)
  }

  private reservedCount(): number {
    let count = 0
    for (const thread of this.threads) if (thread.state._tag === "Reserved") count++
    return count
  }

  /** Ends a lease: the thread goes back to the pool, or is dropped (and is gone once this resolves). */
  private async release(thread: PinnedThread, exit: Exit.Exit<unknown, unknown> | undefined): Promise<void> {
    await this.transition(thread, { _tag: "Release", reason: leaseEnd(exit) })
  }

  /** Marks a leased thread to be dropped when its lease ends (or drops a shared one now). */
  doom(thread: PinnedThread, reason: DropReason): void {
    void this.transition(thread, { _tag: "Unclean", reason })
  }

  /**
   * Sends one request on a leased thread and waits for its answer. If the caller is interrupted
   * meanwhile, the thread may be anywhere in the task: it drains when the lease ends.
   */
  call(thread: PinnedThread, request: Request): Effect.Effect<Response, CallError> {
    return Effect.callback<Response, CallError>((resume) => {
      if (!thread.usable) return resume(Effect.fail(thread.failure()))
      const latency = this.limits.latency
      const start = latency === undefined ? 0 : performance.now()
      const pending: Pending = {
        request,
        key: request.set?.key ?? thread.lastKey,
        leased: true,
        abandoned: false,
        settle: (result) => {
          if (pending.abandoned) return
          pending.abandoned = true
          if (latency !== undefined) latency(request.operation, (performance.now() - start) * 1_000)
          resume("_tag" in result ? Effect.fail(result as CallError) : Effect.succeed(result))
        }
      }
      thread.enqueue(pending)
      return Effect.sync(() => {
        if (pending.abandoned) return
        pending.abandoned = true
        // Sent already: the thread may be anywhere in the task. A request that restores the
        // thread when it is answered (`leave`) lets the lease end with it in flight, and the thread
        // drains (see `lifecycle.ts`); any other (an `enter` lease's) dooms the thread.
        if (!thread.unqueue(pending)) {
          void this.transition(thread, request.leave === true ? abandon : { _tag: "Unclean", reason: { _tag: "Interrupted" } })
        }
      })
    })
  }
}

/** Where a `PinnedThreads` service value carries its pool (the service's type shows only `stats`). */
const poolKey = Symbol.for("gonso/PinnedThreads/pool")

/** The service value of a layer, carrying `pool`. */
export const withPool = <S extends object>(service: S, pool: ThreadPool): S =>
  Object.defineProperty(service, poolKey, { value: pool, enumerable: false })

/**
 * The pool a `PinnedThreads` service carries. A service made otherwise than by
 * `PinnedThreads.layer` (a stand-in of the program's own) has none: that is a defect.
 */
export const poolOf = (service: object): ThreadPool => {
  const pool = (service as { readonly [poolKey]?: ThreadPool })[poolKey]
  if (pool === undefined) throw new Error("this PinnedThreads service was not built by PinnedThreads.layer: it has no threads")
  return pool
}
