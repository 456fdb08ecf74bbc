/** Gemini API (`models/<model>:streamGenerateContent?alt=sse` and `:generateContent`), as the Gemini CLI calls it. */
import { textChunks } from "./http-io.js";
import { arrayAt, earlierPrompts, isObject, objectAt, promptFromTexts, stringAt } from "./json-access.js";
import type { ModelApi, ReplyContext } from "./model-api.js";
import type { PlannedError, PlannedReply } from "./plan.js";

/** google.rpc.Code names the real API puts in `error.status`. */
const ERROR_STATUSES: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  429: "RESOURCE_EXHAUSTED",
  500: "INTERNAL",
  503: "UNAVAILABLE",
  504: "DEADLINE_EXCEEDED",
};

function partTexts(content: unknown): string[] {
  return arrayAt(content, "parts").flatMap((part) => stringAt(part, "text") ?? []);
}

function usageMetadata(reply: PlannedReply, final: boolean) {
  return final
    ? {
        promptTokenCount: reply.inputTokens,
        candidatesTokenCount: reply.outputTokens,
        totalTokenCount: reply.inputTokens + reply.outputTokens,
      }
    : { promptTokenCount: reply.inputTokens, totalTokenCount: reply.inputTokens };
}

function chunkBody(
  parts: unknown[],
  reply: PlannedReply,
  context: ReplyContext,
  responseId: string,
  final: boolean,
) {
  return {
    candidates: [
      {
        content: { parts, role: "model" },
        ...(final ? { finishReason: "STOP" } : {}),
        index: 0,
      },
    ],
    usageMetadata: usageMetadata(reply, final),
    modelVersion: context.model,
    responseId,
  };
}

function functionCallPart(reply: PlannedReply): unknown[] {
  return reply.toolCall
    ? [{ functionCall: { name: reply.toolCall.name, args: reply.toolCall.arguments } }]
    : [];
}

export const geminiGenerate: ModelApi = {
  provider: "gemini",

  read(body, route) {
    const contents = arrayAt(body, "contents");
    const userTexts = contents
      .filter((content) => (stringAt(content, "role") ?? "user") === "user")
      .map(partTexts)
      .filter((texts) => texts.length > 0);
    const lastParts = arrayAt(contents.at(-1), "parts");
    const generationConfig = objectAt(body, "generationConfig");
    const responseSchema = generationConfig?.responseJsonSchema ?? generationConfig?.responseSchema;
    return {
      model: route.model ?? "gemini-fake",
      stream: route.stream === true,
      prompt: promptFromTexts(userTexts.at(-1) ?? []),
      earlierPrompts: earlierPrompts(userTexts),
      lastIsToolResult: lastParts.some((part) => isObject(part) && isObject(part.functionResponse)),
      freeformToolNames: [],
      ...(responseSchema === undefined ? {} : { responseSchema }),
      toolNames: arrayAt(body, "tools").flatMap((tool) =>
        arrayAt(tool, "functionDeclarations").flatMap((declaration) => stringAt(declaration, "name") ?? []),
      ),
    };
  },

  async stream(sse, reply, context) {
    const responseId = context.ids.next("resp");
    const partGroups: unknown[][] = textChunks(reply.text).map((text) => [{ text }]);
    if (reply.toolCall) partGroups.push(functionCallPart(reply));
    // The real API never ends on an empty candidate; the last chunk carries finishReason and usage.
    if (partGroups.length === 0) partGroups.push([{ text: "" }]);
    for (const [index, parts] of partGroups.entries()) {
      await sse.pause(reply.delayMs);
      sse.send(undefined, chunkBody(parts, reply, context, responseId, index === partGroups.length - 1));
    }
  },

  complete(reply, context) {
    const parts = [...(reply.text.length > 0 ? [{ text: reply.text }] : []), ...functionCallPart(reply)];
    if (parts.length === 0) parts.push({ text: "" });
    return chunkBody(parts, reply, context, context.ids.next("resp"), true);
  },

  errorBody(error: PlannedError) {
    return {
      error: {
        code: error.status,
        message: error.message,
        status: error.type ?? ERROR_STATUSES[error.status] ?? "UNKNOWN",
      },
    };
  },
};
