/**
 * What runs on a pinned thread inside a namespace set. A `Task` is a description, not a function:
 * closures cannot cross threads, so the built-in tasks name an operation that the thread carries
 * out with synchronous calls (which see the thread's namespaces), and user code runs as a function
 * exported from a module that the thread imports ({@link module}).
 *
 * @since 0.1.0
 */
import type { NamespaceKind } from "./NamespaceKind.ts"
import type { ExecResult } from "./internal/process.ts"
import type { Operation, Operations } from "./internal/protocol.ts"
import { type Task, TypeId } from "./internal/task.ts"
import type { CommandNotFound, InvalidOptions, ModuleTaskError, OutputTooLarge, PermissionDenied, SystemError } from "./NamespaceError.ts"

export type { Task } from "./internal/task.ts"
const variance = { _A: (_: never) => _, _E: (_: never) => _ }

const make = <A, E = never>(op: Operation | "exec", args?: unknown): Task<A, E> => ({ [TypeId]: variance, op, args })

/**
 * Whether `u` is a {@link Task}.
 *
 * @since 0.1.0
 * @category guards
 * @example
 * ```ts
 * import { Task } from "gonso"
 *
 * Task.isTask(Task.hostname)  // true
 * Task.isTask({ op: "hostname", args: undefined })  // false
 * ```
 */
export const isTask = (u: unknown): u is Task<unknown, unknown> =>
  typeof u === "object" && u !== null && TypeId in u

/**
 * One namespace as the kernel names it: `id` is the `readlink` of its `/proc` file
 * (`"net:[4026531840]"`), `dev` and `ino` its nsfs identity.
 *
 * @since 0.1.0
 * @category models
 */
export interface NamespaceId {
  readonly kind: NamespaceKind
  readonly id: string
  readonly dev: number
  readonly ino: number
}

/**
 * What {@link identify} reports: the thread's tid and, for each kind, the namespace that the thread
 * (for pid and time: the thread's children) is in.
 *
 * @since 0.1.0
 * @category models
 */
export interface ThreadIdentity {
  readonly tid: number
  readonly namespaces: Readonly<Record<NamespaceKind, NamespaceId>>
}

/**
 * The pinned thread's kernel thread id (`gettid`). Cheap: the trivial task.
 *
 * @since 0.1.0
 * @category tasks
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.current(["net"])
 *   const tid = yield* NamespaceSet.run(set, Task.tid)
 *   return tid === process.pid  // false: a pinned thread ran it, not the main thread
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const tid: Task<number> = make("tid")

/**
 * The thread's namespaces as the kernel reports them in `/proc/thread-self/ns`. A time namespace
 * is never joined by the thread itself (see the docs), so `time` shows the thread's own.
 *
 * @since 0.1.0
 * @category tasks
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.unshareCurrent(["uts"])
 *   const { namespaces } = yield* NamespaceSet.run(set, Task.identify)
 *   return namespaces.uts.id === (yield* NamespaceSet.id(set, "uts"))  // true: the thread was inside
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const identify: Task<ThreadIdentity> = make("identify")

/**
 * Options of {@link exec}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExecOptions {
  /** Working directory, resolved in the set's mount namespace. */
  readonly cwd?: string | undefined
  /** The environment (default: this process's). */
  readonly env?: Record<string, string> | undefined
  /** Written to the child's stdin, which is then closed (default: stdin is /dev/null). */
  readonly input?: string | Uint8Array | undefined
  /**
   * The most the command may print, stdout and stderr together, in bytes (default 16 MiB). Past
   * it the command's process group is killed and the run fails with `OutputTooLarge`, carrying
   * what was printed until then. For output of any size, use `NamespaceSet.spawn`, which streams.
   */
  readonly maxBuffer?: number | undefined
}

/**
 * The default `maxBuffer` of {@link exec} and `maxBytes` of {@link readFile}: 16 MiB.
 *
 * @since 0.1.0
 * @category constants
 * @example
 * ```ts
 * import { Task } from "gonso"
 *
 * Task.defaultMaxBytes  // 16777216
 * // A command that prints more needs a larger limit
 * const stats = Task.exec("ip", ["-s", "-d", "link"], { maxBuffer: 4 * Task.defaultMaxBytes })
 * ```
 */
export const defaultMaxBytes = 16 * 1024 * 1024

export type { ExecResult } from "./internal/process.ts"

/**
 * Runs a command to its end and collects what it printed. The process is started from a pinned
 * thread inside the set with `posix_spawn` (a vfork: nothing of this large process is copied), so
 * it is born in every namespace of the set, and the main thread reads its output and reaps it, so
 * no thread waits on it. A non-zero exit is a result, not an error; a command that cannot be found
 * or run fails with `CommandNotFound`. Interrupting the run kills the command's process group.
 *
 * When the set holds a user or time namespace, the command is started through util-linux
 * `nsenter`, the single-threaded helper that can join it.
 *
 * Output is collected up to `maxBuffer` bytes (default 16 MiB, stdout and stderr together); past
 * that the command's process group is killed and the run fails with `OutputTooLarge`. For
 * unbounded output, `NamespaceSet.spawn` streams.
 *
 * @since 0.1.0
 * @category tasks
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.unshareCurrent(["net"], { loopback: "up" })
 *   const { exitCode, stdout } = yield* NamespaceSet.run(set, Task.exec("ip", ["-o", "link"]))
 *   return stdout  // "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN ..."
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const exec = (
  command: string,
  args: ReadonlyArray<string> = [],
  options: ExecOptions = {}
): Task<ExecResult, CommandNotFound | InvalidOptions | OutputTooLarge | SystemError | PermissionDenied> =>
  make("exec", {
    command,
    args: [...args],
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    ...(options.env === undefined ? {} : { env: options.env }),
    ...(options.input === undefined ? {} : { input: options.input }),
    maxBuffer: options.maxBuffer ?? defaultMaxBytes
  })

/**
 * Options of {@link readFile}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReadFileOptions {
  /**
   * The most bytes to read (default 16 MiB, at most 64 MiB). A larger file fails with
   * `OutputTooLarge`, after reading no more than this. The text crosses back from the thread in a
   * 64 MiB channel, quoted as JSON, which adds to its size (a few bytes, more for control
   * characters): an answer that does not fit fails with `PayloadTooLarge`. For files that large,
   * stream them with `NamespaceSet.spawn` (`cat`).
   */
  readonly maxBytes?: number | undefined
}

/**
 * Reads a regular file as UTF-8 with synchronous reads on the pinned thread, so the path is
 * resolved in the set's mount namespace. It reads at most `maxBytes` (default 16 MiB; a larger
 * file is `OutputTooLarge`). Anything but a regular file (a FIFO, a device such as `/dev/zero`, a
 * socket) is refused at once with `InvalidOptions`, without blocking and without reading it; a
 * directory is `SystemError` `EISDIR`. Files of `/proc` and `/sys` are regular and are read to
 * their end. `/proc/self` and `/proc/net` name the process (whose main thread stays on the host):
 * read the set's own view under `/proc/thread-self` (e.g. `/proc/thread-self/net/dev`).
 *
 * @since 0.1.0
 * @category tasks
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.unshareCurrent(["net"])
 *   // The thread's own network namespace, the set's (/proc/net is the main thread's: the host's)
 *   return yield* NamespaceSet.run(set, Task.readFile("/proc/thread-self/net/dev"))  // a table of one link: lo
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const readFile = (
  path: string,
  options: ReadFileOptions = {}
): Task<string, InvalidOptions | OutputTooLarge | SystemError | PermissionDenied> =>
  make("readFile", { path, maxBytes: options.maxBytes ?? defaultMaxBytes } satisfies Operations["readFile"]["args"])

/**
 * Writes a regular file synchronously on the pinned thread (in the set's mount namespace),
 * creating it with `mode` (default 0o666, less the umask) if missing. Anything but a regular file
 * (a FIFO, which would hold the thread until a reader came, a device, a socket) is refused at once
 * with `InvalidOptions`; files of `/proc` and `/sys` are regular.
 *
 * @since 0.1.0
 * @category tasks
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const router = yield* NamespaceSet.unshareCurrent(["net"])
 *   // Forwarding in the router's network namespace only; the host's setting is untouched
 *   yield* NamespaceSet.run(router, Task.writeFile("/proc/sys/net/ipv4/ip_forward", "1"))
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const writeFile = (
  path: string,
  data: string | Uint8Array,
  options: { readonly mode?: number } = {}
): Task<void, InvalidOptions | SystemError | PermissionDenied> =>
  make("writeFile", {
    path,
    base64: (typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data.buffer, data.byteOffset, data.byteLength)).toString("base64"),
    ...options
  } satisfies Operations["writeFile"]["args"])

/**
 * The hostname of the set's UTS namespace.
 *
 * @since 0.1.0
 * @category tasks
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * // A new uts namespace starts with a copy of the host's name
 * const program = NamespaceSet.unshareCurrent(["uts"]).pipe(
 *   Effect.flatMap(NamespaceSet.run(Task.hostname)),
 *   Effect.scoped,
 *   Effect.provide(PinnedThreads.layer())
 * )
 * ```
 */
export const hostname: Task<string> = make("hostname")

/**
 * Sets the hostname of the set's UTS namespace. Run on a set without a uts namespace of its own,
 * this sets the host's hostname.
 *
 * @since 0.1.0
 * @category tasks
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.unshareCurrent(["uts"])
 *   yield* NamespaceSet.run(set, Task.setHostname("box"))
 *   return yield* NamespaceSet.run(set, Task.hostname)  // "box"; the host's name is unchanged
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const setHostname = (name: string): Task<void, InvalidOptions | SystemError | PermissionDenied> =>
  make("setHostname", { name })

/**
 * What a module task's function receives as its second argument.
 *
 * @since 0.1.0
 * @category models
 */
export interface ModuleTaskContext {
  /** The pinned thread's tid. */
  readonly tid: number
  /**
   * Declares the thread unfit for reuse (gonso's `return false`): it is dropped after the task,
   * whatever verification finds. Call it after changing anything about the thread that gonso does
   * not check, such as credentials or signal masks.
   */
  readonly taint: (reason?: string) => void
}

/**
 * Runs `exportName` of the module at `url` on the pinned thread, as
 * `fn(input, context: ModuleTaskContext)`, inside the set's namespaces, on a thread leased to it
 * alone. `input` and the result cross threads by structured clone; a thrown error or rejected
 * promise comes back as `ModuleTaskError` carrying what was thrown, a result that cannot be cloned
 * as `ModuleTaskError` named `DataCloneError`, and input that cannot be cloned fails with
 * `InvalidOptions` before anything runs. None of these costs the thread.
 *
 * Code that runs this way must follow the rules of a pinned thread (see `docs/pinned-threads.md`):
 * use synchronous fs, not `fs/promises` or callbacks (those run on libuv's shared pool, in the
 * host's namespaces); no `dns.lookup`; no Workers; leave nothing running when it returns.
 * After it returns, every namespace of the thread is checked, and a thread the function moved
 * into other namespaces is dropped.
 *
 * @since 0.1.0
 * @category tasks
 * @example
 * ```ts
 * import * as fs from "node:fs"
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * // tasks.ts: runs on the pinned thread, inside the set (synchronous fs only)
 * export const interfaces = (_: void) => fs.readdirSync("/sys/class/net")
 *
 * // main.ts
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.withOwnSysfs(yield* NamespaceSet.unshareCurrent(["net"]))
 *   return yield* NamespaceSet.run(set, Task.module<void, Array<string>>(new URL("./tasks.ts", import.meta.url), "interfaces", undefined))  // ["lo"]
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const module = <I, O>(url: string | URL, exportName: string, input: I): Task<O, ModuleTaskError | InvalidOptions> =>
  make("module", { url: String(url), exportName, input })
