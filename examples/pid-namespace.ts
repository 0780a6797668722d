/**
 * A pid namespace with its own /proc: `ps` inside sees only its own processes. The set owns the
 * namespace's init and kills it when its Scope closes. Run with `node examples/pid-namespace.ts`
 * as root.
 */
import { Effect } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"

const program = Effect.gen(function*() {
  // A new mount namespace too (private by default), so that mounting /proc stays inside.
  const box = yield* NamespaceSet.unshareCurrent(["pid", "mnt"])
  const ps = yield* NamespaceSet.run(box, Task.exec("sh", ["-c", "mount -t proc proc /proc && echo \"I am pid $$\" && ps -e -o pid,comm"]))
  console.log(ps.stdout.trimEnd())
})

Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(PinnedThreads.layer())))
