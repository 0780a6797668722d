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
import type * as net from "node:net"
import type { Effect, Scope } from "effect"
import type { NamespaceSet } from "./NamespaceSet.ts"
import type { PinnedThreads } from "./PinnedThreads.ts"
import * as internal from "./internal/socket.ts"
import type { ConnectError, ConnectOptions, Listening, ListenOptions, SocketError } from "./internal/socket.ts"

export type { ListenOptions, Listening, SocketError, ConnectOptions, ConnectError } from "./internal/socket.ts"

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
} = internal.listen

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
export const handOver = internal.handOver

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
export const serve = internal.serve

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
} = internal.connect

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
} = internal.connectUnscoped
