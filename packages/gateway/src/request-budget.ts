/**
 * What the gateway holds in memory for sandboxes. Request bodies are buffered whole (to read the
 * model for metering and to send them upstream with a length), so the bytes buffered are counted
 * per request, per sandbox across its concurrent requests, and across all sandboxes; and a sandbox
 * may only have so many requests in flight. A request over a limit is answered 413 or 429, never
 * buffered.
 */
import { PolydevError } from "@polydev/core";

export interface GatewayLimits {
  /** Largest request body relayed. Default 32 MiB, the most the providers accept (Anthropic's Messages limit). */
  maxRequestBytes: number;
  /** Body bytes one sandbox may have buffered across its concurrent requests. Default 64 MiB. */
  maxBufferedBytesPerSandbox: number;
  /** Body bytes buffered for all sandboxes together. Default 512 MiB. */
  maxBufferedBytesTotal: number;
  /** Requests one sandbox may have in flight (streams included). Default 32. */
  maxConcurrentRequestsPerSandbox: number;
  /** A request body that sends no byte for this long is abandoned (408). Default 30 s. */
  bodyIdleTimeoutMs: number;
  /** A request body not complete after this long is abandoned (408). Default 120 s. */
  bodyTimeoutMs: number;
}

const MiB = 1024 * 1024;

export const DEFAULT_GATEWAY_LIMITS: Readonly<GatewayLimits> = Object.freeze({
  maxRequestBytes: 32 * MiB,
  maxBufferedBytesPerSandbox: 64 * MiB,
  maxBufferedBytesTotal: 512 * MiB,
  maxConcurrentRequestsPerSandbox: 32,
  bodyIdleTimeoutMs: 30_000,
  bodyTimeoutMs: 120_000,
});

interface SandboxUsage {
  requests: number;
  bytes: number;
}

/** One admitted request: reserves body bytes as they arrive and gives everything back once. */
export interface RequestTicket {
  /** Counts `bytes` more of this request's body, or throws (413/429) without counting them. */
  reserve(bytes: number): void;
  /** The body has been handed upstream: its bytes no longer count. */
  releaseBytes(): void;
  /** The request is over. Idempotent. */
  close(): void;
}

export class RequestBudget {
  private readonly sandboxes = new Map<string, SandboxUsage>();
  private totalBytes = 0;

  constructor(private readonly limits: GatewayLimits) {}

  /** Admits one more request of `sandboxId`, or throws 429 when it has too many in flight. */
  admit(sandboxId: string): RequestTicket {
    const usage = this.sandboxes.get(sandboxId) ?? { requests: 0, bytes: 0 };
    if (usage.requests >= this.limits.maxConcurrentRequestsPerSandbox) {
      throw new PolydevError(
        "limit_exceeded",
        `this sandbox already has ${usage.requests} provider requests in flight through the gateway (the limit); retry when one finishes`,
      );
    }
    usage.requests += 1;
    this.sandboxes.set(sandboxId, usage);
    let held = 0;
    let closed = false;
    const releaseBytes = (): void => {
      usage.bytes -= held;
      this.totalBytes -= held;
      held = 0;
    };
    return {
      reserve: (bytes) => {
        if (held + bytes > this.limits.maxRequestBytes) {
          throw new PolydevError(
            "payload_too_large",
            `provider requests are limited to ${this.limits.maxRequestBytes} bytes through the gateway`,
          );
        }
        if (usage.bytes + bytes > this.limits.maxBufferedBytesPerSandbox) {
          throw new PolydevError(
            "limit_exceeded",
            `this sandbox's requests in flight through the gateway already hold ${usage.bytes} bytes; the limit is ${this.limits.maxBufferedBytesPerSandbox}, retry when they finish`,
          );
        }
        if (this.totalBytes + bytes > this.limits.maxBufferedBytesTotal) {
          throw new PolydevError(
            "limit_exceeded",
            "the gateway is holding as many request bytes as it may; retry shortly",
          );
        }
        held += bytes;
        usage.bytes += bytes;
        this.totalBytes += bytes;
      },
      releaseBytes,
      close: () => {
        if (closed) return;
        closed = true;
        releaseBytes();
        usage.requests -= 1;
        if (usage.requests === 0) this.sandboxes.delete(sandboxId);
      },
    };
  }

  /** Requests in flight and body bytes buffered, for one sandbox or for all. */
  stats(sandboxId?: string): { requests: number; bufferedBytes: number } {
    if (sandboxId !== undefined) {
      const usage = this.sandboxes.get(sandboxId);
      return { requests: usage?.requests ?? 0, bufferedBytes: usage?.bytes ?? 0 };
    }
    let requests = 0;
    for (const usage of this.sandboxes.values()) requests += usage.requests;
    return { requests, bufferedBytes: this.totalBytes };
  }
}
