/** Anthropic Messages API (`POST /v1/messages`), streamed exactly as the real API orders events. */
import { payloadChunks, textChunks } from "./http-io.js";
import { arrayAt, earlierPrompts, isObject, objectAt, promptFromTexts, stringAt } from "./json-access.js";
import type { ModelApi, ReplyContext } from "./model-api.js";
import type { PlannedError, PlannedReply } from "./plan.js";

const ERROR_TYPES: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  403: "permission_error",
  404: "not_found_error",
  413: "request_too_large",
  429: "rate_limit_error",
  500: "api_error",
  529: "overloaded_error",
};

function blockTexts(content: unknown): string[] {
  if (typeof content === "string") return [content];
  if (!Array.isArray(content)) return [];
  return content.flatMap((block) => {
    const text = isObject(block) && block.type === "text" ? stringAt(block, "text") : undefined;
    return text === undefined ? [] : [text];
  });
}

function hasToolResult(message: unknown): boolean {
  const content = isObject(message) ? message.content : undefined;
  return Array.isArray(content) && content.some((block) => isObject(block) && block.type === "tool_result");
}

function usage(reply: PlannedReply) {
  return {
    input_tokens: reply.inputTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    output_tokens: reply.outputTokens,
  };
}

function stopReason(reply: PlannedReply): string {
  return reply.toolCall ? "tool_use" : "end_turn";
}

export const anthropicMessages: ModelApi = {
  provider: "anthropic",

  read(body) {
    // Claude Code interleaves `role: "system"` messages; the turn is decided by the others.
    const conversation = arrayAt(body, "messages").filter(
      (message) => stringAt(message, "role") !== "system",
    );
    const userTexts = conversation
      .filter((message) => stringAt(message, "role") === "user")
      .map((message) => blockTexts(isObject(message) ? message.content : undefined))
      .filter((texts) => texts.length > 0);
    const last = conversation.at(-1);
    // Structured outputs: `output_format` (beta) or `output_config.format`.
    const format = objectAt(body, "output_format") ?? objectAt(objectAt(body, "output_config"), "format");
    return {
      ...(stringAt(format, "type") === "json_schema" ? { responseSchema: format?.schema ?? {} } : {}),
      model: stringAt(body, "model") ?? "claude-fake",
      stream: isObject(body) && body.stream === true,
      prompt: promptFromTexts(userTexts.at(-1) ?? []),
      earlierPrompts: earlierPrompts(userTexts),
      lastIsToolResult: stringAt(last, "role") === "user" && hasToolResult(last),
      freeformToolNames: [],
      toolNames: arrayAt(body, "tools").flatMap((tool) => stringAt(tool, "name") ?? []),
    };
  },

  async stream(sse, reply, { model, ids }) {
    sse.send("message_start", {
      type: "message_start",
      message: {
        id: ids.next("msg"),
        type: "message",
        role: "assistant",
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { ...usage(reply), output_tokens: 1 },
      },
    });
    sse.send("ping", { type: "ping" });
    let index = 0;
    if (reply.text.length > 0) {
      sse.send("content_block_start", {
        type: "content_block_start",
        index,
        content_block: { type: "text", text: "" },
      });
      for (const text of textChunks(reply.text)) {
        await sse.pause(reply.delayMs);
        sse.send("content_block_delta", {
          type: "content_block_delta",
          index,
          delta: { type: "text_delta", text },
        });
      }
      sse.send("content_block_stop", { type: "content_block_stop", index });
      index += 1;
    }
    if (reply.toolCall) {
      sse.send("content_block_start", {
        type: "content_block_start",
        index,
        content_block: { type: "tool_use", id: ids.next("toolu"), name: reply.toolCall.name, input: {} },
      });
      for (const partial_json of payloadChunks(JSON.stringify(reply.toolCall.arguments))) {
        await sse.pause(reply.delayMs);
        sse.send("content_block_delta", {
          type: "content_block_delta",
          index,
          delta: { type: "input_json_delta", partial_json },
        });
      }
      sse.send("content_block_stop", { type: "content_block_stop", index });
    }
    sse.send("message_delta", {
      type: "message_delta",
      delta: { stop_reason: stopReason(reply), stop_sequence: null },
      usage: usage(reply),
    });
    sse.send("message_stop", { type: "message_stop" });
  },

  complete(reply, { model, ids }: ReplyContext) {
    const content: unknown[] = [];
    if (reply.text.length > 0) content.push({ type: "text", text: reply.text });
    if (reply.toolCall) {
      content.push({
        type: "tool_use",
        id: ids.next("toolu"),
        name: reply.toolCall.name,
        input: reply.toolCall.arguments,
      });
    }
    return {
      id: ids.next("msg"),
      type: "message",
      role: "assistant",
      model,
      content,
      stop_reason: stopReason(reply),
      stop_sequence: null,
      usage: usage(reply),
    };
  },

  errorBody(error: PlannedError) {
    return {
      type: "error",
      error: { type: error.type ?? ERROR_TYPES[error.status] ?? "api_error", message: error.message },
    };
  },

  headers: ({ ids }) => ({ "request-id": ids.next("req") }),
};
