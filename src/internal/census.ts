/**
 * What the library holds now, counted where it is made and let go, and read by the metrics
 * (`observe.ts`): namespace sets whose fds are open, and pid-namespace inits alive. An init must
 * not outlive the process (it shares the process's fd table): those alive are killed when the
 * process exits, even if their sets were never closed, by an exit handler installed with the
 * first init.
 *
 * @internal
 */
import * as libc from "./libc.ts"

let openSets = 0
const inits = new Set<libc.Parked>()
let exitHandler = false

const killInits = () => {
  for (const child of inits) {
    try {
      libc.kill(child.pid, libc.SIGKILL)
    } catch {
      // Gone already.
    }
  }
}

export const setOpened = (): void => {
  openSets++
}

export const setClosed = (): void => {
  openSets--
}

/** Sets whose fds are open. */
export const setsOpen = (): number => openSets

export const initAlive = (child: libc.Parked): void => {
  inits.add(child)
  if (exitHandler) return
  exitHandler = true
  process.once("exit", killInits)
}

export const initGone = (child: libc.Parked): void => {
  inits.delete(child)
}

/** Pid-namespace inits alive. */
export const initsAlive = (): number => inits.size
