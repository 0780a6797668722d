/**
 * The pinned thread's side of rtnetlink: one `NETLINK_ROUTE` socket per exchange, made on the
 * thread and so in the network namespace of the set it is inside (a netlink socket talks to the
 * namespace it was created in, for life). Requests go one at a time, each with a fresh sequence
 * number; the answers to it are collected until its ack (`NLMSG_ERROR` with 0), its error, or, for
 * a dump, `NLMSG_DONE` (multipart answers come in as many datagrams as the kernel needs). The first
 * refused request ends the exchange: its errno and the kernel's extended-ack message are the
 * result, with what the requests before it answered.
 *
 * Nothing blocks: the socket is non-blocking, and waiting for an answer is a `poll` with a
 * deadline (the kernel answers rtnetlink requests while it handles `send`, so it never comes
 * into play in practice).
 *
 * @internal
 */
import * as libc from "../libc.ts"
import { syscallError } from "../failure.ts"
import type { Operations } from "../protocol.ts"
import { parseAttrs, parseMessages } from "./codec.ts"
import {
  NLM_F_ACK,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  NLMSG_NOOP,
  NLMSG_OVERRUN,
  NLMSGERR_ATTR_MSG,
  NLMSGERR_ATTR_OFFS
} from "./constants.ts"

type Args = Operations["netlink"]["args"]
type Result = Operations["netlink"]["result"]
type Refusal = { readonly errno: string; readonly code: number; readonly message?: string; readonly offset?: number }

/** How long one request may wait for its answers. */
const TIMEOUT_MS = 5_000
/** A dump the kernel reports as interrupted by a change (`NLM_F_DUMP_INTR`) is asked again, this often. */
const DUMP_ATTEMPTS = 4

let sequence = Math.floor(Math.random() * 0x7fffffff)
const nextSequence = () => (sequence = (sequence + 1) >>> 0) || (sequence = 1)
/** Datagrams are read into this buffer (or a larger one made for a larger datagram). */
const buffer = Buffer.alloc(64 * 1024)

const align4 = (n: number) => (n + 3) & ~3

export const exchange = (args: Args): Result => {
  let fd: number
  try {
    fd = libc.netlinkSocket()
  } catch (error) {
    throw syscallError(args.operation, error)
  }
  try {
    const replies: Array<string> = []
    for (let at = 0; at < args.requests.length; at++) {
      const request = args.requests[at]!
      const message = Buffer.from(request.data, "base64")
      for (const { offset, link } of request.indexOf ?? []) {
        try {
          message.writeUInt32LE(libc.interfaceIndex(fd, link), offset)
        } catch (error) {
          if (!(error instanceof libc.SyscallFailure)) throw error
          return { replies, failure: { at, errno: error.errno, code: error.code, link } }
        }
      }
      const outcome = transact(fd, message)
      if (typeof outcome !== "string") return { replies, failure: { at, ...outcome } }
      replies.push(outcome)
    }
    return { replies }
  } catch (error) {
    throw syscallError(args.operation, error)
  } finally {
    libc.close(fd)
  }
}

/** Sends one request and collects its answers (base64, the messages back to back), or its refusal. */
const transact = (fd: number, message: Buffer): string | Refusal => {
  const type = message.readUInt16LE(4)
  // RTM_GET* are the types ≡ 2 (mod 4); with NLM_F_DUMP they answer many messages and NLMSG_DONE.
  const dump = (type & 3) === 2 && (message.readUInt16LE(6) & NLM_F_DUMP) === NLM_F_DUMP
  if (!dump) message.writeUInt16LE(message.readUInt16LE(6) | NLM_F_ACK, 6)
  for (let attempt = 1; ; attempt++) {
    const seq = nextSequence()
    message.writeUInt32LE(seq, 8)
    libc.sendDatagram(fd, message)
    const parts: Array<Buffer> = []
    let interrupted = false
    const deadline = Date.now() + TIMEOUT_MS
    let finished = false
    while (!finished) {
      const datagram = libc.receiveDatagram(fd, buffer)
      if (datagram === undefined) {
        const left = deadline - Date.now()
        if (left <= 0) return { errno: "ETIMEDOUT", code: 110, message: "no answer from the kernel" }
        libc.waitReadable(fd, left)
        continue
      }
      for (const answer of parseMessages(datagram)) {
        if (answer.seq !== seq) continue // not an answer to this request
        if ((answer.flags & NLM_F_DUMP_INTR) !== 0) interrupted = true
        if (answer.type === NLMSG_ERROR || answer.type === NLMSG_DONE) {
          const error = answer.payload.length >= 4 ? answer.payload.readInt32LE(0) : 0
          if (error < 0) return refusal(answer.message, answer.type, answer.flags, -error)
          finished = true
          break
        }
        if (answer.type !== NLMSG_NOOP && answer.type !== NLMSG_OVERRUN) {
          parts.push(Buffer.from(answer.message)) // a copy: the buffer is read into again
        }
      }
    }
    if (interrupted && attempt < DUMP_ATTEMPTS) continue
    return Buffer.concat(parts).toString("base64")
  }
}

/** An error answer: the errno, and the kernel's extended ack (its message, the offending offset). */
const refusal = (body: Buffer, kind: number, flags: number, code: number): Refusal => {
  let message: string | undefined
  let offset: number | undefined
  if ((flags & NLM_F_ACK_TLVS) !== 0) {
    // NLMSG_ERROR: the error, then the request's header (whole request unless capped), then TLVs.
    let at = NLMSG_HDRLEN + 4
    if (kind === NLMSG_ERROR) at += (flags & NLM_F_CAPPED) !== 0 ? NLMSG_HDRLEN : align4(body.readUInt32LE(at))
    const attrs = parseAttrs(body, at)
    message = attrs.get(NLMSGERR_ATTR_MSG)?.toString("utf8").replace(/\0.*$/s, "")
    const offs = attrs.get(NLMSGERR_ATTR_OFFS)
    if (offs !== undefined && offs.length >= 4) offset = offs.readUInt32LE(0)
  }
  return {
    errno: libc.errnoName(code),
    code,
    ...(message === undefined || message === "" ? {} : { message }),
    ...(offset === undefined ? {} : { offset })
  }
}
