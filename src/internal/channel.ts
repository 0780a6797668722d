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
import { yieldCpu } from "./libc.ts"
import * as life from "./life.ts"

// A new slot's state is 0: nothing asked yet.
export const REQUEST = 1
export const RESPONSE = 2
/** Written by the main side over whatever state there was, so that a parked thread wakes. */
const CANCELLED = 3
/**
 * Written by the pinned thread when it takes up a batch: a batch still in REQUEST when its thread
 * dies was never served, and can be sent to another thread.
 */
export const SERVING = 4

/** Whether a batch in this state is still to be answered. */
export const pending = (state: number): boolean => state === REQUEST || state === SERVING

// Each slot's control words: state, length, format.
const STATE = 0
const LENGTH = 1
const FORMAT = 2
const SLOT_WORDS = 3
/** One word for the whole channel, after the slots': set to 1, once and for good, when the main side gives up on the thread. */
const CANCEL = 2 * SLOT_WORDS
/** Then the word that says whether the thread may be terminated now (`life.ts`). */
const LIFE = CANCEL + 1
if (LIFE !== life.LIFE_WORD) throw new Error("the channel's life word is not where life.ts says")

export const JSON_FORMAT = 0
export const V8_FORMAT = 1
export type Format = typeof JSON_FORMAT | typeof V8_FORMAT

const INITIAL_BYTES = 64 * 1024
const MAX_BYTES = 64 * 1024 * 1024

/**
 * The two buffers, as sent to the pinned thread. There are two slots, each with its control words
 * and its message: the main side can send the next batch while the thread serves the one before,
 * so neither side waits for the other's turn. The thread serves them alternately, in order.
 */
export interface Buffers {
  readonly control: SharedArrayBuffer
  readonly data: readonly [SharedArrayBuffer, SharedArrayBuffer]
}

/** One slot of a channel. */
export interface Slot {
  readonly buffer: SharedArrayBuffer
  /** The whole channel's control words; this slot's start at `base`. */
  readonly control: Int32Array
  readonly base: number
  /** A Buffer view of the data, made again when either side has grown the buffer. */
  view: Buffer
}

export interface Channel {
  readonly control: Int32Array
  readonly slots: readonly [Slot, Slot]
}

const bytes = (slot: Slot): Buffer => {
  if (slot.view.length !== slot.buffer.byteLength) slot.view = Buffer.from(slot.buffer, 0, slot.buffer.byteLength)
  return slot.view
}

export const make = (): Buffers => ({
  control: new SharedArrayBuffer((LIFE + 1) * 4),
  data: [
    new SharedArrayBuffer(INITIAL_BYTES, { maxByteLength: MAX_BYTES }),
    new SharedArrayBuffer(INITIAL_BYTES, { maxByteLength: MAX_BYTES })
  ]
})

export const attach = (buffers: Buffers): Channel => {
  const control = new Int32Array(buffers.control)
  const slot = (index: 0 | 1): Slot => ({
    buffer: buffers.data[index],
    control,
    base: index * SLOT_WORDS,
    view: Buffer.from(buffers.data[index], 0, buffers.data[index].byteLength)
  })
  return { control, slots: [slot(0), slot(1)] }
}

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

/** The bytes `message` takes encoded in `format`; throws what serializing throws. */
export const encodedSize = (message: unknown, format: Format): number =>
  format === V8_FORMAT ? v8.serialize(message).length : Buffer.byteLength(JSON.stringify(message))

/** Throws {@link TooLarge} for JSON text too large for a slot. */
export const checked = (json: string): string => {
  if (json.length * 3 > MAX_BYTES) {
    const bytes = Buffer.byteLength(json)
    if (bytes > MAX_BYTES) throw new TooLarge(bytes)
  }
  return json
}

/** Writes an encoded message into the slot and publishes it with `state`. */
export const publish = (slot: Slot, encoded: Buffer | string, state: number): void => {
  const format = typeof encoded === "string" ? JSON_FORMAT : V8_FORMAT
  const needed = typeof encoded === "string" ? Buffer.byteLength(encoded) : encoded.length
  if (needed > slot.buffer.byteLength) slot.buffer.grow(needed)
  const view = bytes(slot)
  const length = typeof encoded === "string" ? view.write(encoded, 0, "utf8") : (view.set(encoded, 0), needed)
  Atomics.store(slot.control, slot.base + LENGTH, length)
  Atomics.store(slot.control, slot.base + FORMAT, format)
  Atomics.store(slot.control, slot.base + STATE, state)
  Atomics.notify(slot.control, slot.base + STATE)
}

export const read = (slot: Slot): unknown => {
  const length = Atomics.load(slot.control, slot.base + LENGTH)
  const view = bytes(slot)
  if (Atomics.load(slot.control, slot.base + FORMAT) === JSON_FORMAT) return JSON.parse(view.toString("utf8", 0, length))
  // Copy out of shared memory before decoding: the other side may reuse the buffer at once.
  return v8.deserialize(Buffer.from(view.subarray(0, length)))
}

/** The format of the message in the slot. */
export const formatOf = (slot: Slot): Format => Atomics.load(slot.control, slot.base + FORMAT) as Format

export const state = (slot: Slot): number => Atomics.load(slot.control, slot.base + STATE)

export const isCancelled = (channel: Channel): boolean => Atomics.load(channel.control, CANCEL) === 1

/**
 * Tells the pinned thread that it is being given up. The flag is set before the states change, and
 * the thread checks the flag before each wait on a state, so a thread that finishes its task and
 * parks again cannot miss it.
 */
export const cancel = (channel: Channel, busy: ReadonlyArray<Slot> = []): void => {
  Atomics.store(channel.control, CANCEL, 1)
  for (const slot of channel.slots) {
    // A slot whose request is being served, or whose answer is written, keeps its state: the
    // answer is still to be read. The thread checks the flag before it waits again.
    const state = Atomics.load(slot.control, slot.base + STATE)
    if (!busy.includes(slot) || state === 0) Atomics.store(slot.control, slot.base + STATE, CANCELLED)
    Atomics.notify(slot.control, slot.base + STATE)
  }
}

/**
 * Blocks the calling (pinned) thread until the slot's state is REQUEST (then returns true) or the
 * main side has cancelled or claimed the thread's end (then returns false). `beforeSleep` runs
 * once, when the thread is about to park: the moment to leave a set it lingered in.
 */
export const awaitRequest = (channel: Channel, slot: Slot, lingerMicros: number, beforeSleep: () => void): boolean => {
  const index = slot.base + STATE
  let current = Atomics.load(slot.control, index)
  if (current !== REQUEST) {
    const deadline = performance.now() + lingerMicros / 1_000
    do {
      yieldCpu()
      current = Atomics.load(slot.control, index)
    } while (current !== REQUEST && current !== CANCELLED && performance.now() < deadline)
  }
  let slept = false
  for (;;) {
    if (isCancelled(channel)) return false
    if (current === REQUEST) return true
    if (!slept) {
      slept = true
      beforeSleep()
      current = Atomics.load(slot.control, index)
      continue
    }
    // Parked, the thread may be terminated (see `life.ts`); once the main side has claimed its
    // end, it runs no more of gonso's code.
    life.leave(channel.control)
    Atomics.wait(slot.control, index, current)
    if (!life.enter(channel.control)) return false
    current = Atomics.load(slot.control, index)
  }
}

/** The pinned thread has taken up the slot's batch. */
export const markServing = (slot: Slot): void => {
  Atomics.store(slot.control, slot.base + STATE, SERVING)
}

/**
 * Polls the slot's state for up to `micros` while its batch is still to be answered; returns the
 * last state seen. A sleeping thread is woken by a futex wake, and on a virtual machine waking an
 * idle vCPU can take tens of microseconds, several times a whole round trip: polling briefly first
 * keeps short tasks off that path. A polling thread that holds its CPU may be keeping the very
 * thread it waits for off it, when there are more runnable threads than cores: each turn offers
 * the CPU away.
 */
export const spinWhilePending = (slot: Slot, micros: number): number => {
  const index = slot.base + STATE
  let current = Atomics.load(slot.control, index)
  if (!pending(current)) return current
  const deadline = performance.now() + micros / 1_000
  do {
    yieldCpu()
    current = Atomics.load(slot.control, index)
  } while (pending(current) && performance.now() < deadline)
  return current
}

/**
 * Resolves once the slot's state changes while its batch is still to be answered, without
 * blocking the event loop; undefined when it is not (or no longer) pending.
 */
export const awaitResponseAsync = (slot: Slot): Promise<unknown> | undefined => {
  const current = Atomics.load(slot.control, slot.base + STATE)
  if (!pending(current)) return undefined
  const result = Atomics.waitAsync(slot.control, slot.base + STATE, current)
  return result.async ? result.value : undefined
}

/** Wakes anything waiting on the channel; used when the pinned thread is gone. */
export const wake = (channel: Channel): void => {
  for (const slot of channel.slots) Atomics.notify(slot.control, slot.base + STATE)
}
