/**
 * Checks the `@example` blocks of the public modules' doc comments: every exported value has one,
 * and each compiles, as a consumer's file importing `gonso` would, under the project's strict
 * compiler options. The examples are written into `.examples/` (one file each, named after the
 * module and the export) and type-checked there; an error is reported at its line in `src/`.
 *
 *     node scripts/examples.ts
 *     node scripts/examples.ts --write DIR   # only write them, into DIR (a consumer's check)
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..")
const out = path.join(root, ".examples")

/** The public modules: the entry points of the API reference. */
const modules: ReadonlyArray<string> = JSON.parse(fs.readFileSync(path.join(root, "typedoc.json"), "utf8")).entryPoints

interface Example {
  /** The file written into `.examples/`. */
  readonly file: string
  /** Where the example's first code line is in its module. */
  readonly source: string
  readonly line: number
  readonly code: string
}

const examples: Array<Example> = []
const missing: Array<string> = []

/**
 * The files whose doc comments document a public module: the module itself, and the internal
 * modules it re-exports declarations of (`export { A, B } from "./internal/x.ts"`), where the doc
 * comments of those declarations are; of these, only the names re-exported count.
 */
const documenting = (module: string): ReadonlyArray<{ readonly file: string; readonly names?: ReadonlySet<string> }> => {
  const text = fs.readFileSync(path.join(root, module), "utf8")
  const reexported = [...text.matchAll(/^export (?:type )?\{([^}]*)\} from "(\.\/internal\/[^"]+)"/gm)].map((match) => ({
    file: path.join(path.dirname(module), match[2]!),
    names: new Set(match[1]!.split(",").map((each) => each.trim().replace(/^type /, "")).filter(Boolean))
  }))
  return [{ file: module }, ...reexported]
}

for (const { module, file, names } of modules.flatMap((module) => documenting(module).map((each) => ({ module, ...each })))) {
  const name = path.basename(module, ".ts")
  const text = fs.readFileSync(path.join(root, file), "utf8")
  // Each doc comment, with the line where it starts and the declaration that follows it.
  for (const match of text.matchAll(/\/\*\*([\s\S]*?)\*\/\s*\n([^\n]*)/g)) {
    const startLine = text.slice(0, match.index).split("\n").length
    const comment = match[1]!
    const declaration = match[2]!
    const exported = /^export (?:const|function|let) (\w+)|^export \{ ?(\w+)/.exec(declaration)
    // In an internal module, only what the public module re-exports (its types' examples too).
    const declared = /^export (?:const|function|let|class|interface|type) (\w+)/.exec(declaration)?.[1]
    if (names !== undefined && !names.has(declared ?? "")) continue
    const blocks = [...comment.matchAll(/@example[^\n]*\n((?:\s*\*[^\n]*\n)*?)\s*\*\s*```ts\n([\s\S]*?)\n\s*\*\s*```/g)]
    // `@internal` exports are not part of the API (the reference leaves them out too).
    if (exported !== null && blocks.length === 0 && !comment.includes("@internal")) {
      missing.push(`${file}:${startLine + comment.split("\n").length - 1}: ${exported[1] ?? exported[2]} has no @example`)
    }
    blocks.forEach((block, index) => {
      const before = comment.slice(0, block.index! + block[0].indexOf("```ts"))
      const line = startLine + before.split("\n").length
      const code = block[2]!.split("\n").map((each) => each.replace(/^\s*\* ?/, "")).join("\n")
      const label = exported?.[1] ?? exported?.[2] ?? `line${line}`
      examples.push({ file: `${name}.${label}.${index}.ts`, source: file, line, code })
    })
  }
}

const writeInto = process.argv[2] === "--write" ? process.argv[3] : undefined
const writeExamples = (dir: string) => {
  fs.rmSync(dir, { recursive: true, force: true })
  fs.mkdirSync(dir, { recursive: true })
  for (const example of examples) {
    // `export {}` keeps each example a module of its own, so their names do not collide.
    fs.writeFileSync(path.join(dir, example.file), `${example.code}\nexport {}\n`)
  }
}
if (writeInto !== undefined) {
  writeExamples(path.resolve(writeInto))
  console.log(`examples: ${examples.length} written into ${writeInto}`)
  process.exit(missing.length > 0 ? 1 : 0)
}
writeExamples(out)
fs.writeFileSync(
  path.join(out, "tsconfig.json"),
  JSON.stringify({
    extends: "../tsconfig.json",
    compilerOptions: {
      rootDir: "..",
      // A consumer imports the package by name; here the name resolves to the sources.
      paths: { "gonso": ["../src/index.ts"], "gonso/*": ["../src/*.ts"] }
    },
    include: ["*.ts"]
  }, null, 2)
)

let failed = missing.length > 0
for (const each of missing) console.error(each)

try {
  execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", path.join(out, "tsconfig.json"), "--pretty", "false"], {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"]
  })
} catch (error) {
  failed = true
  const output = `${(error as { stdout?: string }).stdout ?? ""}${(error as { stderr?: string }).stderr ?? ""}`
  // `.examples/NamespaceSet.run.0.ts(3,5): error TS...` at the example's own line in its module.
  for (const line of output.split("\n")) {
    const located = /^\.examples\/([^()]+)\((\d+),(\d+)\): (.*)$/.exec(line)
    const example = located && examples.find((each) => each.file === located[1])
    if (located && example) {
      console.error(`${example.source}:${example.line + Number(located[2]) - 1}: ${located[4]}`)
    } else if (line.trim() !== "") {
      console.error(line)
    }
  }
}

if (failed) {
  console.error(`examples: ${missing.length} exported values without an example; see the errors above`)
  process.exit(1)
}
console.log(`examples: ${examples.length} examples in ${modules.length} modules compile`)
