/**
 * The hello both sides send first on channel 0. The protocol version must match exactly (it
 * changes only when a message changes meaning); optional features are announced as capabilities,
 * so adding one never needs a new version.
 */
import type { AgentHello } from "@polydev/core";
import { AGENT_PROTOCOL_VERSION, PolydevError } from "@polydev/core";
import type { ControlMessage } from "./channel.js";

export const AGENT_VERSION = "0.1.0";
export const CAPABILITIES: readonly string[] = Object.freeze([
  "exec",
  "pty",
  "files",
  "files.watch",
  "files.rename",
  "background",
  "forward",
  "ping",
]);

/** `home` and `user`: the sandbox's default user, so callers need not assume /home/user. */
export function serverHello(agentVersion: string, sandbox?: { home: string; user: string }): ControlMessage {
  return {
    type: "hello",
    protocolVersion: AGENT_PROTOCOL_VERSION,
    agentVersion,
    capabilities: [...CAPABILITIES],
    ...(sandbox === undefined ? {} : { home: sandbox.home, user: sandbox.user }),
  };
}

export function clientHello(): ControlMessage {
  return { type: "hello", protocolVersion: AGENT_PROTOCOL_VERSION };
}

export function versionMismatch(peer: string, version: unknown): PolydevError {
  return new PolydevError(
    "driver_unavailable",
    `the ${peer} speaks agent protocol ${String(version)} and this side speaks ${AGENT_PROTOCOL_VERSION}; run matching versions of Polydev and its agent`,
    { details: { peerProtocolVersion: version, protocolVersion: AGENT_PROTOCOL_VERSION } },
  );
}

/** Reads the agent's hello; throws `driver_unavailable` when the versions differ. */
export function parseServerHello(message: ControlMessage): AgentHello {
  if (message.protocolVersion !== AGENT_PROTOCOL_VERSION) {
    throw versionMismatch("sandbox's agent", message.protocolVersion);
  }
  const capabilities = Array.isArray(message.capabilities)
    ? message.capabilities.filter((c): c is string => typeof c === "string")
    : [];
  return {
    protocolVersion: AGENT_PROTOCOL_VERSION,
    agentVersion: typeof message.agentVersion === "string" ? message.agentVersion : "unknown",
    capabilities,
    ...(typeof message.home === "string" ? { home: message.home } : {}),
    ...(typeof message.user === "string" ? { user: message.user } : {}),
  };
}
