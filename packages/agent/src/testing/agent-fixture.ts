/** Test support: an in-process agent on a throwaway home and state directory. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { AgentConnection, LaunchRequest, SandboxLauncher } from "@polydev/core";
import { identityLauncher } from "../identity-launcher.js";
import { createInProcessAgent } from "../in-process.js";

export interface AgentFixture {
  home: string;
  stateDir: string;
  launcher: SandboxLauncher;
  agent: AgentConnection;
  /** The argv of every process the agent started, in order. */
  started: string[][];
  cleanup(): Promise<void>;
}

export async function startAgentFixture(
  options: { fileHelper?: readonly string[]; baseEnv?: Record<string, string> } = {},
): Promise<AgentFixture> {
  const home = await mkdtemp(join(tmpdir(), "polydev-agent-home-"));
  const stateDir = await mkdtemp(join(tmpdir(), "polydev-agent-state-"));
  const inner = identityLauncher({
    home,
    stateDir,
    ...(options.fileHelper === undefined ? {} : { fileHelper: options.fileHelper }),
    ...(options.baseEnv === undefined ? {} : { baseEnv: options.baseEnv }),
  });
  const started: string[][] = [];
  const launcher: SandboxLauncher = {
    ...inner,
    start: (request: LaunchRequest) => {
      started.push([...request.argv]);
      return inner.start(request);
    },
  };
  const agent = await createInProcessAgent(launcher);
  return {
    home,
    stateDir,
    launcher,
    agent,
    started,
    async cleanup() {
      await agent.close();
      await rm(home, { recursive: true, force: true });
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks);
}

export async function readText(stream: Readable): Promise<string> {
  return (await readAll(stream)).toString("utf8");
}
