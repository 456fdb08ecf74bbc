import { arrayAt, isObject, objectAt, stringAt } from "./json-access.js";

/**
 * The smallest value that satisfies a JSON schema (or Gemini's upper-case variant), for clients
 * that demand structured output, like the Gemini CLI's model router: without a parseable
 * answer they retry with backoff instead of moving on.
 */
export function sampleFromSchema(schema: unknown): unknown {
  if (!isObject(schema)) return null;
  const enumValues = arrayAt(schema, "enum");
  if (enumValues.length > 0) return enumValues[0];
  if ("const" in schema) return schema.const;
  const variants = arrayAt(schema, "anyOf").length > 0 ? arrayAt(schema, "anyOf") : arrayAt(schema, "oneOf");
  if (variants.length > 0) return sampleFromSchema(variants[0]);
  switch (schemaType(schema)) {
    case "object": {
      const properties = objectAt(schema, "properties") ?? {};
      return Object.fromEntries(
        Object.entries(properties).map(([name, property]) => [name, sampleFromSchema(property)]),
      );
    }
    case "array":
      return [];
    case "string":
      return "fake";
    case "integer":
    case "number":
      return typeof schema.minimum === "number" ? schema.minimum : 1;
    case "boolean":
      return false;
    default:
      return null;
  }
}

function schemaType(schema: Record<string, unknown>): string | undefined {
  const type = schema.type;
  const first = Array.isArray(type) ? type.find((entry) => entry !== "null") : type;
  if (typeof first === "string") return first.toLowerCase();
  return objectAt(schema, "properties") ? "object" : stringAt(schema, "format") ? "string" : undefined;
}
