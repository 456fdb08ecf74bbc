/** Small fetch wrappers the package's tests share. */
import type { SseEvent } from "./sse-events.js";
import { parseSseEvents } from "./sse-events.js";

export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; json: unknown }> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, json: await response.json() };
}

/** POSTs and reads the whole event stream; fails loudly when the answer is not SSE. */
export async function postSse(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ events: SseEvent[]; data: Record<string, unknown>[] }> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.headers.get("content-type")?.startsWith("text/event-stream")) {
    throw new Error(`expected an event stream, got ${response.status}: ${text}`);
  }
  const events = parseSseEvents(text);
  const data = events.filter((event) => event.data !== "[DONE]").map((event) => parseRecord(event.data));
  return { events, data };
}

export function parseRecord(text: string): Record<string, unknown> {
  const value: unknown = JSON.parse(text);
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`expected a JSON object, got ${text}`);
  }
  return { ...value };
}

/** Follows keys and indexes into parsed JSON; `undefined` where the path does not exist. */
export function dig(value: unknown, ...path: (string | number)[]): unknown {
  let current = value;
  for (const key of path) {
    if (typeof current !== "object" || current === null) return undefined;
    current = Reflect.get(current, key);
  }
  return current;
}

/** `dig` for a string leaf; throws when the leaf is not a string, so assertions stay exact. */
export function digString(value: unknown, ...path: (string | number)[]): string {
  const found = dig(value, ...path);
  if (typeof found !== "string")
    throw new Error(`expected a string at ${path.join(".")}, got ${String(found)}`);
  return found;
}
