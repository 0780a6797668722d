/**
 * The main side of persistence: bind mounts of a set's namespaces made here or, with
 * `mountNamespace`, by a pinned thread inside another mount namespace, and the names of network
 * namespaces in /run/netns. The filesystem work itself is in `persist.ts`, which both sides run.
 *
 * @internal
 */
import { Effect, Predicate, type Scope } from "effect"
import type { NamespaceKind } from "../NamespaceKind.ts"
import {
  InvalidOptions,
  type InvalidKind,
  KindNotInSet,
  type PermissionDenied,
  type SetClosed,
  type SystemError
} from "../NamespaceError.ts"
import type { MountOptions } from "../NamespaceSet.ts"
import type { PinnedThreads } from "../PinnedThreads.ts"
import * as libc from "./libc.ts"
import { open, type OpenError } from "./open.ts"
import * as persist from "./persist.ts"
import type { TaskSpec, WireError } from "./protocol.ts"
import { attempt, type EnterError, type NamespaceSet, runSpec, withMembers } from "./set.ts"
import { fromSyscall, fromWire } from "./wire.ts"

export type MountError = SetClosed | KindNotInSet | InvalidKind | InvalidOptions | PermissionDenied | SystemError | EnterError

/** Runs a persistence step here, or on a pinned thread inside `options.mountNamespace`. */
export const inMountNamespace = (
  operation: string,
  options: MountOptions | undefined,
  op: "mount" | "unmount",
  args: unknown,
  here: () => void
): Effect.Effect<void, MountError, PinnedThreads> =>
  options?.mountNamespace === undefined
    ? attempt<void, MountError>(() => {
      try {
        here()
      } catch (error) {
        if (error instanceof libc.SyscallFailure) throw fromSyscall(error, operation)
        throw Predicate.hasProperty(error, "_tag") && !(error instanceof Error) ? fromWire(error as WireError) : error
      }
    })
    : runSpec<void, MountError>(operation, options.mountNamespace, { op, args } as TaskSpec, true)

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
      return inMountNamespace(operation, options, "mount", { operation, mounts, exclusive }, () =>
        persist.mountAll(operation, mounts, exclusive))
    }))

export const dirTargets = (set: NamespaceSet, dir: string) =>
  set.kinds.map((kind) => [kind, `${dir.replace(/\/+$/, "")}/${kind}`] as const)

export const validNetnsName = (operation: string, name: string): InvalidOptions | undefined =>
  name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0")
    ? new InvalidOptions({ operation, reason: `${JSON.stringify(name)} is not a valid network namespace name` })
    : undefined

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
  Effect.uninterruptible(
    inMountNamespace("NamespaceSet.unmount", options, "unmount", { targets: paths }, () => paths.forEach(persist.unmountOne))
  )

export const mountScoped = (
  set: NamespaceSet,
  dir: string,
  options?: MountOptions
): Effect.Effect<void, MountError, PinnedThreads | Scope.Scope> => {
  const targets = dirTargets(set, dir)
  return Effect.acquireRelease(
    mountTargets("NamespaceSet.mountScoped", set, targets, options),
    () => Effect.ignore(unmount(targets.map(([, target]) => target), options))
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
    () => Effect.ignore(unmount([file], options))
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
          throw fromWire(error as WireError)
        }
      }),
      mountTargets(operation, set, [["net", target]], undefined, true)
    ).pipe(Effect.as(target)),
    () => Effect.ignore(unmount([target]))
  )
}

export const fromNetnsName = (name: string): Effect.Effect<NamespaceSet, OpenError | InvalidOptions, Scope.Scope> => {
  const invalid = validNetnsName("NamespaceSet.fromNetnsName", name)
  return invalid !== undefined ? Effect.fail(invalid) : open("NamespaceSet.fromNetnsName", [["net", `${persist.NETNS_DIR}/${name}`]])
}
