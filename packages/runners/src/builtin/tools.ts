/**
 * The built-in agent's tools. Each runs inside the sandbox through the agent connection (files
 * API or exec), in the run's working directory; results are trimmed so one huge output cannot
 * fill the model's context.
 */
import { posix } from "node:path";
import { Readable } from "node:stream";
import type { AgentConnection } from "@polydev/core";
import { McpTools } from "./mcp-tools.js";

export interface ToolSpec {
  name: string;
  description: string;
  /** A JSON schema of the input; an MCP server's tools bring their own. */
  parameters: { type: "object"; [key: string]: unknown };
}

const p = (description: string) => ({ type: "string", description });

export const TOOL_SPECS: ToolSpec[] = [
  {
    name: "read_file",
    description: "Read a text file.",
    parameters: { type: "object", properties: { path: p("file path") }, required: ["path"] },
  },
  {
    name: "write_file",
    description: "Create or replace a file with the given content.",
    parameters: {
      type: "object",
      properties: { path: p("file path"), content: p("the whole new content") },
      required: ["path", "content"],
    },
  },
  {
    name: "edit_file",
    description: "Replace one exact occurrence of old_text with new_text in a file.",
    parameters: {
      type: "object",
      properties: {
        path: p("file path"),
        old_text: p("text to find, exactly once"),
        new_text: p("replacement"),
      },
      required: ["path", "old_text", "new_text"],
    },
  },
  {
    name: "list_files",
    description: "List a directory.",
    parameters: { type: "object", properties: { path: p("directory, default .") }, required: [] },
  },
  {
    name: "search_files",
    description: "Search file contents with a regular expression (grep -rnE).",
    parameters: {
      type: "object",
      properties: { pattern: p("regular expression"), path: p("directory, default .") },
      required: ["pattern"],
    },
  },
  {
    name: "run_command",
    description: "Run a shell command and return its output and exit code.",
    parameters: { type: "object", properties: { command: p("shell command line") }, required: ["command"] },
  },
];

const OUTPUT_LIMIT = 20_000;
const COMMAND_TIMEOUT_MS = 120_000;

const trim = (text: string): string =>
  text.length > OUTPUT_LIMIT
    ? `${text.slice(0, OUTPUT_LIMIT)}\n[… ${text.length - OUTPUT_LIMIT} more characters]`
    : text;

/** A file the tools read or edit whole; larger ones are refused (the model could not use them anyway). */
const MAX_FILE_BYTES = 8 * 1024 * 1024;
/** Of a command's stdout and stderr, this much each is kept; the rest is read and dropped. */
const MAX_COMMAND_OUTPUT_BYTES = 256 * 1024;
/** A command still printing after this much has its output cut and is killed. */
const MAX_COMMAND_DRAIN_BYTES = 64 * 1024 * 1024;

/**
 * The first `keep` bytes of a stream, as text (what a sandbox prints is untrusted and
 * unbounded: nothing past `keep` is held). With `tooLarge`, a stream longer than `keep` is an
 * error instead; with `onFlood`, called once `drain` bytes have gone by.
 */
async function readBounded(
  stream: Readable,
  keep: number,
  options: { tooLarge?: string; drain?: number; onFlood?: () => void } = {},
): Promise<{ text: string; dropped: number }> {
  const chunks: Buffer[] = [];
  let kept = 0;
  let seen = 0;
  let flooded = false;
  for await (const chunk of stream) {
    const buffer = chunk as Buffer;
    seen += buffer.length;
    if (kept < keep) {
      const piece = buffer.subarray(0, keep - kept);
      chunks.push(piece);
      kept += piece.length;
    }
    if (seen > keep && options.tooLarge !== undefined) {
      stream.destroy();
      throw new Error(options.tooLarge);
    }
    if (!flooded && options.drain !== undefined && seen > options.drain) {
      flooded = true;
      options.onFlood?.();
    }
  }
  return { text: Buffer.concat(chunks, kept).toString("utf8"), dropped: seen - kept };
}

async function readFileText(agent: AgentConnection, path: string): Promise<string> {
  const file = await agent.files.read(path);
  return (
    await readBounded(file, MAX_FILE_BYTES, { tooLarge: `${path} is larger than ${MAX_FILE_BYTES} bytes` })
  ).text;
}

export interface ToolOutcome {
  output: string;
  isError: boolean;
}

export class SandboxTools {
  constructor(
    private readonly agent: AgentConnection,
    /** The run's working directory, relative to the home. */
    private readonly cwd: string,
    /** Aborted when the run is cancelled: a command still running is killed with it. */
    private readonly signal?: AbortSignal,
    /** The run's MCP servers, started in the sandbox for this turn. */
    private readonly mcp: McpTools = McpTools.none(),
  ) {}

  /** Every tool offered to the model: the built-in ones, then the MCP servers'. */
  get specs(): ToolSpec[] {
    return [...TOOL_SPECS, ...this.mcp.specs];
  }

  private path(value: unknown): string {
    return posix.normalize(posix.join(this.cwd, typeof value === "string" && value.length > 0 ? value : "."));
  }

  async run(name: string, input: Record<string, unknown>): Promise<ToolOutcome> {
    try {
      return { output: trim(await this.dispatch(name, input)), isError: false };
    } catch (error) {
      return { output: error instanceof Error ? error.message : String(error), isError: true };
    }
  }

  private async dispatch(name: string, input: Record<string, unknown>): Promise<string> {
    if (this.mcp.has(name)) return this.mcp.call(name, input);
    switch (name) {
      case "read_file":
        return readFileText(this.agent, this.path(input.path));
      case "write_file": {
        const content = String(input.content ?? "");
        const { sizeBytes } = await this.agent.files.write(
          this.path(input.path),
          Readable.from([Buffer.from(content)]),
        );
        return `wrote ${sizeBytes} bytes`;
      }
      case "edit_file": {
        const path = this.path(input.path);
        const text = await readFileText(this.agent, path);
        const oldText = String(input.old_text ?? "");
        const count = oldText.length === 0 ? 0 : text.split(oldText).length - 1;
        if (count !== 1)
          throw new Error(`old_text occurs ${count} times in ${input.path}; it must occur exactly once`);
        await this.agent.files.write(
          path,
          Readable.from([Buffer.from(text.replace(oldText, String(input.new_text ?? "")))]),
        );
        return "edited";
      }
      case "list_files": {
        const entries = await this.agent.files.list(this.path(input.path));
        return entries
          .map((e) => `${e.type === "directory" ? "d" : "-"} ${e.sizeBytes}\t${e.name}`)
          .join("\n");
      }
      case "search_files":
        return this.shell(["grep", "-rnE", "--", String(input.pattern ?? ""), String(input.path ?? ".")]);
      case "run_command":
        return this.shell(["/bin/sh", "-c", String(input.command ?? "")]);
      default:
        throw new Error(`unknown tool ${name}`);
    }
  }

  private async shell(argv: string[]): Promise<string> {
    const process = await this.agent.exec(
      { argv, cwd: this.cwd, timeoutMs: COMMAND_TIMEOUT_MS },
      this.signal,
    );
    process.stdin.end();
    const bounds = {
      drain: MAX_COMMAND_DRAIN_BYTES,
      onFlood: () => process.kill("SIGKILL"),
    };
    const [stdout, stderr, exit] = await Promise.all([
      readBounded(process.stdout, MAX_COMMAND_OUTPUT_BYTES, bounds),
      readBounded(process.stderr, MAX_COMMAND_OUTPUT_BYTES, bounds),
      process.exited,
    ]);
    const cut = (part: { text: string; dropped: number }): string =>
      part.dropped > 0 ? `${part.text}\n[… ${part.dropped} more bytes not kept]` : part.text;
    return `${cut(stdout)}${stderr.text ? `\n[stderr]\n${cut(stderr)}` : ""}\n[exit code ${exit.timedOut ? "timeout" : exit.exitCode}]`;
  }
}
