/**
 * The shape of one external OIDC/JWT issuer in the config (POLYDEV_OIDC_ISSUERS, a JSON array).
 * Kept beside config.ts so the verifier and the config parse share one definition.
 */
import { z } from "zod";

/**
 * Asymmetric algorithms only: an issuer's JWKS holds public keys, and a symmetric algorithm
 * (HS256) or `none` would let anyone who can read the JWKS mint tokens.
 */
export const OIDC_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
] as const;

/** Clock skew beyond five minutes hides a broken clock rather than tolerating drift. */
export const MAX_CLOCK_TOLERANCE_MS = 5 * 60_000;

export const oidcIssuerSchema = z.strictObject({
  /** Must equal the token's `iss` exactly (e.g. `https://<project>.supabase.co/auth/v1`). */
  issuer: z.url({ protocol: /^https?$/ }),
  /** The token's `aud` must contain it (Supabase: `authenticated`; Auth0: the API identifier). */
  audience: z.string().min(1),
  /** Where the issuer's keys are; without it, read from `<issuer>/.well-known/openid-configuration`. */
  jwksUrl: z.url({ protocol: /^https?$/ }).optional(),
  /** Algorithms accepted; default RS256 and ES256. */
  algorithms: z.array(z.enum(OIDC_ALGORITHMS)).min(1).default(["RS256", "ES256"]),
  /** The claim naming the account; with the issuer it links to one user for good. Default `sub`. */
  subjectClaim: z.string().min(1).default("sub"),
  /** The claim a new user's name is made from (falls back to the subject). Default `preferred_username`. */
  nameClaim: z.string().min(1).default("preferred_username"),
  /**
   * A dotted path to the claim holding roles (`role`, `app_metadata.role`, `realm_access.roles`);
   * when set, the user's role follows it at every sign-in. Unset: new users are `user` and an
   * admin sets roles.
   */
  roleClaim: z.string().min(1).optional(),
  /** The value (or array member) of `roleClaim` that makes an admin. Default `admin`. */
  adminValue: z.string().min(1).default("admin"),
  /** Allowed clock skew for exp/nbf/iat, at most 5 minutes. Default 30 s. */
  clockToleranceMs: z.number().int().min(0).max(MAX_CLOCK_TOLERANCE_MS).default(30_000),
});

export type OidcIssuerConfig = z.output<typeof oidcIssuerSchema>;
