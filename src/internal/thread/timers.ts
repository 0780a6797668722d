/**
 * The clock of a pool's lifecycle: when a start times out, when an idle thread is retired. A layer
 * takes it from the context it is built in: with Effect's default clock these are Node's timers
 * (which never keep the process alive); with a Clock of the program's own, Effect's `TestClock`
 * included, they run on that clock, so that a test drives them with `TestClock.adjust` instead of
 * sleeping for them.
 *
 * The hot path (polling the channel for answers) does not go through it: it is not a policy, and
 * it must cost nothing.
 *
 * @internal
 */
import { Clock, Context, Duration, Effect } from "effect"

export interface Timers {
  /** Calls `f` once, `ms` from now; returns what cancels that. */
  readonly after: (ms: number, f: () => void) => () => void
  /** Now, in milliseconds from an arbitrary origin (for how long a thread has been idle). */
  readonly now: () => number
}

/** Node's own timers, which never keep the process alive. */
export const nodeTimers: Timers = {
  now: () => performance.now(),
  after: (ms, f) => {
    const timer = setTimeout(f, ms)
    timer.unref()
    return () => clearTimeout(timer)
  }
}

/** The timers of `context`: on the Clock it provides, if it provides one; else Node's. */
export const timersOf = (context: Context.Context<never>): Timers => {
  const clock = Context.getOrUndefined(context, Clock.Clock)
  if (clock === undefined) return nodeTimers
  const fork = Effect.runForkWith(context)
  return {
    now: () => clock.currentTimeMillisUnsafe(),
    after: (ms, f) => {
      const fiber = fork(Effect.andThen(Effect.sleep(Duration.millis(ms)), Effect.sync(f)))
      return () => fiber.interruptUnsafe()
    }
  }
}
