/**
 * HTTP clients whose connections are made inside a set's network namespace, with requests running
 * on the main event loop: Node agents for `http.request` and `https.request`, and Effect's
 * `HttpClient` built on them.
 *
 * Every connection, plain or TLS, is a TCP socket created by a pinned thread inside the set; TLS
 * runs over that socket on the main loop. Nothing is resolved by name: a name would be looked up by
 * `dns.lookup`, on libuv's pool, in the host's network namespace, so hosts must be IP addresses.
 *
 * @since 0.1.0
 */
import * as http from "node:http"
import * as https from "node:https"
import type * as net from "node:net"
import * as tls from "node:tls"
import { NodeHttpClient } from "@effect/platform-node"
import { Cause, Effect, Exit, Layer, type Scope } from "effect"
import type { HttpClient } from "effect/http"
import type { UnsupportedRuntime } from "./NamespaceError.ts"
import type { NamespaceSet } from "./NamespaceSet.ts"
import * as NamespacedSocket from "./internal/socket.ts"
import type { PinnedThreads } from "./PinnedThreads.ts"
import * as runtime from "./internal/runtime.ts"

type Connected = (error: Error | null, socket: net.Socket) => void

/**
 * Connects the way an agent asked, from inside the set. A Unix socket path (`socketPath`) would
 * be another destination than the set's network: it is refused, as a name is (by `connect`).
 */
const connectInside = (
  set: NamespaceSet,
  run: ReturnType<typeof Effect.runCallbackWith<PinnedThreads>>,
  options: http.ClientRequestArgs,
  defaultPort: number,
  done: Connected
): void => {
  if (options.socketPath !== undefined) {
    return done(new Error("a namespaced agent connects to IP addresses inside the set, not to Unix sockets (socketPath)"), undefined as never)
  }
  const host = String(options.host ?? "127.0.0.1").replace(/^\[(.*)\]$/, "$1")
  const port = Number(options.port ?? defaultPort)
  run(NamespacedSocket.connectUnscoped(set, { host, port }), {
    onExit: (exit) => {
      if (Exit.isSuccess(exit)) return done(null, exit.value)
      const failure = Cause.squash(exit.cause)
      done(new Error(`connection from inside the namespace failed: ${failure instanceof Error ? failure.message : String(failure)}`, { cause: failure }), undefined as never)
    }
  })
}

/**
 * A Node `http.Agent` whose connections are TCP sockets created in the set's network namespace
 * (one pinned-thread round trip each) and then used on the main event loop; keep-alive reuses them
 * like any agent's. Hosts must be IP addresses: names are not resolved inside namespaces. Destroyed
 * when the current Scope closes.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import * as http from "node:http"
 * import { Effect } from "effect"
 * import { NamespacedHttpClient, NamespacedSocket, NamespaceSet, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.unshareCurrent(["net"], { loopback: "up" })
 *   const socket = yield* NamespacedSocket.listen(set, { port: 8080 })
 *   yield* NamespacedSocket.serve(socket, http.createServer((_, response) => response.end("hello")))
 *   const agent = yield* NamespacedHttpClient.agent(set)
 *   // 127.0.0.1 is the set's loopback: the request reaches the server above
 *   return yield* Effect.callback<number | undefined, Error>((resume) => {
 *     http.get({ host: "127.0.0.1", port: 8080, path: "/", agent }, (response) => resume(Effect.succeed(response.statusCode)))
 *       .on("error", (error) => resume(Effect.fail(error)))
 *   })  // 200
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const agent = (
  set: NamespaceSet,
  options: http.AgentOptions = {}
): Effect.Effect<http.Agent, UnsupportedRuntime, PinnedThreads | Scope.Scope> =>
  scopedAgent("NamespacedHttpClient.agent", (run) =>
    new (class NamespacedAgent extends http.Agent {
      // Node's Agent accepts a socket through the callback when createConnection returns nothing.
      override createConnection(connectOptions: http.ClientRequestArgs, callback?: Connected): undefined {
        connectInside(set, run, connectOptions, 80, (error, socket) => callback?.(error, socket))
        return undefined
      }
    })(options)
  )

/**
 * An agent made with the current services (to make its sockets in a set), destroyed with the
 * Scope; refused where the runtime cannot connect from inside a set (Bun's HTTP client does not
 * even ask an agent for its connections).
 */
const scopedAgent = <A extends http.Agent>(
  operation: string,
  make: (run: ReturnType<typeof Effect.runCallbackWith<PinnedThreads>>) => A
): Effect.Effect<A, UnsupportedRuntime, PinnedThreads | Scope.Scope> => {
  const refused = runtime.connectionsInside(operation)
  if (refused !== undefined) return Effect.fail(refused)
  return Effect.flatMap(Effect.context<PinnedThreads>(), (context) =>
    Effect.acquireRelease(
      Effect.sync(() => make(Effect.runCallbackWith(context))),
      (agent) => Effect.sync(() => agent.destroy())
    ))
}

/**
 * A Node `https.Agent` whose connections are TCP sockets created in the set's network namespace,
 * with TLS run over them on the main event loop (`tls.connect({ socket })`). The agent's options
 * are `https.Agent`'s: `ca`, `cert`, `key`, `rejectUnauthorized`, `servername`, ...; certificates
 * are verified as usual, against the IP address asked for unless a `servername` is given. Hosts
 * must be IP addresses. Destroyed when the current Scope closes.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import * as fs from "node:fs"
 * import * as https from "node:https"
 * import { Effect } from "effect"
 * import { NamespacedHttpClient, NamespaceSet, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.fromNetnsName("blue")  // made by `ip netns add blue`
 *   const agent = yield* NamespacedHttpClient.httpsAgent(set, { ca: fs.readFileSync("ca.pem") })
 *   return yield* Effect.callback<number | undefined, Error>((resume) => {
 *     https.get({ host: "10.0.0.2", port: 8443, path: "/health", agent }, (response) => resume(Effect.succeed(response.statusCode)))
 *       .on("error", (error) => resume(Effect.fail(error)))
 *   })
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const httpsAgent = (
  set: NamespaceSet,
  options: https.AgentOptions = {}
): Effect.Effect<https.Agent, UnsupportedRuntime, PinnedThreads | Scope.Scope> =>
  scopedAgent("NamespacedHttpClient.httpsAgent", (run) =>
    new (class NamespacedHttpsAgent extends https.Agent {
      override createConnection(connectOptions: http.ClientRequestArgs, callback?: Connected): undefined {
        connectInside(set, run, connectOptions, 443, (error, socket) => {
          if (error !== null) return callback?.(error, socket)
          // The options are the request's merged with the agent's (ca, servername, ...), as Node's
          // own https.Agent passes them to tls.connect; the socket replaces the connection it
          // would make.
          const secure = tls.connect({ ...(connectOptions as tls.ConnectionOptions), socket })
          callback?.(null, secure)
        })
        return undefined
      }
    })(options)
  )

/**
 * Effect's `HttpClient` (Node's `http` implementation) with every connection made inside the set's
 * network namespace: `http://` through {@link agent}, `https://` through {@link httpsAgent} (TLS
 * over a socket made in the set). `options` go to both agents (TLS options such as `ca` apply to
 * `https://` only). Hosts must be IP addresses: a name fails the request, and is never looked up.
 *
 * @since 0.1.0
 * @category layers
 * @example
 * ```ts
 * import * as fs from "node:fs"
 * import { Effect } from "effect"
 * import { HttpClient } from "effect/http"
 * import { NamespacedHttpClient, NamespaceSet, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.fromNetnsName("blue")  // made by `ip netns add blue`
 *   return yield* HttpClient.get("https://10.0.0.2:8443/health").pipe(
 *     Effect.flatMap((response) => response.text),
 *     Effect.provide(NamespacedHttpClient.layer(set, { ca: fs.readFileSync("ca.pem") }))
 *   )
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const layer = (set: NamespaceSet, options: https.AgentOptions = {}): Layer.Layer<HttpClient.HttpClient, UnsupportedRuntime, PinnedThreads> =>
  NodeHttpClient.layerNodeHttpNoAgent.pipe(
    Layer.provide(Layer.effect(
      NodeHttpClient.HttpAgent,
      Effect.gen(function*() {
        return NodeHttpClient.HttpAgent.of({ http: yield* agent(set, options), https: yield* httpsAgent(set, options) })
      })
    ))
  )
