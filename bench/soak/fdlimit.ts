/** The fd limit of this process, lowered and restored by the soak's fault fiber. */
import { createRequire } from "node:module"

/** The fd limit, through prlimit(2) on ourselves (koffi, so that restoring it needs no new fd). */
const require = createRequire(import.meta.url)
const koffi = require("koffi") as typeof import("koffi")
const libcSo = koffi.load("libc.so.6")
const Rlimit = koffi.struct("gonso_soak_rlimit", { cur: "uint64", max: "uint64" })
const prlimitCall = libcSo.func("int prlimit(int pid, int resource, const gonso_soak_rlimit *newLimit, _Out_ gonso_soak_rlimit *oldLimit)")
void Rlimit
const RLIMIT_NOFILE = 7
export const getNofile = (): { cur: number | bigint; max: number | bigint } => {
  const old = { cur: 0, max: 0 }
  if (prlimitCall(0, RLIMIT_NOFILE, null, old) !== 0) throw new Error("prlimit failed")
  return old
}
export const setNofile = (limit: { cur: number | bigint; max: number | bigint }) => {
  if (prlimitCall(0, RLIMIT_NOFILE, limit, null) !== 0) throw new Error("prlimit failed")
}
