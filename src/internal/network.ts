/**
 * The `Network` module's operations: links, addresses and routes of a set's network namespace,
 * as rtnetlink requests encoded here, exchanged on a pinned thread inside the set
 * (`netlink/request.ts`), and their answers decoded into the module's types. Their one
 * definition, with the API's doc comments (the public `Network` module re-exports them).
 *
 * @internal
 */
import { Effect, type Scope } from "effect"
import {
  type EnterError,
  InvalidAddress,
  InvalidOptions,
  type KindNotInSet,
  LinkExists,
  LinkNotFound,
  type NetworkError,
  type PermissionDenied,
  type SystemError
} from "./errors.ts"
import { isNamespaceSet, type NamespaceSet } from "./set.ts"
import type { PinnedThreads } from "./service.ts"
import {
  type Attr,
  attr,
  attrsBuffer,
  decodeAddress,
  decodeLink,
  decodeRoute,
  ifaddrmsg,
  ifinfomsg,
  message,
  networkOf,
  parseCidr,
  parseIp,
  parseMessages,
  type RawLink,
  rtmsg,
  str,
  u32
} from "./netlink/codec.ts"
import * as C from "./netlink/constants.ts"
import { exchange as exchangeItems, type ExchangeError, type Item, loopbackUp as upLo, setFlags, withNetFd } from "./netlink/request.ts"
import { cStringProblem, describe } from "./validate.ts"


/**
 * The errors of `Network`'s operations: the kernel's refusals, a bad address or option, and those
 * of running on a pinned thread inside the set.
 *
 * @since 0.1.0
 * @category errors
 */
export type Error = NetworkError | InvalidOptions | KindNotInSet | EnterError | PermissionDenied | SystemError

// ---------------------------------------------------------------------------------------------
// What the kernel reports
// ---------------------------------------------------------------------------------------------

/**
 * An address on a link, as `ip addr` shows it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Address {
  readonly family: "inet" | "inet6"
  readonly address: string
  readonly prefix: number
  /** `"global"`, `"link"`, `"host"`, ... */
  readonly scope: string
  /** IPv6 duplicate address detection has not finished: the address cannot be used yet. */
  readonly tentative: boolean
}

/**
 * A link (network interface), as `ip link` and `ip addr` show it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Link {
  readonly index: number
  readonly name: string
  /** The link's type (`"veth"`, `"dummy"`, `"bridge"`, ...); none for `lo` and hardware. */
  readonly kind: string | undefined
  readonly mtu: number
  /** Administratively up (`IFF_UP`). */
  readonly up: boolean
  /** The kernel's operational state: `"up"`, `"down"`, `"unknown"` (`lo`), `"lowerlayerdown"`, ... */
  readonly operstate: string
  /** The hardware address (`"aa:bb:cc:dd:ee:ff"`), when the link has one. */
  readonly mac: string | undefined
  /** The bridge it is attached to, by name. */
  readonly master: string | undefined
  /** For a veth: the index of its peer, in the peer's namespace. */
  readonly peerIndex: number | undefined
  readonly addresses: ReadonlyArray<Address>
}

/**
 * A route, as `ip route` shows it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Route {
  readonly family: "inet" | "inet6"
  /** `"default"` or `"network/prefix"`. */
  readonly destination: string
  readonly gateway: string | undefined
  /** The link it goes out on, by name. */
  readonly device: string | undefined
  readonly metric: number | undefined
  /** The preferred source address (`src`). */
  readonly source: string | undefined
  readonly table: number
  /** Who made it: `"kernel"`, `"boot"` (as `ip route add` does), `"static"`, `"ra"`, ... */
  readonly protocol: string
  readonly scope: string
  /** `"unicast"`, `"local"`, `"broadcast"`, `"blackhole"`, `"unreachable"`, ... */
  readonly type: string
}

/**
 * A link made by this module: the set it is in, its name and its index there.
 *
 * @since 0.1.0
 * @category models
 */
export interface LinkRef {
  readonly set: NamespaceSet
  readonly name: string
  readonly index: number
}

const operstates = ["unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up"]
const scopes: Record<number, string> = { 0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere" }
const protocols: Record<number, string> = {
  0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 9: "ra", 16: "dhcp", 42: "babel", 186: "bgp", 188: "ospf"
}
const routeTypes = ["unspec", "unicast", "local", "broadcast", "anycast", "multicast", "blackhole", "unreachable", "prohibit", "throw", "nat", "xresolve"]
const familyName = (family: number) => (family === C.AF_INET6 ? "inet6" : "inet") as "inet" | "inet6"
const named = (table: Record<number, string> | ReadonlyArray<string>, value: number) =>
  (table as Record<number, string>)[value] ?? String(value)

/** The longest link name the kernel takes, in bytes (`IFNAMSIZ` less its NUL). */
const MAX_LINK_NAME = 15

/**
 * Why `name` cannot name a link, or undefined: the kernel's own rule (`dev_valid_name`), checked
 * here so that a bad name is `InvalidOptions` saying why, never the kernel's bare `ERANGE` or
 * `EINVAL`. A name reaches the kernel as a C string of UTF-8 bytes: one with a NUL byte would end
 * there and name another link (`"lo\0x"` is `lo`), and a lone surrogate half would be sent as
 * U+FFFD, the name of yet another.
 */
const linkNameProblem = (name: unknown): string | undefined => {
  const problem = cStringProblem(name)
  if (problem !== undefined) return problem
  const text = name as string
  if (text === "") return `is empty ("")`
  if (!text.isWellFormed()) return `is not well-formed Unicode (a lone surrogate would be sent as U+FFFD): ${JSON.stringify(text)}`
  const bytes = Buffer.byteLength(text)
  if (bytes > MAX_LINK_NAME) return `is ${bytes} bytes long, longer than the kernel's ${MAX_LINK_NAME}: ${JSON.stringify(text)}`
  if (text === "." || text === "..") return `cannot be ${JSON.stringify(text)}`
  // The kernel's isspace(): space, \t, \n, \v, \f, \r.
  const bad = /[/: \t\n\v\f\r]/.exec(text)
  if (bad !== null) return `contains ${JSON.stringify(bad[0])}, which no link name may: ${JSON.stringify(text)}`
  return undefined
}

const nameError = (operation: string, name: unknown): InvalidOptions | undefined => {
  const problem = linkNameProblem(name)
  return problem === undefined ? undefined : new InvalidOptions({ operation, reason: `link name ${problem}` })
}

/** Why `set` is not a set (a caller's mistake, typed), or undefined. */
const setProblem = (operation: string, set: unknown, role = "set"): InvalidOptions | undefined =>
  isNamespaceSet(set) ? undefined : new InvalidOptions({ operation, reason: `the ${role} must be a NamespaceSet, not ${describe(set)}` })

/** {@link withNetFd}, for a `target` given by the caller (checked to be a set). */
const withTargetNetFd = <A, E, R>(operation: string, target: NamespaceSet, f: (fd: number, netns: string) => Effect.Effect<A, E, R>) => {
  const problem = setProblem(operation, target, "target")
  return problem === undefined ? withNetFd(operation, target, f) : Effect.fail(problem)
}

/** The exchange of `items`, once every link they name has been checked. */
const exchange = (
  operation: string,
  set: NamespaceSet,
  items: ReadonlyArray<Item>
): Effect.Effect<ReadonlyArray<Buffer>, ExchangeError | InvalidOptions, PinnedThreads> => {
  const notASet = setProblem(operation, set)
  if (notASet !== undefined) return Effect.fail(notASet)
  for (const item of items) {
    for (const name of [item.link, item.headerIndexOf, item.exists?.link, ...(item.indexOf ?? []).map((each) => each.link)]) {
      const problem = name === undefined ? undefined : nameError(operation, name)
      if (problem !== undefined) return Effect.fail(problem)
    }
  }
  return exchangeItems(operation, set, items)
}

const linkDump = () => message(C.RTM_GETLINK, C.NLM_F_DUMP, ifinfomsg(), [u32(C.IFLA_EXT_MASK, C.RTEXT_FILTER_SKIP_STATS)])
const addressDump = () => message(C.RTM_GETADDR, C.NLM_F_DUMP, ifaddrmsg({ family: C.AF_UNSPEC, prefix: 0 }))
const linkByName = (name: string): Item => ({
  encoded: message(C.RTM_GETLINK, 0, ifinfomsg(), [str(C.IFLA_IFNAME, name), u32(C.IFLA_EXT_MASK, C.RTEXT_FILTER_SKIP_STATS)]),
  link: name
})

const assemble = (rawLinks: ReadonlyArray<RawLink>, addressReply: Buffer, everyLink: ReadonlyArray<RawLink> = rawLinks): Array<Link> => {
  const byIndex = new Map<number, Array<Address>>()
  for (const { payload } of parseMessages(addressReply)) {
    const raw = decodeAddress(payload)
    const list = byIndex.get(raw.index) ?? []
    list.push({
      family: familyName(raw.family),
      address: raw.address,
      prefix: raw.prefix,
      scope: named(scopes, raw.scope),
      tentative: (raw.flags & C.IFA_F_TENTATIVE) !== 0
    })
    byIndex.set(raw.index, list)
  }
  const names = new Map(everyLink.map((link) => [link.index, link.name]))
  return rawLinks.map((raw) => ({
    index: raw.index,
    name: raw.name,
    kind: raw.kind,
    mtu: raw.mtu,
    up: (raw.flags & C.IFF_UP) !== 0,
    operstate: operstates[raw.operstate ?? 0] ?? String(raw.operstate),
    mac: raw.mac,
    master: raw.master === undefined ? undefined : names.get(raw.master) ?? String(raw.master),
    peerIndex: raw.kind === "veth" ? raw.link : undefined,
    addresses: byIndex.get(raw.index) ?? []
  }))
}

const rawLinks = (reply: Buffer) => parseMessages(reply).filter((m) => m.type === C.RTM_NEWLINK).map((m) => decodeLink(m.payload))

/**
 * Every link of the set's network namespace, with its addresses (`ip addr`), in one exchange.
 *
 * @since 0.1.0
 * @category getters
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.unshareCurrent(["net"], { loopback: "up" })
 *   const links = yield* Network.links(set)
 *   return links.map((link) => `${link.name} ${link.operstate}`)  // ["lo unknown"]
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const links = (set: NamespaceSet): Effect.Effect<ReadonlyArray<Link>, Error, PinnedThreads> =>
  Effect.map(
    exchange("Network.links", set, [{ encoded: linkDump() }, { encoded: addressDump() }]),
    ([links, addresses]) => assemble(rawLinks(links!), addresses!)
  )

/**
 * One link by name, with its addresses; `LinkNotFound` when there is none.
 *
 * @since 0.1.0
 * @category getters
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const a = yield* NamespaceSet.unshareCurrent(["net"])
 *   const b = yield* NamespaceSet.unshareCurrent(["net"])
 *   yield* Network.vethPair({ name: "eth0", in: a, mtu: 9000 }, { name: "eth0", in: b, mtu: 9000 })
 *   const eth0 = yield* Network.link(a, "eth0")  // { name: "eth0", kind: "veth", mtu: 9000, up: false, ... }
 *   const eth1 = yield* Network.link(a, "eth1").pipe(
 *     Effect.catchTag("LinkNotFound", () => Effect.succeed(undefined))
 *   )  // undefined
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const link = (set: NamespaceSet, name: string): Effect.Effect<Link, Error, PinnedThreads> =>
  Effect.map(
    // The dump of every link names the bridge the link is attached to.
    exchange("Network.link", set, [linkByName(name), { encoded: linkDump() }, { encoded: addressDump() }]),
    ([link, all, addresses]) => assemble(rawLinks(link!), addresses!, rawLinks(all!))[0]!
  )

/**
 * Options of {@link routes}.
 *
 * @since 0.1.0
 * @category models
 */
export interface RoutesOptions {
  /** Default: both. */
  readonly family?: "inet" | "inet6" | undefined
  /** A routing table by number, or `"all"` (default: the main table, as `ip route` shows). */
  readonly table?: number | "all" | undefined
}

/**
 * The routes of the set's network namespace (`ip route` and `ip -6 route`: the main table unless
 * asked otherwise).
 *
 * @since 0.1.0
 * @category getters
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const a = yield* NamespaceSet.unshareCurrent(["net"])
 *   const b = yield* NamespaceSet.unshareCurrent(["net"])
 *   yield* Network.vethPair({ name: "eth0", in: a }, { name: "eth0", in: b })
 *   yield* Network.addAddress(b, "eth0", "169.254.10.2/30")
 *   yield* Network.setUp(b, "eth0")
 *   yield* Network.addRoute(b, { destination: "default", gateway: "169.254.10.1" })
 *   const routes = yield* Network.routes(b, { family: "inet" })
 *   return routes.map((route) => `${route.destination} ${route.protocol}`)  // ["default boot", "169.254.10.0/30 kernel"]
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const routes = (set: NamespaceSet, options: RoutesOptions = {}): Effect.Effect<ReadonlyArray<Route>, Error, PinnedThreads> => {
  if (options.family !== undefined && options.family !== "inet" && options.family !== "inet6") {
    return Effect.fail(new InvalidOptions({ operation: "Network.routes", reason: `family must be "inet" or "inet6", not ${describe(options.family)}` }))
  }
  const families = options.family === undefined ? [C.AF_INET, C.AF_INET6] : [options.family === "inet6" ? C.AF_INET6 : C.AF_INET]
  const table = options.table ?? C.RT_TABLE_MAIN
  return Effect.map(
    exchange("Network.routes", set, [
      { encoded: linkDump() },
      ...families.map((family) => ({ encoded: message(C.RTM_GETROUTE, C.NLM_F_DUMP, rtmsg({ family })) }))
    ]),
    ([links, ...dumps]) => {
      const names = new Map(rawLinks(links!).map((link) => [link.index, link.name]))
      return dumps.flatMap((dump) =>
        parseMessages(dump).filter((m) => m.type === C.RTM_NEWROUTE).map((m) => decodeRoute(m.payload))
          .filter((raw) => table === "all" || raw.table === table)
          .map((raw): Route => ({
            family: familyName(raw.family),
            destination: raw.dstLen === 0 && raw.destination === undefined ? "default" : `${raw.destination ?? (raw.family === C.AF_INET6 ? "::" : "0.0.0.0")}/${raw.dstLen}`,
            gateway: raw.gateway,
            device: raw.oif === undefined ? undefined : names.get(raw.oif) ?? String(raw.oif),
            metric: raw.priority,
            source: raw.prefsrc,
            table: raw.table,
            protocol: named(protocols, raw.protocol),
            scope: named(scopes, raw.scope),
            type: named(routeTypes, raw.type)
          }))
      )
    }
  )
}

// ---------------------------------------------------------------------------------------------
// Changing links
// ---------------------------------------------------------------------------------------------

/** One link name or an array of them, as an array (each name is checked by `exchange`). */
const names = (operation: string, links: unknown): ReadonlyArray<string> | InvalidOptions =>
  typeof links === "string"
    ? [links]
    : Array.isArray(links)
    ? links
    : new InvalidOptions({ operation, reason: `links must be a link name or an array of them, not ${describe(links)}` })

/** The exchange of one item per link of `links`. */
const perLink = (operation: string, set: NamespaceSet, links: unknown, item: (name: string) => Item) => {
  const each = names(operation, links)
  return each instanceof InvalidOptions ? Effect.fail(each) : Effect.asVoid(exchange(operation, set, each.map(item)))
}

/**
 * Sets links up (`ip link set NAME up`), in order, in one exchange.
 *
 * @since 0.1.0
 * @category links
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const a = yield* NamespaceSet.unshareCurrent(["net"])
 *   const b = yield* NamespaceSet.unshareCurrent(["net"])
 *   yield* Network.vethPair({ name: "eth0", in: a }, { name: "eth0", in: b })
 *   yield* Network.setUp(a, ["lo", "eth0"])
 *   yield* Network.setUp(b, "eth0")
 *   const eth0 = yield* Network.link(b, "eth0")  // { name: "eth0", kind: "veth", up: true, ... }
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const setUp = (set: NamespaceSet, links: string | ReadonlyArray<string>): Effect.Effect<void, Error, PinnedThreads> =>
  perLink("Network.setUp", set, links, (name) => setFlags(name, C.IFF_UP, C.IFF_UP))

/**
 * Sets links down (`ip link set NAME down`).
 *
 * @since 0.1.0
 * @category links
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const a = yield* NamespaceSet.unshareCurrent(["net"])
 *   const b = yield* NamespaceSet.unshareCurrent(["net"])
 *   yield* Network.vethPair({ name: "eth0", in: a }, { name: "eth0", in: b })
 *   yield* Network.setUp(a, "eth0")
 *   yield* Network.setDown(a, "eth0")
 *   const { up } = yield* Network.link(a, "eth0")  // false
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const setDown = (set: NamespaceSet, links: string | ReadonlyArray<string>): Effect.Effect<void, Error, PinnedThreads> =>
  perLink("Network.setDown", set, links, (name) => setFlags(name, 0, C.IFF_UP))

/**
 * Brings `lo` up: a new network namespace's loopback starts down, and even 127.0.0.1 does not work
 * until it is up. `NamespaceSet.unshare(..., { loopback: "up" })` does it as part of making one.
 *
 * @since 0.1.0
 * @category links
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.unshareCurrent(["net"])  // lo is down
 *   yield* Network.loopbackUp(set)
 *   const lo = yield* Network.link(set, "lo")
 *   return lo.addresses.map((address) => `${address.address}/${address.prefix}`)  // ["127.0.0.1/8", "::1/128"]
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const loopbackUp = (set: NamespaceSet): Effect.Effect<void, Error, PinnedThreads> => upLo("Network.loopbackUp", set)

const invalid = (operation: string, reason: string) => Effect.fail(new InvalidOptions({ operation, reason }))
const isU32 = (n: number) => Number.isSafeInteger(n) && n >= 0 && n <= 0xffffffff

/**
 * Sets a link's MTU (`ip link set NAME mtu N`); the kernel refuses one out of the link's range
 * (`NetlinkError` `EINVAL`, with its reason).
 *
 * @since 0.1.0
 * @category links
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const a = yield* NamespaceSet.unshareCurrent(["net"])
 *   const b = yield* NamespaceSet.unshareCurrent(["net"])
 *   yield* Network.vethPair({ name: "eth0", in: a }, { name: "eth0", in: b })
 *   yield* Network.setMtu(a, "eth0", 9000)
 *   const { mtu } = yield* Network.link(a, "eth0")  // 9000
 *   const tooSmall = yield* Effect.flip(Network.setMtu(a, "eth0", 10))  // NetlinkError, errno "EINVAL"
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const setMtu = (set: NamespaceSet, link: string, mtu: number): Effect.Effect<void, Error, PinnedThreads> =>
  isU32(mtu)
    ? Effect.asVoid(exchange("Network.setMtu", set, [setFlags(link, 0, 0, [u32(C.IFLA_MTU, mtu)])]))
    : invalid("Network.setMtu", `MTU ${mtu} is not a whole number of bytes`)

/**
 * Renames a link (`ip link set NAME name NEW`). The kernel renames only links that are down
 * (`NetlinkError` `EBUSY` otherwise).
 *
 * @since 0.1.0
 * @category links
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const a = yield* NamespaceSet.unshareCurrent(["net"])
 *   const b = yield* NamespaceSet.unshareCurrent(["net"])
 *   yield* Network.vethPair({ name: "veth0", in: a }, { name: "eth0", in: b })  // new links are down
 *   yield* Network.rename(a, "veth0", "uplink")
 *   const links = yield* Network.links(a)
 *   return links.map((link) => link.name)  // ["lo", "uplink"]
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const rename = (set: NamespaceSet, link: string, name: string): Effect.Effect<void, Error, PinnedThreads> => {
  const problem = nameError("Network.rename", name)
  if (problem !== undefined) return Effect.fail(problem)
  return Effect.asVoid(exchange("Network.rename", set, [{ ...setFlags(link, 0, 0, [str(C.IFLA_IFNAME, name)]), exists: { link: name } }]))
}

/**
 * Attaches a link to a bridge (`ip link set NAME master BRIDGE`).
 *
 * @since 0.1.0
 * @category links
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const host = yield* NamespaceSet.unshareCurrent(["net"])
 *   const guest = yield* NamespaceSet.unshareCurrent(["net"])
 *   yield* Network.bridge(host, "br0")
 *   yield* Network.vethPair({ name: "veth-guest", in: host }, { name: "eth0", in: guest })
 *   yield* Network.attach(host, "veth-guest", "br0")
 *   const links = yield* Network.links(host)
 *   return links.map((link) => `${link.name} ${link.master ?? "-"}`)  // ["lo -", "br0 -", "veth-guest br0"]
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const attach = (set: NamespaceSet, link: string, bridge: string): Effect.Effect<void, Error, PinnedThreads> => {
  const master = u32(C.IFLA_MASTER, 0)
  return Effect.asVoid(exchange("Network.attach", set, [{ ...setFlags(link, 0, 0, [master]), indexOf: [{ attr: master, link: bridge }] }]))
}

/**
 * Detaches a link from its bridge (`ip link set NAME nomaster`).
 *
 * @since 0.1.0
 * @category links
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const a = yield* NamespaceSet.unshareCurrent(["net"])
 *   const b = yield* NamespaceSet.unshareCurrent(["net"])
 *   yield* Network.bridge(a, "br0")
 *   yield* Network.vethPair({ name: "eth0", in: a }, { name: "eth0", in: b })
 *   yield* Network.attach(a, "eth0", "br0")
 *   yield* Network.detach(a, "eth0")
 *   const { master } = yield* Network.link(a, "eth0")  // undefined
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const detach = (set: NamespaceSet, link: string): Effect.Effect<void, Error, PinnedThreads> =>
  Effect.asVoid(exchange("Network.detach", set, [setFlags(link, 0, 0, [u32(C.IFLA_MASTER, 0)])]))

/**
 * Moves a link into another set's network namespace (`ip link set NAME netns ...`), optionally
 * renaming it on the way. A name taken there (the link's own, or the new one) is `LinkExists`
 * naming it and the target's namespace, and the link stays where it was.
 *
 * @since 0.1.0
 * @category links
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const a = yield* NamespaceSet.unshareCurrent(["net"])
 *   const b = yield* NamespaceSet.unshareCurrent(["net"])
 *   yield* Network.addVethPair({ name: "veth0", in: a }, { name: "veth1", in: a })
 *   yield* Network.moveTo(a, "veth1", b, { name: "eth0" })
 *   const links = yield* Network.links(b)
 *   return links.map((link) => link.name)  // ["lo", "eth0"]
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const moveTo = (
  set: NamespaceSet,
  link: string,
  target: NamespaceSet,
  options: { readonly name?: string | undefined } = {}
): Effect.Effect<void, Error, PinnedThreads> => {
  const problem = options.name === undefined ? undefined : nameError("Network.moveTo", options.name)
  if (problem !== undefined) return Effect.fail(problem)
  const operation = "Network.moveTo"
  // A name taken in the target is the moved link's own (or the new one given) there.
  return withTargetNetFd(operation, target, (fd, netns) => {
    const move = Effect.asVoid(exchange(operation, set, [{
      ...setFlags(link, 0, 0, [u32(C.IFLA_NET_NS_FD, fd), ...(options.name === undefined ? [] : [str(C.IFLA_IFNAME, options.name)])]),
      exists: { link: options.name ?? link, netns }
    }]))
    const name = options.name
    if (name === undefined) return move
    // The kernel moves the link first and renames it after: onto a name taken in the target it
    // would move the link under its old name, then fail. The name is looked up there first, so
    // that a taken one leaves the link where it was (a link made there meanwhile still can).
    return Effect.matchEffect(exchange(operation, target, [linkByName(name)]), {
      onSuccess: () => Effect.fail(new LinkExists({ operation, link: name, netns, errno: "EEXIST", code: 17 })),
      onFailure: (error) => (error instanceof LinkNotFound ? move : Effect.fail(error))
    })
  })
}

/**
 * Deletes a link (`ip link del NAME`); deleting either end of a veth pair deletes both.
 *
 * @since 0.1.0
 * @category links
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const a = yield* NamespaceSet.unshareCurrent(["net"])
 *   const b = yield* NamespaceSet.unshareCurrent(["net"])
 *   yield* Network.addVethPair({ name: "eth0", in: a }, { name: "eth0", in: b })
 *   yield* Network.deleteLink(a, "eth0")
 *   const links = yield* Network.links(b)
 *   return links.map((link) => link.name)  // ["lo"]: the peer went with it
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const deleteLink = (set: NamespaceSet, link: string): Effect.Effect<void, Error, PinnedThreads> =>
  Effect.asVoid(exchange("Network.deleteLink", set, [{ encoded: message(C.RTM_DELLINK, 0, ifinfomsg()), headerIndexOf: link, link }]))

// ---------------------------------------------------------------------------------------------
// Making links
// ---------------------------------------------------------------------------------------------

/**
 * Options of a link to be made.
 *
 * @since 0.1.0
 * @category models
 */
export interface LinkOptions {
  readonly mtu?: number | undefined
  /** Its hardware address (default: a random one). */
  readonly mac?: string | undefined
}

/**
 * One end of a veth pair: its name, the set it is placed in, and its options.
 *
 * @since 0.1.0
 * @category models
 */
export interface VethEnd extends LinkOptions {
  readonly name: string
  readonly in: NamespaceSet
}

const parseMac = (text: string): Buffer | undefined =>
  /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(text) ? Buffer.from(text.split(":").map((h) => parseInt(h, 16))) : undefined

const linkAttrs = (operation: string, name: string, options: LinkOptions): ReadonlyArray<Attr> | InvalidOptions => {
  const problem = nameError(operation, name)
  if (problem !== undefined) return problem
  if (options.mtu !== undefined && !isU32(options.mtu)) return new InvalidOptions({ operation, reason: `MTU ${options.mtu} is not a whole number of bytes` })
  const mac = options.mac === undefined ? undefined : parseMac(options.mac)
  if (options.mac !== undefined && mac === undefined) return new InvalidOptions({ operation, reason: `${JSON.stringify(options.mac)} is not a MAC address` })
  return [
    str(C.IFLA_IFNAME, name),
    ...(options.mtu === undefined ? [] : [u32(C.IFLA_MTU, options.mtu)]),
    ...(mac === undefined ? [] : [attr(C.IFLA_ADDRESS, mac)])
  ]
}

const linkInfo = (kind: string, data?: ReadonlyArray<Attr>): Attr =>
  attr(C.IFLA_LINKINFO, [str(C.IFLA_INFO_KIND, kind), ...(data === undefined ? [] : [attr(C.IFLA_INFO_DATA, data)])])

/** Makes a link of `kind` named `name` in `set` and reads back its index (and peer's index). */
const create = (
  operation: string,
  set: NamespaceSet,
  name: string,
  attrs: ReadonlyArray<Attr>
): Effect.Effect<RawLink, Error, PinnedThreads> =>
  Effect.map(
    exchange(operation, set, [
      { encoded: message(C.RTM_NEWLINK, C.NLM_F_CREATE | C.NLM_F_EXCL, ifinfomsg(), attrs), link: name, exists: { link: name } },
      linkByName(name)
    ]),
    ([, link]) => rawLinks(link!)[0]!
  )

/**
 * Makes a veth pair (`ip link add A type veth peer name B netns ...`), each end placed directly in
 * its set (`IFLA_NET_NS_FD`: nothing is moved afterwards), and returns both ends. Not scoped:
 * see {@link vethPair}.
 *
 * @since 0.1.0
 * @category links
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const a = yield* NamespaceSet.unshareCurrent(["net"])
 *   const b = yield* NamespaceSet.unshareCurrent(["net"])
 *   // Not scoped: the pair stays until deleted, or until its namespaces end
 *   const [ea, eb] = yield* Network.addVethPair({ name: "veth-b", in: a }, { name: "eth0", in: b, mac: "02:00:00:00:00:02" })
 *   const eth0 = yield* Network.link(b, "eth0")  // { index: eb.index, peerIndex: ea.index, mac: "02:00:00:00:00:02", ... }
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const addVethPair = (a: VethEnd, b: VethEnd): Effect.Effect<readonly [LinkRef, LinkRef], Error, PinnedThreads> =>
  Effect.suspend(() => {
    const operation = "Network.vethPair"
    const attrsA = linkAttrs(operation, a.name, a)
    const attrsB = linkAttrs(operation, b.name, b)
    if (attrsA instanceof InvalidOptions) return Effect.fail(attrsA)
    if (attrsB instanceof InvalidOptions) return Effect.fail(attrsB)
    return withTargetNetFd(operation, b.in, (fd, netnsB): Effect.Effect<readonly [LinkRef, LinkRef], Error, PinnedThreads> => {
      const peer = attr(C.VETH_INFO_PEER, attrsBuffer(ifinfomsg(), [...attrsB, u32(C.IFLA_NET_NS_FD, fd)]))
      return create(operation, a.in, a.name, [...attrsA, linkInfo("veth", [peer])]).pipe(
        Effect.map((made): readonly [LinkRef, LinkRef] => [
          { set: a.in, name: a.name, index: made.index },
          { set: b.in, name: b.name, index: made.link ?? 0 }
        ]),
        // The kernel's EEXIST does not say which end's name is taken: if b's is, in b, it was that.
        Effect.catch((error: Error): Effect.Effect<never, Error, PinnedThreads> =>
          !(error instanceof LinkExists) ? Effect.fail(error) : Effect.flatMap(
            Effect.exit(exchange(operation, b.in, [linkByName(b.name)])),
            (found) =>
              Effect.fail<Error>(found._tag === "Failure" ? error : new LinkExists({
                operation: error.operation,
                errno: error.errno,
                code: error.code,
                link: b.name,
                netns: netnsB,
                ...(error.kernelMessage === undefined ? {} : { kernelMessage: error.kernelMessage })
              }))
          ))
      )
    })
  })

/** Deletes the first of `refs` still there (by index: names may have changed); never fails. */
const removeAny = (refs: ReadonlyArray<LinkRef>): Effect.Effect<void, never, PinnedThreads> =>
  Effect.suspend(() => {
    const [first, ...rest] = refs
    if (first === undefined) return Effect.void
    return exchange("Network.delete", first.set, [{ encoded: message(C.RTM_DELLINK, 0, ifinfomsg({ index: first.index })), link: first.name }]).pipe(
      Effect.asVoid,
      Effect.catch(() => removeAny(rest))
    )
  })

const scoped = <A extends LinkRef | readonly [LinkRef, LinkRef], R>(
  make: Effect.Effect<A, Error, R>
): Effect.Effect<A, Error, R | PinnedThreads | Scope.Scope> =>
  Effect.acquireRelease(make, (made) => removeAny("set" in made ? [made] : made as ReadonlyArray<LinkRef>))

/**
 * {@link addVethPair} as a scoped resource: the pair is deleted when the Scope closes (deleting
 * one end deletes both; an end already gone, or whose set is closed, is skipped). Making it is
 * uninterruptible, so a pair that exists always has its finalizer.
 *
 * @since 0.1.0
 * @category links
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const a = yield* NamespaceSet.unshareCurrent(["net"])
 *   const b = yield* NamespaceSet.unshareCurrent(["net"])
 *   yield* Network.vethPair({ name: "eth0", in: a }, { name: "eth0", in: b })
 *   yield* Network.addAddress(a, "eth0", "169.254.10.1/30")
 *   yield* Network.addAddress(b, "eth0", "169.254.10.2/30")
 *   yield* Network.setUp(a, "eth0")
 *   yield* Network.setUp(b, "eth0")
 *   // a and b reach each other until the Scope closes and deletes the pair
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const vethPair = (a: VethEnd, b: VethEnd): Effect.Effect<readonly [LinkRef, LinkRef], Error, PinnedThreads | Scope.Scope> =>
  scoped(addVethPair(a, b))

const simple = (kind: string, operation: string) => (set: NamespaceSet, name: string, options: LinkOptions = {}) =>
  Effect.suspend((): Effect.Effect<LinkRef, Error, PinnedThreads> => {
    const attrs = linkAttrs(operation, name, options)
    if (attrs instanceof InvalidOptions) return Effect.fail(attrs)
    return Effect.map(create(operation, set, name, [...attrs, linkInfo(kind)]), (made) => ({ set, name, index: made.index }))
  })

/**
 * Makes a dummy link (`ip link add NAME type dummy`): an interface that drops what it is sent,
 * for addresses that must exist without a peer. Not scoped: see {@link dummy}.
 *
 * @since 0.1.0
 * @category links
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.unshareCurrent(["net"])
 *   // An address for a service to bind to, with no peer; the link lasts as long as the namespace
 *   yield* Network.addDummy(set, "service0")
 *   yield* Network.addAddress(set, "service0", "192.0.2.10/32")
 *   yield* Network.setUp(set, "service0")
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const addDummy: (set: NamespaceSet, name: string, options?: LinkOptions) => Effect.Effect<LinkRef, Error, PinnedThreads> =
  simple("dummy", "Network.dummy")

/**
 * {@link addDummy}, deleted when the Scope closes.
 *
 * @since 0.1.0
 * @category links
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.unshareCurrent(["net"])
 *   const during = yield* Effect.scoped(Effect.andThen(Network.dummy(set, "dummy0"), Network.links(set)))
 *   const after = yield* Network.links(set)
 *   return [during.length, after.length]  // [2, 1]: dummy0 went with its Scope
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const dummy = (set: NamespaceSet, name: string, options?: LinkOptions): Effect.Effect<LinkRef, Error, PinnedThreads | Scope.Scope> =>
  scoped(addDummy(set, name, options))

/**
 * Makes a bridge (`ip link add NAME type bridge`); attach links with {@link attach}. Not scoped:
 * see {@link bridge}.
 *
 * @since 0.1.0
 * @category links
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const set = yield* NamespaceSet.unshareCurrent(["net"])
 *   yield* Network.addBridge(set, "br0").pipe(
 *     Effect.catchTag("LinkExists", () => Effect.void)  // there already: use it
 *   )
 *   yield* Network.setUp(set, "br0")
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const addBridge: (set: NamespaceSet, name: string, options?: LinkOptions) => Effect.Effect<LinkRef, Error, PinnedThreads> =
  simple("bridge", "Network.bridge")

/**
 * {@link addBridge}, deleted when the Scope closes (its attached links stay, detached).
 *
 * @since 0.1.0
 * @category links
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const hub = yield* NamespaceSet.unshareCurrent(["net"])
 *   yield* Network.bridge(hub, "br0")
 *   for (const guest of ["a", "b"]) {
 *     const set = yield* NamespaceSet.unshareCurrent(["net"])
 *     yield* Network.vethPair({ name: `veth-${guest}`, in: hub }, { name: "eth0", in: set })
 *     yield* Network.attach(hub, `veth-${guest}`, "br0")
 *   }
 *   yield* Network.setUp(hub, ["br0", "veth-a", "veth-b"])
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const bridge = (set: NamespaceSet, name: string, options?: LinkOptions): Effect.Effect<LinkRef, Error, PinnedThreads | Scope.Scope> =>
  scoped(addBridge(set, name, options))

// ---------------------------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------------------------

/**
 * Options of {@link addAddress}.
 *
 * @since 0.1.0
 * @category models
 */
export interface AddressOptions {
  /**
   * IPv6 only: skip duplicate address detection (`ip addr add ... nodad`), so the address is usable
   * at once instead of after a second or so of being tentative.
   */
  readonly noDad?: boolean | undefined
}

/** `text`, which a caller gave as `what`, if it is a string; `InvalidOptions` otherwise. */
const stringOption = (operation: string, what: string, text: unknown): InvalidOptions | undefined =>
  typeof text === "string" ? undefined : new InvalidOptions({ operation, reason: `${what} must be a string, not ${describe(text)}` })

/** The link an address error names, if the caller's link is one (a bad one is refused later). */
const linkField = (link: unknown) => (typeof link === "string" ? { link } : {})

const cidr = (
  operation: string,
  text: unknown,
  link?: unknown,
  what = "the address"
): Effect.Effect<{ family: number; bytes: Buffer; prefix: number }, InvalidOptions | InvalidAddress> => {
  const notText = stringOption(operation, what, text)
  if (notText !== undefined) return Effect.fail(notText)
  const parsed = parseCidr(text as string)
  return typeof parsed === "string"
    ? Effect.fail(new InvalidAddress({ operation, address: text as string, reason: parsed, ...linkField(link) }))
    : Effect.succeed(parsed)
}

const addressItem = (type: number, flags: number, link: string, address: { family: number; bytes: Buffer; prefix: number }, options: AddressOptions): Item => {
  const loopback = address.family === C.AF_INET && address.bytes[0] === 127
  return {
    encoded: message(type, flags, ifaddrmsg({ family: address.family, prefix: address.prefix, scope: loopback ? C.RT_SCOPE_HOST : 0 }), [
      attr(C.IFA_LOCAL, address.bytes),
      attr(C.IFA_ADDRESS, address.bytes),
      ...(options.noDad === true ? [u32(C.IFA_FLAGS, C.IFA_F_NODAD)] : [])
    ]),
    headerIndexOf: link,
    link
  }
}

/**
 * Adds an IPv4 or IPv6 address with its prefix to a link (`ip addr add 10.0.0.1/24 dev NAME`; no
 * prefix means the whole address, /32 or /128). The kernel adds the prefix's route once the link
 * is up. An address that is there already fails with `NetlinkError` `EEXIST`.
 *
 * @since 0.1.0
 * @category addresses
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const a = yield* NamespaceSet.unshareCurrent(["net"])
 *   const b = yield* NamespaceSet.unshareCurrent(["net"])
 *   yield* Network.vethPair({ name: "eth0", in: a }, { name: "eth0", in: b })
 *   yield* Network.addAddress(a, "eth0", "169.254.10.1/30")
 *   // IPv6, usable at once: no duplicate address detection
 *   yield* Network.addAddress(a, "eth0", "2001:db8::1/64", { noDad: true })
 *   const { addresses } = yield* Network.link(a, "eth0")  // 169.254.10.1/30 and 2001:db8::1/64
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const addAddress = (
  set: NamespaceSet,
  link: string,
  address: string,
  options: AddressOptions = {}
): Effect.Effect<void, Error, PinnedThreads> =>
  Effect.flatMap(cidr("Network.addAddress", address, link), (parsed) =>
    Effect.asVoid(exchange("Network.addAddress", set, [addressItem(C.RTM_NEWADDR, C.NLM_F_CREATE | C.NLM_F_EXCL, link, parsed, options)])))

/**
 * Removes an address from a link (`ip addr del`); one that is not there fails with `NetlinkError`
 * `EADDRNOTAVAIL`.
 *
 * @since 0.1.0
 * @category addresses
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const a = yield* NamespaceSet.unshareCurrent(["net"])
 *   const b = yield* NamespaceSet.unshareCurrent(["net"])
 *   yield* Network.vethPair({ name: "eth0", in: a }, { name: "eth0", in: b })
 *   yield* Network.addAddress(a, "eth0", "169.254.10.1/30")
 *   yield* Network.removeAddress(a, "eth0", "169.254.10.1/30")
 *   const again = yield* Effect.flip(Network.removeAddress(a, "eth0", "169.254.10.1/30"))  // NetlinkError, errno "EADDRNOTAVAIL"
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const removeAddress = (set: NamespaceSet, link: string, address: string): Effect.Effect<void, Error, PinnedThreads> =>
  Effect.flatMap(cidr("Network.removeAddress", address, link), (parsed) =>
    Effect.asVoid(exchange("Network.removeAddress", set, [addressItem(C.RTM_DELADDR, 0, link, parsed, {})])))

// ---------------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------------

/**
 * A route to add or remove: `destination` `"default"` or `"network/prefix"`, reached through a
 * `gateway`, out of a `device`, or both.
 *
 * @since 0.1.0
 * @category models
 * @example
 * ```ts
 * import type { Network } from "gonso"
 *
 * const viaGateway: Network.RouteSpec = { destination: "default", gateway: "169.254.10.1" }
 * const onLink: Network.RouteSpec = { destination: "10.9.0.0/16", device: "eth0", metric: 100 }
 * ```
 */
export interface RouteSpec {
  readonly destination: string
  readonly gateway?: string | undefined
  readonly device?: string | undefined
  readonly metric?: number | undefined
  /** The preferred source address (`src`). */
  readonly source?: string | undefined
  /** A routing table by number (default: main, 254). */
  readonly table?: number | undefined
  /** For `"default"` without a gateway: which family (default `"inet"`). */
  readonly family?: "inet" | "inet6" | undefined
}

const routeItem = (operation: string, type: number, flags: number, route: RouteSpec) =>
  Effect.gen(function*() {
    const bad = (address: string, reason: string) =>
      Effect.fail(new InvalidAddress({ operation, address, reason, ...linkField(route.device) }))
    if (typeof route !== "object" || route === null) return yield* invalid(operation, `the route must be an object, not ${describe(route)}`)
    for (const [what, value] of [["the gateway", route.gateway], ["the source", route.source]] as const) {
      const notText = value === undefined ? undefined : stringOption(operation, what, value)
      if (notText !== undefined) return yield* notText
    }
    if (route.family !== undefined && route.family !== "inet" && route.family !== "inet6") {
      return yield* invalid(operation, `family must be "inet" or "inet6", not ${describe(route.family)}`)
    }
    const destination = route.destination === "default" ? undefined : yield* cidr(operation, route.destination, route.device, "the destination")
    const gateway = route.gateway === undefined ? undefined : parseIp(route.gateway)
    if (route.gateway !== undefined && gateway === undefined) return yield* bad(route.gateway, "the gateway is not an IPv4 or IPv6 address")
    const source = route.source === undefined ? undefined : parseIp(route.source)
    if (route.source !== undefined && source === undefined) return yield* bad(route.source, "the source is not an IPv4 or IPv6 address")
    const family = destination?.family ??
      (gateway === undefined ? (route.family === "inet6" ? C.AF_INET6 : C.AF_INET) : gateway.length === 4 ? C.AF_INET : C.AF_INET6)
    for (const [text, bytes] of [[route.gateway, gateway], [route.source, source]] as const) {
      if (bytes !== undefined && (bytes.length === 4) !== (family === C.AF_INET)) return yield* bad(text!, "not of the destination's family")
    }
    if (route.metric !== undefined && !isU32(route.metric)) return yield* invalid(operation, `metric ${route.metric} is not a whole number`)
    if (route.table !== undefined && !isU32(route.table)) return yield* invalid(operation, `table ${route.table} is not a whole number`)
    const table = route.table ?? C.RT_TABLE_MAIN
    const adding = type === C.RTM_NEWROUTE
    // As `ip route`: a route with no gateway is on-link (scope link) for IPv4; deleting matches any scope.
    const scope = !adding ? C.RT_SCOPE_NOWHERE : family === C.AF_INET && gateway === undefined && route.device !== undefined ? C.RT_SCOPE_LINK : C.RT_SCOPE_UNIVERSE
    const oif = route.device === undefined ? undefined : u32(C.RTA_OIF, 0)
    const attrs: Array<Attr> = [
      ...(destination === undefined ? [] : [attr(C.RTA_DST, networkOf(destination.bytes, destination.prefix))]),
      ...(gateway === undefined ? [] : [attr(C.RTA_GATEWAY, gateway)]),
      ...(oif === undefined ? [] : [oif]),
      ...(route.metric === undefined ? [] : [u32(C.RTA_PRIORITY, route.metric)]),
      ...(source === undefined ? [] : [attr(C.RTA_PREFSRC, source)]),
      ...(table > 255 ? [u32(C.RTA_TABLE, table)] : [])
    ]
    const header = rtmsg({
      family,
      dstLen: destination?.prefix ?? 0,
      table: table > 255 ? C.RT_TABLE_UNSPEC : table,
      protocol: adding ? C.RTPROT_BOOT : 0,
      scope,
      type: adding ? C.RTN_UNICAST : 0
    })
    return {
      encoded: message(type, flags, header, attrs),
      ...(oif === undefined ? {} : { indexOf: [{ attr: oif, link: route.device! }], link: route.device })
    } satisfies Item
  })

/**
 * Adds a route (`ip route add`). A gateway the namespace cannot reach on any link fails with
 * `NetlinkError` `ENETUNREACH`; a route that exists, `EEXIST`.
 *
 * @since 0.1.0
 * @category routes
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const a = yield* NamespaceSet.unshareCurrent(["net"])
 *   const b = yield* NamespaceSet.unshareCurrent(["net"])
 *   yield* Network.vethPair({ name: "eth0", in: a }, { name: "eth0", in: b })
 *   yield* Network.addAddress(b, "eth0", "169.254.10.2/30")
 *   yield* Network.setUp(b, "eth0")  // the kernel adds 169.254.10.0/30 dev eth0
 *   yield* Network.addRoute(b, { destination: "default", gateway: "169.254.10.1" })
 *   yield* Network.addRoute(b, { destination: "10.9.0.0/16", device: "eth0", metric: 100 })
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const addRoute = (set: NamespaceSet, route: RouteSpec): Effect.Effect<void, Error, PinnedThreads> =>
  Effect.flatMap(routeItem("Network.addRoute", C.RTM_NEWROUTE, C.NLM_F_CREATE | C.NLM_F_EXCL, route), (item) =>
    Effect.asVoid(exchange("Network.addRoute", set, [item])))

/**
 * Removes a route (`ip route del`); one that is not there fails with `NetlinkError` `ESRCH`.
 *
 * @since 0.1.0
 * @category routes
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { NamespaceSet, Network, PinnedThreads } from "gonso"
 *
 * const program = Effect.gen(function*() {
 *   const a = yield* NamespaceSet.unshareCurrent(["net"])
 *   const b = yield* NamespaceSet.unshareCurrent(["net"])
 *   yield* Network.vethPair({ name: "eth0", in: a }, { name: "eth0", in: b })
 *   yield* Network.addAddress(b, "eth0", "169.254.10.2/30")
 *   yield* Network.setUp(b, "eth0")
 *   yield* Network.addRoute(b, { destination: "default", gateway: "169.254.10.1" })
 *   yield* Network.removeRoute(b, { destination: "default", gateway: "169.254.10.1" })
 *   const routes = yield* Network.routes(b, { family: "inet" })  // only the kernel's 169.254.10.0/30
 * }).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer()))
 * ```
 */
export const removeRoute = (set: NamespaceSet, route: RouteSpec): Effect.Effect<void, Error, PinnedThreads> =>
  Effect.flatMap(routeItem("Network.removeRoute", C.RTM_DELROUTE, 0, route), (item) =>
    Effect.asVoid(exchange("Network.removeRoute", set, [item])))

// ---------------------------------------------------------------------------------------------
// A fresh network, as a Layer
// ---------------------------------------------------------------------------------------------

