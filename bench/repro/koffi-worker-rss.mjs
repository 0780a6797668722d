/**
 * Reproduction: every Worker that loads koffi keeps ~50 KB of native memory after it has exited;
 * Workers that do not load it keep nothing. gonso loads koffi in every pinned thread, so each
 * thread dropped and replaced grows the process's RSS for good.
 *
 *   node_modules/.bin/node --expose-gc bench/repro/koffi-worker-rss.mjs plain|require|load|koffi [workers]
 *
 * `plain`: an empty Worker; `require`: require("koffi") only; `load`: and load libc;
 * `koffi`: and declare and call a function; `patched`: the same with the addon gonso builds at
 * install time with koffi's per-thread memory fix (build/koffi/koffi.node, see
 * scripts/koffi/build.mjs); `gonso`: `patched`, and the main thread returns the malloc arenas' free
 * memory after each Worker ends (`malloc_trim(0)`), as gonso does when a pinned thread has ended.
 * Prints RSS (and the main heap, after a GC) as it goes.
 */
import { Worker } from "node:worker_threads"
import { createRequire } from "node:module"
const mode = process.argv[2]
const n = Number(process.argv[3] ?? 600)
const code = mode === "require" ? `const require = process.getBuiltinModule("module").createRequire(${JSON.stringify(process.cwd() + "/")}); require("koffi"); require("worker_threads").parentPort.postMessage(1)` : mode === "load" ? `const require = process.getBuiltinModule("module").createRequire(${JSON.stringify(process.cwd() + "/")}); const k = require("koffi"); const l = k.load("libc.so.6"); l.unload?.(); require("worker_threads").parentPort.postMessage(1)` : mode === "koffi"
  ? `const require = process.getBuiltinModule("module").createRequire(${JSON.stringify(process.cwd() + "/")}); const k = require("koffi"); const l = k.load("libc.so.6"); l.func("int gettid()")(); require("worker_threads").parentPort.postMessage(1)`
  : mode === "patched" || mode === "gonso"
  ? `const k = process.getBuiltinModule("module").createRequire(${JSON.stringify(process.cwd() + "/")})(${JSON.stringify(process.cwd() + "/build/koffi/koffi.node")}); const l = k.load("libc.so.6"); l.func("int gettid()")(); require("worker_threads").parentPort.postMessage(1)`
  : `require("worker_threads").parentPort.postMessage(1)`
const trim = mode === "gonso" ? createRequire(import.meta.url)(`${process.cwd()}/build/koffi/koffi.node`).load("libc.so.6").func("int malloc_trim(size_t pad)") : undefined
for (let i = 1; i <= n; i++) {
  const w = new Worker(code, { eval: true })
  await new Promise((r) => w.once("message", r))
  await w.terminate()
  trim?.(0)
  if (i % (n / 6) === 0) { globalThis.gc?.(); const u = process.memoryUsage(); console.log(mode, i, (u.rss / 2 ** 20).toFixed(1), "MiB rss", (u.heapUsed / 2 ** 20).toFixed(1), "heap") }
}
