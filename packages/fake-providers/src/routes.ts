import type { IncomingHttpHeaders, ServerResponse } from "node:http";
import { anthropicMessages } from "./anthropic-messages.js";
import { geminiGenerate } from "./gemini-generate.js";
import type { ModelApi, RouteFacts } from "./model-api.js";
import {
  anthropicModel,
  anthropicModelList,
  geminiModel,
  geminiModelList,
  openaiModel,
  openaiModelList,
} from "./model-catalog.js";
import { openaiChat } from "./openai-chat.js";
import { openaiResponses } from "./openai-responses.js";
import { estimateTokens } from "./plan.js";
import type { FakeProviderName } from "./types.js";

/** A request the fake knows how to answer. */
export type Route =
  /** A model turn, answered from the script. */
  | { kind: "model"; provider: FakeProviderName; api: ModelApi; facts: RouteFacts }
  /** A fixed JSON answer computed from the request size (listings, token counts, probes). */
  | {
      kind: "json";
      provider: FakeProviderName | "unknown";
      status: number;
      body: (requestBytes: number) => unknown;
    };

const GEMINI_PATH = /^\/(?:v1beta|v1alpha|v1)\/models\/([^/:]+):([A-Za-z]+)$/;
const GEMINI_MODEL_PATH = /^\/(?:v1beta|v1alpha)\/models\/([^/:]+)$/;
const V1_MODEL_PATH = /^\/v1\/models\/([^/:]+)$/;

/** `/v1/models` is shared by Anthropic and OpenAI; only Anthropic clients send these headers. */
function looksAnthropic(headers: IncomingHttpHeaders): boolean {
  return headers["anthropic-version"] !== undefined || headers["x-api-key"] !== undefined;
}

export function matchRoute(method: string, path: string, headers: IncomingHttpHeaders): Route | undefined {
  if (method === "POST") {
    if (path === "/v1/messages")
      return { kind: "model", provider: "anthropic", api: anthropicMessages, facts: {} };
    if (path === "/v1/messages/count_tokens") {
      return {
        kind: "json",
        provider: "anthropic",
        status: 200,
        body: (bytes) => ({ input_tokens: estimateTokens(bytes) }),
      };
    }
    if (path === "/v1/responses")
      return { kind: "model", provider: "openai", api: openaiResponses, facts: {} };
    if (path === "/v1/chat/completions")
      return { kind: "model", provider: "openai", api: openaiChat, facts: {} };
    const gemini = GEMINI_PATH.exec(path);
    if (gemini?.[1] && gemini[2]) return geminiRoute(gemini[1], gemini[2]);
    return undefined;
  }
  if (method === "GET" || method === "HEAD") {
    // Claude Code probes the base URL with `HEAD /` before its first request.
    if (path === "/") return { kind: "json", provider: "unknown", status: 200, body: () => ({ ok: true }) };
    if (path === "/v1/models") {
      return looksAnthropic(headers)
        ? { kind: "json", provider: "anthropic", status: 200, body: anthropicModelList }
        : { kind: "json", provider: "openai", status: 200, body: openaiModelList };
    }
    const v1Model = V1_MODEL_PATH.exec(path)?.[1];
    if (v1Model) {
      return looksAnthropic(headers)
        ? { kind: "json", provider: "anthropic", status: 200, body: () => anthropicModel(v1Model) }
        : { kind: "json", provider: "openai", status: 200, body: () => openaiModel(v1Model) };
    }
    if (path === "/v1beta/models" || path === "/v1alpha/models") {
      return { kind: "json", provider: "gemini", status: 200, body: geminiModelList };
    }
    const geminiModelId = GEMINI_MODEL_PATH.exec(path)?.[1];
    if (geminiModelId)
      return { kind: "json", provider: "gemini", status: 200, body: () => geminiModel(geminiModelId) };
    // Codex tries a WebSocket on this path first; 426 tells it to fall back to SSE over POST.
    if (path === "/v1/responses")
      return { kind: "json", provider: "openai", status: 426, body: upgradeRequired };
  }
  return undefined;
}

export function upgradeRequired() {
  return {
    error: {
      message: "fake-providers: WebSocket is not supported; use POST /v1/responses with SSE",
      type: "invalid_request_error",
      code: "upgrade_required",
    },
  };
}

function geminiRoute(model: string, method: string): Route | undefined {
  if (method === "streamGenerateContent") {
    return { kind: "model", provider: "gemini", api: geminiGenerate, facts: { model, stream: true } };
  }
  if (method === "generateContent") {
    return { kind: "model", provider: "gemini", api: geminiGenerate, facts: { model, stream: false } };
  }
  if (method === "countTokens") {
    return {
      kind: "json",
      provider: "gemini",
      status: 200,
      body: (bytes) => ({ totalTokens: estimateTokens(bytes) }),
    };
  }
  return undefined;
}

export function notFoundBody(method: string, path: string) {
  return { error: { message: `fake-providers: no route for ${method} ${path}`, type: "not_found_error" } };
}

export function respondHead(res: ServerResponse, status: number): void {
  res.writeHead(status, { "content-length": "0" });
  res.end();
}
