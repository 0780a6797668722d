/**
 * What owns what: the user namespace that owns each namespace of a set, the parent of a pid
 * namespace, and who created a user namespace. Compare with `lsns`. Run with
 * `node examples/introspect.ts` as root.
 */
import { Effect } from "effect"
import { NamespaceSet, PinnedThreads } from "../src/index.ts"

const program = Effect.gen(function*() {
  const set = yield* NamespaceSet.unshareCurrent(["user", "pid", "net"], { uidMap: [{ containerId: 0, hostId: 0, size: 1 }] })
  for (const kind of NamespaceSet.kinds(set)) {
    const owner = yield* NamespaceSet.owner(set, kind)
    console.log(`${yield* NamespaceSet.id(set, kind)} is owned by ${yield* NamespaceSet.id(owner, "user")}`)
  }
  const parent = yield* NamespaceSet.parent(set, "pid")
  console.log(`the new pid namespace's parent is ${yield* NamespaceSet.id(parent, "pid")}`)
  console.log(`the new user namespace was created by uid ${yield* NamespaceSet.ownerUid(set)}`)
})

Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(PinnedThreads.layer())))
