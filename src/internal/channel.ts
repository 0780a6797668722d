/**
 * The channel between the main thread and one pinned thread: a small fixed SharedArrayBuffer of
 * control words and a growable one holding one message. A message is a batch: every request the
 * main side had for the thread when it wrote, or every response to such a batch.
 *
 * Messages are JSON text, except those that carry a user module's input or result, which are
 * serialized with `v8.serialize` (the structured clone algorithm, as `postMessage` uses). JSON is
 * several times cheaper to make and read here, and `v8.serialize`'s buffers are not all returned
 * to the system: a process that round-trips it on every call grows without bound.
 *
 * The main side writes a batch and flips the state to REQUEST; the pinned thread, polling or parked
 * in `Atomics.wait`, wakes, works through the batch, writes the responses and flips the state to
 * RESPONSE. The control words live apart from the message because `Atomics.wait` on a growable
 * buffer took tens of microseconds longer to wake here.
 *
 * @internal
 */
import * as v8 from "node:v8"

// A new channel's state is 0: nothing asked yet.
export const REQUEST = 1
export const RESPONSE = 2
/** Written by the main side over whatever state there was, so that a parked thread wakes. */
const CANCELLED = 3

const STATE = 0
const LENGTH = 1
const FORMAT = 2
/** Set to 1, once and for good, when the main side gives up on the thread. */
const CANCEL = 3
const CONTROL_WORDS = 4

export const JSON_FORMAT = 0
export const V8_FORMAT = 1
export type Format = typeof JSON_FORMAT | typeof V8_FORMAT

const INITIAL_BYTES = 64 * 1024
const MAX_BYTES = 64 * 1024 * 1024

/** The two buffers, as sent to the pinned thread. */
export interface Buffers {
  readonly control: SharedArrayBuffer
  readonly data: SharedArrayBuffer
}

export interface Channel {
  readonly buffer: SharedArrayBuffer
  readonly control: Int32Array
  /** A Buffer view of the data, made again when either side has grown the buffer. */
  view: Buffer
}

const bytes = (channel: Channel): Buffer => {
  if (channel.view.length !== channel.buffer.byteLength) channel.view = Buffer.from(channel.buffer, 0, channel.buffer.byteLength)
  return channel.view
}

export const make = (): Buffers => ({
  control: new SharedArrayBuffer(CONTROL_WORDS * 4),
  data: new SharedArrayBuffer(INITIAL_BYTES, { maxByteLength: MAX_BYTES })
})

export const attach = (buffers: Buffers): Channel => ({
  buffer: buffers.data,
  control: new Int32Array(buffers.control),
  view: Buffer.from(buffers.data, 0, buffers.data.byteLength)
})

/** Thrown by {@link write} when a message cannot fit even in a fully grown buffer. */
export class TooLarge extends Error {
  readonly bytes: number
  constructor(bytes: number) {
    super(`message of ${bytes} bytes exceeds ${MAX_BYTES}`)
    this.bytes = bytes
  }
}

export const limit = MAX_BYTES

/**
 * Encodes `message` in `format`. Throws what serializing throws (a value that cannot be cloned),
 * or {@link TooLarge}; nothing is published until {@link publish}.
 */
export const encode = (message: unknown, format: Format): Buffer | string => {
  const encoded = format === V8_FORMAT ? v8.serialize(message) : JSON.stringify(message)
  const bytes = typeof encoded === "string" ? Buffer.byteLength(encoded) : encoded.length
  if (bytes > MAX_BYTES) throw new TooLarge(bytes)
  return encoded
}

/** Writes an encoded message into the channel and publishes it with `state`. */
export const publish = (channel: Channel, encoded: Buffer | string, state: number): void => {
  const format = typeof encoded === "string" ? JSON_FORMAT : V8_FORMAT
  const needed = typeof encoded === "string" ? Buffer.byteLength(encoded) : encoded.length
  if (needed > channel.buffer.byteLength) channel.buffer.grow(needed)
  const view = bytes(channel)
  const length = typeof encoded === "string" ? view.write(encoded, 0, "utf8") : (view.set(encoded, 0), needed)
  Atomics.store(channel.control, LENGTH, length)
  Atomics.store(channel.control, FORMAT, format)
  Atomics.store(channel.control, STATE, state)
  Atomics.notify(channel.control, STATE)
}

export const read = (channel: Channel): unknown => {
  const length = Atomics.load(channel.control, LENGTH)
  const view = bytes(channel)
  if (Atomics.load(channel.control, FORMAT) === JSON_FORMAT) return JSON.parse(view.toString("utf8", 0, length))
  // Copy out of shared memory before decoding: the other side may reuse the buffer at once.
  return v8.deserialize(Buffer.from(view.subarray(0, length)))
}

export const state = (channel: Channel): number => Atomics.load(channel.control, STATE)

export const isCancelled = (channel: Channel): boolean => Atomics.load(channel.control, CANCEL) === 1

/**
 * Tells the pinned thread that it is being given up. The flag is set before the state changes, and
 * the thread checks the flag before each wait on the state, so a thread that finishes its task and
 * parks again cannot miss it.
 */
export const cancel = (channel: Channel): void => {
  Atomics.store(channel.control, CANCEL, 1)
  Atomics.store(channel.control, STATE, CANCELLED)
  Atomics.notify(channel.control, STATE)
}

/**
 * Polls the state word for up to `micros` while it equals `busy`; returns the last state seen.
 * A sleeping thread is woken by a futex wake, and on a virtual machine waking an idle vCPU can
 * take tens of microseconds, several times a whole round trip: polling briefly first keeps short
 * tasks and back-to-back requests off that path.
 */
export const spin = (channel: Channel, busy: number, micros: number): number => {
  let current = Atomics.load(channel.control, STATE)
  if (current !== busy) return current
  const deadline = performance.now() + micros / 1_000
  do {
    current = Atomics.load(channel.control, STATE)
  } while (current === busy && performance.now() < deadline)
  return current
}

/**
 * Blocks the calling (pinned) thread until the state is REQUEST (then returns true) or the main
 * side has cancelled (then returns false). `beforeSleep` runs once, when the thread is about to
 * park: the moment to leave a set it lingered in.
 */
export const awaitRequest = (channel: Channel, lingerMicros: number, beforeSleep: () => void): boolean => {
  let current = spin(channel, RESPONSE, lingerMicros)
  let slept = false
  for (;;) {
    if (isCancelled(channel)) return false
    if (current === REQUEST) return true
    if (!slept) {
      slept = true
      beforeSleep()
      current = Atomics.load(channel.control, STATE)
      continue
    }
    Atomics.wait(channel.control, STATE, current)
    current = Atomics.load(channel.control, STATE)
  }
}

/** Resolves once the state is no longer REQUEST, without blocking the event loop. */
export const awaitResponseAsync = (channel: Channel): Promise<unknown> | undefined => {
  const result = Atomics.waitAsync(channel.control, STATE, REQUEST)
  return result.async ? result.value : undefined
}

/** Wakes anything waiting on the channel; used when the pinned thread is gone. */
export const wake = (channel: Channel): void => {
  Atomics.notify(channel.control, STATE)
}

/** The format of the message in the channel. */
export const formatOf = (channel: Channel): Format => Atomics.load(channel.control, FORMAT) as Format
