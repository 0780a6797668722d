import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as https from "node:https"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import { HttpClient } from "effect/http"
import { NamespacedHttpClient, NamespacedSocket, NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import { withThreads } from "./helpers.ts"

/** A self-signed certificate for 127.0.0.1, made for this run. */
const selfSigned = Effect.acquireUseRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "gonso-tls-"))),
  (dir) =>
    Effect.sync(() => {
      execFileSync("openssl", [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
        "-subj", "/CN=gonso-test", "-addext", "subjectAltName=IP:127.0.0.1",
        "-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`
      ], { stdio: "ignore" })
      return { key: fs.readFileSync(`${dir}/key.pem`, "utf8"), cert: fs.readFileSync(`${dir}/cert.pem`, "utf8") }
    }),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** A TCP listener on the host's loopback that counts (and drops) every connection it gets. */
const hostListener = Effect.acquireRelease(
  Effect.callback<{ server: net.Server; port: number; connections: () => number }>((resume) => {
    let count = 0
    const server = net.createServer((socket) => {
      count++
      socket.destroy()
    })
    server.listen({ host: "127.0.0.1", port: 0 }, () =>
      resume(Effect.succeed({ server, port: (server.address() as net.AddressInfo).port, connections: () => count })))
  }),
  ({ server }) => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
)

withThreads({ min: 1, max: 2 })("traffic stays in the namespace", (it) => {
  describe("HTTPS", () => {
    it.effect("an HTTPS server inside the set answers through the layer and the agent; the host's listener on the same port sees nothing", () =>
      Effect.gen(function*() {
        const { key, cert } = yield* selfSigned
        const host = yield* hostListener
        const set = yield* NamespaceSet.unshareCurrent(["net"])
        yield* NamespaceSet.run(set, Task.exec("ip", ["link", "set", "lo", "up"]))
        const socket = yield* NamespacedSocket.listen(set, { host: "127.0.0.1", port: host.port })
        yield* NamespacedSocket.serve(socket, https.createServer({ key, cert }, (_, response) => response.end("hello over TLS from inside")))

        const body = yield* HttpClient.get(`https://127.0.0.1:${host.port}/`).pipe(
          Effect.flatMap((response) => response.text),
          Effect.provide(NamespacedHttpClient.layer(set, { ca: cert })),
          Effect.timeout("10 seconds")
        )
        assert.strictEqual(body, "hello over TLS from inside")

        const agent = yield* NamespacedHttpClient.httpsAgent(set, { ca: cert })
        const [status, text] = yield* Effect.callback<[number, string], Error>((resume) => {
          https.get({ host: "127.0.0.1", port: host.port, path: "/", agent }, (response) => {
            let received = ""
            response.on("data", (chunk) => (received += chunk))
            response.on("end", () => resume(Effect.succeed([response.statusCode!, received])))
          }).on("error", (error) => resume(Effect.fail(error)))
        })
        assert.deepStrictEqual([status, text], [200, "hello over TLS from inside"])
        // The certificate is checked as usual: without the CA, the handshake is refused.
        const untrusted = yield* Effect.flip(HttpClient.get(`https://127.0.0.1:${host.port}/`).pipe(
          Effect.provide(NamespacedHttpClient.layer(set)),
          Effect.timeout("10 seconds")
        ))
        assert.match(`${untrusted} ${(untrusted as { cause?: unknown }).cause}`, /self-signed|certificate/i)
        assert.strictEqual(host.connections(), 0)
      }))

    it.effect("a host name is never resolved on the host: the request fails, and nothing reaches the host", () =>
      Effect.gen(function*() {
        const host = yield* hostListener
        const set = yield* NamespaceSet.unshareCurrent(["net"])
        for (const scheme of ["http", "https"]) {
          const error = yield* Effect.flip(HttpClient.get(`${scheme}://localhost:${host.port}/`).pipe(
            Effect.provide(NamespacedHttpClient.layer(set)),
            Effect.timeout("10 seconds")
          ))
          assert.include(`${error} ${(error as { cause?: unknown }).cause}`, "not an IP address", scheme)
        }
        // A Unix socket is another destination than the set's network: refused.
        const agent = yield* NamespacedHttpClient.agent(set)
        const refused = yield* Effect.callback<string>((resume) => {
          http.get({ socketPath: "/run/gonso-no-such.sock", path: "/", agent }, () => resume(Effect.succeed("answered")))
            .on("error", (error) => resume(Effect.succeed(error.message)))
        })
        assert.include(refused, "socketPath")
        assert.strictEqual(host.connections(), 0)
      }))
  })
})
