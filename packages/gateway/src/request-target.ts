/**
 * What a sandbox asked the gateway for, checked before anything else happens. A client calls
 * `/<provider>/<API path>?<query>`; the sandbox controls every byte of that, so the path is
 * validated as data (never resolved as a URL against anything), must be one of the provider's API
 * paths, and is then appended to the configured base URL by plain string joining. The result is
 * checked once more against the configured origin and base path before any key goes near it.
 *
 * The earlier relay built the target with `new URL(path, base)`: `/anthropic//evil:1/x` and
 * `/openai/\evil:1/x` were protocol-relative URLs, and the owner's key went to `evil`.
 */
import { PolydevError } from "@polydev/core";
import { describeRoutes, matchProviderRoute } from "./provider-routes.js";
import type { GatewayProvider } from "./providers.js";
import { GATEWAY_PROVIDERS } from "./providers.js";

/** Far above any real API path and query; a longer target is refused, not parsed. */
export const MAX_TARGET_CHARS = 2048;

export interface GatewayTarget {
  provider: GatewayProvider;
  /** The API path under the provider's base URL, starting with `/` (`/` itself for the base). */
  path: string;
  /** The query to forward: re-encoded, the placeholder `key` taken out. */
  query: URLSearchParams;
  /** The placeholder a client sent as `?key=` (Gemini SDKs may), if any; never forwarded. */
  queryKey: string | undefined;
}

export type TargetCheck =
  | { ok: true; target: GatewayTarget }
  | { ok: false; provider: GatewayProvider | undefined; reason: string };

/** Characters an API path may hold. No `%` (no encoding tricks), `\`, `@`, or anything else. */
const PATH_CHARACTERS = /^[A-Za-z0-9\-._~:/]*$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this finds.
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;
const ENCODED_SEPARATORS = /%(?:2f|5c|2e|00)/i;
/** `scheme://…` or `//host`: a URL, which no provider API takes in its query. */
const URL_LIKE = /^\s*(?:[A-Za-z][A-Za-z0-9+.-]*:)?[\\/]{2}|:\/\//;

const refuse = (provider: GatewayProvider | undefined, reason: string): TargetCheck => ({
  ok: false,
  provider,
  reason,
});

/** Checks `req.url` as the sandbox sent it; `method` is checked against the provider's API paths. */
export function checkRequestTarget(method: string, rawTarget: string): TargetCheck {
  if (rawTarget.length > MAX_TARGET_CHARS) {
    return refuse(undefined, `request targets are limited to ${MAX_TARGET_CHARS} characters`);
  }
  if (!rawTarget.startsWith("/") || rawTarget.startsWith("//")) {
    return refuse(
      undefined,
      "the request target must be a path /<provider>/<API path>, not an absolute URL or //host",
    );
  }
  if (rawTarget.includes("#")) return refuse(undefined, "a request target carries no fragment (#)");
  const queryAt = rawTarget.indexOf("?");
  const rawPath = queryAt < 0 ? rawTarget : rawTarget.slice(0, queryAt);
  const rawQuery = queryAt < 0 ? undefined : rawTarget.slice(queryAt + 1);

  const slash = rawPath.indexOf("/", 1);
  const providerName = slash < 0 ? rawPath.slice(1) : rawPath.slice(1, slash);
  const provider = GATEWAY_PROVIDERS.find((p) => p === providerName);
  if (!provider) {
    return refuse(
      undefined,
      `unknown provider; the gateway serves ${GATEWAY_PROVIDERS.map((p) => `/${p}/…`).join(", ")}`,
    );
  }
  const rest = slash < 0 ? "" : rawPath.slice(slash);
  const unsafe = unsafePathReason(rest);
  if (unsafe) return refuse(provider, `the path may not contain ${unsafe}; ${describeRoutes(provider)}`);
  const path = rest === "" ? "/" : rest;
  const route = matchProviderRoute(provider, method, path);
  if (!route.ok) return refuse(provider, route.reason);

  const query = rawQuery === undefined ? new URLSearchParams() : new URLSearchParams(rawQuery);
  for (const [name, value] of query) {
    const bad = unsafeQueryReason(name) ?? unsafeQueryReason(value);
    if (bad) return refuse(provider, `the query parameter ${JSON.stringify(name)} may not contain ${bad}`);
  }
  const queryKey = query.get("key") ?? undefined;
  query.delete("key");
  return { ok: true, target: { provider, path, query, queryKey } };
}

function unsafePathReason(rest: string): string | undefined {
  if (rest === "" || rest === "/") return undefined;
  if (CONTROL_CHARACTERS.test(rest)) return "control characters";
  if (rest.includes("\\")) return "backslashes";
  if (ENCODED_SEPARATORS.test(rest)) return "encoded separators (%2f, %5c, %2e, %00)";
  if (rest.includes("%")) return "percent-encoded characters";
  if (rest.includes("@")) return "@";
  if (!PATH_CHARACTERS.test(rest)) {
    const odd = [...rest].find((c) => !PATH_CHARACTERS.test(c)) ?? "";
    return `${JSON.stringify(odd)} (only letters, digits and -._~:/ are allowed)`;
  }
  for (const segment of rest.slice(1).split("/")) {
    if (segment === "") return "empty segments (// or a trailing /)";
    if (segment === "." || segment === "..") return "dot segments (. or ..)";
  }
  return undefined;
}

function unsafeQueryReason(text: string): string | undefined {
  if (CONTROL_CHARACTERS.test(text)) return "control characters";
  if (text.includes("\\")) return "backslashes";
  if (URL_LIKE.test(text)) return "a URL";
  return undefined;
}

/**
 * The upstream URL: the configured base and the checked path joined as strings, then parsed
 * (never resolved) and asserted to be on the configured origin, under the configured base path.
 */
export function upstreamUrl(configuredBase: string, path: string, query: URLSearchParams): URL {
  const base = new URL(configuredBase);
  const basePath = base.pathname.replace(/\/+$/, "");
  const search = query.size > 0 ? `?${query.toString()}` : "";
  const url = new URL(`${base.origin}${basePath}${path}${search}`);
  if (
    url.origin !== base.origin ||
    url.pathname !== `${basePath}${path}` ||
    !url.pathname.startsWith(`${basePath}/`)
  ) {
    // Unreachable after checkRequestTarget; kept so a future change to the checks cannot leak a key.
    throw new PolydevError(
      "gateway_path_refused",
      "the request would leave the provider's configured upstream",
    );
  }
  return url;
}

/**
 * The target as it may appear in a log line: the path only (a query may hold the placeholder),
 * cut short, with anything unprintable escaped so it cannot forge log lines.
 */
export function describeTarget(rawTarget: string): string {
  const queryAt = rawTarget.indexOf("?");
  const path = queryAt < 0 ? rawTarget : rawTarget.slice(0, queryAt);
  const shown = path.length > 200 ? `${path.slice(0, 200)}…(${path.length} chars)` : path;
  const escaped = shown.replace(
    /[^\x21-\x7e…]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
  return queryAt < 0 ? escaped : `${escaped}?…`;
}
