import * as fs from "node:fs"
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import { PinnedThreads } from "../src/index.ts"
import { twoHosts } from "../examples/two-hosts.ts"
import { eventually, onHost, openFdCount, threadCount, withThreads } from "./helpers.ts"

withThreads({ min: 1, max: 2 })("two hosts joined by veth", (it) => {
  describe("end to end", () => {
    it.effect("an Effect HTTP server in one namespace answers an Effect client in another, and nothing is left after", () =>
      Effect.gen(function*() {
        // A first run lets the pool of pinned threads grow to what this needs; the second is measured.
        yield* twoHosts
        const hostLinks = onHost("ip", ["-o", "link"])
        const hostAddresses = onHost("ip", ["-o", "addr"])
        const fds = openFdCount()
        const threads = threadCount()
        const children = () => fs.readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, "utf8").trim()
        const childrenBefore = children()
        const { response, links } = yield* twoHosts
        assert.strictEqual(response, "hello from server, you are 169.254.77.2\n")
        assert.include(links, "169.254.77.2/30")
        // The host never saw the veth pair or the addresses, and keeps no socket of it.
        assert.strictEqual(onHost("ip", ["-o", "link"]), hostLinks)
        assert.strictEqual(onHost("ip", ["-o", "addr"]), hostAddresses)
        assert.notInclude(onHost("ss", ["-ltnH"]), ":8080 ")
        yield* Effect.promise(() => eventually(() => openFdCount() === fds && threadCount() === threads))
        assert.deepStrictEqual({ fds: openFdCount(), threads: threadCount() }, { fds, threads })
        assert.strictEqual(children(), childrenBefore)
      }))
  })
})
