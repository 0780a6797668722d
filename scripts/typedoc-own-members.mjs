// A TypeDoc plugin for gonso's API reference: it leaves out the members a class gets from Effect
// (the Schema and Error machinery behind every error class), keeping those declared in gonso's own
// sources, such as an error's fields; and it leaves out the value of a constant that only
// delegates to gonso's internals (`export const all: ... = internal.all`): its type is the API.
import { Converter, ReflectionKind } from "typedoc"

const memberKinds = ReflectionKind.Property | ReflectionKind.Method | ReflectionKind.Accessor | ReflectionKind.Constructor

/** @param {import("typedoc").Application} app */
export function load(app) {
  const foreign = new Set()
  app.converter.on(Converter.EVENT_CREATE_DECLARATION, (context, reflection) => {
    if (!reflection.kindOf(memberKinds) || reflection.name === "_tag") return
    const symbol = context.getSymbolFromReflection(reflection)
    const files = (symbol?.declarations ?? []).map((declaration) => declaration.getSourceFile().fileName)
    if (files.length === 0 || files.every((file) => file.includes("/node_modules/"))) foreign.add(reflection)
  })
  app.converter.on(Converter.EVENT_CREATE_DECLARATION, (_context, reflection) => {
    if (reflection.kindOf(ReflectionKind.Variable) && reflection.defaultValue?.startsWith("internal.")) {
      reflection.defaultValue = undefined
    }
  })
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    for (const reflection of foreign) context.project.removeReflection(reflection)
    foreign.clear()
  })
}
