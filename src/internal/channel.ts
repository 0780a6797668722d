/**
 * The channel between the main thread and one pinned thread: a small fixed SharedArrayBuffer of
 * control words (state, length, cancel flag) and a growable one holding one message, serialized
 * with `v8.serialize` (the structured clone algorithm, as `postMessage` uses, without its
 * event-loop hops). The control words live apart because `Atomics.wait`/`waitAsync` on a growable
 * buffer took tens of microseconds longer to wake here.
 *
 * One request is in flight at a time. The main side writes a request and flips the state to
 * REQUEST; the pinned thread, parked in `Atomics.wait`, wakes, works, writes its response and flips
 * the state to RESPONSE; the main side waits for that with `Atomics.waitAsync`, so its event loop
 * keeps running. A round trip costs a few microseconds, against tens for `postMessage`.
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
/** Set to 1, once and for good, when the main side gives up on the request in flight. */
const CANCEL = 2
const CONTROL_WORDS = 3

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
  readonly bytes: Uint8Array
}

export const make = (): Buffers => ({
  control: new SharedArrayBuffer(CONTROL_WORDS * 4),
  data: new SharedArrayBuffer(INITIAL_BYTES, { maxByteLength: MAX_BYTES })
})

export const attach = (buffers: Buffers): Channel => ({
  buffer: buffers.data,
  control: new Int32Array(buffers.control),
  // Length-tracking: the view follows the buffer when either side grows it.
  bytes: new Uint8Array(buffers.data)
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

/** Serializes `message` into the channel and publishes it with `state`. */
export const write = (channel: Channel, message: unknown, state: number): void => {
  const data = v8.serialize(message)
  const needed = data.length
  if (needed > channel.buffer.byteLength) {
    if (needed > channel.buffer.maxByteLength) throw new TooLarge(data.length)
    channel.buffer.grow(needed)
  }
  channel.bytes.set(data, 0)
  Atomics.store(channel.control, LENGTH, data.length)
  Atomics.store(channel.control, STATE, state)
  Atomics.notify(channel.control, STATE)
}

export const read = (channel: Channel): unknown => {
  const length = Atomics.load(channel.control, LENGTH)
  // Copy out of shared memory before decoding: the other side may reuse the buffer at once.
  return v8.deserialize(Buffer.from(channel.bytes.subarray(0, length)))
}

export const state = (channel: Channel): number => Atomics.load(channel.control, STATE)

/**
 * Tells the pinned thread that the request in flight is abandoned. The flag is set before the
 * state changes, and the thread checks the flag before each wait on the state, so a thread that
 * finishes its task and parks again cannot miss it.
 */
export const cancel = (channel: Channel): void => {
  Atomics.store(channel.control, CANCEL, 1)
  Atomics.store(channel.control, STATE, CANCELLED)
  Atomics.notify(channel.control, STATE)
}

/**
 * How long each side polls the state word before it goes to sleep. A sleeping thread is woken by
 * a futex wake, and on a virtual machine waking an idle vCPU can take tens of microseconds, several
 * times the whole round trip; polling briefly first keeps short tasks and back-to-back requests
 * off that path. Past the window both sides sleep, so an idle channel costs no CPU.
 */
const SPIN_MICROS = 50

/** Polls for up to SPIN_MICROS while `busy(state)` holds; returns the last state seen. */
const spin = (channel: Channel, busy: (state: number) => boolean): number => {
  let current = Atomics.load(channel.control, STATE)
  if (!busy(current)) return current
  const deadline = performance.now() + SPIN_MICROS / 1_000
  do {
    current = Atomics.load(channel.control, STATE)
  } while (busy(current) && performance.now() < deadline)
  return current
}

const notRequest = (state: number) => state !== REQUEST
const isRequest = (state: number) => state === REQUEST

/**
 * Blocks the calling (pinned) thread until the state is REQUEST (then returns true) or the main
 * side has cancelled (then returns false).
 */
export const awaitRequest = (channel: Channel): boolean => {
  let current = spin(channel, notRequest)
  for (;;) {
    if (Atomics.load(channel.control, CANCEL) === 1) return false
    if (current === REQUEST) return true
    Atomics.wait(channel.control, STATE, current)
    current = Atomics.load(channel.control, STATE)
  }
}

/**
 * Calls `onChange` once the state has left REQUEST (a response was written): at once if it does
 * within the polling window, else from the event loop, without blocking it.
 */
export const awaitResponse = (channel: Channel, onChange: () => void): void => {
  if (spin(channel, isRequest) !== REQUEST) return onChange()
  const result = Atomics.waitAsync(channel.control, STATE, REQUEST)
  if (result.async) result.value.then(onChange)
  else onChange()
}

/** Wakes anything waiting on the channel; used when the pinned thread is gone. */
export const wake = (channel: Channel): void => {
  Atomics.notify(channel.control, STATE)
}
