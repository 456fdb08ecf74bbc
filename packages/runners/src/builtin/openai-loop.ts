import OpenAI from "openai";
import type { ChatCompletionMessageParam } from "openai/resources/chat/completions";
import type { LoopResult, ModelLoopOptions } from "./loop.js";
import { parseArguments, SYSTEM_PROMPT } from "./loop.js";

/**
 * OpenAI Chat Completions with function tools, streamed through the official SDK. Chat
 * Completions is what OpenAI-compatible servers (local model servers) speak too.
 */
export async function openaiLoop(options: ModelLoopOptions): Promise<LoopResult> {
  const client = new OpenAI({ baseURL: options.baseUrl, apiKey: options.secret, maxRetries: 1 });
  const tools = options.tools.specs.map((t) => ({
    type: "function" as const,
    function: { name: t.name, description: t.description, parameters: t.parameters },
  }));
  // The system prompt opens the history of a follow-up already.
  const earlier = (options.history ?? []) as ChatCompletionMessageParam[];
  const messages: ChatCompletionMessageParam[] = [
    ...(earlier.length > 0 ? earlier : [{ role: "system" as const, content: SYSTEM_PROMPT }]),
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
    const stream = await client.chat.completions.create(
      { model: options.model, messages, tools, stream: true, stream_options: { include_usage: true } },
      { signal: options.signal },
    );
    let text = "";
    const calls = new Map<number, { id: string; name: string; arguments: string }>();
    for await (const chunk of stream) {
      if (chunk.usage) {
        result.inputTokens += chunk.usage.prompt_tokens;
        result.outputTokens += chunk.usage.completion_tokens;
        await options.emit({
          type: "usage",
          inputTokens: chunk.usage.prompt_tokens,
          outputTokens: chunk.usage.completion_tokens,
          model: chunk.model,
        });
      }
      const delta = chunk.choices[0]?.delta;
      if (delta?.content) {
        text += delta.content;
        await options.emit({ type: "text", delta: delta.content });
      }
      for (const call of delta?.tool_calls ?? []) {
        const entry = calls.get(call.index) ?? { id: "", name: "", arguments: "" };
        entry.id = call.id ?? entry.id;
        entry.name = call.function?.name ?? entry.name;
        entry.arguments += call.function?.arguments ?? "";
        calls.set(call.index, entry);
      }
    }
    if (text) result.finalText = text;
    const list = [...calls.values()];
    messages.push({
      role: "assistant",
      content: text || null,
      ...(list.length > 0
        ? {
            tool_calls: list.map((c) => ({
              id: c.id,
              type: "function" as const,
              function: { name: c.name, arguments: c.arguments },
            })),
          }
        : {}),
    });
    if (list.length === 0) return result;
    for (const call of list) {
      const input = parseArguments(call.arguments);
      await options.emit({ type: "tool_call", id: call.id, name: call.name, input });
      const outcome = await options.tools.run(call.name, input);
      await options.emit({
        type: "tool_result",
        id: call.id,
        output: outcome.output,
        isError: outcome.isError,
      });
      messages.push({ role: "tool", tool_call_id: call.id, content: outcome.output });
    }
  }
  return { ...result, exitReason: `stopped after ${options.maxTurns} turns` };
}
