/**
 * The eight kinds of Linux namespace, their `CLONE_NEW*` values and their `/proc` file names.
 *
 * @since 0.1.0
 */

/**
 * A kind of namespace, by the name of its file under `/proc/PID/ns/`.
 *
 * @since 0.1.0
 * @category models
 */
export type NamespaceKind = "cgroup" | "ipc" | "mnt" | "net" | "pid" | "time" | "user" | "uts"

/**
 * Every kind, in the order a thread enters them (see {@link enterOrder}).
 *
 * @since 0.1.0
 * @category constants
 */
export const all: ReadonlyArray<NamespaceKind> = ["user", "cgroup", "ipc", "uts", "net", "pid", "mnt", "time"]

/**
 * The order in which a thread joins a set's namespaces, and leaves them again: the order
 * util-linux `nsenter` uses. The user namespace comes first because it decides what the thread
 * may do in the others; the mount namespace comes late because joining it changes the thread's
 * root and working directory; time comes last (and is only ever joined by a single-threaded
 * helper, see the docs). The order is fixed, unlike the original gonso's map iteration.
 *
 * @since 0.1.0
 * @category constants
 */
export const enterOrder: ReadonlyArray<NamespaceKind> = all

/**
 * The `CLONE_NEW*` flag of each kind, as `setns(2)`, `unshare(2)` and `NS_GET_NSTYPE` use it
 * (gonso's `NS_*` constants).
 *
 * @since 0.1.0
 * @category constants
 */
export const cloneFlag: Readonly<Record<NamespaceKind, number>> = {
  cgroup: 0x02000000,
  ipc: 0x08000000,
  mnt: 0x00020000,
  net: 0x40000000,
  pid: 0x20000000,
  time: 0x00000080,
  user: 0x10000000,
  uts: 0x04000000
}

/**
 * The file under `/proc/PID/ns/` that names the namespace a thread's *children* will be in.
 * For pid and time this differs from the thread's own (`pid_for_children`, `time_for_children`):
 * after `unshare(CLONE_NEWPID)` the thread itself stays where it was and only its children move.
 *
 * @since 0.1.0
 * @category constants
 */
export const childrenFile: Readonly<Record<NamespaceKind, string>> = {
  cgroup: "cgroup",
  ipc: "ipc",
  mnt: "mnt",
  net: "net",
  pid: "pid_for_children",
  time: "time_for_children",
  user: "user",
  uts: "uts"
}

/**
 * The kinds `current()` takes when none are named: every kind but user, as in gonso. A thread of
 * a multithreaded process can never join a user namespace, so a set holding one cannot be
 * entered.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultKinds: ReadonlyArray<NamespaceKind> = all.filter((kind) => kind !== "user")

/**
 * Whether `value` is one of the eight kind names.
 *
 * @since 0.1.0
 * @category guards
 */
export const isNamespaceKind = (value: unknown): value is NamespaceKind =>
  typeof value === "string" && Object.hasOwn(cloneFlag, value)

/**
 * The kind whose `CLONE_NEW*` flag is `flag`, if any.
 *
 * @since 0.1.0
 * @category conversions
 */
export const fromCloneFlag = (flag: number): NamespaceKind | undefined =>
  all.find((kind) => cloneFlag[kind] === flag)

/**
 * The OR of the kinds' `CLONE_NEW*` flags.
 *
 * @since 0.1.0
 * @category conversions
 */
export const toCloneFlags = (kinds: Iterable<NamespaceKind>): number => {
  let flags = 0
  for (const kind of kinds) flags |= cloneFlag[kind]
  return flags
}
