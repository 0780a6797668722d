import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { describe, expect, it } from "vitest"

const examples = new URL("../examples/", import.meta.url)

/** What each example must print (beyond exiting 0): the behaviour it demonstrates. */
const expected: Record<string, RegExp> = {
  "quickstart.ts": /hostname: gonso-box/,
  "user-namespace.ts": /uid=0\(root\)[\s\S]*0\s+100000\s+65536/,
  "pid-namespace.ts": /I am pid [0-9]\b/,
  "persist-netns.ts": /same namespace by name: true/,
  "join-process.ts": /is on host far-away/,
  "introspect.ts": /the new user namespace was created by uid 0/,
  "observability.ts": /span NamespaceSet\.run \d+µs .*"gonso\.task":"setHostname"[\s\S]*metric gonso_pinned_threads_dropped_total \{"reason":"no-restore"\} \{"count":1/,
  "pool.ts": /test 3 in net:\[\d+\]: lo UNKNOWN 127\.0\.0\.1\/8/,
  "time-namespace.ts": /uptime inside: /,
  "two-hosts.ts": /from the client's namespace: hello from server, you are 169\.254\.77\.2/
}

describe("examples", () => {
  it("every example is listed here", () => {
    expect(fs.readdirSync(examples).filter((file) => file.endsWith(".ts")).sort()).toEqual(Object.keys(expected).sort())
  })

  for (const [file, output] of Object.entries(expected)) {
    it(`${file} runs and shows what it is about`, () => {
      const result = spawnSync(process.execPath, [new URL(file, examples).pathname], { encoding: "utf8", timeout: 30_000 })
      expect(result.stderr).toBe("")
      expect(result.status).toBe(0)
      expect(result.stdout).toMatch(output)
    })
  }
})
