/**
 * The shell tools each CLI offers and the argument shape each declares, so one scripted
 * `{ toolCall: { command } }` works against Claude Code, Codex and the Gemini CLI alike.
 */

/** Which tools a request offers; freeform tools take raw text instead of JSON arguments. */
export interface OfferedTools {
  toolNames: readonly string[];
  freeformToolNames: readonly string[];
}

export interface ToolCallPlan {
  name: string;
  arguments: Record<string, unknown>;
  /** Set for a freeform (OpenAI `custom`) tool: the raw input, rendered as a `custom_tool_call`. */
  freeformInput?: string;
}

/** In order of preference when a request offers more than one. */
const SHELL_TOOL_ARGUMENTS: ReadonlyArray<readonly [string, (command: string) => Record<string, unknown>]> = [
  // Claude Code.
  ["Bash", (command) => ({ command, description: "Run a command" })],
  // Codex (models without code mode): a PTY-backed command runner taking one shell string.
  ["exec_command", (cmd) => ({ cmd })],
  // Codex (other versions and configs): one shell string, or an argv run through bash -lc.
  ["shell_command", (command) => ({ command })],
  ["shell", (command) => ({ command: ["bash", "-lc", command] })],
  // Gemini CLI.
  ["run_shell_command", (command) => ({ command })],
  // Polydev's built-in agent.
  ["run_command", (command) => ({ command })],
  // A common name in home-grown agent loops.
  ["bash", (command) => ({ command })],
];

/**
 * Codex's code mode (its default for the models it knows) offers one freeform tool, `exec`, that
 * runs JavaScript in which the shell is `tools.exec_command({ cmd })`.
 */
const CODEX_CODE_MODE_TOOL = "exec";

function codexCodeModeScript(command: string): string {
  return `const result = await tools.exec_command({ cmd: ${JSON.stringify(command)} });\ntext(result.output);\n`;
}

export function findShellTool(offered: OfferedTools): string | undefined {
  const jsonTool = SHELL_TOOL_ARGUMENTS.find(
    ([name]) => offered.toolNames.includes(name) && !offered.freeformToolNames.includes(name),
  )?.[0];
  if (jsonTool) return jsonTool;
  return offered.freeformToolNames.includes(CODEX_CODE_MODE_TOOL) ? CODEX_CODE_MODE_TOOL : undefined;
}

/** A call of `tool` running `command`, shaped as that tool declares; unknown JSON tools get `{ command }`. */
export function shellToolCall(tool: string, command: string, offered: OfferedTools): ToolCallPlan {
  if (offered.freeformToolNames.includes(tool)) {
    const freeformInput = tool === CODEX_CODE_MODE_TOOL ? codexCodeModeScript(command) : command;
    return { name: tool, arguments: {}, freeformInput };
  }
  const shape = SHELL_TOOL_ARGUMENTS.find(([name]) => name === tool)?.[1];
  return { name: tool, arguments: shape ? shape(command) : { command } };
}
