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

/** Returns at once: the least a module task costs. */
export const nothing = (): undefined => undefined

/**
 * What the thread's check of its namespaces costs (src/internal/worker/state.ts `checkPlace`):
 * `runs` times one `fstatat` per namespace kind relative to the thread's own ns directory, as the
 * check does it, through the thread's own bindings. Returns microseconds per check.
 */
export const placeCheckCost = async (runs: number): Promise<number> => {
  const libc = await import("../src/internal/libc.ts")
  const dir = libc.open("/proc/thread-self/ns", libc.O_PATH | libc.O_DIRECTORY)
  try {
    const files = ["cgroup", "ipc", "mnt", "net", "pid_for_children", "time_for_children", "user", "uts"]
    const start = performance.now()
    for (let i = 0; i < runs; i++) for (const file of files) libc.identityAt(dir, file)
    return ((performance.now() - start) * 1_000) / runs
  } finally {
    libc.close(dir)
  }
}
