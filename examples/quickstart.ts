/**
 * Quickstart: make a set with new net and uts namespaces, name its host, and compare what `ip link`
 * and `hostname` print inside and outside. Run with `npm start` (as root).
 */
import { Effect } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"

const sideBySide = (left: string, right: string): string => {
  const a = ["outside (host)", "--------------", ...left.trimEnd().split("\n")]
  const b = ["inside (new net+uts)", "--------------------", ...right.trimEnd().split("\n")]
  const width = Math.max(...a.map((line) => line.length)) + 4
  return Array.from({ length: Math.max(a.length, b.length) }, (_, i) => (a[i] ?? "").padEnd(width) + (b[i] ?? "")).join("\n")
}

const linkNames = (output: string) =>
  output.trim().split("\n").map((line) => line.split(":")[1]?.trim().split("@")[0] ?? line).join("\n")

export const quickstart = Effect.gen(function*() {
  const host = yield* NamespaceSet.current(["net", "uts"])
  const isolated = yield* NamespaceSet.unshare(host, ["net", "uts"])
  yield* NamespaceSet.run(isolated, Task.setHostname("gonso-box"))
  const inside = yield* NamespaceSet.run(isolated, Task.exec("sh", ["-c", "hostname; ip -o link"]))
  const outside = yield* NamespaceSet.run(host, Task.exec("sh", ["-c", "hostname; ip -o link"]))
  const [insideName = "", ...insideLinks] = inside.stdout.trim().split("\n")
  const [outsideName = "", ...outsideLinks] = outside.stdout.trim().split("\n")
  console.log(sideBySide(
    `hostname: ${outsideName}\nnet: ${yield* NamespaceSet.id(host, "net")}\nlinks:\n${linkNames(outsideLinks.join("\n"))}`,
    `hostname: ${insideName}\nnet: ${yield* NamespaceSet.id(isolated, "net")}\nlinks:\n${linkNames(insideLinks.join("\n"))}`
  ))
}).pipe(Effect.scoped)

const main = quickstart.pipe(
  Effect.provide(PinnedThreads.layer()),
  Effect.catchTag("PermissionDenied", (error) =>
    Effect.sync(() => {
      // The message says what is missing: root or CAP_SYS_ADMIN, or what refused a privileged process.
      console.error(`gonso quickstart: ${error.message}`)
      process.exitCode = 1
    }))
)

if (import.meta.main) {
  Effect.runPromise(main).catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}
