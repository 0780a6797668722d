/**
 * Checks the direction of the imports in `src/`: the public modules (`src/*.ts`) are the API and
 * may import `src/internal/`; nothing in `src/internal/` imports a public module, not even for a
 * type; and no module imports itself through others (no import circle, types included).
 *
 *     node scripts/check-layers.ts
 *
 * Prints each backward import and each circle, and exits 1 if there is any.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import ts from "typescript"

const root = path.resolve(import.meta.dirname, "..")
const src = path.join(root, "src")

const modules = (fs.readdirSync(src, { recursive: true, encoding: "utf8" }) as Array<string>)
  .filter((file) => file.endsWith(".ts"))
  .map((file) => path.join(src, file))
  .sort()

const isInternal = (file: string) => file.startsWith(path.join(src, "internal") + path.sep)
const name = (file: string) => path.relative(root, file)

/** What each module imports of the others, static, dynamic and type-only imports and re-exports alike. */
const imports = new Map<string, Array<string>>()
for (const file of modules) {
  const info = ts.preProcessFile(fs.readFileSync(file, "utf8"), true, true)
  const targets = info.importedFiles
    .map((each) => each.fileName)
    .filter((specifier) => specifier.startsWith("."))
    .map((specifier) => path.resolve(path.dirname(file), specifier))
    .filter((target) => modules.includes(target))
  imports.set(file, [...new Set(targets)])
}

const problems: Array<string> = []

for (const [file, targets] of imports) {
  if (!isInternal(file)) continue
  for (const target of targets) {
    if (!isInternal(target)) problems.push(`backward import: ${name(file)} imports the public module ${name(target)}`)
  }
}

// Circles: the strongly connected components of more than one module (Tarjan), and modules
// that import themselves.
const index = new Map<string, number>()
const low = new Map<string, number>()
const stack: Array<string> = []
const onStack = new Set<string>()
let counter = 0
const visit = (file: string): void => {
  index.set(file, counter)
  low.set(file, counter)
  counter++
  stack.push(file)
  onStack.add(file)
  for (const target of imports.get(file) ?? []) {
    if (!index.has(target)) {
      visit(target)
      low.set(file, Math.min(low.get(file)!, low.get(target)!))
    } else if (onStack.has(target)) {
      low.set(file, Math.min(low.get(file)!, index.get(target)!))
    }
  }
  if (low.get(file) === index.get(file)) {
    const component: Array<string> = []
    for (;;) {
      const each = stack.pop()!
      onStack.delete(each)
      component.push(each)
      if (each === file) break
    }
    if (component.length > 1 || imports.get(file)!.includes(file)) {
      problems.push(`import circle: ${component.map(name).sort().join(", ")}`)
    }
  }
}
for (const file of modules) if (!index.has(file)) visit(file)

for (const problem of problems) console.error(problem)
if (problems.length > 0) {
  console.error(`layers: ${problems.length} problem(s); see docs/architecture.md`)
  process.exit(1)
}
console.log(`layers: ${modules.length} modules, no backward import, no circle`)
