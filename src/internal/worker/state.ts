/**
 * The safety core of a pinned thread: where it started (its baseline), which set it is inside,
 * joining a set, and leaving it again with every change undone and checked against the kernel.
 *
 * At birth the thread unshares its filesystem attributes (the kernel refuses `setns` into a mount
 * namespace while the thread shares cwd and root with the rest of the process), keeps an `O_PATH`
 * fd of its working directory (joining a mount namespace and leaving it again leaves the thread at
 * `/`), and records its baseline namespaces as open fds plus their dev+inode.
 *
 * Whatever cannot be undone or verified makes the thread unclean, and an unclean thread is dropped
 * by the main side, never reused. Verification reads the kernel's view in `/proc/thread-self`; it
 * never takes `setns`'s return value on trust.
 *
 * A set's mount namespace may have a /proc of its own (of another pid namespace, where this thread
 * does not appear), so nothing the thread needs is looked up through the /proc it sees inside a
 * set: at birth it opens the /proc it started with (`procFd`) and resolves its own namespace
 * files, and a child's, relative to that fd, which keeps naming this process's /proc whatever
 * mount namespace the thread is in.
 *
 * @internal
 */
import { all, childrenFile, cloneFlag, enterOrder, type NamespaceKind, toCloneFlags } from "../kind.ts"
import * as libc from "../libc.ts"
import type { DropReason, Misplaced, MovedWhen } from "../drop.ts"
import { syscallError } from "../failure.ts"
import type { Identity, Member, Ready, SetRef, WireError } from "../protocol.ts"

/**
 * The fds the thread opens at birth and holds for its life. They belong to the process, not the
 * thread: should the birth fail halfway (EMFILE under a low fd limit, say), those already open are
 * closed here, since the thread never reports them for the main side to close.
 */
const held: Array<number> = []
const hold = (fd: number): number => {
  held.push(fd)
  return fd
}
const birth = <A>(f: () => A): A => {
  try {
    return f()
  } catch (error) {
    for (const fd of held) libc.close(fd)
    throw error
  }
}

libc.unshare(libc.CLONE_FS)
const cwdFd = birth(() => hold(libc.open(".", libc.O_PATH | libc.O_DIRECTORY)))
/** This process's /proc, as the thread saw it at birth. */
const procFd = birth(() => hold(libc.open("/proc", libc.O_PATH | libc.O_DIRECTORY)))

/** A path under this process's /proc (not the one a set's mount namespace may show), opened. */
export const openProc = (path: string, extra = 0): number => libc.openAt(procFd, path, extra)

/** The thread's own namespace file of `kind` (for pid and time, its children's), relative to /proc. */
export const nsPath = (kind: NamespaceKind) => `thread-self/ns/${childrenFile[kind]}`

/**
 * This thread's own `task/TID` and `task/TID/ns` directories in that /proc. The thread looks at its
 * namespaces, working directory and root through them: one `fstatat` relative to an open directory
 * is the cheapest way to ask the kernel.
 */
const taskDirFd = birth(() => hold(openProc("thread-self", libc.O_PATH | libc.O_DIRECTORY)))
const nsDirFd = birth(() => hold(libc.openAt(taskDirFd, "ns", libc.O_PATH | libc.O_DIRECTORY)))

/** The file of `kind` in the thread's ns directory (for pid and time: the children's). */
const nsFile = (kind: NamespaceKind) => childrenFile[kind]
/** Opens the thread's namespace of `kind`. */
export const openOwn = (kind: NamespaceKind): number => libc.openAt(nsDirFd, nsFile(kind))
/** The kernel's name of the thread's namespace of `kind` (`"net:[4026531840]"`). */
export const ownId = (kind: NamespaceKind): string => libc.readlinkAt(nsDirFd, nsFile(kind))

export const currentIdentity = (kind: NamespaceKind): Identity => libc.identityAt(nsDirFd, nsFile(kind))
const sameIdentity = (a: Identity, b: Identity) => a.dev === b.dev && a.ino === b.ino

const baselineFd = {} as Record<NamespaceKind, number>
const baseline = {} as Record<NamespaceKind, Identity>
for (const kind of all) {
  baselineFd[kind] = birth(() => hold(openOwn(kind)))
  baseline[kind] = birth(() => libc.identityOfFd(baselineFd[kind]))
}
const baselineCwd = birth(() => libc.readlinkAt(taskDirFd, "cwd"))
const baselineRoot = birth(() => libc.readlinkAt(taskDirFd, "root"))

export const tid = libc.gettid()

export const ready: Ready = { tid, baseline, fds: held }

/** The key of the set the thread is inside; 0 is the baseline. */
export const BASELINE = 0
let insideKey = BASELINE
// What the thread has done since it last left: the namespaces it joined, the kinds it changed,
// and whether user code ran (which could have changed anything).
let joined = new Map<NamespaceKind, Member>()
let touched = new Set<NamespaceKind>()
let userCodeRan = false
/**
 * Whether the thread's namespaces may have changed since they were last checked: user code has
 * run (a task, or what one left behind: a timer, a promise) and nothing has looked since. Only
 * user code can move the thread behind the library's back, and it runs only in a module task or
 * while the thread's event loop turns, never while gonso's synchronous code serves a batch.
 */
let unchecked = false
/** Whether user code has ever run on this thread: from then on, every turn of its event loop may run some. */
let userCodeEver = false
/**
 * Set when the set holds a user namespace other than the thread's: nothing is joined by the
 * thread, and processes it starts join every kind through nsenter (user first, which is what
 * grants the right to join the others).
 */
let viaHelper = false
/** Why the thread must not be reused; once set, it stays set. */
let unclean: DropReason | undefined

export const inside = () => insideKey
export const uncleanReason = () => unclean
export const markUnclean = (reason: DropReason) => {
  unclean ??= reason
}
const restoreFailed = (detail: string) => markUnclean({ _tag: "RestoreFailed", detail })
export const markTouched = (kind: NamespaceKind) => touched.add(kind)
export const markUserCode = () => {
  userCodeRan = true
  userCodeEver = true
  unchecked = true
}
/** The thread's event loop has turned: if user code ever ran here, something of it may have run again. */
export const loopTurned = () => {
  if (userCodeEver) unchecked = true
}
/** Whether the thread's namespaces are to be checked before the next task (see `checkPlace`). */
export const placeUnchecked = () => unchecked
export const joinedMember = (kind: NamespaceKind) => joined.get(kind)
export const throughHelper = () => viaHelper
export const isBaseline = (member: Member) => sameIdentity(member, baseline[member.kind])

/**
 * Runs `f` with the thread in its baseline mount namespace, if a set put it in another, and back
 * in the set's afterwards: for starting a helper (nsenter) that must find this process's /proc,
 * and joins the set's mount namespace itself. A thread that cannot get back is unclean.
 */
export const atBaselineMount = <A>(f: () => A): A => {
  const member = joined.get("mnt")
  if (member === undefined || viaHelper || sameIdentity(member, baseline.mnt)) return f()
  libc.setns(baselineFd.mnt, cloneFlag.mnt)
  try {
    return f()
  } finally {
    try {
      libc.setns(member.fd, cloneFlag.mnt)
    } catch (error) {
      restoreFailed(`setns back into the set's mount namespace: ${(error as Error).message}`)
    }
  }
}

/**
 * Runs `f` inside the mount namespace `member` (a set's, that a thread joined through nsenter only
 * does not enter itself), for looking a command up where it will run; the thread leaves it when
 * it leaves the set, verified.
 */
export const inMount = <A>(member: Member, f: () => A): A => {
  libc.setns(member.fd, cloneFlag.mnt)
  touched.add("mnt")
  try {
    return f()
  } finally {
    try {
      libc.setns(baselineFd.mnt, cloneFlag.mnt)
      libc.fchdir(cwdFd)
    } catch (error) {
      restoreFailed(`setns back from a mount namespace: ${(error as Error).message}`)
    }
  }
}

/**
 * Joins `set` from the baseline. Namespaces equal to the baseline's are already joined and are
 * skipped: that saves a setns each way, and lets an unprivileged caller use its own namespaces.
 * Throws a WireError; the caller leaves again (undoing a partial join) before answering.
 */
export const join = (operation: string, set: SetRef): void => {
  insideKey = set.key
  const byKind = new Map(set.members.map((member) => [member.kind, member]))
  const user = byKind.get("user")
  if (user !== undefined && !sameIdentity(user, baseline.user)) {
    viaHelper = true
    for (const member of set.members) joined.set(member.kind, member)
    return
  }
  const pending: Array<Member> = []
  for (const kind of enterOrder) {
    const member = byKind.get(kind)
    if (member === undefined) continue
    joined.set(kind, member)
    // A thread of a multithreaded process cannot join a time namespace (EUSERS) nor a user
    // namespace (EINVAL); time is applied to the processes a task starts.
    if (kind === "time" || kind === "user" || sameIdentity(member, baseline[kind])) continue
    pending.push(member)
  }
  if (set.pidfd !== undefined && pending.length > 0) {
    // One setns with a pidfd joins all the kinds at once, or none: the kernel installs them
    // together, so the thread is never half inside a process's namespaces.
    try {
      libc.setns(set.pidfd.fd, toCloneFlags(pending.map((member) => member.kind)))
    } catch (error) {
      if (error instanceof libc.SyscallFailure && error.errno === "ESRCH") {
        throw { _tag: "ProcessNotFound", operation, pid: set.pidfd.pid } satisfies WireError
      }
      throw syscallError(operation, error)
    }
    for (const member of pending) touched.add(member.kind)
    // The pidfd joins the namespaces the process is in now, which need not be the set's: the
    // process may have moved since the set was opened. Each must be the set's, by dev+inode; the
    // caller leaves (restoring every kind touched) on the error.
    for (const member of pending) {
      if (!sameIdentity(currentIdentity(member.kind), member)) {
        throw { _tag: "ProcessMoved", operation, pid: set.pidfd.pid, kind: member.kind } satisfies WireError
      }
    }
    return
  }
  for (const member of pending) {
    // The fd must still be the namespace the set holds: were it closed and its number reused, the
    // thread would join whatever took the number.
    let current: Identity | undefined
    try {
      current = libc.identityOfFd(member.fd)
    } catch {
      current = undefined
    }
    if (current === undefined || !sameIdentity(current, member)) throw { _tag: "SetClosed", operation } satisfies WireError
    try {
      libc.setns(member.fd, cloneFlag[member.kind])
    } catch (error) {
      throw syscallError(operation, error, { kind: member.kind })
    }
    touched.add(member.kind)
  }
}

const idOf = (kind: NamespaceKind, identity: Identity) => `${kind}:[${identity.ino}]`

/**
 * Checks every namespace of the thread against where the library put it: the set's namespace for
 * each kind it joined, the baseline for every other. Any difference means user code moved the
 * thread behind the library's back: the thread is unclean (`Moved`), and the kinds found out of
 * place are returned. One `fstatat` per kind.
 */
export const checkPlace = (when: MovedWhen): ReadonlyArray<Misplaced> => {
  unchecked = false
  let wrong: Array<Misplaced> | undefined
  for (const kind of all) {
    const member = joined.get(kind)
    const expected = member !== undefined && kind !== "time" && kind !== "user" && !viaHelper ? member : baseline[kind]
    const found = currentIdentity(kind)
    if (!sameIdentity(found, expected)) (wrong ??= []).push({ kind, expected: idOf(kind, expected), found: idOf(kind, found) })
  }
  if (wrong === undefined) return []
  markUnclean({ _tag: "Moved", when, namespaces: wrong })
  return wrong
}

/**
 * Returns the thread to its baseline: each kind it changed is set back, the working directory
 * restored, and then the kernel's view of each of them compared with the baseline. Marks the
 * thread unclean on any difference.
 */
export const leave = (): void => {
  const wholeThread = userCodeRan
  if (unchecked) checkPlace("leaving")
  for (const kind of enterOrder) {
    if (!touched.has(kind)) continue
    if (kind === "time") {
      markUnclean({ _tag: "TimeNamespace" })
      continue
    }
    try {
      libc.setns(baselineFd[kind], cloneFlag[kind])
    } catch (error) {
      restoreFailed(`setns back to ${kind}: ${(error as Error).message}`)
    }
  }
  const checkFs = wholeThread || touched.has("mnt")
  if (checkFs) {
    try {
      libc.fchdir(cwdFd)
    } catch (error) {
      restoreFailed(`fchdir: ${(error as Error).message}`)
    }
  }
  // Only the kinds set back need checking again: the others were checked above (after user code)
  // or were never moved (library code moves only what it records in `touched`).
  for (const kind of touched) {
    if (!sameIdentity(currentIdentity(kind), baseline[kind])) restoreFailed(`${kind} is not back at the baseline`)
  }
  if (checkFs) {
    if (libc.readlinkAt(taskDirFd, "cwd") !== baselineCwd) restoreFailed("the working directory is not back")
    if (libc.readlinkAt(taskDirFd, "root") !== baselineRoot) restoreFailed("the root directory is not back")
  }
  joined = new Map()
  touched = new Set()
  viaHelper = false
  userCodeRan = false
  insideKey = BASELINE
}
