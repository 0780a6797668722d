/**
 * The libc calls gonso makes, through koffi. This is the only module that imports koffi; it is
 * loaded both by the main thread and by every pinned thread (each loads its own copy of koffi).
 *
 * Every wrapper reads errno right after its call (koffi keeps errno per thread) and throws a
 * {@link SyscallFailure} carrying the call's name and the errno's name and number. Callers turn
 * that into a typed error with the namespace kind, path or pid they were working on.
 *
 * File descriptors opened here are always close-on-exec: Node's own fds are, and a namespace fd
 * leaked into a child would keep that namespace alive (and give the child a way into it).
 *
 * Nothing here may block indefinitely: `worker.terminate()` waits for a koffi call to return, so
 * a blocking call on a pinned thread would make that thread impossible to drop.
 *
 * @internal
 */
import * as fs from "node:fs"
import * as os from "node:os"
import { createRequire } from "node:module"
import { AF_INET, AF_INET6 } from "./netlink/constants.ts"
import type * as protocol from "./protocol.ts"

const require = createRequire(import.meta.url)

/**
 * Which koffi addon this thread loads: the one `scripts/koffi/build.mjs` built at install time
 * from koffi's own sources with its per-thread memory fix, if it is there and made for the koffi
 * installed; koffi's prebuilt one otherwise. (koffi never frees the data it allocates for each
 * thread that loads it; with gonso's threads coming and going, the process would grow.)
 */
const loadKoffi = (): { readonly koffi: typeof import("koffi"); readonly build: "patched" | "prebuilt" } => {
  const dir = new URL("../../build/koffi/", import.meta.url)
  try {
    const stamp = JSON.parse(fs.readFileSync(new URL("koffi.json", dir), "utf8")) as { version?: unknown; patch?: unknown }
    const native = require(new URL("koffi.node", dir).pathname) as typeof import("koffi") & { readonly version?: unknown }
    if (stamp.patch === "instance-data" && stamp.version === native.version && native.version === koffiVersion()) {
      return { koffi: native, build: "patched" }
    }
  } catch {
    // Not built here: koffi's own.
  }
  return { koffi: require("koffi") as typeof import("koffi"), build: "prebuilt" }
}

/** The version of the koffi package installed, from its package.json (its exports do not include it). */
const koffiVersion = (): string | undefined => {
  for (let dir = new URL("./", `file://${require.resolve("koffi")}`); ; dir = new URL("../", dir)) {
    try {
      const manifest = JSON.parse(fs.readFileSync(new URL("package.json", dir), "utf8")) as { name?: string; version?: string }
      if (manifest.name === "koffi") return manifest.version
    } catch {
      // Not here.
    }
    if (dir.pathname === "/") return undefined
  }
}

const loaded = loadKoffi()
const koffi = loaded.koffi
/** Whether this thread runs the koffi addon gonso built (`"patched"`) or koffi's own. */
export const koffiBuild = loaded.build

const lib = koffi.load("libc.so.6")

/**
 * Each binding is declared on first use: a declared function costs memory in every thread that
 * loads this module, and a pinned thread uses only a few of them.
 */
const lazily = <T extends Record<string, () => unknown>>(declarations: T): { readonly [K in keyof T]: ReturnType<T[K]> } => {
  const bindings = {} as { [K in keyof T]: ReturnType<T[K]> }
  for (const name of Object.keys(declarations) as Array<keyof T>) {
    Object.defineProperty(bindings, name, {
      configurable: true,
      get() {
        const value = declarations[name]!()
        Object.defineProperty(bindings, name, { value })
        return value
      }
    })
  }
  return bindings
}

const c = lazily({
  unshare: () => lib.func("int unshare(int flags)"),
  setns: () => lib.func("int setns(int fd, int nstype)"),
  open: () => lib.func("int open(const char *path, int flags)"),
  openat: () => lib.func("int openat(int dirfd, const char *path, int flags)"),
  fstatat: () => lib.func("int fstatat(int dirfd, const char *path, _Out_ uint8_t *buf, int flags)"),
  readlinkat: () => lib.func("long readlinkat(int dirfd, const char *path, _Out_ uint8_t *buf, size_t size)"),
  write: () => lib.func("long write(int fd, const uint8_t *buf, size_t len)"),
  close: () => lib.func("int close(int fd)"),
  fcntl: () => lib.func("int fcntl(int fd, int cmd, int arg)"),
  ioctl: () => lib.func("int ioctl(int fd, unsigned long request, unsigned long arg)"),
  fchdir: () => lib.func("int fchdir(int fd)"),
  gettid: () => lib.func("int gettid()"),
  schedYield: () => lib.func("int sched_yield()"),
  mallocTrim: () => lib.func("int malloc_trim(size_t pad)"),
  mount: () => lib.func("int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data)"),
  sethostname: () => lib.func("int sethostname(const char *name, size_t len)"),
  ioctlUid: () => lib.func("ioctl", "int", ["int", "unsigned long", koffi.out(koffi.pointer("uint32_t"))]),
  clone: () => lib.func("int clone(uintptr_t fn, uintptr_t stack, int flags, uintptr_t arg, ...)"),
  dlsym: () => lib.func("uintptr_t dlsym(uintptr_t handle, const char *name)"),
  sigfillset: () => lib.func("int sigfillset(_Inout_ uint8_t *set)"),
  pthreadSigmask: () => lib.func("int pthread_sigmask(int how, const uint8_t *set, _Out_ uint8_t *old)"),
  kill: () => lib.func("int kill(int pid, int sig)"),
  waitpid: () => lib.func("int waitpid(int pid, _Out_ int *status, int options)"),
  syscall: () => lib.func("long syscall(long number, ...)"),
  umount2: () => lib.func("int umount2(const char *target, int flags)"),
  mkdirat: () => lib.func("int mkdirat(int dirfd, const char *path, unsigned int mode)"),
  unlinkat: () => lib.func("int unlinkat(int dirfd, const char *path, int flags)"),
  fchmod: () => lib.func("int fchmod(int fd, unsigned int mode)"),
  fstatfs: () => lib.func("int fstatfs(int fd, _Out_ uint8_t *buf)"),
  malloc: () => lib.func("uintptr_t malloc(size_t size)"),
  socket: () => lib.func("int socket(int domain, int type, int protocol)"),
  bind: () => lib.func("int bind(int fd, const uint8_t *addr, uint32_t len)"),
  listen: () => lib.func("int listen(int fd, int backlog)"),
  setsockopt: () => lib.func("int setsockopt(int fd, int level, int name, const int *value, uint32_t len)"),
  getsockname: () => lib.func("int getsockname(int fd, _Out_ uint8_t *addr, _Inout_ uint32_t *len)"),
  connect: () => lib.func("int connect(int fd, const uint8_t *addr, uint32_t len)"),
  getsockopt: () => lib.func("int getsockopt(int fd, int level, int name, _Out_ int *value, _Inout_ uint32_t *len)"),
  inetPton: () => lib.func("int inet_pton(int af, const char *src, _Out_ uint8_t *dst)"),
  pipe2: () => lib.func("int pipe2(_Out_ int *fds, int flags)"),
  faInit: () => lib.func("int posix_spawn_file_actions_init(uint8_t *actions)"),
  faDestroy: () => lib.func("int posix_spawn_file_actions_destroy(uint8_t *actions)"),
  faDup2: () => lib.func("int posix_spawn_file_actions_adddup2(uint8_t *actions, int fd, int newfd)"),
  faChdir: () => lib.func("int posix_spawn_file_actions_addchdir_np(uint8_t *actions, const char *path)"),
  attrInit: () => lib.func("int posix_spawnattr_init(uint8_t *attr)"),
  attrDestroy: () => lib.func("int posix_spawnattr_destroy(uint8_t *attr)"),
  attrSetflags: () => lib.func("int posix_spawnattr_setflags(uint8_t *attr, short flags)"),
  attrSetsigmask: () => lib.func("int posix_spawnattr_setsigmask(uint8_t *attr, const uint8_t *mask)"),
  attrSetsigdefault: () => lib.func("int posix_spawnattr_setsigdefault(uint8_t *attr, const uint8_t *mask)"),
  sigemptyset: () => lib.func("int sigemptyset(_Inout_ uint8_t *set)"),
  posixSpawnp: () => lib.func("int posix_spawnp(_Out_ int *pid, const char *file, const uint8_t *actions, const uint8_t *attr, const char **argv, const char **envp)"),
  free: () => lib.func("void free(uintptr_t ptr)"),
  prctl: () => lib.func("int prctl(int option, unsigned long arg)"),
  ptrace: () => lib.func("long ptrace(int request, ...)"),
  strerror: () => lib.func("const char *strerror(int errnum)")
})

/** errno numbers to names (EPERM, ENOENT, ...), from the platform's table. */
const errnoNames: ReadonlyMap<number, string> = new Map(
  Object.entries(koffi.os.errno as Record<string, number>).map(([name, code]) => [code, name])
)

/** The name of an errno value, or `E<number>` for one the table does not know. */
export const errnoName = (code: number): string => errnoNames.get(code) ?? `E${code}`

let errnoMessages: ReadonlyArray<{ readonly message: string; readonly errno: string; readonly code: number }> | undefined

/**
 * The errno whose `strerror` text a helper program printed (`"...: Numerical result out of
 * range"` is ERANGE), the longest such text found in `text`; undefined when there is none.
 */
export const errnoInMessage = (text: string): { readonly errno: string; readonly code: number } | undefined => {
  errnoMessages ??= [...errnoNames]
    .map(([code, errno]) => ({ message: String(c.strerror(code)), errno, code }))
    .filter((entry) => entry.message !== "" && !entry.message.startsWith("Unknown error"))
    .sort((a, b) => b.message.length - a.message.length)
  const found = errnoMessages.find((entry) => text.includes(entry.message))
  return found === undefined ? undefined : { errno: found.errno, code: found.code }
}

/**
 * A failed libc call. Plain data plus a message, so that it can cross a thread boundary by
 * structured clone and be rebuilt as a typed error on the other side.
 */
export class SyscallFailure extends Error {
  readonly call: string
  readonly errno: string
  readonly code: number
  constructor(call: string, code: number) {
    const errno = errnoName(code)
    super(`${call}: ${errno} (${code})`)
    this.call = call
    this.errno = errno
    this.code = code
  }
}

const EINVAL = 22

/**
 * A string for a `const char *` parameter. koffi passes a string's bytes up to its first NUL, so a
 * string holding one would reach the kernel cut short (`"/proc/self/ns/net\0/etc/passwd"` opens
 * `/proc/self/ns/net`): refused with EINVAL instead. Callers check their strings before they get
 * here (`validate.ts`); this is the last line of defence.
 */
const cString = (call: string, value: string): string => {
  if (typeof value !== "string" || value.includes("\0")) throw new SyscallFailure(call, EINVAL)
  return value
}

const check = (call: string, result: number): number => {
  if (result < 0) throw new SyscallFailure(call, koffi.errno())
  return result
}

export const O_RDONLY = 0
export const O_RDWR = 2
export const O_DIRECTORY = 0o200000
export const O_CLOEXEC = 0o2000000
export const O_PATH = 0o10000000

const F_DUPFD_CLOEXEC = 1030

/** `ioctl_ns(2)` requests: `_IO(0xb7, n)`. */
export const NS_GET_USERNS = 0xb701
export const NS_GET_PARENT = 0xb702
export const NS_GET_NSTYPE = 0xb703
export const NS_GET_OWNER_UID = 0xb704

export const CLONE_FS = 0x200

const MS_REC = 0x4000
const MS_PRIVATE = 1 << 18
const MS_SLAVE = 1 << 19
const MS_SHARED = 1 << 20

export const unshare = (flags: number): void => {
  check("unshare", c.unshare(flags))
}

const CLONE_NEWNS = 0x00020000

/**
 * `setns(2)`. The kernel refuses to move a thread into a mount namespace (EINVAL) while its
 * filesystem attributes (cwd, root) are shared with another thread. A pinned thread unshares
 * them at birth, but a runtime may later start threads of its own from it (Bun does, now and
 * then), which share them again: then they are unshared once more (`unshare(CLONE_FS)`, which
 * touches this thread alone) and the join is tried again, once.
 */
export const setns = (fd: number, nstype: number): void => {
  if (c.setns(fd, nstype) === 0) return
  const code = koffi.errno()
  if (nstype === CLONE_NEWNS && errnoName(code) === "EINVAL" && c.unshare(CLONE_FS) === 0) {
    check("setns", c.setns(fd, nstype))
    return
  }
  throw new SyscallFailure("setns", code)
}

/** `open(path, O_RDONLY | O_CLOEXEC | extra)`. */
export const open = (path: string, extra = 0): number => check("open", c.open(cString("open", path), O_RDONLY | O_CLOEXEC | extra))

/** `openat(2)` relative to the directory `dirfd`, close-on-exec. */
export const openAt = (dirfd: number, path: string, extra = 0): number =>
  check("openat", c.openat(dirfd, cString("openat", path), O_RDONLY | O_CLOEXEC | extra))

const statBuffer = Buffer.alloc(256)

/**
 * What `fstatat(2)` tells of a file, read off `struct stat`: st_dev and st_ino are its first two
 * 64-bit fields on x86_64 and arm64 alike; st_mode follows the 64-bit st_nlink on x86_64 and
 * comes before the 32-bit one on arm64; st_size is at byte 48 on both.
 */
export interface FileStat {
  readonly dev: number
  readonly ino: number
  /** The file's type and permission bits (`st_mode`). */
  readonly mode: number
  readonly size: number
}

const ST_MODE = process.arch === "x64" ? 24 : 16
const ST_SIZE = 48
const S_IFMT = 0o170000

/** The file types of `st_mode`. */
export const S_IFREG = 0o100000
export const S_IFDIR = 0o040000
export const S_IFLNK = 0o120000

/** Whether `stat` is of the file type `type` (`S_IFREG`, `S_IFDIR`, `S_IFLNK`). */
export const isFileType = (stat: FileStat, type: number): boolean => (stat.mode & S_IFMT) === type

const readU64 = (offset: number) => statBuffer.readUInt32LE(offset) + statBuffer.readUInt32LE(offset + 4) * 2 ** 32

/** `fstatat(2)` of `path` relative to the directory `dirfd`. */
export const statAt = (dirfd: number, path: string, flags = 0): FileStat => {
  check("fstatat", c.fstatat(dirfd, cString("fstatat", path), statBuffer, flags))
  return { dev: readU64(0), ino: readU64(8), mode: statBuffer.readUInt32LE(ST_MODE), size: readU64(ST_SIZE) }
}

/** The device and inode of `path` relative to the directory `dirfd`. */
export const identityAt = (dirfd: number, path: string, flags = 0): { readonly dev: number; readonly ino: number } => {
  const { dev, ino } = statAt(dirfd, path, flags)
  return { dev, ino }
}

const AT_EMPTY_PATH = 0x1000

/**
 * `fstat(2)` of an fd of gonso's own (made through this module, not through `node:fs`): Deno's
 * `node:fs` knows only the fds it opened itself, so no fd of ours goes to `fs.fstatSync`.
 */
export const statOfFd = (fd: number): FileStat => statAt(fd, "", AT_EMPTY_PATH)

/** The device and inode of the file `fd` refers to. */
export const identityOfFd = (fd: number): { readonly dev: number; readonly ino: number } => identityAt(fd, "", AT_EMPTY_PATH)

/**
 * Closes `fd` if it still refers to `identity`: for an fd handed to Node, which closes it itself
 * on some failures and not on others. Closed by Node already, its number is free or another
 * file's, and left alone.
 */
export const closeIfStill = (fd: number, identity: { readonly dev: number; readonly ino: number }): void => {
  let now: { readonly dev: number; readonly ino: number }
  try {
    now = identityOfFd(fd)
  } catch {
    return
  }
  if (now.dev === identity.dev && now.ino === identity.ino) close(fd)
}

const linkBuffer = Buffer.alloc(4096)

/** The target of the symbolic link `path` relative to the directory `dirfd` (`readlinkat(2)`). */
export const readlinkAt = (dirfd: number, path: string): string => {
  const length = Number(c.readlinkat(dirfd, cString("readlinkat", path), linkBuffer, linkBuffer.length))
  if (length < 0) throw new SyscallFailure("readlinkat", koffi.errno())
  return linkBuffer.toString("utf8", 0, length)
}

export const close = (fd: number): void => {
  check("close", c.close(fd))
}

/** Writes all of `data` to `fd` (`write(2)`, again after a short write; EINTR retried). */
export const writeAll = (fd: number, data: Buffer): void => {
  for (let written = 0; written < data.length;) {
    const count = Number(c.write(fd, data.subarray(written), data.length - written))
    if (count < 0) {
      const errno = koffi.errno()
      if (errnoName(errno) === "EINTR") continue
      throw new SyscallFailure("write", errno)
    }
    written += count
  }
}

/** A close-on-exec duplicate of `fd` (plain `dup()` would leak into children). */
export const dupCloexec = (fd: number): number => check("fcntl", c.fcntl(fd, F_DUPFD_CLOEXEC, 0))

/** `NS_GET_NSTYPE`: the CLONE_NEW* value of the namespace behind `fd`; ENOTTY for other files. */
export const namespaceType = (fd: number): number => check("ioctl", c.ioctl(fd, NS_GET_NSTYPE, 0))

/** An `ioctl_ns(2)` request that returns a new fd (NS_GET_USERNS, NS_GET_PARENT). */
export const namespaceRelative = (fd: number, request: number): number => {
  const relative = check("ioctl", c.ioctl(fd, request, 0))
  // The kernel opens these with O_CLOEXEC already; nothing to fix up.
  return relative
}

export const fchdir = (fd: number): void => {
  check("fchdir", c.fchdir(fd))
}

export const gettid = (): number => c.gettid()

/** Gives the CPU to another runnable thread, if there is one (`sched_yield(2)`). */
export const yieldCpu = (): void => {
  c.schedYield()
}

/**
 * Returns the heap memory free in every malloc arena to the system (glibc's `malloc_trim(0)`).
 * Each thread that ends leaves the memory it freed in the arena it used, most of it unused from
 * then on; called on the main thread once a pinned thread has ended. A libc without it (musl)
 * has nothing to do.
 */
export const trimHeap = (): void => {
  try {
    c.mallocTrim(0)
  } catch {
    // No malloc_trim here.
  }
}

export type Propagation = Exclude<protocol.Propagation, "unchanged">

/** Recursively change the propagation of every mount under `/` of the calling thread's mount namespace. */
export const setRootPropagation = (propagation: Propagation): void => {
  const flags = MS_REC | (propagation === "private" ? MS_PRIVATE : MS_SLAVE)
  check("mount", c.mount(null, "/", null, flags, null))
}

/** `NS_GET_OWNER_UID`: the uid (in the caller's user namespace) that created a user namespace. */
export const namespaceOwnerUid = (fd: number): number => {
  const uid = [0]
  check("ioctl", c.ioctlUid(fd, NS_GET_OWNER_UID, uid))
  return uid[0]!
}

export const sethostname = (name: string): void => {
  check("sethostname", c.sethostname(cString("sethostname", name), Buffer.byteLength(name)))
}

const CLONE_VM = 0x100
const CLONE_FILES = 0x400
const SIGCHLD = 17
const SIG_BLOCK = 0
const SIG_SETMASK = 2
const STACK_BYTES = 16 * 1024
let pauseAddress: number | undefined
const pause = () => (pauseAddress ??= c.dlsym(0, "pause") as number)

/** A parked child: its pid and the stack it runs on, to be freed once it is reaped. */
export interface Parked {
  readonly pid: number
  readonly stack: number
}

/**
 * Starts a child process in new namespaces (`flags`: CLONE_NEW* bits) that does nothing but wait
 * for SIGKILL.
 *
 * User namespaces can only be made by a single-threaded process, so they are made by a child:
 * glibc's `clone()` runs libc's own `pause` in it (a native function pointer: no JavaScript ever
 * runs in the child). The child shares the address space (`CLONE_VM`, so nothing of this large
 * process is copied: that is most of the cost of a fork) and runs on a small stack of its own,
 * which must stay allocated until the child is reaped. It shares the fd table (`CLONE_FILES`), so
 * it holds no copies of the process's fds: a socket closed here is not kept open by it. Every
 * signal is blocked in this thread across the call, and so in the child: a signal meant for it
 * would otherwise run the parent's handlers (libuv's) in the child. With every signal blocked,
 * `pause` never returns; SIGKILL cannot be blocked and ends it.
 */
export const cloneParked = (flags: number): Parked => {
  const stack = c.malloc(STACK_BYTES) as number
  if (stack === 0) throw new SyscallFailure("malloc", 12)
  const top = stack + STACK_BYTES - 64
  const all = Buffer.alloc(128)
  const previous = Buffer.alloc(128)
  c.sigfillset(all)
  let pid = -1
  let code = 0
  const masked = c.pthreadSigmask(SIG_BLOCK, all, previous)
  if (masked !== 0) {
    c.free(stack)
    throw new SyscallFailure("pthread_sigmask", masked)
  }
  try {
    pid = c.clone(pause(), top, flags | CLONE_VM | CLONE_FILES | SIGCHLD, 0)
    if (pid < 0) code = koffi.errno()
  } finally {
    c.pthreadSigmask(SIG_SETMASK, previous, null)
  }
  if (pid < 0) {
    c.free(stack)
    throw new SyscallFailure("clone", code)
  }
  return { pid, stack }
}

export const SIGKILL = 9
const WNOHANG = 1

export const kill = (pid: number, signal: number): void => {
  check("kill", c.kill(pid, signal))
}

/** Reaps `pid` if it has exited; never blocks. True once reaped (or already gone). */
export const reapNoHang = (pid: number): boolean => {
  try {
    return waitNoHang(pid) !== undefined
  } catch (error) {
    if (error instanceof SyscallFailure && error.errno === "ECHILD") return true
    throw error
  }
}

const nap = new Int32Array(new SharedArrayBuffer(4))

/**
 * Kills a child made by {@link cloneParked}, reaps it, and frees its stack, polling for at most
 * `timeoutMs` (a killed child is gone within microseconds; nothing here blocks indefinitely).
 * Returns whether it was reaped; a child that was not keeps its stack, which it may still be using.
 */
export const killAndReap = (child: Parked, timeoutMs = 1_000): boolean => {
  try {
    kill(child.pid, SIGKILL)
  } catch (error) {
    if (!(error instanceof SyscallFailure && error.errno === "ESRCH")) throw error
  }
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (reapNoHang(child.pid)) {
      c.free(child.stack)
      return true
    }
    if (Date.now() >= deadline) return false
    // A killed child takes a few tens of microseconds to become reapable.
    Atomics.wait(nap, 0, 0, 0.02)
  }
}

/**
 * Reaps, on the main thread, a child that {@link killAndReap} killed but could not reap in time
 * (a dying child can wait long for a CPU on a loaded machine): polled on a timer that never keeps
 * the process alive, until it is reaped; its stack is freed then.
 */
export const reapWhenGone = (child: Parked): void => {
  let delay = 10
  const poll = () => {
    let reaped: boolean
    try {
      reaped = reapNoHang(child.pid)
    } catch {
      reaped = false
    }
    if (reaped) return c.free(child.stack)
    delay = Math.min(delay * 2, 1_000)
    setTimeout(poll, delay).unref()
  }
  setTimeout(poll, delay).unref()
}

const PTRACE_SEIZE = 0x4206
const PTRACE_O_EXITKILL = 0x100000

/**
 * Makes the calling thread `pid`'s tracer with `PTRACE_O_EXITKILL`, and nothing else: no stop, no
 * syscall tracing. The kernel then kills `pid` when the calling thread exits, however it exits,
 * SIGKILL of the whole process included; that is what ties a parked child's life to the process
 * that made it (a parked child cannot arrange that itself: no code of ours runs in it).
 */
export const tieToThread = (pid: number): void => {
  check("ptrace", Number(c.ptrace(PTRACE_SEIZE, "int", pid, "uintptr_t", 0, "uintptr_t", PTRACE_O_EXITKILL)))
}

const SYS_pidfd_open = 434

/** `pidfd_open(2)`: an fd that refers to process `pid` (close-on-exec, as the kernel makes it). */
export const pidfdOpen = (pid: number): number =>
  check("pidfd_open", Number(c.syscall(SYS_pidfd_open, "int", pid, "unsigned int", 0)))

const SYS_pidfd_send_signal = 424

/**
 * Whether the process behind a pidfd is still alive (`pidfd_send_signal` with signal 0): unlike a
 * pid, a pidfd never comes to name another process.
 */
export const pidfdAlive = (pidfd: number): boolean => {
  const result = Number(c.syscall(SYS_pidfd_send_signal, "int", pidfd, "int", 0, "void *", null, "unsigned int", 0))
  if (result === 0) return true
  const code = koffi.errno()
  if (errnoName(code) === "ESRCH") return false
  throw new SyscallFailure("pidfd_send_signal", code)
}

const MNT_DETACH = 2
const UMOUNT_NOFOLLOW = 8

/** Detaches the mount at `target` (lazily, like `umount -l`), never following a last-component symlink. */
export const unmount = (target: string): void => {
  check("umount2", c.umount2(cString("umount2", target), MNT_DETACH | UMOUNT_NOFOLLOW))
}

// ---------------------------------------------------------------------------------------------
// Paths that never follow symlinks
// ---------------------------------------------------------------------------------------------

export const AT_FDCWD = -100
export const O_NOFOLLOW = 0o400000
export const O_CREAT = 0o100
export const O_EXCL = 0o200
export const O_NONBLOCK = 0o4000
export const O_NOCTTY = 0o400
const AT_REMOVEDIR = 0x200
const SYS_openat2 = 437
const RESOLVE_NO_MAGICLINKS = 0x02
const RESOLVE_NO_SYMLINKS = 0x04

/**
 * `openat2(2)` with `RESOLVE_NO_SYMLINKS`: no symbolic link (nor /proc magic link) anywhere in
 * `path` is followed; one fails with ELOOP. With `O_PATH | O_NOFOLLOW`, a symlink as the last
 * component is opened itself (the caller checks what it got). Always close-on-exec.
 */
export const openNoSymlinks = (dirFd: number, path: string, flags: number, mode = 0): number => {
  const how = Buffer.alloc(24)
  how.writeBigUInt64LE(BigInt(flags | O_CLOEXEC), 0)
  how.writeBigUInt64LE(BigInt(mode), 8)
  how.writeBigUInt64LE(BigInt(RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), 16)
  return check("openat2", Number(c.syscall(SYS_openat2, "int", dirFd, "const char *", cString("openat2", path), "uint8_t *", how, "size_t", 24)))
}

/** `mkdirat(2)`; the mode is subject to the umask (see {@link fchmod}). */
export const mkdirat = (dirFd: number, name: string, mode: number): void => {
  check("mkdirat", c.mkdirat(dirFd, cString("mkdirat", name), mode))
}

export const fchmod = (fd: number, mode: number): void => {
  check("fchmod", c.fchmod(fd, mode))
}

/** `unlinkat(2)` of `name` in `dirFd`: a file, or with `directory`, an empty directory. */
export const unlinkat = (dirFd: number, name: string, directory = false): void => {
  check("unlinkat", c.unlinkat(dirFd, cString("unlinkat", name), directory ? AT_REMOVEDIR : 0))
}

/** The magic number of nsfs, the filesystem of namespace files (`statfs.f_type`). */
export const NSFS_MAGIC = 0x6e736673

/** `fstatfs(2)`'s `f_type`: which filesystem `fd` is on (works on O_PATH fds). */
export const filesystemType = (fd: number): number => {
  const buffer = Buffer.alloc(120)
  check("fstatfs", c.fstatfs(fd, buffer))
  return Number(buffer.readBigInt64LE(0))
}

const SYS_open_tree = 428
const SYS_move_mount = 429
const OPEN_TREE_CLONE = 1
const MOVE_MOUNT_F_EMPTY_PATH = 0x04
const MOVE_MOUNT_T_EMPTY_PATH = 0x40

/**
 * Bind-mounts the file behind `sourceFd` (a namespace fd) onto the file behind `targetFd`, by fds
 * alone (`open_tree(OPEN_TREE_CLONE)` then `move_mount`): no path is looked up, so neither a
 * symlink nor a /proc that a set replaced can redirect it.
 */
export const bindMountFds = (sourceFd: number, targetFd: number): void => {
  const tree = check("open_tree", Number(c.syscall(SYS_open_tree, "int", sourceFd, "const char *", "", "unsigned int", OPEN_TREE_CLONE | O_CLOEXEC | AT_EMPTY_PATH)))
  try {
    check("move_mount", Number(c.syscall(SYS_move_mount, "int", tree, "const char *", "", "int", targetFd, "const char *", "", "unsigned int", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)))
  } finally {
    c.close(tree)
  }
}

const MS_BIND = 0x1000

/** Bind-mounts `source` (e.g. `/proc/self/fd/N` of a namespace fd) onto `target`. */
export const bindMount = (source: string, target: string): void => {
  check("mount", c.mount(cString("mount", source), cString("mount", target), null, MS_BIND, null))
}

const MS_NOSUID = 2
const MS_NODEV = 4
const MS_NOEXEC = 8

/** Mounts a new filesystem of `fstype` (e.g. sysfs) at `target`, nosuid, nodev, noexec. */
export const mountFilesystem = (source: string, target: string, fstype: string): void => {
  check("mount", c.mount(source, target, fstype, MS_NOSUID | MS_NODEV | MS_NOEXEC, null))
}

/** Makes the mount at `target` (and those below it) shared. */
export const makeShared = (target: string): void => {
  check("mount", c.mount("none", cString("mount", target), null, MS_SHARED | MS_REC, null))
}

// ---------------------------------------------------------------------------------------------
// Sockets
// ---------------------------------------------------------------------------------------------

export const AF_UNIX = 1
// The address families, defined once with the kernel's other constants.
export { AF_INET, AF_INET6 }
export const SOCK_STREAM = 1
export const SOCK_DGRAM = 2
const SOCK_NONBLOCK = 0o4000
const SOCK_CLOEXEC = 0o2000000
const SOL_SOCKET = 1
const SO_REUSEADDR = 2
const IPPROTO_IPV6 = 41
const IPV6_V6ONLY = 26

/**
 * A socket made by the calling thread, so in the thread's network namespace: the kernel binds a
 * socket to the network namespace it is created in, for life. Close-on-exec and non-blocking, as
 * Node's own are (a blocking socket could hang a pinned thread forever).
 */
export const socket = (family: number, type: number): number =>
  check("socket", c.socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0))

/** A `sockaddr_in`, `sockaddr_in6` or `sockaddr_un` for `bind`. */
export const socketAddress = (family: number, host: string, port: number): Buffer => {
  if (family === AF_UNIX) {
    const path = Buffer.from(cString("bind", host))
    if (path.length >= 108) throw new SyscallFailure("bind", 36 /* ENAMETOOLONG */)
    const address = Buffer.alloc(110)
    address.writeUInt16LE(AF_UNIX, 0)
    path.copy(address, 2)
    return address
  }
  const address = Buffer.alloc(family === AF_INET ? 16 : 28)
  address.writeUInt16LE(family, 0)
  address.writeUInt16BE(port, 2)
  const bytes = Buffer.alloc(16)
  if (c.inetPton(family, cString("inet_pton", host), bytes) !== 1) throw new SyscallFailure("inet_pton", 22 /* EINVAL */)
  if (family === AF_INET) bytes.copy(address, 4, 0, 4)
  else bytes.copy(address, 8, 0, 16)
  return address
}

export const reuseAddress = (fd: number): void => {
  check("setsockopt", c.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, [1], 4))
}

/** Makes an IPv6 socket IPv6-only (`::` then does not also take IPv4 connections). */
export const ipv6Only = (fd: number): void => {
  check("setsockopt", c.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, [1], 4))
}

export const bind = (fd: number, address: Buffer): void => {
  check("bind", c.bind(fd, address, address.length))
}

export const listen = (fd: number, backlog: number): void => {
  check("listen", c.listen(fd, backlog))
}

/** The port a bound inet socket got (the kernel picks one for port 0). */
export const boundPort = (fd: number): number => {
  const address = Buffer.alloc(128)
  const length = [address.length]
  check("getsockname", c.getsockname(fd, address, length))
  return address.readUInt16BE(2)
}

/**
 * Starts connecting the non-blocking socket `fd` to `address`: `true` when it connected at once,
 * `false` when it is under way (`EINPROGRESS`: see {@link connectResult}); throws on any other
 * failure (`ECONNREFUSED`, `ENETUNREACH`, ...).
 */
export const connectStart = (fd: number, address: Buffer): boolean => {
  if (c.connect(fd, address, address.length) === 0) return true
  const code = koffi.errno()
  if (errnoName(code) === "EINPROGRESS") return false
  throw new SyscallFailure("connect", code)
}

const SO_ERROR = 4
const POLLOUT = 4

/**
 * Where a connection started by {@link connectStart} is, without waiting: `undefined` while it
 * is still under way, `true` once connected; throws the failure it ended with (`SO_ERROR`).
 */
export const connectResult = (fd: number): true | undefined => {
  const pollfd = Buffer.alloc(8)
  pollfd.writeInt32LE(fd, 0)
  pollfd.writeInt16LE(POLLOUT, 4)
  const ready = nl.poll(pollfd, 1, 0)
  if (ready < 0) {
    const code = koffi.errno()
    if (errnoName(code) === "EINTR") return undefined
    throw new SyscallFailure("poll", code)
  }
  if (ready === 0) return undefined
  const value = [0]
  check("getsockopt", c.getsockopt(fd, SOL_SOCKET, SO_ERROR, value, [4]))
  if (value[0] !== 0) throw new SyscallFailure("connect", value[0]!)
  return true
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/** A close-on-exec pipe: `[readEnd, writeEnd]`; `extra` flags (`O_NONBLOCK`) apply to both ends. */
export const pipe = (extra = 0): [number, number] => {
  const fds = [0, 0]
  check("pipe2", c.pipe2(fds, O_CLOEXEC | extra))
  return [fds[0]!, fds[1]!]
}

const POSIX_SPAWN_SETSIGDEF = 0x04
const POSIX_SPAWN_SETSIGMASK = 0x08
const POSIX_SPAWN_SETSID = 0x80

export interface SpawnOptions {
  readonly file: string
  readonly argv: ReadonlyArray<string>
  readonly env: ReadonlyArray<string>
  /** fds to become the child's 0, 1 and 2. */
  readonly stdio: readonly [number, number, number]
  readonly cwd?: string | undefined
}

/**
 * Starts a process from the calling thread with `posix_spawnp`, so it is born in the thread's
 * namespaces. glibc starts it with `clone(CLONE_VM | CLONE_VFORK)` and runs only libc code in it
 * until `exec`, so no JavaScript runs in the child; every signal is reset to its default and
 * unblocked in it. It leads a new session and process group (`setsid`), so the whole group can be
 * killed at once. Unlike `child_process`, nothing in libuv tracks the child: the caller reaps it.
 */
export const spawn = (options: SpawnOptions): number => {
  const file = cString("posix_spawnp", options.file)
  const argv = options.argv.map((arg) => cString("posix_spawnp", arg))
  const env = options.env.map((entry) => cString("posix_spawnp", entry))
  const cwd = options.cwd === undefined ? undefined : cString("posix_spawn_file_actions_addchdir_np", options.cwd)
  const actions = Buffer.alloc(256)
  const attr = Buffer.alloc(1024)
  const none = Buffer.alloc(128)
  const all = Buffer.alloc(128)
  c.sigemptyset(none)
  c.sigfillset(all)
  const zero = (call: string, result: number) => {
    if (result !== 0) throw new SyscallFailure(call, result)
  }
  zero("posix_spawn_file_actions_init", c.faInit(actions))
  zero("posix_spawnattr_init", c.attrInit(attr))
  try {
    options.stdio.forEach((fd, target) => zero("posix_spawn_file_actions_adddup2", c.faDup2(actions, fd, target)))
    if (cwd !== undefined) zero("posix_spawn_file_actions_addchdir_np", c.faChdir(actions, cwd))
    zero("posix_spawnattr_setflags", c.attrSetflags(attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    zero("posix_spawnattr_setsigmask", c.attrSetsigmask(attr, none))
    zero("posix_spawnattr_setsigdefault", c.attrSetsigdefault(attr, all))
    const pid = [0]
    zero("posix_spawnp", c.posixSpawnp(pid, file, actions, attr, [...argv, null], [...env, null]))
    return pid[0]!
  } finally {
    c.faDestroy(actions)
    c.attrDestroy(attr)
  }
}

/** An environment as {@link spawn} takes it: `KEY=value` entries; unset keys are left out. */
export const environment = (env: Readonly<Record<string, string | undefined>>): Array<string> =>
  Object.entries(env).flatMap(([key, value]) => value === undefined ? [] : [`${key}=${value}`])

const signalNames = new Map(Object.entries(os.constants.signals).map(([name, number]) => [number, name as NodeJS.Signals]))

/** The name of signal `signal` (`SIGKILL`), or null for a number Node has no name for. */
export const signalName = (signal: number): NodeJS.Signals | null => signalNames.get(signal) ?? null

/** The exit status of a reaped child, decoded. */
export interface ExitStatus {
  readonly exitCode: number | null
  readonly signal: number | null
}

/** Reaps `pid` if it has exited, without blocking; its status, or undefined while it runs. */
export const waitNoHang = (pid: number): ExitStatus | undefined => {
  const status = [0]
  const result = c.waitpid(pid, status, WNOHANG)
  if (result < 0) throw new SyscallFailure("waitpid", koffi.errno())
  if (result === 0) return undefined
  const raw = status[0]!
  const signal = raw & 0x7f
  return signal === 0 ? { exitCode: (raw >> 8) & 0xff, signal: null } : { exitCode: null, signal }
}

const PR_SET_DUMPABLE = 4

/**
 * Makes the process dumpable again. The kernel clears the flag when a process changes its uids,
 * which hands its /proc files (among them a child's uid_map) to root.
 */
export const setDumpable = (): void => {
  check("prctl", c.prctl(PR_SET_DUMPABLE, 1))
}

// ---------------------------------------------------------------------------------------------
// Netlink (rtnetlink): see `netlink/exchange.ts`
// ---------------------------------------------------------------------------------------------

const AF_NETLINK = 16
const SOCK_RAW = 3
const NETLINK_ROUTE = 0
const SOL_NETLINK = 270
const NETLINK_CAP_ACK = 10
const NETLINK_EXT_ACK = 11
const POLLIN = 1
const MSG_PEEK = 2
const MSG_TRUNC = 0x20
const MSG_DONTWAIT = 0x40

const nl = lazily({
  send: () => lib.func("long send(int fd, const uint8_t *buf, size_t len, int flags)"),
  recv: () => lib.func("long recv(int fd, _Out_ uint8_t *buf, size_t len, int flags)"),
  poll: () => lib.func("int poll(_Inout_ uint8_t *fds, unsigned long nfds, int timeout)"),
  ioctlIfreq: () => lib.func("ioctl", "int", ["int", "unsigned long", koffi.inout(koffi.pointer("uint8_t"))])
})

/** `SIOCGIFINDEX`, and the size of `struct ifreq` and of its name (`IFNAMSIZ`, with the NUL). */
const SIOCGIFINDEX = 0x8933
const IFREQ_SIZE = 40
const IFNAMSIZ = 16

/**
 * A `NETLINK_ROUTE` socket in the calling thread's network namespace (for life, like every
 * socket), non-blocking and close-on-exec, asking the kernel for extended acks (its own error
 * message) and for acks without a copy of the request. Kernels without those options still work.
 */
export const netlinkSocket = (): number => {
  const fd = check("socket", c.socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE))
  for (const option of [NETLINK_EXT_ACK, NETLINK_CAP_ACK]) c.setsockopt(fd, SOL_NETLINK, option, [1], 4)
  return fd
}

/** Sends one datagram without blocking; the kernel takes a netlink message whole or not at all. */
export const sendDatagram = (fd: number, data: Buffer): void => {
  const sent = Number(nl.send(fd, data, data.length, MSG_DONTWAIT))
  if (sent < 0) throw new SyscallFailure("send", koffi.errno())
}

/** Waits at most `timeoutMs` for `fd` to be readable; whether it is. */
export const waitReadable = (fd: number, timeoutMs: number): boolean => {
  const pollfd = Buffer.alloc(8)
  pollfd.writeInt32LE(fd, 0)
  pollfd.writeInt16LE(POLLIN, 4)
  const ready = nl.poll(pollfd, 1, Math.max(0, Math.ceil(timeoutMs)))
  if (ready < 0) {
    const code = koffi.errno()
    if (errnoName(code) === "EINTR") return false
    throw new SyscallFailure("poll", code)
  }
  return ready > 0
}

/**
 * Receives one datagram without blocking, into `buffer` or a larger one if it does not fit (its
 * size is peeked first); undefined when none is queued.
 */
export const receiveDatagram = (fd: number, buffer: Buffer): Buffer | undefined => {
  const size = Number(nl.recv(fd, buffer, buffer.length, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT))
  if (size < 0) {
    const code = koffi.errno()
    if (errnoName(code) === "EAGAIN") return undefined
    throw new SyscallFailure("recv", code)
  }
  const target = size > buffer.length ? Buffer.alloc(size) : buffer
  const got = Number(nl.recv(fd, target, target.length, MSG_DONTWAIT))
  if (got < 0) throw new SyscallFailure("recv", koffi.errno())
  return target.subarray(0, got)
}

/**
 * The index of link `name` in the network namespace of socket `fd` (`SIOCGIFINDEX` on it, as
 * `if_nametoindex(3)` does on a socket of its own: needing no other fd, it cannot fail for want of
 * one and report that as a missing link). ENODEV when there is no such link; a name the kernel
 * would cut to fit `IFNAMSIZ`, or with a NUL byte, is no link's.
 */
export const interfaceIndex = (fd: number, name: string): number => {
  const bytes = Buffer.from(name, "utf8")
  if (bytes.length === 0 || bytes.length >= IFNAMSIZ || bytes.includes(0)) throw new SyscallFailure("ioctl", 19 /* ENODEV */)
  const request = Buffer.alloc(IFREQ_SIZE)
  bytes.copy(request)
  check("ioctl", nl.ioctlIfreq(fd, SIOCGIFINDEX, request))
  return request.readInt32LE(IFNAMSIZ)
}
