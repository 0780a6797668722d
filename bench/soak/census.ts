/**
 * The kernel's view of this process, read from `/proc`: its threads and their namespaces, its fds,
 * children, mounts, `/run/netns` names, host veth links and the network namespaces it keeps
 * alive. The soak's invariants and its account of leaks are made from these.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import { all as allKinds, childrenFile, type NamespaceKind } from "../../src/internal/kind.ts"

export const PID = process.pid
export const nsFiles = ["cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "time_for_children", "user", "uts"]

export const devIno = (path: string) => {
  const stats = fs.statSync(path)
  return `${stats.dev}:${stats.ino}`
}
/** Every namespace file of thread `tid`, as dev:ino. */
export const threadNs = (tid: string | number) => Object.fromEntries(nsFiles.map((file) => [file, devIno(`/proc/self/task/${tid}/ns/${file}`)]))
export const hostThread = threadNs(PID)
/** The main thread's namespace of each kind (for pid and time: its children's), as dev:ino. */
export const host = Object.fromEntries(allKinds.map((kind) => [kind, hostThread[childrenFile[kind]]!])) as Record<NamespaceKind, string>

export const tids = () => fs.readdirSync("/proc/self/task")
export const comm = (tid: string) => {
  try {
    return fs.readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim()
  } catch {
    return ""
  }
}
export const fdLinks = () =>
  fs.readdirSync("/proc/self/fd").flatMap((fd) => {
    try {
      return [`${fd} -> ${fs.readlinkSync(`/proc/self/fd/${fd}`)}`]
    } catch {
      return []
    }
  })
/** Processes whose parent is this process (any of its threads), with their state. */
export const ownChildren = () =>
  fs.readdirSync("/proc").filter((name) => /^\d+$/.test(name)).flatMap((pid) => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      return Number(fields[1]) === PID ? [{ pid: Number(pid), state: fields[0]!, name: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")) }] : []
    } catch {
      return []
    }
  })
export const mountLines = () => fs.readFileSync("/proc/self/mountinfo", "utf8").trim().split("\n").map((line) => line.split(" ").slice(3, 5).join(" ") + " " + line.split(" - ")[1])
export const netnsNames = () => {
  try {
    return fs.readdirSync("/run/netns").sort()
  } catch {
    return []
  }
}
export const hostVeths = () => {
  try {
    return execFileSync("ip", ["-o", "link", "show", "type", "veth"], { encoding: "utf8" }).trim().split("\n").filter(Boolean)
      .map((line) => line.split(":")[1]!.trim().split("@")[0]!).sort()
  } catch {
    return ["<ip failed>"]
  }
}
/** Network namespaces this process keeps alive: through fds, threads, children, or mounts in its mount namespace. */
export const heldNetNamespaces = () => {
  const held = new Set<string>()
  for (const line of fdLinks()) if (line.includes("net:[")) held.add(line.split(" -> ")[1]!)
  for (const tid of tids()) {
    try {
      held.add(fs.readlinkSync(`/proc/self/task/${tid}/ns/net`))
    } catch {
      // Gone.
    }
  }
  for (const child of ownChildren()) {
    try {
      held.add(fs.readlinkSync(`/proc/${child.pid}/ns/net`))
    } catch {
      // Gone, or a zombie.
    }
  }
  for (const line of fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const match = /net:\[(\d+)\]/.exec(line)
    if (match !== null) held.add(`net:[${match[1]}]`)
  }
  return [...held].sort()
}
export const slabNetNamespaces = () => {
  try {
    const line = fs.readFileSync("/proc/slabinfo", "utf8").split("\n").find((l) => l.startsWith("net_namespace "))
    return line === undefined ? undefined : Number(line.split(/\s+/)[1])
  } catch {
    return undefined
  }
}
