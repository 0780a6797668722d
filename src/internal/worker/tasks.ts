/**
 * The handlers of a pinned thread's operations, one per entry of the protocol's table. Built-in
 * handlers are synchronous and use only synchronous calls, which act in the thread's namespaces
 * (asynchronous fs and dns run on libuv's shared pool, in the host's). Only `module` runs user
 * code, and only it may return a promise.
 *
 * @internal
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as v8 from "node:v8"
import { all, cloneFlag, enterOrder, type NamespaceKind, toCloneFlags } from "../kind.ts"
import * as libc from "../libc.ts"
import { exchange as netlink } from "../netlink/exchange.ts"
import * as persist from "../persist.ts"
import { isCommandNotFoundErrno, syscallError } from "../failure.ts"
import { nsenterOptions } from "../nsenter.ts"
import type { IdMapping, Member, Notice, Operation, Operations, WireError } from "../protocol.ts"
import { port } from "./started.ts"
import * as state from "./state.ts"

const O_WRONLY = 1

/** The kind an operation failed for, when there is just one. */
const onlyKind = (kinds: ReadonlyArray<NamespaceKind>) => kinds.length === 1 ? { kind: kinds[0]! } : {}

/**
 * Opens the namespace of each kind at `pathOf(kind)`, a path under this process's /proc: all of
 * them, or none (and throws).
 */
const openMembers = (operation: string, kinds: ReadonlyArray<NamespaceKind>, pathOf: (kind: NamespaceKind) => string) => {
  const members: Array<Member> = []
  try {
    for (const kind of kinds) {
      const fd = state.openProc(pathOf(kind))
      members.push({ kind, fd, ...libc.identityOfFd(fd) })
    }
  } catch (error) {
    for (const member of members) libc.close(member.fd)
    throw syscallError(operation, error)
  }
  return members
}

const unshare = (args: Operations["unshare"]["args"]): Operations["unshare"]["result"] => {
  const operation = "NamespaceSet.unshare"
  try {
    libc.unshare(toCloneFlags(args.kinds))
  } catch (error) {
    throw syscallError(operation, error, onlyKind(args.kinds))
  }
  for (const kind of args.kinds) state.markTouched(kind)
  // A new mount namespace starts as a copy whose mounts still propagate to and from the host's
  // shared mounts; util-linux `unshare` makes them private by default, and so do we.
  if (args.kinds.includes("mnt") && args.propagation !== "unchanged") {
    try {
      libc.setRootPropagation(args.propagation)
    } catch (error) {
      throw syscallError(operation, error, { kind: "mnt", path: "/" })
    }
  }
  return { members: openMembers(operation, args.kinds, state.nsPath) }
}

/**
 * Kills and reaps a parked child; one that could not be reaped in time is handed to the main
 * thread, which reaps it once it is gone (this thread may be gone by then).
 */
const killAndReap = (child: libc.Parked): void => {
  if (!libc.killAndReap(child)) port.postMessage({ type: "orphan", child } satisfies Notice)
}

const mapText = (map: ReadonlyArray<IdMapping>) =>
  map.map((entry) => `${entry.containerId} ${entry.hostId} ${entry.size}\n`).join("")

/**
 * New namespaces made by a parked child (see `libc.cloneParked`): the only way a multithreaded
 * process can make a user namespace, and the way a new pid namespace gets the init process it
 * needs. The child is born in this thread's namespaces (the set it joined) for every kind not in
 * `kinds`, and new user namespaces' id maps are written before anything else can use it.
 */
const clone = (args: Operations["clone"]["args"]): Operations["clone"]["result"] => {
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
      const fd = state.openProc(`${pid}/${file}`, O_WRONLY)
      try {
        libc.writeAll(fd, Buffer.from(text))
      } finally {
        libc.close(fd)
      }
    } catch (error) {
      killAndReap(child)
      throw syscallError(operation, error, { kind: "user", path })
    }
  }
  if (args.uidMap !== undefined) write("uid_map", mapText(args.uidMap))
  if (args.setgroups !== undefined) write("setgroups", args.setgroups)
  if (args.gidMap !== undefined) write("gid_map", mapText(args.gidMap))
  let members: Array<Member>
  try {
    members = openMembers(operation, args.kinds, (kind) => `${pid}/ns/${kind}`)
  } catch (error) {
    killAndReap(child)
    throw error
  }
  // A new mount namespace copies shared mounts as shared, so mounts made in it would reach the
  // parent's; make them private (or slave) from inside, as for unshare. In a new user namespace the
  // kernel has already reduced them to slaves (it is less privileged than its parent).
  const mnt = members.find((member) => member.kind === "mnt")
  if (mnt !== undefined && !args.kinds.includes("user") && args.propagation !== "unchanged") {
    try {
      state.markTouched("mnt")
      libc.setns(mnt.fd, cloneFlag.mnt)
      libc.setRootPropagation(args.propagation)
    } catch (error) {
      for (const member of members) libc.close(member.fd)
      killAndReap(child)
      throw syscallError(operation, error, { kind: "mnt", path: "/" })
    }
  }
  if (args.keepInit) return { members, init: child }
  killAndReap(child)
  return { members }
}

const identify = (): Operations["identify"]["result"] => {
  const namespaces = {} as Record<NamespaceKind, { kind: NamespaceKind; id: string; dev: number; ino: number }>
  for (const kind of all) {
    namespaces[kind] = { kind, id: state.ownId(kind), ...state.currentIdentity(kind) }
  }
  return { tid: state.tid, namespaces }
}

/** A socket made on this thread, so in the set's network namespace; bound and listening if asked. */
const socket = (args: Operations["socket"]["args"]): Operations["socket"]["result"] => {
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

/**
 * How to start `command` inside the joined set: the command itself, or nsenter when the set holds
 * a user or time namespace other than the thread's (the kernel lets only a single-threaded process
 * join those), or, for sets joined through the helper, every kind.
 *
 * nsenter is given the namespaces as paths under this process's /proc, which a set's mount
 * namespace may hide behind a /proc of its own. So when the thread is inside a set's mount
 * namespace, nsenter is started from the thread's baseline mount namespace and joins the set's
 * itself, and a working directory is set by nsenter once inside (`--wdns`).
 */
const commandLine = (args: Operations["spawn"]["args"]) => {
  const viaHelper = state.throughHelper()
  const mnt = state.joinedMember("mnt")
  const insideMount = !viaHelper && mnt !== undefined && !state.isBaseline(mnt)
  const helperKinds: ReadonlyArray<NamespaceKind> = viaHelper ? enterOrder : ["user", "time"]
  const members = helperKinds.flatMap((kind) => {
    const member = state.joinedMember(kind)
    // The thread's own user and time namespaces need no joining: children are born in them.
    return member === undefined || (!viaHelper && state.isBaseline(member)) ? [] : [member]
  })
  if (members.length === 0) return { file: args.command, argv: args.args, cwd: args.cwd, nsenter: false, insideMount: false }
  const joins = insideMount ? [...members, mnt] : members
  const joinsMount = joins.some((member) => member.kind === "mnt")
  const wd = args.cwd !== undefined && joinsMount ? [`--wdns=${args.cwd}`] : []
  return {
    file: "nsenter",
    argv: [...nsenterOptions(joins), ...wd, "--", args.command, ...args.args],
    cwd: joinsMount ? undefined : args.cwd,
    nsenter: true,
    insideMount
  }
}

const searchPath = (env: ReadonlyArray<string>): ReadonlyArray<string> => {
  const entry = env.findLast((variable) => variable.startsWith("PATH="))
  // execvp's default when PATH is unset.
  return (entry === undefined ? "/bin:/usr/bin" : entry.slice(5)).split(":").map((dir) => dir === "" ? "." : dir)
}

/**
 * What nsenter would fail to exec (it exits 127 or 126, like the command could itself): looked up
 * here first, in the mount namespace the command runs in, as execvp will, so that a missing
 * command is `CommandNotFound` with or without nsenter.
 */
const findCommand = (args: Operations["spawn"]["args"]): void => {
  const candidates = args.command.includes("/")
    ? [args.command.startsWith("/") || args.cwd === undefined ? args.command : `${args.cwd}/${args.command}`]
    : searchPath(args.env).map((dir) => `${dir}/${args.command}`)
  let errno = "ENOENT"
  for (const candidate of candidates) {
    try {
      if (!fs.statSync(candidate).isFile()) continue
      fs.accessSync(candidate, fs.constants.X_OK)
      return
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EACCES") errno = "EACCES"
    }
  }
  throw { _tag: "CommandNotFound", command: args.command, errno } satisfies WireError
}

/** A process started from this thread (so inside the set) with posix_spawn; returns its pid at once. */
const spawn = (args: Operations["spawn"]["args"]): number => {
  const line = commandLine(args)
  if (line.nsenter) {
    // Where the command will run: the thread's mount namespace, or for a set joined through the
    // helper, the set's, which the thread enters just to look.
    const mnt = state.throughHelper() ? state.joinedMember("mnt") : undefined
    if (mnt === undefined || state.isBaseline(mnt)) findCommand(args)
    else {
      try {
        state.inMount(mnt, () => findCommand(args))
      } catch (error) {
        // A mount namespace this thread may not enter (an unprivileged caller's): nsenter, which
        // joins the user namespace first, looks the command up itself.
        if (!(error instanceof libc.SyscallFailure)) throw error
      }
    }
  }
  try {
    const start = () => libc.spawn({ file: line.file, argv: [line.file, ...line.argv], env: args.env, stdio: args.stdio, cwd: line.cwd })
    return line.insideMount ? state.atBaselineMount(start) : start()
  } catch (error) {
    if (error instanceof libc.SyscallFailure && isCommandNotFoundErrno(error.errno)) {
      // posix_spawn reports a working directory it could not enter with the same errno as a
      // missing command: look at the directory (from where the child would have started) to say which.
      if (args.cwd !== undefined && line.cwd !== undefined && !line.insideMount) {
        let problem: string | undefined
        try {
          if (!fs.statSync(args.cwd).isDirectory()) problem = "ENOTDIR"
        } catch (statError) {
          problem = (statError as NodeJS.ErrnoException).code ?? error.errno
        }
        if (problem !== undefined) {
          throw { ...syscallError(args.operation, new libc.SyscallFailure("chdir", problem === "ENOTDIR" ? 20 : problem === "EACCES" ? 13 : 2)), path: args.cwd } satisfies WireError
        }
      }
      throw { _tag: "CommandNotFound", command: line.file, errno: error.errno } satisfies WireError
    }
    // The kernel refuses every new process in a pid namespace whose init has exited, with ENOMEM.
    const pid = state.joinedMember("pid")
    if (error instanceof libc.SyscallFailure && error.errno === "ENOMEM" && pid !== undefined && !state.isBaseline(pid)) {
      throw {
        ...syscallError(args.operation, error, { kind: "pid" }),
        detail: "the init (pid 1) of the set's pid namespace has exited, so the kernel starts no process in it any more"
      } satisfies WireError
    }
    throw syscallError(args.operation, error)
  }
}

const READ_CHUNK = 64 * 1024

/** What a file that is not a regular one is, for the error that refuses it. */
const fileType = (stats: fs.Stats): string =>
  stats.isFIFO() ? "a FIFO" : stats.isCharacterDevice() ? "a character device" : stats.isBlockDevice() ? "a block device" : stats.isSocket() ? "a socket" : "not a regular file"

/**
 * At most `limit` bytes of the regular file at `path`, as UTF-8, read in chunks; `OutputTooLarge`
 * after `limit + 1` bytes, whatever the file's size claims (files of /proc report 0). The file is
 * opened non-blocking, so a FIFO without a writer does not hold the thread, and anything but a
 * regular file is refused before a byte is read: /dev/zero never ends, and a FIFO may never
 * answer. (The main side checked `path` and `limit`.)
 */
const readBounded = (path: string, limit: number): string => {
  const operation = "Task.readFile"
  let fd: number
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY)
  } catch (error) {
    throw syscallError(operation, error, { path })
  }
  try {
    const stats = fs.fstatSync(fd)
    if (stats.isDirectory()) throw { _tag: "SystemError", operation, call: "read", errno: "EISDIR", code: 21, path } satisfies WireError
    if (!stats.isFile()) {
      throw { _tag: "InvalidOptions", operation, reason: `${path} is ${fileType(stats)}: readFile reads regular files only (run a command, or a module task, for anything else)` } satisfies WireError
    }
    const chunks: Array<Buffer> = []
    let total = 0
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK, limit + 1 - total))
      let read: number
      try {
        read = fs.readSync(fd, chunk, 0, chunk.length, null)
      } catch (error) {
        throw syscallError(operation, error, { path })
      }
      if (read === 0) break
      chunks.push(read === chunk.length ? chunk : chunk.subarray(0, read))
      total += read
      if (total > limit) throw { _tag: "OutputTooLarge", operation, limit, path } satisfies WireError
    }
    return Buffer.concat(chunks, total).toString("utf8")
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * Writes `data` to the regular file at `path` (created with `mode` if missing, else truncated).
 * Opened non-blocking: a FIFO without a reader fails at once (ENXIO) instead of holding the thread
 * until one comes, and anything but a regular file is refused before a byte is written.
 */
const writeRegular = (path: string, data: Buffer, mode: number): void => {
  const operation = "Task.writeFile"
  const { O_WRONLY, O_CREAT, O_NONBLOCK, O_NOCTTY } = fs.constants
  const refuse = (stats: fs.Stats): WireError => ({
    _tag: "InvalidOptions",
    operation,
    reason: `${path} is ${fileType(stats)}: writeFile writes regular files only (run a command, or a module task, for anything else)`
  })
  let fd: number
  try {
    fd = fs.openSync(path, O_WRONLY | O_CREAT | O_NONBLOCK | O_NOCTTY, mode)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENXIO") {
      const stats = fs.statSync(path, { throwIfNoEntry: false })
      if (stats !== undefined && !stats.isFile()) throw refuse(stats)
    }
    throw syscallError(operation, error, { path })
  }
  try {
    const stats = fs.fstatSync(fd)
    if (stats.isDirectory()) throw { _tag: "SystemError", operation, call: "open", errno: "EISDIR", code: 21, path } satisfies WireError
    if (!stats.isFile()) throw refuse(stats)
    try {
      fs.ftruncateSync(fd, 0)
      for (let written = 0; written < data.length;) written += fs.writeSync(fd, data, written, data.length - written)
    } catch (error) {
      throw syscallError(operation, error, { path })
    }
  } finally {
    fs.closeSync(fd)
  }
}

/** Something a user module threw, made fit to cross by structured clone. */
const thrownValue = (error: unknown): unknown => {
  try {
    // A clone, plain data: nothing of the user's (a getter) runs when the answer is written.
    return structuredClone(error instanceof Error ? { ...error, name: error.name, message: error.message, stack: error.stack } : error)
  } catch {
    return error instanceof Error ? { name: textOf(error.name), message: textOf(error.message), stack: textOf(error.stack) } : textOf(error)
  }
}

/** A user's value as text, whatever it is (an object with no string form included). */
const textOf = (value: unknown): string => {
  try {
    return String(value)
  } catch {
    return Object.prototype.toString.call(value)
  }
}

const moduleTask = async (args: Operations["module"]["args"]): Promise<unknown> => {
  const fail = (name: string, error: unknown): WireError => ({
    _tag: "ModuleTaskError",
    url: args.url,
    exportName: args.exportName,
    name,
    error: thrownValue(error)
  })
  state.markUserCode()
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
    tid: state.tid,
    taint: (reason: unknown = "no reason given") => state.markUnclean({ _tag: "Tainted", detail: textOf(reason).slice(0, 1_000) })
  }
  let value: unknown
  try {
    value = await fn(args.input, context)
  } catch (error) {
    const tag = (error as { _tag?: unknown })?._tag
    throw fail(typeof tag === "string" ? tag : (error as Error)?.name ?? typeof error, error)
  }
  // Cloned here, while user code may still run on the thread: a getter of the result runs now,
  // before the thread's namespaces are checked, never while the answer is written.
  try {
    // The clone the channel makes (v8's serializer: a Buffer stays a Buffer), made early.
    return v8.deserialize(v8.serialize(value))
  } catch (error) {
    throw fail("DataCloneError", error)
  }
}

type Handlers = { readonly [K in Operation]: (args: Operations[K]["args"]) => Operations[K]["result"] | Promise<Operations[K]["result"]> }

export const handlers: Handlers = {
  tid: () => state.tid,
  identify,
  hostname: () => os.hostname(),
  setHostname: (args) => {
    try {
      libc.sethostname(args.name)
    } catch (error) {
      throw syscallError("Task.setHostname", error)
    }
  },
  readFile: (args) => readBounded(args.path, args.maxBytes),
  writeFile: (args) => writeRegular(args.path, Buffer.from(args.base64, "base64"), args.mode ?? 0o666),
  unshare,
  clone,
  socket,
  spawn,
  mount: (args) => persist.mountAll(args.operation, args.mounts, args.exclusive),
  unmount: (args) => persist.unmountAll(args.operation, args.targets),
  mountSysfs: (args) => {
    // Only ever in a set's own mount namespace: never the one the thread (and the host) started in.
    const mnt = state.joinedMember("mnt")
    if (mnt === undefined || state.isBaseline(mnt) || state.throughHelper()) {
      throw { _tag: "InvalidOptions", operation: args.operation, reason: "a fresh /sys is mounted only in a mount namespace of the set's own" } satisfies WireError
    }
    try {
      libc.unmount("/sys")
    } catch (error) {
      if (!(error instanceof libc.SyscallFailure && (error.errno === "EINVAL" || error.errno === "ENOENT"))) {
        throw syscallError(args.operation, error, { kind: "mnt", path: "/sys" })
      }
    }
    try {
      libc.mountFilesystem("sysfs", "/sys", "sysfs")
    } catch (error) {
      throw syscallError(args.operation, error, { kind: "net", path: "/sys" })
    }
  },
  netlink,
  module: moduleTask
}

/** Operations after which the thread is no longer inside the set it joined: it leaves at once. */
export const moving: ReadonlySet<Operation> = new Set<Operation>(["unshare", "clone"])
