/**
 * The pure parts, without the kernel and without root: rtnetlink's wire format, IP address and
 * CIDR parsing, the checks of caller input, and the drop reasons' classes and sentences. What they
 * feed into the kernel is tested against it elsewhere (Network, strings, errors and the thread
 * tests); here each is held to an independent statement of what it must give.
 */
import * as net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import * as C from "../src/internal/netlink/constants.ts"
import { attr, formatIp, i32, message, networkOf, parseAttrs, parseCidr, parseIp, parseMessages, str, u32 } from "../src/internal/netlink/codec.ts"
import { cStringProblem, specProblem, unshareOptionsProblem } from "../src/internal/validate.ts"
import { describe as describeDrop, dropClass, type DropReason } from "../src/internal/drop.ts"
import { helperError, syscallError } from "../src/internal/failure.ts"
import { SyscallFailure } from "../src/internal/libc.ts"

/** A deterministic stream of bytes (xorshift32), so that a failure can be run again. */
const bytes = (seed: number) => {
  let x = seed
  return (n: number) =>
    Buffer.from(Array.from({ length: n }, () => {
      x ^= x << 13
      x ^= x >>> 17
      x ^= x << 5
      return x & 0xff
    }))
}

describe("IP addresses", () => {
  it("IPv4 and IPv6 text is parsed exactly when Node's net.isIP says it is an address", () => {
    const cases = [
      "0.0.0.0", "10.0.0.1", "255.255.255.255", "256.0.0.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "010.0.0.1", "::ffff:01.2.3.4",
      "::", "::1", "1::", "2001:db8::1", "2001:db8:0:0:0:0:2:1", "fe80::1%eth0", "::ffff:1.2.3.4",
      "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "g::1", "1:2:3:4:5:6:1.2.3.4", "", "localhost"
    ]
    for (const text of cases) {
      // A zone id ("%eth0") names a link, not an address: Node takes it, gonso does not.
      const expected = net.isIP(text) !== 0 && !text.includes("%")
      assert.strictEqual(parseIp(text) !== undefined, expected, text)
    }
  })

  it("an address printed and parsed again is the same 16 bytes, and printed as a browser's URL parser prints it", () => {
    const next = bytes(0x9e3779b9)
    for (let i = 0; i < 500; i++) {
      const address = next(16)
      // Runs of zero groups, so that `::` compression is exercised.
      if (i % 3 === 0) address.fill(0, (i % 8) * 2, Math.min(16, (i % 8) * 2 + 2 * (1 + (i % 5))))
      if (address.subarray(0, 10).every((byte) => byte === 0) && address.readUInt16BE(10) === 0xffff) continue
      const text = formatIp(address)
      assert.deepStrictEqual(parseIp(text), address, text)
      // WHATWG URL serializes IPv6 as RFC 5952 does: lower case, the first longest run of two or
      // more zero groups as `::`; inet_ntop (and `ip`) agree except for IPv4-mapped addresses.
      assert.strictEqual(text, new URL(`http://[${text}]/`).hostname.slice(1, -1), text)
    }
    // Ties between runs of zero groups, and single zero groups, which are never compressed.
    for (const text of ["1:0:0:2:0:0:3:4", "0:0:1:0:0:1:0:0", "1:0:2:0:3:0:4:0", "0:0:0:1:0:0:0:0", "1:2:3:4:5:6:7:0"]) {
      const printed = formatIp(parseIp(text)!)
      assert.strictEqual(printed, new URL(`http://[${text}]/`).hostname.slice(1, -1), text)
    }
    assert.strictEqual(formatIp(parseIp("1:0:0:2:0:0:3:4")!), "1::2:0:0:3:4")
    assert.strictEqual(formatIp(parseIp("::ffff:1.2.3.4")!), "::ffff:1.2.3.4")
    assert.strictEqual(formatIp(Buffer.from([192, 168, 0, 1])), "192.168.0.1")
  })

  it("CIDR: the prefix is optional and bounded by the address's size; the network clears the host bits", () => {
    assert.deepInclude(parseCidr("10.1.2.3/8") as object, { family: C.AF_INET, prefix: 8 })
    assert.deepInclude(parseCidr("2001:db8::1") as object, { family: C.AF_INET6, prefix: 128 })
    assert.match(parseCidr("10.0.0.1/33") as string, /prefix "33" is not 0 to 32/)
    assert.match(parseCidr("10.0.0.1/-1") as string, /prefix/)
    assert.match(parseCidr("10.0.0.1/8/8") as string, /more than one/)
    assert.match(parseCidr("host/8") as string, /is not an IPv4 or IPv6 address/)
    assert.strictEqual(formatIp(networkOf(parseIp("10.1.2.3")!, 8)), "10.0.0.0")
    assert.strictEqual(formatIp(networkOf(parseIp("10.1.2.3")!, 0)), "0.0.0.0")
    assert.strictEqual(formatIp(networkOf(parseIp("10.1.2.3")!, 32)), "10.1.2.3")
    assert.strictEqual(formatIp(networkOf(parseIp("2001:db8:ffff::1")!, 36)), "2001:db8:f000::")
  })
})

describe("rtnetlink messages", () => {
  it("a message is its header, then its fixed part, then its attributes, each aligned to 4 bytes", () => {
    const header = Buffer.alloc(16)
    const encoded = message(C.RTM_NEWLINK, 0x0405, header, [str(C.IFLA_IFNAME, "veth0"), u32(C.IFLA_MTU, 1500)])
    const data = encoded.data
    // nlmsghdr: length, type, flags, then the sequence and port left for the exchange to fill.
    assert.strictEqual(data.readUInt32LE(0), data.length)
    assert.strictEqual(data.readUInt16LE(4), C.RTM_NEWLINK)
    assert.strictEqual(data.readUInt16LE(6), 0x0405)
    // IFLA_IFNAME: length 4 + "veth0\0" = 10, padded to 12; then IFLA_MTU: 8.
    assert.strictEqual(data.length, 16 + 16 + 12 + 8)
    assert.strictEqual(data.readUInt16LE(32), 10)
    assert.strictEqual(data.readUInt16LE(34), C.IFLA_IFNAME)
    assert.strictEqual(data.subarray(36, 42).toString(), "veth0\0")
    assert.strictEqual(data.readUInt16LE(44), 8)
    assert.strictEqual(data.readUInt32LE(48), 1500)
  })

  it("messages and nested attributes encoded are decoded to what was encoded", () => {
    const next = bytes(7)
    const header = Buffer.alloc(16)
    const parts = []
    for (let i = 0; i < 20; i++) {
      const inner = [attr(1, next(i % 7)), i32(2, -i), str(3, `link${i}`)]
      parts.push(message(C.RTM_NEWADDR, i, header, [attr(C.IFLA_LINKINFO, inner), u32(C.IFLA_MTU, 1000 + i)]).data)
    }
    const decoded = parseMessages(Buffer.concat(parts))
    assert.strictEqual(decoded.length, 20)
    const again = bytes(7)
    decoded.forEach((each, i) => {
      assert.deepStrictEqual([each.type, each.flags], [C.RTM_NEWADDR, i | C.NLM_F_REQUEST])
      const attrs = parseAttrs(each.payload, 16)
      assert.strictEqual(attrs.get(C.IFLA_MTU)!.readUInt32LE(0), 1000 + i)
      const inner = parseAttrs(attrs.get(C.IFLA_LINKINFO)!)
      assert.deepStrictEqual(inner.get(1), again(i % 7))
      assert.strictEqual(inner.get(2)!.readInt32LE(0), -i)
      assert.strictEqual(inner.get(3)!.toString(), `link${i}\0`)
    })
  })

  it("a truncated buffer yields the whole messages before the cut, and never reads past the end", () => {
    const header = Buffer.alloc(16)
    const one = message(C.RTM_NEWLINK, 0, header, [str(C.IFLA_IFNAME, "lo")]).data
    const two = Buffer.concat([one, one])
    for (let cut = 0; cut <= two.length; cut++) {
      const decoded = parseMessages(two.subarray(0, cut))
      assert.strictEqual(decoded.length, cut >= two.length ? 2 : cut >= one.length ? 1 : 0, `cut at ${cut}`)
    }
    // An attribute whose length runs past its buffer ends the attributes there.
    const bad = Buffer.from([0xff, 0x00, 0x03, 0x00, 1, 2, 3, 4])
    assert.strictEqual(parseAttrs(bad).size, 0)
  })
})

describe("checks of caller input", () => {
  it("a C string with a NUL byte, or no string at all, is refused, naming the field", () => {
    assert.isUndefined(cStringProblem("/proc/self/ns/net"))
    assert.match(cStringProblem("/proc/self/ns/net\0/etc/passwd")!, /NUL byte/)
    assert.match(cStringProblem(7)!, /must be a string, not 7/)
    const problem = specProblem({ op: "readFile", args: { path: "/etc/hostname\0x", maxBytes: 10 } })
    assert.deepInclude(problem, { _tag: "InvalidOptions", operation: "Task.readFile" })
    assert.match(problem!.reason, /^path contains a NUL byte/)
    assert.match(specProblem({ op: "writeFile", args: { path: "/tmp/x", data: "", mode: 0o10000 } } as never)!.reason, /mode/)
    assert.isUndefined(specProblem({ op: "hostname", args: undefined }))
  })

  it("unshare's options take only their documented keys and values", () => {
    assert.isUndefined(unshareOptionsProblem({ propagation: "slave", loopback: "up" }))
    assert.match(unshareOptionsProblem({ propagation: "shared" })!.reason, /propagation/)
    assert.match(unshareOptionsProblem({ timeOffsets: { boot: 1 } })!.reason, /boot/)
    assert.strictEqual(unshareOptionsProblem({ isolate: true })!.reason, "isolate: not an option here")
    // Where in the options, from Schema's own issue (its path), not from its message's text.
    assert.strictEqual(unshareOptionsProblem({ uidMap: [{ containerId: 0, hostId: 0, size: "x" }] })!.reason, "uidMap[0].size: expected number")
  })
})

describe("failed calls as errors", () => {
  it("EPERM and EACCES are PermissionDenied, every other errno SystemError, from libc, from Node and from a helper's message", () => {
    for (const [code, tag] of [[1, "PermissionDenied"], [13, "PermissionDenied"], [22, "SystemError"], [24, "SystemError"]] as const) {
      const failure = new SyscallFailure("setns", code)
      assert.deepInclude(syscallError("NamespaceSet.run", failure, { kind: "net" }), { _tag: tag, call: "setns", errno: failure.errno, code, kind: "net" })
      const node = Object.assign(new Error("x"), { code: failure.errno, errno: -code, syscall: "open" })
      assert.deepInclude(syscallError("Task.readFile", node), { _tag: tag, call: "open", errno: failure.errno, code })
    }
    const helper = helperError("NamespaceSet.unshare", "unshare(1)", "unshare: unshare failed: Operation not permitted\n", { code: 1, signal: null })
    assert.deepInclude(helper, { _tag: "PermissionDenied", errno: "EPERM", code: 1 })
    assert.throws(() => syscallError("x", new Error("not a failed call")))
  })
})

describe("drop reasons", () => {
  it("each reason has its class and its sentence", () => {
    const cases: ReadonlyArray<readonly [DropReason, string, RegExp]> = [
      [{ _tag: "NoRestore" }, "no-restore", /^restore: false$/],
      [{ _tag: "Tainted", detail: "left a socket" }, "tainted", /tainted by the task: left a socket/],
      [
        { _tag: "Moved", when: "before", namespaces: [{ kind: "uts", expected: "uts:[1]", found: "uts:[2]" }] },
        "moved",
        /moved behind the library's back: before the task began it was in uts:\[2\], not uts:\[1\]/
      ],
      [{ _tag: "RestoreFailed", detail: "setns EPERM" }, "restore-failed", /restore failed: setns EPERM/],
      [{ _tag: "TimeNamespace" }, "restore-failed", /time namespace/],
      [{ _tag: "Interrupted" }, "interrupted", /interrupted/],
      [{ _tag: "Died" }, "died", /died/],
      [{ _tag: "Exited", code: 7 }, "exited", /exited \(code 7\)/]
    ]
    for (const [reason, klass, sentence] of cases) {
      assert.strictEqual(dropClass(reason), klass, reason._tag)
      assert.match(describeDrop(reason), sentence, reason._tag)
    }
  })
})
