/**
 * The eight kinds of Linux namespace, their `CLONE_NEW*` values and their `/proc` file names.
 *
 * @since 0.1.0
 */

import * as internal from "./internal/kind.ts"
import type { NamespaceKind } from "./internal/kind.ts"

export type { NamespaceKind } from "./internal/kind.ts"

/**
 * Every kind, in the order a thread enters them (see {@link enterOrder}).
 *
 * @since 0.1.0
 * @category constants
 * @example
 * ```ts
 * import { NamespaceKind } from "gonso"
 *
 * const files = NamespaceKind.all.map((kind) => `/proc/self/ns/${kind}`)
 * // "/proc/self/ns/user", "/proc/self/ns/cgroup", and so on to "/proc/self/ns/time"
 * ```
 */
export const all: ReadonlyArray<NamespaceKind> = internal.all

/**
 * The order in which a thread joins a set's namespaces, and leaves them again: the order
 * util-linux `nsenter` uses. The user namespace comes first because it decides what the thread
 * may do in the others; the mount namespace comes late because joining it changes the thread's
 * root and working directory; time comes last (and is only ever joined by a single-threaded
 * helper, see the docs). The order is fixed, unlike the original gonso's map iteration.
 *
 * @since 0.1.0
 * @category constants
 * @example
 * ```ts
 * import { NamespaceKind } from "gonso"
 *
 * const wanted: ReadonlyArray<NamespaceKind.NamespaceKind> = ["mnt", "net", "user"]
 * const ordered = NamespaceKind.enterOrder.filter((kind) => wanted.includes(kind))
 * // ["user", "net", "mnt"]
 * ```
 */
export const enterOrder: ReadonlyArray<NamespaceKind> = internal.enterOrder

/**
 * The `CLONE_NEW*` flag of each kind, as `setns(2)`, `unshare(2)` and `NS_GET_NSTYPE` use it
 * (gonso's `NS_*` constants).
 *
 * @since 0.1.0
 * @category constants
 * @example
 * ```ts
 * import { NamespaceKind } from "gonso"
 *
 * const flags = NamespaceKind.cloneFlag.net | NamespaceKind.cloneFlag.uts
 * // 0x44000000: CLONE_NEWNET | CLONE_NEWUTS
 * ```
 */
export const cloneFlag: Readonly<Record<NamespaceKind, number>> = internal.cloneFlag

/**
 * The file under `/proc/PID/ns/` that names the namespace a thread's *children* will be in.
 * For pid and time this differs from the thread's own (`pid_for_children`, `time_for_children`):
 * after `unshare(CLONE_NEWPID)` the thread itself stays where it was and only its children move.
 *
 * @since 0.1.0
 * @category constants
 * @example
 * ```ts
 * import { NamespaceKind } from "gonso"
 *
 * NamespaceKind.childrenFile.pid // "pid_for_children"
 * // where this process's next child is born, kind by kind
 * const paths = NamespaceKind.all.map((kind) => `/proc/self/ns/${NamespaceKind.childrenFile[kind]}`)
 * ```
 */
export const childrenFile: Readonly<Record<NamespaceKind, string>> = internal.childrenFile

/**
 * The kinds `current()` takes when none are named: every kind but user, as in gonso. A thread of
 * a multithreaded process can never join a user namespace other than its own, so a set holding
 * another one cannot be entered (a set holding the process's own user namespace can: joining it
 * is skipped).
 *
 * @since 0.1.0
 * @category constants
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceKind, NamespaceSet } from "gonso"
 *
 * const kinds = NamespaceKind.defaultKinds // ["cgroup", "ipc", "uts", "net", "pid", "mnt", "time"]
 * // what NamespaceSet.current() opens when given no kinds: the same list
 * const host = Effect.scoped(Effect.map(NamespaceSet.current(), NamespaceSet.kinds))
 * ```
 */
export const defaultKinds: ReadonlyArray<NamespaceKind> = internal.defaultKinds

/**
 * Whether `value` is one of the eight kind names.
 *
 * @since 0.1.0
 * @category guards
 * @example
 * ```ts
 * import { NamespaceKind } from "gonso"
 *
 * NamespaceKind.isNamespaceKind("net") // true
 * NamespaceKind.isNamespaceKind("network") // false
 * // `node app.ts net uts` gives ["net", "uts"], typed as NamespaceKind[]
 * const kinds = process.argv.slice(2).filter(NamespaceKind.isNamespaceKind)
 * ```
 */
export const isNamespaceKind = (value: unknown): value is NamespaceKind => internal.isNamespaceKind(value)

/**
 * The kind whose `CLONE_NEW*` flag is `flag`, if any.
 *
 * @since 0.1.0
 * @category conversions
 * @example
 * ```ts
 * import { NamespaceKind } from "gonso"
 *
 * NamespaceKind.fromCloneFlag(0x40000000) // "net"
 * NamespaceKind.fromCloneFlag(0x44000000) // undefined: two flags, not one kind
 * ```
 */
export const fromCloneFlag = (flag: number): NamespaceKind | undefined => internal.fromCloneFlag(flag)

/**
 * The OR of the kinds' `CLONE_NEW*` flags.
 *
 * @since 0.1.0
 * @category conversions
 * @example
 * ```ts
 * import { NamespaceKind } from "gonso"
 *
 * NamespaceKind.toCloneFlags(["net", "uts"]) // 0x44000000: CLONE_NEWNET | CLONE_NEWUTS
 * NamespaceKind.toCloneFlags([]) // 0
 * ```
 */
export const toCloneFlags = (kinds: Iterable<NamespaceKind>): number => internal.toCloneFlags(kinds)
