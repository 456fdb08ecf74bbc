/**
 * Checks the fields of an operation request. The peer is another program, but not necessarily
 * a trusted or same-version one: every field is validated and a bad one is `invalid_request`.
 */
import { constants } from "node:os";
import { PolydevError } from "@polydev/core";
import type { ControlMessage } from "./channel.js";

const invalid = (message: string): PolydevError => new PolydevError("invalid_request", message);

export function stringField(request: ControlMessage, name: string): string {
  const value = request[name];
  if (typeof value !== "string") throw invalid(`${name} must be a string`);
  return value;
}

export function optionalString(request: ControlMessage, name: string): string | undefined {
  const value = request[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw invalid(`${name} must be a string`);
  return value;
}

export function optionalNumber(request: ControlMessage, name: string): number | undefined {
  const value = request[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value)) throw invalid(`${name} must be a number`);
  return value;
}

export function optionalBoolean(request: ControlMessage, name: string): boolean | undefined {
  const value = request[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "boolean") throw invalid(`${name} must be true or false`);
  return value;
}

export function argvField(request: ControlMessage, name = "argv"): string[] {
  const value = request[name];
  if (!Array.isArray(value) || value.length === 0) throw invalid(`${name} must be a non-empty list`);
  const argv: string[] = [];
  for (const item of value) {
    if (typeof item !== "string") throw invalid(`every item of ${name} must be a string`);
    if (item.includes("\0")) throw invalid(`${name} cannot contain NUL bytes`);
    argv.push(item);
  }
  return argv;
}

export function envField(request: ControlMessage): Record<string, string> {
  const value = request.env;
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw invalid("env must be an object of strings");
  const env: Record<string, string> = {};
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== "string") throw invalid(`env.${key} must be a string`);
    if (key.length === 0 || key.includes("=") || key.includes("\0") || item.includes("\0")) {
      throw invalid(`env.${key} is not a valid environment variable`);
    }
    env[key] = item;
  }
  return env;
}

function isSignal(value: string): value is NodeJS.Signals {
  return Object.hasOwn(constants.signals, value);
}

export function signalField(request: ControlMessage, name = "signal"): NodeJS.Signals {
  const value = request[name];
  if (typeof value !== "string" || !isSignal(value)) {
    throw invalid(`${name} must be a signal name such as SIGTERM`);
  }
  return value;
}
