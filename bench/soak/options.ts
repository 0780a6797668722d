/**
 * The soak's options (`--seconds`, `--fibers`, `--seed`, or their environment variables), and
 * its private mount namespace: the soak runs as root, and re-executes itself under `unshare
 * --mount --propagation private` so that no mount it makes can reach the host. Imported first:
 * the outer run ends here, once the inner one has.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"

const option = (name: string, env: string, fallback: number): number => {
  const at = process.argv.indexOf(`--${name}`)
  const inline = process.argv.find((arg) => arg.startsWith(`--${name}=`))
  const raw = inline?.slice(name.length + 3) ?? (at >= 0 ? process.argv[at + 1] : undefined) ?? process.env[env]
  const value = raw === undefined ? fallback : Number(raw)
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`soak: --${name} must be a positive number, not ${raw}`)
    process.exit(2)
  }
  return value
}

export const SECONDS = option("seconds", "GONSO_SOAK_SECONDS", 120)
export const FIBERS = Math.max(64, Math.floor(option("fibers", "GONSO_SOAK_FIBERS", 64)))
export const SEED = Math.floor(option("seed", "GONSO_SOAK_SEED", (Date.now() % 1_000_000) + 1))
export const PREFIX = "gonso-soak-"

if (process.getuid?.() !== 0) {
  console.error("soak: run as root (namespaces need CAP_SYS_ADMIN)")
  process.exit(2)
}

if (process.env.GONSO_SOAK_INNER !== "1") {
  // Re-run in a private mount namespace; afterwards remove any name the inner run left behind
  // in /run/netns (its mounts died with its namespace, the empty files did not).
  const child = spawnSync("unshare", ["--mount", "--propagation", "private", "--", process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, GONSO_SOAK_INNER: "1" }
  })
  let left: Array<string> = []
  try {
    left = fs.readdirSync("/run/netns").filter((name) => name.startsWith(PREFIX))
  } catch {
    // No /run/netns.
  }
  for (const name of left) fs.rmSync(`/run/netns/${name}`, { force: true })
  // unshare execs the inner run, so its pid is the inner run's: its scratch directory, if a crash left it.
  if (child.pid !== undefined) fs.rmSync(`/dev/shm/${PREFIX}${child.pid}`, { recursive: true, force: true })
  if (left.length > 0) console.error(`soak: removed ${left.length} /run/netns names left behind`)
  if (child.error !== undefined) console.error(`soak: ${child.error.message}`)
  process.exit(child.status ?? 1)
}
