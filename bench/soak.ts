/**
 * `npm run soak`: gonso under mixed load with injected faults, against the real kernel, and an
 * account of everything it held. See docs/reliability.md.
 *
 *   node bench/soak.ts [--seconds N] [--fibers N] [--seed N]     (or GONSO_SOAK_SECONDS, ...)
 *
 * For the given time (default 120 s) at least 64 fibers each run a random operation after
 * another (every public operation, plus module tasks that break the rules on purpose), some of
 * them interrupted at a random point; a fault fiber lowers the fd limit and restores it, and
 * closes and rebuilds the PinnedThreads layer. Invariants are checked continuously; at the end,
 * after the layer has closed, fds, threads, children, zombies, /run/netns names, mounts, veth
 * links and network namespaces held must all be back at the baseline, and the RSS slope after
 * warm-up must be flat. Exits 1 on any broken invariant, defect or leak.
 *
 * It runs as root, in a private mount namespace of its own (it re-executes itself under
 * `unshare --mount --propagation private`), so that no mount it makes can reach the host.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import { Cause, Context, Effect, Exit, Fiber, Layer, Option, Scope } from "effect"
import { HttpClient, HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
// First: the outer run re-executes this one in a private mount namespace, and ends there.
import { FIBERS, PREFIX, SECONDS, SEED } from "./soak/options.ts"
import {
  NamespacedHttpClient,
  NamespacedHttpServer,
  NamespacedSocket,
  NamespacePool,
  NamespaceSet,
  Network,
  PinnedThreads,
  Task
} from "../src/index.ts"
import type { NamespaceKind } from "../src/NamespaceKind.ts"
import { all as allKinds } from "../src/internal/kind.ts"
import {
  comm,
  fdLinks,
  heldNetNamespaces,
  host,
  hostThread,
  hostVeths,
  mountLines,
  netnsNames,
  nsFiles,
  ownChildren,
  PID,
  slabNetNamespaces,
  threadNs,
  tids
} from "./soak/census.ts"
import { getNofile, setNofile } from "./soak/fdlimit.ts"
import { pickOne, random, randomInt } from "./soak/random.ts"

// ---------------------------------------------------------------------------------------------
// The account
// ---------------------------------------------------------------------------------------------

interface OpCount { ok: number; failed: number; interrupted: number }
const ops = new Map<string, OpCount>()
const faults = new Map<string, number>()
const errors = new Map<string, Map<string, number>>()
/** Defects, grouped by operation and kind, with the first cause of each. */
const defectGroups = new Map<string, { count: number; example: string }>()
const defects = {
  get length() {
    return [...defectGroups.values()].reduce((a, b) => a + b.count, 0)
  },
  push(key: string, example = "") {
    const group = defectGroups.get(key) ?? { count: 0, example }
    group.count++
    defectGroups.set(key, group)
  }
}
/** A few messages of each error tag, to say why. */
const errorSamples = new Map<string, Set<string>>()
/** Errors a fault is expected to cause, counted as success of the operation. */
const expectedErrors = new Map<string, number>()
let violationCount = 0
const violationKinds = new Map<string, number>()
let checks = { identity: 0, threadScans: 0, kernelViews: 0 }
let totalOps = 0

const bump = <K>(map: Map<K, number>, key: K, by = 1) => map.set(key, (map.get(key) ?? 0) + by)
/** What happened last (operations ended, faults injected), for an fd found later without an owner. */
const lately: Array<string> = []
const soakStart = Date.now()
const happened = (what: string) => {
  lately.push(`${((Date.now() - soakStart) / 1_000).toFixed(2)} s ${what}`)
  if (lately.length > 40) lately.shift()
}
const fault = (kind: string) => {
  happened(`fault: ${kind}`)
  bump(faults, kind)
}
const violationExamples = new Map<string, Array<string>>()
const violation = (kind: string, detail: string) => {
  bump(violationKinds, kind)
  const examples = violationExamples.get(kind) ?? []
  violationExamples.set(kind, examples)
  if (examples.length < 3) examples.push(detail)
  violationCount++
}

// Threads that were compromised (their task unshared, exited, hung, or asked not to restore),
// with the sequence number at which their task ended: an answer from one of them to a request
// made later means a thread that should have been dropped served again.
let sequence = 0
/** Threads compromised on purpose: by tid, when (the sequence number, and the wall-clock time). */
const compromised = new Map<number, { readonly sequence: number; readonly at: number }>()
const compromise = (tid: number | undefined) => {
  if (tid !== undefined && Number.isSafeInteger(tid) && tid > 0) compromised.set(tid, { sequence: ++sequence, at: Date.now() })
}
/** The boot time, in milliseconds since the epoch (`btime` of /proc/stat). */
const bootMs = Number(/^btime (\d+)$/m.exec(fs.readFileSync("/proc/stat", "utf8"))?.[1]) * 1_000
/**
 * When thread `tid` of this process started, in milliseconds since the epoch (field 22 of its
 * stat, in clock ticks of 10 ms since boot); undefined once it is gone. Tids are reused once the
 * kernel's pid numbers wrap (`pid_max` is 32,768 here: a few minutes of this soak), so a thread
 * with a compromised tid that started after the compromise is another thread.
 */
const threadStartMs = (tid: number): number | undefined => {
  try {
    const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, "utf8")
    return bootMs + Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]) * 10
  } catch {
    return undefined
  }
}
/** Answers from a thread whose tid was compromised before, but which started after: tids reused. */
let tidsReused = 0

const scratch = `/dev/shm/${PREFIX}${PID}`
fs.rmSync(scratch, { recursive: true, force: true })
fs.mkdirSync(scratch, { recursive: true })
let counter = 0
const marker = () => `${scratch}/marker-${++counter}`
const readMarker = (path: string): number | undefined => {
  try {
    const tid = Number(fs.readFileSync(path, "utf8").trim())
    fs.rmSync(path, { force: true })
    return tid
  } catch {
    return undefined
  }
}

// ---------------------------------------------------------------------------------------------
// Invariants
// ---------------------------------------------------------------------------------------------

/** The namespaces a task running in `set` must report, kind by kind (time is never joined). */
const expectedIn = (set: NamespaceSet.NamespaceSet) =>
  Effect.gen(function*() {
    const expected: Partial<Record<NamespaceKind, string>> = {}
    for (const kind of allKinds) {
      if (kind === "time") continue
      if (kind !== "user" && NamespaceSet.kinds(set).includes(kind)) {
        const id = yield* NamespaceSet.identity(set, kind)
        expected[kind] = `${id.dev}:${id.ino}`
      } else {
        expected[kind] = host[kind]
      }
    }
    return expected
  })

/** Checks a task's report of where it ran against its set, and that its thread was not one that should be gone. */
const checkReport = (op: string, set: NamespaceSet.NamespaceSet, startedAt: number, report: { tid: number; ns: Record<string, string> }) =>
  Effect.gen(function*() {
    checks.identity++
    const expected = yield* expectedIn(set)
    for (const [kind, want] of Object.entries(expected)) {
      if (report.ns[kind] !== want) violation("task outside its set", `${op}: tid ${report.tid} ${kind} ${report.ns[kind]}, set ${want}`)
    }
    const gone = compromised.get(report.tid)
    if (gone !== undefined && gone.sequence < startedAt) {
      const born = threadStartMs(report.tid)
      // Started a second past the compromise (btime has a resolution of a second), or gone by now
      // (a thread dropped at once, restore: false say) and compromised long ago: pid numbers wrap
      // after minutes here, while a compromised thread kept in service would serve within seconds.
      const reused = born !== undefined ? born > gone.at + 1_000 : Date.now() - gone.at > 60_000
      if (reused) tidsReused++
      else violation("compromised thread reused", `${op}: tid ${report.tid}${born === undefined ? " (gone since)" : ""}`)
    }
  })

const fromIdentity = (ids: Task.ThreadIdentity) => ({
  tid: ids.tid,
  ns: Object.fromEntries(Object.entries(ids.namespaces).map(([kind, id]) => [kind, `${id.dev}:${id.ino}`]))
})

/** The main thread and libuv's pool threads must be in the host namespaces, always. */
let libuvSeen = 0
const scanThreads = () => {
  checks.threadScans++
  let libuv = 0
  for (const tid of tids()) {
    const name = tid === String(PID) ? "main" : comm(tid) === "libuv-worker" ? "libuv-worker" : undefined
    if (name === undefined) continue
    if (name === "libuv-worker") libuvSeen = Math.max(libuvSeen, ++libuv)
    let now: Record<string, string>
    try {
      now = threadNs(tid)
    } catch {
      continue
    }
    for (const file of nsFiles) {
      if (now[file] !== hostThread[file]) violation(`${name} thread moved`, `tid ${tid} ${file} ${now[file]}, host ${hostThread[file]}`)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// A generation: one PinnedThreads layer and what is shared while it lives
// ---------------------------------------------------------------------------------------------

const tasksUrl = new URL("./soak-tasks.ts", import.meta.url)
const moduleTask = <O>(name: string, input: unknown = undefined) => Task.module<unknown, O>(tasksUrl, name, input)

interface Shared {
  readonly set: NamespaceSet.NamespaceSet
  readonly hostname: string | undefined
}

interface Generation {
  readonly id: number
  readonly scope: Scope.Closeable
  readonly context: Context.Context<PinnedThreads.PinnedThreads>
  /** The process's own namespaces, and sets of new ones (lo up, own hostnames). */
  readonly shared: ReadonlyArray<Shared>
  /** A set with a mount namespace of its own (private), to mount in. */
  readonly mnt: NamespaceSet.NamespaceSet
  readonly pool: NamespacePool.NamespacePool
  readonly http: { readonly set: NamespaceSet.NamespaceSet; readonly port: number }
}

const makeGeneration = (id: number) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const built = yield* Effect.exit(Effect.gen(function*() {
      const context = yield* Layer.buildWithScope(PinnedThreads.layer({ min: 1, max: 8, idleTimeToLive: "2 seconds" }), scope)
      return yield* Effect.gen(function*() {
        const shared: Array<Shared> = [{ set: yield* NamespaceSet.current(["cgroup", "ipc", "mnt", "net", "pid", "uts"]), hostname: undefined }]
        for (const [i, kinds] of ([["net", "uts"], ["net", "uts", "ipc"], ["net", "uts", "ipc", "cgroup"], ["uts", "mnt", "net"]] as const).entries()) {
          const set = yield* NamespaceSet.unshareCurrent([...kinds], kinds.includes("net") ? { loopback: "up" } : {})
          const hostname = `soak-${id}-${i}`
          yield* NamespaceSet.run(set, Task.setHostname(hostname))
          shared.push({ set, hostname })
        }
        const mnt = yield* NamespaceSet.unshareCurrent(["mnt"])
        const pool = yield* NamespacePool.make({ kinds: ["net", "uts"], size: 4, unshare: { loopback: "up" }, afterCreate: Task.setHostname("pooled") })
        const httpSet = yield* NamespaceSet.unshareCurrent(["net", "uts"], { loopback: "up" })
        yield* NamespaceSet.run(httpSet, Task.setHostname(`soak-http-${id}`))
        const app = HttpRouter.add("GET", "/", Effect.map(
          Effect.provide(NamespaceSet.run(httpSet, Task.hostname), context),
          (name) => HttpServerResponse.text(`hello from ${name}`)
        ).pipe(Effect.catch(() => Effect.succeed(HttpServerResponse.text("no hostname", { status: 503 })))))
        const services = yield* Layer.buildWithScope(
          HttpRouter.serve(app, { disableLogger: true, disableListenLog: true }).pipe(
            Layer.provideMerge(NamespacedHttpServer.layer(httpSet, { host: "127.0.0.1", port: 0 }))
          ),
          scope
        )
        const port = (Context.get(services, HttpServer.HttpServer).address as { port: number }).port
        return { id, scope, context, shared, mnt, pool, http: { set: httpSet, port } } satisfies Generation
      }).pipe(Scope.provide(scope), Effect.provide(context))
    }))
    if (Exit.isFailure(built)) {
      yield* Scope.close(scope, Exit.void)
      return yield* Effect.failCause(built.cause)
    }
    return built.value
  })

// ---------------------------------------------------------------------------------------------
// The mix
// ---------------------------------------------------------------------------------------------

type Op = (gen: Generation, startedAt: number) => Effect.Effect<unknown, unknown, PinnedThreads.PinnedThreads | Scope.Scope>

const anyShared = (gen: Generation) => pickOne(gen.shared)
const newOwn = (gen: Generation) => pickOne(gen.shared.slice(1))

/** Runs `f` with an fd-limited process in mind: what it opens, it closes, even when failing. */
const unshareKinds: ReadonlyArray<{ name: string; kinds: ReadonlyArray<NamespaceKind>; options?: NamespaceSet.UnshareOptions }> = [
  { name: "net", kinds: ["net"], options: { loopback: "up" } },
  { name: "uts", kinds: ["uts"] },
  { name: "ipc", kinds: ["ipc"] },
  { name: "mnt", kinds: ["mnt"] },
  { name: "cgroup", kinds: ["cgroup"] },
  { name: "time", kinds: ["time"] },
  { name: "time+offsets", kinds: ["time"], options: { timeOffsets: { monotonic: 3600, boottime: 86_400 } } },
  { name: "user+maps", kinds: ["user", "net", "uts"], options: { uidMap: [{ containerId: 0, hostId: 100_000, size: 65_536 }], gidMap: [{ containerId: 0, hostId: 100_000, size: 65_536 }] } },
  { name: "pid", kinds: ["pid", "mnt"] },
  { name: "all-but-user", kinds: ["cgroup", "ipc", "mnt", "net", "uts"] }
]

const vethPrefix = `sk${PID}`

const mix: Record<string, { weight: number; op: Op }> = {
  "run.identify": {
    weight: 12,
    op: (gen, startedAt) => Effect.gen(function*() {
      const { set } = anyShared(gen)
      yield* checkReport("run.identify", set, startedAt, fromIdentity(yield* NamespaceSet.run(set, Task.identify)))
    })
  },
  "run.tid": { weight: 4, op: (gen) => NamespaceSet.run(anyShared(gen).set, Task.tid) },
  "run.hostname": {
    weight: 3,
    op: (gen) => Effect.gen(function*() {
      const { set, hostname } = newOwn(gen)
      const got = yield* NamespaceSet.run(set, Task.hostname)
      if (got !== hostname) violation("task outside its set", `run.hostname: ${got}, set's ${hostname}`)
    })
  },
  "run.setHostname": {
    weight: 1,
    op: () => Effect.gen(function*() {
      const set = yield* NamespaceSet.unshareCurrent(["uts"])
      const name = `soak-${randomInt(0, 1e6)}`
      yield* NamespaceSet.run(set, Task.setHostname(name))
      const got = yield* NamespaceSet.run(set, Task.hostname)
      if (got !== name) violation("task outside its set", `run.setHostname: ${got}, set ${name}`)
    })
  },
  "run.writeRead": {
    weight: 3,
    op: (gen) => Effect.gen(function*() {
      const { set } = anyShared(gen)
      const path = `${scratch}/file-${++counter}`
      const text = `soak ${counter}`
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(path, { force: true })))
      yield* NamespaceSet.run(set, Task.writeFile(path, text))
      const back = yield* NamespaceSet.run(set, Task.readFile(path))
      if (back !== text) violation("wrong answer", `run.writeRead: ${JSON.stringify(back)}`)
    })
  },
  "run.exec": {
    weight: 3,
    op: (gen) => Effect.gen(function*() {
      const { set } = anyShared(gen)
      const result = yield* NamespaceSet.run(set, Task.exec("readlink", ["/proc/self/ns/net", "/proc/self/ns/uts"]))
      checks.kernelViews++
      const [netLink, utsLink] = result.stdout.trim().split("\n")
      if (netLink !== (yield* NamespaceSet.id(set, "net")) || utsLink !== (yield* NamespaceSet.id(set, "uts"))) {
        violation("child outside its set", `run.exec: ${result.stdout.trim().replace("\n", " ")} (exit ${result.exitCode})`)
      }
    })
  },
  "run.module": {
    weight: 3,
    op: (gen, startedAt) => Effect.gen(function*() {
      const { set } = anyShared(gen)
      const report = yield* NamespaceSet.run(set, moduleTask<{ tid: number; ns: Record<string, string> }>(random() < 0.5 ? "whereAmI" : "whereAmIAsync"))
      yield* checkReport("run.module", set, startedAt, report)
    })
  },
  "run.noRestore": {
    weight: 1,
    op: (gen, startedAt) => Effect.gen(function*() {
      const { set } = anyShared(gen)
      const ids = yield* NamespaceSet.run(set, Task.identify, { restore: false })
      yield* checkReport("run.noRestore", set, startedAt, fromIdentity(ids))
      compromise(ids.tid)
    })
  },
  "enter": {
    weight: 2,
    op: (gen, startedAt) => Effect.gen(function*() {
      const { set, hostname } = newOwn(gen)
      const inside = yield* NamespaceSet.enter(set)
      for (let i = 0; i < 3; i++) {
        const ids = yield* inside.run(Task.identify)
        if (ids.tid !== inside.tid) violation("wrong answer", `enter: served by ${ids.tid}, leased ${inside.tid}`)
        yield* checkReport("enter", set, startedAt, fromIdentity(ids))
      }
      if (random() < 0.3) {
        const result = yield* inside.run(Task.exec("hostname"))
        checks.kernelViews++
        if (result.stdout.trim() !== hostname) violation("child outside its set", `enter exec hostname: ${result.stdout.trim()}, set ${hostname}`)
      }
    })
  },
  "unshare": {
    weight: 4,
    op: (_gen, startedAt) => Effect.gen(function*() {
      const plan = pickOne(unshareKinds)
      const set = yield* NamespaceSet.unshareCurrent(plan.kinds, plan.options)
      if (plan.name === "user+maps") {
        const maps = yield* NamespaceSet.run(set, Task.exec("cat", ["/proc/self/uid_map"]))
        checks.kernelViews++
        if (!/^\s*0\s+100000\s+65536\s*$/.test(maps.stdout.trim())) violation("wrong answer", `user uid_map: ${maps.stdout.trim()}`)
        const owner = yield* NamespaceSet.owner(set, "net")
        if (!(yield* NamespaceSet.equals(owner, yield* NamespaceSet.dup(set, ["user"])))) violation("wrong answer", "user: net not owned by the new user namespace")
        const enterable = yield* NamespaceSet.dup(set, ["net", "uts"])
        yield* checkReport("unshare user (dup)", enterable, startedAt, fromIdentity(yield* NamespaceSet.run(enterable, Task.identify)))
      } else if (plan.name === "time+offsets") {
        const uptime = yield* NamespaceSet.run(set, Task.exec("cat", ["/proc/uptime"]))
        checks.kernelViews++
        if (!(Number(uptime.stdout.split(" ")[0]) >= 86_400)) violation("wrong answer", `time offsets: uptime ${uptime.stdout.trim()}`)
      } else if (plan.name === "pid") {
        const inside = yield* NamespaceSet.run(set, Task.exec("sh", ["-c", "echo $$"]))
        checks.kernelViews++
        if (!(Number(inside.stdout.trim()) >= 2 && Number(inside.stdout.trim()) < 1000)) violation("child outside its set", `pid: sh is ${inside.stdout.trim()}`)
        yield* checkReport("unshare pid", set, startedAt, fromIdentity(yield* NamespaceSet.run(set, Task.identify)))
      } else {
        yield* checkReport(`unshare ${plan.name}`, set, startedAt, fromIdentity(yield* NamespaceSet.run(set, Task.identify)))
      }
    })
  },
  "dup": {
    weight: 2,
    op: (gen, startedAt) => Effect.gen(function*() {
      const { set } = anyShared(gen)
      const kinds = NamespaceSet.kinds(set).filter(() => random() < 0.6)
      const copy = yield* NamespaceSet.dup(set, kinds.length === 0 ? undefined : kinds)
      for (const kind of NamespaceSet.kinds(copy)) {
        const [a, b] = [yield* NamespaceSet.identity(copy, kind), yield* NamespaceSet.identity(set, kind)]
        if (a.dev !== b.dev || a.ino !== b.ino) violation("wrong answer", `dup ${kind}: ${a.id} vs ${b.id}`)
      }
      yield* checkReport("dup", copy, startedAt, fromIdentity(yield* NamespaceSet.run(copy, Task.identify)))
    })
  },
  "fromPid": {
    weight: 2,
    op: (gen) => Effect.gen(function*() {
      const { set } = newOwn(gen)
      // A process inside the set, and the set read back from it.
      const child = yield* NamespaceSet.spawn(set, "sleep", ["30"])
      const kinds = NamespaceSet.kinds(set)
      const back = yield* NamespaceSet.fromPid(child.pid, kinds)
      checks.kernelViews++
      if (!(yield* NamespaceSet.equals(back, set))) violation("child outside its set", `fromPid of a spawned child: ${kinds.join(",")}`)
      const self = yield* NamespaceSet.fromPid(PID, ["net", "uts", "ipc"])
      for (const kind of ["net", "uts", "ipc"] as const) {
        const id = yield* NamespaceSet.identity(self, kind)
        if (`${id.dev}:${id.ino}` !== host[kind]) violation("wrong answer", `fromPid(self) ${kind}: ${id.id}`)
      }
    })
  },
  "fromPath": {
    weight: 1,
    op: () => Effect.gen(function*() {
      const set = yield* NamespaceSet.fromPath(`/proc/${PID}/ns`, ["net", "uts", "ipc", "cgroup"])
      for (const kind of NamespaceSet.kinds(set)) {
        const id = yield* NamespaceSet.identity(set, kind)
        if (`${id.dev}:${id.ino}` !== host[kind]) violation("wrong answer", `fromPath ${kind}: ${id.id}`)
      }
    })
  },
  "mount": {
    weight: 1,
    op: (gen) => Effect.gen(function*() {
      // A mount namespace cannot be mounted in itself, nor in one older than it: sets without one.
      const { set } = pickOne(gen.shared.slice(1).filter((shared) => !NamespaceSet.kinds(shared.set).includes("mnt")))
      const dir = `${scratch}/mount-${++counter}`
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          try {
            fs.rmSync(dir, { recursive: true, force: true })
          } catch {
            // Out of fds while the limit is lowered (a fault of the soak's own): the scratch
            // directory is removed whole at the end.
          }
        }))
      if (random() < 0.5) {
        // In this process's own (private) mount namespace: read back from the main thread.
        yield* NamespaceSet.mountScoped(set, dir)
        const back = yield* NamespaceSet.fromPath(dir, NamespaceSet.kinds(set))
        if (!(yield* NamespaceSet.equals(back, set))) violation("wrong answer", `mount: ${dir} does not hold the set`)
      } else {
        // In a mount namespace of the generation's: seen only from a thread inside it.
        yield* NamespaceSet.mountScoped(set, dir, { mountNamespace: gen.mnt })
        const ino = yield* NamespaceSet.run(gen.mnt, moduleTask<number>("inodeAt", `${dir}/net`))
        if (ino !== (yield* NamespaceSet.identity(set, "net")).ino) violation("wrong answer", `mount in a set's mount namespace: inode ${ino}`)
        if (fs.existsSync(`${dir}/net`) && fs.statSync(`${dir}/net`).dev === (yield* NamespaceSet.identity(set, "net")).dev) {
          violation("mount escaped its mount namespace", dir)
        }
      }
    })
  },
  "persistNetns": {
    weight: 1,
    op: (gen) => Effect.gen(function*() {
      const { set } = newOwn(gen)
      const name = `${PREFIX}${PID}-${++counter}`
      yield* NamespaceSet.persistNetns(set, name)
      const back = yield* NamespaceSet.fromNetnsName(name)
      const [a, b] = [yield* NamespaceSet.identity(back, "net"), yield* NamespaceSet.identity(set, "net")]
      if (a.dev !== b.dev || a.ino !== b.ino) violation("wrong answer", `persistNetns ${name}: ${a.id} vs ${b.id}`)
    })
  },
  "spawn.short": {
    weight: 2,
    op: (gen) => Effect.gen(function*() {
      const { set, hostname } = newOwn(gen)
      const child = yield* NamespaceSet.spawn(set, "hostname")
      child.stdin.end()
      const text = yield* Effect.callback<string>((resume) => {
        let out = ""
        child.stdoutReadable.on("data", (chunk: Buffer) => (out += chunk))
        child.stdoutReadable.once("end", () => resume(Effect.succeed(out)))
        child.stdoutReadable.once("error", () => resume(Effect.succeed(out)))
      })
      const status = yield* child.exit
      checks.kernelViews++
      if (status.exitCode !== 0 || text.trim() !== hostname) violation("child outside its set", `spawn hostname: ${text.trim()} exit ${status.exitCode}, set ${hostname}`)
    })
  },
  "spawn.long": {
    weight: 1,
    op: (gen) => Effect.gen(function*() {
      const { set } = anyShared(gen)
      yield* NamespaceSet.spawn(set, "sleep", ["30"])
      yield* Effect.sleep(randomInt(0, 40))
      // The Scope closing kills it.
    })
  },
  "socket.tcp": {
    weight: 2,
    op: (gen) => Effect.gen(function*() {
      const { set } = newOwn(gen)
      const listening = yield* NamespacedSocket.listen(set, { host: "127.0.0.1", port: 0 })
      yield* NamespacedSocket.serve(listening, net.createServer((connection) => {
        // A connection the client resets (an interrupted fiber) errors: the server's to handle.
        connection.on("error", () => connection.destroy())
        connection.end("pong")
      }))
      const socket = yield* NamespacedSocket.connect(set, { host: "127.0.0.1", port: listening.port })
      const reply = yield* Effect.callback<string>((resume) => {
        let text = ""
        socket.on("data", (chunk) => (text += chunk))
        socket.once("end", () => resume(Effect.succeed(text)))
        socket.once("error", () => resume(Effect.succeed(text)))
      })
      // Under the lowered fd limit the server may accept and drop at once (libuv's EMFILE trick):
      // an empty reply is the connection dropped, not a wrong answer.
      if (reply === "") return yield* Effect.fail({ _tag: "ConnectionDropped", message: "empty reply (the server could not keep the connection)" })
      if (reply !== "pong") violation("wrong answer", `socket.tcp: ${JSON.stringify(reply)}`)
    })
  },
  "socket.udp": {
    weight: 1,
    op: (gen) => Effect.gen(function*() {
      const listening = yield* NamespacedSocket.listen(newOwn(gen).set, { type: "udp", host: "127.0.0.1" })
      if (!(listening.port > 0)) violation("wrong answer", `socket.udp port ${listening.port}`)
    })
  },
  "http": {
    weight: 2,
    op: (gen) => Effect.gen(function*() {
      const text = yield* HttpClient.get(`http://127.0.0.1:${gen.http.port}/`).pipe(
        Effect.flatMap((response) => response.text),
        Effect.provide(NamespacedHttpClient.layer(gen.http.set))
      )
      if (text !== `hello from soak-http-${gen.id}` && text !== "no hostname") violation("wrong answer", `http: ${JSON.stringify(text)}`)
    })
  },
  "http.agent": {
    weight: 1,
    op: (gen) => Effect.gen(function*() {
      const agent = yield* NamespacedHttpClient.agent(gen.http.set)
      const status = yield* Effect.callback<number>((resume) => {
        const request = http.get({ host: "127.0.0.1", port: gen.http.port, path: "/", agent }, (response) => {
          response.resume()
          response.once("end", () => resume(Effect.succeed(response.statusCode ?? 0)))
        })
        request.once("error", () => resume(Effect.succeed(0)))
        return Effect.sync(() => request.destroy())
      })
      if (status !== 200 && status !== 503 && status !== 0) violation("wrong answer", `http.agent: status ${status}`)
    })
  },
  "pool.take": {
    weight: 2,
    op: (gen, startedAt) => Effect.gen(function*() {
      const set = yield* NamespacePool.take(gen.pool)
      if ((yield* NamespaceSet.run(set, Task.hostname)) !== "pooled") violation("wrong answer", "pool: afterCreate not applied")
      yield* checkReport("pool.take", set, startedAt, fromIdentity(yield* NamespaceSet.run(set, Task.identify)))
    })
  },
  "network.links": {
    weight: 1,
    op: (gen) => Effect.gen(function*() {
      const links = yield* Network.links(newOwn(gen).set)
      if (!links.some((link) => link.name === "lo")) violation("wrong answer", "network.links: no lo")
    })
  },
  "network.veth": {
    weight: 1,
    op: () => Effect.gen(function*() {
      const a = yield* NamespaceSet.unshareCurrent(["net"], { loopback: "up" })
      const b = yield* NamespaceSet.unshareCurrent(["net"], { loopback: "up" })
      yield* Network.vethPair({ name: `${vethPrefix}a`, in: a }, { name: `${vethPrefix}b`, in: b })
      yield* Network.addAddress(a, `${vethPrefix}a`, "169.254.99.1/30")
      yield* Network.setUp(a, `${vethPrefix}a`)
      yield* Network.setUp(b, `${vethPrefix}b`)
      const link = yield* Network.link(a, `${vethPrefix}a`)
      if (!link.addresses.some((address) => address.address === "169.254.99.1")) violation("wrong answer", "network.veth: address missing")
      if (random() < 0.5) yield* Network.setMtu(b, `${vethPrefix}b`, 1400)
    })
  },

  // --- module tasks that break the rules, on purpose -----------------------------------------
  "fault.throws": {
    weight: 1,
    op: (gen) => Effect.gen(function*() {
      fault("module task throws")
      const answer = yield* NamespaceSet.run(anyShared(gen).set, moduleTask(random() < 0.5 ? "throws" : "rejects", { marker: marker() })).pipe(
        Effect.map(() => "answered"),
        // Its own error is the expected answer; another (the module could not be loaded under
        // the lowered fd limit) is a typed failure like any other.
        Effect.catchIf((error) => error._tag === "ModuleTaskError" && (error.name === "SoakFault" || error.name === "SoakRejection"), (error) => Effect.succeed(error._tag))
      )
      if (answer === "answered") violation("wrong answer", "a throwing task answered")
    })
  },
  "fault.hang": {
    weight: 1,
    op: (gen) => Effect.gen(function*() {
      const sync = random() < 0.5
      fault(sync ? "module task hangs (sync) past its timeout" : "module task hangs (async) past its timeout")
      const path = marker()
      const answer = yield* NamespaceSet.run(anyShared(gen).set, moduleTask(sync ? "hangSync" : "hangAsync", { marker: path, ms: 3_000 })).pipe(
        Effect.timeoutOption(randomInt(5, 60))
      )
      if (Option.isSome(answer)) violation("wrong answer", "a hanging task answered before its timeout")
      compromise(readMarker(path))
    })
  },
  "fault.exitThread": {
    weight: 1,
    op: (gen) => Effect.gen(function*() {
      fault("module task exits its thread")
      const path = marker()
      const exit = yield* Effect.exit(NamespaceSet.run(anyShared(gen).set, moduleTask("exitThread", { marker: path })))
      compromise(readMarker(path))
      if (Exit.isSuccess(exit)) violation("wrong answer", "a task that ended its thread answered")
      // The expected answer: ThreadFailure, for this caller alone.
      return yield* Effect.catchTag(exit, "ThreadFailure", () => Effect.void)
    })
  },
  "fault.unshareBehind": {
    weight: 1,
    op: (gen) => Effect.gen(function*() {
      fault("module task unshares behind the library's back")
      const path = marker()
      const exit = yield* Effect.exit(NamespaceSet.run(anyShared(gen).set, moduleTask<{ tid: number }>("unshareBehind", { marker: path })))
      compromise(readMarker(path))
      // Its answer was computed outside the set: never delivered. The expected answer is a
      // ThreadFailure naming the kinds found moved.
      if (Exit.isSuccess(exit)) violation("task outside its set", "a task that moved its thread answered")
      return yield* Effect.catchIf(exit, (error) => error._tag === "ThreadFailure" && error.namespaces !== undefined, () => Effect.void)
    })
  },
  "fault.leaveTimer": {
    weight: 1,
    op: (gen) => Effect.gen(function*() {
      fault("module task leaves a timer")
      yield* NamespaceSet.run(anyShared(gen).set, moduleTask("leaveTimer", { marker: marker(), ms: randomInt(1, 200) }))
    })
  },
  "fault.moveTimer": {
    weight: 1,
    op: (gen) => Effect.gen(function*() {
      fault("module task leaves a timer that moves its thread")
      // The thread serves others until it is found moved: every answer is checked against its set.
      yield* NamespaceSet.run(anyShared(gen).set, moduleTask("moveLater", { marker: marker(), ms: randomInt(0, 40), kind: random() < 0.5 ? "uts" : "net" }))
    })
  },
  "fault.killChild": {
    weight: 1,
    op: (gen) => Effect.gen(function*() {
      const child = yield* NamespaceSet.spawn(anyShared(gen).set, "sleep", ["30"])
      yield* Effect.sleep(randomInt(0, 20))
      fault("spawned child killed from outside")
      process.kill(child.pid, "SIGKILL")
      const status = yield* child.exit
      if (status.signal !== 9) violation("wrong answer", `a child killed from outside reported ${JSON.stringify(status)}`)
    })
  },
  "fault.killInit": {
    weight: 1,
    op: (_gen, startedAt) => Effect.gen(function*() {
      const set = yield* NamespaceSet.unshareCurrent(["pid", "mnt"])
      const pidNs = yield* NamespaceSet.id(set, "pid")
      const findInit = () =>
        ownChildren().find((child) => {
          try {
            return fs.readlinkSync(`/proc/${child.pid}/ns/pid`) === pidNs
          } catch {
            return false
          }
        })
      // Reading /proc takes fds: under the lowered fd limit a scan can miss it, and the limit is
      // restored within a second.
      let init = findInit()
      for (let i = 0; i < 20 && init === undefined; i++) {
        yield* Effect.sleep(100)
        init = findInit()
      }
      if (init === undefined) {
        violation("wrong answer", `no init found for ${pidNs}`)
        return
      }
      fault("pid set's init killed from outside")
      process.kill(init.pid, "SIGKILL")
      // The set stays usable for everything but new processes in its pid namespace.
      yield* checkReport("killInit identify", set, startedAt, fromIdentity(yield* NamespaceSet.run(set, Task.identify)))
      // New processes in it are refused by the kernel (ENOMEM): a typed SystemError.
      yield* NamespaceSet.run(set, Task.exec("true")).pipe(
        Effect.catchTag("SystemError", (error) => Effect.sync(() => bump(expectedErrors, `killInit exec: SystemError ${error.errno}`)))
      )
    })
  }
}

const weighted = Object.entries(mix).flatMap(([name, { weight }]) => Array.from({ length: weight }, () => name))

// ---------------------------------------------------------------------------------------------
// Running it
// ---------------------------------------------------------------------------------------------

const tagOf = (error: unknown) =>
  typeof error === "object" && error !== null && "_tag" in error && typeof (error as { _tag: unknown })._tag === "string"
    ? (error as { _tag: string })._tag
    : undefined

/**
 * fds of `/` that were not there at the start (their owner is not known): when each was first
 * seen, and what had happened just before. Looked for at every scan of the threads.
 */
const rootFds = new Map<string, { readonly seen: string; readonly before: ReadonlyArray<string> }>()
const watchRootFds = (baseline: ReadonlySet<string>) => {
  const now = new Set<string>()
  for (const fd of fs.readdirSync("/proc/self/fd")) {
    if (baseline.has(fd)) continue
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`) === "/") now.add(fd)
    } catch {
      // Closed meanwhile.
    }
  }
  for (const fd of rootFds.keys()) if (!now.has(fd)) rootFds.delete(fd)
  for (const fd of now) {
    if (!rootFds.has(fd)) rootFds.set(fd, { seen: `${((Date.now() - soakStart) / 1_000).toFixed(2)} s`, before: [...lately] })
  }
}

const record = (name: string, exit: Exit.Exit<unknown, unknown>, injected: boolean) => {
  totalOps++
  happened(`${name}: ${Exit.isSuccess(exit) ? "ok" : Cause.hasInterruptsOnly(exit.cause) ? "interrupted" : String((Cause.squash(exit.cause) as { _tag?: string })?._tag ?? "failed")}`)
  const count = ops.get(name) ?? { ok: 0, failed: 0, interrupted: 0 }
  ops.set(name, count)
  if (Exit.isSuccess(exit)) {
    if (injected && Option.isOption(exit.value) && Option.isNone(exit.value)) count.interrupted++
    else count.ok++
    return
  }
  const cause = exit.cause
  if (Cause.hasDies(cause)) {
    count.failed++
    defects.push(`${name}: a defect`, Cause.pretty(cause))
    return
  }
  if (Cause.hasFails(cause)) {
    count.failed++
    const error = Option.getOrUndefined(Cause.findErrorOption(cause))
    const tag = tagOf(error)
    if (tag === undefined) {
      defects.push(`${name}: an untyped failure`, Cause.pretty(cause))
      return
    }
    const samples = errorSamples.get(tag) ?? new Set<string>()
    errorSamples.set(tag, samples)
    const message = String((error as { message?: unknown }).message ?? "").replace(/\d{3,}/g, "N").slice(0, 140)
    if (samples.size < 6) samples.add(`${name}: ${message}`)
    // A caller fails only for its own reasons: never because another caller made a time namespace.
    if (tag === "ThreadFailure" && name !== "unshare" && /time namespace/.test(String((error as { message?: unknown }).message))) {
      violation("failed for another caller's time namespace", `${name}: ${String((error as { message?: unknown }).message)}`)
    }
    if (tag === "ThreadFailure" && Array.isArray((error as { namespaces?: unknown }).namespaces)) movedRefusals++
    const byOp = errors.get(tag) ?? new Map<string, number>()
    errors.set(tag, byOp)
    bump(byOp, name)
    return
  }
  // Interrupted, though nothing here interrupted it.
  count.interrupted++
  defects.push(`${name}: interrupted, though nothing interrupted it`, Cause.pretty(cause).split("\n")[0]!)
}

/** Answers refused because their thread was found outside the set's namespaces (typed ThreadFailure). */
let movedRefusals = 0
let current: Generation
let stopping = false
let generations = 0
const memory: Array<{ t: number; ops: number; spawned: number; rss: number; heap: number }> = []
/** Pinned threads started by the generations already closed. */
let spawnedBefore = 0
/** Pinned threads dropped by the generations already closed, by the class of the reason. */
const dropsBefore = new Map<string, number>()
const addDrops = (byReason: Readonly<Record<string, number | undefined>>) => {
  for (const [reason, count] of Object.entries(byReason)) dropsBefore.set(reason, (dropsBefore.get(reason) ?? 0) + (count ?? 0))
}
const spawnedSoFar = () => spawnedBefore + Effect.runSync(Effect.provide(PinnedThreads.stats, current.context)).spawned
const threadHeaps: Array<{ t: number; used: number }> = []
let peakRss = 0
let peakThreads = 0

const fiberLoop = (deadline: number) =>
  Effect.gen(function*() {
    while (Date.now() < deadline && !stopping) {
      const gen = current
      const name = pickOne(weighted)
      const startedAt = ++sequence
      const body = Effect.scoped(mix[name]!.op(gen, startedAt)).pipe(Effect.provide(gen.context))
      const injected = !name.startsWith("fault.hang") && random() < 0.08
      if (injected) fault("interruption")
      const exit = yield* Effect.exit(injected ? Effect.timeoutOption(body, randomInt(0, 25)) : body)
      record(name, exit, injected)
      yield* Effect.yieldNow
    }
  })

const rebuild = Effect.gen(function*() {
  const old = current
  fault("layer closed and rebuilt")
  for (let attempt = 0; ; attempt++) {
    const next = yield* Effect.exit(makeGeneration(++generations))
    if (Exit.isSuccess(next)) {
      current = next.value
      break
    }
    if (Cause.hasDies(next.cause)) defects.push("layer rebuild: a defect", Cause.pretty(next.cause))
    if (attempt > 20) return yield* Effect.die(new Error("the layer could not be rebuilt"))
    yield* Effect.sleep(100)
  }
  const oldStats = Effect.runSync(Effect.provide(PinnedThreads.stats, old.context))
  spawnedBefore += oldStats.spawned
  addDrops(oldStats.droppedByReason)
  yield* Scope.close(old.scope, Exit.void)
})

const lowerFdLimit = Effect.gen(function*() {
  const saved = getNofile()
  const open = fs.readdirSync("/proc/self/fd").length
  fault("fd limit lowered")
  setNofile({ cur: open + randomInt(4, 48), max: saved.max })
  yield* Effect.sleep(randomInt(100, 600)).pipe(Effect.ensuring(Effect.sync(() => setNofile(saved))))
})

/** One fault at a time: the fd limit every second or two, the layer a few times a run. */
const injector = (deadline: number, started: number) =>
  Effect.gen(function*() {
    const rebuildEvery = Math.max(6_000, Math.min(30_000, (deadline - started) / 3))
    let nextRebuild = started + rebuildEvery * (0.5 + random() * 0.5)
    while (Date.now() < deadline - 1_000) {
      yield* Effect.sleep(randomInt(400, 1_500))
      if (Date.now() >= deadline - 1_000) break
      if (Date.now() >= nextRebuild) {
        yield* rebuild
        nextRebuild = Date.now() + rebuildEvery * (0.75 + random() * 0.5)
      } else {
        yield* lowerFdLimit
      }
    }
  })

/** Samples memory, and the V8 heap of a pinned thread, through the run. */
const sampleThreadHeap = Effect.gen(function*() {
  const gen = current
  const answer = yield* Effect.exit(NamespaceSet.run(gen.shared[0]!.set, moduleTask<{ used: number }>("heap")).pipe(Effect.provide(gen.context)))
  if (Exit.isSuccess(answer)) threadHeaps.push({ t: Date.now(), used: answer.value.used })
})

const linearFit = (points: ReadonlyArray<{ x: number; y: number }>) => {
  const n = points.length
  const mx = points.reduce((s, p) => s + p.x, 0) / n
  const my = points.reduce((s, p) => s + p.y, 0) / n
  const sxx = points.reduce((s, p) => s + (p.x - mx) ** 2, 0)
  const sxy = points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0)
  return sxx === 0 ? 0 : sxy / sxx
}

const settle = async (check: () => boolean, ms: number) => {
  const until = Date.now() + ms
  while (!check() && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50))
  return check()
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`

// Anything thrown outside an Effect (an unhandled 'error' event, say) would end the process: it is
// a defect, recorded, and the soak goes on to give its account.
process.on("uncaughtException", (error) => {
  defects.push(`uncaught exception: ${String((error as Error)?.message ?? error).replace(/\d{3,}/g, "N")}`, String((error as Error)?.stack ?? error))
})
process.on("unhandledRejection", (reason) => {
  defects.push("unhandled rejection", String((reason as Error)?.stack ?? reason))
})

const main = async () => {
  await fs.promises.access("/") // libuv's pool, born here in the host namespaces
  // Warm-up: one generation with one of each operation, so what loads lazily once (modules,
  // koffi bindings) is part of the baseline, not counted as a leak.
  const warm = await Effect.runPromise(makeGeneration(0))
  for (const name of Object.keys(mix)) {
    const exit = await Effect.runPromiseExit(Effect.scoped(mix[name]!.op(warm, ++sequence)).pipe(Effect.provide(warm.context)))
    if (Exit.isFailure(exit) && Cause.hasDies(exit.cause)) defects.push(`warm-up ${name}: a defect`, Cause.pretty(exit.cause))
  }
  await Effect.runPromise(Scope.close(warm.scope, Exit.void))
  for (const key of [...faults.keys()]) faults.delete(key)
  await settle(() => ownChildren().length === 0, 5_000)
  await new Promise((resolve) => setTimeout(resolve, 300))

  const baseline = {
    fds: fdLinks(),
    threads: tids().length,
    children: ownChildren(),
    mounts: mountLines(),
    netns: netnsNames(),
    veths: hostVeths(),
    heldNet: heldNetNamespaces(),
    slabNet: slabNetNamespaces()
  }

  const started = Date.now()
  const deadline = started + SECONDS * 1_000
  current = await Effect.runPromise(makeGeneration(++generations))
  const rootBaseline = new Set(baseline.fds.filter((line) => line.endsWith(" -> /")).map((line) => line.split(" -> ")[0]!))
  const scan = setInterval(() => {
    try {
      scanThreads()
      watchRootFds(rootBaseline)
    } catch (error) {
      // fd limit lowered: a missed scan, not a violation.
      void error
    }
  }, 100)
  const sample = setInterval(() => {
    // process.memoryUsage opens /proc/self/stat: under the lowered fd limit, a missed sample.
    try {
      const usage = process.memoryUsage()
      memory.push({ t: Date.now() - started, ops: totalOps, spawned: spawnedSoFar(), rss: usage.rss, heap: usage.heapUsed })
      peakRss = Math.max(peakRss, usage.rss)
      peakThreads = Math.max(peakThreads, tids().length)
    } catch {
      // fd limit
    }
  }, 250)
  const heapSampler = Effect.forever(Effect.andThen(Effect.sleep(2_000), sampleThreadHeap))

  const program = Effect.gen(function*() {
    const heaps = yield* Effect.forkDetach(heapSampler)
    const fibers = yield* Effect.forEach(Array.from({ length: FIBERS }, (_, i) => i), () => Effect.forkDetach(fiberLoop(deadline)))
    const faultFiber = yield* Effect.forkDetach(injector(deadline, started))
    const injected = yield* Fiber.await(faultFiber)
    if (Exit.isFailure(injected)) defects.push("fault injector: failed", Cause.pretty(injected.cause))
    yield* Fiber.joinAll(fibers)
    yield* Fiber.interrupt(heaps)
  })
  const progress = setInterval(() => {
    const elapsed = (Date.now() - started) / 1_000
    const rss = memory.at(-1)?.rss ?? 0
    console.error(`soak: ${elapsed.toFixed(0)} s, ${totalOps} ops, ${defects.length} defects, ${violationCount} violations, rss ${mib(rss)}`)
  }, 10_000)
  await Effect.runPromise(program)
  const ran = (Date.now() - started) / 1_000
  clearInterval(progress)
  clearInterval(scan)
  clearInterval(sample)
  scanThreads()
  await Effect.runPromise(Scope.close(current.scope, Exit.void))

  // ------------------------------------------------------------------------------------------
  // The account, once the layer has closed
  // ------------------------------------------------------------------------------------------
  const leaks: Array<{ what: string; count: number; detail: string }> = []
  const leak = (what: string, count: number, detail: string) => leaks.push({ what, count, detail })
  await settle(() => tids().length <= baseline.threads && ownChildren().length === 0, 10_000)
  const fdsNow = fdLinks()
  const diff = (now: ReadonlyArray<string>, then: ReadonlyArray<string>) => {
    const before = new Map<string, number>()
    for (const item of then) bump(before, item)
    return now.filter((item) => {
      const left = before.get(item) ?? 0
      if (left > 0) {
        before.set(item, left - 1)
        return false
      }
      return true
    })
  }
  const stripFd = (lines: ReadonlyArray<string>) => lines.map((line) => line.split(" -> ")[1]!)
  leak("fds", fdsNow.length - baseline.fds.length, diff(stripFd(fdsNow), stripFd(baseline.fds)).slice(0, 10).join(", "))
  // What each new fd is, for whoever looks for its owner: its open flags (fdinfo), and for a
  // socket its protocol and addresses, from /proc/net.
  const describeFd = (line: string) => {
    const [fd, target] = line.split(" -> ") as [string, string]
    let flags = "?"
    let mount = ""
    try {
      const info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, "utf8")
      flags = /^flags:\s*(\d+)$/m.exec(info)?.[1] ?? "?"
      // Its file, and the mount it is on: one of this mount namespace's, or another's.
      const mntId = /^mnt_id:\s*(\d+)$/m.exec(info)?.[1]
      const stats = fs.fstatSync(Number(fd))
      const type = stats.isDirectory() ? "directory" : stats.isFile() ? "file" : stats.isSocket() ? "socket" : stats.isFIFO() ? "fifo" : "other"
      const row = fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n").find((line) => line.split(" ")[0] === mntId)
      const where = row === undefined ? "a mount not in the main thread's mount namespace" : `mount ${row.split(" ").slice(3, 5).join(" ")} ${row.split(" - ")[1]?.split(" ")[0] ?? ""}`
      mount = `, ${type} dev ${stats.dev} ino ${stats.ino}, mnt_id ${mntId}: ${where}`
    } catch {
      // Gone.
    }
    const ino = /^socket:\[(\d+)\]$/.exec(target)?.[1]
    let socket = ""
    if (ino !== undefined) {
      for (const table of ["tcp", "tcp6", "udp", "udp6", "unix", "netlink", "raw"]) {
        try {
          const row = fs.readFileSync(`/proc/self/net/${table}`, "utf8").split("\n").find((each) => each.split(/\s+/).includes(ino))
          if (row !== undefined) socket = ` ${table}: ${row.trim().replace(/\s+/g, " ").slice(0, 120)}`
        } catch {
          // No such table.
        }
      }
    }
    // fdinfo gives the flags in octal already.
    return `fd ${fd} -> ${target} (flags 0${flags}${mount})${socket}`
  }
  const newFds = (() => {
    const before = new Set(baseline.fds)
    return fdsNow.filter((line) => !before.has(line))
  })()
  leak("threads", tids().length - baseline.threads, tids().map((tid) => comm(tid)).join(","))
  const children = ownChildren()
  leak("child processes", children.filter((c) => c.state !== "Z").length, children.map((c) => `${c.pid} ${c.name} ${c.state}`).join(", "))
  leak("zombies", children.filter((c) => c.state === "Z").length, children.filter((c) => c.state === "Z").map((c) => `${c.pid} ${c.name}`).join(", "))
  leak("/run/netns names", diff(netnsNames(), baseline.netns).length, diff(netnsNames(), baseline.netns).join(", "))
  const mountsNow = mountLines()
  const newMounts = diff(mountsNow, baseline.mounts)
  leak("nsfs mounts", newMounts.filter((line) => line.includes("nsfs")).length, newMounts.filter((line) => line.includes("nsfs")).slice(0, 5).join("; "))
  leak("other mounts", newMounts.filter((line) => !line.includes("nsfs")).length, newMounts.filter((line) => !line.includes("nsfs")).slice(0, 5).join("; "))
  const vethsNow = diff(hostVeths(), baseline.veths)
  leak("host veth links (ours)", vethsNow.filter((name) => name.startsWith(vethPrefix)).length, vethsNow.join(", "))
  const heldNow = diff(heldNetNamespaces(), baseline.heldNet)
  leak("net namespaces held", heldNow.length, heldNow.join(", "))
  const slabNow = slabNetNamespaces()

  // Memory: the RSS slope after warm-up (the first fifth of the run, at least 5 s), per operation.
  const warmUpMs = Math.max(5_000, SECONDS * 1_000 / 5)
  const steady = memory.filter((m) => m.t >= warmUpMs)
  const perOp = steady.length >= 8 ? linearFit(steady.map((m) => ({ x: m.ops, y: m.rss }))) : Number.NaN
  const perMinute = steady.length >= 8 ? linearFit(steady.map((m) => ({ x: m.t / 60_000, y: m.rss }))) : Number.NaN
  const heapPerOp = steady.length >= 8 ? linearFit(steady.map((m) => ({ x: m.ops, y: m.heap }))) : Number.NaN
  const lastStats = Effect.runSync(Effect.provide(PinnedThreads.stats, current.context))
  const totalSpawned = spawnedBefore + lastStats.spawned
  addDrops(lastStats.droppedByReason)
  const SLOPE_LIMIT = 1_024 // bytes per operation
  // Twenty seconds cannot tell a leak from warm-up: the slope is judged on a minute or more.
  const judged = steady.length > 0 && steady.at(-1)!.t - steady[0]!.t >= 60_000
  const slopeFails = judged && Number.isFinite(perOp) && perOp > SLOPE_LIMIT

  const missing = Object.keys(mix).filter((name) => (ops.get(name)?.ok ?? 0) === 0)

  // ------------------------------------------------------------------------------------------
  // Output
  // ------------------------------------------------------------------------------------------
  const lines: Array<string> = []
  const out = (line = "") => lines.push(line)
  out(`gonso soak: ${ran.toFixed(1)} s, ${FIBERS} fibers, seed ${SEED}, ${generations} layer generations, node ${process.version}, ${execFileSync("uname", ["-r"], { encoding: "utf8" }).trim()}`)
  out(`throughput: ${totalOps} operations, ${(totalOps / ran).toFixed(0)} ops/s`)
  out()
  out("operations (ok / failed typed / interrupted):")
  for (const [name, count] of [...ops.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    out(`  ${name.padEnd(22)} ${String(count.ok).padStart(7)} ${String(count.failed).padStart(7)} ${String(count.interrupted).padStart(7)}`)
  }
  out()
  out("faults injected:")
  for (const [name, count] of [...faults.entries()].sort(([a], [b]) => a.localeCompare(b))) out(`  ${name.padEnd(50)} ${count}`)
  out()
  out("errors by tag (all typed):")
  if (errors.size === 0) out("  none")
  for (const [tag, byOp] of [...errors.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const total = [...byOp.values()].reduce((a, b) => a + b, 0)
    out(`  ${tag.padEnd(26)} ${String(total).padStart(6)}  ${[...byOp.entries()].sort((a, b) => b[1] - a[1]).map(([op, n]) => `${op} ${n}`).join(", ")}`)
    for (const sample of errorSamples.get(tag) ?? []) out(`      e.g. ${sample}`)
  }
  out("expected errors of faults (counted as ok):")
  for (const [what, count] of expectedErrors) out(`  ${what.padEnd(40)} ${count}`)
  out()
  out(`invariant checks: ${checks.identity} task reports against their set, ${checks.kernelViews} views from children, ${checks.threadScans} scans of the main thread and ${libuvSeen} libuv pool threads`)
  const wrong = ["task outside its set", "child outside its set"].reduce((sum, kind) => sum + (violationKinds.get(kind) ?? 0), 0)
  out(`answers from a wrong namespace: ${wrong}; answers refused because their thread was found moved (ThreadFailure naming the kinds): ${movedRefusals}`)
  out(`answers from a compromised thread's tid, reused by the kernel for a thread started after the compromise: ${tidsReused}`)
  out(`memory: peak RSS ${mib(peakRss)}, RSS slope after ${(warmUpMs / 1_000).toFixed(0)} s ${Number.isFinite(perOp) ? `${perOp.toFixed(0)} B/op (${mib(perMinute)}/min)` : "n/a"} [${judged ? `limit ${SLOPE_LIMIT} B/op` : "not judged: under a minute after warm-up"}], main heap slope ${Number.isFinite(heapPerOp) ? `${heapPerOp.toFixed(0)} B/op` : "n/a"}`)
  if (threadHeaps.length > 0) {
    const used = threadHeaps.map((h) => h.used)
    out(`pinned-thread heaps: ${threadHeaps.length} samples, ${mib(Math.min(...used))} .. ${mib(Math.max(...used))}; peak threads ${peakThreads}; pinned threads started ${totalSpawned}`)
  }
  out(`pinned threads dropped, by reason: ${[...dropsBefore.entries()].sort((a, b) => b[1] - a[1]).map(([reason, count]) => `${reason} ${count}`).join(", ") || "none"}`)
  out()
  out("leaks after the layer closed (count: detail):")
  for (const { what, count, detail } of leaks) out(`  ${what.padEnd(24)} ${count}${count !== 0 && detail !== "" ? `  ${detail}` : ""}`)
  if (leaks.some((each) => each.what === "fds" && each.count !== 0)) {
    for (const line of newFds.slice(0, 10)) {
      out(`    ${describeFd(line)}`)
      const root = rootFds.get(line.split(" -> ")[0]!)
      if (root !== undefined) out(`      first seen at ${root.seen}, after:\n${root.before.map((each) => `        ${each}`).join("\n")}`)
    }
  }
  out(`  (kernel net_namespace objects: ${baseline.slabNet ?? "?"} before, ${slabNow ?? "?"} after; machine-wide, for information)`)
  out()
  const failures: Array<string> = []
  if (violationCount > 0) failures.push(`${violationCount} broken invariants`)
  if (defects.length > 0) failures.push(`${defects.length} defects`)
  const leaked = leaks.filter((l) => l.count > 0)
  if (leaked.length > 0) failures.push(`leaks: ${leaked.map((l) => `${l.what} ${l.count}`).join(", ")}`)
  if (slopeFails) failures.push(`RSS grows ${perOp.toFixed(0)} B/op`)
  if (missing.length > 0 && SECONDS >= 10) failures.push(`never succeeded: ${missing.join(", ")}`)
  for (const [kind, count] of violationKinds) {
    out(`VIOLATION ${kind} (x${count})`)
    for (const example of violationExamples.get(kind) ?? []) out(`    e.g. ${example}`)
  }
  for (const [key, { count, example }] of defectGroups) out(`DEFECT ${key} (x${count})${example === "" ? "" : `\n    ${example.split("\n").slice(0, 8).join("\n    ")}`}`)
  out(failures.length === 0 ? "soak: PASS" : `soak: FAIL (${failures.join("; ")})`)
  console.log(lines.join("\n"))
  fs.rmSync(scratch, { recursive: true, force: true })
  return failures.length === 0 ? 0 : 1
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error("soak: crashed:", error)
    fs.rmSync(scratch, { recursive: true, force: true })
    process.exit(1)
  }
)
