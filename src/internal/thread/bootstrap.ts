/**
 * How a pinned thread's Worker is made: which script it runs, and, when gonso runs from its
 * TypeScript sources, the stripped modules and the small script that hands them to Node's loader.
 *
 * @internal
 */
import * as fs from "node:fs"
import * as nodeModule from "node:module"
import { Worker } from "node:worker_threads"
import type * as channel from "../channel.ts"
import { PINNED_THREAD, type WorkerData } from "../protocol.ts"
import * as runtime from "../runtime.ts"

/**
 * Whether a worker script is TypeScript that Node must be handed stripped (through `bootstrap`):
 * Bun and Deno run a TypeScript Worker themselves, and their `node:module` has no stripper.
 */
export const isTypeScript = (entry: URL): boolean => entry.pathname.endsWith(".ts") && !runtime.runsTypeScript

/** What a failure to load the worker script should tell: where it was, and what to do. */
export const bundlingHint =
  "if gonso is bundled, bundle its worker (gonso/worker) as an entry of its own and pass that file's URL as PinnedThreads.layer's workerUrl (see gonso's docs/bundling.md)"

/**
 * Run from TypeScript sources, every Worker that imports a `.ts` file loads Node's type stripper,
 * about 11 MB per thread, most of a thread's memory. The main thread has it loaded already: it
 * strips the worker's modules once, and each Worker starts from a small script that hands them to
 * Node's module loader through a load hook, so no thread loads the stripper for its own code.
 */
export const strippedSources = (() => {
  const byEntry = new Map<string, Record<string, string>>()
  return (entry: URL): Record<string, string> => {
    const known = byEntry.get(entry.href)
    if (known !== undefined) return known
    const collected: Record<string, string> = {}
    const visit = (url: URL) => {
      if (collected[url.href] !== undefined) return
      const source = strip(fs.readFileSync(url, "utf8"))
      collected[url.href] = source
      // Statements start a line; an import in a doc comment's example (" * import ...") is not one.
      for (const match of source.matchAll(/^(?:import|export)\b[^"';]*?from\s*["'](\.{1,2}\/[^"']+)["']/gm)) {
        visit(new URL(match[1]!, url))
      }
    }
    visit(entry)
    byEntry.set(entry.href, collected)
    return collected
  }
})()

/**
 * Node marks `stripTypeScriptTypes` experimental and warns once; it does the stripping Node itself
 * does. `"strip"` (the worker's sources are erasable TypeScript): Node 26 has no other mode. Read
 * off the module object when it is called, not imported by name: a runtime without it (Bun) must
 * still load gonso's built package, which never strips.
 */
const strip = (code: string): string => {
  const emitWarning = process.emitWarning
  process.emitWarning = () => {}
  try {
    return nodeModule.stripTypeScriptTypes(code, { mode: "strip" })
  } finally {
    process.emitWarning = emitWarning
  }
}

const bootstrap = `
const { registerHooks } = require("node:module")
const { workerData } = require("node:worker_threads")
const sources = workerData.sources
registerHooks({
  load(url, context, nextLoad) {
    const source = sources[url]
    return source === undefined ? nextLoad(url, context) : { format: "module", source, shortCircuit: true }
  }
})
import(workerData.entry)
`

/** A Worker running `entry` as a pinned thread on the channel `buffers`; throws what `new Worker` throws. */
export const spawnWorker = (entry: URL, buffers: channel.Buffers): Worker => {
  const data: WorkerData = isTypeScript(entry)
    ? { gonso: PINNED_THREAD, channel: buffers, sources: strippedSources(entry), entry: entry.href }
    : { gonso: PINNED_THREAD, channel: buffers }
  return isTypeScript(entry)
    ? new Worker(bootstrap, { eval: true, workerData: data, stdout: false, stderr: false })
    : new Worker(entry, { workerData: data, stdout: false, stderr: false })
}
