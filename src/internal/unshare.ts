/**
 * Making new namespaces from a set (`NamespaceSet.unshare`): what is asked for checked before
 * anything is made, then a pinned thread inside the set makes them (`unshare(2)`, or a parked
 * `clone(2)` child for user and pid namespaces), or the util-linux helper makes a time namespace
 * with clock offsets; the set's other namespaces are carried over, and `lo` brought up if asked.
 *
 * @internal
 */
import { Effect, Scope } from "effect"
import {
  type CommandNotFound,
  type EnterError,
  type InvalidKind,
  InvalidOptions,
  type KindNotInSet,
  type NetworkError,
  type PermissionDenied,
  type SystemError,
  UnsupportedKind
} from "./errors.ts"
import type { NamespaceKind } from "./kind.ts"
import type * as libc from "./libc.ts"
import { upLoopback } from "./netlink/request.ts"
import { withValidKinds } from "./open.ts"
import type { IdMapping, Member, TaskSpec } from "./protocol.ts"
import type { PinnedThreads } from "./service.ts"
import { adopt, attempt, carry, Init, isOwnUserNamespace, type NamespaceSet, type Parts, runSpec, withMembers } from "./set.ts"
import { timeNamespaceWithOffsets } from "./timeHelper.ts"
import * as validate from "./validate.ts"

/**
 * Options of `unshare`.
 *
 * @since 0.1.0
 * @category models
 */
export interface UnshareOptions {
  /**
   * For a new mount namespace: the propagation of every mount in it. `"private"` (the default, as
   * util-linux `unshare`) keeps mounts made inside from reaching the parent namespace and back;
   * `"slave"` receives the parent's mounts but sends none; `"unchanged"` keeps the copied
   * propagation, so mounts under shared mount points propagate both ways.
   */
  readonly propagation?: "private" | "slave" | "unchanged" | undefined
  /** For a new user namespace: its uid map (default: none, so every uid shows as the overflow uid). */
  readonly uidMap?: ReadonlyArray<IdMapping> | undefined
  /** For a new user namespace: its gid map, written from these gid mappings (default: none). */
  readonly gidMap?: ReadonlyArray<IdMapping> | undefined
  /**
   * For a new user namespace: what to write to its `setgroups` file before the gid map. The kernel
   * accepts a gid map from an unprivileged writer only after `"deny"`, so that is the default when
   * this process is not root and a gid map is given; otherwise nothing is written (`"allow"`).
   */
  readonly setgroups?: "allow" | "deny" | undefined
  /**
   * For a new time namespace: clock offsets in whole seconds (negative allowed), written before
   * anything enters it. `monotonic` shifts CLOCK_MONOTONIC, `boottime` CLOCK_BOOTTIME (and so
   * `/proc/uptime`). The namespace is then made by util-linux `unshare`, which must be on PATH: only
   * a single-threaded process can write the offsets of a time namespace it made.
   */
  readonly timeOffsets?: { readonly monotonic?: number | undefined; readonly boottime?: number | undefined } | undefined
  /** For a new network namespace: `"up"` brings its `lo` up as part of making it (see `Network`). */
  readonly loopback?: "up" | undefined
}

/**
 * The errors of `unshare` and the operations built on it: entering the set, bad kinds or
 * options, a missing util-linux `unshare` for time offsets, or bringing `lo` up.
 *
 * @since 0.1.0
 * @category errors
 */
export type UnshareError = EnterError | InvalidKind | UnsupportedKind | InvalidOptions | CommandNotFound | NetworkError | KindNotInSet

const validMap = (name: string, map: ReadonlyArray<IdMapping> | undefined): string | undefined => {
  if (map === undefined) return undefined
  if (map.length === 0) return `${name} is empty`
  for (const entry of map) {
    for (const field of ["containerId", "hostId", "size"] as const) {
      const value = entry[field]
      if (!Number.isSafeInteger(value) || value < 0 || value > 0xffffffff) return `${name}: ${field} ${value} is not a valid id`
    }
    if (entry.size === 0) return `${name}: a mapping of size 0`
  }
  return undefined
}

/** Checks what unshare is asked for, before anything is made. */
const planUnshare = (
  kinds: ReadonlyArray<NamespaceKind>,
  members: ReadonlyMap<NamespaceKind, Member>,
  options: UnshareOptions | undefined
): UnsupportedKind | InvalidOptions | undefined => {
  const operation = "NamespaceSet.unshare"
  const offsets = options?.timeOffsets
  if (offsets !== undefined) {
    if (!kinds.includes("time")) {
      return new InvalidOptions({ operation, reason: "timeOffsets apply only when a time namespace is made (add \"time\" to the kinds)" })
    }
    for (const [clock, value] of Object.entries(offsets)) {
      if (value !== undefined && !Number.isSafeInteger(value)) {
        return new InvalidOptions({ operation, reason: `timeOffsets.${clock} must be a whole number of seconds, not ${value}` })
      }
    }
  }
  const withUser = kinds.includes("user")
  if (!withUser && (options?.uidMap !== undefined || options?.gidMap !== undefined || options?.setgroups !== undefined)) {
    return new InvalidOptions({ operation, reason: "uidMap, gidMap and setgroups apply only when a user namespace is made (add \"user\" to the kinds)" })
  }
  const badMap = validMap("uidMap", options?.uidMap) ?? validMap("gidMap", options?.gidMap)
  if (badMap !== undefined) return new InvalidOptions({ operation, reason: badMap })
  const user = members.get("user")
  if (user !== undefined && !isOwnUserNamespace(user)) {
    return new UnsupportedKind({
      operation,
      kind: kinds[0] ?? "user",
      reason: "the set holds a user namespace, which must own the new namespaces, and a thread of a multithreaded process cannot join it to make them; unshare from a set without \"user\", or make the user namespace and the others in one call"
    })
  }
  if (kinds.includes("time") && (withUser || kinds.includes("pid"))) {
    return new UnsupportedKind({
      operation,
      kind: "time",
      reason: "a time namespace cannot be made in the same call as a user or pid namespace; make it in a second call"
    })
  }
  return undefined
}

/** `NamespaceSet.unshare`. */
export const unshare = (
  set: NamespaceSet,
  kinds: ReadonlyArray<NamespaceKind>,
  options?: UnshareOptions
): Effect.Effect<NamespaceSet, UnshareError, PinnedThreads | Scope.Scope> =>
  validate.guard(validate.unshareOptionsProblem(options), () =>
    upLoopback(kinds, options, options?.timeOffsets === undefined ? unshareOnThread(set, kinds, options) : unshareWithTimeOffsets(set, kinds, options)))

const unshareOnThread = (set: NamespaceSet, kinds: ReadonlyArray<NamespaceKind>, options?: UnshareOptions) =>
  withValidKinds("NamespaceSet.unshare", kinds, (valid): Effect.Effect<NamespaceSet, UnshareError, PinnedThreads | Scope.Scope> =>
      withMembers(set, "NamespaceSet.unshare", (members): Effect.Effect<NamespaceSet, UnshareError, PinnedThreads | Scope.Scope> => {
        const refused = planUnshare(valid, members, options)
        if (refused !== undefined) return Effect.fail(refused)
        const byClone = valid.includes("user") || valid.includes("pid")
        const gidMapNeedsDeny = options?.gidMap !== undefined && process.geteuid?.() !== 0
        const setgroups = options?.setgroups ?? (gidMapNeedsDeny ? "deny" : undefined)
        const task: TaskSpec = byClone
          ? {
            op: "clone",
            args: {
              kinds: valid,
              keepInit: valid.includes("pid"),
              propagation: options?.propagation ?? "private",
              ...(options?.uidMap === undefined ? {} : { uidMap: options.uidMap }),
              ...(options?.gidMap === undefined ? {} : { gidMap: options.gidMap }),
              ...(setgroups === undefined ? {} : { setgroups })
            }
          }
          : { op: "unshare", args: { kinds: valid, propagation: options?.propagation ?? "private" } }
        // The new fds (and a new pid namespace's init) exist in this process from the moment the
        // thread makes them, so the whole exchange is one uninterruptible acquisition: they always
        // get an owner.
        return adopt(
          runSpec<{ members: ReadonlyArray<Member>; init?: libc.Parked }, never>("NamespaceSet.unshare", set, task, true).pipe(
            Effect.flatMap((made) =>
              attempt<Parts, SystemError | PermissionDenied>(() =>
                carry("NamespaceSet.unshare", set, set.kinds.filter((kind) => !valid.includes(kind)), {
                  members: made.members,
                  inits: made.init === undefined ? [] : [new Init(made.init)]
                })
              )
            )
          )
        )
      }))

/**
 * A time namespace with clock offsets, made by util-linux `unshare` (`--time --monotonic
 * --boottime`), which writes the offsets before anything enters the namespace and then execs a
 * placeholder whose `time_for_children` is the new namespace. Its fd is opened, then the helper is
 * killed. The other kinds, if any, are made as usual and the results combined.
 */
const unshareWithTimeOffsets = (
  set: NamespaceSet,
  kinds: ReadonlyArray<NamespaceKind>,
  options: UnshareOptions
): Effect.Effect<NamespaceSet, UnshareError, PinnedThreads | Scope.Scope> => {
  const operation = "NamespaceSet.unshare"
  const offsets = options.timeOffsets!
  // Every kind asked for is checked with every option, as without offsets, before anything is made.
  const refused = withValidKinds(operation, kinds, (valid) =>
    withMembers(set, operation, (members) => Effect.succeed(planUnshare(valid, members, options))))
  const rest = kinds.filter((kind) => kind !== "time")
  const { timeOffsets: _, ...restOptions } = options
  // One acquisition, like every unshare: the time namespace's fd is open from the moment the
  // helper is ready, and must reach the new set. The only wait is the helper's start.
  return Effect.flatMap(refused, (problem) =>
    problem !== undefined ? Effect.fail(problem) : Effect.uninterruptible(Effect.flatMap(Scope.Scope, (outer) =>
      Effect.scoped(Effect.gen(function*() {
        const base = rest.length > 0 ? yield* unshareOnThread(set, rest, restOptions) : set
        // The set is held from before the time namespace is made, so nothing can fail between
        // the fd's opening and its adoption but `carry`, which closes it then.
        return yield* Scope.provide(outer)(withMembers(base, operation, () =>
          Effect.flatMap(timeNamespaceWithOffsets(operation, offsets.monotonic ?? 0, offsets.boottime ?? 0), (time) =>
            adopt(attempt<Parts, SystemError | PermissionDenied>(() =>
              carry(operation, base, base.kinds.filter((kind) => kind !== "time"), { members: [time] })
            )))))
      }))
    )))
}
