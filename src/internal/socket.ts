/**
 * Sockets inside a set's network namespace: made by a pinned thread there, served and connected
 * from the main event loop. `NamespacedSocket` documents and delegates here.
 *
 * @internal
 */
import * as http from "node:http"
import * as net from "node:net"
import { Effect, type Scope } from "effect"
import { dual } from "effect/Function"
import {
  ConnectionRefused,
  type AddressInUse,
  type EnterError,
  InvalidOptions,
  type PermissionDenied,
  SystemError,
  Unreachable,
  type UnsupportedRuntime
} from "./errors.ts"
import type { NamespaceSet } from "./set.ts"
import type { PinnedThreads } from "./service.ts"
import * as libc from "./libc.ts"
import * as runtime from "./runtime.ts"
import { isNamespaceSet, runSpec } from "./set.ts"
import { wholeNumberProblem } from "./validate.ts"
import { fromNodeError, fromSyscall } from "./wire.ts"

/**
 * Options of {@link listen}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ListenOptions {
  /** `"tcp"` (default), `"udp"`, or `"unix"` (a stream socket at `path`). */
  readonly type?: "tcp" | "udp" | "unix" | undefined
  /** An IPv4 or IPv6 address, never a name (default `"127.0.0.1"`; `"0.0.0.0"` or `"::"` for all). */
  readonly host?: string | undefined
  /** Default 0: the kernel picks a free port, reported in the result. */
  readonly port?: number | undefined
  /** For `"unix"`: the socket's path, in the set's mount namespace if it has one. */
  readonly path?: string | undefined
  /** Default 511, as Node's. */
  readonly backlog?: number | undefined
}

/**
 * A bound (and, for TCP and Unix sockets, listening) socket inside a set's network namespace.
 *
 * @since 0.1.0
 * @category models
 */
export interface Listening {
  /** The socket's fd, owned by the Scope; pass it to Node with {@link serve}. */
  readonly fd: number
  readonly type: "tcp" | "udp" | "unix"
  readonly host: string
  /** The bound port (the one the kernel picked, for port 0). */
  readonly port: number
  readonly path?: string | undefined
}

/**
 * The errors of making a socket in a set.
 *
 * @since 0.1.0
 * @category errors
 */
export type SocketError = AddressInUse | PermissionDenied | SystemError | InvalidOptions | EnterError

const familyOf = (host: string): number | undefined =>
  net.isIPv4(host) ? libc.AF_INET : net.isIPv6(host) ? libc.AF_INET6 : undefined

// Names would be resolved by dns.lookup, on libuv's pool, in the host's namespaces.
const notAnAddress = (operation: string, host: string) =>
  new InvalidOptions({ operation, reason: `${JSON.stringify(host)} is not an IP address (names are not resolved inside namespaces)` })

const closing = (fd: number) => Effect.sync(() => libc.close(fd))

export const listen: {
  (options?: ListenOptions): (set: NamespaceSet) => Effect.Effect<Listening, SocketError, PinnedThreads | Scope.Scope>
  (set: NamespaceSet, options?: ListenOptions): Effect.Effect<Listening, SocketError, PinnedThreads | Scope.Scope>
} = dual((args: IArguments) => isNamespaceSet(args[0]), (set: NamespaceSet, options: ListenOptions = {}): Effect.Effect<Listening, SocketError, PinnedThreads | Scope.Scope> => {
  const operation = "NamespacedSocket.listen"
  const type = options.type ?? "tcp"
  const host = type === "unix" ? options.path ?? "" : options.host ?? "127.0.0.1"
  const port = options.port ?? 0
  const family = type === "unix" ? libc.AF_UNIX : familyOf(host)
  if (family === undefined) {
    return Effect.fail(notAnAddress(operation, host))
  }
  if (type === "unix" && host === "") return Effect.fail(new InvalidOptions({ operation, reason: "a unix socket needs a path" }))
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    return Effect.fail(new InvalidOptions({ operation, reason: `${port} is not a port` }))
  }
  const badBacklog = options.backlog === undefined ? undefined : wholeNumberProblem(operation, "backlog", options.backlog, 0, 0x7fffffff)
  if (badBacklog !== undefined) return Effect.fail(badBacklog)
  const args = {
    operation,
    family,
    type: type === "udp" ? libc.SOCK_DGRAM : libc.SOCK_STREAM,
    host,
    port,
    bind: true,
    ...(type === "udp" ? {} : { backlog: options.backlog ?? 511 })
  }
  return Effect.acquireRelease(
    runSpec<{ fd: number; port: number }, SocketError>(operation, set, { op: "socket", args }, true),
    (made) => closing(made.fd)
  ).pipe(Effect.map((made): Listening => ({
    fd: made.fd,
    type,
    host,
    port: made.port,
    ...(type === "unix" ? { path: host } : {})
  })))
})

export const handOver = (socket: Listening): Effect.Effect<number, SystemError | PermissionDenied> =>
  Effect.try({
    try: () => libc.dupCloexec(socket.fd),
    catch: (error) => fromSyscall(error as libc.SyscallFailure, "NamespacedSocket.handOver")
  })

export const serve = <S extends net.Server>(
  socket: Listening,
  server: S
): Effect.Effect<S, SystemError | PermissionDenied, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.flatMap(handOver(socket), (fd) =>
      Effect.callback<S, SystemError | PermissionDenied>((resume) => {
        const socketId = libc.identityOfFd(fd)
        const onError = (error: NodeJS.ErrnoException) => {
          // A server that failed to listen may or may not have closed the duplicate: it is closed
          // here if it is still open.
          libc.closeIfStill(fd, socketId)
          resume(Effect.fail(fromNodeError(error, "NamespacedSocket.serve", "listen")))
        }
        server.once("error", onError)
        server.listen({ fd }, () => {
          server.off("error", onError)
          resume(Effect.succeed(server))
        })
      })),
    (server) => Effect.callback<void>((resume) => {
      if (!server.listening) return resume(Effect.void)
      server.close(() => resume(Effect.void))
      // Keep-alive connections would hold close() open; the Scope is ending, so end them.
      if (server instanceof http.Server) server.closeAllConnections()
    })
  )

/**
 * Options of {@link connect}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectOptions {
  /** An IPv4 or IPv6 address, as seen from inside the set. */
  readonly host: string
  readonly port: number
}

/**
 * The errors of connecting from inside a set.
 *
 * @since 0.1.0
 * @category errors
 */
export type ConnectError = ConnectionRefused | Unreachable | UnsupportedRuntime | SocketError

/**
 * Connects from inside the set, the way the runtime can (`mode`, src/internal/runtime.ts; any
 * mode but `"unsupported"` works on Node, which the tests use). `own` runs, uninterruptibly, as soon as the Node socket exists
 * (before connecting, where the runtime connects it; after, where gonso does): it is where a
 * caller ties the socket to a Scope.
 */
export const connectWith = <R>(
  set: NamespaceSet,
  options: ConnectOptions,
  own: (socket: net.Socket) => Effect.Effect<void, never, R>,
  mode: typeof runtime.connecting = runtime.connecting
): Effect.Effect<net.Socket, ConnectError, PinnedThreads | R> => {
  const operation = "NamespacedSocket.connect"
  const refused = runtime.connectionsInside(operation, mode)
  if (refused !== undefined) return Effect.fail(refused)
  const family = familyOf(options.host)
  if (family === undefined) {
    return Effect.fail(notAnAddress(operation, options.host))
  }
  const args = { operation, family, type: libc.SOCK_STREAM, host: options.host, port: options.port, bind: false }
  const endpoint = { operation, host: options.host, port: options.port }
  /** A failed connection, by its errno: refused, unreachable, or any other failed call. */
  const failed = (errno: string, error: NodeJS.ErrnoException): ConnectError =>
    errno === "ECONNREFUSED"
      ? new ConnectionRefused(endpoint)
      : errno === "ENETUNREACH" || errno === "EHOSTUNREACH" || errno === "ETIMEDOUT"
      ? new Unreachable({ ...endpoint, errno })
      : fromNodeError(error, operation, "connect")
  /** The fd as a Node socket, or closed (if still open) when the runtime would not take it. */
  const adopt = (fd: number, socketId: { readonly dev: number; readonly ino: number }): net.Socket | SystemError | PermissionDenied => {
    try {
      return new net.Socket({ fd, readable: true, writable: true })
    } catch (error) {
      // Node could not take it (its handle would not open): closed here if still open.
      libc.closeIfStill(fd, socketId)
      return fromNodeError(error as NodeJS.ErrnoException, operation, "socket")
    }
  }
  const made = runSpec<{ fd: number }, SocketError>(operation, set, { op: "socket", args }, true)
  // Only the socket's creation needs the thread: connecting it is ordinary non-blocking IO that
  // the main loop does, and the kernel routes it in the namespace the socket belongs to.
  if (mode === "connect-then-adopt") {
    // Connected through libc, then adopted (src/internal/runtime.ts). The fd is closed on every
    // path until the runtime owns it; connecting can be interrupted.
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(made, ({ fd }) => {
        const socketId = libc.identityOfFd(fd)
        const close = Effect.sync(() => libc.closeIfStill(fd, socketId))
        return restore(connectThroughLibc(fd, () => libc.socketAddress(family, options.host, options.port), failed)).pipe(
          Effect.onExit((exit) => exit._tag === "Success" ? Effect.void : close),
          Effect.flatMap(() => {
            const socket = adopt(fd, socketId)
            return socket instanceof net.Socket ? Effect.as(own(socket), socket) : Effect.fail(socket)
          })
        )
      })
    )
  }
  // The fd is owned by a Node socket before anything can interrupt; connecting can be
  // interrupted, and then destroys it.
  return Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(made, ({ fd }) => {
      const socket = adopt(fd, libc.identityOfFd(fd))
      if (!(socket instanceof net.Socket)) return Effect.fail(socket)
      return Effect.andThen(own(socket), restore(Effect.callback<net.Socket, ConnectError>((resume) => {
        const onError = (error: NodeJS.ErrnoException) => {
          socket.destroy()
          resume(Effect.fail(failed(error.code ?? "EIO", error)))
        }
        socket.once("error", onError)
        socket.connect({ port: options.port, host: options.host }, () => {
          socket.off("error", onError)
          resume(Effect.succeed(socket))
        })
        return Effect.sync(() => socket.destroy())
      })))
    })
  )
}

/** How long the main thread sleeps between looks at a connection under way, at most. */
const MAX_CONNECT_POLL_MS = 25

/**
 * Connects the non-blocking socket `fd` through libc, on the main thread, looking at it without
 * blocking (1 ms, then twice as long each time, up to 25 ms) until the kernel has connected it or
 * given up, as a connection Node makes would.
 */
const connectThroughLibc = (
  fd: number,
  address: () => Buffer,
  failed: (errno: string, error: NodeJS.ErrnoException) => ConnectError
): Effect.Effect<void, ConnectError> => {
  const attempt = (step: () => boolean | undefined) =>
    Effect.try({
      try: step,
      catch: (error) => {
        const failure = error as libc.SyscallFailure
        return failed(failure.errno, { name: "Error", message: failure.message, code: failure.errno, errno: -failure.code, syscall: failure.call })
      }
    })
  return Effect.flatMap(attempt(() => libc.connectStart(fd, address())), (connected) => {
    if (connected) return Effect.void
    const wait = (delay: number): Effect.Effect<void, ConnectError> =>
      Effect.flatMap(attempt(() => libc.connectResult(fd)), (done) =>
        done === true ? Effect.void : Effect.flatMap(Effect.sleep(delay), () => wait(Math.min(delay * 2, MAX_CONNECT_POLL_MS))))
    return wait(1)
  })
}

export const connect: {
  (options: ConnectOptions): (set: NamespaceSet) => Effect.Effect<net.Socket, ConnectError, PinnedThreads | Scope.Scope>
  (set: NamespaceSet, options: ConnectOptions): Effect.Effect<net.Socket, ConnectError, PinnedThreads | Scope.Scope>
} = dual(2, (set: NamespaceSet, options: ConnectOptions): Effect.Effect<net.Socket, ConnectError, PinnedThreads | Scope.Scope> =>
  connectWith(set, options, (socket) => Effect.addFinalizer(() => Effect.sync(() => socket.destroy()))))

export const connectUnscoped: {
  (options: ConnectOptions): (set: NamespaceSet) => Effect.Effect<net.Socket, ConnectError, PinnedThreads>
  (set: NamespaceSet, options: ConnectOptions): Effect.Effect<net.Socket, ConnectError, PinnedThreads>
} = dual(2, (set: NamespaceSet, options: ConnectOptions): Effect.Effect<net.Socket, ConnectError, PinnedThreads> =>
  connectWith(set, options, () => Effect.void))
