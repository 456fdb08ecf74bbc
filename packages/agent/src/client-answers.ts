/** How the calling side waits for what a channel answers. */
import type { ExitInfo, PolydevError } from "@polydev/core";
import type { Channel, ControlMessage } from "./channel.js";
import { aborted, fromWireError } from "./wire-error.js";

/**
 * Resolves with the first `started` or `result`; rejects with the agent's error, with
 * `closedError()` if the channel closes first, or on abort (which also closes the channel).
 */
export function firstAnswer(
  channel: Channel,
  closedError: () => PolydevError,
  signal?: AbortSignal,
): Promise<ControlMessage> {
  return new Promise((resolve, reject) => {
    const settle = (finish: () => void): void => {
      channel.off("control", onControl);
      channel.off("close", onClose);
      signal?.removeEventListener("abort", onAbort);
      finish();
    };
    const onControl = (message: ControlMessage): void => {
      if (message.type === "error") settle(() => reject(fromWireError(message)));
      else if (message.type === "result" || message.type === "started") settle(() => resolve(message));
    };
    const onClose = (): void => settle(() => reject(closedError()));
    const onAbort = (): void => {
      settle(() => reject(signal ? aborted(signal) : closedError()));
      channel.close();
    };
    if (signal?.aborted) {
      onAbort();
      return;
    }
    channel.on("control", onControl);
    channel.once("close", onClose);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The process's exit, from the channel's `exit` message. Never left unhandled. */
export function exitOf(channel: Channel, closedError: () => PolydevError): Promise<ExitInfo> {
  const exited = new Promise<ExitInfo>((resolve, reject) => {
    channel.on("control", (message) => {
      if (message.type === "error") reject(fromWireError(message));
      if (message.type !== "exit") return;
      resolve({
        exitCode: typeof message.exitCode === "number" ? message.exitCode : null,
        signal: typeof message.signal === "string" ? message.signal : null,
        timedOut: message.timedOut === true,
        durationMs: typeof message.durationMs === "number" ? message.durationMs : 0,
      });
    });
    channel.once("close", () => reject(closedError()));
  });
  // A caller that only reads the output must not get an unhandled rejection from here.
  exited.catch(() => undefined);
  return exited;
}

/** Runs `onAbort` when `signal` fires while the channel is open; forgets the listener after. */
export function untilClosed(channel: Channel, signal: AbortSignal | undefined, onAbort: () => void): void {
  if (signal === undefined) return;
  if (signal.aborted) {
    onAbort();
    return;
  }
  signal.addEventListener("abort", onAbort, { once: true });
  channel.once("close", () => signal.removeEventListener("abort", onAbort));
}
