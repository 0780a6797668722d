import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"

const run = (command: string, args: ReadonlyArray<string>) => {
  const result = spawnSync(command, args, { encoding: "utf8" })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

layer(PinnedThreads.layer({ min: 1, max: 2 }), { excludeTestServices: true })("persistence", (it) => {
  describe("persistNetns", () => {
    it.effect("a named network namespace is seen by ip netns, nsenter and lsns, and removal leaves nothing", () =>
      Effect.gen(function*() {
        const name = `gonso-test-${process.pid}`
        const id = yield* Effect.scoped(Effect.gen(function*() {
          const set = yield* NamespaceSet.unshareCurrent(["net"])
          const id = yield* NamespaceSet.id(set, "net")
          const path = yield* NamespaceSet.persistNetns(set, name)
          assert.strictEqual(path, `/run/netns/${name}`)
          assert.include(run("ip", ["netns", "list"]).stdout.split("\n").map((line) => line.split(" ")[0]), name)
          const exec = run("ip", ["netns", "exec", name, "sh", "-c", "readlink /proc/self/ns/net; ip -o link | cut -d: -f2; lsns -n -t net -o NS -p $$"])
          assert.strictEqual(exec.status, 0, exec.stderr)
          const [link, links, lsns] = exec.stdout.trim().split("\n").map((line) => line.trim())
          assert.strictEqual(link, id)
          assert.strictEqual(links, "lo")
          assert.strictEqual(`net:[${lsns}]`, id)
          assert.strictEqual(run("nsenter", [`--net=${path}`, "readlink", "/proc/self/ns/net"]).stdout.trim(), id)
          // Opened again by name, it is the same namespace.
          const byName = yield* NamespaceSet.fromNetnsName(name)
          assert.isTrue(yield* NamespaceSet.equals(byName, set))
          // A name that is taken is refused.
          const again = yield* Effect.flip(NamespaceSet.persistNetns(set, name))
          assert.strictEqual(again._tag === "SystemError" && again.errno, "EEXIST")
          return id
        }))
        assert.isFalse(fs.existsSync(`/run/netns/${name}`))
        assert.notInclude(run("ip", ["netns", "list"]).stdout, name)
        assert.notInclude(fs.readFileSync("/proc/self/mountinfo", "utf8"), name)
        assert.notInclude(fs.readFileSync("/proc/self/mountinfo", "utf8"), id)
        const missing = yield* Effect.flip(Effect.scoped(NamespaceSet.fromNetnsName(name)))
        assert.strictEqual(missing._tag, "NamespaceNotFound")
        const invalid = yield* Effect.flip(Effect.scoped(NamespaceSet.fromNetnsName("../etc")))
        assert.strictEqual(invalid._tag, "InvalidOptions")
      }))
  })

  describe("mount", () => {
    it.effect("every kind of a set, user included, is bind-mounted into a private mount namespace and removed with the Scope", () =>
      Effect.gen(function*() {
        const dir = `/tmp/gonso-mount-${process.pid}`
        const mountNs = yield* NamespaceSet.unshareCurrent(["mnt"])
        const rootMap = [{ containerId: 0, hostId: 0, size: 1 }]
        const set = yield* NamespaceSet.unshareCurrent(["user", "net", "uts"], { uidMap: rootMap, gidMap: rootMap })
        yield* Effect.scoped(Effect.gen(function*() {
          yield* NamespaceSet.mountScoped(set, dir, { mountNamespace: mountNs })
          const stat = yield* NamespaceSet.run(mountNs, Task.exec("sh", ["-c", `stat -c %i ${dir}/user ${dir}/net ${dir}/uts; nsenter --net=${dir}/net readlink /proc/self/ns/net`]))
          assert.strictEqual(stat.exitCode, 0, stat.stderr)
          const [user, net, uts, joined] = stat.stdout.trim().split("\n")
          assert.strictEqual(Number(user), (yield* NamespaceSet.identity(set, "user")).ino)
          assert.strictEqual(Number(net), (yield* NamespaceSet.identity(set, "net")).ino)
          assert.strictEqual(Number(uts), (yield* NamespaceSet.identity(set, "uts")).ino)
          assert.strictEqual(joined, yield* NamespaceSet.id(set, "net"))
          // None of it is visible in this process's mount namespace.
          assert.notInclude(fs.readFileSync("/proc/self/mountinfo", "utf8"), dir)
        }))
        const after = yield* NamespaceSet.run(mountNs, Task.exec("sh", ["-c", `grep -c ${dir} /proc/self/mountinfo; ls ${dir}`]))
        assert.strictEqual(after.stdout.trim(), "0")
        fs.rmSync(dir, { recursive: true, force: true })
      }))

    it.effect("a mount namespace mounted onto a path inside itself is a typed error", () =>
      Effect.gen(function*() {
        const mountNs = yield* NamespaceSet.unshareCurrent(["mnt"])
        const file = `/tmp/gonso-loop-${process.pid}`
        const error = yield* Effect.flip(NamespaceSet.mountKind(mountNs, "mnt", file, { mountNamespace: mountNs }))
        assert.strictEqual(error._tag, "InvalidOptions")
        assert.include(error.message, "inside itself")
        const leftover = yield* NamespaceSet.run(mountNs, Task.exec("sh", ["-c", `test -e ${file} && echo present || echo absent`]))
        assert.strictEqual(leftover.stdout.trim(), "absent")
      }))
  })
})
