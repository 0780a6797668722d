/**
 * Runs around every test file: the main thread's namespaces must be exactly where they were.
 */
import * as fs from "node:fs"
import { afterAll, beforeAll, expect } from "vitest"

const kinds = ["cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "time_for_children", "user", "uts"]
const mainNs = () =>
  Object.fromEntries(kinds.map((kind) => {
    const stats = fs.statSync(`/proc/${process.pid}/task/${process.pid}/ns/${kind}`)
    return [kind, `${stats.dev}:${stats.ino}`]
  }))

let before: Record<string, string>
beforeAll(() => {
  before = mainNs()
})
afterAll(() => {
  expect(mainNs(), "the main thread's namespaces changed").toEqual(before)
})
