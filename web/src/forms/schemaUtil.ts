import { Resolve, type JsonSchema, type UISchemaElement } from '@jsonforms/core'

/** The schema a control's `scope` points at (undefined when it cannot be resolved). */
export function resolveControlSchema(schema: JsonSchema, uischema: UISchemaElement): JsonSchema | undefined {
  const scope = (uischema as { scope?: string }).scope
  if (!scope) return undefined
  try {
    return Resolve.schema(schema, scope, schema)
  } catch {
    return undefined
  }
}

/** Number of choices of an `enum` / `oneOf`-with-`const` schema (0 when it is neither). */
export function choiceCount(schema: JsonSchema | undefined): number {
  if (!schema) return 0
  if (Array.isArray(schema.enum)) return schema.enum.length
  if (Array.isArray(schema.oneOf) && schema.oneOf.every((s) => s && 'const' in (s as object))) return schema.oneOf.length
  return 0
}
