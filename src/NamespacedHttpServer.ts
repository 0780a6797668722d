/**
 * Effect's `HttpServer`, listening inside a set's network namespace: an Effect HTTP app (an
 * `HttpRouter`, an `HttpApi`) serves inside a namespace with no other change.
 *
 * @since 0.1.0
 */
import * as http from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import type { HttpServer } from "effect/http"
import type { ServeError } from "effect/http/HttpServerError"
import type { PermissionDenied, SystemError } from "./NamespaceError.ts"
import type { NamespaceSet } from "./NamespaceSet.ts"
import * as NamespacedSocket from "./internal/socket.ts"
import type { PinnedThreads } from "./PinnedThreads.ts"
import * as libc from "./internal/libc.ts"

/**
 * Options of {@link layer}: where to listen inside the namespace, and `NodeHttpServer`'s own
 * options (graceful shutdown, websockets).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Omit<NodeHttpServer.Options, "fd" | "host" | "port" | "path" | "backlog"> {
  /** An IP address inside the namespace (default `"0.0.0.0"`). */
  readonly host?: string | undefined
  /** Default 0: the kernel picks one; read it from `HttpServer.address`. */
  readonly port?: number | undefined
  readonly backlog?: number | undefined
  /** The Node server to use (default `http.createServer()`). */
  readonly createServer?: (() => http.Server) | undefined
}

/**
 * Provides `HttpServer` (with Node's HTTP platform services, as `NodeHttpServer.layer` does) from a
 * socket made inside the set's network namespace. The socket is made on a pinned thread; the
 * server runs on the main event loop. Closing the layer closes the server and the socket.
 *
 * @since 0.1.0
 * @category layers
 * @example
 * ```ts
 * import { NodeRuntime } from "@effect/platform-node"
 * import { Effect, Layer } from "effect"
 * import { HttpRouter, HttpServerResponse } from "effect/http"
 * import { NamespacedHttpServer, NamespaceSet, PinnedThreads } from "gonso"
 *
 * const app = HttpRouter.add("GET", "/", HttpServerResponse.text("hello from inside"))
 * const server = Layer.unwrap(Effect.map(
 *   NamespaceSet.unshareCurrent(["net"], { loopback: "up" }),
 *   (set) => HttpRouter.serve(app).pipe(Layer.provide(NamespacedHttpServer.layer(set, { port: 8080 })))
 * ))
 * Layer.launch(server).pipe(Effect.provide(PinnedThreads.layer()), NodeRuntime.runMain)
 * ```
 */
export const layer = (
  set: NamespaceSet,
  options: Options = {}
): Layer.Layer<
  Layer.Success<ReturnType<typeof NodeHttpServer.layer>> | HttpServer.HttpServer,
  ServeError | NamespacedSocket.SocketError | SystemError | PermissionDenied,
  PinnedThreads
> => {
  const { host, port, backlog, createServer, ...serverOptions } = options
  return Layer.unwrap(Effect.gen(function*() {
    const socket = yield* NamespacedSocket.listen(set, {
      type: "tcp",
      host: host ?? "0.0.0.0",
      port: port ?? 0,
      ...(backlog === undefined ? {} : { backlog })
    })
    // Node owns (and closes) the duplicate it listens on; the original closes with this layer.
    const fd = yield* NamespacedSocket.handOver(socket)
    // Node listens on an existing fd given as `{ fd }` (its typings leave the field out).
    const listenOptions = { ...serverOptions, fd } as NodeHttpServer.Options
    // A server that fails to start may or may not have closed the duplicate: it is closed here if
    // it is still open.
    const socketId = libc.identityOfFd(fd)
    return NodeHttpServer.layer(createServer ?? (() => http.createServer()), listenOptions).pipe(
      Layer.tapCause(() => Effect.sync(() => libc.closeIfStill(fd, socketId)))
    )
  }))
}
