/**
 * HTTP clients whose connections are made inside a set's network namespace, with requests running
 * on the main event loop: a Node `http.Agent` for `http.request`, and Effect's `HttpClient` built
 * on it.
 *
 * @since 0.1.0
 */
import * as http from "node:http"
import * as https from "node:https"
import type * as net from "node:net"
import { NodeHttpClient } from "@effect/platform-node"
import { Effect, Exit, Layer, type Scope } from "effect"
import type { HttpClient } from "effect/http"
import type { NamespaceSet } from "./NamespaceSet.ts"
import * as NamespacedSocket from "./NamespacedSocket.ts"
import type { PinnedThreads } from "./PinnedThreads.ts"

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
 * import { NamespacedHttpClient } from "gonso"
 *
 * const agent = yield* NamespacedHttpClient.agent(set)
 * http.get({ host: "169.254.1.1", port: 8080, path: "/", agent }, (response) => ...)
 * ```
 */
export const agent = (
  set: NamespaceSet,
  options: http.AgentOptions = {}
): Effect.Effect<http.Agent, never, PinnedThreads | Scope.Scope> =>
  Effect.gen(function*() {
    const context = yield* Effect.context<PinnedThreads>()
    const connectIn = Effect.runCallbackWith(context)
    class NamespacedAgent extends http.Agent {
      // Node's Agent accepts a socket through the callback when createConnection returns nothing.
      override createConnection(
        connectOptions: http.ClientRequestArgs,
        callback?: (error: Error | null, socket: net.Socket) => void
      ): undefined {
        const host = String(connectOptions.host ?? "127.0.0.1").replace(/^\[(.*)\]$/, "$1")
        const port = Number(connectOptions.port ?? 80)
        connectIn(NamespacedSocket.connectUnscoped(set, { host, port }), {
          onExit: (exit) => {
            if (Exit.isSuccess(exit)) callback?.(null, exit.value)
            else callback?.(new Error(`connection from inside the namespace failed: ${String(exit.cause)}`), undefined as never)
          }
        })
        return undefined
      }
    }
    return yield* Effect.acquireRelease(
      Effect.sync(() => new NamespacedAgent(options)),
      (agent) => Effect.sync(() => agent.destroy())
    )
  })

/**
 * Effect's `HttpClient` (Node's `http` implementation) with every connection made inside the set's
 * network namespace through {@link agent}. `https` requests use Node's default agent, outside.
 *
 * @since 0.1.0
 * @category layers
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { HttpClient } from "effect/http"
 * import { NamespacedHttpClient } from "gonso"
 *
 * const body = yield* HttpClient.get("http://169.254.1.1:8080/").pipe(
 *   Effect.flatMap((response) => response.text),
 *   Effect.provide(NamespacedHttpClient.layer(set))
 * )
 * ```
 */
export const layer = (set: NamespaceSet, options: http.AgentOptions = {}): Layer.Layer<HttpClient.HttpClient, never, PinnedThreads> =>
  NodeHttpClient.layerNodeHttpNoAgent.pipe(
    Layer.provide(Layer.effect(
      NodeHttpClient.HttpAgent,
      Effect.map(agent(set, options), (http) => NodeHttpClient.HttpAgent.of({ http, https: https.globalAgent }))
    ))
  )

