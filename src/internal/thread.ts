/**
 * The whole life of the pinned threads, on the main thread's side, in one place: starting them,
 * routing requests to them, leasing one to a caller, the rule for when one must be dropped, and
 * retiring the idle ones.
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
 *   themselves until the lease ends. If the lease ends by interruption or a defect, or the thread
 *   reported it could not be restored, the thread is dropped: cancelled, terminated, and replaced in
 *   the background.
 *
 * The drop rule, in full: a thread is dropped when it reports itself unclean (restore or
 * verification failed, user code tainted it, or the request asked for no restore), when a lease on
 * it ends by interruption or a defect, or when it exits. Nothing else decides it.
 *
 * @internal
 */
import * as fs from "node:fs"
import { stripTypeScriptTypes } from "node:module"
import * as os from "node:os"
import { fileURLToPath } from "node:url"
import * as util from "node:util"
import { Worker } from "node:worker_threads"
import { Effect, Exit, type Scope } from "effect"
import { InvalidOptions, PayloadTooLarge, ThreadFailure } from "../NamespaceError.ts"
import type { Stats } from "../PinnedThreads.ts"
import * as channel from "./channel.ts"
import * as libc from "./libc.ts"
import { BOOT_NONE, BOOT_REFUSED, BOOT_STARTED, BOOT_WORD, type Notice, PINNED_THREAD, type Ready, type Request, type Response, type WorkerData } from "./protocol.ts"

// The worker is plain (erasable) TypeScript run by Node itself; once built, it is the .js beside
// this module. tsc does not rewrite URLs, so the extension comes from this module's own URL.
const extension = import.meta.url.endsWith(".ts") ? ".ts" : ".js"

/**
 * The pinned threads' script when the layer is given none (`workerUrl`): the worker beside this
 * module. In a bundle, this module is inlined into the program and the URL names a file the
 * bundler did not emit; the program then passes the URL of the worker it bundled itself.
 */
export const defaultWorkerUrl = new URL(`./worker/main${extension}`, import.meta.url)

/** Whether a worker script is TypeScript, started through the stripped sources and `bootstrap`. */
const isTypeScript = (entry: URL): boolean => entry.pathname.endsWith(".ts")

/** What a failure to load the worker script should tell: where it was, and what to do. */
export const bundlingHint =
  "if gonso is bundled, bundle its worker (gonso/worker) as an entry of its own and pass that file's URL as PinnedThreads.layer's workerUrl (see gonso's docs/bundling.md)"

/**
 * Run from TypeScript sources, every Worker that imports a `.ts` file loads Node's type stripper,
 * about 11 MB per thread, most of a thread's memory. The main thread has it loaded already: it
 * strips the worker's modules once, and each Worker starts from a small script that hands them to
 * Node's module loader through a load hook, so no thread loads the stripper for its own code.
 */
const strippedSources = (() => {
  const byEntry = new Map<string, Record<string, string>>()
  return (entry: URL): Record<string, string> => {
    const known = byEntry.get(entry.href)
    if (known !== undefined) return known
    const collected: Record<string, string> = {}
    const visit = (url: URL) => {
      if (collected[url.href] !== undefined) return
      const source = strip(fs.readFileSync(url, "utf8"))
      collected[url.href] = source
      // Statements start a line; an import in a doc comment's example (" * import ...") is not one.
      for (const match of source.matchAll(/^(?:import|export)\b[^"';]*?from\s*["'](\.{1,2}\/[^"']+)["']/gm)) {
        visit(new URL(match[1]!, url))
      }
    }
    visit(entry)
    byEntry.set(entry.href, collected)
    return collected
  }
})()

/**
 * Node marks `stripTypeScriptTypes` experimental and warns once; it does the stripping Node itself
 * does. `"strip"` (the worker's sources are erasable TypeScript): Node 26 has no other mode.
 */
const strip = (code: string): string => {
  const emitWarning = process.emitWarning
  process.emitWarning = () => {}
  try {
    return stripTypeScriptTypes(code, { mode: "strip" })
  } finally {
    process.emitWarning = emitWarning
  }
}

const bootstrap = `
const { registerHooks } = require("node:module")
const { workerData } = require("node:worker_threads")
const sources = workerData.sources
registerHooks({
  load(url, context, nextLoad) {
    const source = sources[url]
    return source === undefined ? nextLoad(url, context) : { format: "module", source, shortCircuit: true }
  }
})
import(workerData.entry)
`

/** How long a cancelled thread may take to answer before it is terminated anyway. */
const CANCEL_GRACE_MS = 250
/**
 * How long stopping a thread waits, at most, for its termination. A thread blocked in a system
 * call (user code reading a FIFO with no writer, say) cannot be terminated until the call
 * returns; nobody waits for it past this, and it ends when the call returns.
 */
const TERMINATE_LIMIT_MS = 2_000
/** How long shutdown waits, at most, for the kernel to release a terminated thread. */
const THREAD_EXIT_LIMIT_MS = 1_000
/** Requests sent to a thread in one round trip, at most. */
const BATCH_MAX = 64
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
}

/** A moment in a thread's life, as the pool reports it to whoever observes it. */
export type PoolEvent =
  | { readonly type: "spawned"; readonly tid: number; readonly reason: "min" | "demand" | "replacement" }
  | { readonly type: "startFailed"; readonly reason: string }
  | { readonly type: "dropped"; readonly tid: number; readonly reason: string }
  | { readonly type: "retired"; readonly tid: number; readonly reason: "idle" | "shutdown" }
  /** A thread that could not be terminated in time: blocked in a system call, out of V8's reach. */
  | { readonly type: "stuck"; readonly tid: number; readonly waitedMs: number }


type Settle = (result: Response | ThreadFailure | PayloadTooLarge | InvalidOptions) => void

/**
 * The failures of a round trip. `InvalidOptions` (input that cannot be cloned) can only come from a
 * module task, whose type declares it; the others from any request.
 */
export type CallError = ThreadFailure | PayloadTooLarge

/** One request waiting for its answer. */
interface Pending {
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

/** The main side of one pinned thread: its Worker, its channel, its queue. */
export class PinnedThread {
  readonly tid: number
  readonly fds: ReadonlyArray<number>
  private readonly worker: Worker
  private readonly channel: channel.Channel
  private readonly pool: ThreadPool
  /** Requests not sent yet. */
  private queue: Array<Pending> = []
  /** The batches in flight, oldest first, with their slots: at most one per slot. */
  private inFlight: Array<{ readonly batch: Array<Pending>; readonly slot: channel.Slot }> = []
  /** The slot the next batch goes in: the thread serves them alternately. */
  private next: 0 | 1 = 0
  /** Set once the thread must not be reused; the reason goes to stats and errors. */
  dropReason: string | undefined
  /** Set once the thread is out of the pool (dropped or retired). */
  gone = false
  exited = false
  /** Held by a lease; or promised to one that waits for the queue to drain. */
  leased = false
  reserved = false
  /** The set of the last request sent: a thread stays inside it between requests. */
  lastKey = 0
  idleSince = performance.now()

  constructor(worker: Worker, chan: channel.Channel, ready: Ready, pool: ThreadPool) {
    this.worker = worker
    this.channel = chan
    this.pool = pool
    this.tid = ready.tid
    this.fds = ready.fds
    worker.on("message", (notice: Notice) => {
      if (notice.type !== "unclean") return
      // Answers written before the thread went idle are still due to their callers.
      this.receive()
      this.dropReason ??= notice.reason
      if (!this.leased) void this.pool.drop(this, notice.reason)
    })
    worker.on("exit", (code) => {
      this.exited = true
      channel.wake(this.channel)
      // Out of the pool first, so that a caller resumed by what follows finds it gone; stopping
      // the thread then hands out the answers it wrote, and fails or re-routes the rest.
      this.dropReason ??= `the thread exited (code ${code})`
      void this.pool.drop(this, this.dropReason)
    })
  }

  /** Requests queued or in flight. */
  get load(): number {
    let load = this.queue.length
    for (const each of this.inFlight) load += each.batch.length
    return load
  }

  get usable(): boolean {
    return !this.gone && !this.exited && this.dropReason === undefined
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
  private failAll(reason: string): void {
    const failure = new ThreadFailure({ reason, tid: this.tid })
    // A batch the thread never took up (its slot still says REQUEST) was not served at all: it is
    // sent elsewhere like a request never sent. One it took up may have run in part: it fails.
    const served = this.inFlight.filter((each) => channel.state(each.slot) !== channel.REQUEST).flatMap((each) => each.batch)
    const untouched = this.inFlight.filter((each) => channel.state(each.slot) === channel.REQUEST).flatMap((each) => each.batch)
    if (this.inFlight.length > 0) this.pool.inFlight -= this.inFlight.length
    this.inFlight = []
    const unsent = [...untouched, ...this.queue]
    this.queue = []
    for (const each of served) each.settle(failure)
    this.sendElsewhere(unsent, failure)
  }

  /** Requests this thread will not serve: to another thread, or, if they belong to a lease here, failed. */
  private sendElsewhere(pendings: ReadonlyArray<Pending>, failure: ThreadFailure): void {
    for (const each of pendings) {
      if (each.leased === true) each.settle(failure)
      else this.pool.reroute(each)
    }
  }

  /** The oldest batch, with its answers, once the thread has written them. */
  private takeAnswered(): { readonly batch: Array<Pending>; readonly responses: ReadonlyArray<Response> } | undefined {
    const oldest = this.inFlight[0]
    if (oldest === undefined || channel.state(oldest.slot) !== channel.RESPONSE) return undefined
    this.inFlight.shift()
    this.pool.inFlight--
    return { batch: oldest.batch, responses: channel.read(oldest.slot) as ReadonlyArray<Response> }
  }

  /**
   * Gives a request its answer; one the thread did not serve because it stopped being reusable
   * before its turn (another caller's request made it so) goes to another thread instead.
   */
  private hand(pending: Pending, response: Response): void {
    if (response.unserved === true && pending.leased !== true) this.pool.reroute(pending)
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
    if (this.exited || this.gone) return this.failAll(this.dropReason ?? "the thread is gone")
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
    this.pool.inFlight++
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
    if (only !== undefined && this.inFlight.length === 1 && only.batch.length === 1 && this.pool.inFlight === 1 && this.queue.length === 0 && !this.settling) {
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
    for (const response of responses) if (response.unclean !== undefined) this.dropReason ??= response.unclean
    // The drop is decided before any caller resumes: a caller that reads the stats next, or sends
    // its next request, finds the thread already out of the pool.
    if (this.dropReason !== undefined && !this.leased) void this.pool.drop(this, this.dropReason)
    // A lone caller resumed here may poll for its next answer at once; with several callers to
    // resume, nobody may block the others' turn.
    this.settling = batch.length > 1
    try {
      for (let i = 0; i < batch.length; i++) this.hand(batch[i]!, responses[i]!)
    } finally {
      this.settling = false
    }
    // A thread out of service is stopped by the pool, which hands out what it still holds.
    if (!this.usable) return
    if (this.queue.length > 0 && this.inFlight.length < 2) this.send()
    if (this.inFlight.length > 0) this.watch()
    else if (this.load === 0) this.pool.idle(this)
  }

  /**
   * Ends the thread: a task still in flight is cancelled, then the Worker is terminated, its OS
   * thread exits, and the fds it held for its life are closed. A thread busy in synchronous user
   * code cannot hear a cancel; it is terminated once the grace period has passed. A thread blocked
   * in a system call is waited for `TERMINATE_LIMIT_MS` at most (see there).
   */
  shutdown(): Promise<void> {
    this.stopped ??= this.stop()
    return this.stopped
  }

  private stopped: Promise<void> | undefined

  private async stop(): Promise<void> {
    /** The termination of a thread that did not end in time, still to take effect. */
    let stuck: Promise<number> | undefined
    // Answers already written go to their callers (they may carry fds or pids the callers must
    // own); requests not sent go elsewhere.
    this.collect()
    const unsent = this.queue
    this.queue = []
    this.sendElsewhere(unsent, new ThreadFailure({ reason: this.dropReason ?? "the thread was stopped", tid: this.tid }))
    if (!this.exited) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, CANCEL_GRACE_MS)
        this.worker.on("message", (notice: Notice) => {
          if (notice.type === "cancelled") {
            clearTimeout(timer)
            resolve()
          }
        })
        this.worker.on("exit", () => {
          clearTimeout(timer)
          resolve()
        })
        // A batch the thread is serving is finished before it hears the cancel (library tasks
        // are short and synchronous), so its answers are written and collected below.
        channel.cancel(this.channel, this.inFlight.map((each) => each.slot))
      })
      const terminated = this.worker.terminate()
      let timer: ReturnType<typeof setTimeout> | undefined
      const ended = await Promise.race([
        terminated.then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), TERMINATE_LIMIT_MS)))
      ])
      clearTimeout(timer)
      // Blocked in a system call, out of V8's reach: its termination takes effect when the call
      // returns. Nobody waits for it; the fds it opened at birth are closed once it has ended
      // (until then it is a thread of the process that gonso no longer uses).
      if (!ended) stuck = terminated
    }
    this.collect()
    this.failAll(this.dropReason ?? "the thread was stopped")
    const closeFds = () => {
      for (const fd of this.fds) libc.close(fd)
    }
    if (stuck !== undefined) {
      this.pool.reportStuck(this.tid, TERMINATE_LIMIT_MS)
      void stuck.then(closeFds)
      return
    }
    closeFds()
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

/**
 * What a Worker threw before it started, as text. An Error arrives as one; anything else (an
 * Effect error the script failed with, say) arrives as an object that only `util.inspect` can show.
 */
const describeThrown = (error: unknown): string =>
  typeof (error as Error | null)?.message === "string" ? (error as Error).message : util.inspect(error, { breakLength: Infinity })

/**
 * A ready message's report, if it is one: a tid and a list of fds. The fds are closed when the
 * thread ends, so anything else (a script that is not gonso's worker) is no ready at all, rather
 * than a failure to close them, or fds of the program's own closed in their place.
 */
const readyOf = (value: unknown): Ready | undefined => {
  const ready = value as Ready | null | undefined
  const fd = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0
  return typeof ready === "object" && ready !== null && Number.isSafeInteger(ready.tid) && ready.tid > 0 &&
      Array.isArray(ready.fds) && ready.fds.every(fd)
    ? ready
    : undefined
}

/** Starts a Worker on `entry` and waits for it to report its tid and baseline namespaces. */
const startThread = (pool: ThreadPool, entry: URL): Promise<PinnedThread> =>
  new Promise((resolve, reject) => {
    const buffers = channel.make()
    let worker: Worker
    try {
      const data: WorkerData = isTypeScript(entry)
        ? { gonso: PINNED_THREAD, channel: buffers, sources: strippedSources(entry), entry: entry.href }
        : { gonso: PINNED_THREAD, channel: buffers }
      worker = isTypeScript(entry)
        ? new Worker(bootstrap, { eval: true, workerData: data, stdout: false, stderr: false })
        : new Worker(entry, { workerData: data, stdout: false, stderr: false })
    } catch (error) {
      // e.g. EAGAIN: the process may not start another thread (a pids or threads limit).
      return reject(`could not start: ${(error as Error)?.message ?? String(error)}`)
    }
    const script = entry.protocol === "file:" ? fileURLToPath(entry) : entry.href
    // Settled once: by the first message, an error, an exit, the start timeout or the pool's close.
    let settled = false
    let timer: ReturnType<typeof setTimeout> | undefined
    const settle = (): boolean => {
      if (settled) return false
      settled = true
      clearTimeout(timer)
      pool.startsToAbandon.delete(abandon)
      return true
    }
    // A Worker given up on is terminated, and its start fails only once it is gone, so that a
    // pool closing meanwhile waits for it. A pinned thread's unexpected error is seen as its exit;
    // keep the default handler from turning it into an uncaught exception of the main thread.
    const giveUp = (reason: string) => {
      worker.on("error", () => {})
      void worker.terminate().finally(() => reject(reason))
    }
    // Given up before it reported (the pool closed, or the start timed out): ended at once, unless
    // it has begun as gonso's worker, which reports ready or exits and is not to be terminated
    // meanwhile (see BOOT_WORD): then its start goes on, and the pool stops it if it has closed.
    const control = new Int32Array(buffers.control)
    const begun = () => Atomics.load(control, BOOT_WORD) === BOOT_STARTED
    const abandon = (reason: string) => {
      if (settled) return
      if (Atomics.compareExchange(control, BOOT_WORD, BOOT_NONE, BOOT_REFUSED) === BOOT_STARTED) return
      if (settle()) giveUp(reason)
    }
    pool.startsToAbandon.add(abandon)
    // A script that neither reports nor ends (not gonso's worker: a server, say) would keep
    // every caller waiting for a thread that never comes. The verdict waits for the end of this
    // turn of the event loop: a ready the thread posted while the main thread was busy past the
    // deadline is delivered after the timers (it would be lost, with the fds it reports).
    timer = setTimeout(() => {
      setImmediate(() =>
        abandon(`${script} did not report ready within ${pool.startTimeoutMs} ms; is it gonso's worker script (gonso/worker)?`)
      )
    }, pool.startTimeoutMs)
    timer.unref()
    // The script could not be loaded (it is gone, or the path names something else): the error
    // says which file it was and what to do about it.
    worker.once("error", (error) => {
      if (!settle()) return
      const code = (error as NodeJS.ErrnoException)?.code
      const missing = code === "MODULE_NOT_FOUND" || code === "ERR_MODULE_NOT_FOUND"
      giveUp(`could not start ${script}: ${describeThrown(error)}${missing ? `; ${bundlingHint}` : ""}`)
    })
    // A script that ends without a word is not gonso's worker.
    worker.once("exit", (code) => {
      if (settle()) reject(`${script} exited with code ${code} while starting; is it gonso's worker script (gonso/worker)?`)
    })
    const first = (notice: Notice) => {
      worker.off("message", first)
      const ready = (notice as Notice | null)?.type === "ready" ? readyOf((notice as Extract<Notice, { type: "ready" }>).ready) : undefined
      // A thread given up on had not begun as gonso's worker: whatever it says, no fd it names is
      // gonso's to close.
      if (!settle()) return
      worker.removeAllListeners("error")
      worker.removeAllListeners("exit")
      if (ready === undefined || !begun()) {
        return giveUp(`${script} sent ${util.inspect(notice, { breakLength: Infinity })} before it reported ready; is it gonso's worker script (gonso/worker)? (unexpected first message)`)
      }
      worker.on("error", () => {})
      resolve(new PinnedThread(worker, channel.attach(buffers), ready, pool))
    }
    worker.on("message", first)
  })

/** A caller waiting for a thread of its own. */
interface LeaseWaiter {
  readonly grant: (thread: PinnedThread | ThreadFailure) => void
}

/** The threads of one `PinnedThreads` layer. */
export class ThreadPool {
  private readonly limits: Limits
  private readonly threads = new Set<PinnedThread>()
  private starting = 0
  private closed = false
  /** Shared requests that found no thread to queue on. */
  private waitingShared: Array<Pending> = []
  private waitingLeases: Array<LeaseWaiter> = []
  private readonly stopping = new Set<Promise<void>>()
  private readonly sweeper: ReturnType<typeof setInterval>
  /** Batches in flight on all threads. */
  inFlight = 0
  private counters = { spawned: 0, dropped: 0, retired: 0 }
  /** Threads that may serve shared requests at once: more only add pollers competing for cores. */
  private readonly sharedLimit: number

  /** Ends the threads still starting, each failing its start once it is gone (see `startThread`). */
  readonly startsToAbandon = new Set<(reason: string) => void>()

  /** How long a thread may take to start before it is given up (`Limits.startTimeoutMs`). */
  get startTimeoutMs(): number {
    return this.limits.startTimeoutMs ?? 30_000
  }

  constructor(limits: Limits) {
    this.limits = limits
    this.sharedLimit = Math.max(1, Math.min(limits.max, os.availableParallelism() - 1))
    // Read the thread's sources now, with the privileges the program has while it builds the
    // layer: a program that drops them later may no longer read its own files.
    if (isTypeScript(limits.workerUrl)) strippedSources(limits.workerUrl)
    for (let i = 0; i < limits.min; i++) this.start("min")
    this.sweeper = setInterval(() => this.sweep(), Math.max(10, Math.min(1_000, limits.idleTimeToLiveMs / 2)))
    this.sweeper.unref()
  }

  counts(): Stats {
    let idle = 0
    for (const thread of this.threads) if (thread.load === 0 && !thread.leased) idle++
    return {
      idle,
      busy: this.threads.size - idle,
      pending: this.waitingShared.length + this.waitingLeases.length,
      ...this.counters
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

  /** Sends a request that a thread going out of service never sent to another thread. */
  reroute(pending: Pending): void {
    if (!pending.abandoned) this.route(pending)
  }

  private route(pending: Pending): PinnedThread | undefined {
    if (this.closed) {
      pending.settle(new ThreadFailure({ reason: "the PinnedThreads layer is closed" }))
      return undefined
    }
    const thread = this.choose(pending.key)
    if (thread === undefined) {
      pending.queuedOn = undefined
      this.waitingShared.push(pending)
      if (this.starting === 0) this.grow()
      return undefined
    }
    thread.enqueue(pending)
    return thread
  }

  /**
   * The thread for a shared request: one already inside the request's set, else an idle one, else
   * the least loaded; a new one is started when the shared threads are all well loaded.
   */
  private choose(key: number): PinnedThread | undefined {
    let best: PinnedThread | undefined
    let shared = 0
    for (const thread of this.threads) {
      if (!thread.usable || thread.leased || thread.reserved) continue
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
   * thread returns to the pool, or is dropped (see the module's drop rule).
   */
  readonly lease: Effect.Effect<PinnedThread, ThreadFailure, Scope.Scope> = Effect.acquireRelease(
    // Waiting for a thread can be interrupted (a timeout, a race); a thread granted after the
    // waiter gave up goes straight back.
    Effect.interruptible(Effect.callback<PinnedThread, ThreadFailure>((resume) => {
      let done = false
      const waiter: LeaseWaiter = {
        grant: (result) => {
          if (done) {
            if (!(result instanceof ThreadFailure)) this.release(result, undefined)
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
    if (this.closed) return waiter.grant(new ThreadFailure({ reason: "the PinnedThreads layer is closed" }))
    let busiest: PinnedThread | undefined
    for (const thread of this.threads) {
      if (!thread.usable || thread.leased || thread.reserved) continue
      if (thread.load === 0) {
        thread.leased = true
        return waiter.grant(thread)
      }
      if (busiest === undefined || thread.load < busiest.load) busiest = thread
    }
    this.waitingLeases.push(waiter)
    if (this.threads.size + this.starting < this.limits.max) return this.start()
    // At the limit: the least loaded shared thread takes no new shared work and is handed over
    // once what it has is done, unless another thread frees up first. Were it the only one,
    // shared requests wait meanwhile: a lease must not starve behind a stream of them.
    if (busiest !== undefined && this.reservedCount() < this.waitingLeases.length) busiest.reserved = true
  }

  private reservedCount(): number {
    let count = 0
    for (const thread of this.threads) if (thread.reserved) count++
    return count
  }

  /** Ends a lease: the thread goes back to the pool, or is dropped. */
  private async release(thread: PinnedThread, exit: Exit.Exit<unknown, unknown> | undefined): Promise<void> {
    if (exit !== undefined && Exit.isFailure(exit) && (Exit.hasInterrupts(exit) || Exit.hasDies(exit))) {
      thread.dropReason ??= Exit.hasInterrupts(exit) ? "interrupted during a task" : "the task died"
    }
    thread.leased = false
    if (thread.dropReason !== undefined || !thread.usable) return this.drop(thread, thread.dropReason ?? "the thread is gone")
    this.idle(thread)
  }

  // -------------------------------------------------------------------------------------------
  // A thread's life
  // -------------------------------------------------------------------------------------------

  /** Called when a thread has nothing queued or in flight: it serves whoever waits. */
  idle(thread: PinnedThread): void {
    if (!thread.usable || thread.leased) return
    thread.idleSince = performance.now()
    const waiter = this.waitingLeases.shift()
    if (waiter !== undefined) {
      thread.reserved = false
      thread.leased = true
      return waiter.grant(thread)
    }
    thread.reserved = false
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
    startThread(this, this.limits.workerUrl).then(
      (thread) => {
        this.starting--
        if (this.closed) {
          // Out of the pool from birth: its exit is the shutdown's, not a drop.
          thread.gone = true
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

  /** Told that a thread could not be terminated in time (see `TERMINATE_LIMIT_MS`). */
  reportStuck(tid: number, waitedMs: number): void {
    this.limits.report?.({ type: "stuck", tid, waitedMs })
  }

  /** Takes a thread out of the pool for good, and starts a replacement if fewer than `min` remain. */
  drop(thread: PinnedThread, reason: string): Promise<void> {
    if (thread.gone) return Promise.resolve()
    thread.dropReason ??= reason
    this.counters.dropped++
    this.limits.report?.({ type: "dropped", tid: thread.tid, reason: thread.dropReason })
    return this.remove(thread, "replacement")
  }

  private remove(thread: PinnedThread, replacement: "demand" | "replacement" = "demand"): Promise<void> {
    thread.gone = true
    this.threads.delete(thread)
    const stopped = this.stop(thread)
    if (!this.closed && (this.threads.size + this.starting < this.limits.min || this.waitingLeases.length + this.waitingShared.length > 0)) {
      this.start(this.threads.size + this.starting < this.limits.min ? replacement : "demand")
    }
    return stopped
  }

  private stop(thread: PinnedThread): Promise<void> {
    const stopped = thread.shutdown().finally(() => this.stopping.delete(stopped))
    this.stopping.add(stopped)
    return stopped
  }

  /** Retires threads above `min` that have been idle longer than their time to live. */
  private sweep(): void {
    const now = performance.now()
    for (const thread of this.threads) {
      if (this.threads.size <= this.limits.min) return
      if (thread.usable && !thread.leased && thread.load === 0 && now - thread.idleSince >= this.limits.idleTimeToLiveMs) {
        // Counted once the thread is gone, like a drop that a caller waits for: a retired thread
        // in the counts is one the kernel no longer lists.
        void this.remove(thread).finally(() => {
          this.counters.retired++
          this.limits.report?.({ type: "retired", tid: thread.tid, reason: "idle" })
        })
      }
    }
  }

  /**
   * Closes the pool: whoever waits fails, running tasks are cancelled, and every thread is
   * terminated; resolves once they are all gone.
   */
  async close(): Promise<void> {
    this.closed = true
    clearInterval(this.sweeper)
    const failure = new ThreadFailure({ reason: "the PinnedThreads layer is closed" })
    for (const waiter of this.waitingLeases) waiter.grant(failure)
    for (const pending of this.waitingShared) pending.settle(failure)
    this.waitingLeases = []
    this.waitingShared = []
    // A thread still starting that has begun as gonso's worker is stopped like the others once it
    // has reported ready (it is never terminated before, see BOOT_WORD); one that has not begun (or
    // a script that is not gonso's worker) is terminated now, rather than waited for.
    for (const abandon of [...this.startsToAbandon]) abandon("the PinnedThreads layer is closed")
    for (const thread of this.threads) {
      this.counters.retired++
      this.limits.report?.({ type: "retired", tid: thread.tid, reason: "shutdown" })
      thread.gone = true
      thread.dropReason ??= "the PinnedThreads layer is closed"
      void this.stop(thread)
    }
    this.threads.clear()
    while (this.stopping.size > 0 || this.starting > 0) {
      await Promise.all([...this.stopping])
      if (this.starting > 0) await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }

  /**
   * Sends one request on a leased thread and waits for its answer. If the caller is interrupted
   * meanwhile, the thread may be anywhere in the task: it is marked for dropping.
   */
  call(thread: PinnedThread, request: Request): Effect.Effect<Response, CallError> {
    return Effect.callback<Response, CallError>((resume) => {
      if (!thread.usable) {
        return resume(Effect.fail(new ThreadFailure({ reason: thread.dropReason ?? "the thread is gone", tid: thread.tid })))
      }
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
        if (!thread.unqueue(pending)) thread.dropReason ??= "interrupted during a task"
      })
    })
  }
}

/** The pool behind each built `PinnedThreads` service (the service itself exposes none of it). */
export const pools = new WeakMap<object, ThreadPool>()
