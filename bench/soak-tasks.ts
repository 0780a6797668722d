/**
 * Module tasks for `bench/soak.ts`, run on pinned threads with `Task.module`. Plain JavaScript
 * syntax (erasable types only): Node loads this file itself in each Worker.
 *
 * The well-behaved ones report where the thread is; the faulty ones break the rules of
 * `docs/pinned-threads.md` on purpose. Every faulty one first writes the thread's tid to
 * `marker` (synchronously), so the soak knows which thread it compromised even when the task
 * never answers.
 */
import * as fs from "node:fs"
import * as v8 from "node:v8"
import { childrenFile } from "../src/NamespaceKind.ts"
// The thread's own libc bindings (the same module instance the pinned thread loaded).
import * as libc from "../src/internal/libc.ts"

interface Context {
  readonly tid: number
  readonly taint: (reason?: string) => void
}


/** The thread's namespaces by the kernel, as `dev:ino` per kind. */
const where = (): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [kind, file] of Object.entries(childrenFile)) {
    const stats = fs.statSync(`/proc/thread-self/ns/${file}`)
    out[kind] = `${stats.dev}:${stats.ino}`
  }
  return out
}

/** A well-behaved task: where the thread is, and its tid. */
export const whereAmI = (_input: unknown, context: Context) => ({ tid: context.tid, ns: where() })

/** Async, still well-behaved: yields to the thread's event loop once, then reports. */
export const whereAmIAsync = async (_input: unknown, context: Context) => {
  await new Promise((resolve) => setImmediate(resolve))
  return { tid: context.tid, ns: where() }
}

/** The V8 heap of the pinned thread that runs it. */
export const heap = (_input: unknown, context: Context) => {
  const stats = v8.getHeapStatistics()
  return { tid: context.tid, used: stats.used_heap_size, total: stats.total_heap_size }
}

/** The inode of the nsfs file bind-mounted at `path`, as this thread's mount namespace sees it. */
export const inodeAt = (path: string) => fs.statSync(path).ino

const mark = (marker: string, context: Context) => fs.writeFileSync(marker, `${context.tid}\n`)

export class SoakFault extends Error {
  override readonly name = "SoakFault"
}

/** Throws a typed-looking error. */
export const throws = (args: { marker: string }, context: Context) => {
  mark(args.marker, context)
  throw new SoakFault("thrown on purpose")
}

/** Rejects with a plain tagged object. */
export const rejects = async (args: { marker: string }, context: Context) => {
  mark(args.marker, context)
  throw { _tag: "SoakRejection", why: "on purpose" }
}

/** Hangs synchronously (the thread cannot hear a cancel) for `ms`. */
export const hangSync = (args: { marker: string; ms: number }, context: Context) => {
  mark(args.marker, context)
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, args.ms)
  return "woke"
}

/** Hangs asynchronously on a timer for `ms`. */
export const hangAsync = async (args: { marker: string; ms: number }, context: Context) => {
  mark(args.marker, context)
  await new Promise((resolve) => setTimeout(resolve, args.ms))
  return "woke"
}

/** Ends its own thread in the middle of the task. */
export const exitThread = (args: { marker: string }, context: Context) => {
  mark(args.marker, context)
  process.exit(7)
}

const CLONE_NEWUTS = 0x04000000
const CLONE_NEWIPC = 0x08000000
const CLONE_NEWNET = 0x40000000

/** Moves the thread into new namespaces behind the library's back, then reports success. */
export const unshareBehind = (args: { marker: string }, context: Context) => {
  mark(args.marker, context)
  libc.unshare(CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC)
  return { tid: context.tid, ns: where() }
}

/** Timers this module left behind that have fired, and where their thread was when they did. */
const fired: Array<Record<string, string>> = []

/** Returns at once, leaving a timer that fires later on the thread, wherever it is by then. */
export const leaveTimer = (args: { marker: string; ms: number }, context: Context) => {
  mark(args.marker, context)
  setTimeout(() => {
    fired.push(where())
    if (fired.length > 64) fired.splice(0, fired.length - 64)
  }, args.ms)
  return { tid: context.tid }
}

/**
 * Returns at once, leaving a timer that moves its thread into a new uts or net namespace `ms`
 * later, while the thread serves other callers: their answers must never come from there.
 */
export const moveLater = (args: { marker: string; ms: number; kind: "uts" | "net" }, context: Context) => {
  mark(args.marker, context)
  setTimeout(() => libc.unshare(args.kind === "uts" ? CLONE_NEWUTS : CLONE_NEWNET), args.ms)
  return { tid: context.tid }
}
