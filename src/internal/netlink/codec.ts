/**
 * rtnetlink messages encoded and decoded in TypeScript: `nlmsghdr`, `ifinfomsg`, `ifaddrmsg`,
 * `rtmsg` and `rtattr`s (nested ones too), and IP addresses as the kernel carries them.
 *
 * @internal
 */
import * as C from "./constants.ts"

const align4 = (n: number) => (n + 3) & ~3

// ---------------------------------------------------------------------------------------------
// Attributes
// ---------------------------------------------------------------------------------------------

/** An attribute: its type and either its value or the attributes nested in it. */
export interface Attr {
  readonly type: number
  readonly value: Buffer | ReadonlyArray<Attr>
}

export const attr = (type: number, value: Buffer | ReadonlyArray<Attr>): Attr => ({ type, value })
export const u32 = (type: number, value: number): Attr => {
  const buffer = Buffer.alloc(4)
  buffer.writeUInt32LE(value >>> 0)
  return attr(type, buffer)
}
export const i32 = (type: number, value: number): Attr => {
  const buffer = Buffer.alloc(4)
  buffer.writeInt32LE(value)
  return attr(type, buffer)
}
/** A NUL-terminated string. */
export const str = (type: number, value: string): Attr => attr(type, Buffer.from(`${value}\0`, "utf8"))

const attrLength = (a: Attr): number =>
  4 + (Buffer.isBuffer(a.value) ? a.value.length : (a.value as ReadonlyArray<Attr>).reduce((sum, b) => sum + align4(attrLength(b)), 0))

/** Writes `attrs` at `offset`; returns where they end (aligned). Records where each `u32` of `mark` lands. */
const writeAttrs = (buffer: Buffer, offset: number, attrs: ReadonlyArray<Attr>, marks: Map<Attr, number>): number => {
  for (const a of attrs) {
    const length = attrLength(a)
    buffer.writeUInt16LE(length, offset)
    buffer.writeUInt16LE(a.type, offset + 2)
    marks.set(a, offset + 4)
    if (Buffer.isBuffer(a.value)) a.value.copy(buffer, offset + 4)
    else writeAttrs(buffer, offset + 4, a.value as ReadonlyArray<Attr>, marks)
    offset += align4(length)
  }
  return offset
}

/** Attributes as a flat buffer (for a nested payload that starts with a fixed header, like `VETH_INFO_PEER`). */
export const attrsBuffer = (header: Buffer, attrs: ReadonlyArray<Attr>): Buffer => {
  const length = align4(header.length) + attrs.reduce((sum, a) => sum + align4(attrLength(a)), 0)
  const buffer = Buffer.alloc(length)
  header.copy(buffer)
  writeAttrs(buffer, align4(header.length), attrs, new Map())
  return buffer
}

/** Reads the attributes in `buffer` from `offset`: type (flags masked off) to value; the last of a type wins. */
export const parseAttrs = (buffer: Buffer, offset = 0): Map<number, Buffer> => {
  const attrs = new Map<number, Buffer>()
  while (offset + 4 <= buffer.length) {
    const length = buffer.readUInt16LE(offset)
    if (length < 4 || offset + length > buffer.length) break
    attrs.set(buffer.readUInt16LE(offset + 2) & C.NLA_TYPE_MASK, buffer.subarray(offset + 4, offset + length))
    offset += align4(length)
  }
  return attrs
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/** An encoded request, and where the `u32` attributes listed in `marks` were written. */
export interface Encoded {
  readonly data: Buffer
  readonly offsetOf: (a: Attr) => number
}

/** `nlmsghdr` + fixed header + attributes; sequence number and port are left 0 (the thread sets them). */
export const message = (type: number, flags: number, header: Buffer, attrs: ReadonlyArray<Attr> = []): Encoded => {
  const length = C.NLMSG_HDRLEN + align4(header.length) + attrs.reduce((sum, a) => sum + align4(attrLength(a)), 0)
  const data = Buffer.alloc(length)
  data.writeUInt32LE(length, 0)
  data.writeUInt16LE(type, 4)
  data.writeUInt16LE(flags | C.NLM_F_REQUEST, 6)
  header.copy(data, C.NLMSG_HDRLEN)
  const marks = new Map<Attr, number>()
  writeAttrs(data, C.NLMSG_HDRLEN + align4(header.length), attrs, marks)
  return { data, offsetOf: (a) => marks.get(a)! }
}

/** `struct ifinfomsg` (16 bytes). */
export const ifinfomsg = (fields: { family?: number; type?: number; index?: number; flags?: number; change?: number } = {}): Buffer => {
  const buffer = Buffer.alloc(16)
  buffer.writeUInt8(fields.family ?? C.AF_UNSPEC, 0)
  buffer.writeUInt16LE(fields.type ?? 0, 2)
  buffer.writeInt32LE(fields.index ?? 0, 4)
  buffer.writeUInt32LE((fields.flags ?? 0) >>> 0, 8)
  buffer.writeUInt32LE((fields.change ?? 0) >>> 0, 12)
  return buffer
}

/** `struct ifaddrmsg` (8 bytes). */
export const ifaddrmsg = (fields: { family: number; prefix: number; flags?: number; scope?: number; index?: number }): Buffer => {
  const buffer = Buffer.alloc(8)
  buffer.writeUInt8(fields.family, 0)
  buffer.writeUInt8(fields.prefix, 1)
  buffer.writeUInt8(fields.flags ?? 0, 2)
  buffer.writeUInt8(fields.scope ?? 0, 3)
  buffer.writeUInt32LE(fields.index ?? 0, 4)
  return buffer
}

/** `struct rtmsg` (12 bytes). */
export const rtmsg = (fields: {
  family: number
  dstLen?: number
  table?: number
  protocol?: number
  scope?: number
  type?: number
}): Buffer => {
  const buffer = Buffer.alloc(12)
  buffer.writeUInt8(fields.family, 0)
  buffer.writeUInt8(fields.dstLen ?? 0, 1)
  buffer.writeUInt8(fields.table ?? 0, 4)
  buffer.writeUInt8(fields.protocol ?? 0, 5)
  buffer.writeUInt8(fields.scope ?? 0, 6)
  buffer.writeUInt8(fields.type ?? 0, 7)
  return buffer
}

/** One decoded message: its type, flags and sequence number, its payload (what follows the header), and the whole message. */
export interface Decoded {
  readonly type: number
  readonly flags: number
  readonly seq: number
  readonly payload: Buffer
  readonly message: Buffer
}

/**
 * The messages in a buffer of messages back to back (a datagram from the kernel, or the answers a
 * thread returns); a message whose length runs past the buffer ends them there.
 */
export const parseMessages = (data: Buffer): Array<Decoded> => {
  const messages: Array<Decoded> = []
  let offset = 0
  while (offset + C.NLMSG_HDRLEN <= data.length) {
    const length = data.readUInt32LE(offset)
    if (length < C.NLMSG_HDRLEN || offset + length > data.length) break
    messages.push({
      type: data.readUInt16LE(offset + 4),
      flags: data.readUInt16LE(offset + 6),
      seq: data.readUInt32LE(offset + 8),
      payload: data.subarray(offset + C.NLMSG_HDRLEN, offset + length),
      message: data.subarray(offset, offset + length)
    })
    offset += align4(length)
  }
  return messages
}

// ---------------------------------------------------------------------------------------------
// Decoded objects
// ---------------------------------------------------------------------------------------------

const cString = (buffer: Buffer | undefined): string | undefined => {
  if (buffer === undefined) return undefined
  const end = buffer.indexOf(0)
  return buffer.subarray(0, end < 0 ? buffer.length : end).toString("utf8")
}

const u32Of = (buffer: Buffer | undefined): number | undefined =>
  buffer !== undefined && buffer.length >= 4 ? buffer.readUInt32LE(0) : undefined

const mac = (buffer: Buffer | undefined): string | undefined =>
  buffer === undefined || buffer.length === 0 ? undefined : [...buffer].map((byte) => byte.toString(16).padStart(2, "0")).join(":")

/** An `RTM_NEWLINK` message's payload, decoded. */
export interface RawLink {
  readonly index: number
  readonly flags: number
  readonly name: string
  readonly mtu: number
  readonly mac: string | undefined
  readonly kind: string | undefined
  readonly master: number | undefined
  /** `IFLA_LINK`: for a veth, its peer's index (in the peer's namespace). */
  readonly link: number | undefined
  readonly operstate: number | undefined
}

export const decodeLink = (payload: Buffer): RawLink => {
  const attrs = parseAttrs(payload, 16)
  const info = attrs.get(C.IFLA_LINKINFO)
  const master = u32Of(attrs.get(C.IFLA_MASTER))
  const link = u32Of(attrs.get(C.IFLA_LINK))
  return {
    index: payload.readInt32LE(4),
    flags: payload.readUInt32LE(8),
    name: cString(attrs.get(C.IFLA_IFNAME)) ?? "",
    mtu: u32Of(attrs.get(C.IFLA_MTU)) ?? 0,
    mac: mac(attrs.get(C.IFLA_ADDRESS)),
    kind: info === undefined ? undefined : cString(parseAttrs(info).get(C.IFLA_INFO_KIND)),
    master: master === 0 ? undefined : master,
    link: link === 0 ? undefined : link,
    operstate: attrs.get(C.IFLA_OPERSTATE)?.readUInt8(0)
  }
}

/** An `RTM_NEWADDR` message's payload, decoded. */
export interface RawAddress {
  readonly family: number
  readonly prefix: number
  readonly flags: number
  readonly scope: number
  readonly index: number
  readonly address: string
  readonly label: string | undefined
}

export const decodeAddress = (payload: Buffer): RawAddress => {
  const attrs = parseAttrs(payload, 8)
  const family = payload.readUInt8(0)
  const extraFlags = u32Of(attrs.get(C.IFA_FLAGS))
  return {
    family,
    prefix: payload.readUInt8(1),
    flags: extraFlags ?? payload.readUInt8(2),
    scope: payload.readUInt8(3),
    index: payload.readUInt32LE(4),
    address: formatIp(attrs.get(C.IFA_LOCAL) ?? attrs.get(C.IFA_ADDRESS) ?? Buffer.alloc(0)),
    label: cString(attrs.get(C.IFA_LABEL))
  }
}

/** An `RTM_NEWROUTE` message's payload, decoded. */
export interface RawRoute {
  readonly family: number
  readonly dstLen: number
  readonly table: number
  readonly protocol: number
  readonly scope: number
  readonly type: number
  readonly destination: string | undefined
  readonly gateway: string | undefined
  readonly oif: number | undefined
  readonly priority: number | undefined
  readonly prefsrc: string | undefined
}

export const decodeRoute = (payload: Buffer): RawRoute => {
  const attrs = parseAttrs(payload, 12)
  const ip = (type: number) => {
    const value = attrs.get(type)
    return value === undefined ? undefined : formatIp(value)
  }
  return {
    family: payload.readUInt8(0),
    dstLen: payload.readUInt8(1),
    table: u32Of(attrs.get(C.RTA_TABLE)) ?? payload.readUInt8(4),
    protocol: payload.readUInt8(5),
    scope: payload.readUInt8(6),
    type: payload.readUInt8(7),
    destination: ip(C.RTA_DST),
    gateway: ip(C.RTA_GATEWAY),
    oif: u32Of(attrs.get(C.RTA_OIF)),
    priority: u32Of(attrs.get(C.RTA_PRIORITY)),
    prefsrc: ip(C.RTA_PREFSRC)
  }
}

// ---------------------------------------------------------------------------------------------
// IP addresses
// ---------------------------------------------------------------------------------------------

/**
 * An IPv4 or IPv6 address as text, or undefined when it is not one (no names, no zone ids). As
 * `inet_pton`, an IPv4 part has no leading zero: `010.0.0.1` is refused, not read as 10.0.0.1
 * (which `inet_aton` would read as 8.0.0.1).
 */
export const parseIp = (text: string): Buffer | undefined => {
  if (/^(0|[1-9]\d{0,2})(\.(0|[1-9]\d{0,2})){3}$/.test(text)) {
    const bytes = text.split(".").map(Number)
    return bytes.every((byte) => byte <= 255) ? Buffer.from(bytes) : undefined
  }
  if (!/^[0-9a-fA-F:.]+$/.test(text) || !text.includes(":")) return undefined
  let head = text
  let tail: Array<number> = []
  const lastColon = text.lastIndexOf(":")
  if (text.slice(lastColon + 1).includes(".")) {
    const v4 = parseIp(text.slice(lastColon + 1))
    if (v4 === undefined) return undefined
    tail = [v4.readUInt16BE(0), v4.readUInt16BE(2)]
    head = text.slice(0, lastColon + 1)
    if (head.endsWith(":") && !head.endsWith("::")) head = head.slice(0, -1)
  }
  const halves = head.split("::")
  if (halves.length > 2) return undefined
  const groups = (part: string) => (part === "" ? [] : part.split(":"))
  const left = groups(halves[0]!)
  const right = halves.length === 2 ? groups(halves[1]!) : []
  if ([...left, ...right].some((group) => !/^[0-9a-fA-F]{1,4}$/.test(group))) return undefined
  const given = left.length + right.length + tail.length
  if (halves.length === 1 ? given !== 8 : given > 7) return undefined
  const words = [...left.map((g) => parseInt(g, 16)), ...Array(8 - given).fill(0), ...right.map((g) => parseInt(g, 16)), ...tail]
  const buffer = Buffer.alloc(16)
  words.forEach((word, i) => buffer.writeUInt16BE(word, i * 2))
  return buffer
}

/** An address as `ip` prints it (`inet_ntop`: IPv6 with the longest run of zero groups as `::`). */
export const formatIp = (bytes: Buffer): string => {
  if (bytes.length === 4) return [...bytes].join(".")
  if (bytes.length !== 16) return bytes.toString("hex")
  const words = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2))
  // IPv4-mapped (::ffff:a.b.c.d), as inet_ntop prints it.
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) return `::ffff:${[...bytes.subarray(12)].join(".")}`
  let bestStart = -1
  let bestLength = 0
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && words[j] === 0) j++
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i]
    i = j
  }
  const hex = (ws: Array<number>) => ws.map((w) => w.toString(16)).join(":")
  if (bestLength < 2) return hex(words)
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLength))}`
}

/** `address/prefix` (the prefix optional: the whole address), or the reason it is not one. */
export const parseCidr = (text: string): { family: number; bytes: Buffer; prefix: number } | string => {
  const [address, prefixText, ...rest] = text.split("/")
  if (rest.length > 0) return "more than one \"/\""
  const bytes = parseIp(address!)
  if (bytes === undefined) return `${JSON.stringify(address)} is not an IPv4 or IPv6 address`
  const bits = bytes.length * 8
  if (prefixText === undefined) return { family: bytes.length === 4 ? C.AF_INET : C.AF_INET6, bytes, prefix: bits }
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) return `prefix ${JSON.stringify(prefixText)} is not 0 to ${bits}`
  return { family: bytes.length === 4 ? C.AF_INET : C.AF_INET6, bytes, prefix: Number(prefixText) }
}

/** The network of an address and prefix (host bits cleared). */
export const networkOf = (bytes: Buffer, prefix: number): Buffer => {
  const out = Buffer.from(bytes)
  for (let bit = prefix; bit < out.length * 8; bit++) out[bit >> 3] = out[bit >> 3]! & ~(0x80 >> (bit & 7))
  return out
}
