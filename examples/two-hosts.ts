/**
 * Two hosts on one machine: two new network namespaces joined by a veth pair, an Effect HTTP server
 * in one and an Effect HTTP client in the other. Addresses are link-local (169.254.0.0/16) on the
 * veth only; the host's own interfaces and routes are never touched, and nothing of it is left when
 * the program ends. Run with `node examples/two-hosts.ts` as root.
 */
import { Effect, Layer, Option } from "effect"
import { HttpClient, HttpRouter, HttpServerResponse } from "effect/http"
import { NamespacedHttpClient, NamespacedHttpServer, NamespaceSet, PinnedThreads, Task } from "../src/index.ts"

const SERVER = "169.254.77.1"
const CLIENT = "169.254.77.2"

/** Runs `ip ...` inside a set, failing with its stderr if it fails. */
const ip = (set: NamespaceSet.NamespaceSet, ...args: Array<string>) =>
  NamespaceSet.run(set, Task.exec("ip", args)).pipe(
    Effect.flatMap((result) =>
      result.exitCode === 0 ? Effect.succeed(result.stdout) : Effect.die(new Error(`ip ${args.join(" ")}: ${result.stderr}`))
    )
  )

export const twoHosts = Effect.gen(function*() {
  const server = yield* NamespaceSet.unshareCurrent(["net", "uts"])
  const client = yield* NamespaceSet.unshareCurrent(["net", "uts"])
  yield* NamespaceSet.run(server, Task.setHostname("server"))
  yield* NamespaceSet.run(client, Task.setHostname("client"))

  // A veth pair made inside the server's namespace, its peer moved straight into the client's
  // (named by an fd of ours: iproute2 opens a path it is given).
  const { net: clientNet } = yield* NamespaceSet.fds(client, ["net"])
  yield* ip(server, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", `/proc/${process.pid}/fd/${clientNet}`)
  yield* ip(server, "addr", "add", `${SERVER}/30`, "dev", "eth0")
  yield* ip(client, "addr", "add", `${CLIENT}/30`, "dev", "eth0")
  for (const set of [server, client]) {
    yield* ip(set, "link", "set", "lo", "up")
    yield* ip(set, "link", "set", "eth0", "up")
  }

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
  const links = yield* ip(client, "-brief", "addr", "show", "eth0")
  return { response, links: links.trim().replace(/\s+/g, " ") }
}).pipe(Effect.scoped)

if (import.meta.main) {
  Effect.runPromise(twoHosts.pipe(Effect.provide(PinnedThreads.layer()))).then(({ response, links }) => {
    console.log(`client eth0: ${links}`)
    console.log(`GET http://${SERVER}:8080/ from the client's namespace: ${response.trim()}`)
  })
}
