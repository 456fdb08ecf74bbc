import type { Logger } from "pino";
import pino from "pino";

/** Secrets are removed by path before a line is written, whatever code logged them. */
export const REDACTED_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  "req.headers['x-api-key']",
  "req.headers['x-csrf-token']",
  "res.headers['set-cookie']",
  "headers.authorization",
  "apiKey",
  "*.apiKey",
  "password",
  "*.password",
  "currentPassword",
  "*.currentPassword",
  "env",
  "*.env",
  "body.env",
  "body.stdin",
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const options = {
    level,
    redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
    base: { service: "polydev" },
  };
  return destination ? pino(options, destination) : pino(options);
}
