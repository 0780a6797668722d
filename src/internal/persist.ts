/**
 * Bind mounts of namespace fds onto files: what keeps a namespace alive with no process and no fd
 * in it, and gives it a name (`ip netns` keeps network namespaces in /run/netns this way). Runs on
 * the main thread, or on a pinned thread inside the mount namespace the mounts belong in, so it
 * uses synchronous calls only and reports failures as plain data.
 *
 * gonso runs as root, and targets are often in shared directories such as /tmp, where anyone can
 * plant a symbolic link. So no path here is resolved through a symlink: every directory on the
 * way to a target, and the target itself, is opened with `openat2(RESOLVE_NO_SYMLINKS)`, one
 * component at a time, and the mount is made by fds (`open_tree` + `move_mount`), never by path.
 * Directories are made 0755 whatever the umask; what this code made (directories, target files) is
 * reported, so that only that is removed with the mounts. `unmount` acts only on namespace mounts
 * (nsfs): anything else is refused and left as it is.
 *
 * @internal
 */
import { isMainThread } from "node:worker_threads"
import type { NamespaceKind } from "./kind.ts"
import * as libc from "./libc.ts"
import { syscallError } from "./failure.ts"
import type { Made, Mount, Unmount, WireError } from "./protocol.ts"

export type { Made, Mount, Unmount }

const refused = (operation: string, path: string, reason: string): WireError => ({ _tag: "PathRefused", operation, path, reason })

const failure = (operation: string, error: unknown, context: { kind?: NamespaceKind; path: string }): WireError => {
  if (typeof (error as WireError)?._tag === "string" && !(error instanceof Error)) return error as WireError
  if (
    error instanceof libc.SyscallFailure && context.kind === "mnt" &&
    (error.call === "move_mount" || error.call === "mount") && (error.errno === "EINVAL" || error.errno === "ELOOP")
  ) {
    return {
      _tag: "InvalidOptions",
      operation,
      reason: `a mount namespace cannot be mounted inside itself (or a namespace made after it): ${context.path}`
    }
  }
  try {
    return syscallError(operation, error, context)
  } catch {
    return { _tag: "ThreadFailure", reason: String(error) }
  }
}

const closeQuietly = (fd: number) => {
  try {
    libc.close(fd)
  } catch {
    // Nothing to do.
  }
}

const errnoOf = (error: unknown) => (error instanceof libc.SyscallFailure ? error.errno : undefined)

/** A path cut into its directories and its last component. */
const split = (path: string) => {
  const parts = path.split("/").filter((part) => part !== "" && part !== ".")
  return { absolute: path.startsWith("/"), dirs: parts.slice(0, -1), name: parts.at(-1) }
}

const join = (absolute: boolean, parts: ReadonlyArray<string>) => (absolute ? "/" : "") + parts.join("/")

/**
 * Opens the directory that holds `path`'s last component (`O_PATH`), following no symlink.
 * With `create`, missing directories are made 0755 (and listed in `made`). Throws a WireError;
 * `undefined` when a directory is missing and `create` is off.
 */
const openParent = (
  operation: string,
  path: string,
  create: boolean,
  made: Array<string> = []
): { dirFd: number; name: string } | undefined => {
  const { absolute, dirs, name } = split(path)
  if (name === undefined || name === "..") throw refused(operation, path, "does not name a file")
  let dirFd = libc.openNoSymlinks(libc.AT_FDCWD, absolute ? "/" : ".", libc.O_PATH | libc.O_DIRECTORY)
  try {
    for (let i = 0; i < dirs.length; i++) {
      const part = dirs[i]!
      const here = join(absolute, dirs.slice(0, i + 1))
      let next: number
      try {
        next = libc.openNoSymlinks(dirFd, part, libc.O_PATH | libc.O_DIRECTORY)
      } catch (error) {
        const errno = errnoOf(error)
        if (errno === "ELOOP") throw refused(operation, path, `${here} is a symbolic link (pass the path it points to, if you mean it)`)
        if (errno !== "ENOENT") throw failure(operation, error, { path: here })
        if (!create) {
          closeQuietly(dirFd)
          return undefined
        }
        next = makeDirectory(operation, dirFd, part, here, made)
      }
      closeQuietly(dirFd)
      dirFd = next
    }
    return { dirFd, name }
  } catch (error) {
    closeQuietly(dirFd)
    throw error
  }
}

/** Makes directory `name` in `dirFd`, mode 0755 whatever the umask; returns it opened `O_PATH`. */
const makeDirectory = (operation: string, dirFd: number, name: string, path: string, made: Array<string>): number => {
  try {
    libc.mkdirat(dirFd, name, 0o755)
  } catch (error) {
    // Made by someone else meanwhile: use it, as if it had been there.
    if (errnoOf(error) !== "EEXIST") throw failure(operation, error, { path })
    try {
      return libc.openNoSymlinks(dirFd, name, libc.O_PATH | libc.O_DIRECTORY)
    } catch (again) {
      throw errnoOf(again) === "ELOOP" ? refused(operation, path, "is a symbolic link") : failure(operation, again, { path })
    }
  }
  made.push(path)
  let fd: number
  try {
    fd = libc.openNoSymlinks(dirFd, name, libc.O_RDONLY | libc.O_DIRECTORY)
  } catch (error) {
    throw failure(operation, error, { path })
  }
  try {
    libc.fchmod(fd, 0o755)
    return libc.openNoSymlinks(dirFd, name, libc.O_PATH | libc.O_DIRECTORY)
  } catch (error) {
    throw failure(operation, error, { path })
  } finally {
    closeQuietly(fd)
  }
}

/** What is at `name` in `dirFd`, opened `O_PATH` without following it; undefined if nothing. */
const inspect = (operation: string, dirFd: number, name: string, path: string) => {
  let fd: number
  try {
    fd = libc.openNoSymlinks(dirFd, name, libc.O_PATH | libc.O_NOFOLLOW)
  } catch (error) {
    if (errnoOf(error) === "ENOENT") return undefined
    throw failure(operation, error, { path })
  }
  try {
    const stats = libc.statOfFd(fd)
    const nsfs = libc.filesystemType(fd) === libc.NSFS_MAGIC
    return { fd, stats, nsfs }
  } catch (error) {
    closeQuietly(fd)
    throw failure(operation, error, { path })
  }
}

/**
 * The target file of one mount, opened: reused if it exists as a regular file (or a namespace
 * mount, which the new mount covers), created 0444 otherwise. `exclusive` (netns names) refuses
 * an existing name, but takes over an empty file with nothing mounted on it (a stale name).
 */
const openTarget = (operation: string, dirFd: number, name: string, path: string, exclusive: boolean) => {
  const existing = inspect(operation, dirFd, name, path)
  if (existing !== undefined) {
    const { fd, stats, nsfs } = existing
    const refuse = (reason: string): never => {
      closeQuietly(fd)
      throw refused(operation, path, reason)
    }
    if (libc.isFileType(stats, libc.S_IFLNK)) refuse("is a symbolic link, which gonso never follows")
    if (!libc.isFileType(stats, libc.S_IFREG)) refuse("exists and is not a regular file")
    if (exclusive) {
      if (nsfs) {
        closeQuietly(fd)
        throw { _tag: "SystemError", operation, call: "open", errno: "EEXIST", code: 17, path } satisfies WireError
      }
      if (stats.size !== 0) refuse("exists and is neither a namespace mount nor an empty file")
      return { fd, created: true } // a stale name, taken over: it goes with the mount
    }
    return { fd, created: false }
  }
  try {
    return { fd: libc.openNoSymlinks(dirFd, name, libc.O_RDONLY | libc.O_CREAT | libc.O_EXCL | libc.O_NOFOLLOW, 0o444), created: true }
  } catch (error) {
    if (errnoOf(error) === "EEXIST") throw refused(operation, path, "appeared while it was being made")
    throw failure(operation, error, { path })
  }
}

/** Removes `made`'s directories, deepest first, while they are empty. */
const removeDirectories = (dirs: ReadonlyArray<string>): void => {
  for (const dir of [...dirs].reverse()) {
    let parent: { dirFd: number; name: string } | undefined
    try {
      parent = openParent("", dir, false)
    } catch {
      continue
    }
    if (parent === undefined) continue
    try {
      libc.unlinkat(parent.dirFd, parent.name, true)
    } catch {
      // Not empty, or gone: someone else's now.
    } finally {
      closeQuietly(parent.dirFd)
    }
  }
}

/**
 * Bind-mounts each namespace onto its target, creating the target file (and its directories)
 * where missing; all or nothing. `exclusive` refuses a target that already exists (netns names).
 * Returns what was made, for {@link unmountAll} to remove.
 */
export const mountAll = (operation: string, mounts: ReadonlyArray<Mount>, exclusive = false): Array<Made> => {
  // Undoing what was mounted needs no fd of its own (the process may be out of them): the targets'
  // directories stay open until the end, and a pinned thread's way back to its working directory
  // is opened first.
  const saved = isMainThread ? undefined : libc.open(".", libc.O_PATH | libc.O_DIRECTORY)
  const done: Array<{ readonly made: Made; readonly dirFd: number; readonly name: string }> = []
  try {
    for (const mount of mounts) {
      const dirs: Array<string> = []
      const parent = (() => {
        try {
          return openParent(operation, mount.target, true, dirs)!
        } catch (error) {
          removeDirectories(dirs)
          throw failure(operation, error, { kind: mount.kind, path: mount.target })
        }
      })()
      let target: { fd: number; created: boolean }
      try {
        target = openTarget(operation, parent.dirFd, parent.name, mount.target, exclusive)
      } catch (error) {
        closeQuietly(parent.dirFd)
        removeDirectories(dirs)
        throw failure(operation, error, { kind: mount.kind, path: mount.target })
      }
      try {
        libc.bindMountFds(mount.fd, target.fd)
      } catch (error) {
        if (target.created) {
          try {
            libc.unlinkat(parent.dirFd, parent.name)
          } catch {
            // Gone already.
          }
        }
        closeQuietly(parent.dirFd)
        removeDirectories(dirs)
        throw failure(operation, error, { kind: mount.kind, path: mount.target })
      } finally {
        closeQuietly(target.fd)
      }
      done.push({ made: { target: mount.target, file: target.created, dirs }, dirFd: parent.dirFd, name: parent.name })
    }
  } catch (error) {
    // All or nothing: what was mounted is detached again, and what was made for it removed.
    for (const { made, dirFd, name } of [...done].reverse()) {
      try {
        detach(dirFd, name, saved)
      } catch {
        // The first failure is the one to report.
      }
      if (made.file) {
        try {
          libc.unlinkat(dirFd, name)
        } catch {
          // Still mounted, or gone.
        }
      }
    }
    removeDirectories(done.flatMap(({ made }) => made.dirs))
    throw error
  } finally {
    for (const { dirFd } of done) closeQuietly(dirFd)
    if (saved !== undefined) closeQuietly(saved)
  }
  return done.map(({ made }) => made)
}

/**
 * Detaches the namespace mount at `name` in `dirFd`. umount2 takes a path, so the path is made
 * relative to the directory already opened: on a pinned thread (which has its own working
 * directory) by changing into it, on the main thread through the process's own /proc. A pinned
 * thread comes back to `saved` (its working directory, opened beforehand by a caller that must not
 * need a new fd here), or to one it opens.
 */
const detach = (dirFd: number, name: string, saved?: number): void => {
  if (isMainThread) return libc.unmount(`/proc/self/fd/${dirFd}/${name}`)
  const back = saved ?? libc.open(".", libc.O_PATH | libc.O_DIRECTORY)
  try {
    libc.fchdir(dirFd)
    libc.unmount(name)
  } finally {
    try {
      libc.fchdir(back)
    } finally {
      if (saved === undefined) closeQuietly(back)
    }
  }
}

/**
 * Detaches the namespace mounts at the targets' paths and removes what the library made for them
 * (`file`, `dirs`). Every target is checked before any is touched: a symlink, or anything that is
 * not a namespace mount, is refused (`PathRefused`) and everything is left as it was. A path
 * with nothing at it is fine.
 */
export const unmountAll = (operation: string, targets: ReadonlyArray<Unmount>): void => {
  const checked: Array<{ unmount: Unmount; dirFd: number; name: string; mounted: boolean }> = []
  try {
    for (const unmount of targets) {
      const parent = openParent(operation, unmount.path, false)
      if (parent === undefined) continue
      const entry = { unmount, ...parent, mounted: true }
      checked.push(entry)
      const found = inspect(operation, parent.dirFd, parent.name, unmount.path)
      if (found === undefined) continue
      closeQuietly(found.fd)
      if (libc.isFileType(found.stats, libc.S_IFLNK)) throw refused(operation, unmount.path, "is a symbolic link, which gonso never follows")
      // Detached already (by an earlier try that failed halfway): the empty file gonso made for
      // it, with nothing on it. Anything else not a namespace mount is refused.
      if (!found.nsfs && unmount.file && libc.isFileType(found.stats, libc.S_IFREG) && found.stats.size === 0) entry.mounted = false
      else if (!found.nsfs) throw refused(operation, unmount.path, "is not a namespace mount; left as it is")
    }
    for (const { unmount, dirFd, name, mounted } of checked) {
      try {
        if (mounted) detach(dirFd, name)
      } catch (error) {
        if (!(errnoOf(error) === "EINVAL" || errnoOf(error) === "ENOENT")) throw failure(operation, error, { path: unmount.path })
      }
      if (unmount.file) {
        // Only the file the library made, and only once nothing is mounted on it any more.
        const left = inspect(operation, dirFd, name, unmount.path)
        if (left !== undefined) {
          closeQuietly(left.fd)
          if (libc.isFileType(left.stats, libc.S_IFREG) && !left.nsfs && left.stats.size === 0) {
            try {
              libc.unlinkat(dirFd, name)
            } catch {
              // Gone already.
            }
          }
        }
      }
    }
    // The directories last, deepest first: one made for several targets empties only with the last.
    const dirs = [...new Set(checked.flatMap(({ unmount }) => unmount.dirs))]
    removeDirectories(dirs.sort((a, b) => a.split("/").length - b.split("/").length))
  } catch (error) {
    throw failure(operation, error, { path: checked.at(-1)?.unmount.path ?? "" })
  } finally {
    for (const { dirFd } of checked) closeQuietly(dirFd)
  }
}

export const NETNS_DIR = "/run/netns"

/**
 * Prepares /run/netns as `ip netns add` does: a mount point of its own with shared propagation,
 * so that a name added here reaches mount namespaces made after it (and `ip netns exec`'s). The
 * directory is made 0755 if missing, and stays, as iproute2 leaves it.
 */
export const prepareNetnsDir = (operation: string): void => {
  const parent = openParent(operation, `${NETNS_DIR}/x`, true)!
  closeQuietly(parent.dirFd)
  try {
    try {
      libc.makeShared(NETNS_DIR)
    } catch (error) {
      if (!(error instanceof libc.SyscallFailure && error.errno === "EINVAL")) throw error
      // Not a mount point yet: bind it onto itself, then share it.
      libc.bindMount(NETNS_DIR, NETNS_DIR)
      libc.makeShared(NETNS_DIR)
    }
  } catch (error) {
    throw failure(operation, error, { path: NETNS_DIR })
  }
}

/** Whether `path` is an empty regular file with nothing mounted on it: a stale netns name. */
export const isStaleName = (path: string): boolean => {
  let parent: { dirFd: number; name: string } | undefined
  try {
    parent = openParent("", path, false)
  } catch {
    return false
  }
  if (parent === undefined) return false
  try {
    const found = inspect("", parent.dirFd, parent.name, path)
    if (found === undefined) return false
    closeQuietly(found.fd)
    return libc.isFileType(found.stats, libc.S_IFREG) && !found.nsfs && found.stats.size === 0
  } catch {
    return false
  } finally {
    closeQuietly(parent.dirFd)
  }
}
