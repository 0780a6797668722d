/**
 * Whether a pinned thread may be terminated right now: one word of its channel's control buffer,
 * changed only by compare-and-swap, so that the thread and the main side never disagree.
 *
 * Terminating a Worker while it is inside a koffi call aborts the whole process (node-addon-api
 * cannot throw into an isolate that is being terminated), and a thread ended halfway through a
 * library operation leaves what it was making (a clone()d child, an fd) without an owner. So:
 *
 * - `NOT_BEGUN`: the script has not begun as gonso's worker. The main side may end it.
 * - `LIBRARY`: gonso's code runs on the thread (koffi calls, an operation). Never terminated.
 * - `OUTSIDE`: the thread is parked in `Atomics.wait`, runs user code, or idles in its event
 *   loop. The main side may end it.
 * - `ENDING`: the main side has claimed the end. The thread runs no more of gonso's code: its
 *   next attempt to enter fails, and it returns to its event loop until the termination lands.
 *
 * The thread enters (`OUTSIDE -> LIBRARY`) at every point where gonso's code starts from its event
 * loop or from a park, and goes out (`LIBRARY -> OUTSIDE`) before it parks, calls user code or
 * returns to the loop. The main side ends a thread by claiming `NOT_BEGUN` or `OUTSIDE` for
 * `ENDING`; a thread in `LIBRARY` is waited for, which is short (library operations are
 * synchronous and bounded).
 *
 * Pure functions of the word: loaded by the main thread and by every pinned thread.
 *
 * @internal
 */

/** The word's index in the channel's control buffer (after the two slots' words and the cancel word, see `channel.ts`). */
export const LIFE_WORD = 7

export const NOT_BEGUN = 0
export const LIBRARY = 1
export const OUTSIDE = 2
export const ENDING = 3

/** The thread begins as gonso's worker; false if the main side had given up on it already. */
export const begin = (control: Int32Array): boolean => Atomics.compareExchange(control, LIFE_WORD, NOT_BEGUN, LIBRARY) === NOT_BEGUN

/** The thread is about to run gonso's code; false once the main side has claimed its end. */
export const enter = (control: Int32Array): boolean => Atomics.compareExchange(control, LIFE_WORD, OUTSIDE, LIBRARY) === OUTSIDE

/** The thread stops running gonso's code (it parks, calls user code, or returns to its loop). */
export const leave = (control: Int32Array): void => {
  if (Atomics.compareExchange(control, LIFE_WORD, LIBRARY, OUTSIDE) === LIBRARY) Atomics.notify(control, LIFE_WORD)
}

/** Whether the thread has begun as gonso's worker and the main side has not claimed its end. */
export const begun = (control: Int32Array): boolean => {
  const now = Atomics.load(control, LIFE_WORD)
  return now === LIBRARY || now === OUTSIDE
}

/**
 * The main side gives up on a starting thread that has not begun as gonso's worker: true if it
 * had not (it may be terminated, and reports nothing of its own); false if it has, and is to be
 * let report ready (with the fds it holds) before it is stopped.
 */
export const refuse = (control: Int32Array): boolean => Atomics.compareExchange(control, LIFE_WORD, NOT_BEGUN, ENDING) === NOT_BEGUN

/**
 * The main side claims the thread's end: true if it may now be terminated (it had not begun, was
 * outside gonso's code, or was claimed already); false while gonso's code runs on it.
 */
export const claimEnd = (control: Int32Array): boolean => {
  for (;;) {
    const now = Atomics.load(control, LIFE_WORD)
    if (now === ENDING) return true
    if (now === LIBRARY) return false
    if (Atomics.compareExchange(control, LIFE_WORD, now, ENDING) === now) return true
  }
}

/**
 * Resolves once the thread is out of gonso's code (or `timeoutMs` has passed), without blocking
 * the event loop.
 */
export const awaitOutside = (control: Int32Array, timeoutMs: number): Promise<unknown> => {
  const waited = Atomics.waitAsync(control, LIFE_WORD, LIBRARY, timeoutMs)
  return waited.async ? waited.value : Promise.resolve()
}
