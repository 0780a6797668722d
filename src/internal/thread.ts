/**
 * The main thread's side of one pinned thread: the Worker, its channel, and the rules for when it
 * must be dropped.
 *
 * @internal
 */
import * as fs from "node:fs"
import { Worker } from "node:worker_threads"
import { Effect } from "effect"
import type { NamespaceKind } from "../NamespaceKind.ts"
import { PayloadTooLarge, ThreadFailure } from "../NamespaceError.ts"
import * as channel from "./channel.ts"
import * as libc from "./libc.ts"
import type { Identity, Ready, Request, Response, WorkerData } from "./protocol.ts"

// The worker is plain (erasable) TypeScript run by Node itself; once built, it is the .js beside
// this module. tsc does not rewrite URLs, so the extension comes from this module's own URL.
const extension = import.meta.url.endsWith(".ts") ? ".ts" : ".js"
const workerUrl = new URL(`./worker${extension}`, import.meta.url)

/**
 * How long a cancelled thread may take to kill and reap its children before it is terminated
 * anyway. A thread busy in synchronous user code never answers, so this is kept short.
 */
const CANCEL_GRACE_MS = 250

/** How long shutdown waits, at most, for the kernel to release a terminated thread. */
const THREAD_EXIT_LIMIT_MS = 1_000

export class PinnedThread {
  readonly tid: number
  readonly baseline: Readonly<Record<NamespaceKind, Identity>>
  private readonly fds: ReadonlyArray<number>
  /** Set once the thread must not be reused; the reason is kept for stats and debugging. */
  dropReason: string | undefined
  private readonly worker: Worker
  private readonly channel: channel.Channel
  private exited = false
  private inFlight = false
  private onExit: ((reason: string) => void) | undefined

  private constructor(worker: Worker, chan: channel.Channel, ready: Ready) {
    this.worker = worker
    this.channel = chan
    this.tid = ready.tid
    this.baseline = ready.baseline
    this.fds = ready.fds
    worker.on("exit", (code) => {
      this.exited = true
      this.dropReason ??= `the thread exited (code ${code})`
      channel.wake(this.channel)
      this.onExit?.(`the thread exited with code ${code} during a task`)
    })
  }

  /** Starts a Worker and waits for it to report its tid and baseline namespaces. */
  static readonly spawn: Effect.Effect<PinnedThread, ThreadFailure> = Effect.callback<PinnedThread, ThreadFailure>(
    (resume) => {
      const buffer = channel.make()
      const data: WorkerData = { channel: buffer }
      const worker = new Worker(workerUrl, { workerData: data, stdout: false, stderr: false })
      const fail = (reason: string) => resume(Effect.fail(new ThreadFailure({ reason })))
      const onError = (error: Error) => fail(`could not start: ${error.message}`)
      const onExit = (code: number) => fail(`exited with code ${code} while starting`)
      worker.once("error", onError)
      worker.once("exit", onExit)
      worker.once("message", (ready: Ready) => {
        worker.off("error", onError)
        worker.off("exit", onExit)
        // A pinned thread's unexpected error is seen as its exit; keep the default handler from
        // turning it into an uncaught exception of the main thread.
        worker.on("error", () => {})
        resume(Effect.succeed(new PinnedThread(worker, channel.attach(buffer), ready)))
      })
      return Effect.promise(() => worker.terminate())
    }
  )

  /**
   * Sends one request and waits for its response without blocking the event loop. If the fiber is
   * interrupted meanwhile, the thread is marked for dropping: it may be anywhere in the task.
   */
  call(request: Request): Effect.Effect<Response, ThreadFailure | PayloadTooLarge> {
    return Effect.callback<Response, ThreadFailure | PayloadTooLarge>((resume) => {
      if (this.exited || this.inFlight) {
        return resume(Effect.fail(new ThreadFailure({ reason: this.dropReason ?? "thread busy", tid: this.tid })))
      }
      try {
        channel.write(this.channel, request, channel.REQUEST)
      } catch (error) {
        if (error instanceof channel.TooLarge) {
          return resume(Effect.fail(new PayloadTooLarge({ bytes: error.bytes, limit: channel.limit })))
        }
        throw error
      }
      this.inFlight = true
      this.onExit = (reason) => {
        this.inFlight = false
        this.onExit = undefined
        resume(Effect.fail(new ThreadFailure({ reason, tid: this.tid })))
      }
      channel.awaitResponse(this.channel, () => {
        if (channel.state(this.channel) !== channel.RESPONSE || !this.inFlight) return
        this.inFlight = false
        this.onExit = undefined
        const response = channel.read(this.channel) as Response
        resume(Effect.succeed(response))
      })
      return Effect.sync(() => {
        this.onExit = undefined
        this.dropReason ??= "interrupted during a task"
      })
    })
  }

  /**
   * Ends the thread: a task still in flight is cancelled (the child processes the thread started
   * are killed and reaped, whatever point the task had reached), then the Worker is terminated, its
   * OS thread exits, and the fds it held for its life are closed. A thread busy in synchronous
   * user code cannot hear a cancel; it is terminated once the grace period has passed.
   */
  readonly shutdown: Effect.Effect<void> = Effect.promise(async () => {
    if (!this.exited) await this.stop()
    for (const fd of this.fds) libc.close(fd)
    await this.gone()
  })

  /**
   * Waits until the kernel has released the OS thread. The Worker's exit is reported once its
   * thread is joined, but a joined thread can still be listed in `/proc/self/task` for a moment
   * while it finishes exiting; after shutdown, callers may count on it being gone.
   */
  private async gone(): Promise<void> {
    const entry = `/proc/self/task/${this.tid}`
    const deadline = Date.now() + THREAD_EXIT_LIMIT_MS
    while (fs.existsSync(entry) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 1))
    }
  }

  private async stop(): Promise<void> {
    if (this.inFlight) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, CANCEL_GRACE_MS)
        this.worker.on("message", (message: { cancelled?: boolean }) => {
          if (message.cancelled === true) {
            clearTimeout(timer)
            resolve()
          }
        })
        channel.cancel(this.channel)
        this.worker.postMessage({ cancel: true })
      })
    }
    await this.worker.terminate()
  }
}
