/**
 * A namespace set (gonso's `Set`): a handful of open namespace file descriptors, one per kind,
 * owned by a Scope. Sets come from the current thread, a pid, a directory, files such as
 * `/run/netns/NAME`, or from {@link unshare}, which makes new namespaces without touching the
 * caller's thread. {@link run} and {@link enter} do work inside a set on a pinned thread.
 *
 * The fds are closed exactly once, when the set's Scope closes and no operation still uses them;
 * every operation on a closed set fails with `SetClosed` instead of reaching the kernel with fd
 * numbers that may by then belong to someone else.
 *
 * Every function that takes a set first also has a data-last form, for `pipe`:
 * `set.pipe(NamespaceSet.run(Task.tid))`, `set.pipe(NamespaceSet.id("net"))`,
 * `set.pipe(NamespaceSet.mountScoped("/run/my-sets/a"))`.
 *
 * @since 0.1.0
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const isolated = yield* NamespaceSet.current(["net", "uts"]).pipe(Effect.flatMap(NamespaceSet.unshare(["net", "uts"])))
 *   yield* isolated.pipe(NamespaceSet.run(Task.setHostname("box")))
 *   return yield* isolated.pipe(NamespaceSet.id("net"))
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
import * as fs from "node:fs"
import { Effect, Scope } from "effect"
import { dual } from "effect/Function"
import * as Kind from "./NamespaceKind.ts"
import type { NamespaceKind } from "./NamespaceKind.ts"
import {
  InvalidKind,
  KindNotInSet,
  PermissionDenied,
  ProcessNotFound,
  SetClosed,
  type StaleNetnsName,
  SystemError,
  InvalidOptions,
  type PathRefused
} from "./NamespaceError.ts"
import { PinnedThreads } from "./PinnedThreads.ts"
import type { NamespaceId, Task } from "./Task.ts"
import * as libc from "./internal/libc.ts"
import * as Mount from "./internal/mount.ts"
import type { MountError, MountOptions } from "./internal/mount.ts"
import { duplicateFds, open, type OpenError, selectKinds, withValidKinds } from "./internal/open.ts"

import * as internalUnshare from "./internal/unshare.ts"
import type { UnshareError, UnshareOptions } from "./internal/unshare.ts"
import * as validate from "./internal/validate.ts"
import {
  adopt,
  attempt,
  carry,
  type EnterError,
  idString,
  impl,
  isNamespaceSet,
  type NamespaceSet,
  type Parts,
  runSpec,
  withMembers
} from "./internal/set.ts"
import * as internalRun from "./internal/run.ts"
import * as introspect from "./internal/introspect.ts"
import type { RelativeError } from "./internal/introspect.ts"
import type { EnteredThread } from "./internal/run.ts"

/**
 * Starts a long-running process inside the set, streamed and reaped from the main event loop
 * (see `NamespacedProcess`).
 *
 * @since 0.1.0
 * @category running
 * @example
 * ```ts
 * import { Console, Effect, Stream } from "effect"
 * import { NamespaceSet, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const box = yield* NamespaceSet.unshareCurrent(["net"], { loopback: "up" })
 *   const ping = yield* box.pipe(NamespaceSet.spawn("ping", ["-c", "3", "127.0.0.1"]))
 *   yield* ping.stdout.pipe(Stream.decodeText(), Stream.runForEach(Console.log))
 *   return yield* ping.exit // { exitCode: 0, signal: null }
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export { spawn } from "./NamespacedProcess.ts"

/**
 * A scoped set of namespaces, at most one of each kind; `isNamespaceSet` tells one apart.
 *
 * @since 0.1.0
 * @category models
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet } from "gonso"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const host = yield* NamespaceSet.current(["net"])
 *   return [NamespaceSet.isNamespaceSet(host), NamespaceSet.isNamespaceSet({ kinds: ["net"] })] // [true, false]
 * }))
 * ```
 */
export { isNamespaceSet, type NamespaceSet }

/**
 * The errors of opening a set from paths, pids, pidfds or the current thread.
 *
 * @since 0.1.0
 * @category errors
 */
export type { OpenError } from "./internal/open.ts"

/**
 * The errors of mounting, persisting and unmounting namespaces.
 *
 * @since 0.1.0
 * @category errors
 */
export type { MountError } from "./internal/mount.ts"

/** Whether a dual function was called data-first (its first argument is a set), for `dual`. */
const setFirst = (args: IArguments): boolean => isNamespaceSet(args[0])

// ---------------------------------------------------------------------------------------------
// Opening
// ---------------------------------------------------------------------------------------------

/**
 * The calling thread's namespaces of the given kinds (default: every kind but user, as gonso's
 * `Current`). For pid and time this is the namespace the thread's children are born in. Called
 * from the main thread, these are the process's own namespaces.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet } from "gonso"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const host = yield* NamespaceSet.current(["net", "uts"])
 *   return yield* NamespaceSet.id(host, "net") // "net:[4026531840]"
 * }))
 * ```
 */
export const current = (
  kinds: ReadonlyArray<NamespaceKind> = Kind.defaultKinds
): Effect.Effect<NamespaceSet, OpenError, Scope.Scope> =>
  withValidKinds("NamespaceSet.current", kinds, (valid) =>
    open("NamespaceSet.current", valid.map((kind) => [kind, `/proc/thread-self/ns/${Kind.childrenFile[kind]}`])))

/**
 * The namespaces of process `pid` (gonso's `FromPid`), from `/proc/PID/ns`, with a pidfd opened
 * first and checked alive after, so the files are that process's. A pid with no process fails
 * with `ProcessNotFound`. A thread joins the set through the pidfd, all kinds at once, and checks
 * that they are the set's: a process that moved since fails with `ProcessMoved`.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * // `node app.ts 4242`: the hostname that process 4242 sees
 * const program = Effect.gen(function*() {
 *   const theirs = yield* NamespaceSet.fromPid(Number(process.argv[2]), ["uts"])
 *   return yield* theirs.pipe(NamespaceSet.run(Task.hostname))
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const fromPid = (
  pid: number,
  kinds: ReadonlyArray<NamespaceKind> = Kind.defaultKinds
): Effect.Effect<NamespaceSet, OpenError, Scope.Scope> =>
  Effect.suspend(() => {
    if (!Number.isSafeInteger(pid) || pid <= 0) return Effect.fail(new ProcessNotFound({ operation: "NamespaceSet.fromPid", pid }))
    return withValidKinds("NamespaceSet.fromPid", kinds, (valid) =>
      open("NamespaceSet.fromPid", valid.map((kind) => [kind, `/proc/${pid}/ns/${kind}`]), pid))
  })

/**
 * The namespace files `dir/<kind>` of the given kinds (gonso's `FromDir`), e.g. a directory that
 * `/proc/PID/ns` or a persisted set was bind-mounted to.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * // a set that NamespaceSet.mount(set, "/run/my-sets/a") persisted, in this or another process
 * const program = Effect.gen(function*() {
 *   const again = yield* NamespaceSet.fromPath("/run/my-sets/a", ["net", "uts"])
 *   return yield* again.pipe(NamespaceSet.run(Task.hostname))
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const fromPath = (
  dir: string,
  kinds: ReadonlyArray<NamespaceKind>
): Effect.Effect<NamespaceSet, OpenError | InvalidOptions, Scope.Scope> =>
  validate.guard(validate.cStrings("NamespaceSet.fromPath", [["dir", dir]]), () => withValidKinds("NamespaceSet.fromPath", kinds, (valid) =>
    open("NamespaceSet.fromPath", valid.map((kind) => [kind, `${dir.replace(/\/+$/, "")}/${kind}`]))))

/**
 * One file per kind, e.g. `{ net: "/run/netns/blue" }`. Each file must be a namespace of its key's
 * kind: another file fails with `NotANamespace`, a namespace of another kind with `KindMismatch`.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * // the network namespace that `ip netns add blue` made
 * const program = Effect.gen(function*() {
 *   const blue = yield* NamespaceSet.fromFiles({ net: "/run/netns/blue" })
 *   return yield* blue.pipe(NamespaceSet.run(Task.exec("ip", ["-brief", "link"])))
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const fromFiles = (
  files: Partial<Record<NamespaceKind, string>>
): Effect.Effect<NamespaceSet, OpenError | InvalidOptions, Scope.Scope> => {
  const entries = Object.entries(files).filter(([, path]) => path !== undefined) as Array<[string, string]>
  return validate.guard(validate.cStrings("NamespaceSet.fromFiles", entries), () => withValidKinds("NamespaceSet.fromFiles", entries.map(([kind]) => kind as NamespaceKind), () =>
    open("NamespaceSet.fromFiles", entries as Array<[NamespaceKind, string]>)))
}

// ---------------------------------------------------------------------------------------------
// Reading a set
// ---------------------------------------------------------------------------------------------

/**
 * A new set holding duplicates of `set`'s fds of the given kinds (default: all), owned by the
 * current Scope and independent of `set`'s. `dup(set, kinds without "user")` makes a set that a
 * thread can enter from one that holds a user namespace.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const box = yield* NamespaceSet.unshareCurrent(["user", "net"], { uidMap: [{ containerId: 0, hostId: 0, size: 1 }] })
 *   // no thread can join the new user namespace, but it can join the net namespace that it owns
 *   const net = yield* box.pipe(NamespaceSet.dup(["net"]))
 *   return yield* NamespaceSet.run(net, Task.readFile("/proc/thread-self/net/dev")) // only lo
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const dup: {
  (kinds?: ReadonlyArray<NamespaceKind>): (set: NamespaceSet) => Effect.Effect<NamespaceSet, SetClosed | InvalidKind | KindNotInSet | SystemError | PermissionDenied, Scope.Scope>
  (set: NamespaceSet, kinds?: ReadonlyArray<NamespaceKind>): Effect.Effect<NamespaceSet, SetClosed | InvalidKind | KindNotInSet | SystemError | PermissionDenied, Scope.Scope>
} = dual(
  (args) => isNamespaceSet(args[0]),
  (set: NamespaceSet, kinds?: ReadonlyArray<NamespaceKind>) =>
    withMembers(set, "NamespaceSet.dup", () =>
      adopt(attempt<Parts, InvalidKind | KindNotInSet | SystemError | PermissionDenied>(() =>
        carry("NamespaceSet.dup", set, selectKinds("NamespaceSet.dup", set, kinds))
      )))
)

/**
 * Close-on-exec duplicates of the set's fds (default: every kind), for callers that hand them on
 * (to `setns` in their own native code, or to a child through its stdio). They are closed when the
 * current Scope closes.
 *
 * @since 0.1.0
 * @category getters
 * @example
 * ```ts
 * import { execFileSync } from "node:child_process"
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const box = yield* NamespaceSet.unshareCurrent(["net"])
 *   const { net } = yield* box.pipe(NamespaceSet.fds(["net"]))
 *   // the child gets the namespace as its fd 3, and nsenter joins it before running ip
 *   const links = yield* Effect.sync(() => execFileSync("nsenter", ["--net=/proc/self/fd/3", "ip", "-brief", "link"], {
 *     encoding: "utf8",
 *     stdio: ["ignore", "pipe", "inherit", net!]
 *   }))
 *   return links // lo, DOWN: the new namespace's only link
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const fds: {
  (kinds?: ReadonlyArray<NamespaceKind>): (set: NamespaceSet) => Effect.Effect<Partial<Record<NamespaceKind, number>>, SetClosed | InvalidKind | KindNotInSet | SystemError | PermissionDenied, Scope.Scope>
  (set: NamespaceSet, kinds?: ReadonlyArray<NamespaceKind>): Effect.Effect<Partial<Record<NamespaceKind, number>>, SetClosed | InvalidKind | KindNotInSet | SystemError | PermissionDenied, Scope.Scope>
} = dual(setFirst, (set: NamespaceSet, kinds?: ReadonlyArray<NamespaceKind>): Effect.Effect<Partial<Record<NamespaceKind, number>>, SetClosed | InvalidKind | KindNotInSet | SystemError | PermissionDenied, Scope.Scope> =>
  duplicateFds("NamespaceSet.fds", set, kinds))

/**
 * The namespace of `kind` in the set, as the kernel names it (`"net:[4026531840]"`) and by its
 * nsfs dev+inode. Two namespaces are the same exactly when dev and inode are equal, and only while
 * an fd keeps them alive: the kernel reuses the inode numbers of destroyed namespaces.
 *
 * @since 0.1.0
 * @category getters
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet } from "gonso"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const host = yield* NamespaceSet.current(["net"])
 *   const { id, dev, ino } = yield* host.pipe(NamespaceSet.identity("net"))
 *   return `${id} is inode ${ino} of nsfs device ${dev}` // e.g. "net:[4026531840] is inode 4026531840 of nsfs device 4"
 * }))
 * ```
 */
export const identity: {
  (kind: NamespaceKind): (set: NamespaceSet) => Effect.Effect<NamespaceId, SetClosed | KindNotInSet | InvalidKind>
  (set: NamespaceSet, kind: NamespaceKind): Effect.Effect<NamespaceId, SetClosed | KindNotInSet | InvalidKind>
} = dual(2, (set: NamespaceSet, kind: NamespaceKind): Effect.Effect<NamespaceId, SetClosed | KindNotInSet | InvalidKind> =>
  withMembers(set, "NamespaceSet.identity", (members) =>
    attempt(() => {
      const [valid] = selectKinds("NamespaceSet.identity", set, [kind])
      const member = members.get(valid!)!
      return { kind: member.kind, id: idString(member), dev: member.dev, ino: member.ino }
    })))

/**
 * The kernel's name of the set's namespace of `kind`, as `readlink /proc/PID/ns/KIND` prints it
 * (gonso's `ID`).
 *
 * @since 0.1.0
 * @category getters
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const host = yield* NamespaceSet.current(["net"])
 *   const isolated = yield* host.pipe(NamespaceSet.unshare(["net"]))
 *   return [yield* NamespaceSet.id(host, "net"), yield* isolated.pipe(NamespaceSet.id("net"))]
 *   // e.g. ["net:[4026531840]", "net:[4026532301]"]
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const id: {
  (kind: NamespaceKind): (set: NamespaceSet) => Effect.Effect<string, SetClosed | KindNotInSet | InvalidKind>
  (set: NamespaceSet, kind: NamespaceKind): Effect.Effect<string, SetClosed | KindNotInSet | InvalidKind>
} = dual(2, (set: NamespaceSet, kind: NamespaceKind): Effect.Effect<string, SetClosed | KindNotInSet | InvalidKind> =>
  Effect.map(identity(set, kind), (identity) => identity.id))

/**
 * Whether two sets hold the same kinds and, for each, the same namespace (by dev+inode).
 *
 * @since 0.1.0
 * @category getters
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet } from "gonso"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const host = yield* NamespaceSet.current(["net", "uts"])
 *   const copy = yield* NamespaceSet.dup(host)
 *   const netOnly = yield* NamespaceSet.dup(host, ["net"])
 *   // [true, false]: netOnly has the same net namespace, but no uts
 *   return [yield* NamespaceSet.equals(host, copy), yield* host.pipe(NamespaceSet.equals(netOnly))]
 * }))
 * ```
 */
export const equals: {
  (that: NamespaceSet): (self: NamespaceSet) => Effect.Effect<boolean, SetClosed>
  (self: NamespaceSet, that: NamespaceSet): Effect.Effect<boolean, SetClosed>
} = dual(2, (self: NamespaceSet, that: NamespaceSet): Effect.Effect<boolean, SetClosed> =>
  withMembers(self, "NamespaceSet.equals", (a) =>
    withMembers(that, "NamespaceSet.equals", (b) =>
      Effect.sync(() =>
        a.size === b.size &&
        [...a.values()].every((member) => {
          const other = b.get(member.kind)
          return other !== undefined && other.dev === member.dev && other.ino === member.ino
        })
      ))))

/**
 * The kinds a set holds, in the order a thread enters them.
 *
 * @since 0.1.0
 * @category getters
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet } from "gonso"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const set = yield* NamespaceSet.current(["mnt", "net", "user"])
 *   return NamespaceSet.kinds(set) // ["user", "net", "mnt"]
 * }))
 * ```
 */
export const kinds = (set: NamespaceSet): ReadonlyArray<NamespaceKind> => set.kinds

// ---------------------------------------------------------------------------------------------
// Introspection
// ---------------------------------------------------------------------------------------------

export type { RelativeError } from "./internal/introspect.ts"

/**
 * The user namespace that owns the set's namespace of `kind` (`NS_GET_USERNS`), as a one-kind
 * set owned by the current Scope. Fails with `PermissionDenied` when the owner lies outside the
 * caller's user namespace.
 *
 * @since 0.1.0
 * @category introspection
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const box = yield* NamespaceSet.unshareCurrent(["user", "net"], { uidMap: [{ containerId: 0, hostId: 0, size: 1 }] })
 *   const owner = yield* box.pipe(NamespaceSet.owner("net"))
 *   // the same id twice: the new user namespace owns the new net namespace
 *   return [yield* NamespaceSet.id(owner, "user"), yield* NamespaceSet.id(box, "user")]
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const owner: {
  (kind: NamespaceKind): (set: NamespaceSet) => Effect.Effect<NamespaceSet, RelativeError, Scope.Scope>
  (set: NamespaceSet, kind: NamespaceKind): Effect.Effect<NamespaceSet, RelativeError, Scope.Scope>
} = dual(2, (set: NamespaceSet, kind: NamespaceKind): Effect.Effect<NamespaceSet, RelativeError, Scope.Scope> =>
  introspect.relative("NamespaceSet.owner", set, kind, libc.NS_GET_USERNS, () => "user"))

/**
 * The parent of the set's pid or user namespace (`NS_GET_PARENT`), as a one-kind set owned by the
 * current Scope. Other kinds have no parent (`UnsupportedKind`); the parent of a namespace at the
 * top of what the caller can see fails with `PermissionDenied`.
 *
 * @since 0.1.0
 * @category introspection
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const box = yield* NamespaceSet.unshareCurrent(["pid"])
 *   const parent = yield* box.pipe(NamespaceSet.parent("pid"))
 *   return yield* NamespaceSet.equals(parent, yield* NamespaceSet.current(["pid"])) // true
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const parent: {
  (kind: "pid" | "user"): (set: NamespaceSet) => Effect.Effect<NamespaceSet, RelativeError, Scope.Scope>
  (set: NamespaceSet, kind: "pid" | "user"): Effect.Effect<NamespaceSet, RelativeError, Scope.Scope>
} = dual(2, (set: NamespaceSet, kind: "pid" | "user"): Effect.Effect<NamespaceSet, RelativeError, Scope.Scope> =>
  introspect.relative("NamespaceSet.parent", set, kind, libc.NS_GET_PARENT, (kind) => kind))

/**
 * The uid that created the set's user namespace (`NS_GET_OWNER_UID`), as seen from this process's
 * user namespace.
 *
 * @since 0.1.0
 * @category introspection
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const box = yield* NamespaceSet.unshareCurrent(["user", "net"])
 *   return yield* NamespaceSet.ownerUid(box) // this process's effective uid, e.g. 1000
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const ownerUid = (set: NamespaceSet): Effect.Effect<number, SetClosed | KindNotInSet | InvalidKind | PermissionDenied | SystemError> =>
  introspect.ownerUid(set)

// ---------------------------------------------------------------------------------------------
// Doing work inside a set
// ---------------------------------------------------------------------------------------------

/**
 * Options of {@link run} and {@link enter}.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunOptions {
  /**
   * Return the thread to its baseline namespaces afterwards and reuse it (default `true`).
   * `false` drops the thread, as gonso's `DoRaw(f, false)`.
   */
  readonly restore?: boolean | undefined
}

/**
 * Runs `task` on a pinned thread inside the set's namespaces (gonso's `Do` and `DoRaw`).
 *
 * The thread joins the set's kinds in {@link NamespaceKind.enterOrder}, runs the task, and, unless
 * `restore` is `false`, returns to its baseline namespaces; the kernel's view of every kind it
 * touched (and, after user code, of every kind, the working directory and the root) is then
 * compared with the baseline by dev+inode. The thread goes back to the pool only when all of that
 * holds; it is dropped (terminated, never reused) when `restore` is `false`, the task tainted it,
 * restoring or verifying failed, the task died, or the Effect was interrupted while it ran.
 * A typed failure of the task still restores the thread.
 *
 * The calling thread is never moved. A set holding a user namespace other than the process's own
 * cannot be entered (`UserNamespaceNotEnterable`): `dup` it without `"user"`, or run `Task.exec`
 * in it (its command joins through nsenter).
 *
 * @since 0.1.0
 * @category running
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const isolated = yield* NamespaceSet.unshareCurrent(["net"])
 *   const links = yield* NamespaceSet.run(isolated, Task.exec("ip", ["-o", "link"]))
 *   return links.stdout // one line: lo, "state DOWN"
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const run: {
  <A, E>(task: Task<A, E>, options?: RunOptions): (set: NamespaceSet) => Effect.Effect<A, E | EnterError, PinnedThreads>
  <A, E>(set: NamespaceSet, task: Task<A, E>, options?: RunOptions): Effect.Effect<A, E | EnterError, PinnedThreads>
} = dual(
  (args) => isNamespaceSet(args[0]),
  <A, E>(set: NamespaceSet, task: Task<A, E>, options?: RunOptions): Effect.Effect<A, E | EnterError, PinnedThreads> =>
    internalRun.run<A, E>(set, task, options?.restore ?? true)
)

export type { EnteredThread } from "./internal/run.ts"

/**
 * Leases a pinned thread and moves it into the set for the life of the current Scope. Closing the
 * Scope is the restore step, a finalizer: the thread returns to its baseline and is verified as in
 * {@link run}, or is dropped under the same rules.
 *
 * @since 0.1.0
 * @category running
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.unshareCurrent(["uts"])
 *   const inside = yield* NamespaceSet.enter(set)
 *   yield* inside.run(Task.setHostname("box"))
 *   return yield* inside.run(Task.exec("hostname")) // { exitCode: 0, signal: null, stdout: "box\n", stderr: "" }
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const enter: {
  (options?: RunOptions): (set: NamespaceSet) => Effect.Effect<EnteredThread, EnterError, PinnedThreads | Scope.Scope>
  (set: NamespaceSet, options?: RunOptions): Effect.Effect<EnteredThread, EnterError, PinnedThreads | Scope.Scope>
} = dual(setFirst, (set: NamespaceSet, options?: RunOptions): Effect.Effect<EnteredThread, EnterError, PinnedThreads | Scope.Scope> =>
  internalRun.enter(set, options?.restore ?? true))

// ---------------------------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------------------------

/**
 * Options of {@link mount} and the functions like it.
 *
 * @since 0.1.0
 * @category models
 */
export type { MountOptions } from "./internal/mount.ts"

/**
 * Bind-mounts each namespace of the set onto `dir/<kind>` (gonso's `Set.Mount`), creating the
 * directory (0755) and files where missing, so that the namespaces outlive the set and can be
 * opened again with {@link fromPath}. No symbolic link is followed, in `dir` or as a target
 * (`PathRefused`); an existing regular file is reused and kept (see docs/persistence.md). All or nothing, and not interruptible: once started, it completes,
 * so the caller always knows whether the mounts exist. The mounts stay until {@link unmount} is
 * given their paths (`dir/<kind>`, one per kind); see {@link mountScoped} for mounts that go with
 * a Scope. Works for every kind, user included.
 *
 * @since 0.1.0
 * @category persistence
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads } from "gonso"
 *
 * // makes /run/my-sets/a/net and /run/my-sets/a/uts, which stay when the program ends
 * const program = Effect.gen(function*() {
 *   const box = yield* NamespaceSet.unshareCurrent(["net", "uts"])
 *   yield* box.pipe(NamespaceSet.mount("/run/my-sets/a"))
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const mount: {
  (dir: string, options?: MountOptions): (set: NamespaceSet) => Effect.Effect<void, MountError, PinnedThreads>
  (set: NamespaceSet, dir: string, options?: MountOptions): Effect.Effect<void, MountError, PinnedThreads>
} = dual(setFirst, (set: NamespaceSet, dir: string, options?: MountOptions): Effect.Effect<void, MountError, PinnedThreads> =>
  validate.guard(validate.cStrings("NamespaceSet.mount", [["dir", dir]]), () => Mount.mount(set, dir, options)))

/**
 * Bind-mounts the set's namespace of `kind` onto `file` (gonso's `Set.MountNS`). A mount namespace
 * cannot be mounted inside itself (the kernel would make a loop): that fails with `InvalidOptions`.
 *
 * @since 0.1.0
 * @category persistence
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads } from "gonso"
 *
 * // `nsenter --net=/run/my-sets/blue-net` joins it, until NamespaceSet.unmount(["/run/my-sets/blue-net"])
 * const program = Effect.gen(function*() {
 *   const box = yield* NamespaceSet.unshareCurrent(["net"])
 *   yield* box.pipe(NamespaceSet.mountKind("net", "/run/my-sets/blue-net"))
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const mountKind: {
  (kind: NamespaceKind, file: string, options?: MountOptions): (set: NamespaceSet) => Effect.Effect<void, MountError, PinnedThreads>
  (set: NamespaceSet, kind: NamespaceKind, file: string, options?: MountOptions): Effect.Effect<void, MountError, PinnedThreads>
} = dual(setFirst, (set: NamespaceSet, kind: NamespaceKind, file: string, options?: MountOptions): Effect.Effect<void, MountError, PinnedThreads> =>
  validate.guard(validate.cStrings("NamespaceSet.mountKind", [["file", file]]), () => Mount.mountKind(set, kind, file, options)))

/**
 * Detaches the namespace mounts at `paths` (the mount points themselves, such as `dir/net` for
 * what {@link mount} put under `dir`), and removes the files and directories that gonso made for
 * them in this process (never one that was there before: mounts made by another process are
 * detached, and their files and directories left). Anything that is not a namespace mount, or a
 * symbolic link, fails with `PathRefused` and is left as it was; all paths are checked before any
 * is touched.
 *
 * @since 0.1.0
 * @category persistence
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads } from "gonso"
 *
 * // detaches what NamespaceSet.mount(set, "/run/my-sets/a") mounted for a set of net and uts: a path per kind
 * const program = NamespaceSet.unmount(["/run/my-sets/a/net", "/run/my-sets/a/uts"]).pipe(
 *   Effect.provide(PinnedThreads.layer())
 * )
 * ```
 */
export const unmount = (paths: ReadonlyArray<string>, options?: MountOptions): Effect.Effect<void, MountError, PinnedThreads> =>
  validate.guard(validate.cStrings("NamespaceSet.unmount", validate.listFields("paths", paths)), () => Mount.unmount(paths, options))

/**
 * {@link mount}, undone when the current Scope closes.
 *
 * @since 0.1.0
 * @category persistence
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const box = yield* NamespaceSet.unshareCurrent(["net", "uts"])
 *   yield* box.pipe(NamespaceSet.mountScoped("/run/my-sets/a"))
 *   const again = yield* NamespaceSet.fromPath("/run/my-sets/a", ["net", "uts"])
 *   return yield* NamespaceSet.equals(again, box) // true; the mounts go when the Scope closes
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const mountScoped: {
  (dir: string, options?: MountOptions): (set: NamespaceSet) => Effect.Effect<void, MountError, PinnedThreads | Scope.Scope>
  (set: NamespaceSet, dir: string, options?: MountOptions): Effect.Effect<void, MountError, PinnedThreads | Scope.Scope>
} = dual(setFirst, (set: NamespaceSet, dir: string, options?: MountOptions): Effect.Effect<void, MountError, PinnedThreads | Scope.Scope> =>
  validate.guard(validate.cStrings("NamespaceSet.mountScoped", [["dir", dir]]), () => Mount.mountScoped(set, dir, options)))

/**
 * {@link mountKind}, undone when the current Scope closes.
 *
 * @since 0.1.0
 * @category persistence
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const box = yield* NamespaceSet.unshareCurrent(["net"])
 *   yield* box.pipe(NamespaceSet.mountKindScoped("net", "/run/my-sets/blue-net"))
 *   const again = yield* NamespaceSet.fromFiles({ net: "/run/my-sets/blue-net" })
 *   return yield* NamespaceSet.equals(again, box) // true; the mount goes when the Scope closes
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const mountKindScoped: {
  (kind: NamespaceKind, file: string, options?: MountOptions): (set: NamespaceSet) => Effect.Effect<void, MountError, PinnedThreads | Scope.Scope>
  (set: NamespaceSet, kind: NamespaceKind, file: string, options?: MountOptions): Effect.Effect<void, MountError, PinnedThreads | Scope.Scope>
} = dual(setFirst, (set: NamespaceSet, kind: NamespaceKind, file: string, options?: MountOptions): Effect.Effect<void, MountError, PinnedThreads | Scope.Scope> =>
  validate.guard(validate.cStrings("NamespaceSet.mountKindScoped", [["file", file]]), () => Mount.mountKindScoped(set, kind, file, options)))

/**
 * Names the set's network namespace `name` the way `ip netns add` does: a bind mount at
 * `/run/netns/NAME`, with `/run/netns` made a shared mount point first, so that `ip netns list`
 * shows it and `ip netns exec NAME ...` runs inside it. Succeeds with the path, `/run/netns/NAME`.
 * The name is removed (unmounted and deleted) when the current Scope closes. An existing name fails with `SystemError` (`EEXIST`),
 * except a stale one (an empty file with nothing mounted on it, left by a program killed while
 * naming it), which is taken over.
 *
 * @since 0.1.0
 * @category persistence
 * @example
 * ```ts
 * import { execFileSync } from "node:child_process"
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const blue = yield* NamespaceSet.unshareCurrent(["net"], { loopback: "up" })
 *   const path = yield* blue.pipe(NamespaceSet.persistNetns("blue")) // "/run/netns/blue"
 *   // until the Scope closes, iproute2 knows it by name
 *   return yield* Effect.sync(() =>
 *     execFileSync("ip", ["netns", "exec", "blue", "ip", "-brief", "link"], { encoding: "utf8" })
 *   ) // lo, UP: loopback "up" brought it up
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const persistNetns: {
  (name: string): (set: NamespaceSet) => Effect.Effect<string, MountError, PinnedThreads | Scope.Scope>
  (set: NamespaceSet, name: string): Effect.Effect<string, MountError, PinnedThreads | Scope.Scope>
} = dual(2, (set: NamespaceSet, name: string): Effect.Effect<string, MountError, PinnedThreads | Scope.Scope> =>
  Mount.persistNetns(set, name))

/**
 * The network namespace named `name` by `ip netns add` (or {@link persistNetns}): `/run/netns/NAME`.
 * A stale name (an empty file with nothing mounted on it) fails with `StaleNetnsName`.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * // a namespace made with `ip netns add blue`
 * const program = Effect.gen(function*() {
 *   const blue = yield* NamespaceSet.fromNetnsName("blue")
 *   return yield* blue.pipe(NamespaceSet.run(Task.exec("ip", ["-brief", "addr"])))
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const fromNetnsName = (name: string): Effect.Effect<NamespaceSet, OpenError | InvalidOptions | StaleNetnsName | PathRefused, Scope.Scope> =>
  Mount.fromNetnsName(name)

// ---------------------------------------------------------------------------------------------
// Making namespaces
// ---------------------------------------------------------------------------------------------

export type { IdMapping } from "./internal/protocol.ts"

export type { UnshareError, UnshareOptions } from "./internal/unshare.ts"

/**
 * New namespaces of `kinds`, with the set's other namespaces carried over (gonso's `Set.Unshare`).
 * The result is owned by the current Scope. The caller's thread never moves.
 *
 * - cgroup, ipc, mnt, net, time, uts: a pinned thread joins `set`, calls `unshare(2)`, opens the
 *   new namespaces and returns to its baseline, verified as in {@link run}. A new mount namespace
 *   copies the set's mounts. A thread cannot leave a time namespace it made (the kernel allows
 *   `setns` into time namespaces only to single-threaded processes), so that thread is dropped.
 * - user and pid: a pinned thread joins `set` and starts a parked child process in the new
 *   namespaces (with `clone(2)`; no JavaScript runs in the child). Every other kind in `kinds` is
 *   made with them, so a new user namespace owns them. A new user namespace's `uidMap`,
 *   `setgroups` and `gidMap` are written before the namespaces are handed out. For a new pid
 *   namespace the child is kept as its init for as long as the set (or a `dup` of it) is open, and
 *   killed when the last closes; otherwise it is killed at once.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const current = yield* NamespaceSet.current()
 *   const isolated = yield* NamespaceSet.unshare(current, ["net", "uts"])
 *   const rootless = yield* NamespaceSet.unshare(current, ["user", "net"], {
 *     uidMap: [{ containerId: 0, hostId: 1000, size: 1 }],
 *     gidMap: [{ containerId: 0, hostId: 1000, size: 1 }]
 *   })
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const unshare: {
  (kinds: ReadonlyArray<NamespaceKind>, options?: UnshareOptions): (set: NamespaceSet) => Effect.Effect<NamespaceSet, UnshareError, PinnedThreads | Scope.Scope>
  (set: NamespaceSet, kinds: ReadonlyArray<NamespaceKind>, options?: UnshareOptions): Effect.Effect<NamespaceSet, UnshareError, PinnedThreads | Scope.Scope>
} = dual(
  (args) => isNamespaceSet(args[0]),
  (set: NamespaceSet, kinds: ReadonlyArray<NamespaceKind>, options?: UnshareOptions) => internalUnshare.unshare(set, kinds, options)
)

/**
 * A new set: `set`'s namespaces, with a new mount namespace (a private copy of the set's) in which
 * `/sys` is a fresh sysfs, as `ip netns exec` makes one. sysfs shows the network namespace of
 * whoever mounted it, so in `set` itself `/sys/class/net` lists the links of the namespace that
 * mounted the host's `/sys`; in the new set it lists the set's own. The old `/sys` (with the
 * mounts under it, such as `/sys/fs/cgroup`) is detached in the new mount namespace only. The
 * result is owned by the current Scope.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const isolated = yield* NamespaceSet.unshareCurrent(["net"])
 *   const withSys = yield* NamespaceSet.withOwnSysfs(isolated)
 *   const links = yield* NamespaceSet.run(withSys, Task.exec("ls", ["/sys/class/net"]))
 *   return links.stdout // "lo\n"
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const withOwnSysfs = (
  set: NamespaceSet
): Effect.Effect<NamespaceSet, UnshareError, PinnedThreads | Scope.Scope> =>
  Effect.flatMap(unshare(set, ["mnt"]), (made) =>
    Effect.as(
      runSpec<void, SystemError | PermissionDenied | InvalidOptions>(
        "NamespaceSet.withOwnSysfs",
        made,
        { op: "mountSysfs", args: { operation: "NamespaceSet.withOwnSysfs" } },
        true
      ),
      made
    ))

/**
 * New namespaces of `kinds` for a set of just those kinds (gonso's package-level `Unshare`):
 * `unshare(current(kinds), kinds)`.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, PinnedThreads, Task } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const box = yield* NamespaceSet.unshareCurrent(["net", "uts"], { loopback: "up" })
 *   yield* box.pipe(NamespaceSet.run(Task.setHostname("box")))
 *   return yield* box.pipe(NamespaceSet.run(Task.hostname)) // "box"
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const unshareCurrent = (
  kinds: ReadonlyArray<NamespaceKind>,
  options?: UnshareOptions
): Effect.Effect<NamespaceSet, UnshareError | OpenError, PinnedThreads | Scope.Scope> =>
  Effect.flatMap(Scope.Scope, (outer) =>
    Effect.scoped(
      Effect.flatMap(current(kinds), (parent) => Scope.provide(outer)(unshare(parent, kinds, options)))
    ))
