/**
 * Refreshes a subscription login's access token with the standard OAuth refresh-token grant,
 * against the same token endpoint and client the provider's CLI signed in with, and rewrites the
 * CLI's credential file so the CLI itself would find the new token too.
 *
 * Endpoints and client ids are settings (POLYDEV_<PROVIDER>_OAUTH_TOKEN_URL, …_CLIENT_ID,
 * …_CLIENT_SECRET). The defaults are the public values in each CLI's own sign-in URL; no client
 * secret ships with Polydev, so a provider that needs one refreshes only once the operator sets it.
 */
import type { GatewayProvider } from "@polydev/gateway";
import { request } from "undici";

export interface OAuthClient {
  tokenUrl: string;
  clientId: string;
  clientSecret?: string | undefined;
  /** Anthropic's endpoint takes JSON; the others the standard form encoding. */
  json: boolean;
}

export const DEFAULT_OAUTH_CLIENTS: Partial<Record<GatewayProvider, OAuthClient>> = {
  anthropic: {
    tokenUrl: "https://platform.claude.com/v1/oauth/token",
    clientId: "9d1c250a-e61b-44d9-88ed-5944d1962f5e",
    json: true,
  },
  openai: {
    tokenUrl: "https://auth.openai.com/oauth/token",
    clientId: "app_EMoamEEZ73f0CkXaXp7hrann",
    json: false,
  },
};

type Json = Record<string, unknown>;
const obj = (value: unknown): Json => (typeof value === "object" && value !== null ? (value as Json) : {});

/** Where each CLI keeps its tokens inside its credential file. */
export function tokensOf(
  provider: GatewayProvider,
  file: Json,
): { refreshToken?: string; expiresAt?: number } {
  if (provider === "anthropic") {
    const o = obj(file.claudeAiOauth);
    return {
      ...(typeof o.refreshToken === "string" ? { refreshToken: o.refreshToken } : {}),
      ...(typeof o.expiresAt === "number" ? { expiresAt: o.expiresAt } : {}),
    };
  }
  if (provider === "openai") {
    const tokens = obj(file.tokens);
    const expiresAt = jwtExpiry(tokens.access_token);
    return {
      ...(typeof tokens.refresh_token === "string" ? { refreshToken: tokens.refresh_token } : {}),
      ...(expiresAt === undefined ? {} : { expiresAt }),
    };
  }
  return {
    ...(typeof file.refresh_token === "string" ? { refreshToken: file.refresh_token } : {}),
    ...(typeof file.expiry_date === "number" ? { expiresAt: file.expiry_date } : {}),
  };
}

function jwtExpiry(token: unknown): number | undefined {
  if (typeof token !== "string") return undefined;
  try {
    const payload = obj(JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")));
    return typeof payload.exp === "number" ? payload.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

function withNewTokens(provider: GatewayProvider, file: Json, answer: Json, now: number): Json {
  const access = answer.access_token;
  const refresh = typeof answer.refresh_token === "string" ? answer.refresh_token : undefined;
  const expiresAt = typeof answer.expires_in === "number" ? now + answer.expires_in * 1000 : undefined;
  if (provider === "anthropic") {
    const o = obj(file.claudeAiOauth);
    return {
      ...file,
      claudeAiOauth: {
        ...o,
        accessToken: access,
        ...(refresh ? { refreshToken: refresh } : {}),
        ...(expiresAt ? { expiresAt } : {}),
      },
    };
  }
  if (provider === "openai") {
    const tokens = obj(file.tokens);
    return {
      ...file,
      tokens: { ...tokens, access_token: access, ...(refresh ? { refresh_token: refresh } : {}) },
      last_refresh: new Date(now).toISOString(),
    };
  }
  return {
    ...file,
    access_token: access,
    ...(refresh ? { refresh_token: refresh } : {}),
    ...(expiresAt ? { expiry_date: expiresAt } : {}),
  };
}

/** The credential file with fresh tokens, or an error saying what to do. */
export async function refreshCredentialFile(
  provider: GatewayProvider,
  fileText: string,
  client: OAuthClient | undefined,
  now: number,
): Promise<string> {
  const file = obj(JSON.parse(fileText));
  const { refreshToken } = tokensOf(provider, file);
  if (!client || !refreshToken) {
    throw new Error(
      `the ${provider} login has expired and cannot be refreshed here; sign in again with POST /v1/logins`,
    );
  }
  const fields: Record<string, string> = {
    grant_type: "refresh_token",
    refresh_token: refreshToken,
    client_id: client.clientId,
    ...(client.clientSecret ? { client_secret: client.clientSecret } : {}),
  };
  const response = await request(client.tokenUrl, {
    method: "POST",
    headers: { "content-type": client.json ? "application/json" : "application/x-www-form-urlencoded" },
    body: client.json ? JSON.stringify(fields) : new URLSearchParams(fields).toString(),
    headersTimeout: 15_000,
    bodyTimeout: 15_000,
  });
  const answer = obj(await response.body.json().catch(() => ({})));
  if (response.statusCode >= 300 || typeof answer.access_token !== "string") {
    throw new Error(
      `${provider} refused to refresh the login (${response.statusCode}); sign in again with POST /v1/logins`,
    );
  }
  return JSON.stringify(withNewTokens(provider, file, answer, now));
}
