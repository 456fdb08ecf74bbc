/**
 * The provider API paths the gateway relays, per provider: what the agent CLIs (Claude Code,
 * Codex, Gemini CLI) and the provider SDKs Polydev's built-in agent uses actually call, and no
 * more. The owner's key reaches only these endpoints of the configured upstream; anything else a
 * sandbox asks for is refused before a credential is looked up.
 *
 * Paths are relative to the provider's configured base URL and have already passed the target
 * checks (no empty, `.` or `..` segments, only letters, digits and `-._~:`), so the patterns only
 * need to say which API each path is.
 */
import type { GatewayProvider } from "./providers.js";

export interface ProviderRoute {
  methods: readonly string[];
  pattern: RegExp;
  /** How the route reads in a refusal message: `POST /v1/messages`. */
  label: string;
}

/** A model id in a path segment: `claude-sonnet-4-5`, `gpt-5`, `ft:gpt-4o:org::id`, `gemini-2.5-flash`. */
const MODEL = "[A-Za-z0-9][A-Za-z0-9._:-]{0,127}";
/** A Gemini model id, which a `:method` follows, so it holds no colon itself. */
const GEMINI_MODEL = "[A-Za-z0-9][A-Za-z0-9._-]{0,127}";
const GEMINI_METHODS = "generateContent|streamGenerateContent|countTokens|embedContent|batchEmbedContents";

const route = (methods: readonly string[], pattern: string, label: string): ProviderRoute => ({
  methods,
  pattern: new RegExp(`^${pattern}$`),
  label,
});

export const PROVIDER_ROUTES: Record<GatewayProvider, readonly ProviderRoute[]> = {
  anthropic: [
    // Claude Code probes its base URL (`HEAD /`) before the first request.
    route(["HEAD", "GET"], "/", "HEAD or GET /"),
    // Claude Code sends `?beta=true`; the SDK's `messages.stream` and `create` use the same path.
    route(["POST"], "/v1/messages", "POST /v1/messages"),
    route(["POST"], "/v1/messages/count_tokens", "POST /v1/messages/count_tokens"),
    route(["GET"], "/v1/models", "GET /v1/models"),
    route(["GET"], `/v1/models/${MODEL}`, "GET /v1/models/<model>"),
  ],
  openai: [
    // Codex first tries a WebSocket on `GET /v1/responses`, then streams over `POST`.
    route(["GET", "POST"], "/v1/responses", "POST /v1/responses (GET for Codex's WebSocket attempt)"),
    // Codex's remote compaction of a long conversation.
    route(["POST"], "/v1/responses/compact", "POST /v1/responses/compact"),
    // The built-in agent and OpenAI-compatible tools.
    route(["POST"], "/v1/chat/completions", "POST /v1/chat/completions"),
    route(["POST"], "/v1/embeddings", "POST /v1/embeddings"),
    route(["GET"], "/v1/models", "GET /v1/models"),
    route(["GET"], `/v1/models/${MODEL}`, "GET /v1/models/<model>"),
  ],
  gemini: [
    // The Gemini CLI and @google/genai: `models/<model>:streamGenerateContent?alt=sse` and friends.
    route(
      ["POST"],
      `/(?:v1beta|v1)/models/${GEMINI_MODEL}:(?:${GEMINI_METHODS})`,
      `POST /v1beta/models/<model>:${GEMINI_METHODS.split("|").join("|")} (or under /v1)`,
    ),
    route(["GET"], "/(?:v1beta|v1)/models", "GET /v1beta/models (or /v1/models)"),
    route(["GET"], `/(?:v1beta|v1)/models/${GEMINI_MODEL}`, "GET /v1beta/models/<model> (or under /v1)"),
  ],
};

/** The API paths relayed for a provider, as a refusal message lists them. */
export function describeRoutes(provider: GatewayProvider): string {
  return `the ${provider} API paths the gateway relays are ${PROVIDER_ROUTES[provider].map((r) => r.label).join(", ")}`;
}

/** Whether a request is one of the provider's API calls, or why not. */
export function matchProviderRoute(
  provider: GatewayProvider,
  method: string,
  path: string,
): { ok: true } | { ok: false; reason: string } {
  const byPath = PROVIDER_ROUTES[provider].filter((r) => r.pattern.test(path));
  if (byPath.some((r) => r.methods.includes(method))) return { ok: true };
  if (byPath.length > 0) {
    const methods = [...new Set(byPath.flatMap((r) => r.methods))].join(" or ");
    return { ok: false, reason: `${path} takes ${methods}, not ${method}; ${describeRoutes(provider)}` };
  }
  return { ok: false, reason: `${method} ${path} is not relayed; ${describeRoutes(provider)}` };
}
