/**
 * Sending one webhook request from the server host. The URL is the user's, so without checks a
 * webhook is a request forgery: the cloud metadata service, a database on loopback, an admin page
 * on the LAN. Unless the operator allows private destinations, every connection resolves the host
 * once, refuses it when any of its addresses is loopback, link-local, private, reserved or one of
 * this host's own (the image pulls' rules, `refusedAddressReason`), and connects to exactly the
 * address it checked, so a DNS answer that changes in between (rebinding) cannot steer it.
 * Redirects are not followed; the answer's body is read only up to a few KiB.
 */
import { createHmac } from "node:crypto";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { PolydevError } from "@polydev/core";
import { refusedAddressReason } from "@polydev/images";
import { Agent, buildConnector, type Dispatcher, request } from "undici";

/** What of an answer's body is kept for the delivery log. */
const MAX_RESPONSE_BYTES = 4096;

export const SIGNATURE_HEADER = "polydev-signature";

/** `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with the secret>` (docs/webhooks.md). */
export function signatureHeader(secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac("sha256", secret).update(`${unixSeconds}.${body}`).digest("hex");
  return `t=${unixSeconds},v1=${mac}`;
}

/** A webhook URL must be absolute http(s), without credentials in it. */
export function parseWebhookUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new PolydevError("invalid_request", "url must be an absolute http:// or https:// URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new PolydevError(
      "invalid_request",
      `url must use http or https, not ${url.protocol.replace(":", "")}`,
    );
  if (url.username !== "" || url.password !== "")
    throw new PolydevError(
      "invalid_request",
      "url must not carry a user name or password; the signature authenticates the request",
    );
  return url;
}

/** The address to connect to for `hostname`, or `destination_refused` naming why not. */
export async function checkedAddress(hostname: string): Promise<string> {
  const bare = hostname.replace(/^\[(.*)\]$/, "$1");
  let addresses: string[];
  try {
    addresses =
      isIP(bare) !== 0 ? [bare] : (await lookup(bare, { all: true, verbatim: true })).map((a) => a.address);
  } catch {
    throw new PolydevError("invalid_request", `the webhook host ${hostname} does not resolve`, {
      details: { host: hostname },
    });
  }
  // Every address must pass: a name that also resolves to a private one is refused as a whole.
  for (const address of addresses) {
    const reason = refusedAddressReason(address);
    if (reason !== undefined)
      throw new PolydevError(
        "destination_refused",
        `webhooks may not be sent to ${hostname} (${address}): ${reason}; an operator can allow private destinations with POLYDEV_WEBHOOK_ALLOW_PRIVATE=1`,
        { details: { host: hostname } },
      );
  }
  const first = addresses[0];
  if (first === undefined)
    throw new PolydevError("invalid_request", `the webhook host ${hostname} has no address`);
  return first;
}

/** An undici dispatcher that checks every connection (see the file comment) unless private ones are allowed. */
export function webhookDispatcher(allowPrivate: boolean): Agent {
  const connect = buildConnector({});
  return new Agent({
    connections: 16,
    connect: (options, callback) => {
      if (allowPrivate) {
        connect(options, callback);
        return;
      }
      checkedAddress(options.hostname).then(
        (address) => {
          const bare = options.hostname.replace(/^\[(.*)\]$/, "$1");
          // TLS still checks the certificate against the name asked for, not the address.
          const servername = options.servername ?? (isIP(bare) === 0 ? bare : undefined);
          connect(
            { ...options, hostname: address, ...(servername === undefined ? {} : { servername }) },
            callback,
          );
        },
        (error: unknown) => callback(error instanceof Error ? error : new Error(String(error)), null),
      );
    },
  });
}

export interface SendResult {
  /** The answer's status, or null when none came (refused, unreachable, timed out). */
  status: number | null;
  ok: boolean;
  /** Why it did not count as delivered, bounded; null when it did. */
  error: string | null;
}

export async function sendWebhook(options: {
  url: string;
  body: string;
  headers: Record<string, string>;
  dispatcher: Dispatcher;
  timeoutMs: number;
  signal: AbortSignal;
}): Promise<SendResult> {
  try {
    const response = await request(options.url, {
      method: "POST",
      body: options.body,
      headers: { "content-type": "application/json", "user-agent": "Polydev-Webhooks/1", ...options.headers },
      dispatcher: options.dispatcher,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      signal: AbortSignal.any([options.signal, AbortSignal.timeout(options.timeoutMs)]),
    });
    const excerpt = await readSome(response.body);
    const ok = response.statusCode >= 200 && response.statusCode < 300;
    return {
      status: response.statusCode,
      ok,
      error: ok ? null : `HTTP ${response.statusCode}${excerpt ? `: ${excerpt}` : ""}`.slice(0, 1024),
    };
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause : undefined;
    const reason = cause instanceof PolydevError ? cause : error;
    const message = reason instanceof Error ? reason.message : String(reason);
    return { status: null, ok: false, error: message.slice(0, 1024) };
  }
}

/** At most MAX_RESPONSE_BYTES of the body, then the rest is dropped unread. */
async function readSome(body: Dispatcher.ResponseData["body"]): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      chunks.push(buffer.subarray(0, MAX_RESPONSE_BYTES - size));
      size += buffer.length;
      if (size >= MAX_RESPONSE_BYTES) break;
    }
  } catch {
    // What arrived before the body broke is enough for the log.
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks).toString("utf8").trim();
}
