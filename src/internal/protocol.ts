/**
 * What crosses between the main thread and a pinned thread: one table of operations, each with its
 * arguments and its result, shared by the `Task` constructors, the main side and the thread's
 * handlers. Types and plain constants only: the pinned thread imports this file and must stay free
 * of Effect (every pinned thread loads what it imports, and a thread's memory is what it loads).
 *
 * Failures cross as plain data (`WireError`: `{ _tag, ...fields }`); the main side decodes them
 * with the schemas of the error classes in `errors.ts` (see `wire.ts`).
 *
 * @internal
 */
import type { NamespaceKind } from "./kind.ts"
import type { DropReason } from "./drop.ts"
import type { WireError } from "./errors.ts"

/** One namespace of a set: its fd in this process and its identity (dev+inode of the nsfs file). */
export interface Member {
  readonly kind: NamespaceKind
  readonly fd: number
  readonly dev: number
  readonly ino: number
}

export interface Identity {
  readonly dev: number
  readonly ino: number
}

/**
 * One line of a uid or gid map (gonso's `IDMap`): ids `containerId .. containerId + size - 1` in
 * the new user namespace are ids `hostId ..` in its parent.
 *
 * @since 0.1.0
 * @category models
 */
export interface IdMapping {
  readonly containerId: number
  readonly hostId: number
  readonly size: number
}

/** A parked child process (see `libc.cloneParked`): what a new pid namespace's init is. */
export interface Parked {
  readonly pid: number
  readonly stack: number
}

export type Propagation = "private" | "slave" | "unchanged"

/** The namespaces a thread reports for itself, per kind. */
export interface ThreadNamespace {
  readonly kind: NamespaceKind
  readonly id: string
  readonly dev: number
  readonly ino: number
}

/** A bind mount of a namespace fd onto a file. */
export interface Mount {
  readonly kind: NamespaceKind
  readonly fd: number
  readonly target: string
}

/** What mounting one target made: the target file (if it was created) and directories. */
export interface Made {
  readonly target: string
  readonly file: boolean
  readonly dirs: ReadonlyArray<string>
}

/** A namespace mount to detach, and what of it to remove: only what the library made. */
export interface Unmount {
  readonly path: string
  /** Remove the target file (the library created it). */
  readonly file: boolean
  /** Directories the library created for it, shallowest first: removed while empty. */
  readonly dirs: ReadonlyArray<string>
}

/**
 * One rtnetlink request: a whole message (base64; the thread sets its sequence number and asks for
 * an ack), and links whose index the thread writes into it (u32 at `offset`), looked up by name
 * inside the set.
 */
export interface NetlinkRequest {
  readonly data: string
  readonly indexOf?: ReadonlyArray<{ readonly offset: number; readonly link: string }>
}

/** The request (index `at`) the kernel refused, or whose link was not found: the exchange stops there. */
export interface NetlinkFailure {
  readonly at: number
  readonly errno: string
  readonly code: number
  /** The kernel's extended-ack message. */
  readonly message?: string
  /** The extended ack's offset of the offending attribute in the request. */
  readonly offset?: number
  /** Set when looking up this link by name failed. */
  readonly link?: string
}

/**
 * The operations a pinned thread performs: name -> arguments and result. A handler may only
 * return a promise for operations listed in {@link exclusiveOperations}.
 */
export interface Operations {
  readonly tid: { readonly args: void; readonly result: number }
  readonly identify: {
    readonly args: void
    readonly result: { readonly tid: number; readonly namespaces: Readonly<Record<NamespaceKind, ThreadNamespace>> }
  }
  readonly hostname: { readonly args: void; readonly result: string }
  readonly setHostname: { readonly args: { readonly name: string }; readonly result: void }
  /** At most `maxBytes` of a regular file (more is `OutputTooLarge`). */
  readonly readFile: { readonly args: { readonly path: string; readonly maxBytes: number }; readonly result: string }
  /** `data` is base64: the shared channel carries JSON. */
  readonly writeFile: {
    readonly args: { readonly path: string; readonly base64: string; readonly mode?: number }
    readonly result: void
  }
  readonly unshare: {
    readonly args: { readonly kinds: ReadonlyArray<NamespaceKind>; readonly propagation: Propagation }
    readonly result: { readonly members: ReadonlyArray<Member> }
  }
  readonly clone: {
    readonly args: {
      readonly kinds: ReadonlyArray<NamespaceKind>
      readonly uidMap?: ReadonlyArray<IdMapping>
      readonly gidMap?: ReadonlyArray<IdMapping>
      readonly setgroups?: "allow" | "deny"
      /** Keep the child alive as the init of its new pid namespace (else it is killed at once). */
      readonly keepInit: boolean
      readonly propagation: Propagation
    }
    readonly result: { readonly members: ReadonlyArray<Member>; readonly init?: Parked }
  }
  readonly socket: {
    readonly args: {
      readonly operation: string
      readonly family: number
      readonly type: number
      readonly host: string
      readonly port: number
      /** Bind to host:port (or the path, for AF_UNIX), and listen with this backlog if given. */
      readonly bind: boolean
      readonly backlog?: number
    }
    readonly result: { readonly fd: number; readonly port: number }
  }
  readonly spawn: {
    readonly args: {
      readonly operation: string
      readonly command: string
      readonly args: ReadonlyArray<string>
      readonly env: ReadonlyArray<string>
      readonly stdio: readonly [number, number, number]
      readonly cwd?: string
    }
    readonly result: number
  }
  readonly mount: {
    readonly args: { readonly operation: string; readonly mounts: ReadonlyArray<Mount>; readonly exclusive: boolean }
    readonly result: ReadonlyArray<Made>
  }
  /** A fresh sysfs over /sys, in the thread's (new, the set's) mount namespace. */
  readonly mountSysfs: { readonly args: { readonly operation: string }; readonly result: void }
  readonly unmount: { readonly args: { readonly operation: string; readonly targets: ReadonlyArray<Unmount> }; readonly result: void }
  /** rtnetlink requests, answered in the set's network namespace (see `netlink/exchange.ts`). */
  readonly netlink: {
    readonly args: { readonly operation: string; readonly requests: ReadonlyArray<NetlinkRequest> }
    readonly result: { readonly replies: ReadonlyArray<string>; readonly failure?: NetlinkFailure }
  }
  /** A user module's export; input and result cross by structured clone. */
  readonly module: {
    readonly args: { readonly url: string; readonly exportName: string; readonly input: unknown }
    readonly result: unknown
  }
}

export type Operation = keyof Operations

/** One operation with its arguments, as sent to a pinned thread. */
export type TaskSpec = { readonly [K in Operation]: { readonly op: K; readonly args: Operations[K]["args"] } }[Operation]

/**
 * Operations that run user code (which may be asynchronous and may change anything about the
 * thread): they get a thread to themselves, and cross by structured clone. Every other operation is
 * synchronous, library code, and may share a round trip with others.
 */
export const exclusiveOperations: ReadonlySet<Operation> = new Set<Operation>(["module"])

/** What a pinned thread needs to join a set: its key (unique per set in this process) and members. */
export interface SetRef {
  readonly key: number
  readonly members: ReadonlyArray<Member>
  /** A pidfd to join the members' kinds with, all at once (sets made by `fromPid`). */
  readonly pidfd?: { readonly fd: number; readonly pid: number } | undefined
}

/**
 * One request. The thread makes sure it is inside `set` (leaving the set it was in, restoring and
 * verifying, if that is another), runs `task`, and answers. It stays inside afterwards: back-to-back
 * requests for the same set join nothing. It leaves when a request for another set comes, when
 * `leave` is set, or when it goes idle, unless `hold` keeps it there (a thread leased by `enter`).
 */
export interface Request {
  /** The public operation this request serves, named in errors (e.g. `"NamespaceSet.run"`). */
  readonly operation: string
  /** The set to be inside; absent: wherever the thread is (for `enter`'s later steps). */
  readonly set?: SetRef | undefined
  readonly task?: TaskSpec | undefined
  /** Leave (restore and verify) after the task, and report whether the thread is clean. */
  readonly leave?: boolean | undefined
  /** Stay inside the set when idle, until a request with `leave` (an `enter` lease). */
  readonly hold?: boolean | undefined
  /** The thread is not to be restored: it is dropped after this request. */
  readonly drop?: boolean | undefined
}

/** A typed error as plain data: `_tag` names a class of `errors.ts`, the rest are its fields. */
export type { WireError } from "./errors.ts"

export type Outcome =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: WireError }

export interface Response {
  readonly outcome: Outcome
  /**
   * Set when the thread must not be reused: what could not be undone or verified (after user code,
   * on leaving, or because the request asked for a drop).
   */
  readonly unclean?: DropReason | undefined
  /** The request was not served: the thread was no longer reusable when its turn came. */
  readonly unserved?: true | undefined
}

/** The first message of a pinned thread: who it is and where it started. */
export interface Ready {
  readonly tid: number
  readonly baseline: Readonly<Record<NamespaceKind, Identity>>
  /**
   * The fds the thread holds for its whole life (baseline namespaces, working directory). They
   * belong to the process, not the thread: the main thread closes them once the thread is gone.
   */
  readonly fds: ReadonlyArray<number>
}

/** Messages a pinned thread posts outside the channel. */
export type Notice =
  | { readonly type: "ready"; readonly ready: Ready }
  /** Leaving a set when going idle failed: the thread must be dropped. */
  | { readonly type: "unclean"; readonly reason: DropReason }
  /** A child the thread killed but could not reap in time: the main thread reaps it. */
  | { readonly type: "orphan"; readonly child: Parked }

/**
 * The mark of a Worker started by gonso as a pinned thread: the worker script does nothing
 * anywhere else (imported on the main thread, or in a Worker of the program's own).
 */
export const PINNED_THREAD = "gonso pinned thread"

export interface WorkerData {
  readonly gonso: typeof PINNED_THREAD
  readonly channel: { readonly control: SharedArrayBuffer; readonly data: readonly [SharedArrayBuffer, SharedArrayBuffer] }
  /** Run from TypeScript sources: the worker's modules, stripped of types by the main thread, by URL. */
  readonly sources?: Readonly<Record<string, string>>
  readonly entry?: string
}
