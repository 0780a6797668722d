/**
 * Every error gonso can fail with, as `Schema.TaggedError` classes. Each carries what a caller needs
 * to act on it (the operation, the namespace kind, the path, the pid, the errno), so that it can be
 * handled with `Effect.catchTag`.
 *
 * @since 0.1.0
 */
export {
  AddressInUse,
  CommandNotFound,
  ConnectionRefused,
  InvalidAddress,
  InvalidKind,
  InvalidOptions,
  KindMismatch,
  KindNotInSet,
  LinkExists,
  LinkNotFound,
  Misplaced,
  ModuleTaskError,
  NamespaceNotFound,
  NetlinkError,
  NetworkPermissionDenied,
  NotANamespace,
  OutputTooLarge,
  PathRefused,
  PayloadTooLarge,
  PermissionDenied,
  ProcessMoved,
  ProcessNotFound,
  SetClosed,
  StaleNetnsName,
  SystemError,
  ThreadFailure,
  Unreachable,
  UnsupportedKind,
  UnsupportedRuntime,
  UserNamespaceNotEnterable
} from "./internal/errors.ts"
export type { EnterError, NamespaceError, NetworkError } from "./internal/errors.ts"
