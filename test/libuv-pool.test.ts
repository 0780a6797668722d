import { spawnSync } from "node:child_process"
import { describe, expect, it } from "vitest"

describe("libuv's thread pool", () => {
  it("is started by the layer in the host namespaces, so async fs never sees a set's mounts", () => {
    const script = new URL("./fixtures/libuv-pool.ts", import.meta.url).pathname
    const child = spawnSync(process.execPath, [script], { encoding: "utf8", timeout: 30_000 })
    expect(child.stderr).toBe("")
    const result = JSON.parse(child.stdout)
    // The layer started the pool (in this fresh process) before any namespace work.
    expect(result.before).toBeGreaterThan(0)
    expect(result.poolInHost.length).toBeGreaterThan(0)
    expect(result.poolInHost.every(Boolean)).toBe(true)
    // The main thread's async fs sees the host's (empty) directory, not the tmpfs mounted inside;
    // so does a module task's async fs (the documented hazard: it runs on the pool, outside).
    expect(result.fromMain).toEqual([])
    expect(result.fromTask).toEqual([])
  })
})
