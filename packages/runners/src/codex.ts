/** Codex headless: `codex exec --json`, with a provider in $CODEX_HOME/config.toml pointing at the gateway. */
import type { OutputParser, RunEventBody } from "@polydev/core";
import type { AgentRunner } from "./runner.js";
import { num, obj, parseLine, str } from "./runner.js";

export const codexRunner: AgentRunner = {
  agent: "codex",
  provider: "openai",
  invocation(request) {
    const config = [
      'model_provider = "polydev"',
      "[model_providers.polydev]",
      'name = "Polydev gateway"',
      `base_url = "http://127.0.0.1:${request.gatewayPort}/openai/v1"`,
      'env_key = "OPENAI_API_KEY"',
      'wire_api = "responses"',
      "[analytics]",
      "enabled = false",
      "[features]",
      "plugins = false",
      "",
    ].join("\n");
    return {
      argv: [
        "codex",
        "exec",
        "--json",
        "--skip-git-repo-check",
        // Polydev's sandbox is the boundary; Codex's own sandbox cannot nest inside it.
        "--dangerously-bypass-approvals-and-sandbox",
        ...(request.model ? ["-m", request.model] : []),
        // A follow-up resumes the thread Codex recorded under $CODEX_HOME/sessions.
        ...(request.resumeSessionId ? ["resume", request.resumeSessionId] : []),
        request.prompt,
      ],
      env: {},
      files: { ".codex/config.toml": config },
    };
  },
  parser(): OutputParser {
    const texts: string[] = [];
    let threadId: string | undefined;
    return {
      line(text) {
        const event = parseLine(text);
        if (!event) return [];
        if (event.type === "thread.started" && str(event.thread_id)) threadId = str(event.thread_id);
        const out: RunEventBody[] = [];
        const item = obj(event.item);
        if (event.type === "item.started" && item?.type === "command_execution") {
          out.push({
            type: "tool_call",
            id: str(item.id),
            name: "shell",
            input: { command: str(item.command) },
          });
        } else if (event.type === "item.completed" && item) {
          if (item.type === "agent_message") {
            texts.push(str(item.text));
            out.push({ type: "text", delta: str(item.text) });
          } else if (item.type === "command_execution") {
            const exitCode = typeof item.exit_code === "number" ? item.exit_code : null;
            out.push({
              type: "tool_result",
              id: str(item.id),
              output: str(item.aggregated_output),
              isError: exitCode !== 0,
            });
          } else if (item.type === "error") {
            out.push({ type: "error", message: str(item.message) });
          }
        } else if (event.type === "turn.completed") {
          const usage = obj(event.usage);
          out.push({
            type: "usage",
            inputTokens: num(usage?.input_tokens),
            outputTokens: num(usage?.output_tokens),
          });
        } else if (event.type === "turn.failed" || event.type === "error") {
          out.push({ type: "error", message: str(obj(event.error)?.message) || str(event.message) });
        }
        return out;
      },
      finalText: () => texts.at(-1) ?? "",
      sessionId: () => threadId,
    };
  },
};
