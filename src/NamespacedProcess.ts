/**
 * Long-running processes inside a set, driven from the main event loop.
 *
 * A child process is born in the namespaces of the thread that starts it. A pinned thread starts
 * it with `posix_spawn` (no JavaScript runs in the child) and is free again at once; the child's
 * stdin, stdout and stderr are pipes made by the main thread and passed by fd, so the main thread
 * streams them. The main thread also reaps the child. Closing the Scope (or interrupting the
 * fiber that owns it) kills the child's whole process group and reaps it.
 *
 * @since 0.1.0
 */
import { type Effect, type Layer, type Scope } from "effect"
import { dual } from "effect/Function"
import type { ChildProcessSpawner } from "effect/process"
import type { InvalidKind, KindNotInSet, PermissionDenied, SetClosed, SystemError } from "./internal/errors.ts"
import * as internal from "./internal/process.ts"
import type { ChildProcess, SpawnError, SpawnOptions } from "./internal/process.ts"
import type { PinnedThreads } from "./internal/service.ts"
import { isNamespaceSet, type NamespaceSet } from "./internal/set.ts"

export type { ChildProcess, ExitStatus, SpawnError, SpawnOptions } from "./internal/process.ts"

/**
 * Starts `command` inside every namespace of the set and returns a {@link ChildProcess} owned by
 * the current Scope. A missing command is `CommandNotFound`. In sets with a user or time
 * namespace, the command is started through util-linux `nsenter`.
 *
 * @since 0.1.0
 * @category running
 * @example
 * ```ts
 * import { Console, Effect, Stream } from "effect"
 * import { NamespaceSet, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.unshareCurrent(["net"], { loopback: "up" })
 *   const child = yield* NamespaceSet.spawn(set, "ping", ["-c", "3", "127.0.0.1"])
 *   yield* child.stdout.pipe(Stream.decodeText(), Stream.runForEach(Console.log))
 *   return yield* child.exit  // { exitCode: 0, signal: null }
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const spawn: {
  (command: string, args?: ReadonlyArray<string>, options?: SpawnOptions): (set: NamespaceSet) => Effect.Effect<ChildProcess, SpawnError, PinnedThreads | Scope.Scope>
  (set: NamespaceSet, command: string, args?: ReadonlyArray<string>, options?: SpawnOptions): Effect.Effect<ChildProcess, SpawnError, PinnedThreads | Scope.Scope>
} = dual(
  (args: IArguments) => isNamespaceSet(args[0]),
  (set: NamespaceSet, command: string, args: ReadonlyArray<string> = [], options: SpawnOptions = {}): Effect.Effect<ChildProcess, SpawnError, PinnedThreads | Scope.Scope> =>
    internal.spawn(set, command, args, options)
)

/**
 * Effect's `ChildProcessSpawner` (from `effect/process`), running every command inside the set:
 * any Effect code that spawns processes with `ChildProcess.make` runs them in the set's namespaces,
 * unchanged. Each command (each stage of a pipeline) is started by Node's spawner through util-linux
 * `nsenter`, which joins every namespace of the set (the user namespace first) and execs it; a `cwd`
 * is resolved in the set's mount namespace when the set has one (a relative `cwd` from that
 * namespace's root, as for `Task.exec`), and as Node resolves it otherwise; a `shell` command runs
 * its shell inside (arguments beside it are refused, as Effect's own spawner refuses them). A
 * command nsenter could not start (a `cwd` that is not there, say) exits with status 1, like a
 * command that failed: check the exit code. The set's fds stay open for the layer's life.
 *
 * @since 0.1.0
 * @category layers
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { ChildProcess } from "effect/process"
 * import { NamespacedProcess, NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.unshareCurrent(["uts"])
 *   yield* NamespaceSet.run(set, Task.setHostname("box"))
 *   return yield* ChildProcess.make("hostname").pipe(
 *     Effect.flatMap((handle) => Stream.mkString(Stream.decodeText(handle.stdout))),
 *     Effect.provide(NamespacedProcess.layerSpawner(set))
 *   )  // "box\n"
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const layerSpawner = (set: NamespaceSet): Layer.Layer<ChildProcessSpawner.ChildProcessSpawner, SetClosed | KindNotInSet | InvalidKind | SystemError | PermissionDenied> =>
  internal.layerSpawner(set)
