/** OpenAI Chat Completions (`POST /v1/chat/completions`), for OpenAI-compatible local-model clients. */
import { payloadChunks, textChunks } from "./http-io.js";
import { arrayAt, earlierPrompts, isObject, objectAt, promptFromTexts, stringAt } from "./json-access.js";
import type { ModelApi, ReplyContext } from "./model-api.js";
import { openaiResponses } from "./openai-responses.js";
import type { PlannedError, PlannedReply } from "./plan.js";

function contentTexts(content: unknown): string[] {
  if (typeof content === "string") return [content];
  return (Array.isArray(content) ? content : []).flatMap((part) => stringAt(part, "text") ?? []);
}

function finishReason(reply: PlannedReply): string {
  return reply.toolCall ? "tool_calls" : "stop";
}

function usage(reply: PlannedReply) {
  return {
    prompt_tokens: reply.inputTokens,
    completion_tokens: reply.outputTokens,
    total_tokens: reply.inputTokens + reply.outputTokens,
  };
}

export const openaiChat: ModelApi = {
  provider: "openai",

  read(body) {
    const messages = arrayAt(body, "messages");
    const userTexts = messages
      .filter((message) => stringAt(message, "role") === "user")
      .map((message) => contentTexts(isObject(message) ? message.content : undefined))
      .filter((texts) => texts.length > 0);
    const format = objectAt(body, "response_format");
    const responseSchema =
      stringAt(format, "type") === "json_schema"
        ? (objectAt(format, "json_schema")?.schema ?? {})
        : undefined;
    return {
      ...(responseSchema === undefined ? {} : { responseSchema }),
      model: stringAt(body, "model") ?? "gpt-fake",
      stream: isObject(body) && body.stream === true,
      prompt: promptFromTexts(userTexts.at(-1) ?? []),
      earlierPrompts: earlierPrompts(userTexts),
      lastIsToolResult: stringAt(messages.at(-1), "role") === "tool",
      freeformToolNames: [],
      toolNames: arrayAt(body, "tools").flatMap((tool) => stringAt(objectAt(tool, "function"), "name") ?? []),
    };
  },

  async stream(sse, reply, { model, ids, body }: ReplyContext) {
    const id = ids.next("chatcmpl");
    const created = Math.floor(Date.now() / 1000);
    const chunk = (delta: Record<string, unknown>, finish_reason: string | null = null) =>
      sse.send(undefined, {
        id,
        object: "chat.completion.chunk",
        created,
        model,
        choices: [{ index: 0, delta, finish_reason }],
      });
    chunk({ role: "assistant", content: "" });
    for (const content of textChunks(reply.text)) {
      await sse.pause(reply.delayMs);
      chunk({ content });
    }
    if (reply.toolCall) {
      const call = { index: 0, id: ids.next("call"), type: "function" };
      chunk({ tool_calls: [{ ...call, function: { name: reply.toolCall.name, arguments: "" } }] });
      for (const piece of payloadChunks(JSON.stringify(reply.toolCall.arguments))) {
        await sse.pause(reply.delayMs);
        chunk({ tool_calls: [{ index: 0, function: { arguments: piece } }] });
      }
    }
    chunk({}, finishReason(reply));
    // The real API sends usage only when asked, in an extra chunk with no choices.
    if (objectAt(body, "stream_options")?.include_usage === true) {
      sse.send(undefined, {
        id,
        object: "chat.completion.chunk",
        created,
        model,
        choices: [],
        usage: usage(reply),
      });
    }
    sse.send(undefined, "[DONE]");
  },

  complete(reply, { model, ids }) {
    const toolCalls = reply.toolCall
      ? [
          {
            id: ids.next("call"),
            type: "function",
            function: { name: reply.toolCall.name, arguments: JSON.stringify(reply.toolCall.arguments) },
          },
        ]
      : undefined;
    return {
      id: ids.next("chatcmpl"),
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model,
      choices: [
        {
          index: 0,
          message: {
            role: "assistant",
            content: reply.text.length > 0 ? reply.text : null,
            ...(toolCalls ? { tool_calls: toolCalls } : {}),
          },
          finish_reason: finishReason(reply),
        },
      ],
      usage: usage(reply),
    };
  },

  errorBody: (error: PlannedError) => openaiResponses.errorBody(error),
  headers: ({ ids }) => ({ "x-request-id": ids.next("req") }),
};
