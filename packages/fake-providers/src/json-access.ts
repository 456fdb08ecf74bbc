/** Narrowing helpers for request bodies, which arrive as `unknown` JSON. */

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function objectAt(value: unknown, key: string): JsonObject | undefined {
  if (!isObject(value)) return undefined;
  const found = value[key];
  return isObject(found) ? found : undefined;
}

export function arrayAt(value: unknown, key: string): unknown[] {
  if (!isObject(value)) return [];
  const found = value[key];
  return Array.isArray(found) ? found : [];
}

export function stringAt(value: unknown, key: string): string | undefined {
  if (!isObject(value)) return undefined;
  const found = value[key];
  return typeof found === "string" ? found : undefined;
}

/** Harness context (`<system-reminder>…`, `<session_context>…`) wraps a whole text part in one tag. */
const WRAPPED_CONTEXT = /^\s*<([A-Za-z][\w-]*)[^>]*>[\s\S]*<\/\1>\s*$/;

/** The user's words from a message's text parts, leaving out harness-injected context. */
export function promptFromTexts(texts: readonly string[]): string {
  const own = texts.filter((text) => !WRAPPED_CONTEXT.test(text) && text.trim().length > 0);
  return (own.length > 0 ? own : texts).join("\n").trim();
}

/**
 * The user's own words in the messages before the latest one: what a resumed session sends back
 * of its earlier turns. Messages holding only harness context count for nothing here.
 */
export function earlierPrompts(userTexts: readonly (readonly string[])[]): string[] {
  return userTexts
    .slice(0, -1)
    .map((texts) =>
      texts
        .filter((text) => !WRAPPED_CONTEXT.test(text) && text.trim().length > 0)
        .join("\n")
        .trim(),
    )
    .filter((text) => text.length > 0);
}
