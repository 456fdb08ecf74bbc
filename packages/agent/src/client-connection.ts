/** What the client's parts share: a way to open channels on the connection. */
import type { Readable } from "node:stream";
import type { PolydevError } from "@polydev/core";
import type { Channel, ControlMessage } from "./channel.js";
import { StreamId } from "./channel.js";
import { firstAnswer, untilClosed } from "./client-answers.js";
import { fromWireError } from "./wire-error.js";

export interface ClientConnection {
  open(request: ControlMessage, signal?: AbortSignal): Channel;
  readonly closedError: () => PolydevError;
}

/**
 * Opens an operation whose answer is a byte stream (file read, log attach). An error after the
 * start destroys the stream with it, so a cut-off stream never looks like a complete one.
 */
export async function openOutput(
  connection: ClientConnection,
  request: ControlMessage,
  signal?: AbortSignal,
): Promise<Readable> {
  const channel = connection.open(request, signal);
  const output = channel.readable(StreamId.stdout);
  await firstAnswer(channel, connection.closedError, signal);
  channel.on("control", (message) => {
    if (message.type === "error" && !output.destroyed) output.destroy(fromWireError(message));
  });
  untilClosed(channel, signal, () => channel.close());
  return output;
}
