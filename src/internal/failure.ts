/**
 * Failed system calls as plain data, for code that runs on a pinned thread (or shares code with
 * one): `{ _tag, operation, call, errno, code, ... }`, rebuilt as the typed error on the main side.
 *
 * @internal
 */
import type { NamespaceKind } from "./kind.ts"
import * as libc from "./libc.ts"
import type { PermissionDenied, SystemError } from "./errors.ts"

/** A failed call as it crosses from a thread: `PermissionDenied` or `SystemError`, encoded. */
export type SyscallWire = (typeof PermissionDenied)["Encoded"] | (typeof SystemError)["Encoded"]

/** What a failure was about, beyond the call itself. */
export interface SyscallContext {
  readonly kind?: NamespaceKind
  readonly path?: string
  readonly pid?: number
  readonly host?: string
  readonly port?: number
}

/**
 * The errnos that mean the caller lacks a privilege: a failure with one of them is
 * `PermissionDenied` (for rtnetlink, `NetworkPermissionDenied`), any other `SystemError`. The one
 * place this is decided.
 */
export const isPermissionErrno = (errno: string): boolean => errno === "EPERM" || errno === "EACCES"

/** The tag of a failed call's error, by its errno. */
const tagOf = (errno: string): "PermissionDenied" | "SystemError" => isPermissionErrno(errno) ? "PermissionDenied" : "SystemError"

/**
 * The errnos with which starting a command (`posix_spawnp`, `execvp`) says there is no such
 * command it may run: `CommandNotFound`.
 */
export const isCommandNotFoundErrno = (errno: string): boolean => errno === "ENOENT" || errno === "EACCES" || errno === "ENOTDIR"

/**
 * A helper program (util-linux `unshare`, say) that failed, as `PermissionDenied` or `SystemError`
 * data: the errno is the one whose text it printed, if any (no errno is invented), and `detail`
 * carries what it printed and how it ended.
 */
export const helperError = (
  operation: string,
  call: string,
  stderr: string,
  ending: { readonly code: number | null; readonly signal: string | null },
  context: SyscallContext = {}
): SyscallWire => {
  const found = libc.errnoInMessage(stderr)
  const errno = found?.errno ?? "UNKNOWN"
  const how = ending.signal !== null ? `was killed by ${ending.signal}` : `exited with status ${ending.code}`
  const said = stderr.trim()
  return {
    _tag: tagOf(errno),
    operation,
    call,
    errno,
    code: found?.code ?? 0,
    ...context,
    detail: said === "" ? `${call} ${how}, printing nothing` : `${call} ${how}: ${said}`
  }
}

/**
 * A failed libc call (`SyscallFailure`) or Node fs call (an `ErrnoException`) as `PermissionDenied`
 * (EPERM, EACCES) or `SystemError` data; anything else is rethrown.
 */
export const syscallError = (
  operation: string,
  error: unknown,
  context: SyscallContext = {}
): SyscallWire => {
  if (error instanceof libc.SyscallFailure) {
    return {
      _tag: tagOf(error.errno),
      operation,
      call: error.call,
      errno: error.errno,
      code: error.code,
      ...context
    }
  }
  const nodeError = error as NodeJS.ErrnoException
  if (typeof nodeError?.code === "string" && typeof nodeError.errno === "number") {
    return {
      _tag: tagOf(nodeError.code),
      operation,
      call: nodeError.syscall ?? "unknown",
      errno: nodeError.code,
      code: Math.abs(nodeError.errno),
      ...context
    }
  }
  throw error
}

