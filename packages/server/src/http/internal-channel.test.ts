/**
 * The signed header replicas forward requests with: only the cluster secret makes one that
 * verifies, a signature fits only the request it was made for and only for a short while, and a
 * refusal never echoes the secret or what was expected.
 */
import { describe, expect, it } from "vitest";
import type { Principal } from "./auth.js";
import {
  INTERNAL_SIGNATURE_MAX_AGE_MS,
  signInternalRequest,
  verifyInternalRequest,
} from "./internal-channel.js";

const SECRET = "cluster-secret-for-the-signature-test-0123";
const principal: Principal = {
  userId: "usr_1",
  userName: "ann",
  role: "user",
  keyId: "key_1",
  session: undefined,
};
const request = { method: "POST", url: "/v1/sandboxes/sbx_1/exec?x=1" };
const sign = (overrides: Partial<{ method: string; url: string; at: number }> = {}, secret = SECRET) =>
  signInternalRequest(secret, { principal, from: "node-a", at: 1_000_000, ...request, ...overrides });

describe("the internal channel's signature", () => {
  it("carries the principal and the forwarding node when it verifies", () => {
    const verified = verifyInternalRequest(SECRET, sign(), request, 1_000_000 + 5);
    expect(verified.principal).toEqual(principal);
    expect(verified.from).toBe("node-a");
    // Each header is its own: the receiver accepts a nonce once (auth.ts claims it on the bus).
    expect(verified.nonce).toMatch(/^[A-Za-z0-9_-]{16,64}$/);
    expect(verifyInternalRequest(SECRET, sign(), request, 1_000_000).nonce).not.toBe(verified.nonce);
  });

  it("refuses anything else with invalid_internal_signature, naming no secret", () => {
    const refusals: [string, string | undefined, string, typeof request, number][] = [
      ["no secret here", undefined, sign(), request, 1_000_000],
      ["wrong secret", SECRET, sign({}, `${SECRET}x`), request, 1_000_000],
      ["other url", SECRET, sign({ url: "/v1/admin/users" }), request, 1_000_000],
      ["other method", SECRET, sign({ method: "GET" }), request, 1_000_000],
      ["too old", SECRET, sign(), request, 1_000_000 + INTERNAL_SIGNATURE_MAX_AGE_MS + 1],
      ["garbage", SECRET, "v1.e30.bm9wZQ", request, 1_000_000],
      ["empty", SECRET, "", request, 1_000_000],
    ];
    for (const [why, secret, header, req, now] of refusals) {
      let thrown: unknown;
      try {
        verifyInternalRequest(secret, header, req, now);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, why).toMatchObject({ code: "invalid_internal_signature", status: 401 });
      expect(String((thrown as Error).message), why).not.toContain(SECRET);
    }
    // A tampered principal (role raised to admin) breaks the signature.
    const [version, payload, mac] = sign().split(".");
    const claim = JSON.parse(Buffer.from(payload ?? "", "base64url").toString()) as { principal: Principal };
    claim.principal.role = "admin";
    const tampered = `${version}.${Buffer.from(JSON.stringify(claim)).toString("base64url")}.${mac}`;
    expect(() => verifyInternalRequest(SECRET, tampered, request, 1_000_000)).toThrow(/bad signature/);
  });
});
