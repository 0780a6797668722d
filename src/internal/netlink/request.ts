/**
 * The main side of rtnetlink: requests encoded here, sent in one exchange on a pinned thread
 * inside the set (see `exchange.ts`), their answers decoded, and the kernel's refusals turned into
 * typed errors naming the operation, the link, the namespace, the errno and the kernel's message.
 *
 * @internal
 */
import { Effect } from "effect"
import {
  type EnterError,
  KindNotInSet,
  LinkExists,
  LinkNotFound,
  NetlinkError,
  type NetworkError,
  NetworkPermissionDenied,
  type PermissionDenied,
  type SystemError
} from "../errors.ts"
import type { PinnedThreads } from "../service.ts"
import { isPermissionErrno } from "../failure.ts"
import type { NetlinkFailure, NetlinkRequest } from "../protocol.ts"
import { adopt, attempt, carry, idString, impl, type NamespaceSet, type Parts, runSpec, withMembers } from "../set.ts"
import { type Attr, type Encoded, ifinfomsg, message, u32 } from "./codec.ts"
import * as C from "./constants.ts"

/** One request of an exchange, with what its errors are about. */
export interface Item {
  readonly encoded: Encoded
  /** Attributes (`u32`) to be filled with the index of a link, looked up by name inside the set. */
  readonly indexOf?: ReadonlyArray<{ readonly attr: Attr; readonly link: string }>
  /** Write the index of this link into the `ifinfomsg`/`ifaddrmsg` header (offset 20 of the message). */
  readonly headerIndexOf?: string | undefined
  /** The link the request is about, named in its errors. */
  readonly link?: string | undefined
  /**
   * The request gives a link a name (makes, renames or moves it): `EEXIST` means a link named
   * `link` exists already in `netns` (the kernel's name of a network namespace; default: the one
   * the request is made in), and the error names that name and that namespace.
   */
  readonly exists?: { readonly link: string; readonly netns?: string | undefined } | undefined
}

export type ExchangeError = NetworkError | EnterError | KindNotInSet | PermissionDenied | SystemError

/** Where a message's `ifi_index` (or `ifa_index`) lies: right after the 16-byte `nlmsghdr` (+4). */
const HEADER_INDEX_OFFSET = C.NLMSG_HDRLEN + 4

const requestOf = (item: Item): NetlinkRequest => {
  const indexOf = [
    ...(item.headerIndexOf === undefined ? [] : [{ offset: HEADER_INDEX_OFFSET, link: item.headerIndexOf }]),
    ...(item.indexOf ?? []).map(({ attr, link }) => ({ offset: item.encoded.offsetOf(attr), link }))
  ]
  return { data: item.encoded.data.toString("base64"), ...(indexOf.length === 0 ? {} : { indexOf }) }
}

const errorOf = (operation: string, netns: string, item: Item | undefined, failure: NetlinkFailure): NetworkError => {
  const link = failure.link ?? item?.link
  const fields = {
    operation,
    netns,
    errno: failure.errno,
    code: failure.code,
    ...(link === undefined ? {} : { link }),
    ...(failure.message === undefined ? {} : { kernelMessage: failure.message })
  }
  if (failure.errno === "ENODEV" && link !== undefined) return new LinkNotFound(fields)
  if (failure.errno === "EEXIST" && item?.exists !== undefined) {
    return new LinkExists({ ...fields, link: item.exists.link, netns: item.exists.netns ?? netns })
  }
  if (isPermissionErrno(failure.errno)) return new NetworkPermissionDenied(fields)
  return new NetlinkError(fields)
}

/**
 * Sends `items` in order on a pinned thread inside `set`'s network namespace, stopping at the first
 * the kernel refuses; the answers of each (messages back to back). A set holding a user namespace
 * (which no thread can join) is entered through a temporary set of its network namespace alone.
 */
export const exchange = (
  operation: string,
  set: NamespaceSet,
  items: ReadonlyArray<Item>
): Effect.Effect<ReadonlyArray<Buffer>, ExchangeError, PinnedThreads> =>
  withMembers(set, operation, (members): Effect.Effect<ReadonlyArray<Buffer>, ExchangeError, PinnedThreads> => {
    const net = members.get("net")
    if (net === undefined) return Effect.fail(new KindNotInSet({ operation, kind: "net" }))
    const netns = idString(net)
    const send = (inside: NamespaceSet) =>
      Effect.flatMap(
        runSpec<{ replies: ReadonlyArray<string>; failure?: NetlinkFailure }, ExchangeError>(
          operation,
          inside,
          { op: "netlink", args: { operation, requests: items.map(requestOf) } },
          true
        ),
        (result): Effect.Effect<ReadonlyArray<Buffer>, ExchangeError> =>
          result.failure === undefined
            ? Effect.succeed(result.replies.map((reply) => Buffer.from(reply, "base64")))
            : Effect.fail(errorOf(operation, netns, items[result.failure.at], result.failure))
      )
    if (!impl(set).foreignUser()) return send(set)
    return Effect.scoped(Effect.flatMap(adopt(attempt<Parts, ExchangeError>(() => carry(operation, set, ["net"]))), send))
  })

/**
 * The net fd of `target` (held open while `f` runs), for `IFLA_NET_NS_FD`: the pinned thread shares
 * this process's fd table; and the kernel's name of that namespace (`"net:[4026532290]"`).
 */
export const withNetFd = <A, E, R>(
  operation: string,
  target: NamespaceSet,
  f: (fd: number, netns: string) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | KindNotInSet | EnterError, R> =>
  withMembers(target, operation, (members): Effect.Effect<A, E | KindNotInSet, R> => {
    const net = members.get("net")
    return net === undefined ? Effect.fail(new KindNotInSet({ operation, kind: "net" })) : f(net.fd, idString(net))
  })

/** Changes a link's flags (`IFF_UP`), found by name: an `RTM_NEWLINK` on an existing link. */
export const setFlags = (name: string, flags: number, change: number, attrs: ReadonlyArray<Attr> = []): Item => ({
  encoded: message(C.RTM_NEWLINK, 0, ifinfomsg({ flags, change }), attrs),
  headerIndexOf: name,
  link: name
})

/** Brings `lo` up (what a new network namespace needs before anything, even 127.0.0.1, works). */
export const loopbackUp = (operation: string, set: NamespaceSet): Effect.Effect<void, ExchangeError, PinnedThreads> =>
  Effect.asVoid(exchange(operation, set, [setFlags("lo", C.IFF_UP, C.IFF_UP)]))

export { u32 }

/** What `NamespaceSet.unshare`'s `loopback: "up"` does: `lo` up in the set just made, if it has a new network namespace. */
export const upLoopback = <E, R>(
  kinds: ReadonlyArray<string>,
  options: { readonly loopback?: "up" | undefined } | undefined,
  made: Effect.Effect<NamespaceSet, E, R>
): Effect.Effect<NamespaceSet, E | ExchangeError, R | PinnedThreads> =>
  options?.loopback === "up" && kinds.includes("net") ? Effect.tap(made, (set) => loopbackUp("NamespaceSet.unshare", set)) : made
