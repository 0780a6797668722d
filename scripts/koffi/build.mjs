// Builds koffi's native addon from the sources its npm package ships, with one fix (see
// instance-data.patch beside this file): koffi never frees the data it allocates for each thread
// that loads it, so every pinned thread that ends would leave about 35 KB behind. gonso loads the
// addon built here when it is there (src/internal/libc.ts), and koffi's own prebuilt one
// otherwise.
//
// Run by `npm install` (the `postinstall` script). It needs CMake and a C++ compiler; without
// them, or on any failure, it says so in one line and leaves koffi as it is: gonso works either
// way. GONSO_KOFFI_BUILD=0 skips it. Plain JavaScript: it runs before anything is built, on
// whichever Node runs npm.
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const PATCH = "instance-data"
const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, "../..")
const out = path.join(root, "build", "koffi")
const say = (line) => console.error(`gonso: ${line}`)

const skip = (why) => {
  say(`koffi's native addon was not rebuilt with its per-thread memory fix (${why}); gonso uses koffi's own, and each pinned thread that ends leaves about 35 KB behind (see docs/reliability.md)`)
  process.exit(0)
}

if (process.env.GONSO_KOFFI_BUILD === "0") process.exit(0)
if (process.platform !== "linux") process.exit(0)

const require = createRequire(path.join(root, "package.json"))
let koffiDir
let version
try {
  // koffi's exports do not include its package.json: from its entry up to the directory that has it.
  for (let dir = path.dirname(require.resolve("koffi")); koffiDir === undefined; dir = path.dirname(dir)) {
    const manifest = path.join(dir, "package.json")
    if (fs.existsSync(manifest) && JSON.parse(fs.readFileSync(manifest, "utf8")).name === "koffi") {
      koffiDir = dir
      version = JSON.parse(fs.readFileSync(manifest, "utf8")).version
    }
    if (dir === path.dirname(dir)) break
  }
} catch {
  // Not resolvable.
}
if (koffiDir === undefined) skip("koffi is not installed")
const stamp = path.join(out, "koffi.json")
try {
  const built = JSON.parse(fs.readFileSync(stamp, "utf8"))
  if (built.version === version && built.patch === PATCH && fs.existsSync(path.join(out, "koffi.node"))) process.exit(0)
} catch {
  // Not built yet.
}
if (spawnSync("cmake", ["--version"]).status !== 0) skip("CMake is not installed")

const work = fs.mkdtempSync(path.join(os.tmpdir(), "gonso-koffi-"))
try {
  for (const entry of ["package.json", "cnoke.cjs", "src", "vendor", "lib"]) {
    fs.cpSync(path.join(koffiDir, entry), path.join(work, entry), { recursive: true })
  }
  const ffi = path.join(work, "src", "koffi", "src", "ffi.cc")
  const source = fs.readFileSync(ffi, "utf8")
  const anchor = "    instance->main_thread_id = std::this_thread::get_id();\n"
  if (source.split(anchor).length !== 2 || source.includes("napi_set_instance_data(env, instance")) {
    skip(`koffi ${version}'s sources are not the ones the fix was made for`)
  }
  fs.writeFileSync(ffi, source.replace(anchor, `${anchor}
    // Freed with its environment (a Worker that loaded Koffi and then ended).
    napi_set_instance_data(env, instance, [](napi_env, void *data, void *) {
        delete (InstanceData *)data;
    }, nullptr);
`))
  const built = spawnSync(process.execPath, ["cnoke.cjs", "-P", ".", "-D", "src/koffi", "--release"], { cwd: work, encoding: "utf8" })
  if (built.status !== 0) skip(`its build failed: ${(built.stderr || built.stdout || "").trim().split("\n").slice(-3).join(" / ")}`)
  const addon = fs.readdirSync(path.join(work, "build", "koffi"), { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => path.join(work, "build", "koffi", entry.name, "koffi.node"))
    .find((file) => fs.existsSync(file))
  if (addon === undefined) skip("its build made no koffi.node")
  fs.mkdirSync(out, { recursive: true })
  // The stamp goes last: an addon without it is never loaded.
  fs.rmSync(stamp, { force: true })
  fs.copyFileSync(addon, path.join(out, "koffi.node"))
  fs.writeFileSync(stamp, `${JSON.stringify({ version, patch: PATCH })}\n`)
  say(`built koffi ${version}'s native addon with its per-thread memory fix (${path.relative(root, out)})`)
} finally {
  fs.rmSync(work, { recursive: true, force: true })
}
