/**
 * Signed preview links and the cookies they set (HS256 JWTs, jose), with a server secret.
 *
 * A link names a sandbox, a port, the user who made it, whether it is a share link, and a random
 * preview id (`pid`). Opening it on the preview origin sets a session cookie bound to the same
 * fields: in path mode the pid is the path prefix (`/p/<pid>/`) the cookie is scoped to; in host
 * mode the host names the sandbox and port. A private link is for its maker to open at once
 * (minutes); its session lasts `sessionTtlMs`. A share link may live longer, and every session
 * opened from it ends when it does, so an expired share stops working everywhere.
 */
import { randomBytes } from "node:crypto";
import { chmod, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PolydevError } from "@polydev/core";
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";

export const PREVIEW_SECRET_FILE = "preview-secret";
/** Private links are opened right away by their maker; longer lives are for share links. */
export const MAX_PRIVATE_LINK_TTL_MS = 15 * 60_000;
const ISSUER = "polydev-preview";

export interface PreviewGrant {
  sandboxId: string;
  port: number;
  /** The user the link was made by (the sandbox's owner): the sandbox is resolved as theirs. */
  userId: string;
  /** Random, unguessable: the path prefix in path mode, and what binds a cookie to its link. */
  previewId: string;
  share: boolean;
}

export interface PreviewSession extends PreviewGrant {
  expiresAt: number;
}

/** The configured secret, or the data directory's (made on first start, mode 600). */
export async function loadPreviewSecret(
  dataDir: string,
  configured: string | undefined,
): Promise<Uint8Array> {
  if (configured !== undefined) return new TextEncoder().encode(configured);
  const file = join(dataDir, PREVIEW_SECRET_FILE);
  try {
    return Buffer.from((await readFile(file, "utf8")).trim(), "base64url");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const secret = randomBytes(32);
  // `wx`: two servers starting on one data directory never overwrite each other's secret.
  await writeFile(file, secret.toString("base64url"), { mode: 0o600, flag: "wx" }).catch(async (error) => {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  });
  await chmod(file, 0o600);
  return Buffer.from((await readFile(file, "utf8")).trim(), "base64url");
}

export function newPreviewId(): string {
  // Lower-case hex: it also fits in a host name.
  return randomBytes(16).toString("hex");
}

export class PreviewLinks {
  constructor(
    private readonly secret: Uint8Array,
    private readonly now: () => number,
  ) {}

  /** A link token valid until `expiresAt`. */
  signLink(grant: PreviewGrant, expiresAt: number): Promise<string> {
    return this.sign("link", grant, expiresAt);
  }

  /** The cookie a link buys: until `min(now + sessionTtlMs, the share link's end)`. */
  async sessionFor(
    link: PreviewSession,
    sessionTtlMs: number,
  ): Promise<{ token: string; expiresAt: number }> {
    const until = this.now() + sessionTtlMs;
    const expiresAt = link.share ? Math.min(until, link.expiresAt) : until;
    return { token: await this.sign("session", link, expiresAt), expiresAt };
  }

  verifyLink(token: string): Promise<PreviewSession> {
    return this.verify("link", token);
  }

  verifySession(token: string): Promise<PreviewSession> {
    return this.verify("session", token);
  }

  private sign(kind: "link" | "session", grant: PreviewGrant, expiresAt: number): Promise<string> {
    return new SignJWT({
      kind,
      sbx: grant.sandboxId,
      prt: grant.port,
      pid: grant.previewId,
      shr: grant.share,
    })
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer(ISSUER)
      .setSubject(grant.userId)
      .setIssuedAt(Math.floor(this.now() / 1000))
      .setExpirationTime(Math.floor(expiresAt / 1000))
      .sign(this.secret);
  }

  private async verify(kind: "link" | "session", token: string): Promise<PreviewSession> {
    const what = kind === "link" ? "preview link" : "preview session";
    try {
      const { payload } = await jwtVerify(token, this.secret, {
        issuer: ISSUER,
        algorithms: ["HS256"],
        currentDate: new Date(this.now()),
      });
      const { sbx, prt, pid, shr, sub, exp } = payload;
      if (
        payload.kind !== kind ||
        typeof sbx !== "string" ||
        typeof prt !== "number" ||
        typeof pid !== "string" ||
        typeof sub !== "string" ||
        typeof exp !== "number"
      ) {
        throw new PolydevError("invalid_token", `this ${what} is not valid`);
      }
      return {
        sandboxId: sbx,
        port: prt,
        previewId: pid,
        share: shr === true,
        userId: sub,
        expiresAt: exp * 1000,
      };
    } catch (error) {
      if (error instanceof PolydevError) throw error;
      if (error instanceof joseErrors.JWTExpired) {
        throw new PolydevError(
          "invalid_token",
          `this ${what} has expired: ask for a new link (polydev port open, or "Open preview" in the dashboard)`,
        );
      }
      throw new PolydevError(
        "invalid_token",
        `this ${what} is not valid (altered, or signed by another server)`,
      );
    }
  }
}
