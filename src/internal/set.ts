/**
 * The machinery behind `NamespaceSet` that the modules built on it share: the set's
 * representation, ownership of its fds, and running a step on a pinned thread inside it.
 *
 * @internal
 */
import * as fs from "node:fs"
import { Effect, Predicate, type Scope } from "effect"
import { type Pipeable, pipeArguments } from "effect/Pipeable"
import * as Kind from "./kind.ts"
import type { NamespaceKind } from "./kind.ts"
import { SetClosed, UserNamespaceNotEnterable } from "./errors.ts"
import { PinnedThreads } from "./service.ts"
import * as libc from "./libc.ts"
import { exclusiveOperations, type Member, type Response, type SetRef, type TaskSpec } from "./protocol.ts"
import * as census from "./census.ts"
import { annotateTid, traceRun } from "./observe.ts"
import { poolOf, type ThreadPool } from "./thread/pool.ts"
import { specProblem } from "./validate.ts"
import { fromSyscall, fromWire } from "./wire.ts"

export const TypeId = "~gonso/NamespaceSet" as const

/**
 * A scoped set of namespaces, at most one of each kind.
 *
 * @since 0.1.0
 */
export interface NamespaceSet extends Pipeable {
  readonly [TypeId]: typeof TypeId
  /** The kinds the set holds, in the order a thread enters them. */
  readonly kinds: ReadonlyArray<NamespaceKind>
}

/**
 * A paused process that keeps a pid namespace usable: the first process of a new pid namespace is
 * its init, and once it exits the kernel refuses every later fork into the namespace. Shared by a
 * set and its duplicates; killed and reaped when the last of them closes.
 *
 * It must not outlive this process, whose fd table it shares: an init left behind would keep every
 * socket and namespace the process had open. The main thread becomes its tracer with
 * `PTRACE_O_EXITKILL`, so the kernel kills it when the process dies in any way, SIGKILL included;
 * where ptrace is not allowed, an exit handler kills it on every exit that runs JavaScript.
 */
export class Init {
  readonly child: libc.Parked
  private refs = 1
  constructor(child: libc.Parked) {
    this.child = child
    census.initAlive(child)
    try {
      libc.tieToThread(child.pid)
    } catch {
      // Not allowed here (a seccomp or Yama policy): the exit handler remains.
    }
  }
  retain(): Init {
    this.refs++
    return this
  }
  release(): void {
    if (--this.refs > 0) return
    census.initGone(this.child)
    if (!libc.killAndReap(this.child)) libc.reapWhenGone(this.child)
  }
}

/** The fds of a set-to-be, plus the init processes it owns. */
export interface Parts {
  readonly members: ReadonlyArray<Member>
  readonly inits?: ReadonlyArray<Init> | undefined
  readonly pidfd?: { readonly fd: number; readonly pid: number } | undefined
}

/** Keys tell sets apart on the pinned threads (fd numbers are reused once closed). */
let nextKey = 1

export class SetImpl implements NamespaceSet {
  readonly [TypeId] = TypeId
  readonly key = nextKey++
  readonly kinds: ReadonlyArray<NamespaceKind>
  readonly members: ReadonlyMap<NamespaceKind, Member>
  readonly inits: ReadonlyArray<Init>
  readonly pidfd: { readonly fd: number; readonly pid: number } | undefined
  closed = false
  users = 0
  constructor(parts: Parts) {
    const members = parts.members
    this.inits = parts.inits ?? []
    this.pidfd = parts.pidfd
    const byKind = new Map(members.map((member) => [member.kind, member]))
    this.kinds = Kind.enterOrder.filter((kind) => byKind.has(kind))
    this.members = new Map(this.kinds.map((kind) => [kind, byKind.get(kind)!]))
    census.setOpened()
  }
  pipe() {
    return pipeArguments(this, arguments)
  }
  toJSON() {
    return { _id: "NamespaceSet", closed: this.closed, namespaces: this.kinds.map((kind) => idString(this.members.get(kind)!)) }
  }
  toString() {
    return `NamespaceSet(${this.closed ? "closed" : this.kinds.map((kind) => idString(this.members.get(kind)!)).join(", ")})`
  }
  private cachedRef: SetRef | undefined
  private cachedRefJson: string | undefined
  private cachedForeignUser: boolean | undefined

  /** What a pinned thread needs to join the set, made once. */
  ref(): SetRef {
    return this.cachedRef ??= { key: this.key, members: [...this.members.values()], pidfd: this.pidfd }
  }

  refJson(): string {
    return this.cachedRefJson ??= JSON.stringify(this.ref())
  }

  /** Whether the set holds a user namespace other than this process's (which no thread can join). */
  foreignUser(): boolean {
    if (this.cachedForeignUser === undefined) {
      const user = this.members.get("user")
      this.cachedForeignUser = user !== undefined && !isOwnUserNamespace(user)
    }
    return this.cachedForeignUser
  }

  /** Marks the set in use; fails once its Scope has closed. */
  hold(operation: string): SetClosed | undefined {
    if (this.closed) return new SetClosed({ operation })
    this.users++
    return undefined
  }
  /** Ends a use; the last use after the Scope closed closes the fds. */
  unhold(): void {
    this.users--
    if (this.closed && this.users === 0) this.closeFds()
  }
  /** The Scope closed: the fds go now, or with the last use still running. */
  close(): void {
    this.closed = true
    if (this.users === 0) this.closeFds()
  }
  private closeFds() {
    census.setClosed()
    for (const member of this.members.values()) libc.close(member.fd)
    for (const init of this.inits) init.release()
    if (this.pidfd !== undefined) libc.close(this.pidfd.fd)
  }
}

export const idString = (member: Member) => `${member.kind}:[${member.ino}]`

/**
 * Whether `u` is a {@link NamespaceSet}.
 *
 * @since 0.1.0
 */
export const isNamespaceSet = (u: unknown): u is NamespaceSet => Predicate.hasProperty(u, TypeId)

export const impl = (set: NamespaceSet) => set as SetImpl


/** Runs `f`, turning gonso's typed errors into failures and anything else into a defect. */
export const attempt = <A, E>(f: () => A): Effect.Effect<A, E> =>
  Effect.suspend(() => {
    try {
      return Effect.succeed(f())
    } catch (error) {
      if (Predicate.hasProperty(error, "_tag")) return Effect.fail(error as E)
      return Effect.die(error)
    }
  })


/**
 * Makes a set of fds that are already open, owned by the current Scope from this moment on: the
 * acquisition is uninterruptible, so fds are never left without an owner.
 */
export const adopt = <E, R>(parts: Effect.Effect<Parts, E, R>): Effect.Effect<NamespaceSet, E, R | Scope.Scope> =>
  Effect.acquireRelease(
    Effect.map(parts, (parts) => new SetImpl(parts)),
    (set) => Effect.sync(() => set.close())
  )

/**
 * Holds `set` open while `f` runs: a set whose Scope closes meanwhile keeps its fds until `f` is
 * done, so a pinned thread never joins an fd number that was closed and reused under it.
 */
export const withMembers = <A, E, R>(
  set: NamespaceSet,
  operation: string,
  f: (members: ReadonlyMap<NamespaceKind, Member>) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | SetClosed, R> =>
  Effect.suspend<A, E | SetClosed, R>(() => {
    const self = impl(set)
    const closed = self.hold(operation)
    if (closed !== undefined) return Effect.fail(closed)
    return Effect.ensuring(f(self.members), Effect.sync(() => self.unhold()))
  })


export const duplicate = (operation: string, members: ReadonlyArray<Member>): Array<Member> => {
  const copies: Array<Member> = []
  try {
    for (const member of members) copies.push({ ...member, fd: libc.dupCloexec(member.fd) })
  } catch (error) {
    for (const copy of copies) libc.close(copy.fd)
    throw error instanceof libc.SyscallFailure ? fromSyscall(error, operation) : error
  }
  return copies
}

/**
 * Parts of a new set that carries over `set`'s namespaces of `kinds` (duplicated fds), plus
 * `extra` fds that are already the new set's. A carried pid namespace keeps its init alive for as
 * long as the new set lives too. On failure the extra fds are closed as well: they have no owner.
 */
export const carry = (
  operation: string,
  set: NamespaceSet,
  kinds: ReadonlyArray<NamespaceKind>,
  extra: Parts = { members: [] }
): Parts => {
  const self = impl(set)
  let copies: Array<Member>
  try {
    copies = duplicate(operation, kinds.map((kind) => self.members.get(kind)!))
  } catch (error) {
    for (const member of extra.members) libc.close(member.fd)
    for (const init of extra.inits ?? []) init.release()
    throw error
  }
  const inits = kinds.includes("pid") ? self.inits.map((init) => init.retain()) : []
  return { members: [...extra.members, ...copies], inits: [...(extra.inits ?? []), ...inits] }
}


export type { EnterError } from "./errors.ts"
import type { EnterError } from "./errors.ts"

export const enterable = (operation: string, members: ReadonlyMap<NamespaceKind, Member>): Effect.Effect<ReadonlyArray<Member>, UserNamespaceNotEnterable> => {
  const user = members.get("user")
  return user !== undefined && !isOwnUserNamespace(user)
    ? Effect.fail(new UserNamespaceNotEnterable({ operation }))
    : Effect.succeed([...members.values()])
}

/** The thread pool of the `PinnedThreads` service in context. */
export const threadPool: Effect.Effect<ThreadPool, never, PinnedThreads> = PinnedThreads.use((service) =>
  Effect.sync(() => poolOf(service))
)

/** A response's outcome as the Effect's result. */
export const outcomeOf = <A, E>(response: Response): Effect.Effect<A, E> =>
  response.outcome.ok ? Effect.succeed(response.outcome.value as A) : Effect.fail(fromWire(response.outcome.error) as E)

/** What a pinned thread needs to join the set. */
export const setRef = (set: NamespaceSet, members: ReadonlyArray<Member>): SetRef => {
  const self = impl(set)
  return { key: self.key, members, pidfd: self.pidfd }
}

/** Tasks as JSON, made once per task value (built-in tasks without arguments are constants). */
const taskJson = new WeakMap<object, string>()
const encodeTask = (task: TaskSpec): string => {
  let json = taskJson.get(task)
  if (json === undefined) {
    json = JSON.stringify(task)
    taskJson.set(task, json)
  }
  return json
}

/**
 * Runs one operation on a pinned thread inside the set. Library operations share threads (see
 * `thread.ts`); user code, and runs whose thread is not to be restored, lease one: such a thread
 * leaves the set and is verified before the lease ends, or is dropped.
 */
export const runSpec = <A, E>(
  operation: string,
  set: NamespaceSet,
  task: TaskSpec,
  restore: boolean
): Effect.Effect<A, E | EnterError, PinnedThreads> =>
  traceRun(operation, set, () => impl(set).members.values(), task, restore, runOnThread<A, E>(operation, set, task, restore))

const runOnThread = <A, E>(
  operation: string,
  set: NamespaceSet,
  task: TaskSpec,
  restore: boolean
): Effect.Effect<A, E | EnterError, PinnedThreads> => {
  // Strings that would reach libc cut short are refused before anything is sent. Every operation
  // with strings declares InvalidOptions among its errors `E`.
  const invalid = specProblem(task)
  if (invalid !== undefined) return Effect.fail(invalid as E)
  // A user namespace can be joined only by a single-threaded process: of the tasks, only those
  // that start a process can offer one (they start their command through nsenter).
  const anyUser = task.op === "spawn"
  // A thread that makes a time namespace cannot go back to its own: it is dropped after, and
  // so is given the request alone rather than sharing a round trip with others.
  const dropsItsThread = task.op === "unshare" && task.args.kinds.includes("time")
  if (restore && !exclusiveOperations.has(task.op) && !dropsItsThread) {
    return Effect.flatMap(threadPool, (pool) => runShared<A, E>(pool, operation, set, task, anyUser))
  }
  return withMembers(set, operation, (members) =>
    Effect.flatMap(anyUser ? Effect.succeed([...members.values()]) : enterable(operation, members), (enter) =>
      Effect.flatMap(threadPool, (pool): Effect.Effect<A, E | EnterError> => {
        const ref = setRef(set, enter)
        return Effect.scoped(Effect.flatMap(pool.lease, (thread) =>
          Effect.flatMap(
            Effect.andThen(
              annotateTid(thread.tid),
              pool.call(thread, restore ? { operation, set: ref, task, leave: true } : { operation, set: ref, task, drop: true })
            ),
            outcomeOf<A, E>
          )))
      })))
}

/**
 * The hot path of `run`: one callback holds the set, posts the request (made from JSON the set
 * and the task keep), and lets the set go when the answer comes or the caller gives up.
 */
const runShared = <A, E>(
  pool: ThreadPool,
  operation: string,
  set: NamespaceSet,
  task: TaskSpec,
  anyUser: boolean
): Effect.Effect<A, E | EnterError> =>
  Effect.callback<A, E | EnterError>((resume) => {
    const self = impl(set)
    const closed = self.hold(operation)
    if (closed !== undefined) return resume(Effect.fail(closed))
    if (!anyUser && self.foreignUser()) {
      self.unhold()
      return resume(Effect.fail(new UserNamespaceNotEnterable({ operation })))
    }
    let interrupted = false
    const request = { operation, set: self.ref(), task }
    const json = `{"operation":${JSON.stringify(operation)},"set":${self.refJson()},"task":${encodeTask(task)}}`
    const cancel = pool.post(request, self.key, json, (result) => {
      // The set is held until the thread has answered, even for a caller that gave up: until
      // then the thread may still join the set's fds, which must not be closed and reused.
      self.unhold()
      if (interrupted) return
      if ("_tag" in result) return resume(Effect.fail(result as E | EnterError))
      const outcome = result.outcome
      resume(outcome.ok ? Effect.succeed(outcome.value as A) : Effect.fail(fromWire(outcome.error) as E))
    })
    return Effect.sync(() => {
      interrupted = true
      // Never sent: nothing will answer, so the set is let go now.
      if (cancel()) self.unhold()
    })
  })

/**
 * Whether `member` is this process's own user namespace: the one pinned threads are in, and so the
 * one that owns what they make.
 */
export const isOwnUserNamespace = (member: Member): boolean => {
  const own = fs.statSync("/proc/self/ns/user")
  return own.dev === member.dev && own.ino === member.ino
}

