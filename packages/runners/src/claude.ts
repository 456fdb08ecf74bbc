/** Claude Code headless: `claude -p … --output-format stream-json --verbose --include-partial-messages`. */
import type { OutputParser, RunEventBody } from "@polydev/core";
import type { AgentRunner } from "./runner.js";
import { arr, num, obj, parseLine, str } from "./runner.js";

export const claudeRunner: AgentRunner = {
  agent: "claude",
  provider: "anthropic",
  invocation(request) {
    return {
      argv: [
        "claude",
        "-p",
        request.prompt,
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
        // Polydev's sandbox is the boundary; the CLI's own prompts would block a headless run.
        "--dangerously-skip-permissions",
        ...(request.model ? ["--model", request.model] : []),
        ...(request.maxTurns ? ["--max-turns", String(request.maxTurns)] : []),
        // Claude keeps its sessions per working directory in ~/.claude/projects: the follow-up
        // runs where the first turn ran.
        ...(request.resumeSessionId ? ["--resume", request.resumeSessionId] : []),
      ],
      env: { CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1", DISABLE_AUTOUPDATER: "1" },
      files: {},
    };
  },
  parser(): OutputParser {
    let finalText = "";
    let sessionId: string | undefined;
    return {
      line(text) {
        const event = parseLine(text);
        if (!event) return [];
        // Every stream-json event carries the session it belongs to (the first is system/init).
        if (typeof event.session_id === "string" && event.session_id) sessionId = event.session_id;
        const out: RunEventBody[] = [];
        if (event.type === "stream_event") {
          const inner = obj(event.event);
          const delta = obj(inner?.delta);
          if (inner?.type === "content_block_delta" && delta?.type === "text_delta") {
            out.push({ type: "text", delta: str(delta.text) });
          }
        } else if (event.type === "assistant") {
          for (const block of arr(obj(event.message)?.content)) {
            const b = obj(block);
            if (b?.type === "tool_use")
              out.push({ type: "tool_call", id: str(b.id), name: str(b.name), input: b.input });
          }
        } else if (event.type === "user") {
          for (const block of arr(obj(event.message)?.content)) {
            const b = obj(block);
            if (b?.type !== "tool_result") continue;
            const content = typeof b.content === "string" ? b.content : JSON.stringify(b.content ?? "");
            out.push({
              type: "tool_result",
              id: str(b.tool_use_id),
              output: content,
              isError: b.is_error === true,
            });
          }
        } else if (event.type === "result") {
          finalText = str(event.result);
          const usage = obj(event.usage);
          if (usage) {
            out.push({
              type: "usage",
              inputTokens: num(usage.input_tokens),
              outputTokens: num(usage.output_tokens),
            });
          }
          if (event.is_error === true) out.push({ type: "error", message: finalText || str(event.subtype) });
        }
        return out;
      },
      finalText: () => finalText,
      sessionId: () => sessionId,
    };
  },
};
