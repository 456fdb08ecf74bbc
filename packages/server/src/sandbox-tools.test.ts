/**
 * The built-in agent's tools read what a sandbox holds and prints: never more than a bound of
 * it, however much there is (the model's commands are the sandbox's, and so is every file).
 * Real sandbox, real exec server.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentConnection, SandboxHandle } from "@polydev/core";
import { NamespaceDriver } from "@polydev/driver-namespace";
import { SandboxTools } from "@polydev/runners";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

describe("the built-in agent's tools hold a bounded amount of a sandbox's output", () => {
  let rootDir: string;
  let driver: NamespaceDriver;
  let handle: SandboxHandle;
  let agent: AgentConnection;

  beforeAll(async () => {
    rootDir = await mkdtemp(join(tmpdir(), "polydev-tools-"));
    driver = new NamespaceDriver({ rootDir });
    handle = await driver.create({
      id: `tools-${Math.random().toString(36).slice(2, 8)}`,
      limits: { cpu: 1, memoryMb: 512, diskMb: 64, pidsMax: 64 },
      network: "none",
      env: {},
    });
    agent = await driver.connect(handle);
  });
  afterAll(async () => {
    await agent?.close();
    if (handle) await driver.destroy(handle);
    await rm(rootDir, { recursive: true, force: true });
  });

  it("keeps the start of a flood of command output and stops a command that will not stop", async () => {
    const tools = new SandboxTools(agent, ".");
    const before = process.memoryUsage().rss;
    const flood = await tools.run("run_command", { command: "yes polydev-flood; echo never" });
    expect(flood.isError).toBe(false);
    expect(flood.output.length).toBeLessThan(1024 * 1024);
    expect(flood.output).toContain("polydev-flood");
    expect(flood.output).toMatch(/\[… \d+ more/);
    expect(flood.output).not.toContain("never");
    expect((process.memoryUsage().rss - before) / 1024 / 1024).toBeLessThan(256);
  });

  it("refuses to read or edit a file larger than it could use", async () => {
    const tools = new SandboxTools(agent, ".");
    await tools.run("run_command", { command: "head -c 10485760 /dev/zero > big.bin" });
    const read = await tools.run("read_file", { path: "big.bin" });
    expect(read).toMatchObject({ isError: true });
    expect(read.output).toContain("larger than");
    const edit = await tools.run("edit_file", { path: "big.bin", old_text: "a", new_text: "b" });
    expect(edit.output).toContain("larger than");
  });
});
