/**
 * `npm run bench`: what namespace work costs through gonso, next to the floors it cannot beat and
 * the tools it replaces, measured side by side in one run. Figures are microseconds.
 */
import { spawnSync } from "node:child_process"
import * as http from "node:http"
import { Effect } from "effect"
import { NamespacedHttpClient, NamespacedSocket, NamespaceSet, PinnedThreads, Task } from "../src/index.ts"

if (process.env.GONSO_BENCH_ONLY === "core") {
  console.log("bench/run.ts skipped (GONSO_BENCH_ONLY=core)")
  process.exit(0)
}

const RUNS = Number(process.env.GONSO_BENCH_RUNS ?? 20_000)
const LOAD_SECONDS = Number(process.env.GONSO_BENCH_LOAD_SECONDS ?? 3)
const CONNECTIONS = 16
const UNSHARES = Number(process.env.GONSO_BENCH_UNSHARES ?? 1_000)
const SPAWNS = Number(process.env.GONSO_BENCH_SPAWNS ?? 300)
const floor = new URL("./floor.ts", import.meta.url)

const quantile = (sorted: ReadonlyArray<number>, q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
const summarize = (name: string, samples: ReadonlyArray<number>) => {
  const sorted = [...samples].sort((a, b) => a - b)
  return { name, n: sorted.length, median: quantile(sorted, 0.5), p90: quantile(sorted, 0.9), p99: quantile(sorted, 0.99) }
}
const now = () => process.hrtime.bigint()
const micros = (start: bigint) => Number(now() - start) / 1_000

/** Times `effect` `n` times, one after another, after a warm-up. */
const sample = <A, E, R>(n: number, effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    for (let i = 0; i < Math.min(1_000, n / 10); i++) yield* effect
    const samples: Array<number> = []
    for (let i = 0; i < n; i++) {
      const start = now()
      yield* effect
      samples.push(micros(start))
    }
    return samples
  })

const spawnTimes = (n: number, command: string, args: ReadonlyArray<string>) => {
  const samples: Array<number> = []
  for (let i = 0; i < n; i++) {
    const start = now()
    const result = spawnSync(command, args)
    samples.push(micros(start))
    if (result.status !== 0) throw new Error(`${command} ${args.join(" ")}: ${result.stderr}`)
  }
  return samples
}

/**
 * Requests per second against `port`, from CONNECTIONS keep-alive connections made by `agent`, for
 * LOAD_SECONDS. One generator for both servers, in this process: only where the connections live
 * differs.
 */
const load = (agent: http.Agent, port: number) =>
  Effect.promise(() =>
    new Promise<number>((resolve) => {
      let done = 0
      let open = CONNECTIONS
      const deadline = Date.now() + LOAD_SECONDS * 1_000
      const loop = () => {
        if (Date.now() >= deadline) {
          if (--open === 0) resolve(done / LOAD_SECONDS)
          return
        }
        http.get({ host: "127.0.0.1", port, path: "/", agent }, (response) => {
          response.resume()
          response.on("end", () => {
            done++
            loop()
          })
        })
      }
      for (let i = 0; i < CONNECTIONS; i++) loop()
    })
  )

const handler: http.RequestListener = (_, response) => response.end("hello")

const program = Effect.gen(function*() {
  const host = yield* NamespaceSet.current(["net"])
  const isolated = yield* NamespaceSet.unshare(host, ["net"])
  const fds = yield* NamespaceSet.fds(isolated, ["net"])
  const netFile = `/proc/${process.pid}/fd/${fds.net}`

  const rows = []
  rows.push(summarize("run(Task.tid) in a net set, restored", yield* sample(RUNS, NamespaceSet.run(isolated, Task.tid))))
  rows.push(summarize("floor: setns in + out on one thread", yield* NamespaceSet.run(host, Task.module<unknown, Array<number>>(floor, "setnsInOut", { fd: fds.net, iterations: RUNS }))))
  rows.push(summarize("run(Task.tid) in the host set (no setns)", yield* sample(RUNS, NamespaceSet.run(host, Task.tid))))
  rows.push(summarize("nsenter --net=FILE true", spawnTimes(SPAWNS, "nsenter", [`--net=${netFile}`, "true"])))
  rows.push(summarize("unshare(['net']) (scoped, closed after)", yield* sample(UNSHARES, Effect.scoped(NamespaceSet.unshare(host, ["net"])))))
  rows.push(summarize("floor: unshare(NEWNET) + open + setns back", yield* NamespaceSet.run(host, Task.module<unknown, Array<number>>(floor, "unshareNet", { iterations: UNSHARES }))))
  const maps = { uidMap: [{ containerId: 0, hostId: 100_000, size: 65_536 }], gidMap: [{ containerId: 0, hostId: 100_000, size: 65_536 }] }
  const hostUserNet = yield* NamespaceSet.current(["user", "net"])
  rows.push(summarize("unshare(['user','net']) with id maps", yield* sample(UNSHARES, Effect.scoped(NamespaceSet.unshare(hostUserNet, ["user", "net"], maps)))))
  rows.push(summarize("floor: clone(USER|NET) + maps + open + reap", yield* NamespaceSet.run(host, Task.module<unknown, Array<number>>(floor, "cloneUserNet", { iterations: UNSHARES }))))
  const hostPid = yield* NamespaceSet.current(["pid"])
  rows.push(summarize("unshare(['pid']) (init killed at close)", yield* sample(UNSHARES, Effect.scoped(NamespaceSet.unshare(hostPid, ["pid"])))))
  rows.push(summarize("floor: clone(PID) + open + reap", yield* NamespaceSet.run(host, Task.module<unknown, Array<number>>(floor, "clonePid", { iterations: UNSHARES }))))
  const spawned = (set: NamespaceSet.NamespaceSet) =>
    Effect.scoped(Effect.flatMap(NamespaceSet.spawn(set, "true"), (child) => child.exit))
  rows.push(summarize("NamespaceSet.spawn('true') in a net set", yield* sample(SPAWNS, spawned(isolated))))
  const netnsName = `gonso-bench-${process.pid}`
  yield* NamespaceSet.persistNetns(isolated, netnsName)
  rows.push(summarize("ip netns exec NAME true", spawnTimes(SPAWNS, "ip", ["netns", "exec", netnsName, "true"])))
  rows.push(summarize("run(Task.exec('true')) in a net set", yield* sample(SPAWNS, NamespaceSet.run(isolated, Task.exec("true")))))
  rows.push(summarize("spawnSync('true') on the host", spawnTimes(SPAWNS, "true", [])))

  // HTTP throughput: the same server and load generator, on host loopback and inside the set.
  yield* NamespaceSet.run(isolated, Task.exec("ip", ["link", "set", "lo", "up"]))
  const inside = yield* NamespacedSocket.listen(isolated, { host: "127.0.0.1", port: 0 })
  yield* NamespacedSocket.serve(inside, http.createServer(handler))
  const hostServer = http.createServer(handler)
  yield* Effect.acquireRelease(
    Effect.promise(() => new Promise<void>((resolve) => hostServer.listen(0, "127.0.0.1", resolve))),
    () => Effect.sync(() => hostServer.close())
  )
  const hostPort = (hostServer.address() as { port: number }).port
  const hostAgent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS })
  const insideAgent = yield* NamespacedHttpClient.agent(isolated, { keepAlive: true, maxSockets: CONNECTIONS })
  const throughput = [
    { name: "HTTP req/s, server on host loopback", rps: yield* load(hostAgent, hostPort) },
    { name: "HTTP req/s, server in a net set (fd served on main)", rps: yield* load(insideAgent, inside.port) }
  ]
  hostAgent.destroy()
  return { rows, throughput }
}).pipe(Effect.scoped, Effect.provide(PinnedThreads.layer({ min: 1, max: 1 })))

const { rows, throughput } = await Effect.runPromise(program)
const base = rows[0]!.median
const fmt = (value: number) => value >= 100 ? value.toFixed(0) : value.toFixed(1)
console.log(`gonso benchmarks (µs), ${new Date().toISOString()}, node ${process.versions.node}, ${RUNS} runs`)
console.log(["operation".padEnd(46), "n".padStart(6), "median".padStart(9), "p90".padStart(9), "p99".padStart(9), "÷ run".padStart(8)].join(""))
for (const row of rows) {
  console.log([
    row.name.padEnd(46),
    String(row.n).padStart(6),
    fmt(row.median).padStart(9),
    fmt(row.p90).padStart(9),
    fmt(row.p99).padStart(9),
    (row.median / base).toFixed(2).padStart(8)
  ].join(""))
}
console.log()
console.log(`${"HTTP throughput".padEnd(52)}${"req/s".padStart(9)}${"ratio".padStart(8)}  (${CONNECTIONS} keep-alive connections, ${LOAD_SECONDS} s each)`)
for (const row of throughput) {
  console.log(`${row.name.padEnd(52)}${row.rps.toFixed(0).padStart(9)}${(row.rps / throughput[0]!.rps).toFixed(2).padStart(8)}`)
}
