/** Randomness, seeded by `--seed` (fiber scheduling makes no two runs alike all the same). */
import { SEED } from "./options.ts"

let seed = SEED >>> 0
export const random = () => {
  seed = (seed + 0x6d2b79f5) >>> 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
export const randomInt = (from: number, to: number) => from + Math.floor(random() * (to - from + 1))
export const pickOne = <A>(items: ReadonlyArray<A>): A => items[Math.floor(random() * items.length)]!
