/**
 * Names a new network namespace for iproute2: `ip netns list` shows it and `ip netns exec` runs
 * inside it, until the Scope closes and the name is removed. Run with `node examples/persist-netns.ts`
 * as root.
 */
import { execFileSync } from "node:child_process"
import { Effect } from "effect"
import { NamespaceSet, PinnedThreads } from "../src/index.ts"

const program = Effect.gen(function*() {
  const set = yield* NamespaceSet.unshareCurrent(["net"])
  const name = `gonso-example-${process.pid}`
  yield* NamespaceSet.persistNetns(set, name)
  console.log("ip netns list:", execFileSync("ip", ["netns", "list"], { encoding: "utf8" }).trim())
  console.log(execFileSync("ip", ["netns", "exec", name, "ip", "-brief", "link"], { encoding: "utf8" }).trimEnd())
  const again = yield* NamespaceSet.fromNetnsName(name)
  console.log("same namespace by name:", yield* NamespaceSet.equals(again, set))
})

Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(PinnedThreads.layer())))
