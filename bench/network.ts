/**
 * `node bench/network.ts`: setting up networks in-process over rtnetlink (`Network`) against the
 * same steps with the `ip` binary run inside the sets through `Task.exec`, side by side in one run.
 * Figures are microseconds (medians and p90 over the runs).
 *
 * - two hosts: two new network namespaces, a veth pair between them, an address on each end, the
 *   links up (lo included) and a default route: the whole set-up, and its link steps alone;
 * - one `Network.links(set)` against `ip -j link` run inside the set.
 */
import { Effect } from "effect"
import { NamespaceSet, Network, PinnedThreads, Task } from "../src/index.ts"

const RUNS = Number(process.env.GONSO_BENCH_NETWORK_RUNS ?? 50)
const LINKS_RUNS = Number(process.env.GONSO_BENCH_LINKS_RUNS ?? 2_000)
const IP_LINKS_RUNS = Number(process.env.GONSO_BENCH_IP_LINKS_RUNS ?? 100)
const SETTLE_MS = Number(process.env.GONSO_BENCH_SETTLE_MS ?? 100)

const now = () => process.hrtime.bigint()
const micros = (start: bigint) => Number(now() - start) / 1_000
const quantile = (sorted: ReadonlyArray<number>, q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
const stats = (samples: ReadonlyArray<number>) => {
  const sorted = [...samples].sort((a, b) => a - b)
  return { median: quantile(sorted, 0.5), p90: quantile(sorted, 0.9) }
}

const ip = (set: NamespaceSet.NamespaceSet, ...args: Array<string>) =>
  Effect.flatMap(NamespaceSet.run(set, Task.exec("ip", args)), (result) =>
    result.exitCode === 0 ? Effect.void : Effect.die(new Error(`ip ${args.join(" ")}: ${result.stderr}`)))

/** The two-hosts set-up; returns [whole, link steps only] in microseconds. */
const withApi = Effect.scoped(Effect.gen(function*() {
  const start = now()
  const a = yield* NamespaceSet.unshareCurrent(["net"])
  const b = yield* NamespaceSet.unshareCurrent(["net"])
  const steps = now()
  yield* Network.vethPair({ name: "eth0", in: a }, { name: "eth0", in: b })
  yield* Network.addAddress(a, "eth0", "169.254.10.1/30")
  yield* Network.addAddress(b, "eth0", "169.254.10.2/30")
  yield* Network.setUp(a, ["lo", "eth0"])
  yield* Network.setUp(b, ["lo", "eth0"])
  yield* Network.addRoute(b, { destination: "default", gateway: "169.254.10.1" })
  return [micros(start), micros(steps)] as const
}))

const withIp = Effect.scoped(Effect.gen(function*() {
  const start = now()
  const a = yield* NamespaceSet.unshareCurrent(["net"])
  const b = yield* NamespaceSet.unshareCurrent(["net"])
  const steps = now()
  const { net: bNet } = yield* NamespaceSet.fds(b, ["net"])
  yield* ip(a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", `/proc/${process.pid}/fd/${bNet}`)
  yield* ip(a, "addr", "add", "169.254.10.1/30", "dev", "eth0")
  yield* ip(b, "addr", "add", "169.254.10.2/30", "dev", "eth0")
  for (const set of [a, b]) {
    yield* ip(set, "link", "set", "lo", "up")
    yield* ip(set, "link", "set", "eth0", "up")
  }
  yield* ip(b, "route", "add", "default", "via", "169.254.10.1")
  // Deleted inside the Scope, as the API's scoped pair is.
  yield* ip(a, "link", "del", "eth0")
  return [micros(start), micros(steps)] as const
}))

const program = Effect.gen(function*() {
  // Warm-up: threads started, code paths compiled.
  for (let i = 0; i < 5; i++) {
    yield* withApi
    yield* withIp
  }
  const api: Array<readonly [number, number]> = []
  const cli: Array<readonly [number, number]> = []
  // Closing a network namespace leaves the kernel work to do in the background (cleanup_net, under
  // the locks that making links takes): each run starts once the last one's has settled.
  const settle = Effect.sleep(`${SETTLE_MS} millis`)
  for (let i = 0; i < RUNS; i++) {
    yield* settle
    api.push(yield* withApi)
    yield* settle
    cli.push(yield* withIp)
  }
  const links = yield* Effect.scoped(Effect.gen(function*() {
    const a = yield* NamespaceSet.unshareCurrent(["net"], { loopback: "up" })
    const b = yield* NamespaceSet.unshareCurrent(["net"])
    yield* Network.vethPair({ name: "eth0", in: a }, { name: "eth0", in: b })
    yield* Network.addAddress(a, "eth0", "169.254.10.1/30")
    const ours: Array<number> = []
    for (let i = 0; i < LINKS_RUNS; i++) {
      const start = now()
      yield* Network.links(a)
      ours.push(micros(start))
    }
    const theirs: Array<number> = []
    for (let i = 0; i < IP_LINKS_RUNS; i++) {
      const start = now()
      yield* NamespaceSet.run(a, Task.exec("ip", ["-j", "link"]))
      theirs.push(micros(start))
    }
    // One step whose kernel work is nil (lo is up already): what a step costs beyond the kernel.
    const oursStep: Array<number> = []
    for (let i = 0; i < LINKS_RUNS; i++) {
      const start = now()
      yield* Network.setUp(a, "lo")
      oursStep.push(micros(start))
    }
    const theirsStep: Array<number> = []
    for (let i = 0; i < IP_LINKS_RUNS; i++) {
      const start = now()
      yield* ip(a, "link", "set", "lo", "up")
      theirsStep.push(micros(start))
    }
    return { ours: stats(ours), theirs: stats(theirs), oursStep: stats(oursStep), theirsStep: stats(theirsStep) }
  }))
  return { api, cli, links }
})

const { api, cli, links } = await Effect.runPromise(program.pipe(Effect.provide(PinnedThreads.layer({ min: 1, max: 4 }))))
const whole = { api: stats(api.map(([w]) => w)), ip: stats(cli.map(([w]) => w)) }
const steps = { api: stats(api.map(([, s]) => s)), ip: stats(cli.map(([, s]) => s)) }
const row = (name: string, ours: { median: number; p90: number }, theirs: { median: number; p90: number }) =>
  `| ${name} | ${ours.median.toFixed(0)} (p90 ${ours.p90.toFixed(0)}) | ${theirs.median.toFixed(0)} (p90 ${theirs.p90.toFixed(0)}) | ${(theirs.median / ours.median).toFixed(1)}x |`
console.log(`Network set-up, ${RUNS} runs each (links: ${LINKS_RUNS} and ${IP_LINKS_RUNS}); microseconds\n`)
console.log("| what | Network (rtnetlink) | ip via Task.exec | speed-up |")
console.log("| --- | --- | --- | --- |")
console.log(row("two hosts: whole set-up (2 unshares, veth, 2 addresses, 4 links up, default route)", whole.api, whole.ip))
console.log(row("two hosts: the link steps alone (after the 2 unshares)", steps.api, steps.ip))
console.log(row("list links: `Network.links` vs `ip -j link`", links.ours, links.theirs))
console.log(row("one step with no kernel work: `Network.setUp(set, \"lo\")` vs `ip link set lo up` (lo already up)", links.oursStep, links.theirsStep))
const factor = steps.ip.median / steps.api.median
const overhead = links.theirsStep.median / links.oursStep.median
console.log(`\n${factor >= 20 ? "PASS" : "FAIL"}: two-hosts link steps ${factor.toFixed(1)}x faster than ip (target: at least 20x)`)
console.log(`${overhead >= 20 ? "PASS" : "FAIL"}: a step's own cost ${overhead.toFixed(1)}x below ip's (target: at least 20x)`)
