/**
 * What a pinned thread was started with, checked before anything else of the thread runs: the
 * first import of `main.ts`, so that a module imported after it (`state.ts` unshares the thread's
 * filesystem attributes and opens fds at birth) is never evaluated anywhere but on a thread gonso
 * started. Imported on the main thread (`import "gonso/worker"` by mistake), or run in a Worker of
 * the program's own, the worker script throws this module's error instead, having done nothing.
 *
 * @internal
 */
import type { MessagePort } from "node:worker_threads"
import { parentPort, workerData } from "node:worker_threads"
import * as life from "../life.ts"
import { PINNED_THREAD, type WorkerData } from "../protocol.ts"

if (parentPort === null || (workerData as Partial<WorkerData> | null)?.gonso !== PINNED_THREAD) {
  throw new Error(
    "gonso/worker is the script of gonso's pinned threads, which PinnedThreads.layer starts itself: it must not be imported or run otherwise (to bundle it, see gonso's docs/bundling.md)"
  )
}

/** The port to the main side. */
export const port: MessagePort = parentPort
/** What the main side started the thread with. */
export const data = workerData as WorkerData

// From here on gonso's code runs on the thread, which is not terminated meanwhile (see `life.ts`),
// unless the main side has given up on it already: then it ends before loading anything.
if (!life.begin(new Int32Array(data.channel.control))) {
  throw new Error("gonso pinned thread: given up on before it started")
}
