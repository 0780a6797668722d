/**
 * The kinds of namespace and their kernel names: the one definition of each, used everywhere
 * (the public `NamespaceKind` module documents and re-exports them).
 *
 * @internal
 */

/**
 * A kind of namespace, by the name of its file under `/proc/PID/ns/`.
 *
 * @since 0.1.0
 * @category models
 */
export type NamespaceKind = "cgroup" | "ipc" | "mnt" | "net" | "pid" | "time" | "user" | "uts"

/** Every kind, in the order a thread enters them (util-linux `nsenter`'s). */
export const all: ReadonlyArray<NamespaceKind> = ["user", "cgroup", "ipc", "uts", "net", "pid", "mnt", "time"]

/** The order in which a thread joins a set's namespaces, and leaves them again. */
export const enterOrder: ReadonlyArray<NamespaceKind> = all

/** The `CLONE_NEW*` flag of each kind. */
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

/** The file under `/proc/PID/ns/` that names the namespace a thread's children will be in. */
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

/** The kinds `current()` takes when none are named: every kind but user. */
export const defaultKinds: ReadonlyArray<NamespaceKind> = all.filter((kind) => kind !== "user")

export const isNamespaceKind = (value: unknown): value is NamespaceKind =>
  typeof value === "string" && Object.hasOwn(cloneFlag, value)

export const fromCloneFlag = (flag: number): NamespaceKind | undefined => all.find((kind) => cloneFlag[kind] === flag)

export const toCloneFlags = (kinds: Iterable<NamespaceKind>): number => {
  let flags = 0
  for (const kind of kinds) flags |= cloneFlag[kind]
  return flags
}
