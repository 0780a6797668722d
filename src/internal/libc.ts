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
import { createRequire } from "node:module"

const require = createRequire(import.meta.url)
const koffi = require("koffi") as typeof import("koffi")

const lib = koffi.load("libc.so.6")

const c = {
  unshare: lib.func("int unshare(int flags)"),
  setns: lib.func("int setns(int fd, int nstype)"),
  open: lib.func("int open(const char *path, int flags)"),
  close: lib.func("int close(int fd)"),
  fcntl: lib.func("int fcntl(int fd, int cmd, int arg)"),
  ioctl: lib.func("int ioctl(int fd, unsigned long request, unsigned long arg)"),
  fchdir: lib.func("int fchdir(int fd)"),
  gettid: lib.func("int gettid()"),
  mount: lib.func("int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data)"),
  sethostname: lib.func("int sethostname(const char *name, size_t len)")
}

/** errno numbers to names (EPERM, ENOENT, ...), from the platform's table. */
const errnoNames: ReadonlyMap<number, string> = new Map(
  Object.entries(koffi.os.errno as Record<string, number>).map(([name, code]) => [code, name])
)

/** The name of an errno value, or `E<number>` for one the table does not know. */
export const errnoName = (code: number): string => errnoNames.get(code) ?? `E${code}`

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

const check = (call: string, result: number): number => {
  if (result < 0) throw new SyscallFailure(call, koffi.errno())
  return result
}

export const O_RDONLY = 0
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

export const unshare = (flags: number): void => {
  check("unshare", c.unshare(flags))
}

export const setns = (fd: number, nstype: number): void => {
  check("setns", c.setns(fd, nstype))
}

/** `open(path, O_RDONLY | O_CLOEXEC | extra)`. */
export const open = (path: string, extra = 0): number => check("open", c.open(path, O_RDONLY | O_CLOEXEC | extra))

export const close = (fd: number): void => {
  check("close", c.close(fd))
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

export type Propagation = "private" | "slave"

/** Recursively change the propagation of every mount under `/` of the calling thread's mount namespace. */
export const setRootPropagation = (propagation: Propagation): void => {
  const flags = MS_REC | (propagation === "private" ? MS_PRIVATE : MS_SLAVE)
  check("mount", c.mount(null, "/", null, flags, null))
}

export const sethostname = (name: string): void => {
  check("sethostname", c.sethostname(name, Buffer.byteLength(name)))
}
