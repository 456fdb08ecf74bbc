/**
 * What the gateway knows about each provider API: where a client puts its key, where the real
 * credential goes, and how usage is reported in a response.
 */
export const GATEWAY_PROVIDERS = ["anthropic", "openai", "gemini"] as const;
export type GatewayProvider = (typeof GATEWAY_PROVIDERS)[number];

export type CredentialKind = "api_key" | "oauth";

export interface UpstreamCredential {
  kind: CredentialKind;
  /** The key or OAuth access token; lives only in memory on its way upstream. */
  secret: string;
}

/** Headers that may carry a client's key; all are stripped before forwarding. */
const KEY_HEADERS = ["authorization", "x-api-key", "x-goog-api-key"];

/** The placeholder a sandbox client sent, wherever its SDK put it (`queryKey`: a `?key=`). */
export function placeholderFrom(
  headers: Record<string, string | string[] | undefined>,
  queryKey: string | undefined,
): string | undefined {
  const bearer = /^Bearer\s+(\S+)$/i.exec(String(headers.authorization ?? ""))?.[1];
  const candidates = [bearer, headers["x-api-key"], headers["x-goog-api-key"], queryKey];
  for (const candidate of candidates) {
    if (typeof candidate === "string" && candidate.length > 0) return candidate;
  }
  return undefined;
}

export function applyCredential(
  provider: GatewayProvider,
  credential: UpstreamCredential,
  headers: Record<string, string>,
  url: URL,
): void {
  for (const name of KEY_HEADERS) delete headers[name];
  url.searchParams.delete("key");
  if (credential.kind === "oauth") {
    headers.authorization = `Bearer ${credential.secret}`;
    if (provider === "anthropic") {
      // Subscription tokens are accepted only with the OAuth beta flag, as Claude Code sends it.
      const beta = headers["anthropic-beta"];
      if (!beta?.includes("oauth-2025-04-20"))
        headers["anthropic-beta"] = beta ? `${beta},oauth-2025-04-20` : "oauth-2025-04-20";
    }
    return;
  }
  if (provider === "anthropic") headers["x-api-key"] = credential.secret;
  else if (provider === "openai") headers.authorization = `Bearer ${credential.secret}`;
  else headers["x-goog-api-key"] = credential.secret;
}
