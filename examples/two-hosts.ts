/**
 * Two hosts on one machine: two new network namespaces joined by a veth pair, an Effect HTTP server
 * in one and an Effect HTTP client in the other. Addresses are link-local (169.254.0.0/16) on the
 * veth only; the host's own interfaces and routes are never touched, and nothing of it is left when
 * the program ends. The links, addresses and route are made in-process over rtnetlink (`Network`):
 * no `ip` binary is needed. Run with `node examples/two-hosts.ts` as root.
 */
import { Effect, Layer, Option } from "effect"
import { HttpClient, HttpRouter, HttpServerResponse } from "effect/http"
import { NamespacedHttpClient, NamespacedHttpServer, NamespaceSet, Network, PinnedThreads, Task } from "../src/index.ts"

const SERVER = "169.254.77.1"
const CLIENT = "169.254.77.2"

export const twoHosts = Effect.gen(function*() {
  const server = yield* NamespaceSet.unshareCurrent(["net", "uts"], { loopback: "up" })
  const client = yield* NamespaceSet.unshareCurrent(["net", "uts"], { loopback: "up" })
  yield* NamespaceSet.run(server, Task.setHostname("server"))
  yield* NamespaceSet.run(client, Task.setHostname("client"))

  // A veth pair, one end made straight in each namespace, deleted when the Scope closes; then
  // addresses, links up and a default route, each one rtnetlink exchange inside the set (no `ip`).
  yield* Network.vethPair({ name: "eth0", in: server }, { name: "eth0", in: client })
  yield* Network.addAddress(server, "eth0", `${SERVER}/30`)
  yield* Network.addAddress(client, "eth0", `${CLIENT}/30`)
  yield* Network.setUp(server, "eth0")
  yield* Network.setUp(client, "eth0")
  yield* Network.addRoute(client, { destination: "default", gateway: SERVER })

  // An Effect HTTP app, served inside the server's namespace.
  const app = HttpRouter.add("GET", "/", (request) =>
    Effect.map(
      NamespaceSet.run(server, Task.hostname),
      (hostname) => HttpServerResponse.text(`hello from ${hostname}, you are ${Option.getOrElse(request.remoteAddress, () => "?")}\n`)
    ))
  yield* Layer.build(
    HttpRouter.serve(app, { disableLogger: true, disableListenLog: true }).pipe(
      Layer.provideMerge(NamespacedHttpServer.layer(server, { host: SERVER, port: 8080 }))
    )
  )

  // An Effect HTTP client whose connections start inside the client's namespace.
  const response = yield* HttpClient.get(`http://${SERVER}:8080/`).pipe(
    Effect.flatMap((response) => response.text),
    Effect.provide(NamespacedHttpClient.layer(client))
  )
  const eth0 = yield* Network.link(client, "eth0")
  const links = `${eth0.name} ${eth0.operstate} ${eth0.addresses.map((a) => `${a.address}/${a.prefix}`).join(" ")}`
  return { response, links }
}).pipe(Effect.scoped)

if (import.meta.main) {
  Effect.runPromise(twoHosts.pipe(Effect.provide(PinnedThreads.layer()))).then(({ response, links }) => {
    console.log(`client eth0: ${links}`)
    console.log(`GET http://${SERVER}:8080/ from the client's namespace: ${response.trim()}`)
  })
}
