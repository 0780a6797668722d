/**
 * Checks of what callers hand to the library, made once at the boundary, before anything is sent
 * to a pinned thread or reaches libc. Every public entry point that takes a path, a name, a
 * command or options calls one of these; a problem is an `InvalidOptions` naming the operation and
 * the field.
 *
 * The first rule is about C strings: koffi passes a JavaScript string to a `const char *` as its
 * bytes up to the first NUL, so `"/proc/self/ns/net\0/etc/passwd"` would reach the kernel as
 * `/proc/self/ns/net`, silently. Every string that becomes a C string is refused here if it holds
 * a NUL byte (and `libc.ts` refuses it again, as the last line of defence).
 *
 * @internal
 */
import { Cause, Effect, Exit, Schema, SchemaIssue } from "effect"
import { InvalidOptions } from "./errors.ts"
import type { TaskSpec } from "./protocol.ts"

export const describe = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value)
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") return String(value)
  if (value === null) return "null"
  return typeof value === "object" ? (Array.isArray(value) ? "an array" : "an object") : typeof value
}

/** Why `value` cannot be passed to libc as a C string, or `undefined` when it can. */
export const cStringProblem = (value: unknown): string | undefined =>
  typeof value !== "string"
    ? `must be a string, not ${describe(value)}`
    : value.includes("\0")
    ? `contains a NUL byte (a C string ends there: the rest would be dropped): ${JSON.stringify(value)}`
    : undefined

/** Fields to check, each as `[name, value]`: the first whose value is no C string is the problem. */
export type Fields = ReadonlyArray<readonly [string, unknown]>

/** The first of `fields` that cannot be a C string, as `InvalidOptions` for `operation`. */
export const cStrings = (operation: string, fields: Fields): InvalidOptions | undefined => {
  for (const [field, value] of fields) {
    const problem = cStringProblem(value)
    if (problem !== undefined) return new InvalidOptions({ operation, reason: `${field} ${problem}` })
  }
  return undefined
}

/** Each element of a list, named `name[i]`; a value that is no array is itself the problem. */
export const listFields = (name: string, values: unknown): Fields =>
  Array.isArray(values) ? values.map((value, i) => [`${name}[${i}]`, value] as const) : [[name, values]]

/** `effect`, unless `problem` is set: then the problem is its failure. */
export const guard = <A, E, R>(problem: InvalidOptions | undefined, effect: () => Effect.Effect<A, E, R>): Effect.Effect<A, E | InvalidOptions, R> =>
  problem === undefined ? Effect.suspend(effect) : Effect.fail(problem)

/**
 * An environment (`{ NAME: value }`) fit for `execve`: names non-empty, without `=` or NUL; values
 * strings without NUL (`undefined` values are left out by the caller).
 */
export const environmentProblem = (operation: string, env: unknown): InvalidOptions | undefined => {
  if (env === undefined) return undefined
  if (typeof env !== "object" || env === null || Array.isArray(env)) {
    return new InvalidOptions({ operation, reason: `env must be an object of strings, not ${describe(env)}` })
  }
  for (const [name, value] of Object.entries(env)) {
    if (name === "" || name.includes("=") || name.includes("\0")) {
      return new InvalidOptions({ operation, reason: `env has a variable named ${JSON.stringify(name)}: a name is non-empty, without "=" or NUL` })
    }
    if (value === undefined) continue
    const problem = cStrings(operation, [[`env.${name}`, value]])
    if (problem !== undefined) return problem
  }
  return undefined
}

/** A command line and where it runs: everything of it becomes a C string. */
export const commandProblem = (
  operation: string,
  command: unknown,
  args: unknown,
  options: { readonly cwd?: unknown; readonly env?: unknown }
): InvalidOptions | undefined =>
  cStrings(operation, [
    ["command", command],
    ...listFields("args", args),
    ...(options.cwd === undefined ? [] : [["cwd", options.cwd] as const])
  ]) ?? environmentProblem(operation, options.env)

/** A whole number from `minimum` to `maximum`, or `InvalidOptions` naming `field`. */
export const wholeNumberProblem = (
  operation: string,
  field: string,
  value: unknown,
  minimum: number,
  maximum: number
): InvalidOptions | undefined =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= minimum && value <= maximum
    ? undefined
    : new InvalidOptions({ operation, reason: `${field} must be a whole number from ${minimum} to ${maximum}, not ${describe(value)}` })

/** A uid or gid: 0 to 2^32 - 2 (2^32 - 1 is the kernel's "no id"). */
export const idProblem = (operation: string, field: string, value: unknown): InvalidOptions | undefined =>
  value === undefined ? undefined : wholeNumberProblem(operation, field, value, 0, 0xfffffffe)

/** The most `Task.readFile` may read: a result must fit the 64 MiB channel (as JSON). */
export const READ_LIMIT = 64 * 1024 * 1024

/** A byte limit: a whole number from 1 to `ceiling`. */
export const byteLimitProblem = (operation: string, field: string, value: unknown, ceiling: number): InvalidOptions | undefined =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 1 && value <= ceiling
    ? undefined
    : new InvalidOptions({ operation, reason: `${field} must be a whole number of bytes from 1 to ${ceiling}, not ${describe(value)}` })

/**
 * The C strings of an operation sent to a pinned thread, checked before it is sent (what `run`,
 * `enter` and the library's own requests send). Operations with no strings pass.
 */
export const specProblem = (spec: TaskSpec): InvalidOptions | undefined => {
  switch (spec.op) {
    case "readFile":
      return cStrings("Task.readFile", [["path", spec.args.path]]) ??
        byteLimitProblem("Task.readFile", "maxBytes", spec.args.maxBytes, READ_LIMIT)
    case "writeFile":
      return cStrings("Task.writeFile", [["path", spec.args.path]]) ??
        (spec.args.mode === undefined ? undefined : wholeNumberProblem("Task.writeFile", "mode", spec.args.mode, 0, 0o7777))
    case "setHostname":
      return cStrings("Task.setHostname", [["name", spec.args.name]])
    case "spawn":
      return commandProblem(spec.args.operation, spec.args.command, spec.args.args, spec.args.cwd === undefined ? {} : { cwd: spec.args.cwd }) ??
        cStrings(spec.args.operation, listFields("env", spec.args.env))
    case "socket":
      return cStrings(spec.args.operation, [[spec.args.family === 1 ? "path" : "host", spec.args.host]])
    case "mount":
      return cStrings(spec.args.operation, spec.args.mounts.map((mount, i) => [`target of mounts[${i}]`, mount.target] as const))
    case "unmount":
      return cStrings(spec.args.operation, spec.args.targets.map((target, i) => [`paths[${i}]`, target.path] as const))
    default:
      return undefined
  }
}

const IdMap = Schema.Array(Schema.Struct({ containerId: Schema.Number, hostId: Schema.Number, size: Schema.Number }))

/**
 * The shape of `NamespaceSet.unshare`'s options: only the documented keys and values (the ranges
 * of id maps and offsets are checked where they are used, with their own messages).
 */
const UnshareOptions = Schema.Struct({
  propagation: Schema.optional(Schema.Literals(["private", "slave", "unchanged"])),
  uidMap: Schema.optional(IdMap),
  gidMap: Schema.optional(IdMap),
  setgroups: Schema.optional(Schema.Literals(["allow", "deny"])),
  timeOffsets: Schema.optional(Schema.Struct({ monotonic: Schema.optional(Schema.Number), boottime: Schema.optional(Schema.Number) })),
  loopback: Schema.optional(Schema.Literal("up"))
})

/** `NamespaceSet.unshare`'s options that do not fit their shape (`propagation: "shared"`, an unknown clock). */
export const unshareOptionsProblem = (options: unknown): InvalidOptions | undefined => {
  if (options === undefined) return undefined
  const decoded = decodeOptions("NamespaceSet.unshare", UnshareOptions, options)
  return Exit.isFailure(decoded) ? Cause.squash(decoded.cause) as InvalidOptions : undefined
}

/** The most sets a `NamespacePool` keeps ready. */
export const MAX_POOL_SIZE = 1024

/**
 * Options decoded with `schema` (excess properties refused), or `InvalidOptions` for `operation`
 * saying what does not fit and where (`max: Expected a value between 1 and 256`).
 */
export const decodeOptions = <S extends Schema.ConstraintDecoder<unknown>>(
  operation: string,
  schema: S,
  input: unknown
): Exit.Exit<S["Type"], InvalidOptions> => {
  const decoded = Schema.decodeUnknownExit(schema, { onExcessProperty: "error" })(input)
  if (Exit.isSuccess(decoded)) return Exit.succeed(decoded.value)
  const error = Cause.squash(decoded.cause)
  if (!Schema.isSchemaError(error)) return Exit.fail(new InvalidOptions({ operation, reason: String(error) }))
  // The first issue, by its path and Schema's own words: `max: expected a value between 1 and 256`.
  const [first] = formatIssue(error.issue).issues
  const path = first?.path ?? []
  const where = path.length === 0
    ? ""
    : `${path.map((key, i) => {
      const name = typeof key === "object" && key !== null && "key" in key ? key.key : key
      return typeof name === "number" ? `[${name}]` : `${i === 0 ? "" : "."}${String(name)}`
    }).join("")}: `
  const what = first === undefined ? "does not fit" : `${first.message.charAt(0).toLowerCase()}${first.message.slice(1)}`
  return Exit.fail(new InvalidOptions({ operation, reason: `${where}${what}` }))
}

/** Schema's issues as a path and a message each; a key that is not an option is said so. */
const formatIssue = SchemaIssue.makeFormatterStandardSchemaV1({
  leafHook: (issue) => issue._tag === "UnexpectedKey" ? "not an option here" : SchemaIssue.defaultLeafHook(issue)
})
