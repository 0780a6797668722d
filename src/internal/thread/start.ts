/**
 * A pinned thread's birth: the Worker is made, and the main side waits for its first message, the
 * report that it is ready (its tid, and the fds it holds for its life). A script that is not
 * gonso's worker, one that fails to load, and one that does not report in time are given up on.
 *
 * @internal
 */
import { fileURLToPath } from "node:url"
import * as util from "node:util"
import type { Worker } from "node:worker_threads"
import * as channel from "../channel.ts"
import * as life from "../life.ts"
import type { Notice, Ready } from "../protocol.ts"
import { bundlingHint, spawnWorker } from "./bootstrap.ts"
import type { Timers } from "./timers.ts"

/** A thread that has reported ready. */
export interface Started {
  readonly worker: Worker
  readonly channel: channel.Channel
  readonly ready: Ready
}

/** What a start needs of its pool. */
export interface StartContext {
  readonly timers: Timers
  readonly startTimeoutMs: number
  /** Where a start registers what gives it up (the pool's close calls each). */
  readonly abandons: Set<(reason: string) => void>
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

/**
 * Starts a Worker on `entry` and waits for it to report its tid and baseline namespaces. Rejects
 * with the reason, as text, once the Worker is gone.
 */
export const startThread = (entry: URL, context: StartContext): Promise<Started> =>
  new Promise((resolve, reject) => {
    const buffers = channel.make()
    let worker: Worker
    try {
      worker = spawnWorker(entry, buffers)
    } catch (error) {
      // e.g. EAGAIN: the process may not start another thread (a pids or threads limit).
      return reject(`could not start: ${(error as Error)?.message ?? String(error)}`)
    }
    const script = entry.protocol === "file:" ? fileURLToPath(entry) : entry.href
    const control = new Int32Array(buffers.control)
    // Settled once: by the first message, an error, an exit, the start timeout or the pool's close.
    let settled = false
    let cancelTimer = () => {}
    const settle = (): boolean => {
      if (settled) return false
      settled = true
      cancelTimer()
      context.abandons.delete(abandon)
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
    // meanwhile (see `life.ts`): then its start goes on, and the pool stops it if it has closed.
    const abandon = (reason: string) => {
      if (settled || !life.refuse(control)) return
      if (settle()) giveUp(reason)
    }
    context.abandons.add(abandon)
    // A script that neither reports nor ends (not gonso's worker: a server, say) would keep
    // every caller waiting for a thread that never comes. The verdict waits for the end of this
    // turn of the event loop: a ready the thread posted while the main thread was busy past the
    // deadline is delivered after the timers (it would be lost, with the fds it reports).
    cancelTimer = context.timers.after(context.startTimeoutMs, () => {
      setImmediate(() =>
        abandon(`${script} did not report ready within ${context.startTimeoutMs} ms; is it gonso's worker script (gonso/worker)?`)
      )
    })
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
      if (ready === undefined || !life.begun(control)) {
        return giveUp(`${script} sent ${util.inspect(notice, { breakLength: Infinity })} before it reported ready; is it gonso's worker script (gonso/worker)? (unexpected first message)`)
      }
      worker.on("error", () => {})
      resolve({ worker, channel: channel.attach(buffers), ready })
    }
    worker.on("message", first)
  })
