/**
 * Processes inside a set, from the main event loop: the child is started on a pinned thread
 * inside the set (with `posix_spawn`), given pipes made here, streamed and reaped here, and its
 * process group killed when its Scope closes. `NamespacedProcess`, `NamespaceSet.spawn` and
 * `Task.exec` delegate here.
 *
 * @internal
 */
import type { Readable, Writable } from "node:stream"
import { NodeChildProcessSpawner, NodeServices, NodeStream } from "@effect/platform-node"
import { Deferred, Effect, Fiber, Layer, PlatformError, Redacted, type Scope, type Stream } from "effect"
import { ChildProcess as EffectChildProcess, ChildProcessSpawner } from "effect/process"
import type * as Kind from "./kind.ts"
import {
  type CommandNotFound,
  type EnterError,
  type InvalidKind,
  InvalidOptions,
  type KindNotInSet,
  OutputTooLarge,
  type PermissionDenied,
  type SetClosed,
  SystemError
} from "./errors.ts"
import type { PinnedThreads } from "./service.ts"
import * as libc from "./libc.ts"
import * as runtime from "./runtime.ts"
import { nsenterOptions } from "./nsenter.ts"
import { duplicateFds } from "./open.ts"
import { type NamespaceSet, runSpec } from "./set.ts"
import type { Operations } from "./protocol.ts"
import { byteLimitProblem, commandProblem, idProblem } from "./validate.ts"
import { syscallError } from "./failure.ts"
import { fromSyscall, fromWire } from "./wire.ts"

/**
 * Options of {@link spawn}.
 *
 * @since 0.1.0
 * @category models
 */
export interface SpawnOptions {
  /** Working directory, in the set's mount namespace. */
  readonly cwd?: string | undefined
  /** The environment (default: this process's). */
  readonly env?: Record<string, string | undefined> | undefined
  /** Run as this uid and gid, with no supplementary groups (through util-linux `setpriv`). */
  readonly uid?: number | undefined
  readonly gid?: number | undefined
  /**
   * Run the command as the init (pid 1) of a pid namespace of its own, nested in the set's, with
   * a fresh `/proc` mounted for it in a private mount namespace, as
   * `unshare --fork --pid --mount-proc` does (util-linux `unshare` runs it, and is killed with it).
   */
  readonly init?: boolean | undefined
}

/**
 * How a process ended.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExitStatus {
  /** The exit code, or `null` when a signal ended the process. */
  readonly exitCode: number | null
  /** The number of the signal that ended it, or `null`. */
  readonly signal: number | null
}

/**
 * A process running inside a set, owned by a Scope.
 *
 * @since 0.1.0
 * @category models
 */
export interface ChildProcess {
  /** The pid, as this process sees it. */
  readonly pid: number
  /** The child's stdin, as a Node stream (end it to close the child's stdin). */
  readonly stdin: Writable
  /** The child's stdout and stderr, as Node streams... */
  readonly stdoutReadable: Readable
  readonly stderrReadable: Readable
  /** ...and as Effect streams (read one or the other form, not both). */
  readonly stdout: Stream.Stream<Uint8Array, SystemError>
  readonly stderr: Stream.Stream<Uint8Array, SystemError>
  /** Waits for the process to end. */
  readonly exit: Effect.Effect<ExitStatus>
  /** Sends a signal to the process's whole group (default SIGTERM). */
  readonly kill: (signal?: NodeJS.Signals) => Effect.Effect<void>
}

/**
 * The errors of {@link spawn}.
 *
 * @since 0.1.0
 * @category errors
 */
export type SpawnError = CommandNotFound | InvalidOptions | PermissionDenied | SystemError | EnterError

/** How long the main thread sleeps between checks for the child's exit, at most. */
const MAX_POLL_MS = 25

/**
 * How a command ended, with everything it printed.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExecResult {
  /** The exit code, or `null` when a signal ended the command. */
  readonly exitCode: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * Everything the two streams yield until both end, as UTF-8 text, as long as they yield at most
 * `limit` bytes together: one byte more fails at once with `OutputTooLarge` carrying the first
 * `limit` bytes (the caller's Scope then kills the command). Reading stops there, so a command
 * that prints without end costs no more than `limit`.
 */
const readBoth = (
  command: string,
  stdout: Readable,
  stderr: Readable,
  limit: number
): Effect.Effect<readonly [string, string], SystemError | OutputTooLarge> =>
  Effect.callback<readonly [string, string], SystemError | OutputTooLarge>((resume) => {
    const chunks: [Array<Buffer>, Array<Buffer>] = [[], []]
    let total = 0
    let ended = 0
    let done = false
    const text = (which: 0 | 1) => Buffer.concat(chunks[which]).toString("utf8")
    const settle = (effect: Effect.Effect<readonly [string, string], SystemError | OutputTooLarge>) => {
      if (done) return
      done = true
      for (const readable of [stdout, stderr]) {
        readable.pause()
        readable.removeAllListeners("data")
      }
      resume(effect)
    }
    ;([stdout, stderr] as const).forEach((readable, which) => {
      readable.on("data", (chunk: Buffer) => {
        if (done) return
        const room = limit - total
        if (chunk.length > room) {
          chunks[which as 0 | 1].push(chunk.subarray(0, room))
          return settle(Effect.fail(new OutputTooLarge({ operation: "Task.exec", limit, command, stdout: text(0), stderr: text(1) })))
        }
        chunks[which as 0 | 1].push(chunk)
        total += chunk.length
      })
      readable.once("end", () => {
        if (++ended === 2) settle(Effect.succeed([text(0), text(1)] as const))
      })
      readable.once("error", (error: NodeJS.ErrnoException) =>
        settle(Effect.fail(new SystemError({ operation: "Task.exec", call: "read", errno: error.code ?? "EIO", code: Math.abs(error.errno ?? 5) }))))
    })
    return Effect.sync(() => {
      done = true
    })
  })

/**
 * Runs a command to its end (`Task.exec`): {@link spawnWith}, then everything it prints is read on
 * the main thread and the process reaped there, so no thread waits on it.
 */
export const execWith = <R>(
  start: (args: Operations["spawn"]["args"]) => Effect.Effect<number, SpawnError, R>,
  options: {
    readonly command: string
    readonly args: ReadonlyArray<string>
    readonly cwd?: string
    readonly env?: Record<string, string>
    readonly input?: string | Uint8Array
    readonly maxBuffer: number
  }
): Effect.Effect<ExecResult, SpawnError | OutputTooLarge, R> =>
  Effect.scoped(Effect.gen(function*() {
    const badLimit = byteLimitProblem("Task.exec", "maxBuffer", options.maxBuffer, Number.MAX_SAFE_INTEGER)
    if (badLimit !== undefined) return yield* badLimit
    const child = yield* spawnWith("Task.exec", start, options.command, options.args, {
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      ...(options.env === undefined ? {} : { env: options.env })
    })
    child.stdin.end(options.input === undefined ? undefined : options.input)
    // Past the limit the Scope closes with the failure, which kills the command's process group.
    const [stdout, stderr] = yield* readBoth(options.command, child.stdoutReadable, child.stderrReadable, options.maxBuffer)
    const status = yield* child.exit
    return {
      exitCode: status.exitCode,
      signal: status.signal === null ? null : libc.signalName(status.signal),
      stdout,
      stderr
    }
  }))

/**
 * {@link spawn}, with the step that starts the process on a pinned thread given: `start` sends the
 * `spawn` operation to a thread inside the set (a shared one, or one leased by `enter`).
 */
export const spawnWith = <R>(
  operation: string,
  start: (args: Operations["spawn"]["args"]) => Effect.Effect<number, SpawnError, R>,
  command: string,
  args: ReadonlyArray<string>,
  options: SpawnOptions
): Effect.Effect<ChildProcess, SpawnError, R | Scope.Scope> =>
  Effect.gen(function*() {
    const invalid = commandProblem(operation, command, args, options) ??
      idProblem(operation, "uid", options.uid) ?? idProblem(operation, "gid", options.gid)
    if (invalid !== undefined) return yield* invalid
    if ((options.uid === undefined) !== (options.gid === undefined)) {
      return yield* new InvalidOptions({ operation, reason: "uid and gid go together" })
    }
    let argv = [command, ...args]
    if (options.init === true) argv = ["unshare", "--fork", "--pid", "--mount-proc", "--kill-child", "--", ...argv]
    if (options.uid !== undefined) {
      argv = ["setpriv", `--reuid=${options.uid}`, `--regid=${options.gid}`, "--clear-groups", "--", ...argv]
    }
    // Three pipes, made here. The parent's ends are handed to streams before the child starts
    // (a failure there leaves no child behind); the child's ends are closed once it has them.
    // An fd handed over is -1 here, and the streams close it.
    const pipes = yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          const made: Array<[number, number]> = []
          try {
            for (let i = 0; i < 3; i++) made.push(libc.pipe())
          } catch (error) {
            for (const [r, w] of made) libc.close(r), libc.close(w)
            throw error
          }
          return made
        },
        catch: (error) => fromSyscall(error as libc.SyscallFailure, operation)
      }),
      (made) => Effect.sync(() => {
        for (const pair of made) {
          for (const fd of pair) if (fd !== -1) libc.close(fd)
        }
      })
    )
    const [stdinPipe, stdoutPipe, stderrPipe] = pipes as [[number, number], [number, number], [number, number]]
    const { stdin, stdoutReadable, stderrReadable } = yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          const made: Array<Readable | Writable> = []
          const handOver = <S extends Readable | Writable>(pair: [number, number], end: 0 | 1, make: (fd: number, close: (fd: number) => void) => S): S => {
            const stream = make(pair[end], libc.close)
            pair[end] = -1
            made.push(stream)
            return stream
          }
          try {
            return {
              stdin: handOver(stdinPipe, 1, runtime.pipeWritable),
              stdoutReadable: handOver(stdoutPipe, 0, runtime.pipeReadable),
              stderrReadable: handOver(stderrPipe, 0, runtime.pipeReadable)
            }
          } catch (error) {
            for (const stream of made) stream.destroy()
            throw error
          }
        },
        // A libc failure, or the runtime's own fs failing to open a pipe again (runtime.ts).
        catch: (error) => fromWire(syscallError(operation, error)) as PermissionDenied | SystemError
      }),
      (streams) => Effect.sync(() => {
        streams.stdin.destroy()
        streams.stdoutReadable.destroy()
        streams.stderrReadable.destroy()
      })
    )
    const childEnds = [stdinPipe[0], stdoutPipe[1], stderrPipe[1]] as const
    // From the start of the child until its finalizer is registered nothing may interrupt: the
    // child would be left running, unreaped.
    const { pid, exited, killGroup } = yield* Effect.uninterruptible(Effect.gen(function*() {
      const pid = yield* start({
        operation,
        command: argv[0]!,
        args: argv.slice(1),
        env: libc.environment(options.env ?? process.env),
        stdio: childEnds,
        ...(options.cwd === undefined ? {} : { cwd: options.cwd })
      })
      for (const [pair, end] of [[stdinPipe, 0], [stdoutPipe, 1], [stderrPipe, 1]] as const) {
        const fd = pair[end]
        pair[end] = -1
        libc.close(fd)
      }
      stdin.on("error", () => {}) // EPIPE once the child has exited is not an error of ours.

      const exited = yield* Deferred.make<ExitStatus>()
      const reap = Effect.gen(function*() {
        let delay = 1
        for (;;) {
          const status = libc.waitNoHang(pid)
          if (status !== undefined) return yield* Deferred.succeed(exited, status)
          yield* Effect.sleep(delay)
          delay = Math.min(delay * 2, MAX_POLL_MS)
        }
      })
      const reaper = yield* Effect.forkDetach(Effect.interruptible(reap))
      const killGroup = (signal: NodeJS.Signals) =>
        Effect.sync(() => {
          try {
            process.kill(-pid, signal)
          } catch {
            // The group is gone already.
          }
        })
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          if (!(yield* Deferred.isDone(exited))) {
            yield* killGroup("SIGKILL")
            yield* Deferred.await(exited)
          }
          yield* Fiber.interrupt(reaper)
        })
      )
      return { pid, exited, killGroup }
    }))
    const stream = (readable: Readable) =>
      NodeStream.fromReadable<Uint8Array, SystemError>({
        evaluate: () => readable,
        onError: (error) => new SystemError({ operation: "ChildProcess.read", call: "read", errno: String((error as NodeJS.ErrnoException).code ?? "EIO"), code: 5 })
      })
    return {
      pid,
      stdin,
      stdoutReadable,
      stderrReadable,
      stdout: stream(stdoutReadable),
      stderr: stream(stderrReadable),
      exit: Deferred.await(exited),
      kill: (signal: NodeJS.Signals = "SIGTERM") => killGroup(signal)
    } satisfies ChildProcess
  })

/** The longest path the kernel takes, with its NUL (`PATH_MAX`). */
const PATH_MAX = 4096

/** `NamespaceSet.spawn`: a process started inside every namespace of the set, owned by the Scope. */
export const spawn = (
  set: NamespaceSet,
  command: string,
  args: ReadonlyArray<string>,
  options: SpawnOptions
): Effect.Effect<ChildProcess, SpawnError, PinnedThreads | Scope.Scope> =>
  spawnWith(
    "NamespaceSet.spawn",
    (spawnArgs) => runSpec<number, SpawnError>("NamespaceSet.spawn", set, { op: "spawn", args: spawnArgs }, true),
    command,
    args,
    options
  )

/** `NamespacedProcess.layerSpawner`: Effect's spawner, running every command inside the set through nsenter. */
export const layerSpawner = (set: NamespaceSet): Layer.Layer<ChildProcessSpawner.ChildProcessSpawner, SetClosed | KindNotInSet | InvalidKind | SystemError | PermissionDenied> =>
  Layer.effect(
    ChildProcessSpawner.ChildProcessSpawner,
    Effect.gen(function*() {
      const node = yield* ChildProcessSpawner.ChildProcessSpawner
      const fds = yield* duplicateFds("NamespacedProcess.layerSpawner", set)
      const joins = nsenterOptions(Object.entries(fds).map(([kind, fd]) => ({ kind: kind as Kind.NamespaceKind, fd: fd! })))
      const joinsMount = fds.mnt !== undefined
      const inside = (command: EffectChildProcess.Command): EffectChildProcess.Command => {
        if (EffectChildProcess.isPipedCommand(command)) {
          return EffectChildProcess.pipeTo(inside(command.left), inside(command.right), command.options)
        }
        const { cwd, shell, ...options } = command.options
        const words = [command.command, ...command.args.map((word) => Redacted.isRedacted(word) ? Redacted.value(word) : word)]
        // An empty shell is none, as for Node.
        const argv = shell === undefined || shell === false || shell === ""
          ? words
          : [typeof shell === "string" ? shell : "/bin/sh", "-c", words.join(" ")]
        // Joining a mount namespace moves nsenter to its root, so a working directory there is
        // set once inside (`--wdns`); without one, the directory is the host's and the child's.
        return cwd !== undefined && joinsMount
          ? EffectChildProcess.make("nsenter", [...joins, `--wdns=${cwd}`, "--", ...argv], options)
          : EffectChildProcess.make("nsenter", [...joins, "--", ...argv], cwd === undefined ? options : { ...options, cwd })
      }
      // Effect's spawner refuses arguments beside a shell command (they would be joined into its
      // script unquoted); so does this one, which hands the spawner a command with no shell. A
      // `cwd` inside becomes an argument of nsenter: one longer than a path can be is refused
      // here, before the kernel refuses the command line as too long (E2BIG, a defect).
      const problem = (command: EffectChildProcess.Command): string | undefined => {
        if (EffectChildProcess.isPipedCommand(command)) return problem(command.left) ?? problem(command.right)
        const { cwd, shell } = command.options
        if (shell !== undefined && shell !== false && command.args.length > 0) {
          return "The shell option cannot be combined with arguments; pass the whole script as the command"
        }
        if (joinsMount && typeof cwd === "string" && Buffer.byteLength(cwd) >= PATH_MAX) {
          return `cwd is ${Buffer.byteLength(cwd)} bytes long, longer than a path can be (${PATH_MAX - 1})`
        }
        return undefined
      }
      return ChildProcessSpawner.make((command) => {
        const description = problem(command)
        return description === undefined
          ? node.spawn(inside(command))
          : Effect.fail(PlatformError.badArgument({ module: "ChildProcess", method: "spawn", description }))
      })
    })
  ).pipe(Layer.provide(NodeChildProcessSpawner.layer), Layer.provide(NodeServices.layer))
