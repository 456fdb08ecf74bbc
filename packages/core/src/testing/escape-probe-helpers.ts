/** Small pieces the escape probes share. */
import type { Readable } from "node:stream";
import { expect } from "vitest";
import type { AgentConnection } from "../agent.js";
import type { EscapeProbeContext } from "./escape-probe-context.js";

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: string };

/** Whether an operation was refused (and how), instead of letting the rejection fail the probe. */
export async function outcome<T>(operation: Promise<T> | (() => Promise<T>)): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await (typeof operation === "function" ? operation() : operation) };
  } catch (error) {
    const code =
      typeof error === "object" && error !== null && "code" in error ? String(error.code) : undefined;
    return { ok: false, error: `${code ?? ""} ${error instanceof Error ? error.message : String(error)}` };
  }
}

export async function readStream(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString("utf8");
}

/** files.read to the end, or why it was refused. */
export function readThroughFilesApi(connection: AgentConnection, path: string): Promise<Outcome<string>> {
  return outcome(async () => readStream(await connection.files.read(path)));
}

/** Single-quotes a value for /bin/sh. */
export const shellQuote = (value: string): string => `'${value.replaceAll("'", `'\\''`)}'`;

export function expectNoSecrets(context: EscapeProbeContext, text: string, where: string): void {
  expect(context.leakedSecrets(text), `host secrets visible through ${where}`).toEqual([]);
}

/** The sandbox user's home as the sandbox sees it. */
export async function homeOf(connection: AgentConnection, context: EscapeProbeContext): Promise<string> {
  return (await context.sh(connection, 'printf %s "$HOME"')).stdout;
}

export const randomPort = (): number => 20_000 + Math.floor(Math.random() * 20_000);
