/**
 * The exec transport's own rules, over a real child process standing in for the sandbox's exec
 * (the sandbox path is covered end to end in packages/server/src/mcp-servers.test.ts): messages
 * are read line by line, lines that are not JSON-RPC are skipped, and a line or an output past
 * its bound ends the connection and kills the process instead of being held.
 */
import { spawn } from "node:child_process";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import type { ExecProcess } from "@polydev/core";
import { describe, expect, it } from "vitest";
import { ExecTransport } from "./mcp-transport.js";

function run(script: string): ExecProcess & { killedWith: () => string | null } {
  const child = spawn(process.execPath, ["-e", script], { stdio: ["pipe", "pipe", "pipe"] });
  const exited = new Promise<{
    exitCode: number | null;
    signal: string | null;
    timedOut: boolean;
    durationMs: number;
  }>((resolve) =>
    child.on("close", (exitCode, signal) => resolve({ exitCode, signal, timedOut: false, durationMs: 0 })),
  );
  return {
    stdin: child.stdin,
    stdout: child.stdout,
    stderr: child.stderr,
    exited,
    kill: (signal) => child.kill(signal),
    killedWith: () => child.signalCode,
  };
}

async function open(script: string, limits?: { line: number; total: number }) {
  const process = run(script);
  const transport = new ExecTransport(process, limits);
  const messages: JSONRPCMessage[] = [];
  const errors: string[] = [];
  const closed = new Promise<void>((resolve) => {
    transport.onclose = resolve;
  });
  transport.onmessage = (message) => messages.push(message);
  transport.onerror = (error) => errors.push(error.message);
  await transport.start();
  return { process, transport, messages, errors, closed };
}

describe("ExecTransport", () => {
  it("echoes messages split across chunks and skips lines that are not JSON-RPC", async () => {
    const { transport, messages, errors, closed } = await open(`
      process.stdout.write("a banner\\n");
      process.stdin.on("data", (d) => {
        const line = d.toString().trim();
        const half = Math.floor(line.length / 2);
        process.stdout.write(line.slice(0, half));
        setTimeout(() => { process.stdout.write(line.slice(half) + "\\n"); process.exit(0); }, 20);
      });
    `);
    await transport.send({ jsonrpc: "2.0", id: 7, method: "ping" });
    await closed;
    expect(messages).toEqual([{ jsonrpc: "2.0", id: 7, method: "ping" }]);
    expect(errors).toEqual(["the MCP server printed a line that is not JSON-RPC"]);
    await expect(transport.send({ jsonrpc: "2.0", id: 8, method: "ping" })).rejects.toThrow(/exited/);
  });

  it("kills a server whose line grows past the bound", async () => {
    const { process, errors, closed, messages } = await open(
      `process.stdout.write("x".repeat(300000)); setInterval(() => {}, 1000);`,
      { line: 100_000, total: 10_000_000 },
    );
    await closed;
    expect(errors).toContain("the MCP server sent a message longer than 100000 bytes");
    expect(messages).toEqual([]);
    await process.exited;
    expect(process.killedWith()).toBe("SIGKILL");
  });

  it("kills a server that prints more than the output bound in short lines", async () => {
    const { process, errors, closed } = await open(
      `const line = JSON.stringify({ jsonrpc: "2.0", method: "notifications/message", params: {} }) + "\\n";
       const go = () => { while (process.stdout.write(line.repeat(100))); };
       process.stdout.on("drain", go); go();`,
      { line: 100_000, total: 1_000_000 },
    );
    await closed;
    expect(errors).toContain("the MCP server printed more than 1000000 bytes");
    await process.exited;
    expect(process.killedWith()).toBe("SIGKILL");
  });
});
