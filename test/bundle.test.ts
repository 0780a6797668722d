/**
 * gonso bundled by esbuild, as docs/bundling.md says to: the built package installed in a consumer
 * project, its program bundled with `gonso/worker` as a second entry, and the two bundles run from
 * a directory where neither gonso's sources nor its build can be found (only koffi, which gonso
 * loads at run time, is installed beside them). The pinned threads must run the bundled worker
 * given as `workerUrl`, and the namespace work must happen, as the kernel reports it; without
 * `workerUrl`, the program must fail with a typed error that names the missing worker and says
 * what to do, and not hang or crash.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { promisify } from "node:util"
import * as esbuild from "esbuild"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const run = promisify(execFile)
const root = fileURLToPath(new URL("..", import.meta.url))
const modules = path.join(root, "node_modules")

let work: string
/** Where the bundles are run from: the two bundles, and koffi. */
let ship: string

/** Runs Node with `args` where the bundles are (or in `cwd`), never longer than `timeout` ms. */
const node = (args: ReadonlyArray<string>, options: { readonly cwd?: string; readonly env?: Record<string, string>; readonly timeout?: number } = {}) =>
  run(process.execPath, [...args], {
    cwd: options.cwd ?? ship,
    env: { ...process.env, ...options.env },
    timeout: options.timeout ?? 30_000,
    encoding: "utf8"
  }).catch(
    (error: { code?: number; stdout?: string; stderr?: string; signal?: string }) => ({
      stdout: error.stdout ?? "",
      stderr: error.stderr ?? "",
      code: error.code,
      signal: error.signal
    })
  )

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "gonso-bundle-"))
  // The package, as `npm run build` makes it (emit only: the suite type-checks elsewhere), in a
  // consumer project's node_modules, beside the Effect it depends on.
  const consumer = path.join(work, "consumer")
  const installed = path.join(consumer, "node_modules", "gonso")
  fs.mkdirSync(installed, { recursive: true })
  await run(process.execPath, [
    path.join(modules, "typescript", "bin", "tsc"),
    "-p",
    path.join(root, "tsconfig.build.json"),
    "--outDir",
    path.join(installed, "dist"),
    "--noCheck",
    "--declaration",
    "false",
    "--declarationMap",
    "false",
    "--sourceMap",
    "false"
  ], { cwd: root })
  fs.copyFileSync(path.join(root, "package.json"), path.join(installed, "package.json"))
  fs.symlinkSync(path.join(modules, "effect"), path.join(consumer, "node_modules", "effect"))
  fs.symlinkSync(path.join(modules, "@effect"), path.join(consumer, "node_modules", "@effect"))
  fs.writeFileSync(path.join(consumer, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }))
  fs.copyFileSync(new URL("./fixtures/bundled-app.js", import.meta.url), path.join(consumer, "main.js"))

  // The recipe of docs/bundling.md.
  const out = path.join(consumer, "out")
  await esbuild.build({
    absWorkingDir: consumer,
    entryPoints: { app: "main.js", "gonso-worker": "gonso/worker" },
    outdir: out,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node22",
    external: ["koffi"],
    logLevel: "silent"
  })

  // Shipped: the bundles alone, and koffi with its native binary, copied (not linked) so that
  // nothing resolves back into this repository.
  ship = path.join(work, "ship")
  fs.mkdirSync(path.join(ship, "node_modules"), { recursive: true })
  for (const file of fs.readdirSync(out)) fs.copyFileSync(path.join(out, file), path.join(ship, file))
  fs.cpSync(path.join(modules, "koffi"), path.join(ship, "node_modules", "koffi"), { recursive: true })
  fs.cpSync(path.join(modules, "@koromix"), path.join(ship, "node_modules", "@koromix"), { recursive: true })
}, 180_000)

afterAll(() => {
  if (work !== undefined) fs.rmSync(work, { recursive: true, force: true })
})

describe("an esbuild bundle", () => {
  it("is shipped without gonso: two bundles and koffi, nothing that resolves gonso", async () => {
    expect(fs.readdirSync(ship).sort()).toEqual(["app.js", "gonso-worker.js", "node_modules"])
    expect(fs.readdirSync(path.join(ship, "node_modules")).sort()).toEqual(["@koromix", "koffi"])
    expect(fs.existsSync(path.join(ship, "worker", "main.js"))).toBe(false)
    const resolved = await node(["--input-type=module", "-e", `
      for (const name of ["gonso", "gonso/worker"]) {
        try {
          console.log(import.meta.resolve(name))
        } catch {
          console.log("not found")
        }
      }
    `])
    expect(resolved.stdout.trim().split("\n")).toEqual(["not found", "not found"])
  })

  it("runs its pinned threads on the bundled worker given as workerUrl: the work happens in the new namespace", async () => {
    const result = await node(["app.js"])
    expect(result.stderr).toBe("")
    const { ok } = JSON.parse(result.stdout) as { ok: { inside: string; thread: number; own: number; host: number } }
    // The host's namespace, as the kernel shows it to this process (the bundle ran in it too).
    const host = fs.statSync("/proc/self/ns/net").ino
    expect(ok.host).toBe(host)
    expect(ok.own).not.toBe(host)
    // A process started inside, and the pinned thread, both in the namespace the program made.
    expect(ok.inside).toBe(`net:[${ok.own}]`)
    expect(ok.thread).toBe(ok.own)
  })

  it("without workerUrl fails with ThreadFailure naming the missing worker and the docs, when the layer is built", async () => {
    const result = await node(["app.js"], { env: { GONSO_APP_WORKER: "default" } })
    expect(result.stderr).toBe("")
    const { failed } = JSON.parse(result.stdout) as { failed: { tag: string; reason: string } }
    expect(failed.tag).toBe("ThreadFailure")
    // Found missing when the layer was built, not when a thread tried to load it.
    expect(failed.reason).toMatch(/^gonso's worker script /)
    expect(failed.reason).toContain(path.join(ship, "worker", "main.js"))
    expect(failed.reason).toContain("workerUrl")
    expect(failed.reason).toContain("docs/bundling.md")
    expect("code" in result && result.code).toBe(2)
  })

  it("given itself as workerUrl (a mistake), fails at once with ThreadFailure instead of starting threads without end", async () => {
    // Each thread would run the program, which would build a layer and start a thread of its
    // own, and so on: the layer refuses to be built on a pinned thread, so the first thread
    // ends, and the program's first run fails.
    const result = await node(["app.js"], { env: { GONSO_APP_WORKER: "self" }, timeout: 10_000 })
    expect(result.stderr).toBe("")
    const { failed } = JSON.parse(result.stdout) as { failed: { tag: string; reason: string } }
    expect(failed.tag).toBe("ThreadFailure")
    // The thread could not start: the program it ran could not build its layer there.
    expect(failed.reason).toContain(`could not start ${path.join(ship, "app.js")}: `)
    expect(failed.reason).toContain("PinnedThreads.layer was built on a pinned thread")
    expect(failed.reason).toContain("gonso/worker")
  })

  it("its worker, imported on the main thread, throws a clear error having done nothing", async () => {
    const result = await node(["--input-type=module", "-e", importOnMainThread(pathToFileURL(path.join(ship, "gonso-worker.js")).href)])
    expect(JSON.parse(result.stdout)).toEqual({ threw: expect.stringContaining("must not be imported"), newFds: 0 })
  })
})

/**
 * A script that imports the worker script on the main thread and prints what it threw and how many
 * fds it left open (a pinned thread opens its own at birth).
 */
const importOnMainThread = (url: string) => `
import * as fs from "node:fs"
const fds = () => fs.readdirSync("/proc/self/fd").length
const before = fds()
let threw
try {
  await import(${JSON.stringify(url)})
} catch (error) {
  threw = error.message
}
console.log(JSON.stringify({ threw, newFds: fds() - before }))
`

describe("gonso's worker from its sources", () => {
  it("imported on the main thread, throws a clear error having done nothing", async () => {
    const result = await node(["--input-type=module", "-e", importOnMainThread(new URL("../src/internal/worker/main.ts", import.meta.url).href)], { cwd: root })
    expect(JSON.parse(result.stdout)).toEqual({ threw: expect.stringContaining("must not be imported"), newFds: 0 })
  })
})
