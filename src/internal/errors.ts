/**
 * Every error gonso can fail with, as `Schema.TaggedError` classes: their one definition, with the
 * doc comments of the API (the public `NamespaceError` module re-exports them).
 *
 * @internal
 */
import * as fs from "node:fs"
import { Schema } from "effect"
import type { NamespaceKind } from "./kind.ts"

const Kind = Schema.Literals(["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] as const satisfies ReadonlyArray<NamespaceKind>)

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
  port: Schema.optionalKey(Schema.Number),
  /** What is known beyond the errno: a helper's own message, or what the errno means here. */
  detail: Schema.optionalKey(Schema.String)
}

/**
 * Whether this process has CAP_SYS_ADMIN in its effective set (bit 21 of `CapEff`): then a refusal
 * is not for want of privilege, and the message must not say it is.
 */
const hasSysAdmin = (() => {
  let known: boolean | undefined
  return (): boolean => {
    if (known !== undefined) return known
    try {
      const effective = fs.readFileSync("/proc/self/status", "utf8").match(/^CapEff:\s*([0-9a-f]+)$/m)?.[1]
      known = effective !== undefined && (BigInt(`0x${effective}`) & (1n << 21n)) !== 0n
    } catch {
      known = process.geteuid?.() === 0
    }
    return known
  }
})()

const withDetail = (self: { detail?: string | undefined }) => self.detail === undefined ? "" : `: ${self.detail}`

/**
 * The caller lacks the privilege for a namespace operation (`EPERM` or `EACCES`): most kinds need
 * root or `CAP_SYS_ADMIN`. This is usually the first error a user meets, so it has its own tag.
 *
 * @since 0.1.0
 * @category errors
 */
export class PermissionDenied extends Schema.TaggedError<PermissionDenied>()("PermissionDenied", syscallFields) {
  override get message(): string {
    const why = hasSysAdmin()
      ? "denied although this process has CAP_SYS_ADMIN (the target belongs to a user namespace that grants this process nothing, or a security policy refused it: ptrace access rules, Yama, AppArmor, SELinux, seccomp)"
      : "not privileged (root or CAP_SYS_ADMIN is needed)"
    return `${this.operation}: ${this.call} failed with ${this.errno}${describeTarget(this)}${withDetail(this)}: ${why}`
  }
}

/**
 * Any other failed system call.
 *
 * @since 0.1.0
 * @category errors
 */
export class SystemError extends Schema.TaggedError<SystemError>()("SystemError", syscallFields) {
  override get message(): string {
    return `${this.operation}: ${this.call} failed with ${this.errno} (${this.code})${describeTarget(this)}${withDetail(this)}`
  }
}

/**
 * A string that is not one of the eight namespace kinds.
 *
 * @since 0.1.0
 * @category errors
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
 * @category errors
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
 * @category errors
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
 * @category errors
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
 * @category errors
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
 * @category errors
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
 * @category errors
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
 * A set holding a user namespace other than the process's own cannot be entered by a thread: the
 * kernel refuses `setns` into a user namespace from a multithreaded process, and every Node
 * process is multithreaded.
 *
 * @since 0.1.0
 * @category errors
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
 * @category errors
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
 * What this JavaScript runtime cannot do for gonso (`runtime` is `"bun 1.4.5"`, say): `missing`
 * says what is missing. Made at the layer for what every thread needs, and by an operation that
 * needs what only some runtimes have (Node's adoption of a socket fd by `node:net`, say); gonso
 * never falls back to doing it in the host's namespaces. docs/runtimes.md has the table.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnsupportedRuntime extends Schema.TaggedError<UnsupportedRuntime>()("UnsupportedRuntime", {
  operation: Schema.String,
  runtime: Schema.String,
  missing: Schema.String
}) {
  override get message(): string {
    return `${this.operation}: not supported on ${this.runtime}: ${this.missing}`
  }
}

/**
 * Options that do not fit the operation (id maps without a new user namespace, an empty map, ...).
 *
 * @since 0.1.0
 * @category errors
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
 * @category errors
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
 * @category errors
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
 * @category errors
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
 * @category errors
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
 * @category errors
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
 * A namespace kind a pinned thread was found in, other than the one it had to be in (see
 * {@link ThreadFailure}'s `namespaces`).
 *
 * @since 0.1.0
 * @category errors
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Task } from "gonso"
 *
 * // A task whose thread something left behind moved: its answer is refused, and says where it was.
 * const probe = (set: NamespaceSet.NamespaceSet) =>
 *   NamespaceSet.run(set, Task.module<void, string>(new URL("./tasks.js", import.meta.url), "probe", undefined)).pipe(
 *     Effect.catchTag("ThreadFailure", (failure) =>
 *       Effect.as(
 *         Effect.logWarning((failure.namespaces ?? []).map((each) => `${each.kind}: in ${each.found}, not ${each.expected}`).join("; ")),
 *         "refused"
 *       ))
 *   )
 * ```
 */
export const Misplaced = Schema.Struct({
  kind: Kind,
  /** The namespace the thread had to be in, as the kernel names it (`"uts:[4026532290]"`). */
  expected: Schema.String,
  /** The namespace it was in. */
  found: Schema.String
})

/**
 * A pinned thread could not be started, died under a task, or was found outside the set's
 * namespaces. In the last case `namespaces` names each kind expected and found: user code (a
 * module task, or a timer one left on the thread) moved the thread behind the library's back, and
 * the task's answer, computed in the wrong namespaces, is not delivered.
 *
 * @since 0.1.0
 * @category errors
 */
export class ThreadFailure extends Schema.TaggedError<ThreadFailure>()("ThreadFailure", {
  reason: Schema.String,
  tid: Schema.optionalKey(Schema.Number),
  namespaces: Schema.optionalKey(Schema.Array(Misplaced))
}) {
  override get message(): string {
    return `pinned thread${this.tid === undefined ? "" : ` ${this.tid}`}: ${this.reason}`
  }
}

/**
 * A task's input or output is larger than the channel to a pinned thread can carry.
 *
 * @since 0.1.0
 * @category errors
 */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  bytes: Schema.Number,
  limit: Schema.Number
}) {
  override get message(): string {
    return `a task message of ${this.bytes} bytes exceeds the channel's ${this.limit} bytes`
  }
}

/** What the kernel's rtnetlink answer says about a refused request (see `Network`). */
const netlinkFields = {
  /** The gonso operation, e.g. `"Network.addAddress"`. */
  operation: Schema.String,
  /** The link the request was about, by name. */
  link: Schema.optionalKey(Schema.String),
  /** The network namespace the request was made in, as the kernel names it (`"net:[4026532290]"`). */
  netns: Schema.optionalKey(Schema.String),
  /** The errno's name, e.g. `"EEXIST"`, and its number. */
  errno: Schema.String,
  code: Schema.Number,
  /** The kernel's own explanation (its extended ack), when it gave one. */
  kernelMessage: Schema.optionalKey(Schema.String)
}

const describeNetlink = (self: { link?: string | undefined; netns?: string | undefined; errno: string; kernelMessage?: string | undefined }) =>
  `${self.netns === undefined ? "" : ` in ${self.netns}`} (${self.errno}${self.kernelMessage === undefined ? "" : `: ${self.kernelMessage}`})`

/**
 * A link of that name already exists in the network namespace (`EEXIST` creating a link).
 *
 * @since 0.1.0
 * @category errors
 */
export class LinkExists extends Schema.TaggedError<LinkExists>()("LinkExists", netlinkFields) {
  override get message(): string {
    return `${this.operation}: a link named ${JSON.stringify(this.link ?? "?")} already exists${describeNetlink(this)}`
  }
}

/**
 * No link of that name (or index) in the network namespace (`ENODEV`).
 *
 * @since 0.1.0
 * @category errors
 */
export class LinkNotFound extends Schema.TaggedError<LinkNotFound>()("LinkNotFound", netlinkFields) {
  override get message(): string {
    return `${this.operation}: no link named ${JSON.stringify(this.link ?? "?")}${describeNetlink(this)}`
  }
}

/**
 * The kernel refused a network change for lack of privilege (`EPERM`, `EACCES`): changing links,
 * addresses and routes needs `CAP_NET_ADMIN` over the namespace.
 *
 * @since 0.1.0
 * @category errors
 */
export class NetworkPermissionDenied extends Schema.TaggedError<NetworkPermissionDenied>()("NetworkPermissionDenied", netlinkFields) {
  override get message(): string {
    return `${this.operation}: not permitted${this.link === undefined ? "" : ` on link ${JSON.stringify(this.link)}`}${describeNetlink(this)}: CAP_NET_ADMIN over the namespace is needed`
  }
}

/**
 * Any other refusal of an rtnetlink request: an address or route that exists already (`EEXIST`)
 * or does not (`EADDRNOTAVAIL`, `ESRCH`), an MTU out of range (`EINVAL`), a gateway not on any
 * link (`ENETUNREACH`), a link that must be down first (`EBUSY`), ...
 *
 * @since 0.1.0
 * @category errors
 */
export class NetlinkError extends Schema.TaggedError<NetlinkError>()("NetlinkError", netlinkFields) {
  override get message(): string {
    return `${this.operation}: the kernel refused${this.link === undefined ? "" : ` (link ${JSON.stringify(this.link)})`}${describeNetlink(this)}`
  }
}

/**
 * A string that is not an IP address with an optional prefix (`"10.0.0.1/24"`, `"fd00::1/64"`),
 * found before anything is sent to the kernel.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidAddress extends Schema.TaggedError<InvalidAddress>()("InvalidAddress", {
  operation: Schema.String,
  address: Schema.String,
  reason: Schema.String,
  link: Schema.optionalKey(Schema.String)
}) {
  override get message(): string {
    return `${this.operation}: ${JSON.stringify(this.address)} is not a valid address: ${this.reason}`
  }
}

/**
 * The errors of `Network`'s operations beyond joining the set.
 *
 * @since 0.1.0
 * @category errors
 */
export type NetworkError = LinkExists | LinkNotFound | NetworkPermissionDenied | NetlinkError | InvalidAddress

/**
 * More output than the caller's limit: a file read by `Task.readFile` larger than its `maxBytes`,
 * or a command run by `Task.exec` that printed more than its `maxBuffer` (stdout and stderr
 * together; the command's process group is then killed). `stdout` and `stderr` hold what the
 * command had printed until then, at most `limit` bytes together. For output of any size, stream
 * it: `NamespaceSet.spawn`.
 *
 * @since 0.1.0
 */
export class OutputTooLarge extends Schema.TaggedError<OutputTooLarge>()("OutputTooLarge", {
  operation: Schema.String,
  /** The limit, in bytes. */
  limit: Schema.Number,
  /** The file, for `Task.readFile`. */
  path: Schema.optionalKey(Schema.String),
  /** The command, for `Task.exec`. */
  command: Schema.optionalKey(Schema.String),
  stdout: Schema.optionalKey(Schema.String),
  stderr: Schema.optionalKey(Schema.String)
}) {
  override get message(): string {
    return this.command !== undefined
      ? `${this.operation}: ${JSON.stringify(this.command)} printed more than ${this.limit} bytes (maxBuffer), and was killed; NamespaceSet.spawn streams output of any size`
      : `${this.operation}: ${this.path ?? "the file"} holds more than ${this.limit} bytes (maxBytes)`
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
 * @category errors
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
 * @category errors
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
  | UnsupportedRuntime
  | InvalidOptions
  | AddressInUse
  | ConnectionRefused
  | Unreachable
  | ModuleTaskError
  | CommandNotFound
  | ThreadFailure
  | PayloadTooLarge
  | OutputTooLarge
  | NetworkError
  | PathRefused
  | StaleNetnsName
  | ProcessMoved

/**
 * Every error a pinned thread can report: across the thread boundary each goes as its schema's
 * encoded form (`WireError`), made by the thread without Effect (`failure.ts`, the worker's
 * handlers) and checked against these types when it is compiled, and decoded on the main side
 * with the classes' own schemas (`wire.ts`).
 */
export const wireErrors = [
  PermissionDenied,
  SystemError,
  ProcessNotFound,
  ProcessMoved,
  PathRefused,
  InvalidOptions,
  AddressInUse,
  CommandNotFound,
  ModuleTaskError,
  PayloadTooLarge,
  OutputTooLarge,
  ThreadFailure,
  SetClosed,
  LinkExists,
  LinkNotFound,
  NetworkPermissionDenied,
  NetlinkError,
  InvalidAddress
] as const

/** A pinned thread's error as it crosses: one of {@link wireErrors}, encoded. */
export type WireError = (typeof wireErrors)[number]["Encoded"]

/**
 * Logging an error shows its message. The classes' `message` is a getter (it is made from the
 * fields), which `util.inspect` (and so `console.error` and `console.log`) does not print: each
 * class shows its stack, which begins with the message, and then its fields.
 */
const inspectSymbol = Symbol.for("nodejs.util.inspect.custom")
for (
  const ErrorClass of [
    PermissionDenied, SystemError, InvalidKind, NotANamespace, KindMismatch, NamespaceNotFound, ProcessNotFound,
    SetClosed, KindNotInSet, UserNamespaceNotEnterable, UnsupportedKind, UnsupportedRuntime, InvalidOptions, AddressInUse,
    ConnectionRefused, Unreachable, ModuleTaskError, CommandNotFound, ThreadFailure, PayloadTooLarge, OutputTooLarge,
    LinkExists, LinkNotFound, NetworkPermissionDenied, NetlinkError, InvalidAddress, PathRefused, StaleNetnsName,
    ProcessMoved
  ]
) {
  Object.defineProperty(ErrorClass.prototype, inspectSymbol, {
    configurable: true,
    writable: true,
    value(this: Error, _depth: number, options: object, inspect: (value: unknown, options: object) => string) {
      const head = typeof this.stack === "string" && this.stack.includes(this.message) ? this.stack : `${this.name}: ${this.message}`
      return `${head} ${inspect({ ...this }, options)}`
    }
  })
}

function describeTarget(self: { kind?: string; path?: string; pid?: number; host?: string; port?: number }): string {
  const parts: Array<string> = []
  if (self.host !== undefined) parts.push(`address ${describeEndpoint({ host: self.host, port: self.port })}`)
  if (self.kind !== undefined) parts.push(`kind ${self.kind}`)
  if (self.path !== undefined) parts.push(`path ${self.path}`)
  if (self.pid !== undefined) parts.push(`pid ${self.pid}`)
  return parts.length === 0 ? "" : ` (${parts.join(", ")})`
}
