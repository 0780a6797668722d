/**
 * The data-last forms of what a user pipes a set into: each gives what the data-first form gives.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import { NamespacedProcess, NamespacedSocket, NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import { withThreads } from "./helpers.ts"

withThreads({ min: 1, max: 2 })("data-last forms", (it) => {
  describe("NamespaceSet", () => {
    it.effect("id, identity, equals, fds, owner", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.current(["net", "uts"])
        assert.strictEqual(yield* set.pipe(NamespaceSet.id("net")), yield* NamespaceSet.id(set, "net"))
        assert.deepStrictEqual(yield* set.pipe(NamespaceSet.identity("uts")), yield* NamespaceSet.identity(set, "uts"))
        const copy = yield* set.pipe(NamespaceSet.dup())
        assert.isTrue(yield* set.pipe(NamespaceSet.equals(copy)))
        const fds = yield* set.pipe(NamespaceSet.fds(["net"]))
        assert.deepStrictEqual(Object.keys(fds), ["net"])
        assert.deepStrictEqual(Object.keys(yield* set.pipe(NamespaceSet.fds())).sort(), ["net", "uts"])
        const owner = yield* set.pipe(NamespaceSet.owner("net"))
        assert.deepStrictEqual(owner.kinds, ["user"])
      }))

    it.effect("enter", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.unshareCurrent(["uts"])
        const inside = yield* set.pipe(NamespaceSet.enter())
        yield* inside.run(Task.setHostname("data-last"))
        assert.strictEqual(yield* inside.run(Task.hostname), "data-last")
        const again = yield* set.pipe(NamespaceSet.enter({ restore: true }))
        assert.isAbove(again.tid, 0)
      }))

    it.effect("mount, mountKind, mountScoped, mountKindScoped, persistNetns", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.unshareCurrent(["net", "uts"])
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gonso-data-last-"))
        try {
          yield* Effect.scoped(Effect.gen(function*() {
            yield* set.pipe(NamespaceSet.mountScoped(`${dir}/scoped`))
            yield* set.pipe(NamespaceSet.mountKindScoped("net", `${dir}/net-scoped`))
            const reopened = yield* NamespaceSet.fromPath(`${dir}/scoped`, ["net", "uts"])
            assert.isTrue(yield* NamespaceSet.equals(reopened, set))
          }))
          yield* set.pipe(NamespaceSet.mount(`${dir}/kept`))
          yield* set.pipe(NamespaceSet.mountKind("uts", `${dir}/uts-kept`))
          const kept = yield* NamespaceSet.fromFiles({ net: `${dir}/kept/net`, uts: `${dir}/uts-kept` })
          assert.isTrue(yield* NamespaceSet.equals(kept, set))
          yield* NamespaceSet.unmount([`${dir}/kept/net`, `${dir}/kept/uts`, `${dir}/uts-kept`])
          const name = `gonso-data-last-${process.pid}`
          yield* Effect.scoped(Effect.gen(function*() {
            assert.strictEqual(yield* set.pipe(NamespaceSet.persistNetns(name)), `/run/netns/${name}`)
          }))
          assert.isFalse(fs.existsSync(`/run/netns/${name}`))
        } finally {
          fs.rmSync(dir, { recursive: true, force: true })
        }
      }))

    it.effect("spawn", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.current(["net"])
        const child = yield* set.pipe(NamespaceSet.spawn("true"))
        const status = yield* child.exit
        assert.strictEqual(status.exitCode, 0)
        const other = yield* set.pipe(NamespacedProcess.spawn("sh", ["-c", "exit 3"]))
        assert.strictEqual((yield* other.exit).exitCode, 3)
      }))
  })

  describe("NamespacedSocket", () => {
    it.effect("listen, connect, connectUnscoped", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.unshareCurrent(["net"], { loopback: "up" })
        const listening = yield* set.pipe(NamespacedSocket.listen({ port: 0 }))
        assert.isAbove(listening.port, 0)
        const socket = yield* set.pipe(NamespacedSocket.connect({ host: "127.0.0.1", port: listening.port }))
        assert.strictEqual(socket.remotePort, listening.port)
        const unscoped = yield* set.pipe(NamespacedSocket.connectUnscoped({ host: "127.0.0.1", port: listening.port }))
        unscoped.destroy()
      }))
  })
})
