import { spawnSync } from "node:child_process"
import * as net from "node:net"
import * as path from "node:path"
import { assert, describe, it as plainIt, layer } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Scope } from "effect"
import { NamespacedSocket, NamespaceSet, Network, PinnedThreads, Task } from "../src/index.ts"
import { eventually, inLayer, onHost, openFdCount, readToEnd, withThreads } from "./helpers.ts"

/** `ip ARGS` inside the set, its JSON output parsed. */
const ipJson = (set: NamespaceSet.NamespaceSet, ...args: Array<string>) =>
  Effect.flatMap(NamespaceSet.run(set, Task.exec("ip", ["-j", ...args])), (result) =>
    result.exitCode === 0 ? Effect.succeed(JSON.parse(result.stdout) as Array<any>) : Effect.die(new Error(`ip ${args.join(" ")}: ${result.stderr}`)))

/** A new network namespace, `lo` still down. */
const freshNet = NamespaceSet.unshareCurrent(["net"])

/** What `ip -j -d addr` says about each link, in the shape `Network.links` reports. */
const ipLinks = (set: NamespaceSet.NamespaceSet) =>
  Effect.map(ipJson(set, "-d", "addr"), (links) =>
    links.map((link) => ({
      index: link.ifindex,
      name: link.ifname,
      kind: link.linkinfo?.info_kind,
      mtu: link.mtu,
      up: (link.flags as Array<string>).includes("UP"),
      operstate: String(link.operstate).toLowerCase(),
      mac: link.address,
      master: link.master,
      addresses: (link.addr_info as Array<any>).map((a) => ({ family: a.family, address: a.local, prefix: a.prefixlen, scope: a.scope }))
    })))

const apiLinks = (set: NamespaceSet.NamespaceSet) =>
  Effect.map(Network.links(set), (links) =>
    links.map(({ peerIndex: _, addresses, ...link }) => ({
      ...link,
      addresses: addresses.map(({ tentative: _, ...address }) => address)
    })))

withThreads({ min: 1, max: 2 })("Network", (it) => {
  describe("reading", () => {
    it.effect("links() reports what ip -j -d addr prints: lo, veths, a bridge with a port, addresses of both families", () =>
      Effect.gen(function*() {
        const set = yield* NamespaceSet.unshareCurrent(["net"], { loopback: "up" })
        const other = yield* freshNet
        yield* Network.vethPair({ name: "ve0", in: set, mtu: 1400 }, { name: "ve1", in: other })
        yield* Network.vethPair({ name: "port0", in: set, mac: "02:00:00:00:00:2a" }, { name: "port1", in: set })
        yield* Network.bridge(set, "br0")
        yield* Network.attach(set, "port0", "br0")
        yield* Network.addAddress(set, "ve0", "10.77.0.1/24")
        yield* Network.addAddress(set, "br0", "fd00:77::1/64", { noDad: true })
        yield* Network.setUp(set, ["ve0", "port0", "br0"])
        const ours = yield* apiLinks(set)
        assert.deepStrictEqual(ours.map((link) => link.name), ["lo", "ve0", "port1", "port0", "br0"])
        assert.deepStrictEqual(ours, yield* ipLinks(set))
        const port = ours.find((link) => link.name === "port0")!
        assert.deepInclude(port, { kind: "veth", mac: "02:00:00:00:00:2a", master: "br0", up: true })
        // One link by name is the same as in the list, its bridge by name too.
        assert.deepStrictEqual(yield* Network.link(set, "port0"), (yield* Network.links(set)).find((link) => link.name === "port0"))
        assert.deepInclude(ours.find((link) => link.name === "ve0")!, { kind: "veth", mtu: 1400 })
        assert.deepInclude(ours.find((link) => link.name === "lo")!.addresses[0]!, { address: "127.0.0.1", prefix: 8, scope: "host" })
      }))

    it.effect("a dump the kernel answers in many datagrams (multipart) is read to NLMSG_DONE", () =>
      Effect.gen(function*() {
        const set = yield* freshNet
        for (let i = 0; i < 75; i++) yield* Network.addVethPair({ name: `a${i}`, in: set }, { name: `b${i}`, in: set })
        const links = yield* Network.links(set)
        assert.strictEqual(links.length, 151)
        assert.deepStrictEqual(links.map((link) => link.index), (yield* ipJson(set, "link")).map((link) => link.ifindex))
      }))

    it.effect("routes() reports what ip -j route and ip -j -6 route print", () =>
      Effect.gen(function*() {
        const a = yield* NamespaceSet.unshareCurrent(["net"], { loopback: "up" })
        const b = yield* freshNet
        yield* Network.vethPair({ name: "eth0", in: a }, { name: "eth0", in: b })
        yield* Network.addAddress(a, "eth0", "169.254.10.2/30")
        yield* Network.addAddress(a, "eth0", "fd00:10::2/64", { noDad: true })
        yield* Network.setUp(a, "eth0")
        yield* Network.addRoute(a, { destination: "default", gateway: "169.254.10.1" })
        yield* Network.addRoute(a, { destination: "10.9.0.0/16", device: "eth0", metric: 50 })
        yield* Network.addRoute(a, { destination: "fd00:99::/48", gateway: "fd00:10::1" })
        const normalize = (route: any) => ({
          destination: route.dst === "default" || String(route.dst).includes("/") ? route.dst : `${route.dst}/${route.dst.includes(":") ? 128 : 32}`,
          gateway: route.gateway,
          device: route.dev,
          metric: route.metric,
          source: route.prefsrc,
          protocol: route.protocol ?? "boot",
          scope: route.scope ?? "global"
        })
        const ours = (yield* Network.routes(a)).map(({ family: _, table: __, type: ___, ...route }) => route)
        const theirs = [...yield* ipJson(a, "route"), ...yield* ipJson(a, "-6", "route")].map(normalize)
        assert.deepStrictEqual(ours, theirs)
        assert.deepInclude(ours, { destination: "default", gateway: "169.254.10.1", device: "eth0", metric: undefined, source: undefined, protocol: "boot", scope: "global" })
        assert.deepInclude(ours, { destination: "10.9.0.0/16", gateway: undefined, device: "eth0", metric: 50, source: undefined, protocol: "boot", scope: "link" })

        yield* Network.removeRoute(a, { destination: "default", gateway: "169.254.10.1" })
        yield* Network.removeRoute(a, { destination: "fd00:99::/48" , gateway: "fd00:10::1"})
        assert.deepStrictEqual((yield* Network.routes(a, { family: "inet" })).map((route) => route.destination), ["10.9.0.0/16", "169.254.10.0/30"])
        assert.notInclude((yield* Network.routes(a, { family: "inet6" })).map((route) => route.destination), "fd00:99::/48")
      }))
  })

  describe("changing links", () => {
    it.effect("up, down, MTU, rename, attach and detach, as ip sees them", () =>
      Effect.gen(function*() {
        const set = yield* freshNet
        yield* Network.addVethPair({ name: "d0", in: set }, { name: "peer", in: set })
        yield* Network.addBridge(set, "br0")
        yield* Network.setMtu(set, "d0", 1280)
        yield* Network.rename(set, "d0", "uplink")
        yield* Network.attach(set, "uplink", "br0")
        yield* Network.setUp(set, ["lo", "uplink"])
        let [lo, , uplink] = yield* ipJson(set, "link", "show")
        assert.include(lo.flags, "UP")
        assert.deepInclude(uplink, { ifname: "uplink", mtu: 1280, master: "br0" })
        assert.include(uplink.flags, "UP")
        yield* Network.detach(set, "uplink")
        yield* Network.setDown(set, "uplink")
        ;[, , uplink] = yield* ipJson(set, "link", "show")
        assert.notInclude(uplink.flags, "UP")
        assert.strictEqual(uplink.master, undefined)
        yield* Network.deleteLink(set, "uplink")
        // Deleting one end of a veth pair deletes both.
        assert.deepStrictEqual((yield* ipJson(set, "link")).map((link) => link.ifname), ["lo", "br0"])
      }))

    it.effect("a veth pair with each end made in its own set; the scoped pair is gone from both when its Scope closes", () =>
      Effect.gen(function*() {
        const a = yield* freshNet
        const b = yield* freshNet
        const scope = yield* Scope.make()
        const [ea, eb] = yield* Scope.provide(scope)(Network.vethPair({ name: "eth0", in: a }, { name: "eth1", in: b }))
        const [inA] = (yield* ipJson(a, "-d", "link")).filter((link) => link.ifname === "eth0")
        const [inB] = (yield* ipJson(b, "-d", "link")).filter((link) => link.ifname === "eth1")
        assert.strictEqual(inA.linkinfo.info_kind, "veth")
        assert.strictEqual(inB.linkinfo.info_kind, "veth")
        assert.deepStrictEqual([ea.set, ea.name, ea.index], [a, "eth0", inA.ifindex])
        assert.deepStrictEqual([eb.set, eb.name, eb.index], [b, "eth1", inB.ifindex])
        // Each end names the other as its link.
        assert.strictEqual(inA.link_index, inB.ifindex)
        yield* Scope.close(scope, Exit.void)
        assert.deepStrictEqual((yield* ipJson(a, "link")).map((link) => link.ifname), ["lo"])
        assert.deepStrictEqual((yield* ipJson(b, "link")).map((link) => link.ifname), ["lo"])
      }))

    it.effect("a scoped pair interrupted while being made is either not made or deleted with its Scope", () =>
      Effect.gen(function*() {
        const a = yield* freshNet
        const b = yield* freshNet
        for (let i = 0; i < 12; i++) {
          const scope = yield* Scope.make()
          const fiber = yield* Effect.forkChild(Scope.provide(scope)(Network.vethPair({ name: "eth0", in: a }, { name: "eth0", in: b })))
          if (i % 3 !== 0) yield* Effect.sleep(`${i % 3} millis`)
          yield* Fiber.interrupt(fiber)
          yield* Scope.close(scope, Exit.void)
          assert.deepStrictEqual((yield* ipJson(a, "link")).map((link) => link.ifname), ["lo"])
          assert.deepStrictEqual((yield* ipJson(b, "link")).map((link) => link.ifname), ["lo"])
        }
      }))

    it.effect("moveTo puts a link into another set (renamed on the way); a scoped bridge whose set closed first is skipped", () =>
      Effect.gen(function*() {
        const a = yield* freshNet
        const b = yield* freshNet
        yield* Network.addVethPair({ name: "v0", in: a }, { name: "v1", in: a })
        yield* Network.moveTo(a, "v0", b, { name: "moved" })
        assert.deepStrictEqual((yield* ipJson(a, "link")).map((link) => link.ifname), ["lo", "v1"])
        assert.deepStrictEqual((yield* ipJson(b, "link")).map((link) => link.ifname), ["lo", "moved"])
        // A bridge cannot leave its namespace: the kernel says so, and the error carries its words.
        yield* Network.addBridge(a, "br0")
        const local = yield* Effect.flip(Network.moveTo(a, "br0", b))
        assert.deepInclude(local, { _tag: "NetlinkError", errno: "EINVAL", link: "br0" })
        assert.match((local as { kernelMessage?: string }).kernelMessage ?? "", /netns/)
        // The set's Scope closes before the link's: nothing to delete, no failure.
        const linkScope = yield* Scope.make()
        const setScope = yield* Scope.make()
        const c = yield* Scope.provide(setScope)(freshNet)
        yield* Scope.provide(linkScope)(Network.bridge(c, "d1"))
        yield* Scope.close(setScope, Exit.void)
        yield* Scope.close(linkScope, Exit.void)
      }))

    it.effect("a dummy link where the kernel has the driver; else the kernel's own refusal", () =>
      Effect.gen(function*() {
        const set = yield* freshNet
        const made = yield* Effect.exit(Network.dummy(set, "dummy0"))
        if (Exit.isSuccess(made)) {
          const [link] = (yield* ipJson(set, "-d", "link", "show", "dummy0"))
          assert.strictEqual(link.linkinfo.info_kind, "dummy")
          assert.strictEqual(made.value.index, link.ifindex)
        } else {
          // This kernel was built without CONFIG_DUMMY: ip fails the same way.
          const error = yield* Effect.flip(made)
          assert.deepInclude(error, { _tag: "NetlinkError", errno: "EOPNOTSUPP", kernelMessage: "Unknown device type", link: "dummy0" })
          const ip = yield* NamespaceSet.run(set, Task.exec("ip", ["link", "add", "dummy0", "type", "dummy"]))
          assert.include(ip.stderr, "Unknown device type")
        }
      }))

    it.effect("addresses of both families are added and removed as ip -j addr sees them", () =>
      Effect.gen(function*() {
        const set = yield* freshNet
        yield* Network.addBridge(set, "d0")
        yield* Network.addAddress(set, "d0", "192.0.2.7/24")
        yield* Network.addAddress(set, "d0", "2001:db8::7/64", { noDad: true })
        const addresses = () =>
          Effect.map(ipJson(set, "addr", "show", "d0"), ([link]) => link.addr_info.map((a: any) => `${a.local}/${a.prefixlen}`))
        assert.deepStrictEqual(yield* addresses(), ["192.0.2.7/24", "2001:db8::7/64"])
        yield* Network.removeAddress(set, "d0", "192.0.2.7/24")
        yield* Network.removeAddress(set, "d0", "2001:db8::7/64")
        assert.deepStrictEqual(yield* addresses(), [])
      }))
  })

  describe("errors", () => {
    it.effect("the kernel's refusals are typed, with the operation, link, namespace, errno and the kernel's message", () =>
      Effect.gen(function*() {
        const set = yield* freshNet
        const netns = yield* NamespaceSet.id(set, "net")
        yield* Network.addBridge(set, "d0")
        const exists = yield* Effect.flip(Network.addBridge(set, "d0"))
        assert.deepInclude(exists, { _tag: "LinkExists", operation: "Network.bridge", link: "d0", netns, errno: "EEXIST", code: 17 })
        const missing = yield* Effect.flip(Network.setUp(set, ["lo", "nope"]))
        assert.deepInclude(missing, { _tag: "LinkNotFound", operation: "Network.setUp", link: "nope", netns, errno: "ENODEV" })
        const missingBridge = yield* Effect.flip(Network.attach(set, "d0", "nobridge"))
        assert.deepInclude(missingBridge, { _tag: "LinkNotFound", link: "nobridge" })
        // An extended ack: the kernel's own words come into the error.
        const veth = yield* Network.vethPair({ name: "v0", in: set }, { name: "v1", in: set })
        const tooSmall = yield* Effect.flip(Network.setMtu(set, veth[0].name, 10))
        assert.strictEqual(tooSmall._tag, "NetlinkError")
        assert.deepInclude(tooSmall, { errno: "EINVAL", link: "v0" })
        assert.match((tooSmall as { kernelMessage?: string }).kernelMessage ?? "", /mtu/i)
        assert.include(tooSmall.message, (tooSmall as { kernelMessage?: string }).kernelMessage!)
        const twice = yield* Effect.flip(Effect.andThen(Network.addAddress(set, "d0", "10.1.1.1/24"), Network.addAddress(set, "d0", "10.1.1.1/24")))
        assert.deepInclude(twice, { _tag: "NetlinkError", errno: "EEXIST", link: "d0" })
        const unreachable = yield* Effect.flip(Network.addRoute(set, { destination: "default", gateway: "10.250.0.1" }))
        assert.deepInclude(unreachable, { _tag: "NetlinkError", errno: "ENETUNREACH" })
        // lo came up before "nope" failed: requests run in order and stop at the first refusal.
        assert.include((yield* ipJson(set, "link", "show", "lo"))[0].flags, "UP")
      }))

    it.effect("addresses are checked before anything is sent", () =>
      Effect.gen(function*() {
        const set = yield* freshNet
        for (const bad of ["300.1.1.1/24", "10.0.0.1/33", "fd00::1/129", "fd00:::1/64", "host.example/24", "10.0.0.1/24/1"]) {
          const error = yield* Effect.flip(Network.addAddress(set, "lo", bad))
          assert.deepInclude(error, { _tag: "InvalidAddress", operation: "Network.addAddress", address: bad, link: "lo" })
        }
        const family = yield* Effect.flip(Network.addRoute(set, { destination: "10.0.0.0/8", gateway: "fd00::1" }))
        assert.deepInclude(family, { _tag: "InvalidAddress", address: "fd00::1" })
        const mtu = yield* Effect.flip(Network.setMtu(set, "lo", 1.5))
        assert.strictEqual(mtu._tag, "InvalidOptions")
      }))

    it.effect("a link name with a NUL byte or a lone surrogate is refused, never taken for the link its bytes would name", () =>
      Effect.gen(function*() {
        const set = yield* freshNet
        const other = yield* freshNet
        yield* Network.addBridge(set, "d0")
        const names = (inside: NamespaceSet.NamespaceSet) => Effect.map(Network.links(inside), (links) => links.map((link) => link.name))
        const refused = function*(effect: Effect.Effect<unknown, Network.Error, PinnedThreads.PinnedThreads>, name: string) {
          const error = yield* Effect.flip(effect)
          assert.strictEqual(error._tag, "InvalidOptions", String(error))
          assert.include(error.message, JSON.stringify(name))
        }
        for (const bad of ["lo\0x", "d0\0evil", "d0\uD800", "\uDC00"]) {
          // The kernel reads a name up to its first NUL, and Node sends a lone surrogate as U+FFFD.
          yield* refused(Network.link(set, bad), bad)
          yield* refused(Network.setUp(set, bad), bad)
          yield* refused(Network.attach(set, "d0", bad), bad)
          yield* refused(Network.deleteLink(set, bad), bad)
          yield* refused(Network.rename(set, "d0", bad), bad)
          yield* refused(Network.moveTo(set, "d0", other, { name: bad }), bad)
          yield* refused(Network.addBridge(set, bad), bad)
          yield* refused(Network.addVethPair({ name: "v0", in: set }, { name: bad, in: other }), bad)
          yield* refused(Network.addAddress(set, bad, "10.1.1.1/24"), bad)
          yield* refused(Network.addRoute(set, { destination: "10.2.0.0/16", device: bad }), bad)
        }
        // An empty new name would leave the link as it is, reported as renamed.
        yield* refused(Network.rename(set, "d0", ""), "")
        yield* refused(Network.moveTo(set, "d0", other, { name: "" }), "")
        assert.deepStrictEqual(yield* names(set), ["lo", "d0"])
        assert.deepStrictEqual(yield* names(other), ["lo"])
      }))

    it.effect("LinkExists names the name that is taken and the set it is taken in, as ip there shows it", () =>
      Effect.gen(function*() {
        const a = yield* freshNet
        const b = yield* freshNet
        const idA = yield* NamespaceSet.id(a, "net")
        const idB = yield* NamespaceSet.id(b, "net")
        /** The error names a link that ip, inside the set the error names, shows. */
        const isThere = function*(error: Network.Error, link: string, netns: string) {
          assert.deepInclude(error, { _tag: "LinkExists", link, netns, errno: "EEXIST" })
          const where = netns === idA ? a : b
          assert.strictEqual((yield* ipJson(where, "link", "show", link))[0].ifname, link)
          assert.include(error.message, `${JSON.stringify(link)} already exists`)
          assert.include(error.message, netns)
        }
        yield* Network.addBridge(a, "eth0")
        // The new name is the one taken, not the link renamed.
        yield* isThere(yield* Effect.flip(Network.rename(a, "eth0", "lo")), "lo", idA)
        // Either end's name may be the one taken, each in its own set.
        yield* isThere(yield* Effect.flip(Network.addVethPair({ name: "x0", in: a }, { name: "lo", in: b })), "lo", idB)
        yield* isThere(yield* Effect.flip(Network.addVethPair({ name: "eth0", in: a }, { name: "y0", in: b })), "eth0", idA)
        // Moving onto a name taken in the target, its own or a new one: named there, and the link
        // stays where it was (the kernel alone would move it under its old name, then refuse).
        yield* Network.addVethPair({ name: "m0", in: a }, { name: "m1", in: a })
        yield* Network.addBridge(b, "m1")
        yield* isThere(yield* Effect.flip(Network.moveTo(a, "m1", b)), "m1", idB)
        yield* isThere(yield* Effect.flip(Network.moveTo(a, "m0", b, { name: "lo" })), "lo", idB)
        const names = (set: NamespaceSet.NamespaceSet) => Effect.map(Network.links(set), (links) => links.map((link) => link.name).sort())
        assert.deepStrictEqual(yield* names(a), ["eth0", "lo", "m0", "m1"])
        assert.deepStrictEqual(yield* names(b), ["lo", "m1"])
      }))

    it.effect("input of the wrong type, anywhere, is a typed error, never a defect, and nothing reaches the kernel", () =>
      Effect.gen(function*() {
        const set = yield* freshNet
        const notASet = { net: 3 } as unknown as NamespaceSet.NamespaceSet
        const any = <T>(value: unknown) => value as T
        const calls: ReadonlyArray<readonly [string, Effect.Effect<unknown, Network.Error, PinnedThreads.PinnedThreads>]> = [
          ["setUp(5)", Network.setUp(set, any(5))],
          ["setDown({})", Network.setDown(set, any({}))],
          ["setUp([5])", Network.setUp(set, any([5]))],
          ["addAddress(lo, 5)", Network.addAddress(set, "lo", any(5))],
          ["addAddress(5, cidr)", Network.addAddress(set, any(5), "10.0.0.1/24")],
          ["removeAddress(lo, {})", Network.removeAddress(set, "lo", any({}))],
          ["addRoute(5)", Network.addRoute(set, any(5))],
          ["addRoute(destination 5)", Network.addRoute(set, any({ destination: 5 }))],
          ["addRoute(gateway 5)", Network.addRoute(set, any({ destination: "default", gateway: 5 }))],
          ["addRoute(source {})", Network.addRoute(set, any({ destination: "10.0.0.0/8", source: {} }))],
          ["addRoute(device 5)", Network.addRoute(set, any({ destination: "10.0.0.0/8", device: 5 }))],
          ["removeRoute(destination null)", Network.removeRoute(set, any({ destination: null }))],
          ["addRoute(family bogus)", Network.addRoute(set, any({ destination: "default", family: "bogus" }))],
          ["routes(family bogus)", Network.routes(set, any({ family: "bogus" }))],
          ["links(not a set)", Network.links(notASet)],
          ["link(not a set)", Network.link(notASet, "lo")],
          ["moveTo(to not a set)", Network.moveTo(set, "lo", notASet)],
          ["vethPair(in 5)", Network.addVethPair({ name: "a0", in: set }, { name: "b0", in: any(5) })],
          ["rename(to 5)", Network.rename(set, "lo", any(5))]
        ]
        for (const [label, call] of calls) {
          const exit = yield* Effect.exit(call)
          assert.isTrue(Exit.isFailure(exit) && !Exit.hasDies(exit), `${label}: ${String(exit)}`)
          const error = yield* Effect.flip(call)
          assert.include(["InvalidOptions", "InvalidAddress"], error._tag, `${label}: ${String(error)}`)
        }
        // Nothing of it reached the set: no address, no route, links as they were.
        assert.deepStrictEqual((yield* Network.links(set)).map((link) => [link.name, link.up, link.addresses.length]), [["lo", false, 0]])
        assert.deepStrictEqual(yield* Network.routes(set), [])
      }))

    it.effect("a name the kernel would refuse (16 bytes or more, /, :, whitespace, . and ..) is InvalidOptions saying why; 15 bytes is a name", () =>
      Effect.gen(function*() {
        const set = yield* freshNet
        yield* Network.addBridge(set, "d0")
        for (const bad of ["a".repeat(16), "é".repeat(8), "a/b", "a:b", "a b", "a\tb", "a\nb", ".", ".."]) {
          for (const call of [Network.addBridge(set, bad), Network.rename(set, "d0", bad), Network.link(set, bad), Network.setUp(set, ["lo", bad])]) {
            const error = yield* Effect.flip(call)
            assert.strictEqual(error._tag, "InvalidOptions", `${JSON.stringify(bad)}: ${String(error)}`)
            assert.include(error.message, JSON.stringify(bad))
          }
        }
        // The longest name there is, and one of 14 bytes in two-byte characters.
        yield* Network.addBridge(set, "a".repeat(15))
        yield* Network.rename(set, "d0", "é".repeat(7))
        assert.deepStrictEqual((yield* ipJson(set, "link", "show")).map((link) => link.ifname), ["lo", "é".repeat(7), "a".repeat(15)])
        // lo was not brought up by the setUp calls refused above.
        assert.notInclude((yield* ipJson(set, "link", "show", "lo"))[0].flags, "UP")
      }))

    plainIt("a link is found by name with no fd to spare beyond the netlink socket (running out was reported as a missing link)", () => {
      const script = new URL("./fixtures/netlink-last-fd.ts", import.meta.url).pathname
      const result = spawnSync("sh", ["-c", `ulimit -n 256 && exec "$0" "$1"`, process.execPath, script], { encoding: "utf8", timeout: 30_000 })
      assert.strictEqual(result.status, 0, result.stderr)
      assert.deepStrictEqual(JSON.parse(result.stdout), { ok: true, up: true })
    })

    plainIt("without CAP_NET_ADMIN: NetworkPermissionDenied, with the operation, link and errno", () => {
      const script = new URL("./fixtures/network-unprivileged.ts", import.meta.url).pathname
      const result = spawnSync("setpriv", ["--bounding-set=-net_admin", process.execPath, script], { encoding: "utf8", timeout: 30_000 })
      assert.strictEqual(result.status, 0, result.stderr)
      const error = JSON.parse(result.stdout)
      assert.deepInclude(error, { _tag: "NetworkPermissionDenied", operation: "Network.dummy", link: "dummy0", errno: "EPERM", code: 1 })
      assert.include(error.message, "CAP_NET_ADMIN")
    })
  })

  describe("traffic and set-up", () => {
    it.effect("a TCP server in one set answers a client in the other over the veth, through a default route", () =>
      Effect.gen(function*() {
        const server = yield* NamespaceSet.unshareCurrent(["net"], { loopback: "up" })
        const client = yield* NamespaceSet.unshareCurrent(["net"], { loopback: "up" })
        yield* Network.vethPair({ name: "eth0", in: server }, { name: "eth0", in: client })
        yield* Network.addAddress(server, "eth0", "169.254.10.1/30")
        yield* Network.addAddress(client, "eth0", "169.254.10.2/30")
        yield* Network.setUp(server, "eth0")
        yield* Network.setUp(client, "eth0")
        // A server address off the veth's subnet (on the server's lo), reached only through the
        // client's default route.
        yield* Network.addAddress(server, "lo", "10.200.0.1/32")
        yield* Network.addRoute(client, { destination: "default", gateway: "169.254.10.1" })
        const listening = yield* NamespacedSocket.listen(server, { host: "10.200.0.1", port: 0 })
        yield* NamespacedSocket.serve(listening, net.createServer((connection) => connection.end(`hi ${connection.remoteAddress}`)))
        const socket = yield* NamespacedSocket.connect(client, { host: "10.200.0.1", port: listening.port })
        const answer = yield* readToEnd(socket)
        assert.strictEqual(answer, "hi 169.254.10.2")
      }))

    it.effect("unshare's loopback: \"up\" also works for a set holding its own user namespace", () =>
      Effect.gen(function*() {
        const root = [{ containerId: 0, hostId: 0, size: 1 }]
        const set = yield* NamespaceSet.unshareCurrent(["user", "net"], { loopback: "up", uidMap: root, gidMap: root })
        const [lo] = yield* ipJson(set, "link", "show", "lo")
        assert.include(lo.flags, "UP")
        assert.strictEqual((yield* Network.links(set))[0]!.up, true)
      }))

    plainIt("examples/two-hosts.ts sets everything up with ip absent from PATH", () => {
      const example = new URL("../examples/two-hosts.ts", import.meta.url).pathname
      const bin = path.dirname(process.execPath)
      assert.notStrictEqual(spawnSync("sh", ["-c", "command -v ip"], { env: { PATH: bin } }).status, 0)
      const result = spawnSync(process.execPath, [example], { encoding: "utf8", timeout: 30_000, env: { PATH: bin } })
      assert.strictEqual(result.stderr, "")
      assert.strictEqual(result.status, 0)
      assert.match(result.stdout, /client eth0: eth0 up 169\.254\.77\.2\/30/)
      assert.match(result.stdout, /hello from server, you are 169\.254\.77\.2/)
    })

    it.effect("nothing is left: the host's links are untouched, no fd stays open", () =>
      Effect.gen(function*() {
        const hostLinks = onHost("ip", ["-o", "link"])
        const fds = openFdCount()
        yield* Effect.scoped(Effect.gen(function*() {
          const a = yield* freshNet
          const b = yield* freshNet
          yield* Network.vethPair({ name: "eth0", in: a }, { name: "eth0", in: b })
          yield* Network.links(a)
        }))
        assert.strictEqual(onHost("ip", ["-o", "link"]), hostLinks)
        yield* Effect.promise(() => eventually(() => openFdCount() === fds))
        assert.strictEqual(openFdCount(), fds)
      }))
  })
})

// "Each test gets its own network": the recipe of docs/network.md.
const ownNetwork = <A, E, R>(test: Effect.Effect<A, E, R>) => Effect.provide(test, Network.isolated())

withThreads({ min: 1, max: 2 })("Network.isolated", (it) => {
  const seen: Array<string> = []
  for (const n of [1, 2]) {
    it.effect(`test ${n} gets a network of its own, lo up`, () =>
      ownNetwork(Effect.gen(function*() {
        const { set } = yield* Network.Isolated
        const id = yield* NamespaceSet.id(set, "net")
        assert.notInclude(seen, id)
        seen.push(id)
        const [lo] = yield* Network.links(set)
        assert.deepInclude(lo!, { name: "lo", up: true })
        // 127.0.0.1 works inside at once.
        const listening = yield* NamespacedSocket.listen(set, { host: "127.0.0.1", port: 0 })
        yield* NamespacedSocket.serve(listening, net.createServer((connection) => connection.end("ok")))
        const socket = yield* NamespacedSocket.connect(set, { host: "127.0.0.1", port: listening.port })
        const answer = yield* readToEnd(socket)
        assert.strictEqual(answer, "ok")
      })))
  }
})

// A block of tests sharing one: `layer(...)` builds the Layer once.
inLayer(Layer.provideMerge(Network.isolated(), PinnedThreads.layer({ min: 1, max: 2 })))(
  "Network.isolated shared by a block",
  (it) => {
    it.effect("the set is a new network namespace, not the host's", () =>
      Effect.gen(function*() {
        const { set } = yield* Network.Isolated
        assert.notStrictEqual(yield* NamespaceSet.id(set, "net"), onHost("readlink", ["/proc/self/ns/net"]).trim())
      }))
  }
)
