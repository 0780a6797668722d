/**
 * Typed errors across the thread boundary: a pinned thread reports failures as plain data
 * (`{ _tag, ...fields }`) and the main thread rebuilds the error class of that tag.
 *
 * @internal
 */
import * as Errors from "../NamespaceError.ts"
import type { NamespaceError } from "../NamespaceError.ts"
import type { WireError } from "./protocol.ts"
import type { SyscallFailure } from "./libc.ts"
import { syscallError, type SyscallContext } from "./failure.ts"

const classes: Record<string, new(fields: any) => NamespaceError> = {
  PermissionDenied: Errors.PermissionDenied,
  SystemError: Errors.SystemError,
  ProcessNotFound: Errors.ProcessNotFound,
  InvalidOptions: Errors.InvalidOptions,
  AddressInUse: Errors.AddressInUse,
  CommandNotFound: Errors.CommandNotFound,
  ModuleTaskError: Errors.ModuleTaskError,
  PayloadTooLarge: Errors.PayloadTooLarge,
  ThreadFailure: Errors.ThreadFailure
}

export const fromWire = (wire: WireError): NamespaceError => {
  const { _tag, ...fields } = wire
  const Class = classes[_tag]
  if (Class === undefined) return new Errors.ThreadFailure({ reason: `unexpected error from a pinned thread: ${JSON.stringify(wire)}` })
  return new Class(fields)
}

/** A failed libc call on the main thread, as the typed error a caller can act on. */
export const fromSyscall = (
  failure: SyscallFailure,
  operation: string,
  context: SyscallContext = {}
): Errors.PermissionDenied | Errors.SystemError =>
  fromWire(syscallError(operation, failure, context)) as Errors.PermissionDenied | Errors.SystemError

/**
 * An error Node reported on the main thread (a socket's or a stream's), as the typed error a caller
 * can act on; fields Node left out are filled in (`call`, then EIO).
 */
export const fromNodeError = (
  error: NodeJS.ErrnoException,
  operation: string,
  call: string
): Errors.PermissionDenied | Errors.SystemError =>
  fromWire(syscallError(operation, {
    code: error.code ?? "EIO",
    errno: error.errno ?? -5,
    syscall: error.syscall ?? call
  })) as Errors.PermissionDenied | Errors.SystemError
