import type { Content, FunctionDeclaration, Part } from "@google/genai";
import { GoogleGenAI } from "@google/genai";
import type { LoopResult, ModelLoopOptions } from "./loop.js";
import { SYSTEM_PROMPT } from "./loop.js";

/** Gemini generateContent with function calling, streamed through the official SDK. */
export async function geminiLoop(options: ModelLoopOptions): Promise<LoopResult> {
  const ai = new GoogleGenAI({
    apiKey: options.secret,
    httpOptions: {
      baseUrl: options.baseUrl,
      ...(options.oauth ? { headers: { authorization: `Bearer ${options.secret}` } } : {}),
    },
  });
  const functionDeclarations: FunctionDeclaration[] = options.tools.specs.map((t) => ({
    name: t.name,
    description: t.description,
    parametersJsonSchema: t.parameters,
  }));
  const contents: Content[] = [
    ...((options.history ?? []) as Content[]),
    { role: "user", parts: [{ text: options.prompt }] },
  ];
  const result: LoopResult = {
    finalText: "",
    inputTokens: 0,
    outputTokens: 0,
    exitReason: "completed",
    history: contents,
  };
  for (let turn = 0; turn < options.maxTurns; turn++) {
    const stream = await ai.models.generateContentStream({
      model: options.model,
      contents,
      config: {
        systemInstruction: SYSTEM_PROMPT,
        tools: [{ functionDeclarations }],
        abortSignal: options.signal,
      },
    });
    let text = "";
    const parts: Part[] = [];
    let usage = { input: 0, output: 0 };
    for await (const chunk of stream) {
      for (const part of chunk.candidates?.[0]?.content?.parts ?? []) {
        // A streamed answer arrives as many text pieces: the history keeps them as one part
        // (smaller, and what the model said reads whole when it is sent back).
        const previous = parts.at(-1);
        if (isPlainText(part) && previous && isPlainText(previous)) previous.text += part.text;
        else parts.push({ ...part });
        if (part.text) {
          text += part.text;
          await options.emit({ type: "text", delta: part.text });
        }
      }
      if (chunk.usageMetadata) {
        usage = {
          input: chunk.usageMetadata.promptTokenCount ?? 0,
          output: chunk.usageMetadata.candidatesTokenCount ?? 0,
        };
      }
    }
    result.inputTokens += usage.input;
    result.outputTokens += usage.output;
    await options.emit({
      type: "usage",
      inputTokens: usage.input,
      outputTokens: usage.output,
      model: options.model,
    });
    if (text) result.finalText = text;
    contents.push({ role: "model", parts });
    const calls = parts.filter((part) => part.functionCall);
    if (calls.length === 0) return result;
    const responses: Part[] = [];
    for (const [index, part] of calls.entries()) {
      const call = part.functionCall;
      if (!call?.name) continue;
      const id = call.id ?? `call_${turn}_${index}`;
      const input = call.args ?? {};
      await options.emit({ type: "tool_call", id, name: call.name, input });
      const outcome = await options.tools.run(call.name, input);
      await options.emit({ type: "tool_result", id, output: outcome.output, isError: outcome.isError });
      responses.push({
        functionResponse: {
          name: call.name,
          response: outcome.isError ? { error: outcome.output } : { output: outcome.output },
        },
      });
    }
    contents.push({ role: "user", parts: responses });
  }
  return { ...result, exitReason: `stopped after ${options.maxTurns} turns` };
}

function isPlainText(part: Part): part is Part & { text: string } {
  return typeof part.text === "string" && Object.keys(part).every((key) => key === "text");
}
