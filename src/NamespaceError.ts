/**
 * Every error gonso can fail with, as `Schema.TaggedError` classes. Each carries what a caller needs
 * to act on it (the operation, the namespace kind, the path, the pid, the errno), so that it can be
 * handled with `Effect.catchTag`.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

const Kind = Schema.Literals(["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"])

/** Where a failed system call happened: each field is present when it applies. */
const syscallFields = {
  /** The gonso operation, e.g. `"NamespaceSet.fromPath"`. */
  operation: Schema.String,
  /** The libc call that failed, e.g. `"setns"`. */
  call: Schema.String,
  /** The errno's name, e.g. `"EPERM"`. */
  errno: Schema.String,
  /** The errno's number. */
  code: Schema.Number,
  kind: Schema.optionalKey(Kind),
  path: Schema.optionalKey(Schema.String),
  pid: Schema.optionalKey(Schema.Number),
  /** For sockets: the address and port. */
  host: Schema.optionalKey(Schema.String),
  port: Schema.optionalKey(Schema.Number)
}

/**
 * The caller lacks the privilege for a namespace operation (`EPERM` or `EACCES`): most kinds need
 * root or `CAP_SYS_ADMIN`. This is usually the first error a user meets, so it has its own tag.
 *
 * @since 0.1.0
 */
export class PermissionDenied extends Schema.TaggedError<PermissionDenied>()("PermissionDenied", syscallFields) {
  override get message(): string {
    return `${this.operation}: ${this.call} failed with ${this.errno}${describeTarget(this)}: not privileged (root or CAP_SYS_ADMIN is needed)`
  }
}

/**
 * Any other failed system call.
 *
 * @since 0.1.0
 */
export class SystemError extends Schema.TaggedError<SystemError>()("SystemError", syscallFields) {
  override get message(): string {
    return `${this.operation}: ${this.call} failed with ${this.errno} (${this.code})${describeTarget(this)}`
  }
}

/**
 * A string that is not one of the eight namespace kinds.
 *
 * @since 0.1.0
 */
export class InvalidKind extends Schema.TaggedError<InvalidKind>()("InvalidKind", {
  operation: Schema.String,
  kind: Schema.String
}) {
  override get message(): string {
    return `${this.operation}: ${JSON.stringify(this.kind)} is not a namespace kind (cgroup, ipc, mnt, net, pid, time, user, uts)`
  }
}

/**
 * A path that exists but is not a namespace file.
 *
 * @since 0.1.0
 */
export class NotANamespace extends Schema.TaggedError<NotANamespace>()("NotANamespace", {
  path: Schema.String,
  expected: Kind
}) {
  override get message(): string {
    return `${this.path} is not a namespace file (expected a ${this.expected} namespace)`
  }
}

/**
 * A namespace file of another kind than the one asked for.
 *
 * @since 0.1.0
 */
export class KindMismatch extends Schema.TaggedError<KindMismatch>()("KindMismatch", {
  path: Schema.String,
  expected: Kind,
  actual: Kind
}) {
  override get message(): string {
    return `${this.path} is a ${this.actual} namespace, not a ${this.expected} namespace`
  }
}

/**
 * A namespace file that does not exist.
 *
 * @since 0.1.0
 */
export class NamespaceNotFound extends Schema.TaggedError<NamespaceNotFound>()("NamespaceNotFound", {
  path: Schema.String,
  kind: Kind
}) {
  override get message(): string {
    return `no ${this.kind} namespace file at ${this.path}`
  }
}

/**
 * A pid with no living process behind it.
 *
 * @since 0.1.0
 */
export class ProcessNotFound extends Schema.TaggedError<ProcessNotFound>()("ProcessNotFound", {
  operation: Schema.String,
  pid: Schema.Number
}) {
  override get message(): string {
    return `${this.operation}: no process with pid ${this.pid}`
  }
}

/**
 * A namespace set used after the Scope that owned it closed. Its fds are gone; gonso never lets a
 * closed set reach a system call, where its fd numbers may already name someone else's files.
 *
 * @since 0.1.0
 */
export class SetClosed extends Schema.TaggedError<SetClosed>()("SetClosed", {
  operation: Schema.String
}) {
  override get message(): string {
    return `${this.operation}: the namespace set was used after its Scope closed`
  }
}

/**
 * A kind asked of a set that does not hold it.
 *
 * @since 0.1.0
 */
export class KindNotInSet extends Schema.TaggedError<KindNotInSet>()("KindNotInSet", {
  operation: Schema.String,
  kind: Kind
}) {
  override get message(): string {
    return `${this.operation}: the set holds no ${this.kind} namespace`
  }
}

/**
 * A set holding a user namespace cannot be entered by a thread: the kernel refuses `setns` into
 * a user namespace from a multithreaded process, and every Node process is multithreaded.
 *
 * @since 0.1.0
 */
export class UserNamespaceNotEnterable extends Schema.TaggedError<UserNamespaceNotEnterable>()(
  "UserNamespaceNotEnterable",
  { operation: Schema.String }
) {
  override get message(): string {
    return `${this.operation}: a set holding a user namespace cannot be entered by a thread of a multithreaded process; run Task.exec in it (its command joins through nsenter), or use NamespaceSet.dup(set, kinds) without "user" to enter the others`
  }
}

/**
 * An operation this version cannot do for a kind, with the reason.
 *
 * @since 0.1.0
 */
export class UnsupportedKind extends Schema.TaggedError<UnsupportedKind>()("UnsupportedKind", {
  operation: Schema.String,
  kind: Kind,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.operation}: ${this.kind}: ${this.reason}`
  }
}

/**
 * Options that do not fit the operation (id maps without a new user namespace, an empty map, ...).
 *
 * @since 0.1.0
 */
export class InvalidOptions extends Schema.TaggedError<InvalidOptions>()("InvalidOptions", {
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.operation}: ${this.reason}`
  }
}

const endpoint = {
  operation: Schema.String,
  host: Schema.optionalKey(Schema.String),
  port: Schema.optionalKey(Schema.Number),
  path: Schema.optionalKey(Schema.String)
}

const describeEndpoint = (self: { host?: string | undefined; port?: number | undefined; path?: string | undefined }) =>
  self.path ?? `${self.host?.includes(":") ? `[${self.host}]` : self.host}:${self.port}`

/**
 * A socket address (inside the set's network namespace) that another socket already holds.
 *
 * @since 0.1.0
 */
export class AddressInUse extends Schema.TaggedError<AddressInUse>()("AddressInUse", endpoint) {
  override get message(): string {
    return `${this.operation}: ${describeEndpoint(this)} is already in use in this network namespace`
  }
}

/**
 * Nothing listens at the address (`ECONNREFUSED`), as seen from inside the set.
 *
 * @since 0.1.0
 */
export class ConnectionRefused extends Schema.TaggedError<ConnectionRefused>()("ConnectionRefused", endpoint) {
  override get message(): string {
    return `${this.operation}: connection to ${describeEndpoint(this)} refused`
  }
}

/**
 * No route to the address from inside the set (`ENETUNREACH`, `EHOSTUNREACH`, `ETIMEDOUT`).
 *
 * @since 0.1.0
 */
export class Unreachable extends Schema.TaggedError<Unreachable>()("Unreachable", { ...endpoint, errno: Schema.String }) {
  override get message(): string {
    return `${this.operation}: ${describeEndpoint(this)} is unreachable from this network namespace (${this.errno})`
  }
}

/**
 * A function run by `Task.module` threw (or rejected).
 *
 * @since 0.1.0
 */
export class ModuleTaskError extends Schema.TaggedError<ModuleTaskError>()("ModuleTaskError", {
  url: Schema.String,
  exportName: Schema.String,
  /** The thrown error's `name` (or `_tag`, for tagged errors). */
  name: Schema.String,
  /** What was thrown, as it came across the thread boundary. */
  error: Schema.Unknown
}) {
  override get message(): string {
    const error = this.error as { message?: unknown } | undefined
    const detail = typeof error?.message === "string" ? error.message : String(this.error)
    return `${this.url}#${this.exportName} threw ${this.name}: ${detail}`
  }
}

/**
 * `Task.exec` of a command that is not there (or not executable).
 *
 * @since 0.1.0
 */
export class CommandNotFound extends Schema.TaggedError<CommandNotFound>()("CommandNotFound", {
  command: Schema.String,
  errno: Schema.String
}) {
  override get message(): string {
    return `cannot run ${JSON.stringify(this.command)}: ${this.errno}`
  }
}

/**
 * A pinned thread could not be started, or died under a task.
 *
 * @since 0.1.0
 */
export class ThreadFailure extends Schema.TaggedError<ThreadFailure>()("ThreadFailure", {
  reason: Schema.String,
  tid: Schema.optionalKey(Schema.Number)
}) {
  override get message(): string {
    return `pinned thread${this.tid === undefined ? "" : ` ${this.tid}`}: ${this.reason}`
  }
}

/**
 * A task's input or output is larger than the channel to a pinned thread can carry.
 *
 * @since 0.1.0
 */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  bytes: Schema.Number,
  limit: Schema.Number
}) {
  override get message(): string {
    return `a task message of ${this.bytes} bytes exceeds the channel's ${this.limit} bytes`
  }
}

/**
 * A filesystem path gonso refuses to act on, and leaves as it is: a symbolic link where one would
 * be followed (as the target or as a directory on the way to it), a target that is not a file, or,
 * for `unmount`, something that is not a namespace mount.
 *
 * @since 0.1.0
 */
export class PathRefused extends Schema.TaggedError<PathRefused>()("PathRefused", {
  operation: Schema.String,
  path: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.operation}: ${this.path}: ${this.reason}`
  }
}

/**
 * A network namespace name whose `/run/netns/NAME` is an empty file with no namespace mounted on
 * it: what a program killed between creating the name and binding it leaves (iproute2 has the
 * same window). `ip netns delete NAME` removes it; `persistNetns` takes it over.
 *
 * @since 0.1.0
 */
export class StaleNetnsName extends Schema.TaggedError<StaleNetnsName>()("StaleNetnsName", {
  operation: Schema.String,
  name: Schema.String,
  path: Schema.String
}) {
  override get message(): string {
    return `${this.operation}: ${this.path} is an empty file with no network namespace mounted on it (left by a program killed while naming it); remove it with \`ip netns delete ${this.name}\``
  }
}

/**
 * A set opened from a process (`fromPid`) is joined through the process's pidfd, and the process
 * is no longer in the namespace of `kind` that the set holds: it moved (`setns`, `unshare`), or
 * the pid now names another process. Nothing was joined. `NamespaceSet.dup(set)` joins the set's
 * own namespaces from its fds.
 *
 * @since 0.1.0
 */
export class ProcessMoved extends Schema.TaggedError<ProcessMoved>()("ProcessMoved", {
  operation: Schema.String,
  pid: Schema.Number,
  kind: Kind
}) {
  override get message(): string {
    return `${this.operation}: process ${this.pid} is no longer in the ${this.kind} namespace the set holds (it moved, or the pid was reused); NamespaceSet.dup(set) joins the set's namespaces by their fds`
  }
}

/**
 * The errors of joining a set on a pinned thread.
 *
 * @since 0.1.0
 */
export type EnterError =
  | SetClosed
  | UserNamespaceNotEnterable
  | ProcessNotFound
  | ProcessMoved
  | PermissionDenied
  | SystemError
  | ThreadFailure
  | PayloadTooLarge

/**
 * Any error gonso fails with.
 *
 * @since 0.1.0
 */
export type NamespaceError =
  | PermissionDenied
  | SystemError
  | InvalidKind
  | NotANamespace
  | KindMismatch
  | NamespaceNotFound
  | ProcessNotFound
  | SetClosed
  | KindNotInSet
  | UserNamespaceNotEnterable
  | UnsupportedKind
  | InvalidOptions
  | AddressInUse
  | ConnectionRefused
  | Unreachable
  | ModuleTaskError
  | CommandNotFound
  | ThreadFailure
  | PayloadTooLarge
  | PathRefused
  | StaleNetnsName
  | ProcessMoved

function describeTarget(self: { kind?: string; path?: string; pid?: number; host?: string; port?: number }): string {
  const parts: Array<string> = []
  if (self.host !== undefined) parts.push(`address ${describeEndpoint({ host: self.host, port: self.port })}`)
  if (self.kind !== undefined) parts.push(`kind ${self.kind}`)
  if (self.path !== undefined) parts.push(`path ${self.path}`)
  if (self.pid !== undefined) parts.push(`pid ${self.pid}`)
  return parts.length === 0 ? "" : ` (${parts.join(", ")})`
}
