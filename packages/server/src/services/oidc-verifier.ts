/**
 * Verifies JWTs of the configured external issuers with `jose`. Which issuer a token claims is
 * read from its unverified payload only to pick the issuer's keys; everything else is decided by
 * the signature check, which pins the issuer, audience, algorithms and clock skew.
 *
 * Fetches of an issuer's JWKS (and discovery document) are bounded: a timeout, a size cap, a
 * cache, and jose's cooldown, which refetches for an unknown `kid` at most once per cooldown —
 * so tokens with random kids cannot make the server hammer the issuer.
 */
import { PolydevError } from "@polydev/core";
import {
  createRemoteJWKSet,
  customFetch,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type JWTPayload,
  jwtVerify,
} from "jose";
import type { OidcIssuerConfig } from "../oidc-config.js";

export interface OidcLimits {
  fetchTimeoutMs: number;
  /** A JWKS or discovery document larger than this is refused. */
  maxDocumentBytes: number;
  /** Keys are refetched at least this often (rotation without a new kid). */
  cacheMaxAgeMs: number;
  /** At most one refetch per this long when a token names a kid the cache lacks. */
  refetchCooldownMs: number;
}

export const DEFAULT_OIDC_LIMITS: OidcLimits = {
  fetchTimeoutMs: 5_000,
  maxDocumentBytes: 256 * 1024,
  cacheMaxAgeMs: 10 * 60_000,
  refetchCooldownMs: 30_000,
};

export interface VerifiedToken {
  issuer: OidcIssuerConfig;
  subject: string;
  claims: JWTPayload;
}

type KeySet = ReturnType<typeof createRemoteJWKSet>;

/** Compact JWS: three base64url parts. API keys (`pdk_…`) never have dots. */
export function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
}

const invalid = (message: string): PolydevError => new PolydevError("invalid_token", message);

/** Claim values echoed in messages are the issuer's or the client's own; kept short all the same. */
const shown = (value: unknown): string => JSON.stringify(value)?.slice(0, 120) ?? "undefined";

export class OidcVerifier {
  private readonly keySets = new Map<string, Promise<KeySet>>();
  /** When discovery last failed, per issuer, so a dead issuer is asked at most once per cooldown. */
  private readonly discoveryFailedAt = new Map<string, number>();

  constructor(
    private readonly issuers: readonly OidcIssuerConfig[],
    private readonly limits: OidcLimits = DEFAULT_OIDC_LIMITS,
  ) {}

  get enabled(): boolean {
    return this.issuers.length > 0;
  }

  async verify(token: string): Promise<VerifiedToken> {
    let claimedIssuer: unknown;
    try {
      decodeProtectedHeader(token);
      claimedIssuer = decodeJwt(token).iss;
    } catch {
      throw invalid("the bearer token is neither an API key nor a well-formed JWT");
    }
    const issuer = this.issuers.find((i) => i.issuer === claimedIssuer);
    if (!issuer) {
      throw invalid(`the token's issuer ${shown(claimedIssuer)} is not one this server trusts`);
    }
    const keys = await this.keySetFor(issuer);
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(token, keys, {
        issuer: issuer.issuer,
        audience: issuer.audience,
        algorithms: [...issuer.algorithms],
        clockTolerance: Math.floor(issuer.clockToleranceMs / 1000),
        requiredClaims: ["exp"],
      }));
    } catch (error) {
      throw describeFailure(error, issuer);
    }
    const subject = claimAt(claims, issuer.subjectClaim);
    if (typeof subject !== "string" || subject.length === 0 || subject.length > 255) {
      throw invalid(`the token has no usable "${issuer.subjectClaim}" claim (a string of 1–255 characters)`);
    }
    return { issuer, subject, claims };
  }

  private keySetFor(issuer: OidcIssuerConfig): Promise<KeySet> {
    const cached = this.keySets.get(issuer.issuer);
    if (cached) return cached;
    const failedAt = this.discoveryFailedAt.get(issuer.issuer);
    if (failedAt !== undefined && Date.now() - failedAt < this.limits.refetchCooldownMs) {
      return Promise.reject(issuerUnreachable(issuer, "its discovery document failed moments ago"));
    }
    // jose's cooldown starts after a successful fetch; a failed one would be retried by the next
    // token at once, so failures get the same cooldown here.
    let lastFailureAt = Number.NEGATIVE_INFINITY;
    const fetchKeys = async (input: string, init: RequestInit): Promise<Response> => {
      if (Date.now() - lastFailureAt < this.limits.refetchCooldownMs) {
        throw new Error("the last fetch of its keys failed moments ago");
      }
      try {
        const response = await boundedFetch(input, init, this.limits.maxDocumentBytes);
        if (!response.ok) lastFailureAt = Date.now();
        return response;
      } catch (error) {
        lastFailureAt = Date.now();
        throw error;
      }
    };
    const made = this.jwksUrlOf(issuer).then((url) =>
      createRemoteJWKSet(url, {
        timeoutDuration: this.limits.fetchTimeoutMs,
        cooldownDuration: this.limits.refetchCooldownMs,
        cacheMaxAge: this.limits.cacheMaxAgeMs,
        [customFetch]: fetchKeys,
      }),
    );
    this.keySets.set(issuer.issuer, made);
    made.catch(() => {
      this.keySets.delete(issuer.issuer);
      this.discoveryFailedAt.set(issuer.issuer, Date.now());
    });
    return made;
  }

  private async jwksUrlOf(issuer: OidcIssuerConfig): Promise<URL> {
    if (issuer.jwksUrl) return new URL(issuer.jwksUrl);
    const discovery = new URL(`${issuer.issuer.replace(/\/$/, "")}/.well-known/openid-configuration`);
    let document: unknown;
    try {
      const response = await boundedFetch(
        discovery.href,
        {
          signal: AbortSignal.timeout(this.limits.fetchTimeoutMs),
          headers: { accept: "application/json" },
        },
        this.limits.maxDocumentBytes,
      );
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      document = await response.json();
    } catch (error) {
      throw issuerUnreachable(issuer, error instanceof Error ? error.message : String(error));
    }
    const fields = typeof document === "object" && document !== null ? document : {};
    // OIDC Discovery §4.3: the document's issuer must be the one it was fetched for.
    if (Reflect.get(fields, "issuer") !== issuer.issuer) {
      throw issuerUnreachable(issuer, "its discovery document names a different issuer");
    }
    const jwksUri = Reflect.get(fields, "jwks_uri");
    if (typeof jwksUri !== "string" || !/^https?:\/\//.test(jwksUri)) {
      throw issuerUnreachable(issuer, "its discovery document has no http(s) jwks_uri");
    }
    return new URL(jwksUri);
  }
}

function issuerUnreachable(issuer: OidcIssuerConfig, why: string): PolydevError {
  return new PolydevError(
    "upstream_unreachable",
    `the keys of issuer ${issuer.issuer} could not be fetched (${why}); try again later`,
  );
}

/** fetch, refusing bodies over `maxBytes` whatever Content-Length claims. */
async function boundedFetch(input: string, init: RequestInit, maxBytes: number): Promise<Response> {
  const response = await fetch(input, { ...init, redirect: "error" });
  const declared = Number(response.headers.get("content-length") ?? "0");
  if (declared > maxBytes) {
    await response.body?.cancel();
    throw new Error(`the document is larger than ${maxBytes} bytes`);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (response.body) {
    for await (const chunk of response.body) {
      total += chunk.byteLength;
      if (total > maxBytes) {
        throw new Error(`the document is larger than ${maxBytes} bytes`);
      }
      chunks.push(chunk);
    }
  }
  return new Response(Buffer.concat(chunks), { status: response.status, headers: response.headers });
}

/** Reads `a.b.c` from the claims; undefined when any step is missing. */
export function claimAt(claims: JWTPayload, path: string): unknown {
  let value: unknown = claims;
  for (const step of path.split(".")) {
    if (typeof value !== "object" || value === null || !Object.hasOwn(value, step)) return undefined;
    value = Reflect.get(value, step);
  }
  return value;
}

function describeFailure(error: unknown, issuer: OidcIssuerConfig): PolydevError {
  if (error instanceof errors.JWTExpired) {
    return invalid("the token has expired; get a new one from the issuer");
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case "aud":
        return invalid(`the token's audience is wrong: this server accepts "${issuer.audience}"`);
      case "iss":
        return invalid(`the token's issuer is wrong: expected ${issuer.issuer}`);
      case "nbf":
        return invalid("the token is not valid yet (nbf is in the future)");
      case "exp":
        return invalid("the token has no expiry (exp); tokens without one are refused");
      default:
        return invalid(`the token's "${error.claim}" claim is not valid (${error.reason})`);
    }
  }
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
    return invalid(`the token's algorithm is not accepted; allowed: ${issuer.algorithms.join(", ")}`);
  }
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
    return invalid("no key of the issuer matches the token (unknown kid or algorithm)");
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return invalid("the token's signature does not verify with the issuer's keys");
  }
  if (
    error instanceof errors.JWKSTimeout ||
    error instanceof errors.JWKSInvalid ||
    error instanceof TypeError
  ) {
    return issuerUnreachable(issuer, error.message);
  }
  if (error instanceof errors.JOSEError) {
    return invalid(`the token is not valid (${error.code})`);
  }
  return issuerUnreachable(issuer, error instanceof Error ? error.message : String(error));
}
