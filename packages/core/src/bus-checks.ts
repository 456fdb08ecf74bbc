/** Input checks every Bus implementation applies the same way, so both refuse the same things. */
import type { BusLimits } from "./bus.js";
import { PolydevError } from "./errors.js";

const NAME = /^[A-Za-z0-9._:-]+$/;
const EVENT_ID = /^\d{1,16}-\d{1,16}$/;

export function checkBusName(
  kind: "topic" | "lock" | "counter" | "bucket",
  name: string,
  limits: BusLimits,
): void {
  if (name.length === 0 || Buffer.byteLength(name) > limits.maxNameBytes || !NAME.test(name)) {
    throw new PolydevError(
      "invalid_request",
      `a bus ${kind} name is 1 to ${limits.maxNameBytes} of A-Z a-z 0-9 . _ : - (got ${name.length} characters)`,
    );
  }
}

export function checkEventData(data: string, limits: BusLimits): void {
  const bytes = Buffer.byteLength(data);
  if (bytes > limits.maxEventBytes) {
    throw new PolydevError(
      "payload_too_large",
      `a bus event is at most ${limits.maxEventBytes} bytes (got ${bytes})`,
    );
  }
}

/** Resume ids may come from a client (an SSE Last-Event-ID), so only "<ms>-<seq>" passes. */
export function checkEventId(id: string): void {
  if (!EVENT_ID.test(id)) {
    throw new PolydevError(
      "invalid_request",
      'a bus event id is "<milliseconds>-<sequence>", e.g. 1700000000000-0',
    );
  }
}

export function checkTtl(ttlMs: number): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) {
    throw new PolydevError("invalid_request", `a bus TTL is a positive whole number of ms (got ${ttlMs})`);
  }
}

export function checkBucket(bucket: { capacity: number; refillPerSecond: number }): void {
  if (!Number.isSafeInteger(bucket.capacity) || bucket.capacity <= 0)
    throw new PolydevError(
      "invalid_request",
      `a token bucket's capacity is a positive whole number (got ${bucket.capacity})`,
    );
  if (!Number.isFinite(bucket.refillPerSecond) || bucket.refillPerSecond <= 0)
    throw new PolydevError(
      "invalid_request",
      `a token bucket refills at a positive rate (got ${bucket.refillPerSecond} per second)`,
    );
}

export function checkIncrement(by: number): void {
  if (!Number.isSafeInteger(by) || by <= 0) {
    throw new PolydevError("invalid_request", `a bus counter grows by a positive whole number (got ${by})`);
  }
}
