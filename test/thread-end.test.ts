/**
 * How a pinned thread ends: never inside gonso's own code (see src/internal/life.ts). Terminating
 * a Worker during a koffi call aborts the whole process, and a thread ended halfway through an
 * operation leaves what it was making (a clone()d child, an fd) without an owner.
 *
 * Each case runs in a process of its own, which an abort would end (SIGABRT) without a report.
 */
import { spawnSync } from "node:child_process"
import { assert, describe, it } from "@effect/vitest"

const run = (fixture: string, args: ReadonlyArray<string>) => {
  const child = spawnSync(process.execPath, [new URL(`./fixtures/${fixture}`, import.meta.url).pathname, ...args], {
    encoding: "utf8",
    timeout: 120_000,
    maxBuffer: 64 * 1024 * 1024
  })
  const report = child.stdout.split("\n").reverse().find((line) => line.startsWith("{"))
  return { status: child.status, signal: child.signal, fatal: /FATAL ERROR/.test(child.stderr + child.stdout), report: report === undefined ? undefined : JSON.parse(report) }
}

describe("a pinned thread's end", () => {
  it("module tasks that settle as their interrupted callers' threads are terminated never abort the process", { timeout: 120_000 }, () => {
    const result = run("interrupt-at-settle.ts", ["400"])
    assert.deepStrictEqual({ status: result.status, signal: result.signal, fatal: result.fatal }, { status: 0, signal: null, fatal: false })
    // The race was run: most callers were interrupted; threads whose task settled in time were
    // drained and kept, the others terminated as their task settled, and replaced.
    assert.isAbove(result.report.interrupted, 250)
    assert.isAbove(result.report.stats.droppedByReason.interrupted ?? 0, 20)
  })

  it("sets with inits and user namespaces made under interrupts, exiting and moved threads, and closing layers leave no child and no zombie", { timeout: 120_000 }, () => {
    const result = run("children-under-faults.ts", ["8"])
    assert.strictEqual(result.status, 0)
    assert.deepStrictEqual(result.report.left, [])
  })
})
