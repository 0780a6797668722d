import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import { withThreads } from "./helpers.ts"

const fixture = new URL("./fixtures/main-mount-namespace.ts", import.meta.url).pathname

const run = (command: string, args: ReadonlyArray<string>) => {
  const result = spawnSync(command, args, { encoding: "utf8" })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

withThreads({ min: 1, max: 2 })("persistence", (it) => {
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

    it.effect("a name that is a symbolic link is refused, not followed", () =>
      Effect.gen(function*() {
        const madeDir = !fs.existsSync("/run/netns")
        if (madeDir) fs.mkdirSync("/run/netns", { mode: 0o755 })
        const link = `/run/netns/gonso-link-${process.pid}`
        fs.symlinkSync("/proc/self/ns/net", link)
        try {
          const refused = yield* Effect.flip(Effect.scoped(NamespaceSet.fromNetnsName(`gonso-link-${process.pid}`)))
          assert.strictEqual(refused._tag, "PathRefused")
        } finally {
          fs.rmSync(link)
          if (madeDir) fs.rmdirSync("/run/netns")
        }
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

  describe("filesystem targets", () => {
    const base = `/tmp/gonso-edges-${process.pid}`
    const clean = () => fs.rmSync(base, { recursive: true, force: true })

    it.effect("a symlink as the target is never followed: PathRefused names it, and nothing is made where it points", () =>
      Effect.gen(function*() {
        clean()
        fs.mkdirSync(`${base}/dir`, { recursive: true })
        fs.symlinkSync(`${base}/elsewhere`, `${base}/dir/net`)
        const mountNs = yield* NamespaceSet.unshareCurrent(["mnt"])
        const set = yield* NamespaceSet.unshareCurrent(["net"])
        const error = yield* Effect.flip(Effect.scoped(NamespaceSet.mountScoped(set, `${base}/dir`, { mountNamespace: mountNs })))
        assert.strictEqual(error._tag, "PathRefused")
        if (error._tag === "PathRefused") assert.strictEqual(error.path, `${base}/dir/net`)
        assert.isFalse(fs.existsSync(`${base}/elsewhere`))
        const mounts = yield* NamespaceSet.run(mountNs, Task.readFile("/proc/thread-self/mountinfo"))
        assert.notInclude(mounts, base)
        clean()
      }))

    it.effect("a symlinked parent directory is refused, and nothing is made behind it", () =>
      Effect.gen(function*() {
        clean()
        fs.mkdirSync(`${base}/real`, { recursive: true })
        fs.symlinkSync(`${base}/real`, `${base}/link`)
        const mountNs = yield* NamespaceSet.unshareCurrent(["mnt"])
        const set = yield* NamespaceSet.unshareCurrent(["net"])
        const error = yield* Effect.flip(NamespaceSet.mountKind(set, "net", `${base}/link/sub/net`, { mountNamespace: mountNs }))
        assert.strictEqual(error._tag, "PathRefused")
        if (error._tag === "PathRefused") assert.strictEqual(error.path, `${base}/link/sub/net`)
        assert.include(error.message, "symbolic link")
        assert.deepStrictEqual(fs.readdirSync(`${base}/real`), [])
        clean()
      }))

    it.effect("a target file that existed is reused and kept when the Scope closes; directories made are 0755 and removed", () =>
      Effect.gen(function*() {
        clean()
        fs.mkdirSync(base, { recursive: true })
        fs.writeFileSync(`${base}/keep`, "precious")
        const mountNs = yield* NamespaceSet.unshareCurrent(["mnt"])
        const set = yield* NamespaceSet.unshareCurrent(["net", "uts"])
        yield* Effect.scoped(Effect.gen(function*() {
          yield* NamespaceSet.mountKindScoped(set, "net", `${base}/keep`, { mountNamespace: mountNs })
          yield* NamespaceSet.mountScoped(set, `${base}/made/deeper`, { mountNamespace: mountNs })
          assert.strictEqual(fs.statSync(`${base}/made`).mode & 0o7777, 0o755)
          assert.strictEqual(fs.statSync(`${base}/made/deeper`).mode & 0o7777, 0o755)
        }))
        assert.strictEqual(fs.readFileSync(`${base}/keep`, "utf8"), "precious")
        assert.isFalse(fs.existsSync(`${base}/made`))
        clean()
      }))

    it.effect("unmount leaves alone what is not a namespace mount: a plain file, a tmpfs", () =>
      Effect.gen(function*() {
        clean()
        fs.mkdirSync(`${base}/tmpfs`, { recursive: true })
        fs.writeFileSync(`${base}/file`, "data")
        const mountNs = yield* NamespaceSet.unshareCurrent(["mnt"])
        const mounted = yield* NamespaceSet.run(mountNs, Task.exec("mount", ["-t", "tmpfs", "gonso-edge", `${base}/tmpfs`]))
        assert.strictEqual(mounted.exitCode, 0, mounted.stderr)
        for (const path of [`${base}/file`, `${base}/tmpfs`]) {
          const error = yield* Effect.flip(NamespaceSet.unmount([path], { mountNamespace: mountNs }))
          assert.strictEqual(error._tag, "PathRefused")
          if (error._tag === "PathRefused") assert.strictEqual(error.path, path)
        }
        assert.strictEqual(fs.readFileSync(`${base}/file`, "utf8"), "data")
        const mounts = yield* NamespaceSet.run(mountNs, Task.readFile("/proc/thread-self/mountinfo"))
        assert.include(mounts, `${base}/tmpfs`)
        clean()
      }))

    it.effect("on the main thread: directories are 0755 under umask 0 and removed; a stale /run/netns name is recognised and taken over", () =>
      Effect.sync(() => {
        const name = `gonso-stale-${process.pid}`
        const result = spawnSync("unshare", ["--mount", "--propagation", "private", process.execPath, fixture, `${base}-main`, name], {
          encoding: "utf8",
          timeout: 30_000
        })
        assert.strictEqual(result.status, 0, result.stderr)
        const found = JSON.parse(result.stdout)
        assert.deepStrictEqual(found.modes, ["755", "755", "755"])
        assert.isFalse(found.dirLeft)
        assert.strictEqual(found.fromNetnsName._tag, "StaleNetnsName", found.fromNetnsName.message)
        assert.strictEqual(found.persistNetns, `/run/netns/${name}`)
        assert.isTrue(found.sameNamespace)
        assert.isFalse(found.staleLeft)
        assert.isFalse(fs.existsSync(`/run/netns/${name}`))
      }))
  })
})
