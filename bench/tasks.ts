/**
 * Module tasks for `bench/core.ts`, run on pinned threads with `Task.module`.
 */
import { setTimeout as sleep } from "node:timers/promises"

/**
 * A long task: notes when it started (epoch milliseconds, comparable across threads), waits `ms`
 * on an asynchronous timer that it awaits (so nothing is left running), and returns the start.
 */
export const sleepy = async (ms: number): Promise<number> => {
  const started = performance.timeOrigin + performance.now()
  await sleep(ms)
  return started
}
