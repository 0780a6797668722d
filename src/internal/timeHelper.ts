/**
 * A time namespace with clock offsets. The offsets of a time namespace can be written only before
 * any process has entered it, so it is made by util-linux `unshare --time --monotonic M --boottime B
 * sleep 600`: once the helper runs `sleep`, its `time_for_children` is the new namespace, written
 * and still unentered. Its fd is opened, then the helper is killed and reaped.
 *
 * The helper is started from the main thread with gonso's own `posix_spawnp` (as every other
 * process of the library), not with Node's `child_process`: every fd it takes (`/dev/null` and its
 * stderr pipe) is made here and closed here on every path, and the helper is reaped here, so
 * nothing is left when the process is out of fds or processes (Node's `spawn`, failing with EMFILE
 * after it made the child's pipes, leaves them open).
 *
 * @internal
 */
import * as fs from "node:fs"
import { Effect } from "effect"
import { CommandNotFound, type PermissionDenied, type SystemError } from "./errors.ts"
import * as libc from "./libc.ts"
import { helperError, isCommandNotFoundErrno } from "./failure.ts"
import { openMember } from "./open.ts"
import type { Member } from "./protocol.ts"
import { fromSyscall, fromWire } from "./wire.ts"

/** The most of the helper's stderr kept for its error: util-linux prints one line. */
const STDERR_BYTES = 4_096
/** How long the main thread sleeps between looks at the helper, at most. */
const MAX_POLL_MS = 10

type HelperError = SystemError | PermissionDenied | CommandNotFound

const attempt = <A>(operation: string, call: () => A): Effect.Effect<A, HelperError> =>
  Effect.try({
    try: call,
    catch: (error) => {
      if (error instanceof libc.SyscallFailure) return fromSyscall(error, operation)
      throw error
    }
  })

/** What the helper printed on stderr, at most {@link STDERR_BYTES}; never blocks. */
const drain = (fd: number): string => {
  const buffer = Buffer.alloc(STDERR_BYTES)
  let length = 0
  while (length < buffer.length) {
    let read: number
    try {
      read = fs.readSync(fd, buffer, length, buffer.length - length, null)
    } catch {
      break // EAGAIN: nothing more.
    }
    if (read === 0) break
    length += read
  }
  return buffer.subarray(0, length).toString()
}

/** The helper's pid, and whether it has been reaped: a reaped pid is no longer the helper's. */
interface Helper {
  readonly pid: number
  reaped: boolean
}

/**
 * Kills the helper, unless it was reaped already (its pid may be another process's by now), and
 * waits (sleeping, never blocking the loop) until it is reaped.
 */
const killAndReap = (helper: Helper): Effect.Effect<void> =>
  Effect.gen(function*() {
    if (helper.reaped) return
    try {
      libc.kill(helper.pid, libc.SIGKILL)
    } catch {
      // Exited already: reaped below.
    }
    let delay = 1
    for (;;) {
      helper.reaped = libc.reapNoHang(helper.pid)
      if (helper.reaped) return
      yield* Effect.sleep(delay)
      delay = Math.min(delay * 2, MAX_POLL_MS)
    }
  })

/**
 * The new time namespace with offsets `monotonic` and `boottime` (seconds), as a member whose fd
 * the caller owns. Uninterruptible only where an fd or a child is between owners; interrupted
 * while it waits for the helper, it kills and reaps the helper and closes what it opened.
 */
export const timeNamespaceWithOffsets = (
  operation: string,
  monotonic: number,
  boottime: number
): Effect.Effect<Member, HelperError> =>
  Effect.scoped(Effect.gen(function*() {
    const devNull = yield* Effect.acquireRelease(
      attempt(operation, () => libc.open("/dev/null", libc.O_RDWR)),
      (fd) => Effect.sync(() => libc.close(fd))
    )
    // Non-blocking: the read end is drained without waiting; the helper writes one line at most.
    const stderr = yield* Effect.acquireRelease(
      attempt(operation, () => {
        const [read, write] = libc.pipe(libc.O_NONBLOCK)
        return { read, write: write as number | undefined }
      }),
      (pipe) => Effect.sync(() => {
        libc.close(pipe.read)
        if (pipe.write !== undefined) libc.close(pipe.write)
      })
    )
    const argv = ["unshare", "--time", "--monotonic", String(monotonic), "--boottime", String(boottime), "sleep", "600"]
    const helper = yield* Effect.acquireRelease(
      Effect.try({
        try: (): Helper => ({
          pid: libc.spawn({ file: "unshare", argv, env: libc.environment(process.env), stdio: [devNull, devNull, stderr.write!] }),
          reaped: false
        }),
        catch: (error) => {
          if (!(error instanceof libc.SyscallFailure)) throw error
          return isCommandNotFoundErrno(error.errno)
            ? new CommandNotFound({ command: "unshare", errno: error.errno })
            : fromSyscall(error, operation)
        }
      }),
      killAndReap
    )
    // The helper has its copy of the write end: the pipe ends when the helper does.
    libc.close(stderr.write!)
    stderr.write = undefined
    let delay = 1
    const pid = helper.pid
    for (;;) {
      const status = libc.waitNoHang(pid)
      if (status !== undefined) {
        helper.reaped = true
        const ending = {
          code: status.exitCode,
          signal: status.signal === null ? null : libc.signalName(status.signal) ?? `signal ${status.signal}`
        }
        return yield* Effect.fail(
          fromWire(helperError(operation, "unshare(1)", drain(stderr.read), ending, { kind: "time" })) as SystemError | PermissionDenied
        )
      }
      // The helper is unreaped, so its pid is still its own: /proc/<pid> is the helper.
      let exe = ""
      try {
        exe = fs.readlinkSync(`/proc/${pid}/exe`)
      } catch {
        // Between its exec calls, or gone: looked at again below.
      }
      if (exe.endsWith("/sleep")) {
        return yield* Effect.try({
          try: () => openMember(operation, "time", `/proc/${pid}/ns/time_for_children`),
          catch: (error) => error as SystemError
        })
      }
      yield* Effect.sleep(delay)
      delay = Math.min(delay * 2, MAX_POLL_MS)
    }
  }))
