/**
 * Typed errors across the thread boundary: a pinned thread reports failures as plain data
 * (`{ _tag, ...fields }`), and the main thread decodes them with the schemas of the error classes
 * themselves, so a field of the wrong shape is caught here, not passed on to the caller.
 *
 * @internal
 */
import { Exit, Schema } from "effect"
import * as Errors from "./errors.ts"
import type { NamespaceError } from "./errors.ts"
import type { WireError } from "./protocol.ts"
import type { SyscallFailure } from "./libc.ts"
import { syscallError, type SyscallContext } from "./failure.ts"

/** Every error a pinned thread can report, as one schema. */
const WireErrorSchema = Schema.Union(Errors.wireErrors)

const decode = Schema.decodeUnknownExit(WireErrorSchema)

export const fromWire = (wire: WireError): NamespaceError => {
  // A field left undefined is a field not given (JSON, the usual way across, drops them anyway).
  const fields = Object.fromEntries(Object.entries(wire).filter(([, value]) => value !== undefined))
  const decoded = decode(fields)
  return Exit.isSuccess(decoded)
    ? decoded.value
    : new Errors.ThreadFailure({ reason: `a pinned thread reported an error of no known shape: ${JSON.stringify(wire)}` })
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
