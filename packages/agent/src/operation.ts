/** What every server-side operation gets, and how it answers. */
import type { Writable } from "node:stream";
import { finished } from "node:stream/promises";
import type { SandboxLauncher } from "@polydev/core";
import type { Channel, ControlMessage } from "./channel.js";
import { toWireError } from "./wire-error.js";

export interface OperationContext {
  readonly launcher: SandboxLauncher;
  /** Opens a channel towards the client on the same connection (forwarded connections). */
  readonly openChannel: (request: ControlMessage) => Channel;
}

/** Serves one request on its own channel; a thrown error (or rejection) becomes an error reply. */
export type Operation = (
  context: OperationContext,
  channel: Channel,
  request: ControlMessage,
) => void | Promise<void>;

/** A one-shot answer: the result, then the channel closes. */
export function reply(channel: Channel, value: unknown): void {
  channel.control({ type: "result", value });
  channel.close();
}

export function fail(channel: Channel, error: unknown): void {
  if (channel.closed) return;
  channel.control(toWireError(error));
  channel.close();
}

/** Resolves once everything written to `stream` has been handed to the peer (or it was dropped). */
export async function flushed(stream: Writable): Promise<void> {
  await finished(stream).catch(() => undefined);
}
