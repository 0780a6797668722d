import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import type * as net from "node:net"
import { assert, layer } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import { PinnedThreads } from "../src/index.ts"
import type { NamespaceKind } from "../src/NamespaceKind.ts"

/** The test process's main thread's `/proc` task directory. */
export const mainTask = `/proc/${process.pid}/task/${process.pid}`

/** dev+inode of the main thread's namespace of `kind`, as the kernel reports it. */
export const mainNamespace = (kind: NamespaceKind) => {
  const file = kind === "pid" ? "pid_for_children" : kind === "time" ? "time_for_children" : kind
  const stats = fs.statSync(`${mainTask}/ns/${file}`)
  return { dev: stats.dev, ino: stats.ino }
}

/** What `readlink` prints for the main thread's namespace of `kind`. */
export const mainId = (kind: NamespaceKind) => execFileSync("readlink", [`${mainTask}/ns/${kind}`], { encoding: "utf8" }).trim()

/** Runs a command on the host (from the main thread, in the host's namespaces). */
export const onHost = (command: string, args: ReadonlyArray<string> = []) =>
  execFileSync(command, args, { encoding: "utf8" })

export const openFdCount = () => fs.readdirSync("/proc/self/fd").length
/**
 * The process's open fds that refer to a namespace of `kind` other than the main thread's, as
 * `readlink` prints them (one entry per fd): what sets made by a test still hold.
 */
export const foreignNamespaceFds = (kind: NamespaceKind) => {
  const main = fs.readlinkSync(`${mainTask}/ns/${kind}`)
  return fs.readdirSync("/proc/self/fd").flatMap((fd) => {
    try {
      const link = fs.readlinkSync(`/proc/self/fd/${fd}`)
      return link.startsWith(`${kind}:[`) && link !== main ? [link] : []
    } catch {
      return [] // the fd readdir itself used, already closed
    }
  }).sort()
}
export const threadCount = () => fs.readdirSync("/proc/self/task").length
export const threadExists = (tid: number) => fs.existsSync(`/proc/self/task/${tid}`)

/** The pids of this process's children, whichever of its threads started them. */
export const allChildren = () =>
  fs.readdirSync("/proc/self/task").flatMap((tid) => {
    try {
      return fs.readFileSync(`/proc/self/task/${tid}/children`, "utf8").trim().split(/\s+/).filter(Boolean)
    } catch {
      return [] // the thread has exited since it was listed
    }
  }).sort()

/** Waits (really) until `check` holds, or gives up after `ms`. */
export const eventually = async (check: () => boolean, ms = 5_000) => {
  const deadline = Date.now() + ms
  while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  return check()
}

export const fixtures = new URL("./fixtures/tasks.ts", import.meta.url)

/** Everything a socket receives until its peer ends the connection, as text. */
export const readToEnd = (socket: net.Socket): Effect.Effect<string> =>
  Effect.callback<string>((resume) => {
    let text = ""
    socket.on("data", (chunk) => (text += chunk))
    socket.on("end", () => resume(Effect.succeed(text)))
  })

/**
 * Waits until the layer in context holds `threads` idle threads and nothing busy (a dropped thread
 * is replaced in the background), or dies after five seconds.
 */
export const idleAgain = (threads = 1) =>
  Effect.gen(function*() {
    for (let i = 0; i < 250; i++) {
      const stats = yield* PinnedThreads.stats
      if (stats.idle === threads && stats.busy === 0) return stats
      yield* Effect.sleep("20 millis")
    }
    return yield* Effect.die(new Error("the pool did not settle"))
  })

/**
 * The tests of `name`, run by `f` with the layer built once for them all, on the real clock (no
 * TestClock: the threads and the kernel keep real time).
 */
export const inLayer = <ROut, E>(built: Layer.Layer<ROut, E>) => layer(built, { excludeTestServices: true })

/** {@link inLayer} with a `PinnedThreads` layer of `options`. */
export const withThreads = (options: PinnedThreads.Options) => inLayer(PinnedThreads.layer(options))

/** The failure of `effect`: InvalidOptions for `operation`, its reason naming `field`. */
export const assertInvalid = <A, E, R>(effect: Effect.Effect<A, E, R>, operation: string, field: string) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(effect)
    assert.isTrue(exit._tag === "Failure", `${operation} ${field}: succeeded`)
    if (exit._tag !== "Failure") return
    const error = exit.cause.reasons.map((reason) => "error" in reason ? reason.error : "defect" in reason ? reason.defect : reason)[0] as {
      _tag?: string
      operation?: string
      reason?: string
    }
    assert.deepStrictEqual({ tag: error?._tag, operation: error?.operation }, { tag: "InvalidOptions", operation }, `${field}: ${String(error)}`)
    assert.include(error.reason, field)
  })
