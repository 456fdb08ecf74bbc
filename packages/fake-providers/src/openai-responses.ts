/** OpenAI Responses API (`POST /v1/responses`), the wire Codex speaks. */
import { payloadChunks, textChunks } from "./http-io.js";
import { arrayAt, earlierPrompts, isObject, objectAt, promptFromTexts, stringAt } from "./json-access.js";
import type { ModelApi, ReplyContext } from "./model-api.js";
import type { PlannedError, PlannedReply } from "./plan.js";

const ERROR_TYPES: Record<number, string> = {
  400: "invalid_request_error",
  401: "invalid_api_key",
  403: "permission_denied",
  404: "not_found",
  429: "rate_limit_exceeded",
  500: "server_error",
  503: "server_error",
};

/** Input items that carry a tool's output back to the model. */
const TOOL_OUTPUT_TYPES = new Set([
  "function_call_output",
  "custom_tool_call_output",
  "local_shell_call_output",
]);

function contentTexts(content: unknown): string[] {
  if (typeof content === "string") return [content];
  return (Array.isArray(content) ? content : []).flatMap((part) => stringAt(part, "text") ?? []);
}

/**
 * Tools from `tools` and from Codex's `additional_tools` input items, with namespaces flattened.
 * Function and custom tools have names; hosted ones (web_search) do not and are left out.
 */
function offeredTools(body: unknown, items: readonly unknown[]): { name: string; freeform: boolean }[] {
  const declared = [
    ...arrayAt(body, "tools"),
    ...items
      .filter((item) => stringAt(item, "type") === "additional_tools")
      .flatMap((item) => arrayAt(item, "tools")),
  ];
  const flatten = (tool: unknown): unknown[] =>
    stringAt(tool, "type") === "namespace" ? arrayAt(tool, "tools").flatMap(flatten) : [tool];
  return declared.flatMap(flatten).flatMap((tool) => {
    const name = stringAt(tool, "name");
    return name === undefined ? [] : [{ name, freeform: stringAt(tool, "type") === "custom" }];
  });
}

interface OutputItems {
  message?: { id: string; text: string };
  /** A `function_call` with JSON `arguments`, or a `custom_tool_call` with raw `input` when `freeform`. */
  functionCall?: { id: string; callId: string; name: string; payload: string; freeform: boolean };
}

function outputItems(reply: PlannedReply, { ids }: ReplyContext): OutputItems {
  return {
    ...(reply.text.length > 0 ? { message: { id: ids.next("msg"), text: reply.text } } : {}),
    ...(reply.toolCall
      ? {
          functionCall: {
            id: ids.next(reply.toolCall.freeformInput === undefined ? "fc" : "ctc"),
            callId: ids.next("call"),
            name: reply.toolCall.name,
            payload: reply.toolCall.freeformInput ?? JSON.stringify(reply.toolCall.arguments),
            freeform: reply.toolCall.freeformInput !== undefined,
          },
        }
      : {}),
  };
}

function messageItem(message: { id: string; text: string }, status: "in_progress" | "completed") {
  return {
    id: message.id,
    type: "message",
    status,
    role: "assistant",
    content: status === "completed" ? [{ type: "output_text", text: message.text, annotations: [] }] : [],
  };
}

function functionCallItem(
  call: NonNullable<OutputItems["functionCall"]>,
  status: "in_progress" | "completed",
) {
  const payload = status === "completed" ? call.payload : "";
  return {
    id: call.id,
    type: call.freeform ? "custom_tool_call" : "function_call",
    status,
    call_id: call.callId,
    name: call.name,
    ...(call.freeform ? { input: payload } : { arguments: payload }),
  };
}

function responseObject(
  id: string,
  reply: PlannedReply,
  context: ReplyContext,
  status: "in_progress" | "completed",
  output: unknown[],
) {
  return {
    id,
    object: "response",
    created_at: Math.floor(Date.now() / 1000),
    status,
    model: context.model,
    output,
    error: null,
    incomplete_details: null,
    usage:
      status === "completed"
        ? {
            input_tokens: reply.inputTokens,
            input_tokens_details: { cached_tokens: 0 },
            output_tokens: reply.outputTokens,
            output_tokens_details: { reasoning_tokens: 0 },
            total_tokens: reply.inputTokens + reply.outputTokens,
          }
        : null,
  };
}

function completedOutput(items: OutputItems): unknown[] {
  const output: unknown[] = [];
  if (items.message) output.push(messageItem(items.message, "completed"));
  if (items.functionCall) output.push(functionCallItem(items.functionCall, "completed"));
  return output;
}

export const openaiResponses: ModelApi = {
  provider: "openai",

  read(body) {
    const input = isObject(body) ? body.input : undefined;
    const items = Array.isArray(input) ? input : [{ role: "user", content: input }];
    const tools = offeredTools(body, items);
    const userTexts = items
      .filter((item) => stringAt(item, "role") === "user")
      .map((item) => contentTexts(isObject(item) ? item.content : undefined))
      .filter((texts) => texts.length > 0);
    const format = objectAt(objectAt(body, "text"), "format");
    return {
      ...(stringAt(format, "type") === "json_schema" ? { responseSchema: format?.schema ?? {} } : {}),
      model: stringAt(body, "model") ?? "gpt-fake",
      stream: isObject(body) && body.stream === true,
      prompt: promptFromTexts(userTexts.at(-1) ?? []),
      earlierPrompts: earlierPrompts(userTexts),
      lastIsToolResult: TOOL_OUTPUT_TYPES.has(stringAt(items.at(-1), "type") ?? ""),
      toolNames: tools.map((tool) => tool.name),
      freeformToolNames: tools.filter((tool) => tool.freeform).map((tool) => tool.name),
    };
  },

  async stream(sse, reply, context) {
    let sequence = 0;
    const send = (type: string, fields: Record<string, unknown>) =>
      sse.send(type, { type, sequence_number: sequence++, ...fields });
    const responseId = context.ids.next("resp");
    const items = outputItems(reply, context);
    const started = responseObject(responseId, reply, context, "in_progress", []);
    send("response.created", { response: started });
    send("response.in_progress", { response: started });
    let outputIndex = 0;
    if (items.message) {
      const { id: item_id, text } = items.message;
      const output_index = outputIndex++;
      send("response.output_item.added", { output_index, item: messageItem(items.message, "in_progress") });
      const emptyPart = { type: "output_text", text: "", annotations: [] };
      send("response.content_part.added", { item_id, output_index, content_index: 0, part: emptyPart });
      for (const delta of textChunks(text)) {
        await sse.pause(reply.delayMs);
        send("response.output_text.delta", { item_id, output_index, content_index: 0, delta, logprobs: [] });
      }
      send("response.output_text.done", { item_id, output_index, content_index: 0, text, logprobs: [] });
      send("response.content_part.done", {
        item_id,
        output_index,
        content_index: 0,
        part: { ...emptyPart, text },
      });
      send("response.output_item.done", { output_index, item: messageItem(items.message, "completed") });
    }
    if (items.functionCall) {
      const call = items.functionCall;
      const output_index = outputIndex++;
      send("response.output_item.added", { output_index, item: functionCallItem(call, "in_progress") });
      const events = call.freeform ? "response.custom_tool_call_input" : "response.function_call_arguments";
      for (const delta of payloadChunks(call.payload)) {
        await sse.pause(reply.delayMs);
        send(`${events}.delta`, { item_id: call.id, output_index, delta });
      }
      send(`${events}.done`, {
        item_id: call.id,
        output_index,
        name: call.name,
        ...(call.freeform ? { input: call.payload } : { arguments: call.payload }),
      });
      send("response.output_item.done", { output_index, item: functionCallItem(call, "completed") });
    }
    send("response.completed", {
      response: responseObject(responseId, reply, context, "completed", completedOutput(items)),
    });
  },

  complete(reply, context) {
    const items = outputItems(reply, context);
    return responseObject(context.ids.next("resp"), reply, context, "completed", completedOutput(items));
  },

  errorBody(error: PlannedError) {
    const type = error.type ?? ERROR_TYPES[error.status] ?? "server_error";
    return { error: { message: error.message, type, param: null, code: type } };
  },

  headers: ({ ids }) => ({ "x-request-id": ids.next("req") }),
};
