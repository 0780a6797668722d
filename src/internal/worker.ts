/**
 * The entry point of a pinned thread: a Worker that owns one OS thread for its whole life, so the
 * namespace changes made here by koffi's `setns`/`unshare` apply to this thread alone.
 *
 * At birth it unshares its filesystem attributes (the kernel refuses `setns` into a mount namespace
 * while the thread shares cwd and root with the rest of the process), keeps an `O_PATH` fd of its
 * working directory (joining a mount namespace and leaving it again leaves the thread at `/`), and
 * records its baseline namespaces as open fds plus their dev+inode. Then it parks in `Atomics.wait`
 * until the main thread sends a request over the shared channel.
 *
 * A request joins a set's namespaces, runs one task and, when asked, leaves again: every change to
 * the thread is undone here, before the answer goes back, and then checked against the kernel's
 * view in `/proc/thread-self`, never taken on trust from `setns`'s return value. Whatever cannot be
 * undone or checked is reported as "not clean", and the main thread drops the thread.
 *
 * @internal
 */
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import { parentPort, workerData } from "node:worker_threads"
import type { IdMapping } from "../NamespaceSet.ts"
import { all, childrenFile, cloneFlag, enterOrder, type NamespaceKind, toCloneFlags } from "../NamespaceKind.ts"
import * as channel from "./channel.ts"
import * as libc from "./libc.ts"
import * as persist from "./persist.ts"
import { syscallError } from "./failure.ts"
import { nsenterOptions } from "./nsenter.ts"
import type { Identity, Member, Outcome, Ready, Request, Response, TaskSpec, WireError, WorkerData } from "./protocol.ts"

const port = parentPort!
const chan = channel.attach((workerData as WorkerData).channel)

libc.unshare(libc.CLONE_FS)
const cwdFd = libc.open(".", libc.O_PATH | libc.O_DIRECTORY)
const nsPath = (kind: NamespaceKind) => `/proc/thread-self/ns/${childrenFile[kind]}`
const identityOf = (stats: fs.Stats): Identity => ({ dev: stats.dev, ino: stats.ino })
const baselineFd = {} as Record<NamespaceKind, number>
const baseline = {} as Record<NamespaceKind, Identity>
for (const kind of all) {
  baselineFd[kind] = libc.open(nsPath(kind))
  baseline[kind] = identityOf(fs.fstatSync(baselineFd[kind]))
}
const baselineCwd = fs.readlinkSync("/proc/thread-self/cwd")
const baselineRoot = fs.readlinkSync("/proc/thread-self/root")
const tid = libc.gettid()

// What the thread has done since it last left: the namespaces it joined, the kinds it changed,
// whether user code ran (which could have changed anything), and a taint the user code declared.
let joined = new Map<NamespaceKind, Member>()
let touched = new Set<NamespaceKind>()
let userCodeRan = false
let tainted: string | undefined
const children = new Set<ChildProcess>()

const sameIdentity = (a: Identity, b: Identity) => a.dev === b.dev && a.ino === b.ino
const currentIdentity = (kind: NamespaceKind) => identityOf(fs.statSync(nsPath(kind)))

// ---------------------------------------------------------------------------------------------
// Errors as data
// ---------------------------------------------------------------------------------------------

/** Something a user module threw, made fit to cross by structured clone. */
const thrownValue = (error: unknown): unknown => {
  if (error instanceof Error) {
    return { ...error, name: error.name, message: error.message, stack: error.stack }
  }
  try {
    structuredClone(error)
    return error
  } catch {
    return String(error)
  }
}

// ---------------------------------------------------------------------------------------------
// Joining and leaving
// ---------------------------------------------------------------------------------------------

// Set when the set holds a user namespace other than the thread's: nothing is joined by the
// thread, and `exec` has nsenter join every kind (user first, which is what grants the right to
// join the others).
let viaHelper = false

const join = (operation: string, members: ReadonlyArray<Member>, pidfd?: { fd: number; pid: number }): void => {
  const byKind = new Map(members.map((member) => [member.kind, member]))
  const user = byKind.get("user")
  if (user !== undefined && !sameIdentity(user, baseline.user)) {
    viaHelper = true
    for (const member of members) joined.set(member.kind, member)
    return
  }
  const pending: Array<Member> = []
  for (const kind of enterOrder) {
    const member = byKind.get(kind)
    if (member === undefined) continue
    joined.set(kind, member)
    // A thread of a multithreaded process cannot join a time namespace (EUSERS) nor a user
    // namespace (EINVAL); time is applied to the processes a task starts (see `exec`). Joining
    // is done from the baseline, so a namespace equal to the baseline's is already joined:
    // skipping it saves a setns each way, and lets an unprivileged caller use its own namespaces.
    if (kind === "time" || kind === "user" || sameIdentity(member, baseline[kind])) continue
    pending.push(member)
  }
  if (pidfd !== undefined && pending.length > 0) {
    // One setns with a pidfd joins all the kinds at once, or none: the kernel installs them
    // together, so the thread is never half inside a process's namespaces.
    try {
      libc.setns(pidfd.fd, toCloneFlags(pending.map((member) => member.kind)))
    } catch (error) {
      if (error instanceof libc.SyscallFailure && error.errno === "ESRCH") {
        throw { _tag: "ProcessNotFound", operation, pid: pidfd.pid } satisfies WireError
      }
      throw syscallError(operation, error)
    }
    for (const member of pending) touched.add(member.kind)
    return
  }
  for (const member of pending) {
    try {
      libc.setns(member.fd, cloneFlag[member.kind])
    } catch (error) {
      throw syscallError(operation, error, { kind: member.kind })
    }
    touched.add(member.kind)
  }
}

const leave = (): Pick<Response, "clean" | "reason"> => {
  const problems: Array<string> = []
  const wholeThread = userCodeRan
  if (wholeThread) {
    // User code could have joined or made namespaces of its own: anything that is not where the
    // library put it means the task changed the thread behind the library's back.
    for (const kind of all) {
      const member = joined.get(kind)
      const expected = member !== undefined && kind !== "time" && kind !== "user" && !viaHelper ? member : baseline[kind]
      if (!sameIdentity(currentIdentity(kind), expected)) problems.push(`the task changed the ${kind} namespace`)
    }
  }
  for (const kind of enterOrder) {
    if (!touched.has(kind)) continue
    if (kind === "time") {
      problems.push("a thread of a multithreaded process cannot return to its time namespace")
      continue
    }
    try {
      libc.setns(baselineFd[kind], cloneFlag[kind])
    } catch (error) {
      problems.push(`setns back to ${kind}: ${(error as Error).message}`)
    }
  }
  const checkFs = wholeThread || touched.has("mnt")
  if (checkFs) {
    try {
      libc.fchdir(cwdFd)
    } catch (error) {
      problems.push(`fchdir: ${(error as Error).message}`)
    }
  }
  // Only the kinds set back need checking again: the others were checked above (after user code)
  // or were never moved (after built-in tasks).
  for (const kind of touched) {
    if (!sameIdentity(currentIdentity(kind), baseline[kind])) problems.push(`${kind} is not back at the baseline`)
  }
  if (checkFs) {
    if (fs.readlinkSync("/proc/thread-self/cwd") !== baselineCwd) problems.push("the working directory is not back")
    if (fs.readlinkSync("/proc/thread-self/root") !== baselineRoot) problems.push("the root directory is not back")
  }
  if (tainted !== undefined) problems.push(`tainted by the task: ${tainted}`)
  joined = new Map()
  touched = new Set()
  viaHelper = false
  userCodeRan = false
  tainted = undefined
  return problems.length === 0 ? { clean: true } : { clean: false, reason: problems.join("; ") }
}

// ---------------------------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------------------------

interface ExecArgs {
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly cwd?: string
  readonly env?: Record<string, string>
  readonly input?: string | Uint8Array
}

/**
 * The command line that starts `command` inside the joined set: the command itself, or nsenter
 * when the set holds a user or time namespace other than the thread's (the kernel lets only a
 * single-threaded process join those), or, for sets joined through the helper, every kind.
 */
const throughHelper = (command: string, args: ReadonlyArray<string>): [string, ReadonlyArray<string>] => {
  const helperKinds: ReadonlyArray<NamespaceKind> = viaHelper ? enterOrder : ["user", "time"]
  const members = helperKinds.flatMap((kind) => {
    const member = joined.get(kind)
    // The thread's own user and time namespaces need no joining: children are born in them.
    return member === undefined || (!viaHelper && sameIdentity(member, baseline[kind])) ? [] : [member]
  })
  return members.length === 0 ? [command, args] : ["nsenter", [...nsenterOptions(members), "--", command, ...args]]
}

const exec = (spec: ExecArgs): Promise<unknown> => {
  const [file, argv] = throughHelper(spec.command, spec.args)
  return new Promise((resolve, reject) => {
    const stdout: Array<Buffer> = []
    const stderr: Array<Buffer> = []
    let settled = false
    const settle = (outcome: Outcome) => {
      if (settled) return
      settled = true
      children.delete(child)
      if (outcome.ok) resolve(outcome.value)
      else reject(outcome.error)
    }
    // `detached` makes the child a process group leader, so that cancelling a task can kill the
    // child together with everything it started.
    const child = spawn(file, argv, {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      stdio: [spec.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      detached: true
    })
    children.add(child)
    child.stdout!.on("data", (chunk: Buffer) => stdout.push(chunk))
    child.stderr!.on("data", (chunk: Buffer) => stderr.push(chunk))
    if (spec.input !== undefined) child.stdin!.end(spec.input)
    child.on("error", (error: NodeJS.ErrnoException) => {
      if (error.syscall?.startsWith("spawn") && (error.code === "ENOENT" || error.code === "EACCES")) {
        settle({ ok: false, error: { _tag: "CommandNotFound", command: file, errno: error.code } })
      } else {
        settle({ ok: false, error: syscallError("Task.exec", error) })
      }
    })
    child.on("close", (exitCode, signal) => {
      settle({
        ok: true,
        value: {
          exitCode,
          signal,
          stdout: Buffer.concat(stdout).toString("utf8"),
          stderr: Buffer.concat(stderr).toString("utf8")
        }
      })
    })
  })
}

const runModule = async (args: { url: string; exportName: string; input: unknown }): Promise<unknown> => {
  const fail = (name: string, error: unknown): WireError => ({
    _tag: "ModuleTaskError",
    url: args.url,
    exportName: args.exportName,
    name,
    error: thrownValue(error)
  })
  userCodeRan = true
  let fn: unknown
  try {
    fn = (await import(args.url))[args.exportName]
  } catch (error) {
    throw fail((error as Error)?.name ?? "Error", error)
  }
  if (typeof fn !== "function") {
    throw fail("TypeError", new TypeError(`${args.url} exports no function named ${args.exportName}`))
  }
  const context = {
    tid,
    taint: (reason = "no reason given") => {
      tainted = reason
    }
  }
  try {
    return await fn(args.input, context)
  } catch (error) {
    const tag = (error as { _tag?: unknown })?._tag
    throw fail(typeof tag === "string" ? tag : (error as Error)?.name ?? typeof error, error)
  }
}

/** The kind an unshare of `kinds` failed for, when there is just one. */
const onlyKind = (kinds: ReadonlyArray<NamespaceKind>) => kinds.length === 1 ? { kind: kinds[0]! } : {}

/** Opens the namespace of each kind at `pathOf(kind)`: all of them, or none (and throws). */
const openMembers = (operation: string, kinds: ReadonlyArray<NamespaceKind>, pathOf: (kind: NamespaceKind) => string) => {
  const members: Array<Member> = []
  try {
    for (const kind of kinds) {
      const fd = libc.open(pathOf(kind))
      members.push({ kind, fd, ...identityOf(fs.fstatSync(fd)) })
    }
  } catch (error) {
    for (const member of members) libc.close(member.fd)
    throw syscallError(operation, error)
  }
  return members
}

const unshareKinds = (args: { kinds: ReadonlyArray<NamespaceKind>; propagation: libc.Propagation | "unchanged" }) => {
  const operation = "NamespaceSet.unshare"
  try {
    libc.unshare(toCloneFlags(args.kinds))
  } catch (error) {
    throw syscallError(operation, error, onlyKind(args.kinds))
  }
  for (const kind of args.kinds) touched.add(kind)
  // A new mount namespace starts as a copy whose mounts still propagate to and from the host's
  // shared mounts; util-linux `unshare` makes them private by default, and so do we.
  if (args.kinds.includes("mnt") && args.propagation !== "unchanged") {
    try {
      libc.setRootPropagation(args.propagation)
    } catch (error) {
      throw syscallError(operation, error, { kind: "mnt", path: "/" })
    }
  }
  return { members: openMembers(operation, args.kinds, nsPath) }
}

interface CloneArgs {
  readonly kinds: ReadonlyArray<NamespaceKind>
  readonly uidMap?: ReadonlyArray<IdMapping>
  readonly gidMap?: ReadonlyArray<IdMapping>
  readonly setgroups?: "allow" | "deny"
  /** Keep the child alive as the init of its new pid namespace (else it is killed at once). */
  readonly keepInit: boolean
  readonly propagation: libc.Propagation | "unchanged"
}

const mapText = (map: ReadonlyArray<IdMapping>) =>
  map.map((entry) => `${entry.containerId} ${entry.hostId} ${entry.size}\n`).join("")

/**
 * New namespaces made by a parked child (see `libc.cloneParked`): the only way a multithreaded
 * process can make a user namespace, and the way a new pid namespace gets the init process it
 * needs. The child is born in this thread's namespaces (the set it joined) for every kind not in
 * `kinds`, and new user namespaces' id maps are written before anything else can use it.
 */
const cloneKinds = (args: CloneArgs) => {
  const operation = "NamespaceSet.unshare"
  let child: libc.Parked
  try {
    child = libc.cloneParked(toCloneFlags(args.kinds))
  } catch (error) {
    throw syscallError(operation, error, onlyKind(args.kinds))
  }
  // Until it is killed below, a child that does not become a set's init is tied to this thread:
  // should the process die meanwhile, the kernel kills it. An init is tied to the main thread
  // instead, which lives as long as the process (pinned threads come and go).
  if (!args.keepInit) {
    try {
      libc.tieToThread(child.pid)
    } catch {
      // Not allowed here; the child lives only for the rest of this call.
    }
  }
  const pid = child.pid
  const write = (file: string, text: string) => {
    const path = `/proc/${pid}/${file}`
    try {
      fs.writeFileSync(path, text)
    } catch (error) {
      libc.killAndReap(child)
      throw syscallError(operation, error, { kind: "user", path })
    }
  }
  if (args.uidMap !== undefined) write("uid_map", mapText(args.uidMap))
  if (args.setgroups !== undefined) write("setgroups", args.setgroups)
  if (args.gidMap !== undefined) write("gid_map", mapText(args.gidMap))
  let members: Array<Member>
  try {
    members = openMembers(operation, args.kinds, (kind) => `/proc/${pid}/ns/${kind}`)
  } catch (error) {
    libc.killAndReap(child)
    throw error
  }
  // A new mount namespace copies shared mounts as shared, so mounts made in it would reach the
  // parent's; make them private (or slave) from inside, as for unshare. In a new user namespace the
  // kernel has already reduced them to slaves (it is less privileged than its parent).
  const mnt = members.find((member) => member.kind === "mnt")
  if (mnt !== undefined && !args.kinds.includes("user") && args.propagation !== "unchanged") {
    try {
      touched.add("mnt")
      libc.setns(mnt.fd, cloneFlag.mnt)
      libc.setRootPropagation(args.propagation)
    } catch (error) {
      for (const member of members) libc.close(member.fd)
      libc.killAndReap(child)
      throw syscallError(operation, error, { kind: "mnt", path: "/" })
    }
  }
  if (args.keepInit) return { members, init: child }
  libc.killAndReap(child)
  return { members }
}

const identify = () => {
  const namespaces = {} as Record<NamespaceKind, { kind: NamespaceKind; id: string; dev: number; ino: number }>
  for (const kind of all) {
    namespaces[kind] = { kind, id: fs.readlinkSync(nsPath(kind)), ...currentIdentity(kind) }
  }
  return { tid, namespaces }
}

interface SocketArgs {
  readonly operation: string
  readonly family: number
  readonly type: number
  readonly host: string
  readonly port: number
  /** Bind to host:port (or the path, for AF_UNIX), and listen with this backlog if given. */
  readonly bind: boolean
  readonly backlog?: number
}

/** A socket made on this thread, so in the set's network namespace; bound and listening if asked. */
const makeSocket = (args: SocketArgs) => {
  const context = args.family === libc.AF_UNIX ? { path: args.host } : { host: args.host, port: args.port }
  const fail = (error: unknown): WireError => {
    if (error instanceof libc.SyscallFailure) {
      if (error.errno === "EADDRINUSE") return { _tag: "AddressInUse", operation: args.operation, ...context }
      if (error.call === "inet_pton") {
        return { _tag: "InvalidOptions", operation: args.operation, reason: `${JSON.stringify(args.host)} is not an IP address (names are not resolved inside namespaces)` }
      }
    }
    return { ...syscallError(args.operation, error), ...context }
  }
  let fd: number
  try {
    fd = libc.socket(args.family, args.type)
  } catch (error) {
    throw fail(error)
  }
  try {
    if (args.bind) {
      if (args.family !== libc.AF_UNIX && args.type === libc.SOCK_STREAM) libc.reuseAddress(fd)
      if (args.family === libc.AF_INET6) libc.ipv6Only(fd)
      libc.bind(fd, libc.socketAddress(args.family, args.host, args.port))
      if (args.backlog !== undefined) libc.listen(fd, args.backlog)
    }
    return { fd, port: args.bind && args.family !== libc.AF_UNIX ? libc.boundPort(fd) : args.port }
  } catch (error) {
    libc.close(fd)
    throw fail(error)
  }
}

interface SpawnArgs {
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly env: ReadonlyArray<string>
  readonly stdio: readonly [number, number, number]
  readonly cwd?: string
}

/** A process started from this thread (so inside the set) with posix_spawn; returns its pid at once. */
const spawnProcess = (args: SpawnArgs) => {
  const [file, argv] = throughHelper(args.command, args.args)
  try {
    return libc.spawn({ file, argv: [file, ...argv], env: args.env, stdio: args.stdio, cwd: args.cwd })
  } catch (error) {
    if (error instanceof libc.SyscallFailure && (error.errno === "ENOENT" || error.errno === "EACCES")) {
      throw { _tag: "CommandNotFound", command: file, errno: error.errno } satisfies WireError
    }
    throw syscallError("NamespaceSet.spawn", error)
  }
}

const tasks: Record<string, (args: any) => unknown> = {
  tid: () => tid,
  identify,
  exec,
  module: runModule,
  unshare: unshareKinds,
  clone: cloneKinds,
  socket: makeSocket,
  spawn: spawnProcess,
  mount: (args: { operation: string; mounts: ReadonlyArray<persist.Mount>; exclusive: boolean }) =>
    persist.mountAll(args.operation, args.mounts, args.exclusive),
  unmount: (args: { targets: ReadonlyArray<string> }) => {
    for (const target of args.targets) persist.unmountOne(target)
  },
  hostname: () => os.hostname(),
  setHostname: (args: { name: string }) => {
    try {
      libc.sethostname(args.name)
    } catch (error) {
      throw syscallError("Task.setHostname", error)
    }
  },
  readFile: (args: { path: string }) => {
    try {
      return fs.readFileSync(args.path, "utf8")
    } catch (error) {
      throw syscallError("Task.readFile", error, { path: args.path })
    }
  },
  writeFile: (args: { path: string; data: string | Uint8Array; mode?: number }) => {
    try {
      fs.writeFileSync(args.path, args.data, args.mode === undefined ? {} : { mode: args.mode })
    } catch (error) {
      throw syscallError("Task.writeFile", error, { path: args.path })
    }
  }
}

/** What a task threw, as the typed error it reports. */
const taskFailure = (spec: TaskSpec, error: unknown): Outcome => {
  if (typeof (error as WireError)?._tag === "string") return { ok: false, error: error as WireError }
  try {
    return { ok: false, error: syscallError(`Task.${spec.op}`, error) }
  } catch {
    return { ok: false, error: { _tag: "ThreadFailure", reason: `task ${spec.op} failed: ${String(error)}`, tid } }
  }
}

const runTask = (spec: TaskSpec): Outcome | Promise<Outcome> => {
  const handler = tasks[spec.op]
  if (handler === undefined) {
    return { ok: false, error: { _tag: "ThreadFailure", reason: `unknown task ${spec.op}`, tid } }
  }
  try {
    const value = handler(spec.args)
    if (value instanceof Promise) {
      return value.then((result): Outcome => ({ ok: true, value: result }), (error) => taskFailure(spec, error))
    }
    return { ok: true, value }
  } catch (error) {
    return taskFailure(spec, error)
  }
}

// ---------------------------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------------------------

const finish = (request: Request, outcome: Outcome | undefined, mustLeave = false): void => {
  const state = request.leave === true || mustLeave
    ? leave()
    : { clean: tainted === undefined, ...(tainted === undefined ? {} : { reason: tainted }) }
  const response: Response = outcome === undefined ? state : { outcome, ...state }
  try {
    channel.write(chan, response, channel.RESPONSE)
  } catch (error) {
    if (!(error instanceof channel.TooLarge)) throw error
    const tooLarge: Response = {
      outcome: { ok: false, error: { _tag: "PayloadTooLarge", bytes: error.bytes, limit: channel.limit } },
      ...state
    }
    channel.write(chan, tooLarge, channel.RESPONSE)
  }
}

const serve = (): void => {
  for (;;) {
    if (!channel.awaitRequest(chan)) return cancelled()
    const request = channel.read(chan) as Request
    let outcome: Outcome | Promise<Outcome> | undefined
    try {
      if (request.enter !== undefined) join(request.operation, request.enter, request.pidfd)
    } catch (error) {
      // Half inside a set is nowhere to stay: undo the kinds already joined before answering.
      finish(request, { ok: false, error: error as WireError }, true)
      continue
    }
    try {
      if (request.task !== undefined) outcome = runTask(request.task)
    } catch (error) {
      outcome = { ok: false, error: error as WireError }
    }
    if (outcome instanceof Promise) {
      // An asynchronous task (a child process, a user module) needs this thread's event loop, so
      // the thread stops serving until it settles. It stays in the set's namespaces meanwhile.
      outcome.then((settled) => {
        finish(request, settled)
        setImmediate(serve)
      })
      return
    }
    finish(request, outcome)
  }
}

// A cancelled thread is about to be terminated; before that, the children its tasks started are
// killed with their process groups and reaped, and the main thread is told. Cancellation reaches
// a thread two ways: by the channel, which it checks whenever it waits for a request (so it is
// heard after a synchronous task), and by postMessage, which its event loop delivers while an
// asynchronous task is in progress. A thread busy in synchronous user code hears neither, and is
// terminated without an answer.
const cancelled = (): void => {
  const pending = [...children].map((child) =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve()
      child.once("exit", () => resolve())
      try {
        process.kill(-child.pid!, "SIGKILL")
      } catch {
        child.kill("SIGKILL")
      }
    })
  )
  void Promise.all(pending).then(() => port.postMessage({ cancelled: true }))
}

port.on("message", (message: { cancel?: boolean }) => {
  if (message.cancel === true) cancelled()
})

const ready: Ready = { tid, baseline, fds: [cwdFd, ...Object.values(baselineFd)] }
port.postMessage(ready)
setImmediate(serve)
