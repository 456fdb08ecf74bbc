import Anthropic from "@anthropic-ai/sdk";
import type { MessageParam, ToolResultBlockParam } from "@anthropic-ai/sdk/resources/messages";
import type { LoopResult, ModelLoopOptions } from "./loop.js";
import { SYSTEM_PROMPT } from "./loop.js";

/** Anthropic Messages with tool use, streamed through the official SDK. */
export async function anthropicLoop(options: ModelLoopOptions): Promise<LoopResult> {
  const client = new Anthropic({
    baseURL: options.baseUrl,
    ...(options.oauth
      ? { authToken: options.secret, apiKey: null, defaultHeaders: { "anthropic-beta": "oauth-2025-04-20" } }
      : { apiKey: options.secret }),
    maxRetries: 1,
  });
  const tools = options.tools.specs.map((t) => ({
    name: t.name,
    description: t.description,
    input_schema: t.parameters,
  }));
  const messages: MessageParam[] = [
    ...((options.history ?? []) as MessageParam[]),
    { role: "user", content: options.prompt },
  ];
  const result: LoopResult = {
    finalText: "",
    inputTokens: 0,
    outputTokens: 0,
    exitReason: "completed",
    history: messages,
  };
  for (let turn = 0; turn < options.maxTurns; turn++) {
    const stream = client.messages.stream(
      { model: options.model, max_tokens: 8192, system: SYSTEM_PROMPT, messages, tools },
      { signal: options.signal },
    );
    let text = "";
    // Each delta is stored before the next is read: a fire-and-forget emit could land out of
    // order (a live reader would skip it) and its failure would go unnoticed.
    for await (const event of stream) {
      if (event.type !== "content_block_delta" || event.delta.type !== "text_delta") continue;
      text += event.delta.text;
      await options.emit({ type: "text", delta: event.delta.text });
    }
    const message = await stream.finalMessage();
    result.inputTokens += message.usage.input_tokens;
    result.outputTokens += message.usage.output_tokens;
    await options.emit({
      type: "usage",
      inputTokens: message.usage.input_tokens,
      outputTokens: message.usage.output_tokens,
      model: message.model,
    });
    if (text) result.finalText = text;
    messages.push({ role: "assistant", content: message.content });
    const calls = message.content.filter((block) => block.type === "tool_use");
    if (calls.length === 0) return result;
    const results: ToolResultBlockParam[] = [];
    for (const call of calls) {
      await options.emit({ type: "tool_call", id: call.id, name: call.name, input: call.input });
      const outcome = await options.tools.run(call.name, (call.input ?? {}) as Record<string, unknown>);
      await options.emit({
        type: "tool_result",
        id: call.id,
        output: outcome.output,
        isError: outcome.isError,
      });
      results.push({
        type: "tool_result",
        tool_use_id: call.id,
        content: outcome.output,
        is_error: outcome.isError,
      });
    }
    messages.push({ role: "user", content: results });
  }
  return { ...result, exitReason: `stopped after ${options.maxTurns} turns` };
}
