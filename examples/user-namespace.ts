/**
 * A user namespace with its own root: uid 0 inside is uid 100000 outside, and the net and uts
 * namespaces made with it are owned by it. Run with `node examples/user-namespace.ts` as root.
 */
import { Effect } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"

const program = Effect.gen(function*() {
  const rootless = yield* NamespaceSet.unshareCurrent(["user", "net", "uts"], {
    uidMap: [{ containerId: 0, hostId: 100_000, size: 65_536 }],
    gidMap: [{ containerId: 0, hostId: 100_000, size: 65_536 }]
  })
  // A thread of a multithreaded process cannot join a user namespace; exec starts its command
  // through nsenter, which can.
  const inside = yield* NamespaceSet.run(rootless, Task.exec("sh", ["-c", "id; cat /proc/self/uid_map; grep CapEff /proc/self/status"]))
  console.log(inside.stdout.trimEnd())
  const owner = yield* NamespaceSet.owner(rootless, "net")
  console.log(`net namespace owned by ${yield* NamespaceSet.id(owner, "user")} (the new one: ${yield* NamespaceSet.id(rootless, "user")})`)
})

Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(PinnedThreads.layer())))
