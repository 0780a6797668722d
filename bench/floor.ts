/**
 * Module tasks for the benchmarks: the raw syscall floors, measured on a pinned thread itself.
 */
import * as fs from "node:fs"
import * as libc from "../src/internal/libc.ts"

const CLONE_NEWNET = 0x40000000

const timed = (iterations: number, body: () => void): Array<number> => {
  const samples: Array<number> = []
  for (let i = 0; i < iterations; i++) {
    const start = process.hrtime.bigint()
    body()
    samples.push(Number(process.hrtime.bigint() - start) / 1_000)
  }
  return samples
}

/** setns into a net namespace and back, the least any `run` must do. */
export const setnsInOut = (args: { fd: number; iterations: number }) => {
  const home = libc.open("/proc/thread-self/ns/net")
  try {
    return timed(args.iterations, () => {
      libc.setns(args.fd, CLONE_NEWNET)
      libc.setns(home, CLONE_NEWNET)
    })
  } finally {
    libc.close(home)
  }
}

/** unshare(CLONE_NEWNET), open the new namespace, go back: the least `unshare(["net"])` must do. */
export const unshareNet = (args: { iterations: number }) => {
  const home = libc.open("/proc/thread-self/ns/net")
  try {
    return timed(args.iterations, () => {
      libc.unshare(CLONE_NEWNET)
      libc.close(libc.open("/proc/thread-self/ns/net"))
      libc.setns(home, CLONE_NEWNET)
    })
  } finally {
    libc.close(home)
  }
}

const CLONE_NEWUSER = 0x10000000
const CLONE_NEWPID = 0x20000000

/** clone a parked child into new user+net namespaces, write its maps, open both, kill and reap it. */
export const cloneUserNet = (args: { iterations: number }) =>
  timed(args.iterations, () => {
    const child = libc.cloneParked(CLONE_NEWUSER | CLONE_NEWNET)
    fs.writeFileSync(`/proc/${child.pid}/uid_map`, "0 100000 65536\n")
    fs.writeFileSync(`/proc/${child.pid}/gid_map`, "0 100000 65536\n")
    libc.close(libc.open(`/proc/${child.pid}/ns/user`))
    libc.close(libc.open(`/proc/${child.pid}/ns/net`))
    libc.killAndReap(child)
  })

/** clone a parked child as the init of a new pid namespace, open it, kill and reap it. */
export const clonePid = (args: { iterations: number }) =>
  timed(args.iterations, () => {
    const child = libc.cloneParked(CLONE_NEWPID)
    libc.close(libc.open(`/proc/${child.pid}/ns/pid`))
    libc.killAndReap(child)
  })
