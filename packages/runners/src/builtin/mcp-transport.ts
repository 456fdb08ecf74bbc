/**
 * The MCP SDK's Transport over a process running inside the sandbox: newline-delimited JSON-RPC
 * on its stdin and stdout, carried by the agent connection's exec streams. The server process
 * never starts an MCP server on the host; what it reads back is untrusted and bounded.
 */
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { JSONRPCMessageSchema } from "@modelcontextprotocol/sdk/types.js";
import type { ExecProcess } from "@polydev/core";

/** One message longer than this ends the connection (nothing past it is held). */
export const MAX_MCP_LINE_BYTES = 4 * 1024 * 1024;
/** All a server may print over one turn: past this it is killed. */
export const MAX_MCP_OUTPUT_BYTES = 64 * 1024 * 1024;

export class ExecTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  /** Why the connection ended, in words for the user and the model (set once it has). */
  reason: string | undefined;

  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private seen = 0;
  private closed = false;

  constructor(
    private readonly process: ExecProcess,
    private readonly limits = { line: MAX_MCP_LINE_BYTES, total: MAX_MCP_OUTPUT_BYTES },
  ) {}

  async start(): Promise<void> {
    this.process.stdout.on("data", (chunk: Buffer) => this.read(chunk));
    this.process.stdout.on("error", (error: Error) => this.onerror?.(error));
    // A server's log goes to stderr: read and dropped, so it cannot stall the process.
    this.process.stderr.on("data", () => {});
    this.process.stderr.on("error", () => {});
    this.process.stdin.on("error", (error: Error) => this.onerror?.(error));
    this.process.exited.then(
      (exit) => {
        this.reason ??=
          exit.exitCode === 127
            ? "its command was not found in the sandbox"
            : `it exited (${exit.exitCode !== null ? `code ${exit.exitCode}` : `signal ${exit.signal}`})`;
        this.finish();
      },
      (error: unknown) => {
        this.reason ??= `it could not be run: ${error instanceof Error ? error.message : String(error)}`;
        this.finish();
      },
    );
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (this.closed) throw new Error("the MCP server has exited");
    await new Promise<void>((resolve, reject) => {
      this.process.stdin.write(`${JSON.stringify(message)}\n`, (error) =>
        error ? reject(error) : resolve(),
      );
    });
  }

  async close(): Promise<void> {
    this.reason ??= "the turn ended";
    if (!this.closed) this.process.kill("SIGKILL");
    this.finish();
  }

  private read(chunk: Buffer): void {
    if (this.closed) return;
    this.seen += chunk.length;
    if (this.seen > this.limits.total) {
      this.fail(`the MCP server printed more than ${this.limits.total} bytes`);
      return;
    }
    let rest = chunk;
    for (let at = rest.indexOf(10); at !== -1; at = rest.indexOf(10)) {
      this.pending.push(rest.subarray(0, at));
      const line = Buffer.concat(this.pending).toString("utf8");
      this.pending = [];
      this.pendingBytes = 0;
      rest = rest.subarray(at + 1);
      this.deliver(line);
      if (this.closed) return;
    }
    this.pendingBytes += rest.length;
    if (this.pendingBytes > this.limits.line) {
      this.fail(`the MCP server sent a message longer than ${this.limits.line} bytes`);
      return;
    }
    if (rest.length > 0) this.pending.push(rest);
  }

  private deliver(line: string): void {
    const text = line.trim();
    if (!text) return;
    let message: JSONRPCMessage;
    try {
      message = JSONRPCMessageSchema.parse(JSON.parse(text));
    } catch {
      // Not a JSON-RPC message (a server printing its banner to stdout): skipped, as the SDK's
      // own stdio transport reports and skips it.
      this.onerror?.(new Error("the MCP server printed a line that is not JSON-RPC"));
      return;
    }
    this.onmessage?.(message);
  }

  private fail(reason: string): void {
    this.reason ??= reason;
    this.onerror?.(new Error(reason));
    void this.close();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending = [];
    this.process.stdout.removeAllListeners("data");
    this.process.stdout.resume();
    this.onclose?.();
  }
}
