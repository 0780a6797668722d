/**
 * Bind mounts of namespace fds onto files: what keeps a namespace alive with no process and no fd
 * in it, and gives it a name (`ip netns` keeps network namespaces in /run/netns this way). Runs on
 * the main thread, or on a pinned thread inside the mount namespace the mounts belong in, so it
 * uses synchronous calls only and reports failures as plain data.
 *
 * @internal
 */
import * as fs from "node:fs"
import type { NamespaceKind } from "../NamespaceKind.ts"
import * as libc from "./libc.ts"
import { syscallError } from "./failure.ts"
import type { WireError } from "./protocol.ts"

export interface Mount {
  readonly kind: NamespaceKind
  readonly fd: number
  readonly target: string
}

const failure = (operation: string, error: unknown, context: { kind?: NamespaceKind; path: string }): WireError => {
  if (error instanceof libc.SyscallFailure && error.call === "mount" && error.errno === "EINVAL" && context.kind === "mnt") {
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

/**
 * Bind-mounts each namespace onto its target, creating the target file (and its directory) where
 * missing; all or nothing. `exclusive` refuses a target that already exists.
 */
export const mountAll = (operation: string, mounts: ReadonlyArray<Mount>, exclusive = false): void => {
  const done: Array<{ target: string; created: boolean }> = []
  try {
    for (const mount of mounts) {
      let created = false
      try {
        fs.mkdirSync(mount.target.slice(0, mount.target.lastIndexOf("/")) || "/", { recursive: true })
        const fd = fs.openSync(mount.target, exclusive ? "wx" : "a", 0o444)
        fs.closeSync(fd)
        created = true
      } catch (error) {
        if (exclusive || (error as NodeJS.ErrnoException).code !== "EISDIR") throw failure(operation, error, { kind: mount.kind, path: mount.target })
      }
      try {
        libc.bindMount(`/proc/self/fd/${mount.fd}`, mount.target)
      } catch (error) {
        if (created) fs.rmSync(mount.target, { force: true })
        throw failure(operation, error, { kind: mount.kind, path: mount.target })
      }
      done.push({ target: mount.target, created })
    }
  } catch (error) {
    for (const { target } of done.reverse()) unmountOne(target)
    throw error
  }
}

/** Detaches the mount at `target` and removes the file. Missing targets are fine. */
export const unmountOne = (target: string): void => {
  try {
    libc.unmount(target)
  } catch (error) {
    if (!(error instanceof libc.SyscallFailure && (error.errno === "EINVAL" || error.errno === "ENOENT"))) throw error
  }
  fs.rmSync(target, { force: true })
}

export const NETNS_DIR = "/run/netns"

/**
 * Prepares /run/netns as `ip netns add` does: a mount point of its own with shared propagation,
 * so that a name added here reaches mount namespaces made after it (and `ip netns exec`'s).
 */
export const prepareNetnsDir = (operation: string): void => {
  try {
    fs.mkdirSync(NETNS_DIR, { recursive: true, mode: 0o755 })
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
