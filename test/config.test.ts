/**
 * `PinnedThreads.layerConfig`: options from Effect `Config`, as the doc comment's example reads them.
 */
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { Config, ConfigProvider, Effect, Exit } from "effect"
import { NamespaceSet, PinnedThreads, Task } from "../src/index.ts"

const PinnedThreadsLive = PinnedThreads.layerConfig({
  min: Config.Int("GONSO_MIN_THREADS").pipe(Config.withDefault(1)),
  max: Config.Int("GONSO_MAX_THREADS").pipe(Config.withDefault(4)),
  idleTimeToLive: Config.Duration("GONSO_IDLE_TTL").pipe(Config.withDefault("30 seconds"))
})

describe("PinnedThreads.layerConfig", () => {
  it.live("reads its options from the ConfigProvider", () =>
    Effect.gen(function*() {
      const set = yield* NamespaceSet.current(["net"])
      const tid = yield* NamespaceSet.run(Task.tid)(set)
      assert.isAbove(tid, 0)
      // min: 2, from the provider: a second thread is started beside the one that served.
      let stats = yield* PinnedThreads.stats
      for (let i = 0; i < 250 && stats.spawned < 2; i++) {
        yield* Effect.sleep("20 millis")
        stats = yield* PinnedThreads.stats
      }
      assert.strictEqual(stats.spawned, 2)
      assert.strictEqual(stats.idle + stats.busy, 2)
    }).pipe(
      Effect.scoped,
      Effect.provide(PinnedThreadsLive),
      Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ GONSO_MIN_THREADS: "2", GONSO_IDLE_TTL: "5 seconds" })))
    ))

  it.live("reads workerUrl, a path or file: URL that is checked like one given in code", () => {
    const WithWorker = PinnedThreads.layerConfig({
      min: Config.Int("GONSO_MIN_THREADS").pipe(Config.withDefault(1)),
      workerUrl: Config.String("GONSO_WORKER_URL").pipe(Config.withDefault(undefined))
    })
    const tidWith = (env: Record<string, string>) =>
      Effect.scoped(Effect.flatMap(NamespaceSet.current(["net"]), NamespaceSet.run(Task.tid))).pipe(
        Effect.provide(WithWorker),
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env))),
        Effect.exit
      )
    return Effect.gen(function*() {
      const worker = fileURLToPath(new URL("../src/internal/worker/main.ts", import.meta.url))
      const given = yield* tidWith({ GONSO_WORKER_URL: worker })
      assert.isTrue(Exit.isSuccess(given) && given.value > 0, String(given))
      const unset = yield* tidWith({})
      assert.isTrue(Exit.isSuccess(unset), String(unset))
      const relative = yield* tidWith({ GONSO_WORKER_URL: "gonso-worker.js" })
      assert.match(String(relative), /InvalidOptions[\s\S]*workerUrl must be a file: URL or an absolute path/)
    })
  })

  it.live("fails with a ConfigError for an option that is not valid", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.provide(PinnedThreads.stats, PinnedThreadsLive))
      assert.isTrue(Exit.isFailure(exit))
      assert.match(String(exit), /GONSO_MAX_THREADS/)
    }).pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ GONSO_MAX_THREADS: "many" })))))
})
