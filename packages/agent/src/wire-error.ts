/**
 * The one place errors cross the wire: `{ type: "error", code, message, details? }` out of a
 * PolydevError on the agent side, and back into a PolydevError with the same code on the caller's.
 */
import type { ErrorCode } from "@polydev/core";
import { ERROR_STATUS, isPolydevError, PolydevError } from "@polydev/core";
import type { ControlMessage } from "./channel.js";

function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_STATUS, value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function toWireError(error: unknown): ControlMessage {
  const known = isPolydevError(error)
    ? error
    : new PolydevError("internal", error instanceof Error ? error.message : String(error));
  return {
    type: "error",
    code: known.code,
    message: known.message,
    ...(known.details === undefined ? {} : { details: known.details }),
  };
}

export function fromWireError(message: ControlMessage): PolydevError {
  const text = typeof message.message === "string" ? message.message : "the agent reported an error";
  // An agent newer than this caller may send a code it does not know: keep the text, not the code.
  const code = isErrorCode(message.code) ? message.code : "internal";
  return new PolydevError(code, text, isRecord(message.details) ? { details: message.details } : {});
}

export const connectionClosed = (): PolydevError =>
  new PolydevError("sandbox_not_running", "the connection to the sandbox's agent closed");

export const aborted = (signal: AbortSignal): PolydevError =>
  new PolydevError("timeout", "the agent call was aborted", { cause: signal.reason });
