import * as http from "node:http"
import * as net from "node:net"
import { assert, describe } from "@effect/vitest"
import * as fs from "node:fs"
import { Context, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { HttpClient, HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import { NamespacedHttpClient, NamespacedHttpServer, NamespacedSocket, NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import * as socketInternal from "../src/internal/socket.ts"
import { onHost, readToEnd, withThreads } from "./helpers.ts"

/** A new network namespace with its loopback up. */
const isolatedNet = Effect.gen(function*() {
  const set = yield* NamespaceSet.unshareCurrent(["net"])
  yield* NamespaceSet.run(set, Task.exec("ip", ["link", "set", "lo", "up"]))
  return set
})

/** Whether a TCP connection to 127.0.0.1:port from this (host) namespace is refused. */
const refusedOnHost = (port: number) =>
  Effect.callback<string>((resume) => {
    const socket = net.connect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed("connected"))
    })
    socket.once("error", (error: NodeJS.ErrnoException) => resume(Effect.succeed(error.code ?? "error")))
  })

const listeningPorts = (ssOutput: string) =>
  ssOutput.trim().split("\n").filter(Boolean).map((line) => Number(line.trim().split(/\s+/)[3]!.split(":").pop()))

withThreads({ min: 1, max: 2 })("sockets and servers", (it) => {
  describe("NamespacedSocket", () => {
    it.effect("a listening socket made in a set: a client in the set gets HTTP 200, the host is refused, ss agrees", () =>
      Effect.gen(function*() {
        const set = yield* isolatedNet
        const socket = yield* NamespacedSocket.listen(set, { host: "127.0.0.1", port: 0 })
        assert.isAbove(socket.port, 0)
        yield* NamespacedSocket.serve(socket, http.createServer((_, response) => response.end("hello from inside")))
        // A client in the same namespace.
        const agent = yield* NamespacedHttpClient.agent(set)
        const [status, body] = yield* Effect.callback<[number, string]>((resume) => {
          http.get({ host: "127.0.0.1", port: socket.port, path: "/", agent }, (response) => {
            let text = ""
            response.on("data", (chunk) => (text += chunk))
            response.on("end", () => resume(Effect.succeed([response.statusCode!, text])))
          })
        })
        assert.deepStrictEqual([status, body], [200, "hello from inside"])
        // The host's loopback has nothing at that port.
        assert.strictEqual(yield* refusedOnHost(socket.port), "ECONNREFUSED")
        const inside = yield* NamespaceSet.run(set, Task.exec("ss", ["-ltnH"]))
        assert.include(listeningPorts(inside.stdout), socket.port)
        assert.notInclude(listeningPorts(onHost("ss", ["-ltnH"])), socket.port)
      }))

    // Both ways a connection is made (src/internal/runtime.ts): Node's own connect of the adopted
    // socket, and gonso's connect through libc before the runtime adopts it (Deno's way).
    for (
      const [way, connect] of [
        ["node:net connects the set's socket", NamespacedSocket.connect],
        ["libc connects the set's socket, then node:net adopts it", (set: NamespaceSet.NamespaceSet, options: NamespacedSocket.ConnectOptions) =>
          socketInternal.connectWith(set, options, (socket) => Effect.addFinalizer(() => Effect.sync(() => socket.destroy())), "connect-then-adopt")]
      ] as const
    ) {
      it.effect(`${way}: connect reaches a server that exists only inside the namespace`, () =>
        Effect.gen(function*() {
          const set = yield* isolatedNet
          const listening = yield* NamespacedSocket.listen(set, { host: "127.0.0.1", port: 0 })
          yield* NamespacedSocket.serve(listening, net.createServer((connection) => connection.end("pong")))
          const socket = yield* connect(set, { host: "127.0.0.1", port: listening.port })
          const reply = yield* readToEnd(socket)
          assert.strictEqual(reply, "pong")
          const refused = yield* Effect.flip(connect(set, { host: "127.0.0.1", port: 1 }))
          assert.strictEqual(refused._tag, "ConnectionRefused")
          const unreachable = yield* Effect.flip(connect(set, { host: "10.255.255.1", port: 80 }))
          assert.strictEqual(unreachable._tag, "Unreachable")
        }))

      it.effect(`${way}: a connect that hangs can be interrupted, and leaves no socket behind`, () =>
        Effect.gen(function*() {
          const set = yield* isolatedNet
          // The SYN goes out of a veth whose peer has no address, to a neighbour that does not exist:
          // nothing ever answers, and the kernel retries for minutes.
          for (
            const args of [
              ["link", "add", "v0", "type", "veth", "peer", "name", "v1"],
              ["addr", "add", "169.254.9.1/24", "dev", "v0"],
              ["link", "set", "v0", "up"],
              ["link", "set", "v1", "up"],
              ["neigh", "add", "169.254.9.2", "lladdr", "02:00:00:00:09:02", "dev", "v0"]
            ]
          ) {
            const done = yield* NamespaceSet.run(set, Task.exec("ip", args))
            assert.strictEqual(done.exitCode, 0, done.stderr)
          }
          const sockets = () => fs.readdirSync("/proc/self/fd").filter((fd) => {
            try {
              return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith("socket:")
            } catch {
              return false // closed since it was listed
            }
          }).length
          const before = sockets()
          const fiber = yield* Effect.forkChild(Effect.scoped(connect(set, { host: "169.254.9.2", port: 80 })))
          const ss = () => NamespaceSet.run(set, Task.exec("ss", ["-tnH", "state", "syn-sent"]))
          for (let i = 0; i < 250 && (yield* ss()).stdout.trim() === ""; i++) yield* Effect.sleep("20 millis")
          assert.include((yield* ss()).stdout, "169.254.9.2:80")
          const started = Date.now()
          yield* Fiber.interrupt(fiber)
          const exit = yield* Fiber.await(fiber)
          assert.isTrue(Exit.hasInterrupts(exit))
          assert.isBelow(Date.now() - started, 5_000)
          assert.strictEqual((yield* ss()).stdout.trim(), "")
          assert.strictEqual(sockets(), before)
        }))

      it.effect(`${way}: from a set whose loopback is down, the host's listener on 127.0.0.1 is never reached`, () =>
        Effect.gen(function*() {
          let reached = false
          const host = net.createServer((socket) => {
            reached = true
            socket.destroy()
          })
          yield* Effect.acquireRelease(
            Effect.callback<void>((resume) => void host.listen(0, "127.0.0.1", () => resume(Effect.void))),
            () => Effect.sync(() => host.close())
          )
          const port = (host.address() as net.AddressInfo).port
          const set = yield* NamespaceSet.unshareCurrent(["net"])
          const failure = yield* Effect.flip(connect(set, { host: "127.0.0.1", port }))
          assert.strictEqual(failure._tag, "Unreachable")
          yield* Effect.sleep("50 millis")
          assert.isFalse(reached)
        }))
    }

    it.effect("a port in use inside is AddressInUse; the same port is free on the host and in another set", () =>
      Effect.gen(function*() {
        const set = yield* isolatedNet
        const first = yield* NamespacedSocket.listen(set, { host: "127.0.0.1", port: 0 })
        const again = yield* Effect.flip(NamespacedSocket.listen(set, { host: "127.0.0.1", port: first.port }))
        assert.strictEqual(again._tag, "AddressInUse")
        if (again._tag === "AddressInUse") assert.strictEqual(again.port, first.port)
        const other = yield* isolatedNet
        const elsewhere = yield* NamespacedSocket.listen(other, { host: "127.0.0.1", port: first.port })
        assert.strictEqual(elsewhere.port, first.port)
        const named = yield* Effect.flip(NamespacedSocket.listen(set, { host: "localhost" }))
        assert.strictEqual(named._tag, "InvalidOptions")
      }))

    it.effect("udp and unix sockets are made inside too", () =>
      Effect.gen(function*() {
        const set = yield* isolatedNet
        const udp = yield* NamespacedSocket.listen(set, { type: "udp", host: "127.0.0.1" })
        const inside = yield* NamespaceSet.run(set, Task.exec("ss", ["-lunH"]))
        assert.include(listeningPorts(inside.stdout), udp.port)
        const path = `/tmp/gonso-${process.pid}.sock`
        const unix = yield* NamespacedSocket.listen(set, { type: "unix", path })
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(path, { force: true })))
        yield* NamespacedSocket.serve(unix, net.createServer((connection) => connection.end("unix")))
        const reply = yield* Effect.callback<string>((resume) => {
          const client = net.connect(path)
          let text = ""
          client.on("data", (chunk) => (text += chunk))
          client.on("end", () => resume(Effect.succeed(text)))
        })
        assert.strictEqual(reply, "unix")
      }))
  })

  describe("NamespacedHttpServer", () => {
    it.effect("serves an Effect HttpRouter inside the namespace to an Effect HttpClient inside it, and shuts down cleanly", () =>
      Effect.gen(function*() {
        const set = yield* isolatedNet
        const app = HttpRouter.add("GET", "/hello", HttpServerResponse.text("hello from the namespace"))
        const serverLayer = HttpRouter.serve(app, { disableLogger: true, disableListenLog: true }).pipe(
          Layer.provideMerge(NamespacedHttpServer.layer(set, { host: "127.0.0.1", port: 0 }))
        )
        const scope = yield* Scope.make()
        const services = yield* Layer.buildWithScope(serverLayer, scope)
        const address = Context.get(services, HttpServer.HttpServer).address as { port: number }
        const body = yield* HttpClient.get(`http://127.0.0.1:${address.port}/hello`).pipe(
          Effect.flatMap((response) => Effect.map(response.text, (text) => [response.status, text] as const)),
          Effect.provide(NamespacedHttpClient.layer(set))
        )
        assert.deepStrictEqual(body, [200, "hello from the namespace"])
        assert.strictEqual(yield* refusedOnHost(address.port), "ECONNREFUSED")
        yield* Scope.close(scope, Exit.void)
        const after = yield* NamespaceSet.run(set, Task.exec("ss", ["-ltnH"]))
        assert.notInclude(listeningPorts(after.stdout), address.port)
      }))
  })
})
