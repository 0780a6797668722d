/**
 * The main side of one pinned thread: its Worker, its channel, its queue of requests, the
 * batches in flight, and the driving of answers back to their callers. Its place in the pool is
 * one `ThreadState` (see `lifecycle.ts`), changed only by the pool's `transition`.
 *
 * @internal
 */
import * as fs from "node:fs"
import type { Worker } from "node:worker_threads"
import { InvalidOptions, PayloadTooLarge, ThreadFailure } from "../errors.ts"
import * as channel from "../channel.ts"
import { describe } from "../drop.ts"
import * as libc from "../libc.ts"
import * as life from "../life.ts"
import type { Notice, Ready, Request, Response } from "../protocol.ts"
import { shared, type ThreadEvent, type ThreadState, unusableReason, usable } from "./lifecycle.ts"
import type { Started } from "./start.ts"

/**
 * How long stopping a thread waits, at most, for it to be out of gonso's code and then for its
 * termination. A thread blocked in a system call (user code reading a FIFO with no writer, say)
 * cannot be terminated until the call returns; nobody waits for it past this, and it ends when the
 * call returns.
 */
const TERMINATE_LIMIT_MS = 2_000
/** How long shutdown waits, at most, for the kernel to release a terminated thread. */
const THREAD_EXIT_LIMIT_MS = 1_000
/** Requests sent to a thread in one round trip, at most. */
export const BATCH_MAX = 64
/**
 * How long the main thread polls synchronously for the answer to a lone request before it returns
 * to its event loop. It does so only when nothing else is in flight: blocking the event loop then
 * costs nobody anything, and a short task is answered within the window.
 */
const MAIN_SPIN_MICROS = 40
/**
 * How long, at most, one turn of the event loop hands out answers and sends the requests they
 * lead to before the loop gets a turn again.
 */
const DRIVE_MICROS = 200
/** How long the main thread checks for an answer once per event-loop turn before it sleeps. */
const POLL_MICROS = 2_000

export type Settle = (result: Response | ThreadFailure | PayloadTooLarge | InvalidOptions) => void

/** One request waiting for its answer. */
export interface Pending {
  readonly request: Request
  /** The request as JSON, when the caller had it made already (from parts it caches). */
  readonly json?: string | undefined
  /** The set the request is for (0: none); a hint for routing. */
  readonly key: number
  readonly settle: Settle
  abandoned: boolean
  /** From a lease holder: it belongs to its thread and is never sent to another. */
  readonly leased?: boolean
  /** The thread whose queue it is in, if any. */
  queuedOn?: PinnedThread | undefined
}

/** What a thread needs of its pool. */
export interface Host {
  /** Applies an event to the thread's state (the pool's one place for transitions). */
  readonly transition: (thread: PinnedThread, event: ThreadEvent) => Promise<void> | undefined
  /** Sends a request this thread will not serve to another thread. */
  readonly reroute: (pending: Pending) => void
  /** The thread has nothing queued or in flight. */
  readonly idle: (thread: PinnedThread) => void
  /** Batches in flight on all of the pool's threads, changed by `delta`; returns the new count. */
  readonly countInFlight: (delta: number) => number
  /** The thread could not be terminated in time. */
  readonly reportStuck: (tid: number, waitedMs: number) => void
  /** Now, on the pool's clock. */
  readonly now: () => number
}

/** `batch` ordered by set, `first` first, keeping each set's requests in their order. */
const groupBySet = (batch: Array<Pending>, first: number): Array<Pending> => {
  const groups = new Map<number, Array<Pending>>([[first, []]])
  for (const pending of batch) {
    const group = groups.get(pending.key)
    if (group === undefined) groups.set(pending.key, [pending])
    else group.push(pending)
  }
  return [...groups.values()].flat()
}

export class PinnedThread {
  readonly tid: number
  readonly fds: ReadonlyArray<number>
  private readonly worker: Worker
  private readonly channel: channel.Channel
  private readonly host: Host
  /** The thread's place in its pool; changed by the pool's `transition` alone. */
  state: ThreadState = shared
  /** Requests not sent yet. */
  private queue: Array<Pending> = []
  /** The batches in flight, oldest first, with their slots: at most one per slot. */
  private inFlight: Array<{ readonly batch: Array<Pending>; readonly slot: channel.Slot }> = []
  /** The slot the next batch goes in: the thread serves them alternately. */
  private next: 0 | 1 = 0
  /** Whether the Worker's OS thread has ended (its 'exit' event). */
  private exited = false
  /** The set of the last request sent: a thread stays inside it between requests. */
  lastKey = 0
  /** When the thread last went idle, on the pool's clock (`timers.ts`). */
  idleSince: number

  constructor(started: Started, host: Host) {
    this.worker = started.worker
    this.channel = started.channel
    this.host = host
    this.tid = started.ready.tid
    this.fds = started.ready.fds
    this.idleSince = host.now()
    this.worker.on("message", (notice: Notice) => {
      if (notice.type === "orphan") return libc.reapWhenGone(notice.child)
      if (notice.type !== "unclean") return
      // Answers written before the thread went idle are still due to their callers.
      this.receive()
      void this.host.transition(this, { _tag: "Unclean", reason: notice.reason })
    })
    this.worker.on("exit", (code) => {
      this.exited = true
      channel.wake(this.channel)
      // A stop waiting for the thread to leave gonso's code wakes: there is no thread any more.
      Atomics.notify(this.channel.control, life.LIFE_WORD)
      // Out of the pool first, so that a caller resumed by what follows finds it gone; stopping
      // the thread then hands out the answers it wrote, and fails or re-routes the rest.
      void this.host.transition(this, { _tag: "Exited", code })
    })
  }

  /** Requests queued or in flight. */
  get load(): number {
    let load = this.queue.length
    for (const each of this.inFlight) load += each.batch.length
    return load
  }

  get usable(): boolean {
    return usable(this.state)
  }

  /** The failure of a request this thread can no longer serve. */
  failure(fallback = "the thread is gone"): ThreadFailure {
    const reason = unusableReason(this.state)
    return new ThreadFailure({
      reason: reason === undefined ? fallback : reason === "retired" ? "the thread was retired" : describe(reason),
      tid: this.tid
    })
  }

  enqueue(pending: Pending): void {
    pending.queuedOn = this
    this.queue.push(pending)
    // While answers are handed out, the callers they resume queue their next requests here; they
    // go out together once every caller of the batch has had its turn.
    if (this.inFlight.length < 2 && !this.settling) this.send()
  }

  /** Set while the answers of a batch are handed to their callers: nobody may block then. */
  private settling = false

  /** Removes a request not sent yet; true if it was still queued. */
  unqueue(pending: Pending): boolean {
    const index = this.queue.indexOf(pending)
    if (index < 0) return false
    this.queue.splice(index, 1)
    return true
  }

  /**
   * Settles what can no longer be answered here: requests in flight fail (the thread may have run
   * them in part); requests never sent go to another thread, or fail if they belong to a lease.
   */
  private failAll(): void {
    const failure = this.failure()
    // A batch the thread never took up (its slot still says REQUEST) was not served at all: it is
    // sent elsewhere like a request never sent. One it took up may have run in part: it fails.
    const served = this.inFlight.filter((each) => channel.state(each.slot) !== channel.REQUEST).flatMap((each) => each.batch)
    const untouched = this.inFlight.filter((each) => channel.state(each.slot) === channel.REQUEST).flatMap((each) => each.batch)
    if (this.inFlight.length > 0) this.host.countInFlight(-this.inFlight.length)
    this.inFlight = []
    const unsent = [...untouched, ...this.queue]
    this.queue = []
    for (const each of served) each.settle(failure)
    this.sendElsewhere(unsent, failure)
  }

  /** Requests this thread will not serve: see {@link elsewhere}. */
  private sendElsewhere(pendings: ReadonlyArray<Pending>, failure: ThreadFailure): void {
    for (const each of pendings) this.elsewhere(each, failure)
  }

  /**
   * A request this thread will not serve goes to another thread, if its caller still waits for it
   * there. Otherwise it is settled here with `answer`: one of a lease belongs to this thread, and
   * one whose caller gave up on it still settles, so that what the caller held for it (its set,
   * whose fds close only when nothing holds them) is let go.
   */
  private elsewhere(pending: Pending, answer: Response | ThreadFailure): void {
    if (pending.leased === true || pending.abandoned) pending.settle(answer)
    else this.host.reroute(pending)
  }

  /** The oldest batch, with its answers, once the thread has written them. */
  private takeAnswered(): { readonly batch: Array<Pending>; readonly responses: ReadonlyArray<Response> } | undefined {
    const oldest = this.inFlight[0]
    if (oldest === undefined || channel.state(oldest.slot) !== channel.RESPONSE) return undefined
    this.inFlight.shift()
    this.host.countInFlight(-1)
    return { batch: oldest.batch, responses: channel.read(oldest.slot) as ReadonlyArray<Response> }
  }

  /**
   * Gives a request its answer; one the thread did not serve because it stopped being reusable
   * before its turn (another caller's request made it so) goes to another thread instead.
   */
  private hand(pending: Pending, response: Response): void {
    if (response.unserved === true) this.elsewhere(pending, response)
    else pending.settle(response)
  }

  /** Hands out the answers the thread has written, oldest first, up to the first not written. */
  private collect(): void {
    for (let answered = this.takeAnswered(); answered !== undefined; answered = this.takeAnswered()) {
      const { batch, responses } = answered
      batch.forEach((pending, i) => this.hand(pending, responses[i]!))
    }
  }

  /** Sends the queue as one batch, as large as fits a slot. */
  private send(): void {
    if (this.exited || this.state._tag === "Out") return this.failAll()
    let batch = this.queue.splice(0, BATCH_MAX)
    if (batch.length === 0) return
    // Callers of one batch wait for each other's answers, not in any order: grouping them by set,
    // the thread's current set first, spares the thread a leave and a join per change of set.
    if (batch.length > 2) batch = groupBySet(batch, this.lastKey)
    const format = batch.some((pending) => pending.request.task?.op === "module") ? channel.V8_FORMAT : channel.JSON_FORMAT
    const sent: Array<Pending> = []
    const parts: Array<string | Buffer> = []
    let bytes = 2
    for (let i = 0; i < batch.length; i++) {
      const pending = batch[i]!
      let part: string | Buffer
      try {
        part = format === channel.JSON_FORMAT
          ? channel.checked(pending.json ?? JSON.stringify(pending.request))
          : channel.encode([pending.request], format)
      } catch (error) {
        // This request cannot cross (it cannot be cloned, or is too large): it fails alone.
        pending.settle(
          error instanceof channel.TooLarge
            ? new PayloadTooLarge({ bytes: error.bytes, limit: channel.limit })
            : new InvalidOptions({
              operation: pending.request.operation,
              reason: `the task's input cannot be sent to a pinned thread: ${(error as Error)?.message ?? String(error)}`
            })
        )
        continue
      }
      const size = typeof part === "string" ? (part.length < channel.limit / 3 ? part.length * 3 : Buffer.byteLength(part)) + 1 : part.length
      if (sent.length > 0 && bytes + size > channel.limit) {
        // The rest goes in the next batch.
        this.queue.unshift(...batch.slice(i))
        break
      }
      bytes += size
      sent.push(pending)
      parts.push(part)
    }
    if (sent.length === 0) return this.send()
    const encoded = format === channel.JSON_FORMAT ? `[${parts.join(",")}]` : parts[0]!
    const slot = this.channel.slots[this.next]
    this.next = this.next === 0 ? 1 : 0
    this.inFlight.push({ batch: sent, slot })
    this.lastKey = sent[sent.length - 1]!.key
    this.host.countInFlight(1)
    channel.publish(slot, encoded, channel.REQUEST)
    this.watch()
  }

  /** Set while a watch for the oldest batch's answer is under way. */
  private watching = false

  /**
   * Waits for the oldest batch's answer without blocking the event loop: checked once per turn of
   * the loop for a while, then by `Atomics.waitAsync`, which costs nothing while a long task runs.
   */
  private watch(): void {
    // While a turn of the loop is driving this thread's answers (see `drive`), it watches.
    if (this.watching || this.driving) return
    // A single request is in flight in the whole pool, and nobody is waiting to send: polling
    // synchronously for a moment holds nobody up, and a short task is answered within it. Its
    // answer then resumes only its own caller, which is the one polling: answers to others are
    // never handed out on this stack, so no caller can run another's turn inside its own.
    const only = this.inFlight[0]
    if (only !== undefined && this.inFlight.length === 1 && only.batch.length === 1 && this.host.countInFlight(0) === 1 && this.queue.length === 0 && !this.settling) {
      if (!channel.pending(channel.spinWhilePending(only.slot, MAIN_SPIN_MICROS))) return this.receive()
    }
    this.watching = true
    let started = performance.now()
    const poll = () => {
      this.watching = false
      if (this.inFlight[0] === undefined) return
      this.drive()
      const oldest = this.inFlight[0]
      if (oldest === undefined || this.watching) return
      this.watching = true
      if (performance.now() - started < POLL_MICROS / 1_000) {
        // Polling holds a CPU: offer it away each turn, in case the thread that is to answer
        // waits for one.
        libc.yieldCpu()
        return void setImmediate(poll)
      }
      const sleeping = channel.awaitResponseAsync(oldest.slot)
      started = performance.now()
      if (sleeping === undefined) setImmediate(poll)
      else void sleeping.then(poll)
    }
    setImmediate(poll)
  }

  /** Set while `drive` runs. */
  private driving = false

  /**
   * From a turn of the event loop of its own (nothing of any caller on the stack), hands out
   * answers as they come for up to DRIVE_MICROS: the callers it resumes send their next requests,
   * which go out at once, and the next answer is usually there by the time they have. The thread
   * and the main thread then work side by side without a turn of the loop between requests; past
   * the window, the loop gets its turn.
   */
  private drive(): void {
    const until = performance.now() + DRIVE_MICROS / 1_000
    this.driving = true
    try {
      for (;;) {
        const oldest = this.inFlight[0]
        if (oldest === undefined) return
        const left = (until - performance.now()) * 1_000
        if (channel.pending(channel.spinWhilePending(oldest.slot, Math.max(0, left)))) return
        this.receive()
        if (!this.usable) return
      }
    } finally {
      this.driving = false
    }
  }

  private receive(): void {
    const answered = this.takeAnswered()
    if (answered === undefined) return
    const { batch, responses } = answered
    // The drop is decided before any caller resumes: a caller that reads the stats next, or sends
    // its next request, finds the thread already out of the pool.
    for (const response of responses) {
      if (response.unclean !== undefined) void this.host.transition(this, { _tag: "Unclean", reason: response.unclean })
    }
    // A lone caller resumed here may poll for its next answer at once; with several callers to
    // resume, nobody may block the others' turn.
    this.settling = batch.length > 1
    try {
      for (let i = 0; i < batch.length; i++) this.hand(batch[i]!, responses[i]!)
    } finally {
      this.settling = false
    }
    // A thread out of service is stopped by the pool, which hands out what it still holds; a
    // draining one is back once it has answered everything.
    if (!this.usable) {
      if (this.state._tag === "Draining" && this.load === 0) this.host.idle(this)
      return
    }
    if (this.queue.length > 0 && this.inFlight.length < 2) this.send()
    if (this.inFlight.length > 0) this.watch()
    else if (this.load === 0) this.host.idle(this)
  }

  /**
   * Ends the thread: it is told to stop, its Worker is terminated once the thread is out of
   * gonso's code (see `life.ts`: a batch being served is finished first, a user task is cut
   * short), its OS thread exits, and the fds it held for its life are closed. A thread blocked in
   * a system call is waited for `TERMINATE_LIMIT_MS` at most (see there).
   */
  shutdown(): Promise<void> {
    this.stopped ??= this.stop()
    return this.stopped
  }

  private stopped: Promise<void> | undefined

  /** Waits for the thread to be out of gonso's code, then terminates it; resolves once it has ended. */
  private async terminate(): Promise<void> {
    const control = this.channel.control
    while (!this.exited && !life.claimEnd(control)) await life.awaitOutside(control, TERMINATE_LIMIT_MS)
    await this.worker.terminate()
  }

  private async stop(): Promise<void> {
    // Answers already written go to their callers (they may carry fds or pids the callers must
    // own); requests not sent go elsewhere.
    this.collect()
    const unsent = this.queue
    this.queue = []
    this.sendElsewhere(unsent, this.failure("the thread was stopped"))
    // A batch the thread is serving is finished before it sees the cancel (library operations
    // are short and synchronous), so its answers are written and collected below.
    channel.cancel(this.channel, this.inFlight.map((each) => each.slot))
    const ended = this.terminate()
    let timer: ReturnType<typeof setTimeout> | undefined
    const inTime = await Promise.race([
      ended.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), TERMINATE_LIMIT_MS)))
    ])
    clearTimeout(timer)
    this.collect()
    this.failAll()
    const closeFds = () => {
      for (const fd of this.fds) libc.close(fd)
    }
    if (!inTime) {
      // Blocked in a system call, out of V8's reach: its termination takes effect when the call
      // returns. Nobody waits for it; the fds it opened at birth are closed once it has ended
      // (until then it is a thread of the process that gonso no longer uses).
      this.host.reportStuck(this.tid, TERMINATE_LIMIT_MS)
      void ended.then(closeFds)
      return
    }
    closeFds()
    // What the ended thread freed stays in its malloc arena unless given back: with threads
    // coming and going, the process would grow by some 10 KB a thread.
    libc.trimHeap()
    // The Worker's exit is reported once its thread is joined, but a joined thread can still be
    // listed in `/proc/self/task` for a moment while it finishes exiting; after shutdown, callers
    // may count on it being gone.
    const entry = `/proc/self/task/${this.tid}`
    const deadline = Date.now() + THREAD_EXIT_LIMIT_MS
    while (fs.existsSync(entry) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 1))
    }
  }
}
