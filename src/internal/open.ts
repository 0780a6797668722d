/**
 * Opening sets: namespace files opened, checked with `NS_GET_NSTYPE`, and adopted by a Scope, all
 * or nothing; a process's namespaces with a pidfd to join them by.
 *
 * @internal
 */
import * as fs from "node:fs"
import { Effect, type Scope } from "effect"
import * as Kind from "./kind.ts"
import type { NamespaceKind } from "./kind.ts"
import {
  PathRefused,
  InvalidKind,
  KindMismatch,
  KindNotInSet,
  NamespaceNotFound,
  NotANamespace,
  type PermissionDenied,
  ProcessNotFound,
  type SetClosed,
  type SystemError
} from "./errors.ts"
import * as libc from "./libc.ts"
import { traced } from "./observe.ts"
import type { Member } from "./protocol.ts"
import { adopt, attempt, duplicate, type NamespaceSet, type Parts, withMembers } from "./set.ts"
import { fromSyscall } from "./wire.ts"

/**
 * The errors of opening a set from paths, pids, pidfds or the current thread.
 *
 * @since 0.1.0
 * @category errors
 */
export type OpenError = InvalidKind | NotANamespace | KindMismatch | NamespaceNotFound | ProcessNotFound | PermissionDenied | SystemError

/** The kinds without repeats, in the order given; throws `InvalidKind` for a string that is none. */
export const validKinds = (operation: string, kinds: ReadonlyArray<unknown>): ReadonlyArray<NamespaceKind> => {
  for (const kind of kinds) {
    if (!Kind.isNamespaceKind(kind)) throw new InvalidKind({ operation, kind: String(kind) })
  }
  return [...new Set(kinds as ReadonlyArray<NamespaceKind>)]
}

// O_NONBLOCK and O_NOCTTY keep a path that turns out to be a FIFO or a terminal from blocking or
// being adopted; namespace files ignore both.
const O_NONBLOCK = 0o4000
const O_NOCTTY = 0o400

export const openMember = (operation: string, kind: NamespaceKind, path: string, pid?: number, noFollow = false): Member => {
  let fd: number
  try {
    fd = libc.open(path, O_NONBLOCK | O_NOCTTY | (noFollow ? libc.O_NOFOLLOW : 0))
  } catch (error) {
    if (!(error instanceof libc.SyscallFailure)) throw error
    if (noFollow && error.errno === "ELOOP") throw new PathRefused({ operation, path, reason: "it is a symbolic link" })
    if (pid !== undefined && (error.errno === "ESRCH" || !fs.existsSync(`/proc/${pid}`))) {
      throw new ProcessNotFound({ operation, pid })
    }
    if (error.errno === "ENOENT") throw new NamespaceNotFound({ path, kind })
    throw fromSyscall(error, operation, { kind, path, ...(pid === undefined ? {} : { pid }) })
  }
  try {
    let type: number
    try {
      type = libc.namespaceType(fd)
    } catch (error) {
      if (error instanceof libc.SyscallFailure && (error.errno === "ENOTTY" || error.errno === "EINVAL")) {
        throw new NotANamespace({ path, expected: kind })
      }
      throw error
    }
    const actual = Kind.fromCloneFlag(type)
    if (actual === undefined) throw new NotANamespace({ path, expected: kind })
    if (actual !== kind) throw new KindMismatch({ path, expected: kind, actual })
    return { kind, fd, ...libc.identityOfFd(fd) }
  } catch (error) {
    libc.close(fd)
    throw error
  }
}

/**
 * Opens every `[kind, path]`, all or nothing, as a set owned by the current Scope.
 *
 * For a process (`pid`), the pidfd is opened first, then the files under `/proc/PID`, and then the
 * pidfd is asked whether its process is still alive: if it is, `/proc/PID` was that process all
 * along (a pid is not reused while its process lives), so the files are the pidfd's process's,
 * not those of a process that took over a recycled pid.
 */
export const open = (
  operation: string,
  paths: ReadonlyArray<readonly [NamespaceKind, string]>,
  pid?: number
): Effect.Effect<NamespaceSet, OpenError, Scope.Scope> => openWith(operation, paths, pid, false) as Effect.Effect<NamespaceSet, OpenError, Scope.Scope>

/** {@link open}, refusing a path that is a symbolic link (`PathRefused`) instead of following it. */
export const openNoFollow = (
  operation: string,
  paths: ReadonlyArray<readonly [NamespaceKind, string]>
): Effect.Effect<NamespaceSet, OpenError | PathRefused, Scope.Scope> => openWith(operation, paths, undefined, true)

const openWith = (
  operation: string,
  paths: ReadonlyArray<readonly [NamespaceKind, string]>,
  pid: number | undefined,
  noFollow: boolean
): Effect.Effect<NamespaceSet, OpenError | PathRefused, Scope.Scope> =>
  traced(operation, () => ({ "gonso.kinds": paths.map(([kind]) => kind), ...(pid === undefined ? {} : { "gonso.pid": pid }) }), adopt(attempt<Parts, OpenError>(() => {
    const pidfd = pid === undefined ? undefined : openPidfd(operation, pid)
    const members: Array<Member> = []
    try {
      for (const [kind, path] of paths) members.push(openMember(operation, kind, path, pid, noFollow))
      if (pidfd !== undefined && !libc.pidfdAlive(pidfd.fd)) throw new ProcessNotFound({ operation, pid: pidfd.pid })
      return { members, pidfd }
    } catch (error) {
      for (const member of members) libc.close(member.fd)
      if (pidfd !== undefined) libc.close(pidfd.fd)
      throw error instanceof libc.SyscallFailure ? fromSyscall(error, operation, pid === undefined ? {} : { pid }) : error
    }
  })))

/**
 * A pidfd for `pid`, so that a thread can join all of the process's kinds with one `setns`
 * (atomically); none on kernels without `pidfd_open` (before 5.3), where the kinds are joined one
 * by one from the set's fds.
 */
export const openPidfd = (operation: string, pid: number): { fd: number; pid: number } | undefined => {
  try {
    return { fd: libc.pidfdOpen(pid), pid }
  } catch (error) {
    if (error instanceof libc.SyscallFailure) {
      if (error.errno === "ENOSYS") return undefined
      if (error.errno === "ESRCH") throw new ProcessNotFound({ operation, pid })
      throw fromSyscall(error, operation, { pid })
    }
    throw error
  }
}

export const selectKinds = (
  operation: string,
  set: NamespaceSet,
  kinds: ReadonlyArray<NamespaceKind> | undefined
): ReadonlyArray<NamespaceKind> => {
  if (kinds === undefined) return set.kinds
  const valid = validKinds(operation, kinds)
  for (const kind of valid) if (!set.kinds.includes(kind)) throw new KindNotInSet({ operation, kind })
  return valid
}

export const withValidKinds = <A, E, R>(
  operation: string,
  kinds: ReadonlyArray<NamespaceKind>,
  f: (kinds: ReadonlyArray<NamespaceKind>) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | InvalidKind, R> =>
  Effect.flatMap(attempt<ReadonlyArray<NamespaceKind>, InvalidKind>(() => validKinds(operation, kinds)), f)

/**
 * Copies of the set's fds of `kinds` (default: all its kinds), by kind, owned by the current Scope
 * (closed when it closes).
 */
export const duplicateFds = (
  operation: string,
  set: NamespaceSet,
  kinds?: ReadonlyArray<NamespaceKind>
): Effect.Effect<Partial<Record<NamespaceKind, number>>, SetClosed | InvalidKind | KindNotInSet | SystemError | PermissionDenied, Scope.Scope> =>
  withMembers(set, operation, (members) =>
    Effect.acquireRelease(
      attempt<Array<Member>, InvalidKind | KindNotInSet | SystemError | PermissionDenied>(() =>
        duplicate(operation, selectKinds(operation, set, kinds).map((kind) => members.get(kind)!))
      ),
      (copies) => Effect.sync(() => copies.forEach((copy) => libc.close(copy.fd)))
    ).pipe(Effect.map((copies) => Object.fromEntries(copies.map((copy) => [copy.kind, copy.fd]))))
  )
