/**
 * The main side of persistence: bind mounts of a set's namespaces made here or, with
 * `mountNamespace`, by a pinned thread inside another mount namespace, and the names of network
 * namespaces in /run/netns. The filesystem work itself is in `persist.ts`, which both sides run.
 *
 * @internal
 */
import * as fs from "node:fs"
import { Effect, Predicate, Schedule, type Scope } from "effect"
import type { NamespaceKind } from "./kind.ts"
import {
  InvalidOptions,
  type InvalidKind,
  KindNotInSet,
  type PathRefused,
  type PermissionDenied,
  type SetClosed,
  StaleNetnsName,
  type SystemError
} from "./errors.ts"
import type { PinnedThreads } from "./service.ts"
import * as libc from "./libc.ts"
import * as validate from "./validate.ts"
import { openNoFollow, type OpenError } from "./open.ts"
import * as persist from "./persist.ts"
import type { TaskSpec, WireError } from "./protocol.ts"
import { attempt, type EnterError, impl, type NamespaceSet, runSpec, withMembers } from "./set.ts"
import { fromSyscall, fromWire } from "./wire.ts"

/**
 * Options of `mount` and the functions like it.
 *
 * @since 0.1.0
 * @category models
 */
export interface MountOptions {
  /**
   * The mount namespace to make (or remove) the mounts in, as a set holding it: a pinned thread
   * joins the set and mounts there. Default: this process's own mount namespace.
   */
  readonly mountNamespace?: NamespaceSet | undefined
}

/**
 * The errors of mounting, persisting and unmounting namespaces.
 *
 * @since 0.1.0
 * @category errors
 */
export type MountError =
  | SetClosed
  | KindNotInSet
  | InvalidKind
  | InvalidOptions
  | PathRefused
  | PermissionDenied
  | SystemError
  | EnterError

/** Runs a persistence step here, or on a pinned thread inside `options.mountNamespace`. */
const inMountNamespace = <A>(
  operation: string,
  options: MountOptions | undefined,
  task: TaskSpec,
  here: () => A
): Effect.Effect<A, MountError, PinnedThreads> =>
  options?.mountNamespace === undefined
    ? attempt<A, MountError>(() => {
      try {
        return here()
      } catch (error) {
        throw typed(operation, error)
      }
    })
    : runSpec<A, MountError>(operation, options.mountNamespace, task, true)

/**
 * What this process's mounts made (target files, directories), by mount namespace and target:
 * `unmount` removes only that, so a file or directory that was there before is never deleted.
 */
const made = new Map<string, persist.Made>()
let ownMountNamespace: string | undefined
const madeKey = (options: MountOptions | undefined, target: string): string => {
  const mnt = options?.mountNamespace === undefined ? undefined : impl(options.mountNamespace).members.get("mnt")
  const namespace = mnt === undefined
    ? (ownMountNamespace ??= (() => {
      const stats = fs.statSync("/proc/self/ns/mnt")
      return `${stats.dev}:${stats.ino}`
    })())
    : `${mnt.dev}:${mnt.ino}`
  return `${namespace} ${target}`
}

export const mountTargets = (
  operation: string,
  set: NamespaceSet,
  targets: ReadonlyArray<readonly [NamespaceKind, string]>,
  options: MountOptions | undefined,
  exclusive = false
): Effect.Effect<void, MountError, PinnedThreads> =>
  withMembers(set, operation, (members) =>
    Effect.suspend(() => {
      for (const [kind] of targets) if (!members.has(kind)) return Effect.fail(new KindNotInSet({ operation, kind }))
      const mounts = targets.map(([kind, target]) => ({ kind, fd: members.get(kind)!.fd, target }))
      return inMountNamespace(operation, options, { op: "mount", args: { operation, mounts, exclusive } }, () =>
        persist.mountAll(operation, mounts, exclusive)).pipe(
          Effect.map((results) => {
            for (const result of results) made.set(madeKey(options, result.target), result)
          })
        )
    }))

const unmountPaths = (
  operation: string,
  paths: ReadonlyArray<string>,
  options: MountOptions | undefined
): Effect.Effect<void, MountError, PinnedThreads> =>
  Effect.suspend(() => {
    const targets = paths.map((path) => {
      const what = made.get(madeKey(options, path))
      return { path, file: what?.file ?? false, dirs: what?.dirs ?? [] }
    })
    return inMountNamespace(operation, options, { op: "unmount", args: { operation, targets } }, () =>
      persist.unmountAll(operation, targets)).pipe(
        Effect.tap(() => Effect.sync(() => paths.forEach((path) => made.delete(madeKey(options, path)))))
      )
  })

export const dirTargets = (set: NamespaceSet, dir: string) =>
  set.kinds.map((kind) => [kind, `${dir.replace(/\/+$/, "")}/${kind}`] as const)

/** What persistence code on the main thread threw, as the typed error it stands for. */
const typed = (operation: string, error: unknown): unknown => {
  if (error instanceof libc.SyscallFailure) return fromSyscall(error, operation)
  return Predicate.hasProperty(error, "_tag") && !(error instanceof Error) ? fromWire(error as WireError) : error
}

export const validNetnsName = (operation: string, name: string): InvalidOptions | undefined =>
  validate.cStrings(operation, [["name", name]]) ??
    (name === "" || name === "." || name === ".." || name.includes("/")
      ? new InvalidOptions({ operation, reason: `${JSON.stringify(name)} is not a valid network namespace name` })
      : undefined)

export const mount = (set: NamespaceSet, dir: string, options?: MountOptions): Effect.Effect<void, MountError, PinnedThreads> =>
  Effect.uninterruptible(mountTargets("NamespaceSet.mount", set, dirTargets(set, dir), options))

export const mountKind = (
  set: NamespaceSet,
  kind: NamespaceKind,
  file: string,
  options?: MountOptions
): Effect.Effect<void, MountError, PinnedThreads> =>
  Effect.uninterruptible(mountTargets("NamespaceSet.mountKind", set, [[kind, file]], options))

export const unmount = (paths: ReadonlyArray<string>, options?: MountOptions): Effect.Effect<void, MountError, PinnedThreads> =>
  Effect.uninterruptible(unmountPaths("NamespaceSet.unmount", paths, options))

/** Whether a failure is the process running out of fds or memory for a moment (EMFILE, ENFILE, ENOMEM). */
const exhausted = (error: MountError): boolean =>
  error._tag === "SystemError" && (error.errno === "EMFILE" || error.errno === "ENFILE" || error.errno === "ENOMEM")

/**
 * A Scope's unmount: what it made must go, and checking a target takes fds. Out of fds (or
 * memory), it tries again for up to ten seconds (50 ms apart, then more); any other failure, or
 * one that lasts, is logged as a warning with its error, and what it could not remove is left.
 */
const release = (operation: string, paths: ReadonlyArray<string>, options: MountOptions | undefined) =>
  unmountPaths(operation, paths, options).pipe(
    Effect.retry({ while: exhausted, schedule: Schedule.exponential("50 millis", 1.5).pipe(Schedule.upTo({ duration: "10 seconds" })) }),
    Effect.catch((error) =>
      Effect.logWarning(`gonso: ${operation} could not remove what it made when its Scope closed`).pipe(
        Effect.annotateLogs({ paths, error: error.message })
      )
    )
  )

export const mountScoped = (
  set: NamespaceSet,
  dir: string,
  options?: MountOptions
): Effect.Effect<void, MountError, PinnedThreads | Scope.Scope> => {
  const targets = dirTargets(set, dir)
  return Effect.acquireRelease(
    mountTargets("NamespaceSet.mountScoped", set, targets, options),
    () => release("NamespaceSet.mountScoped", targets.map(([, target]) => target), options)
  )
}

export const mountKindScoped = (
  set: NamespaceSet,
  kind: NamespaceKind,
  file: string,
  options?: MountOptions
): Effect.Effect<void, MountError, PinnedThreads | Scope.Scope> =>
  Effect.acquireRelease(
    mountTargets("NamespaceSet.mountKindScoped", set, [[kind, file]], options),
    () => release("NamespaceSet.mountKindScoped", [file], options)
  )

export const persistNetns = (
  set: NamespaceSet,
  name: string
): Effect.Effect<string, MountError, PinnedThreads | Scope.Scope> => {
  const operation = "NamespaceSet.persistNetns"
  const invalid = validNetnsName(operation, name)
  if (invalid !== undefined) return Effect.fail(invalid)
  const target = `${persist.NETNS_DIR}/${name}`
  return Effect.acquireRelease(
    Effect.andThen(
      attempt<void, MountError>(() => {
        try {
          persist.prepareNetnsDir(operation)
        } catch (error) {
          throw typed(operation, error)
        }
      }),
      mountTargets(operation, set, [["net", target]], undefined, true)
    ).pipe(Effect.as(target)),
    () => release(operation, [target], undefined)
  )
}

export const fromNetnsName = (
  name: string
): Effect.Effect<NamespaceSet, OpenError | InvalidOptions | StaleNetnsName | PathRefused, Scope.Scope> => {
  const operation = "NamespaceSet.fromNetnsName"
  const invalid = validNetnsName(operation, name)
  if (invalid !== undefined) return Effect.fail(invalid)
  const path = `${persist.NETNS_DIR}/${name}`
  // A name is never a symbolic link that root would follow elsewhere.
  return openNoFollow(operation, [["net", path]]).pipe(
    Effect.catchTag("NotANamespace", (error) =>
      Effect.fail(persist.isStaleName(path) ? new StaleNetnsName({ operation, name, path }) : error))
  )
}
