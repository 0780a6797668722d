/**
 * Which JavaScript runtime gonso runs on (Node, Bun or Deno), and the few places where they differ
 * for gonso: how a pipe made through libc becomes a Node stream, and how a socket made inside a
 * set is connected. Every such decision is made here, once.
 *
 * @internal
 */
import * as fs from "node:fs"
import * as net from "node:net"
import type { Readable, Writable } from "node:stream"
import { UnsupportedRuntime } from "./errors.ts"

/** The runtime's name and version, as `process.versions` tells them. */
export interface Runtime {
  readonly name: "node" | "bun" | "deno"
  readonly version: string
}

const versions = process.versions as NodeJS.ProcessVersions & { readonly bun?: string; readonly deno?: string }

export const current: Runtime = versions.bun !== undefined
  ? { name: "bun", version: versions.bun }
  : versions.deno !== undefined
  ? { name: "deno", version: versions.deno }
  : { name: "node", version: versions.node }

/** `"bun 1.4.5"`: how errors name the runtime. */
export const description = `${current.name} ${current.version}`

/** Whether a Worker whose script is TypeScript runs it as it is: Bun's and Deno's do; Node's is given stripped sources. */
export const runsTypeScript = current.name !== "node"

/**
 * Whether `node:net` reads and writes a pipe fd made through libc (`new net.Socket({ fd })`):
 * Node's does; Bun's neither reads from an adopted fd nor says so, and Deno's does not take one.
 */
export const adoptsPipes = current.name === "node"

/**
 * How a connection from inside a set is made (the set's socket is made by a pinned thread):
 * - `"adopt-then-connect"` (Node): `net.Socket({ fd })` adopts the socket, and its `connect`
 *   connects that very socket;
 * - `"connect-then-adopt"` (Deno): Deno's `connect` would make a socket of its own, in the host's
 *   network namespace, but it adopts a socket that is connected already: gonso connects it
 *   through libc first;
 * - `"unsupported"` (Bun): Bun's `net.Socket` neither connects an adopted socket (it makes one of
 *   its own, in the host's namespace) nor uses a connected one ("Socket is closed"), and its HTTP
 *   client does not ask an agent for connections.
 */
export const connecting: "adopt-then-connect" | "connect-then-adopt" | "unsupported" = current.name === "node"
  ? "adopt-then-connect"
  : current.name === "deno"
  ? "connect-then-adopt"
  : "unsupported"

/**
 * `UnsupportedRuntime` for a connection from inside a set where the runtime cannot make one
 * (see {@link connecting}): refused, never let through to the host's network.
 */
export const connectionsInside = (operation: string, mode = connecting): UnsupportedRuntime | undefined =>
  mode !== "unsupported" ? undefined : new UnsupportedRuntime({
    operation,
    runtime: description,
    missing: "node:net cannot connect a socket made inside the set (it would connect from the host's network namespace)"
  })

/**
 * `UnsupportedRuntime` at the layer for what every pinned thread needs: Worker threads, shared
 * memory and `Atomics.waitAsync` (how a thread's answer reaches the main loop).
 */
export const missingForThreads = (operation: string, worker: unknown): UnsupportedRuntime | undefined => {
  const missing = typeof worker !== "function"
    ? "node:worker_threads' Worker"
    : typeof SharedArrayBuffer !== "function"
    ? "SharedArrayBuffer"
    : typeof Atomics.waitAsync !== "function"
    ? "Atomics.waitAsync"
    : undefined
  return missing === undefined ? undefined : new UnsupportedRuntime({ operation, runtime: description, missing })
}

/**
 * The read end of a pipe made through libc, as a stream that owns it (and closes it).
 *
 * On Node it is a `net.Socket` on the fd, read without blocking on the event loop. Bun's and
 * Deno's `net.Socket` cannot adopt an fd, and Deno's `node:fs` knows only fds it opened itself:
 * there the pipe is opened again through `/proc/self/fd` (a pipe opened so is the same pipe) by
 * the runtime's own `fs`, read by its file stream, and gonso's fd closed at once.
 */
export const pipeReadable = (fd: number, close: (fd: number) => void, adopt = adoptsPipes): Readable =>
  adopt ? new net.Socket({ fd, readable: true, writable: false }) : fs.createReadStream("", { fd: reopen(fd, "r", close) })

/** The write end of a pipe made through libc, as a stream that owns it; as {@link pipeReadable}. */
export const pipeWritable = (fd: number, close: (fd: number) => void, adopt = adoptsPipes): Writable =>
  adopt ? new net.Socket({ fd, readable: false, writable: true }) : fs.createWriteStream("", { fd: reopen(fd, "w", close) })

/** The runtime's own fd on what gonso's `fd` refers to; gonso's is closed once that is open. */
const reopen = (fd: number, flags: "r" | "w", close: (fd: number) => void): number => {
  const own = fs.openSync(`/proc/self/fd/${fd}`, flags)
  close(fd)
  return own
}
