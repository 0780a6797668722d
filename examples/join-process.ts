/**
 * Joins the namespaces of a running process (here, one started inside a fresh net+uts set) with one
 * atomic setns through a pidfd. Run with `node examples/join-process.ts` as root.
 */
import { Effect } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"

const program = Effect.gen(function*() {
  const box = yield* NamespaceSet.unshareCurrent(["net", "uts"])
  yield* NamespaceSet.run(box, Task.setHostname("far-away"))
  const started = yield* NamespaceSet.run(box, Task.exec("sh", ["-c", "sleep 30 >/dev/null 2>&1 & echo $!"]))
  const pid = Number(started.stdout.trim())
  yield* Effect.addFinalizer(() => Effect.sync(() => process.kill(pid, "SIGKILL")))
  const theirs = yield* NamespaceSet.fromPid(pid, ["net", "uts"])
  console.log(`process ${pid} is on host`, yield* NamespaceSet.run(theirs, Task.hostname))
})

Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(PinnedThreads.layer())))
