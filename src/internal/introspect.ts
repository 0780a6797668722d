/**
 * What the kernel tells of a set's namespaces: the user namespace that owns one, a pid or user
 * namespace's parent (each as a new one-kind set), and the uid that made a user namespace.
 *
 * @internal
 */
import { Effect, type Scope } from "effect"
import { type InvalidKind, type KindNotInSet, type PermissionDenied, type SetClosed, type SystemError, UnsupportedKind } from "./errors.ts"
import type { NamespaceKind } from "./kind.ts"
import * as libc from "./libc.ts"
import { selectKinds } from "./open.ts"
import { adopt, attempt, type NamespaceSet, type Parts, withMembers } from "./set.ts"
import { fromSyscall } from "./wire.ts"

/**
 * The errors of `parent` and `owner`: the set or kind refused, or the kernel's answer
 * to `NS_GET_PARENT` / `NS_GET_USERNS`.
 *
 * @since 0.1.0
 * @category errors
 */
export type RelativeError = SetClosed | KindNotInSet | InvalidKind | UnsupportedKind | PermissionDenied | SystemError

/** The namespace `request` (`NS_GET_USERNS`, `NS_GET_PARENT`) names for the set's `kind`, as a new set. */
export const relative = (
  operation: string,
  set: NamespaceSet,
  kind: NamespaceKind,
  request: number,
  resultKind: (kind: NamespaceKind) => NamespaceKind
): Effect.Effect<NamespaceSet, RelativeError, Scope.Scope> =>
  withMembers(set, operation, (members) =>
    adopt(attempt<Parts, RelativeError>(() => {
      const [valid] = selectKinds(operation, set, [kind])
      const member = members.get(valid!)!
      let fd: number
      try {
        fd = libc.namespaceRelative(member.fd, request)
      } catch (error) {
        if (!(error instanceof libc.SyscallFailure)) throw error
        if (error.errno === "EINVAL" || error.errno === "ENOTTY") {
          throw new UnsupportedKind({ operation, kind: member.kind, reason: "this kind of namespace has no such relative" })
        }
        // EPERM: the relative lies outside the caller's own user namespace (or pid namespace).
        throw fromSyscall(error, operation, { kind: member.kind })
      }
      return { members: [{ kind: resultKind(member.kind), fd, ...libc.identityOfFd(fd) }] }
    })))

/** `NamespaceSet.ownerUid`. */
export const ownerUid = (set: NamespaceSet): Effect.Effect<number, SetClosed | KindNotInSet | InvalidKind | PermissionDenied | SystemError> =>
  withMembers(set, "NamespaceSet.ownerUid", (members) =>
    attempt(() => {
      const [user] = selectKinds("NamespaceSet.ownerUid", set, ["user"])
      try {
        return libc.namespaceOwnerUid(members.get(user!)!.fd)
      } catch (error) {
        throw error instanceof libc.SyscallFailure ? fromSyscall(error, "NamespaceSet.ownerUid", { kind: "user" }) : error
      }
    }))
