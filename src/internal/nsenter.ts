/**
 * The command line of util-linux `nsenter`, the single-threaded helper that joins what a thread of
 * a multithreaded process cannot (user and time namespaces) before it execs a command.
 *
 * @internal
 */
import { enterOrder, type NamespaceKind } from "./kind.ts"

/**
 * nsenter's options that join each namespace given by an fd of this process, in nsenter's order
 * (user first, which grants the right to join the others).
 *
 * nsenter makes the command uid and gid 0 in a user namespace it joins, which needs setgroups(2)
 * and so fails where setgroups is denied, as it must be for an unprivileged gid map; an
 * unprivileged caller's own ids are what its maps map, so it keeps them instead.
 */
export const nsenterOptions = (fds: ReadonlyArray<{ readonly kind: NamespaceKind; readonly fd: number }>): Array<string> => {
  const joins = enterOrder.flatMap((kind) => {
    const member = fds.find((candidate) => candidate.kind === kind)
    return member === undefined ? [] : [`--${kind === "mnt" ? "mount" : kind}=/proc/${process.pid}/fd/${member.fd}`]
  })
  const joinsUser = fds.some((member) => member.kind === "user")
  return joinsUser && process.geteuid!() !== 0 ? [...joins, "--preserve-credentials"] : joins
}
