import { describe, expect, it } from "vitest"

describe("environment", () => {
  it("runs on Node >= 22.19 (the npm-installed Node, not an old system one)", () => {
    const [major, minor] = process.versions.node.split(".").map(Number) as [number, number]
    expect(major > 22 || (major === 22 && minor >= 19), `Node ${process.versions.node}`).toBe(true)
  })

  it("runs as root on Linux, so the namespace tests really run", () => {
    expect(process.platform).toBe("linux")
    expect(process.getuid?.(), "the suite needs root: run it with sudo or in CI as root").toBe(0)
  })
})
