/** Gemini CLI headless: `gemini -p … --output-format stream-json --skip-trust --yolo -m MODEL`. */
import type { OutputParser, RunEventBody } from "@polydev/core";
import type { AgentRunner } from "./runner.js";
import { num, obj, parseLine, str } from "./runner.js";

export const geminiRunner: AgentRunner = {
  agent: "gemini",
  provider: "gemini",
  invocation(request) {
    return {
      // -m avoids an extra model-routing call; --yolo offers the shell tool without prompts.
      argv: [
        "gemini",
        "-p",
        request.prompt,
        "--output-format",
        "stream-json",
        "--skip-trust",
        "--yolo",
        "-m",
        request.model ?? "gemini-2.5-flash",
        // Gemini keeps its chats per project (the working directory) under ~/.gemini/tmp.
        ...(request.resumeSessionId ? ["--resume", request.resumeSessionId] : []),
      ],
      env: { GEMINI_CLI_NO_RELAUNCH: "true" },
      files: {
        ".gemini/settings.json": JSON.stringify({
          security: { auth: { selectedType: "gemini-api-key" } },
          privacy: { usageStatisticsEnabled: false },
        }),
      },
    };
  },
  parser(): OutputParser {
    let current = "";
    let finalText = "";
    let sessionId: string | undefined;
    return {
      line(text) {
        const event = parseLine(text);
        if (!event) return [];
        if (event.type === "init" && str(event.session_id)) sessionId = str(event.session_id);
        const out: RunEventBody[] = [];
        if (event.type === "message" && event.role === "assistant") {
          current += str(event.content);
          out.push({ type: "text", delta: str(event.content) });
        } else if (event.type === "tool_use") {
          if (current) finalText = current;
          current = "";
          out.push({
            type: "tool_call",
            id: str(event.tool_id),
            name: str(event.tool_name),
            input: event.parameters,
          });
        } else if (event.type === "tool_result") {
          out.push({
            type: "tool_result",
            id: str(event.tool_id),
            output: str(event.output),
            isError: event.status !== "success",
          });
        } else if (event.type === "result") {
          if (current) finalText = current;
          const stats = obj(event.stats);
          out.push({
            type: "usage",
            inputTokens: num(stats?.input_tokens),
            outputTokens: num(stats?.output_tokens),
          });
          if (event.status !== "success")
            out.push({ type: "error", message: str(obj(event.error)?.message) || "the run failed" });
        } else if (event.type === "error") {
          out.push({ type: "error", message: str(event.message) });
        }
        return out;
      },
      finalText: () => finalText,
      sessionId: () => sessionId,
    };
  },
};
