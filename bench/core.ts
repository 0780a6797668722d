/**
 * `npm run bench`, first part: the pinned-thread core next to the Go original, measured side by
 * side in one run on this machine. The Go original is the benchmark binary `gbench` (gonso built
 * with a small harness, see ../../shared/anchors/gonso/README.md); each of its figures is taken
 * right after ours for the same row, with the same number of operations, and our percentiles are
 * computed the way gbench computes its own. Latencies are in microseconds.
 *
 * Rows: (1) `run(set, Task.tid)` in a net set, restored, one caller; (2) the same with
 * `restore: false`; (3) in a net+uts set; (4) throughput of N runs from P = 1..64 concurrent fibers;
 * (5) `Task.exec("true")` against `NamespaceSet.spawn`; (6) RSS per idle pinned thread; (7) a burst
 * of 16 long module tasks on a cold layer; (8) RSS over a million runs. Each row has a warm-up, and
 * its timed loop stops at a time limit (reporting what was done), so the bench never hangs.
 *
 * Uses only the public API, so it keeps measuring whatever the core becomes. Environment:
 * GONSO_BENCH_RUNS (rows 1, 3; default 20000), GONSO_BENCH_DROP_RUNS (row 2; 300),
 * GONSO_BENCH_THROUGHPUT_RUNS (row 4, per P; 100000), GONSO_BENCH_SPAWNS (row 5; 300),
 * GONSO_BENCH_SUSTAINED (row 8; 1000000, 0 skips it), GONSO_BENCH_ROW_SECONDS (20),
 * GONSO_BENCH_WARMUP_MS (1000: the least warm-up of a row, see `measure`),
 * GONSO_BENCH_SUSTAINED_SECONDS (1200), GONSO_BENCH_BURST_MS (2000), GONSO_BENCH_THREADS (the
 * layer's min = max; default: the library's defaults), GONSO_BENCH_GBENCH (gbench's path), and
 * GONSO_BENCH_ONLY=run to skip this file. The exit code is 0 whether targets pass or fail (this is
 * a report); it is 1 only when a row could not be measured at all (our side failed). Also writes
 * docs/performance-core.svg.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import { fileURLToPath } from "node:url"
import { Cause, Duration, Effect, Exit, type Scope } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"
import type { NamespaceKind } from "../src/index.ts"

if (process.env.GONSO_BENCH_ONLY === "run") {
  console.log("bench/core.ts skipped (GONSO_BENCH_ONLY=run)")
  process.exit(0)
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

const numberFrom = (name: string, fallback: number, whole = true): number => {
  const raw = process.env[name]
  if (raw === undefined || raw.trim() === "") return fallback
  const value = Number(raw.replaceAll("_", ""))
  if (!Number.isFinite(value) || value < 0 || (whole && !Number.isSafeInteger(value))) {
    throw new Error(`${name}=${raw}: expected a ${whole ? "whole " : ""}number >= 0`)
  }
  return value
}

const config = {
  /** Operations per latency row (rows 1 and 3), ours and gonso's alike. */
  runs: numberFrom("GONSO_BENCH_RUNS", 20_000),
  /** Operations of the restore: false row (each drops a thread). */
  dropRuns: numberFrom("GONSO_BENCH_DROP_RUNS", 300),
  /** Operations per throughput row, for each P. */
  throughputRuns: numberFrom("GONSO_BENCH_THROUGHPUT_RUNS", 100_000),
  /** Commands per side in the exec-against-spawn row. */
  spawns: numberFrom("GONSO_BENCH_SPAWNS", 300),
  /** Runs per variant of the sustained-use row; 0 skips the row. */
  sustained: numberFrom("GONSO_BENCH_SUSTAINED", 1_000_000),
  /** A row's timed loop stops after this many seconds (its warm-up after a quarter of it). */
  rowSeconds: numberFrom("GONSO_BENCH_ROW_SECONDS", 20, false),
  /** A row's warm-up goes on for at least this long (see `measure`). */
  warmupMs: numberFrom("GONSO_BENCH_WARMUP_MS", 1_000),
  /** The same for each variant of the sustained-use row. */
  sustainedSeconds: numberFrom("GONSO_BENCH_SUSTAINED_SECONDS", 1_200, false),
  /** How long each task of the burst row waits. */
  burstMs: numberFrom("GONSO_BENCH_BURST_MS", 2_000),
  /**
   * Pinned threads of the layer used by rows 1-5 and 8 (min = max); unset, the library's
   * defaults, so that the bench measures what a program gets without tuning.
   */
  threads: process.env.GONSO_BENCH_THREADS ? numberFrom("GONSO_BENCH_THREADS", 0) : undefined,
  gbench: process.env.GONSO_BENCH_GBENCH ?? fileURLToPath(new URL("../../shared/anchors/gonso/gbench", import.meta.url))
}

const PARALLELISM = [1, 2, 4, 8, 16, 64] as const
/** Runs timed cold, at the start of row 1. */
const COLD_RUNS = 10_000
/** At P = 64 the fibers are spread over this many sets (16 each). */
const SETS_AT_64 = 4
const MiB = 1024 * 1024
const TASKS = new URL("./tasks.ts", import.meta.url)
const CHART = new URL("../docs/performance-core.svg", import.meta.url)
const threadOptions: PinnedThreads.Options = config.threads === undefined ? {} : { min: config.threads, max: config.threads }

// ---------------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------------

/** One measured row: per-operation latency percentiles (µs) and throughput. */
interface Figures {
  readonly n: number
  readonly median: number
  readonly p90: number
  readonly p99: number
  readonly opsPerSecond: number
  /** Whether the row's time limit stopped it before all operations were done. */
  readonly stopped: boolean
}

// The median and percentiles exactly as gbench.go computes them, so both columns mean the same.
const median = (sorted: Float64Array) => {
  const n = sorted.length
  if (n === 0) return Number.NaN
  return n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2
}
const percentile = (sorted: Float64Array, p: number) => {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.floor(p * sorted.length + 0.5) - 1))]!
}

const summarize = (samples: Float64Array, wallMs: number, stopped: boolean): Figures => {
  const sorted = Float64Array.from(samples).sort()
  return {
    n: sorted.length,
    median: median(sorted),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    opsPerSecond: sorted.length / (wallMs / 1_000),
    stopped
  }
}

const clock = () => performance.now()

/**
 * Runs `n` operations spread over one fiber per effect, all at once, each timed on its own (as
 * gbench's `runParallel`: fiber g does n/P operations, the first n%P one more), and stops early when
 * `limitMs` has passed. Throughput is the operations done over the wall time of the whole loop.
 */
const timed = <E, R>(n: number, effects: ReadonlyArray<Effect.Effect<unknown, E, R>>, limitMs: number) =>
  Effect.gen(function*() {
    const samples = new Float64Array(n)
    let done = 0
    const start = clock()
    const deadline = start + limitMs
    yield* Effect.forEach(effects, (effect, fiber) =>
      Effect.gen(function*() {
        const share = Math.floor(n / effects.length) + (fiber < n % effects.length ? 1 : 0)
        for (let i = 0; i < share; i++) {
          const t0 = clock()
          if (t0 >= deadline) return
          yield* effect
          samples[done++] = (clock() - t0) * 1_000
        }
      }), { concurrency: "unbounded", discard: true })
    return summarize(samples.subarray(0, done), clock() - start, done < n)
  })

/**
 * A warm-up the same way, then `timed`. The warm-up is n/10 operations, as gbench's, and goes on
 * until it has lasted `warmupMs` (at most a quarter of the row's time): V8 compiles the hot path
 * only after some ten thousand calls, while the Go original is compiled ahead of time, so n/10
 * alone would time our side partly cold. The cold cost is reported on its own (row 1 cold).
 */
const measure = <E, R>(n: number, effects: ReadonlyArray<Effect.Effect<unknown, E, R>>) =>
  Effect.gen(function*() {
    const warmLimit = (config.rowSeconds * 1_000) / 4
    const start = clock()
    yield* timed(Math.ceil(n / 10), effects, warmLimit)
    while (clock() - start < Math.min(config.warmupMs, warmLimit)) {
      yield* timed(Math.ceil(n / 10), effects, Math.min(config.warmupMs, warmLimit) - (clock() - start))
    }
    return yield* timed(n, effects, config.rowSeconds * 1_000)
  })

// ---------------------------------------------------------------------------------------------
// The Go original
// ---------------------------------------------------------------------------------------------

type Gonso = { readonly _tag: "Measured"; readonly figures: Figures } | { readonly _tag: "Missing"; readonly why: string }

const GBENCH_LINE = /^(\S+) n=(\d+)(?: p=\d+)? median_us=([\d.]+) p90_us=([\d.]+) p99_us=([\d.]+) ops_per_s=([\d.]+)/m

/** `gbench OP N [P]`, parsed; blocks the event loop while it runs, so nothing of ours competes. */
const gbench = (op: string, n: number, p?: number): Effect.Effect<Gonso> =>
  Effect.sync((): Gonso => {
    const missing = (why: string): Gonso => ({ _tag: "Missing", why })
    if (!fs.existsSync(config.gbench)) return missing(`${config.gbench} does not exist`)
    if (process.geteuid?.() !== 0) return missing("gbench must run as root")
    const args = [op, String(n), ...(p === undefined ? [] : [String(p)])]
    const result = spawnSync(config.gbench, args, { encoding: "utf8", timeout: 300_000 })
    if (result.error !== undefined) return missing(`gbench ${args.join(" ")}: ${result.error.message}`)
    if (result.status !== 0) {
      return missing(`gbench ${args.join(" ")} exited with ${result.status ?? result.signal}: ${result.stderr.trim().split("\n")[0] ?? ""}`)
    }
    const match = GBENCH_LINE.exec(result.stdout)
    if (match === null) return missing(`gbench ${args.join(" ")} printed no result line: ${result.stdout.trim().slice(0, 200)}`)
    const [, , count, med, p90, p99, ops] = match
    return {
      _tag: "Measured",
      figures: { n: Number(count), median: Number(med), p90: Number(p90), p99: Number(p99), opsPerSecond: Number(ops), stopped: false }
    }
  })

// ---------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------

type Verdict = "PASS" | "FAIL" | "n/a"

interface Row {
  readonly id: string
  readonly name: string
  readonly ours: string
  readonly gonso: string
  readonly ratio: string
  /** What is asked of the row, or "info". */
  readonly target: string
  /** Absent for informational rows; "n/a" when the target could not be checked. */
  readonly verdict?: Verdict | undefined
  readonly notes: ReadonlyArray<string>
  /** Our side of the row failed: nothing measured. */
  readonly error?: boolean | undefined
}

/** What a section adds to the report: rows, and the chart's data where it has some. */
interface Section {
  readonly rows: ReadonlyArray<Row>
  readonly latency?: { readonly ours: Figures; readonly gonso: Gonso } | undefined
  readonly throughput?: ReadonlyArray<{ readonly p: number; readonly ours: Figures; readonly gonso: Gonso }> | undefined
}

const us = (value: number) =>
  Number.isNaN(value) ? "-" : value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)
const percentiles = (f: Figures) => `${us(f.median)} / ${us(f.p90)} / ${us(f.p99)} µs`
const opsText = (f: Figures) => `${Math.round(f.opsPerSecond).toLocaleString("en-US")} ops/s, p99 ${us(f.p99)} µs`
const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`
const ratio = (a: number, b: number) => {
  const value = a / b
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)
}
const countText = (n: number) =>
  n >= 1_000_000 && n % 1_000_000 === 0 ? `${n / 1_000_000}M` : n >= 1_000 && n % 1_000 === 0 ? `${n / 1_000}k` : String(n)
const verdict = (ok: boolean): Verdict => (ok ? "PASS" : "FAIL")
const stoppedNote = (f: Figures, what = "ours") =>
  f.stopped ? [`${what}: stopped by the ${config.rowSeconds} s limit after ${f.n} operations`] : []
const gonsoNote = (g: Gonso) => (g._tag === "Missing" ? [`gonso not measured: ${g.why}`] : [])

/** A latency row: ours and gonso's median / p90 / p99, optionally with a target on the median ratio. */
const latencyRow = (id: string, name: string, ours: Figures, gonso: Gonso, maxMedianRatio?: number): Row => {
  const g = gonso._tag === "Measured" ? gonso.figures : undefined
  return {
    id,
    name: `${name} (n=${ours.n})`,
    ours: percentiles(ours),
    gonso: g === undefined ? "not measured" : percentiles(g),
    ratio: g === undefined ? "-" : `${ratio(ours.median, g.median)} / ${ratio(ours.p90, g.p90)} / ${ratio(ours.p99, g.p99)}`,
    target: maxMedianRatio === undefined ? "info" : `median ratio <= ${maxMedianRatio.toFixed(1)}`,
    verdict: maxMedianRatio === undefined ? undefined : g === undefined ? "n/a" : verdict(ours.median / g.median <= maxMedianRatio),
    notes: [...stoppedNote(ours), ...gonsoNote(gonso)]
  }
}

const withLayer = (options: PinnedThreads.Options) =>
<A, E>(effect: Effect.Effect<A, E, PinnedThreads.PinnedThreads | Scope.Scope>) =>
  effect.pipe(Effect.scoped, Effect.provide(PinnedThreads.layer(options)))

/** A set with new namespaces of `kinds`, the others carried over from the host. */
const isolated = (kinds: ReadonlyArray<NamespaceKind.NamespaceKind>) =>
  Effect.flatMap(NamespaceSet.current(kinds), (host) => NamespaceSet.unshare(host, kinds))

/** Waits until the layer's pool has at least `idle` threads waiting for work. */
const untilIdle = (idle: number, timeoutSeconds = 120) =>
  Effect.gen(function*() {
    const deadline = clock() + timeoutSeconds * 1_000
    for (;;) {
      const stats = yield* PinnedThreads.stats
      if (stats.idle >= idle) return stats
      if (clock() > deadline) return yield* Effect.fail(new Error(`only ${stats.idle} of ${idle} threads idle after ${timeoutSeconds} s`))
      yield* Effect.sleep(Duration.millis(20))
    }
  })

/** Rows 1 and 3: one caller, restored runs in a net set and in a net+uts set. */
const latencySection = (id: string, kinds: ReadonlyArray<NamespaceKind.NamespaceKind>, op: string, maxMedianRatio?: number, charted = false) =>
  withLayer(threadOptions)(Effect.gen(function*() {
    const set = yield* isolated(kinds)
    // The first section of the process also times its first runs, before anything is compiled.
    const cold = charted ? yield* timed(COLD_RUNS, [NamespaceSet.run(set, Task.tid)], config.rowSeconds * 1_000) : undefined
    const ours = yield* measure(config.runs, [NamespaceSet.run(set, Task.tid)])
    const gonso = yield* gbench(op, config.runs)
    const name = `run(set, Task.tid): ${kinds.join("+")}, restored, 1 caller [${op}]`
    const rows = [latencyRow(id, name, ours, gonso, maxMedianRatio)]
    if (cold !== undefined) {
      rows.push(latencyRow(`${id} cold`, `the same, the first ${countText(COLD_RUNS)} runs of the process, no warm-up [${op}]`, cold, gonso))
    }
    return { rows, latency: charted ? { ours, gonso } : undefined } satisfies Section
  }))

/**
 * Row 1b: runs alternating between two net sets, so that every run leaves one set (restoring and
 * verifying the thread) and joins the other: the cost of a restore on every call, as gonso's
 * `DoRaw(f, true)` pays it, without the benefit of staying inside a set between back-to-back runs.
 */
const alternatingSection = withLayer(threadOptions)(Effect.gen(function*() {
  const a = yield* isolated(["net"])
  const b = yield* isolated(["net"])
  let flip = false
  const ours = yield* measure(config.runs, [Effect.suspend(() => NamespaceSet.run((flip = !flip) ? a : b, Task.tid))])
  const gonso = yield* gbench("doraw_net_restore", config.runs)
  const name = "run(set, Task.tid) alternating between two net sets: restore + verify + join every call [doraw_net_restore]"
  return { rows: [latencyRow("1b", name, ours, gonso)] } satisfies Section
}))

/** Row 2: restore: false, so every run drops its thread. */
const dropSection = withLayer(threadOptions)(Effect.gen(function*() {
  const set = yield* isolated(["net"])
  const ours = yield* measure(config.dropRuns, [NamespaceSet.run(set, Task.tid, { restore: false })])
  const gonso = yield* gbench("doraw_net_drop", config.dropRuns)
  return { rows: [latencyRow("2", "run(set, Task.tid, { restore: false }): net [doraw_net_drop]", ours, gonso)] } satisfies Section
}))

/** Row 4: throughput of N runs spread over P fibers on one set (P = 64: four sets, 16 fibers each). */
const throughputSection = withLayer(threadOptions)(Effect.gen(function*() {
  const sets = [yield* isolated(["net"])]
  for (let i = 1; i < SETS_AT_64; i++) sets.push(yield* isolated(["net"]))
  const rows: Array<Row> = []
  const points: Array<{ p: number; ours: Figures; gonso: Gonso }> = []
  let oursAt8: Figures | undefined
  for (const p of PARALLELISM) {
    const spread = p === 64 ? SETS_AT_64 : 1
    const fibers = Array.from({ length: p }, (_, fiber) => NamespaceSet.run(sets[fiber % spread]!, Task.tid))
    const ours = yield* measure(config.throughputRuns, fibers)
    const gonso = yield* gbench("par_doraw_net_restore", config.throughputRuns, p)
    const stats = yield* PinnedThreads.stats
    points.push({ p, ours, gonso })
    if (p === 8) oursAt8 = ours
    const g = gonso._tag === "Measured" ? gonso.figures : undefined
    let target = "info"
    let result: Verdict | undefined
    if (p === 2 || p === 8) {
      target = "ops ratio >= 1.0, p99 ratio <= 3.0"
      result = g === undefined ? "n/a" : verdict(ours.opsPerSecond / g.opsPerSecond >= 1 && ours.p99 / g.p99 <= 3)
    } else if (p === 64) {
      target = "ops >= ours at P=8"
      result = oursAt8 === undefined ? "n/a" : verdict(ours.opsPerSecond >= oursAt8.opsPerSecond)
    }
    rows.push({
      id: `4 P=${p}`,
      name: `throughput: ${p} fiber${p === 1 ? "" : "s"}, ${spread > 1 ? `${spread} sets` : "one set"} (n=${ours.n}) [par_doraw_net_restore P=${p}]`,
      ours: opsText(ours),
      gonso: g === undefined ? "not measured" : opsText(g),
      ratio: g === undefined ? "-" : `ops ${ratio(ours.opsPerSecond, g.opsPerSecond)}, p99 ${ratio(ours.p99, g.p99)}`,
      target,
      verdict: result,
      notes: [...stoppedNote(ours), ...gonsoNote(gonso), `ours: pinned threads started in this layer so far: ${stats.spawned}`]
    })
  }
  return { rows, throughput: points } satisfies Section
}))

/** Row 5: a command run to its end by `Task.exec`, against `NamespaceSet.spawn` and waiting for its exit. */
const execSection = withLayer(threadOptions)(Effect.gen(function*() {
  const set = yield* isolated(["net"])
  const exec = NamespaceSet.run(set, Task.exec("true"))
  const spawned = Effect.scoped(Effect.flatMap(NamespaceSet.spawn(set, "true"), (child) => child.exit))
  // Interleaved, so both sides see the same machine: one exec, one spawn, and so on.
  const pair = (n: number, limitMs: number) =>
    Effect.gen(function*() {
      const times = { exec: new Float64Array(n), spawn: new Float64Array(n) }
      const start = clock()
      let done = 0
      while (done < n && clock() < start + limitMs) {
        let t0 = clock()
        const result = yield* exec
        if (result.exitCode !== 0) return yield* Effect.fail(new Error(`Task.exec("true") exited with ${result.exitCode}`))
        times.exec[done] = (clock() - t0) * 1_000
        t0 = clock()
        yield* spawned
        times.spawn[done++] = (clock() - t0) * 1_000
      }
      const wall = clock() - start
      return {
        exec: summarize(times.exec.subarray(0, done), wall, done < n),
        spawn: summarize(times.spawn.subarray(0, done), wall, done < n)
      }
    })
  yield* pair(Math.ceil(config.spawns / 10), (config.rowSeconds * 1_000) / 4)
  const { exec: e, spawn: s } = yield* pair(config.spawns, config.rowSeconds * 1_000)
  return {
    rows: [{
      id: "5",
      name: `run(set, Task.exec("true")) vs spawn(set, "true") + exit, net (n=${e.n})`,
      ours: `exec ${percentiles(e)}; spawn ${percentiles(s)}`,
      gonso: "-",
      ratio: `exec/spawn ${ratio(e.median, s.median)}`,
      target: "exec median <= spawn median",
      verdict: verdict(e.median <= s.median),
      notes: stoppedNote(e)
    }]
  } satisfies Section
}))

const vmRss = (): number => {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync("/proc/self/status", "utf8"))
  return match === null ? Number.NaN : Number(match[1]) * 1_024
}

/** Row 6: resident memory per idle pinned thread. Runs first, before any other layer exists. */
const rssSection = Effect.gen(function*() {
  const THREADS = 16
  const before = { rss: process.memoryUsage().rss, vm: vmRss() }
  const after = yield* withLayer({ min: THREADS, max: THREADS, idleTimeToLive: Duration.minutes(10) })(Effect.gen(function*() {
    yield* untilIdle(THREADS)
    // Let the threads finish starting up (their first collections), then read.
    yield* Effect.sleep(Duration.seconds(1))
    return { rss: process.memoryUsage().rss, vm: vmRss(), stats: yield* PinnedThreads.stats }
  }))
  const perThread = (after.rss - before.rss) / THREADS
  const perThreadVm = (after.vm - before.vm) / THREADS
  return {
    rows: [{
      id: "6",
      name: `RSS per idle pinned thread (layer min ${THREADS}, max ${THREADS})`,
      ours: `${mib(perThread)} (VmRSS ${mib(perThreadVm)})`,
      gonso: "-",
      ratio: "-",
      target: "<= 14 MiB per thread",
      verdict: verdict(perThread <= 14 * MiB),
      notes: [`process RSS ${mib(before.rss)} before the layer, ${mib(after.rss)} with ${after.stats.idle} idle threads (${after.stats.spawned} started)`]
    }]
  } satisfies Section
})

/** Row 7: 16 long tasks at once on a cold layer; how long until the last one started. */
const burstSection = Effect.gen(function*() {
  const TASKS_AT_ONCE = 16
  return yield* withLayer({ min: 1, max: TASKS_AT_ONCE })(Effect.gen(function*() {
    const set = yield* isolated(["net"])
    const before = yield* untilIdle(1)
    const sleepy = (ms: number) => NamespaceSet.run(set, Task.module<number, number>(TASKS, "sleepy", ms))
    yield* sleepy(0) // warm-up: the module loaded, on the one thread there is
    const start = performance.timeOrigin + performance.now()
    const starts = yield* Effect.forEach(Array.from({ length: TASKS_AT_ONCE }), () => sleepy(config.burstMs), { concurrency: "unbounded" })
    const end = performance.timeOrigin + performance.now()
    const after = yield* PinnedThreads.stats
    const lastStart = Math.max(...starts) - start
    return {
      rows: [{
        id: "7",
        name: `burst: ${TASKS_AT_ONCE} module tasks of ${config.burstMs} ms at once, layer min 1, max ${TASKS_AT_ONCE}`,
        ours: `last started after ${lastStart.toFixed(0)} ms; ${after.spawned - before.spawned} threads started`,
        gonso: "-",
        ratio: "-",
        target: "info",
        notes: [
          `first started after ${(Math.min(...starts) - start).toFixed(0)} ms, all done after ${(end - start).toFixed(0)} ms`,
          ...(lastStart >= config.burstMs ? ["some tasks waited for another to finish: fewer threads than tasks were ready in time"] : [])
        ]
      }]
    } satisfies Section
  }))
})

/**
 * Row 9: what "verified or dropped" costs. Once user code has run on a thread, its namespaces are
 * checked after every module task and before the next request it serves (one `fstatat` per kind):
 * back-to-back module tasks pay both checks each; the check itself is timed on a pinned thread.
 */
const verificationSection = withLayer(threadOptions)(Effect.gen(function*() {
  const set = yield* isolated(["net"])
  const nothing = NamespaceSet.run(set, Task.module<void, undefined>(TASKS, "nothing", undefined))
  const ours = yield* measure(Math.max(1, Math.floor(config.runs / 4)), [nothing])
  const check = yield* NamespaceSet.run(set, Task.module<number, number>(TASKS, "placeCheckCost", 20_000))
  return {
    rows: [
      latencyRow("9", "run(set, Task.module(nothing)): a module task back to back, net set, restored, 1 caller, two namespace checks a call", ours, { _tag: "Missing", why: "no module tasks in gonso" }),
      {
        id: "9b",
        name: "the namespace check itself: one fstatat per kind (8), on a pinned thread (n=20000)",
        ours: `${us(check)} µs`,
        gonso: "-",
        ratio: "-",
        target: "info",
        notes: [`${us(2 * check)} µs of row 9's median ${us(ours.median)} µs`]
      }
    ]
  } satisfies Section
}))

/** Row 8: RSS over many runs, one caller or eight; the RSS must level off. */
const sustainedSection = (callers: number) =>
  withLayer(threadOptions)(Effect.gen(function*() {
    const n = config.sustained
    const set = yield* isolated(["net"])
    const task = NamespaceSet.run(set, Task.tid)
    yield* timed(Math.min(1_000, n), Array.from({ length: callers }, () => task), (config.rowSeconds * 1_000) / 4)
    const early = Math.ceil(n / 100)
    const middle = Math.ceil(n / 10)
    const rss = new Map<number, number>()
    let started = 0
    let completed = 0
    const start = clock()
    const deadline = start + config.sustainedSeconds * 1_000
    yield* Effect.forEach(Array.from({ length: callers }), () =>
      Effect.gen(function*() {
        while (started < n && clock() < deadline) {
          started++
          yield* task
          completed++
          if (completed === early || completed === middle || completed === n) rss.set(completed, process.memoryUsage().rss)
        }
      }), { concurrency: "unbounded", discard: true })
    const seconds = (clock() - start) / 1_000
    const at = (count: number) => rss.has(count) ? mib(rss.get(count)!) : "not reached"
    const growth = rss.has(middle) && rss.has(n) ? rss.get(n)! - rss.get(middle)! : undefined
    return {
      rows: [{
        id: callers === 1 ? "8a" : "8b",
        name: `sustained: ${countText(n)} runs, ${callers === 1 ? "1 caller" : `${callers} concurrent callers`}`,
        ours: `RSS ${countText(early)}: ${at(early)}, ${countText(middle)}: ${at(middle)}, ${countText(n)}: ${at(n)}` +
          (growth === undefined ? "" : ` (${growth >= 0 ? "+" : ""}${mib(growth)})`),
        gonso: "-",
        ratio: "-",
        target: `RSS(${countText(n)}) - RSS(${countText(middle)}) <= 50 MiB`,
        verdict: growth === undefined ? "n/a" : verdict(growth <= 50 * MiB),
        notes: [
          `${completed} runs in ${seconds.toFixed(1)} s (${Math.round(completed / seconds).toLocaleString("en-US")} ops/s)`,
          ...(completed < n ? [`stopped by the ${config.sustainedSeconds} s limit`] : [])
        ]
      }]
    } satisfies Section
  }))

/**
 * Runs a section with a time limit against hangs (the timed loops stop themselves; this catches
 * a single operation that never returns). A section that fails becomes an error row.
 */
const guard = (id: string, name: string, limitSeconds: number, section: Effect.Effect<Section, unknown>) =>
  Effect.gen(function*() {
    console.error(`[bench/core] row ${id}: ${name}...`)
    const exit = yield* Effect.exit(Effect.timeout(section, Duration.seconds(limitSeconds)))
    if (Exit.isSuccess(exit)) return exit.value
    const why = Cause.pretty(exit.cause).split("\n")[0] ?? "failed"
    return {
      rows: [{ id, name, ours: "error", gonso: "-", ratio: "-", target: "-", notes: [why], error: true }]
    } satisfies Section
  })

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

const escape = (text: string) => text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")

/** A tidy upper bound for an axis: 1, 2 or 5 times a power of ten. */
const niceCeiling = (value: number) => {
  const power = 10 ** Math.floor(Math.log10(value))
  return [1, 2, 5, 10].map((step) => step * power).find((bound) => bound >= value)!
}

const shortNumber = (value: number) =>
  value >= 1_000_000 ? `${value / 1_000_000}M` : value >= 1_000 ? `${value / 1_000}k` : String(value)

const OURS_COLOR = "#1f77b4"
const GONSO_COLOR = "#ff7f0e"

/**
 * The chart, as SVG text: left, row 1's percentiles (log scale), ours next to gonso's; right,
 * row 4's throughput against P, one line each.
 */
const chart = (latency: Section["latency"], throughput: Section["throughput"], subtitle: string) => {
  const width = 960
  const height = 440
  const top = 70
  const bottom = 350
  const plotHeight = bottom - top
  const out: Array<string> = []
  const text = (x: number, y: number, content: string, attributes = "") =>
    out.push(`<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attributes}>${escape(content)}</text>`)
  const line = (x1: number, y1: number, x2: number, y2: number, stroke: string) =>
    out.push(`<line x1="${x1.toFixed(1)}" y1="${y1.toFixed(1)}" x2="${x2.toFixed(1)}" y2="${y2.toFixed(1)}" stroke="${stroke}"/>`)

  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`)
  out.push(`<rect width="${width}" height="${height}" fill="white"/>`)
  text(width / 2, 24, "gonso (TypeScript) pinned-thread core vs the Go original, same run, same machine", `text-anchor="middle" font-size="15" font-weight="bold"`)
  text(width / 2, 42, subtitle, `text-anchor="middle" fill="#555"`)

  // Left panel: latency percentiles, log scale.
  {
    const left = 80
    const right = 430
    const g = latency?.gonso._tag === "Measured" ? latency.gonso.figures : undefined
    const groups = latency === undefined ? [] : [
      { label: "p50", ours: latency.ours.median, gonso: g?.median },
      { label: "p90", ours: latency.ours.p90, gonso: g?.p90 },
      { label: "p99", ours: latency.ours.p99, gonso: g?.p99 }
    ]
    const values = groups.flatMap((group) => [group.ours, group.gonso]).filter((v): v is number => v !== undefined && v > 0)
    const lo = values.length === 0 ? 1 : 10 ** Math.floor(Math.log10(Math.min(...values)))
    const hi = Math.max(values.length === 0 ? 10 : 10 ** Math.ceil(Math.log10(Math.max(...values))), lo * 10)
    const y = (v: number) => bottom - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotHeight
    for (let tick = lo; tick <= hi * 1.0001; tick *= 10) {
      line(left, y(tick), right, y(tick), "#ddd")
      text(left - 6, y(tick) + 4, shortNumber(tick), `text-anchor="end"`)
    }
    line(left, top, left, bottom, "#333")
    line(left, bottom, right, bottom, "#333")
    const groupWidth = (right - left) / 3
    groups.forEach((group, i) => {
      const center = left + groupWidth * (i + 0.5)
      const barWidth = groupWidth * 0.3
      const bars = [{ value: group.ours, color: OURS_COLOR, x: center - barWidth - 2 }, { value: group.gonso, color: GONSO_COLOR, x: center + 2 }]
      for (const bar of bars) {
        if (bar.value === undefined || !(bar.value > 0)) continue
        out.push(`<rect x="${bar.x.toFixed(1)}" y="${y(bar.value).toFixed(1)}" width="${barWidth.toFixed(1)}" height="${(bottom - y(bar.value)).toFixed(1)}" fill="${bar.color}"/>`)
        text(bar.x + barWidth / 2, y(bar.value) - 4, us(bar.value), `text-anchor="middle" font-size="10"`)
      }
      text(center, bottom + 16, group.label, `text-anchor="middle"`)
    })
    text((left + right) / 2, bottom + 44, "run(set, Task.tid), net set, restored, one caller", `text-anchor="middle"`)
    text(22, (top + bottom) / 2, "latency (µs, log scale)", `text-anchor="middle" transform="rotate(-90 22 ${(top + bottom) / 2})"`)
    if (latency === undefined) text((left + right) / 2, (top + bottom) / 2, "not measured", `text-anchor="middle" fill="#999"`)
  }

  // Right panel: throughput against P.
  {
    const left = 560
    const right = 920
    const points = throughput ?? []
    const gonsoOps = (point: (typeof points)[number]) => point.gonso._tag === "Measured" ? point.gonso.figures.opsPerSecond : undefined
    const max = niceCeiling(Math.max(1, ...points.flatMap((point) => [point.ours.opsPerSecond, gonsoOps(point) ?? 0])) * 1.05)
    const y = (v: number) => bottom - (v / max) * plotHeight
    const x = (i: number) => left + ((i + 0.5) / PARALLELISM.length) * (right - left)
    for (let i = 0; i <= 5; i++) {
      const tick = (max * i) / 5
      line(left, y(tick), right, y(tick), "#ddd")
      text(left - 6, y(tick) + 4, shortNumber(Math.round(tick)), `text-anchor="end"`)
    }
    line(left, top, left, bottom, "#333")
    line(left, bottom, right, bottom, "#333")
    PARALLELISM.forEach((p, i) => text(x(i), bottom + 16, String(p), `text-anchor="middle"`))
    text(x(PARALLELISM.length - 1), bottom + 28, `ours: ${SETS_AT_64} sets`, `text-anchor="middle" font-size="10" fill="#555"`)
    const series = [
      { color: OURS_COLOR, values: points.map((point) => point.ours.opsPerSecond) },
      { color: GONSO_COLOR, values: points.map(gonsoOps) }
    ]
    for (const { color, values } of series) {
      const coordinates = values.flatMap((v, i) => v === undefined ? [] : [[x(PARALLELISM.indexOf(points[i]!.p as typeof PARALLELISM[number])), y(v)] as const])
      if (coordinates.length > 1) {
        out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${coordinates.map(([cx, cy]) => `${cx.toFixed(1)},${cy.toFixed(1)}`).join(" ")}"/>`)
      }
      for (const [cx, cy] of coordinates) out.push(`<circle cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="3.5" fill="${color}"/>`)
    }
    text((left + right) / 2, bottom + 44, "concurrent callers P (runs of Task.tid in a net set, restored)", `text-anchor="middle"`)
    text(left - 58, (top + bottom) / 2, "throughput (ops/s)", `text-anchor="middle" transform="rotate(-90 ${left - 58} ${(top + bottom) / 2})"`)
    if (points.length === 0) text((left + right) / 2, (top + bottom) / 2, "not measured", `text-anchor="middle" fill="#999"`)
  }

  // Legend.
  const gonsoMissing = latency?.gonso._tag !== "Measured" && !(throughput ?? []).some((point) => point.gonso._tag === "Measured")
  const legend = [
    { color: OURS_COLOR, label: "ours: gonso (TypeScript), NamespaceSet.run" },
    { color: GONSO_COLOR, label: `gonso (Go original), gbench DoRaw${gonsoMissing ? " (not measured)" : ""}` }
  ]
  legend.forEach((entry, i) => {
    const lx = 180 + i * 340
    out.push(`<rect x="${lx}" y="${height - 30}" width="14" height="14" fill="${entry.color}"/>`)
    text(lx + 20, height - 19, entry.label)
  })
  out.push("</svg>")
  return out.join("\n") + "\n"
}

const pad = (cells: ReadonlyArray<string>, widths: ReadonlyArray<number>) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()
const targetCell = (row: Row) => row.error ? "ERROR" : row.verdict === undefined ? row.target : `${row.target}: ${row.verdict}`

const printReport = (rows: ReadonlyArray<Row>, header: ReadonlyArray<string>) => {
  const table = rows.map((row) => [row.id, row.name, row.ours, row.gonso, row.ratio, targetCell(row)])
  const titles = ["#", "row", "ours", "gonso (Go)", "ratio ours/gonso", "target"]
  const widths = titles.map((title, i) => Math.max(title.length, ...table.map((cells) => cells[i]!.length)))
  console.log()
  for (const line of header) console.log(line)
  console.log()
  console.log(pad(titles, widths))
  console.log(pad(widths.map((w) => "-".repeat(w)), widths))
  rows.forEach((row, i) => {
    console.log(pad(table[i]!, widths))
    for (const note of row.notes) console.log(`${" ".repeat(widths[0]! + 2)}  note: ${note}`)
  })

  const cell = (text: string) => text.replaceAll("|", "\\|")
  console.log()
  console.log("Markdown (for docs/performance.md):")
  console.log()
  for (const line of header) console.log(`${line}  `)
  console.log()
  console.log(`| ${titles.join(" | ")} |`)
  console.log(`| ${titles.map(() => "---").join(" | ")} |`)
  for (const cells of table) console.log(`| ${cells.map(cell).join(" | ")} |`)
  const notes = rows.flatMap((row) => row.notes.map((note) => `- ${row.id}: ${cell(note)}`))
  if (notes.length > 0) {
    console.log()
    for (const note of notes) console.log(note)
  }

  const count = (v: Verdict) => rows.filter((row) => row.verdict === v && !row.error).length
  const errors = rows.filter((row) => row.error).length
  console.log()
  console.log(`summary: ${count("PASS")} PASS, ${count("FAIL")} FAIL, ${count("n/a")} not checked (gonso or a figure missing)` +
    `${errors > 0 ? `, ${errors} rows failed to run` : ""}`)
  return errors
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

const cpu = os.cpus()[0]?.model.trim() ?? "unknown CPU"
const header = [
  `gonso core vs the Go original (gbench), ${new Date().toISOString()}`,
  `node ${process.versions.node}, Linux ${os.release()}, ${os.availableParallelism()} CPUs (${cpu}), load ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`,
  `runs: ${config.runs} per latency row, ${config.dropRuns} restore:false, ${config.throughputRuns} per throughput row, ` +
  `${config.spawns} exec/spawn, ${config.sustained} sustained; row limit ${config.rowSeconds} s; ` +
  `threads: ${config.threads === undefined ? "library defaults" : `min = max = ${config.threads}`}`,
  `latencies in µs as median / p90 / p99; ratios are ours / gonso's (latency: lower is better; throughput: higher is better)`,
  `gonso: ${config.gbench} (the Go original; [OP] in a row name is the gbench operation it is compared with)`
]

const perRow = config.rowSeconds * 1.25 + 300 + 60
const program = Effect.gen(function*() {
  // Row 6 first, so that the baseline is a process with no pinned thread yet.
  const s6 = yield* guard("6", "RSS per pinned thread", 180, rssSection)
  const s1 = yield* guard("1", "latency, net set", perRow, latencySection("1", ["net"], "doraw_net_restore", 1.0, true))
  const s1b = yield* guard("1b", "latency, alternating sets", perRow, alternatingSection)
  const s3 = yield* guard("3", "latency, net+uts set", perRow, latencySection("3", ["net", "uts"], "do_net_uts_restore"))
  const s2 = yield* guard("2", "latency, restore: false", perRow, dropSection)
  const s4 = yield* guard("4", "throughput", perRow * PARALLELISM.length, throughputSection)
  const s5 = yield* guard("5", "exec vs spawn", perRow, execSection)
  const s7 = yield* guard("7", "burst", config.burstMs / 1_000 + 180, burstSection)
  const s9 = yield* guard("9", "verification", perRow, verificationSection)
  const s8: Array<Section> = []
  if (config.sustained > 0) {
    for (const callers of [1, 8]) {
      s8.push(yield* guard(callers === 1 ? "8a" : "8b", `sustained use, ${callers} caller(s)`, config.sustainedSeconds + 120, sustainedSection(callers)))
    }
  }
  return [s1, s1b, s2, s3, s4, s5, s6, s7, s9, ...s8]
})

const sections = await Effect.runPromise(program)
const rows = sections.flatMap((section) => section.rows)
const latency = sections.find((section) => section.latency !== undefined)?.latency
const throughput = sections.find((section) => section.throughput !== undefined)?.throughput
fs.writeFileSync(
  CHART,
  chart(latency, throughput, `${header[1]}; ${config.runs} runs (latency), ${config.throughputRuns} per P (throughput)`)
)
const errors = printReport(rows, header)
console.log(`chart: ${fileURLToPath(CHART)}`)
if (config.sustained === 0) console.log("row 8 skipped (GONSO_BENCH_SUSTAINED=0)")
process.exitCode = errors > 0 ? 1 : 0
