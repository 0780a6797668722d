/**
 * Typed errors across the thread boundary: a pinned thread reports failures as plain data
 * (`{ _tag, ...fields }`) and the main thread rebuilds the error class of that tag.
 *
 * @internal
 */
import * as Errors from "../NamespaceError.ts"
import type { NamespaceError } from "../NamespaceError.ts"
import type { WireError } from "./protocol.ts"
import { SyscallFailure } from "./libc.ts"
import type { NamespaceKind } from "../NamespaceKind.ts"

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
  context: { readonly kind?: NamespaceKind; readonly path?: string; readonly pid?: number } = {}
): Errors.PermissionDenied | Errors.SystemError => {
  const fields = { operation, call: failure.call, errno: failure.errno, code: failure.code, ...context }
  return failure.errno === "EPERM" || failure.errno === "EACCES"
    ? new Errors.PermissionDenied(fields)
    : new Errors.SystemError(fields)
}
