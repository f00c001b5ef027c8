/** Stand-in for `ajv-formats` (aliased in vite.config.ts): formats are built into validator.ts. */
export default function addFormats<T>(ajv: T): T {
  return ajv
}
