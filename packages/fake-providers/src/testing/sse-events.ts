/** A small Server-Sent Events reader for tests: enough of the spec for provider streams. */

export interface SseEvent {
  /** The `event:` field; `undefined` when the server sent only `data:` (OpenAI chat, Gemini). */
  event: string | undefined;
  data: string;
}

/** Splits an SSE body into events; multi-line `data:` fields are joined with `\n`. */
export function parseSseEvents(text: string): SseEvent[] {
  const events: SseEvent[] = [];
  for (const block of text.replaceAll("\r\n", "\n").split("\n\n")) {
    let event: string | undefined;
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":") || line.length === 0) continue;
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (event !== undefined || data.length > 0) events.push({ event, data: data.join("\n") });
  }
  return events;
}

/** Reads a streamed response to the end and parses it. */
export async function readSseEvents(response: Response): Promise<SseEvent[]> {
  return parseSseEvents(await response.text());
}

/** The `data:` of each event parsed as JSON, skipping OpenAI's `[DONE]` sentinel. */
export function sseJson(events: readonly SseEvent[]): unknown[] {
  return events.filter((event) => event.data !== "[DONE]").map((event) => JSON.parse(event.data));
}
