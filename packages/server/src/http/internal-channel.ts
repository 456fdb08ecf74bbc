/**
 * The channel replicas forward requests over. The forwarding replica has already authenticated
 * the client; it sends the principal it found in one header, signed with the cluster secret
 * (HMAC-SHA256) over the method, the URL and the time, so the owning node trusts the principal
 * without authenticating again and a client can never claim one: without the secret no header
 * verifies, and a signed header only fits the request it was made for, for a short while, and
 * once: each carries a nonce the receiver claims on the shared bus (auth.ts), so a header seen on
 * the wire cannot be sent again.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { PolydevError } from "@polydev/core";
import type { Principal } from "./auth.js";

export const INTERNAL_HEADER = "x-polydev-internal";
/** A signed header older (or newer) than this is refused: replicas' clocks agree within it. */
export const INTERNAL_SIGNATURE_MAX_AGE_MS = 30_000;
const VERSION = "v1";

interface SignedClaim {
  principal: Principal;
  method: string;
  url: string;
  /** The forwarding node, for the owner's logs. */
  from: string;
  at: number;
  /** Random per request: the receiver accepts each once. */
  nonce: string;
}

function mac(secret: string, payload: string): string {
  return createHmac("sha256", secret).update(`${VERSION}.${payload}`).digest("base64url");
}

export function signInternalRequest(
  secret: string,
  claim: { principal: Principal; method: string; url: string; from: string; at: number },
): string {
  const payload = Buffer.from(
    JSON.stringify({ ...claim, nonce: randomBytes(16).toString("base64url") }),
  ).toString("base64url");
  return `${VERSION}.${payload}.${mac(secret, payload)}`;
}

/**
 * The principal a forwarded request carries, with the node that forwarded it. Throws
 * `invalid_internal_signature` for anything that does not verify; the message never says more
 * than which check failed (no secret, no expected value).
 */
export function verifyInternalRequest(
  secret: string | undefined,
  header: string,
  request: { method: string; url: string },
  now: number,
): { principal: Principal; from: string; nonce: string } {
  const refuse = refuseInternalRequest;
  if (secret === undefined) throw refuse("this server has no cluster secret");
  const [version, payload, signature] = header.split(".");
  if (version !== VERSION || !payload || !signature) throw refuse("malformed");
  const expected = Buffer.from(mac(secret, payload));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw refuse("bad signature");
  let claim: SignedClaim;
  try {
    claim = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as SignedClaim;
  } catch {
    throw refuse("malformed");
  }
  if (claim.method !== request.method || claim.url !== request.url)
    throw refuse("signed for another request");
  if (Math.abs(now - claim.at) > INTERNAL_SIGNATURE_MAX_AGE_MS) throw refuse("expired");
  if (typeof claim.nonce !== "string" || !/^[A-Za-z0-9_-]{16,64}$/.test(claim.nonce))
    throw refuse("malformed");
  return { principal: claim.principal, from: claim.from, nonce: claim.nonce };
}

export function refuseInternalRequest(why: string): PolydevError {
  return new PolydevError(
    "invalid_internal_signature",
    `the ${INTERNAL_HEADER} header is only for requests between Polydev replicas (${why}); clients must not send it`,
  );
}
