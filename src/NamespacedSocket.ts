/**
 * Sockets inside a set's network namespace, served and used from the main event loop.
 *
 * The kernel binds a socket to the network namespace it is created in, for the socket's life. So a
 * pinned thread only has to *create* the socket (with raw, synchronous syscalls: Node's `net`
 * creates its fds on a later tick, after the thread would have left); the fd is then handed to the
 * main thread, where Node serves or connects it like any other. No namespace work happens per
 * connection or per request.
 *
 * @since 0.1.0
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
} from "./NamespaceError.ts"
import type { NamespaceSet } from "./NamespaceSet.ts"
import type { PinnedThreads } from "./PinnedThreads.ts"
import * as libc from "./internal/libc.ts"
import * as runtime from "./internal/runtime.ts"
import { isNamespaceSet, runSpec } from "./internal/set.ts"
import { wholeNumberProblem } from "./internal/validate.ts"
import { fromNodeError, fromSyscall } from "./internal/wire.ts"

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

/**
 * Creates a socket inside the set's network namespace, on a pinned thread, bound to `host:port` and
 * listening; it is closed when the current Scope closes. Serve it from the main thread with
 * {@link serve} (or `server.listen({ fd })` on a duplicate). A port in use is `AddressInUse`.
 *
 * @since 0.1.0
 * @category sockets
 * @example
 * ```ts
 * import * as http from "node:http"
 * import { Effect } from "effect"
 * import { NamespacedSocket, NamespaceSet, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.unshareCurrent(["net"], { loopback: "up" })
 *   const socket = yield* NamespacedSocket.listen(set, { host: "0.0.0.0", port: 8080 })
 *   yield* NamespacedSocket.serve(socket, http.createServer((_, response) => response.end("hello from inside")))
 *   yield* Effect.never
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
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

/**
 * A close-on-exec duplicate of the socket's fd for Node to own, for APIs that take an fd (such as
 * `NodeHttpServer.layer(..., { fd })` or `dgram`'s `bind({ fd })`): Node closes what it is given
 * when its server or socket closes, and the original stays with its Scope, so no fd is closed twice.
 *
 * @since 0.1.0
 * @category sockets
 * @example
 * ```ts
 * import * as dgram from "node:dgram"
 * import { Effect } from "effect"
 * import { NamespacedSocket, NamespaceSet, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.unshareCurrent(["net"], { loopback: "up" })
 *   const socket = yield* NamespacedSocket.listen(set, { type: "udp", port: 5353 })
 *   const fd = yield* NamespacedSocket.handOver(socket)
 *   const udp = dgram.createSocket("udp4", (message, from) => udp.send(message, from.port, from.address))
 *   udp.bind({ fd })  // Node closes the duplicate with `udp`; the original closes with the Scope
 *   yield* Effect.addFinalizer(() => Effect.sync(() => udp.close()))
 *   yield* Effect.never
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const handOver = (socket: Listening): Effect.Effect<number, SystemError | PermissionDenied> =>
  Effect.try({
    try: () => libc.dupCloexec(socket.fd),
    catch: (error) => fromSyscall(error as libc.SyscallFailure, "NamespacedSocket.handOver")
  })

/**
 * Serves a listening socket from the main event loop with a Node server (`net.Server`,
 * `http.Server`, ...): the server listens on a duplicate of the socket's fd, and is closed when the
 * current Scope closes. Connections are accepted in the set's network namespace.
 *
 * @since 0.1.0
 * @category sockets
 * @example
 * ```ts
 * import * as net from "node:net"
 * import { Effect } from "effect"
 * import { NamespacedSocket, NamespaceSet, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.unshareCurrent(["net"], { loopback: "up" })
 *   const socket = yield* NamespacedSocket.listen(set, { port: 7000 })
 *   // An echo server on the main event loop, accepting connections inside the set
 *   const server = yield* NamespacedSocket.serve(socket, net.createServer((connection) => connection.pipe(connection)))
 *   yield* Effect.log(server.address())  // { address: "127.0.0.1", family: "IPv4", port: 7000 }
 *   yield* Effect.never
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
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
 * Connects from inside the set. `own` runs, uninterruptibly, as soon as the socket exists, before
 * connecting: it is where a caller ties the socket to a Scope.
 */
const connectWith = <R>(
  set: NamespaceSet,
  options: ConnectOptions,
  own: (socket: net.Socket) => Effect.Effect<void, never, R>
): Effect.Effect<net.Socket, ConnectError, PinnedThreads | R> => {
  const operation = "NamespacedSocket.connect"
  const refused = runtime.connectionsInside(operation)
  if (refused !== undefined) return Effect.fail(refused)
  const family = familyOf(options.host)
  if (family === undefined) {
    return Effect.fail(notAnAddress(operation, options.host))
  }
  const args = { operation, family, type: libc.SOCK_STREAM, host: options.host, port: options.port, bind: false }
  // Only the socket's creation needs the thread: connecting it is ordinary non-blocking IO that
  // the main loop does, and the kernel routes it in the namespace the socket belongs to. The fd is
  // owned by a Node socket before anything can interrupt; connecting can be interrupted, and then
  // destroys it.
  return Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(
      runSpec<{ fd: number }, SocketError>(operation, set, { op: "socket", args }, true),
      ({ fd }) => {
        const socketId = libc.identityOfFd(fd)
        let socket: net.Socket
        try {
          socket = new net.Socket({ fd, readable: true, writable: true })
        } catch (error) {
          // Node could not take it (its handle would not open): closed here if still open.
          libc.closeIfStill(fd, socketId)
          return Effect.fail(fromNodeError(error as NodeJS.ErrnoException, operation, "socket"))
        }
        return Effect.andThen(own(socket), restore(Effect.callback<net.Socket, ConnectError>((resume) => {
          const onError = (error: NodeJS.ErrnoException) => {
            socket.destroy()
            const endpoint = { operation, host: options.host, port: options.port }
            const errno = error.code ?? "EIO"
            resume(Effect.fail(
              errno === "ECONNREFUSED"
                ? new ConnectionRefused(endpoint)
                : errno === "ENETUNREACH" || errno === "EHOSTUNREACH" || errno === "ETIMEDOUT"
                ? new Unreachable({ ...endpoint, errno })
                : fromNodeError(error, operation, "connect")
            ))
          }
          socket.once("error", onError)
          socket.connect({ port: options.port, host: options.host }, () => {
            socket.off("error", onError)
            resume(Effect.succeed(socket))
          })
          return Effect.sync(() => socket.destroy())
        })))
      }
    )
  )
}

/**
 * A TCP connection to `host:port` made from inside the set's network namespace, as a Node
 * `net.Socket` on the main event loop; destroyed when the current Scope closes. Refused and
 * unreachable addresses are `ConnectionRefused` and `Unreachable`.
 *
 * @since 0.1.0
 * @category sockets
 * @example
 * ```ts
 * import { once } from "node:events"
 * import * as net from "node:net"
 * import { Effect } from "effect"
 * import { NamespacedSocket, NamespaceSet, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.unshareCurrent(["net"], { loopback: "up" })
 *   const listening = yield* NamespacedSocket.listen(set)
 *   yield* NamespacedSocket.serve(listening, net.createServer((connection) => connection.end("hello")))
 *   // 127.0.0.1 of the set: the server above, not the host's
 *   const socket = yield* NamespacedSocket.connect(set, { host: "127.0.0.1", port: listening.port })
 *   const [reply] = yield* Effect.promise(() => once(socket.setEncoding("utf8"), "data"))
 *   return reply  // "hello"
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const connect: {
  (options: ConnectOptions): (set: NamespaceSet) => Effect.Effect<net.Socket, ConnectError, PinnedThreads | Scope.Scope>
  (set: NamespaceSet, options: ConnectOptions): Effect.Effect<net.Socket, ConnectError, PinnedThreads | Scope.Scope>
} = dual(2, (set: NamespaceSet, options: ConnectOptions): Effect.Effect<net.Socket, ConnectError, PinnedThreads | Scope.Scope> =>
  connectWith(set, options, (socket) => Effect.addFinalizer(() => Effect.sync(() => socket.destroy()))))

/**
 * A connected net.Socket whose socket lives in the set's network namespace; the caller owns it
 * (for agents and pools that manage their sockets' lives themselves). Interrupted while
 * connecting, it destroys the socket.
 *
 * @since 0.1.0
 * @category sockets
 * @example
 * ```ts
 * import * as net from "node:net"
 * import { Effect } from "effect"
 * import { NamespacedSocket, NamespaceSet, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.unshareCurrent(["net"], { loopback: "up" })
 *   const listening = yield* NamespacedSocket.listen(set)
 *   yield* NamespacedSocket.serve(listening, net.createServer((connection) => connection.resume()))
 *   const socket = yield* NamespacedSocket.connectUnscoped(set, { host: "127.0.0.1", port: listening.port })
 *   socket.end("bye")  // the caller's to end or destroy: closing the Scope does not
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const connectUnscoped: {
  (options: ConnectOptions): (set: NamespaceSet) => Effect.Effect<net.Socket, ConnectError, PinnedThreads>
  (set: NamespaceSet, options: ConnectOptions): Effect.Effect<net.Socket, ConnectError, PinnedThreads>
} = dual(2, (set: NamespaceSet, options: ConnectOptions): Effect.Effect<net.Socket, ConnectError, PinnedThreads> =>
  connectWith(set, options, () => Effect.void))
