/**
 * Links, addresses and routes inside a set's network namespace, in-process, over rtnetlink: what
 * `ip link`, `ip addr` and `ip route` do, without the `ip` binary and without a process per step.
 *
 * Each operation is one exchange on a pinned thread inside the set: the thread makes a
 * `NETLINK_ROUTE` socket there (a netlink socket belongs to the network namespace it was made in),
 * sends the requests, encoded here in TypeScript, and collects the kernel's answers. The kernel's
 * refusals come back as typed errors (`LinkExists`, `LinkNotFound`, `NetworkPermissionDenied`,
 * `NetlinkError`) carrying the operation, the link, the namespace, the errno and the kernel's own
 * message (its extended ack); addresses are parsed before anything is sent (`InvalidAddress`).
 *
 * Links made with the scoped forms ({@link vethPair}, {@link dummy}, {@link bridge}) are deleted
 * when their Scope closes; the `add*` forms leave them to the caller (or to the namespace's end).
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer } from "effect"
import type { NamespaceKind } from "./NamespaceKind.ts"
import * as NamespaceSet from "./NamespaceSet.ts"

export {
  addAddress,
  addBridge,
  addDummy,
  addRoute,
  addVethPair,
  attach,
  bridge,
  deleteLink,
  detach,
  dummy,
  link,
  links,
  loopbackUp,
  moveTo,
  removeAddress,
  removeRoute,
  rename,
  routes,
  setDown,
  setMtu,
  setUp,
  vethPair
} from "./internal/network.ts"
export type { Address, AddressOptions, Error, Link, LinkOptions, LinkRef, Route, RouteSpec, RoutesOptions, VethEnd } from "./internal/network.ts"

/**
 * A network namespace of its own, with `lo` up: what {@link isolated} provides.
 *
 * @since 0.1.0
 * @category services
 */
export class Isolated extends Context.Service<Isolated, {
  /** The set: a new network namespace (plus any other kinds asked for). */
  readonly set: NamespaceSet.NamespaceSet
}>()("gonso/Network/Isolated") {}

/**
 * A Layer giving a new network namespace with `lo` up, closed with the layer. With
 * `@effect/vitest`'s `layer(...)` a block of tests shares one; provided to a single test
 * (`Effect.provide(Network.isolated())`), each test gets its own. See `docs/network.md`.
 *
 * @since 0.1.0
 * @category layers
 * @example
 * ```ts
 * import { assert, layer } from "@effect/vitest"
 * import { Effect } from "effect"
 * import { Network, PinnedThreads } from "gonso"
 *
 * layer(PinnedThreads.layer())("my server", (it) => {
 *   it.effect("has a network of its own, lo up", () =>
 *     Effect.gen(function*() {
 *       const { set } = yield* Network.Isolated
 *       const [lo] = yield* Network.links(set)
 *       assert.deepInclude(lo!, { name: "lo", up: true })
 *     }).pipe(Effect.provide(Network.isolated())))
 * })
 * ```
 */
export const isolated = (options: { readonly kinds?: ReadonlyArray<NamespaceKind> | undefined } = {}) =>
  Layer.effect(
    Isolated,
    Effect.map(
      NamespaceSet.unshareCurrent([...new Set<NamespaceKind>(["net", ...(options.kinds ?? [])])], { loopback: "up" }),
      (set) => Isolated.of({ set })
    )
  )
