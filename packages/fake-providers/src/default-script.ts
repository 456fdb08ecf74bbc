import { sampleFromSchema } from "./schema-sample.js";
import { findShellTool } from "./shell-tools.js";
import type { FakeRequestView, FakeTurn } from "./types.js";

/**
 * What the fake answers when no script (or an exhausted queue) says otherwise:
 * - the request demands structured output → the smallest JSON value its schema allows;
 * - the latest message is a tool result → the final text `Done.`;
 * - the prompt says `create file NAME` (optionally `containing "TEXT"`) and a shell tool is
 *   offered → a shell call writing TEXT (default `hello from polydev`) plus a newline to NAME;
 * - a conversation that already holds earlier prompts (a resumed session's follow-up) → a reply
 *   naming the new prompt and the first one, so a test sees that the session went on;
 * - anything else → `Hello from the fake <provider> provider.`, and when a shell tool is offered a
 *   hint naming the prompt that makes the agent act (a newcomer's first prompt rarely matches).
 */
export function defaultTurn(view: FakeRequestView): FakeTurn {
  if (view.responseSchema !== undefined) {
    return { text: JSON.stringify(sampleFromSchema(view.responseSchema)) };
  }
  if (view.lastIsToolResult) return { text: "Done." };
  const request = parseCreateFile(view.prompt);
  if (request && findShellTool(view)) {
    return {
      text: `Creating ${request.fileName}.`,
      toolCall: {
        command: `printf '%s\\n' ${shellQuote(request.content)} > ${shellQuote(request.fileName)}`,
      },
    };
  }
  const first = view.earlierPrompts[0];
  if (first !== undefined) return { text: followUpReply(view.prompt, first) };
  const greeting = `Hello from the fake ${view.provider} provider.`;
  return { text: findShellTool(view) ? `${greeting} ${TOOL_HINT}` : greeting };
}

/** The fake's answer to a follow-up: it quotes the new prompt and the conversation's first one. */
export function followUpReply(prompt: string, firstPrompt: string): string {
  return `Following up: you asked "${clipped(prompt)}", after you first asked "${clipped(firstPrompt)}".`;
}

function clipped(text: string): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length <= 200 ? line : `${line.slice(0, 199)}…`;
}

export const TOOL_HINT = 'Ask me to "create file hello.txt" and I will write it with a shell command.';

export const DEFAULT_FILE_CONTENT = "hello from polydev";

const CREATE_FILE =
  /\bcreate (?:a |the )?file (?:named |called )?([\w./-]+)(?:\s+(?:containing|with (?:the )?(?:text|content))\s+(?:"([^"]*)"|'([^']*)'|(\S+)))?/i;

export function parseCreateFile(prompt: string): { fileName: string; content: string } | undefined {
  const match = CREATE_FILE.exec(prompt);
  const fileName = match?.[1]?.replace(/\.+$/, "");
  if (!match || !fileName) return undefined;
  return { fileName, content: match[2] ?? match[3] ?? match[4] ?? DEFAULT_FILE_CONTENT };
}

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}
